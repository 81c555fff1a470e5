"""MrChase: carries out the requests of piw-import, piw-add, piw-remove and piw-rebuild.

The admin tools talk to it over :data:`~piwheels.protocols.mr_chase`, a
strict request/reply: every request is answered with DONE, or ERROR and a
one-line reason (in which case nothing was changed), except IMPORT and
SENT, which may be answered with SEND.

An import is an abbreviated build (as SlaveDriver sees one): IMPORT checks
the build and asks for its first file (SEND); the tool sends it to
FileJuggler, which checks its size and SHA256 and stages it, and says SENT;
when every file is staged the build is recorded in the database, which
says which files are new (published), identical to a published file
(discarded) or a conflict with one (an ERROR: the published file stays).
Only then is DONE sent, so a tool that deletes its files after DONE never
deletes one the master does not have.

A package or version that does not exist is an ERROR for everything but
IMPORT and piw-add, which create what they need.
"""

import bisect
import json
import os
import time
from datetime import timedelta

from .. import protocols, transport
from ..exc import (
    DatabaseError, MasterError, ProtocolError, TransferError, TransportError,
)
from ..protocols import (
    BuildLog, NoData, PackageVersion, RebuildProgress, StagedFile)
from ..pypi import BINARY_ONLY
from ..states import BuildState, utcnow
from ..tasks import NonStopTask
from .db import DELETED
from .file_juggler import FsClient, TransferRetry
from .output import OutputError, canonicalize
from .the_oracle import DbClient
from .the_scribe import REWRITE_STATE

#: an import whose tool has been silent this long is abandoned
IMPORT_TIMEOUT = timedelta(minutes=10)

#: a rewrite of every package asked for this recently counts as running
#: while TheScribe has not started it yet
REWRITE_START = timedelta(seconds=10)


def abi_order(abi):
    """Sort key of an ABI tag: by the Python version it names (cp39 before
    cp311), then by name."""
    digits = ''.join(c for c in abi.split('_')[0] if c.isdigit())
    version = (int(digits[0]), int(digits[1:])) if len(digits) > 1 else (0, 0)
    return version, abi


class Import:
    """An import in progress: its build, the id its files are transferred
    under, and when the tool was last heard from."""

    def __init__(self, transfer_id, canon, build):
        self.transfer_id = transfer_id
        self.canon = canon
        self.build = build
        self.last_heard = time.monotonic()


class MrChase(NonStopTask):
    """Carries out the admin tools' requests.

    Queues:

    * ``import_queue``: ROUTER, binds ``config.import_queue``
      (:data:`~piwheels.protocols.mr_chase`), from piw-import, piw-add,
      piw-remove and piw-rebuild (REQ);
    * ``web_queue``: PUSH, connects ``config.web_queue``
      (:data:`~piwheels.protocols.the_secretary`): pages to write or
      remove, build logs;
    * ``stats_queue``: PUSH, connects ``config.stats_queue``
      (:data:`~piwheels.protocols.big_brother`): HOME and SEARCH (the home
      page and search index are written with BigBrother's figures);
    * ``deletions_queue``: PUSH, connects ``config.deletions_queue``
      (:data:`~piwheels.protocols.slave_driver_deletions`);
    * a :class:`~piwheels.master.the_oracle.DbClient` and a
      :class:`~piwheels.master.file_juggler.FsClient` (REQ).

    It never pauses: the operator's requests are answered while the rest of
    the farm is paused.
    """

    def __init__(self, config):
        super().__init__(config)
        self.max_file_size = config.max_file_size
        self.rewrite_state = os.path.join(config.output_path, REWRITE_STATE)
        self.rewrite_asked = None    # when a full rewrite was asked for
        self.rewrite_packages = None  # the packages it writes, sorted
        self.import_queue = self.socket(
            transport.ROUTER, protocol=protocols.mr_chase)
        self.import_queue.bind(config.import_queue)
        self.web_queue = self.socket(
            transport.PUSH, protocol=protocols.the_secretary.reversed())
        self.web_queue.hwm = 100000
        self.web_queue.connect(config.web_queue)
        self.stats_queue = self.socket(
            transport.PUSH, protocol=protocols.big_brother.reversed())
        self.stats_queue.connect(config.stats_queue)
        self.deletions_queue = self.socket(
            transport.PUSH,
            protocol=protocols.slave_driver_deletions.reversed())
        self.deletions_queue.connect(config.deletions_queue)
        self.db = DbClient(config, self.logger)
        self.fs = FsClient(config, self.logger)
        self.imports = {}      # the tool's address -> Import
        self.register(self.import_queue, self.handle_import)
        self.every(timedelta(minutes=1), self.expire_imports)

    def close(self):
        for address in list(self.imports):
            self.abandon(address)
        self.db.close()
        self.fs.close()
        super().close()

    def handle_import(self, queue):
        """Answer one request from an admin tool (a REQ socket waits for
        its answer, so even a malformed request gets ERROR)."""
        try:
            address, msg, data = queue.recv_addr_msg()
        except ProtocolError as exc:
            self.protocol_errors += 1
            self.logger.error('MrChase: invalid request: %s', exc)
            self.reply(exc.addr, 'ERROR', 'invalid request: {}'.format(exc))
            return
        try:
            reply = getattr(self, 'do_{}'.format(msg.lower()))(address, data)
        except (MasterError, DatabaseError, TransferError,
                TransportError) as exc:
            self.logger.error('MrChase: %s refused: %s', msg, exc)
            reply = ('ERROR', str(exc) or msg)
        self.reply(address, *reply)

    def reply(self, address, msg, data=NoData):
        if msg == 'ERROR':
            data = data[:2000]
        try:
            self.import_queue.send_addr_msg(address, msg, data)
        except TransportError as exc:
            self.logger.warning('MrChase: %s', exc)

    @staticmethod
    def canonical(package):
        try:
            return canonicalize(package)
        except OutputError:
            raise MasterError('invalid package name {!r}'.format(
                package)) from None

    def check_not_deleted(self, canon):
        if self.db.package_marked_deleted(canon):
            raise MasterError('package {} is being deleted; try again in a '
                              'few minutes'.format(canon))

    # -- piw-import ------------------------------------------------------------

    def do_import(self, address, record):
        """IMPORT: check the build and ask for its first file."""
        self.abandon(address)
        for other in self.imports.values():
            if other.transfer_id == record.slave_id:
                raise MasterError('another import is using transfer id {}'
                                  .format(record.slave_id))
        canon = self.canonical(record.package)
        if not record.status or not record.files:
            raise MasterError('only a successful build with files can be '
                              'imported')
        self.check_not_deleted(canon)
        abis = self.db.get_build_abis()
        abi = record.abi_tag
        if abi is None:
            active = self.db.get_build_abis(exclude_skipped=True) or abis
            if not active:
                raise MasterError('the database has no build ABIs; add one '
                                  'with piw-initdb --add-abi')
            abi = min(active, key=abi_order)
        elif abi not in abis:
            raise MasterError('{} is not a build ABI of this farm ({})'.format(
                abi, ', '.join(sorted(abis, key=abi_order)) or 'none'))
        for file in record.files:
            if file.abi_tag not in (abi, 'none', 'abi3'):
                raise MasterError('{} is not for ABI {}'.format(
                    file.filename, abi))
            if file.filesize > self.max_file_size:
                raise MasterError(
                    '{} is {} bytes, more than the {}-byte limit'.format(
                        file.filename, file.filesize, self.max_file_size))
        build = BuildState.from_message(record._replace(
            slave_id=0, package=canon, abi_tag=abi, failure=''))
        state = Import(record.slave_id, canon, build)
        self.imports[address] = state
        self.logger.info('MrChase: importing %s %s for %s (%d files)',
                         canon, record.version, abi, len(build.files))
        return self.send_next(address, state)

    def do_sent(self, address, data):
        """SENT: verify the file just sent; ask for the next, or for the
        same one again, or record the build."""
        state = self.imports.get(address)
        if state is None or state.build.next_file is None:
            raise MasterError('SENT without an import in progress')
        state.last_heard = time.monotonic()
        filename = state.build.next_file
        try:
            self.fs.check(state.transfer_id, state.canon)
        except TransferRetry as exc:
            self.logger.warning('MrChase: %s', exc)
            return 'SEND', filename
        except (TransferError, TransportError):
            self.abandon(address)
            raise
        state.build.files[filename].verified()
        return self.send_next(address, state)

    def send_next(self, address, state):
        filename = state.build.next_file
        if filename is None:
            return self.record(address, state)
        try:
            self.fs.expect(state.transfer_id, state.build.files[filename])
        except (TransferError, TransportError):
            self.abandon(address)
            raise
        return 'SEND', filename

    def record(self, address, state):
        """Every file is staged: record the build (creating its package and
        version if needed), publish its new files, ask for its pages."""
        del self.imports[address]
        build = state.build
        canon = state.canon
        try:
            self.db.add_new_package(canon)
            # a version PyPI never told us about has no source we know of
            self.db.add_new_package_version(canon, build.version, None,
                                            BINARY_ONLY)
            logged = self.db.log_builds([build])[0]
        except (DatabaseError, TransportError):
            self.discard_staged(state)
            raise
        if logged.build_id is None:
            self.discard_staged(state)
            raise MasterError('the build was not recorded: {}'.format(
                logged.error))
        staged = [StagedFile(state.transfer_id, canon, filename)
                  for filename in build.files]
        new_files = [file for file in staged
                     if file.filename in logged.new_files]
        old_files = [file for file in staged
                     if file.filename not in logged.new_files]
        if new_files:
            self.fs.publish(new_files)
        if old_files:
            self.fs.discard(old_files)
        self.web('LOG', BuildLog(logged.build_id, build.output))
        self.web('BOTH', canon)
        if logged.conflicts:
            raise MasterError(
                'build {} was recorded, but {} had other bytes than the '
                'published file of that name, which stays'.format(
                    logged.build_id, ', '.join(sorted(logged.conflicts))))
        self.logger.info('MrChase: imported %s %s as build %d', canon,
                         build.version, logged.build_id)
        return 'DONE', NoData

    def discard_staged(self, state):
        staged = [StagedFile(state.transfer_id, state.canon, filename)
                  for filename, file in state.build.files.items()
                  if file.transferred]
        if staged:
            try:
                self.fs.discard(staged)
            except (TransferError, TransportError) as exc:
                self.logger.error('MrChase: %s', exc)

    def abandon(self, address):
        """Drop the import of the tool at *address*, if any: its transfer
        and staged files go."""
        state = self.imports.pop(address, None)
        if state is None:
            return
        self.logger.warning('MrChase: import of %s %s abandoned',
                            state.canon, state.build.version)
        self.discard_staged(state)
        try:
            self.fs.abort(state.transfer_id)
        except (TransferError, TransportError) as exc:
            self.logger.error('MrChase: %s', exc)

    def expire_imports(self):
        """Abandon imports whose tool has gone quiet."""
        limit = time.monotonic() - IMPORT_TIMEOUT.total_seconds()
        for address, state in list(self.imports.items()):
            if state.last_heard < limit:
                self.abandon(address)

    # -- piw-add ---------------------------------------------------------------

    def do_addpkg(self, address, data):
        """ADDPKG: add a package, or change its description, skip reason
        and aliases."""
        canon = self.canonical(data.package)
        for alias in data.aliases:
            self.canonical(alias)
        self.check_not_deleted(canon)
        if not self.db.add_new_package(canon, data.skip or '',
                                       data.description or ''):
            if data.description is not None:
                self.db.set_package_description(canon, data.description)
            if data.skip is not None:
                self.db.skip_package(canon, data.skip)
        for alias in data.aliases:
            self.db.add_package_name(canon, alias)
        if data.package != canon:
            self.db.add_package_name(canon, data.package, utcnow())
        self.web('BOTH', canon)
        return 'DONE', NoData

    def do_addver(self, address, data):
        """ADDVER: add a version (and its package), or change its skip
        reason and yanked state."""
        canon = self.canonical(data.package)
        self.check_not_deleted(canon)
        if self.db.test_package_version(canon, data.version):
            if data.released is not None:
                raise MasterError(
                    '{} {} exists; its release time is kept'.format(
                        canon, data.version))
            if data.skip is not None:
                self.db.skip_package_version(canon, data.version, data.skip)
        else:
            self.db.add_new_package(canon)
            self.db.add_new_package_version(canon, data.version,
                                            data.released, data.skip or '')
        if data.yanked is True:
            self.db.yank_version(canon, data.version)
        elif data.yanked is False:
            self.db.unyank_version(canon, data.version)
        self.web('BOTH', canon)
        return 'DONE', NoData

    # -- piw-remove ------------------------------------------------------------

    def do_rempkg(self, address, data):
        """REMPKG: remove a package (its rows go once the web output has
        dropped its pages), or only its builds and files, optionally
        marking it never to be built."""
        canon = self.canonical(data.package)
        if not self.db.test_package(canon):
            raise MasterError('unknown package {}'.format(canon))
        self.check_not_deleted(canon)
        files = self.db.get_package_files(canon)
        project = self.db.get_project_data(canon)
        for version in project['releases']:
            self.db.delete_build(canon, version)
        if data.builds_only or data.skip:
            if data.skip:
                self.db.skip_package(canon, data.skip)
                self.forget_builds('DELPKG', canon)
            self.remove_files(canon, files)
            self.web('BOTH', canon)
        else:
            self.db.skip_package(canon, DELETED)
            self.forget_builds('DELPKG', canon)
            self.web('DELPKG', canon)
        self.logger.warning('MrChase: removed %s %s', 'the builds of'
                            if data.builds_only or data.skip else 'package',
                            canon)
        return 'DONE', NoData

    def do_remver(self, address, data):
        """REMVER: remove a version, or only its builds and files,
        optionally marking it never to be built."""
        canon = self.canonical(data.package)
        if not self.db.test_package_version(canon, data.version):
            raise MasterError('unknown version {} of {}'.format(
                data.version, canon))
        files = self.db.get_version_files(canon, data.version)
        key = PackageVersion(canon, data.version)
        if data.builds_only or data.skip:
            self.db.delete_build(canon, data.version)
            if data.skip:
                self.db.skip_package_version(canon, data.version, data.skip)
                self.forget_builds('DELVER', key)
            self.remove_files(canon, files)
            self.web('BOTH', canon)
        else:
            self.db.delete_version(canon, data.version)
            self.forget_builds('DELVER', key)
            self.remove_files(canon, files)
            self.web('DELVER', key)
        self.logger.warning('MrChase: removed %s %s %s', 'the builds of'
                            if data.builds_only or data.skip else 'version',
                            canon, data.version)
        return 'DONE', NoData

    def remove_files(self, canon, filenames):
        for filename in sorted(filenames):
            self.fs.remove(canon, filename)

    # -- piw-rebuild -----------------------------------------------------------

    def do_rebuild(self, address, data):
        """REBUILD: have pages written again."""
        if data.part in ('HOME', 'SEARCH'):
            self.stats_queue.send_msg(data.part)
        elif data.package is None:
            self.rewrite_packages = sorted(self.db.get_all_packages())
            self.rewrite_asked = time.monotonic()
            self.web(data.part, None)
        else:
            canon = self.canonical(data.package)
            if not self.db.test_package(canon):
                raise MasterError('unknown package {}'.format(canon))
            self.web(data.part, canon)
        return 'DONE', NoData

    def do_progress(self, address, data):
        """PROGRESS: how far the rewrite of every package has got (TheScribe
        records the last package written in the output directory)."""
        try:
            with open(self.rewrite_state, 'rb') as f:
                after = str(json.loads(f.read().decode('utf-8'))['after'])
        except (OSError, ValueError, KeyError, TypeError):
            after = None
        if self.rewrite_packages is None:
            self.rewrite_packages = sorted(self.db.get_all_packages())
        total = len(self.rewrite_packages)
        if after is None:
            starting = (self.rewrite_asked is not None
                        and time.monotonic() - self.rewrite_asked
                        < REWRITE_START.total_seconds())
            return 'PROGRESS', RebuildProgress(
                starting, 0 if starting else total, total)
        self.rewrite_asked = None
        done = bisect.bisect_right(self.rewrite_packages, after)
        return 'PROGRESS', RebuildProgress(True, done, total)

    # -- other tasks -----------------------------------------------------------

    def web(self, msg, data):
        self.web_queue.send_msg(msg, data)

    def forget_builds(self, msg, data):
        self.deletions_queue.send_msg(msg, data)
