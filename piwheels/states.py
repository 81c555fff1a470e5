"""State the master keeps about slaves, builds, files and transfers.

:class:`SlaveState` follows one build slave through the slave protocol,
:class:`BuildState` one build attempt with its :class:`FileState` wheels,
and :class:`TransferState` one file arriving in chunks: kept in memory when
small, else written to a temporary file in the output directory (and hashed
as it arrives), checked against its size and SHA256, then linked into place
atomically (never replacing a published file).

The log records (:class:`DownloadState`, :class:`SearchState`,
:class:`ProjectState`, :class:`JSONState`, :class:`PageState`) and the
statistics (:class:`SlaveStats`, :class:`MasterStats`) are the payloads of
:mod:`piwheels.protocols`, re-exported here.
"""

import hashlib
import itertools
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from . import protocols
from .exc import FileConflict, TransferError
from .protocols import (
    BuildRecord, BuiltFile, DownloadState, JSONState, MasterStats, PageState,
    ProjectState, SearchState, SlaveStats, parse_wheel_filename,
)
from .ranges import exclude

__all__ = [
    'FileState', 'BuildState', 'SlaveState', 'TransferState',
    'DownloadState', 'SearchState', 'ProjectState', 'JSONState', 'PageState',
    'SlaveStats', 'MasterStats', 'mkdir_override_symlink',
    'remove_stale_transfers', 'parse_wheel_filename', 'utcnow',
    'CHUNK_SIZE', 'PIPELINE_SIZE', 'MAX_FILE_SIZE', 'MAX_BUFFERED',
    'TRANSFER_PREFIX',
]

#: Bytes asked for by each FETCH unless told otherwise.
CHUNK_SIZE = 1024 * 1024

#: FETCHes kept in flight per transfer unless told otherwise.
PIPELINE_SIZE = 8

#: The largest wheel a transfer accepts unless told otherwise (bytes).
MAX_FILE_SIZE = 1024 * 1024 * 1024

#: Files up to this size (bytes) are received in memory and written out in
#: one go once complete: a temporary file written chunk by chunk and renamed
#: costs a tiny wheel more than the rest of its transfer.
MAX_BUFFERED = 1024 * 1024

#: Prefix of the temporary files of transfers in the output directory; the
#: master removes leftovers of a crash with :func:`remove_stale_transfers`.
TRANSFER_PREFIX = '.transfer-'


def utcnow():
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class FileState(BuiltFile):
    """A wheel produced by a build, and whether it has been transferred.

    The fields are those of :class:`~piwheels.protocols.BuiltFile` (which is
    also its wire form): *filename*, *filesize*, *filehash*, *package_tag*,
    *package_version_tag*, *py_version_tag*, *abi_tag*, *platform_tag*,
    *requires_python* and *dependencies* (tool -> set of packages).

    :param bool transferred: True once the file has reached the master and
        been verified.
    """

    transferred = False

    def __new__(cls, *args, transferred=False, **kwargs):
        self = super().__new__(cls, *args, **kwargs)
        self.transferred = transferred
        return self

    @classmethod
    def from_message(cls, value):
        """Validate *value* (a list or a BuiltFile) and return a FileState.

        :raises ProtocolError: if *value* is not a valid file description.
        """
        return cls(*BuiltFile.from_message(value))

    def verified(self):
        """Record that the file has been transferred and verified."""
        self.transferred = True


class BuildState:
    """One build attempt: who built what, how it went, and its wheels.

    :param int slave_id: the master's id for the slave (0 for imports).
    :param str package: the package built.
    :param str version: the version built.
    :param str abi_tag: the ABI built for (None in an import: the master
        picks its default).
    :param bool status: True if the build succeeded.
    :param timedelta duration: how long the build took.
    :param str output: the build log.
    :param files: the :class:`FileState` of each wheel produced (a list, or a
        mapping of filename to FileState).
    :param int build_id: the database's id for the build (None until
        logged, see :meth:`logged`).
    :param str failure: why the build failed (see
        :data:`piwheels.protocols.Failure`), '' if it succeeded.
    """

    def __init__(self, slave_id, package, version, abi_tag, status, duration,
                 output, files, build_id=None, failure=''):
        self.slave_id = slave_id
        self.package = package
        self.version = version
        self.abi_tag = abi_tag
        self.status = status
        self.duration = duration
        self.output = output
        if isinstance(files, dict):
            files = files.values()
        self._files = {
            state.filename: state if isinstance(state, FileState)
            else FileState(*state)
            for state in files
        }
        self.build_id = build_id
        self.failure = failure

    def __repr__(self):
        return ('<BuildState {self.package} {self.version} for '
                '{self.abi_tag} by slave {self.slave_id}: {status}, '
                '{count} files>'.format(
                    self=self, count=len(self._files),
                    status='built' if self.status else 'failed ({})'.format(
                        self.failure or 'unknown')))

    @classmethod
    def from_result(cls, slave_id, package, version, abi_tag, result):
        """Make the state of a build a slave reported in BUILT.

        :param protocols.BuildResult result: the BUILT message's data.
        """
        return cls(slave_id, package, version, abi_tag, result.status,
                   result.duration, result.output, result.files,
                   failure=result.failure)

    @classmethod
    def from_message(cls, value):
        """Make the state from a :class:`~piwheels.protocols.BuildRecord`
        (or its list form, which is validated).

        :raises ProtocolError: if *value* is not a valid build record.
        """
        if not isinstance(value, BuildRecord):
            value = BuildRecord.from_message(value)
        return cls(value.slave_id, value.package, value.version,
                   value.abi_tag, value.status, value.duration, value.output,
                   value.files, failure=value.failure)

    def as_message(self):
        """Return the build as a :class:`~piwheels.protocols.BuildRecord`."""
        return BuildRecord(
            self.slave_id, self.package, self.version, self.abi_tag,
            self.status, self.duration, self.output,
            [BuiltFile(*state) for state in self._files.values()],
            self.failure)

    def logged(self, build_id):
        """Record the id the database gave the build."""
        self.build_id = build_id

    @property
    def files(self):
        """A mapping of filename to :class:`FileState`."""
        return self._files

    @property
    def next_file(self):
        """The filename of the next file to transfer, or None when all have
        been transferred."""
        for filename, state in self._files.items():
            if not state.transferred:
                return filename
        return None

    @property
    def transfers_done(self):
        """True when every file has been transferred."""
        return all(state.transferred for state in self._files.values())


_slave_ids = itertools.count(1)


class SlaveState:
    """What the master knows of one connected build slave.

    SlaveDriver calls :meth:`received` for each request and :meth:`sent` for
    each reply; the state follows the slave's current build
    (:attr:`build_request`, then :attr:`build` once BUILT arrives), its last
    statistics and when it was last heard from (:meth:`expired`).

    :param bytes address: the slave's ephemeral ZeroMQ address (not its IP:
        an id the ROUTER socket gives the connection, new on every
        reconnection).
    :param timedelta build_timeout: how long a build may take.
    :param timedelta busy_timeout: how long the slave may stay silent.
    :param str native_py_version: the Python tag it builds for.
    :param str native_abi: the ABI tag it builds for.
    :param str native_platform: its platform tag.
    :param str label: its label (usually its hostname).
    :param str os_name: its operating system.
    :param str os_version: the operating system's version.
    :param str board_revision: its board revision ('' if unknown).
    :param str board_serial: its board serial number ('' if unknown).
    """

    def __init__(self, address, build_timeout, busy_timeout,
                 native_py_version, native_abi, native_platform, label,
                 os_name, os_version, board_revision, board_serial):
        self.slave_id = next(_slave_ids)
        self.address = address
        self.build_timeout = build_timeout
        self.busy_timeout = busy_timeout
        self.native_py_version = native_py_version
        self.native_abi = native_abi
        self.native_platform = native_platform
        self.label = label
        self.os_name = os_name
        self.os_version = os_version
        self.board_revision = board_revision
        self.board_serial = board_serial
        self.first_seen = self.last_seen = utcnow()
        self.request = None        # the last (action, data) received
        self.reply = None          # the last (action, data) sent
        self.stats = None          # the last SlaveStats (IDLE/BUSY)
        self.build_request = None  # the BuildRequest being worked on
        self.build_started = None  # when BUILD was sent
        self.build = None          # the BuildState once BUILT arrives
        self.killed = False

    def __repr__(self):
        return '<SlaveState {} {!r} {}>'.format(
            self.slave_id, self.label, self.native_abi)

    @classmethod
    def from_hello(cls, address, hello, busy_timeout, max_build_timeout):
        """Make the state of a slave from its HELLO.

        :param bytes address: the slave's ZeroMQ address.
        :param protocols.SlaveHello hello: the HELLO message's data.
        :param timedelta busy_timeout: how long a slave may stay silent.
        :param timedelta max_build_timeout: the master's limit on build
            timeouts; the slave's own timeout is clamped to it.
        """
        return cls(address, min(hello.build_timeout, max_build_timeout),
                   busy_timeout, hello.py_version_tag, hello.abi_tag,
                   hello.platform_tag, hello.label, hello.os_name,
                   hello.os_version, hello.board_revision,
                   hello.board_serial)

    def kill(self):
        """Mark the slave to be told DIE at its next request."""
        self.killed = True

    def received(self, action, data, now=None):
        """Record a request (*action*, *data*) from the slave."""
        self.last_seen = now or utcnow()
        self.request = (action, data)
        if action in ('IDLE', 'BUSY'):
            self.stats = data
        if action == 'IDLE':
            self.build_request = self.build_started = self.build = None
        elif action == 'BUILT' and self.build_request is not None:
            self.build = BuildState.from_result(
                self.slave_id, self.build_request.package,
                self.build_request.version, self.native_abi, data)

    def sent(self, action, data, now=None):
        """Record a reply (*action*, *data*) sent to the slave."""
        self.reply = (action, data)
        if action == 'BUILD':
            self.build_request = data
            self.build_started = now or utcnow()
            self.build = None

    def expired(self, now=None):
        """True if the slave has been silent longer than its busy timeout, or
        has been building longer than its build timeout plus that."""
        now = now or utcnow()
        if now - self.last_seen > self.busy_timeout:
            return True
        return (self.build_started is not None and self.build is None
                and now - self.build_started >
                self.build_timeout + self.busy_timeout)

    def event(self, action, data, now=None):
        """Return a :class:`~piwheels.protocols.SlaveEvent` telling the
        monitors about a message to or from this slave."""
        return protocols.SlaveEvent(
            self.slave_id, now or utcnow(), action,
            None if data is protocols.NoData else data)


class TransferState:
    """A file arriving from a slave in chunks (the FileJuggler's side of
    ``file_juggler_files``).

    A file of up to :data:`MAX_BUFFERED` bytes is received in memory; a
    larger one is written to a temporary file in *output_path* (the same
    file-system as its final place) and hashed as its bytes arrive in order.
    :meth:`fetch` says which piece to ask for next (keeping up to
    *pipeline_size* FETCHes in flight), :meth:`chunk` takes what arrives,
    :meth:`verify` checks size and SHA256, and :meth:`commit` (verifying
    first) links the file into place or :meth:`stage` puts it where the
    caller says; :meth:`rollback` throws it away. When the slave goes quiet
    with FETCHes outstanding, :meth:`reset_credit` has the lost pieces asked
    for again.

    :param int slave_id: the slave sending the file.
    :param FileState file_state: the file expected, with its size and hash.
    :param output_path: the output directory (a :class:`~pathlib.Path`).
    :param int chunk_size: bytes per FETCH (default :data:`CHUNK_SIZE`).
    :param int pipeline_size: FETCHes in flight (default
        :data:`PIPELINE_SIZE`).
    :param int max_file_size: the largest file accepted (default
        :data:`MAX_FILE_SIZE`).
    :raises TransferError: if the file is larger than *max_file_size* or its
        name is not a plain wheel filename.
    """

    def __init__(self, slave_id, file_state, output_path, *,
                 chunk_size=CHUNK_SIZE, pipeline_size=PIPELINE_SIZE,
                 max_file_size=MAX_FILE_SIZE):
        try:
            parse_wheel_filename(file_state.filename)
        except ValueError as exc:
            raise TransferError(str(exc)) from None
        if file_state.filesize > max_file_size:
            raise TransferError(
                '{} is {} bytes, larger than the {}-byte limit'.format(
                    file_state.filename, file_state.filesize, max_file_size))
        if not 0 < chunk_size <= protocols.MAX_CHUNK_SIZE:
            raise ValueError('chunk_size must be 1..{}'.format(
                protocols.MAX_CHUNK_SIZE))
        self.slave_id = slave_id
        self.file_state = file_state
        self.output_path = Path(output_path)
        self.chunk_size = chunk_size
        self.pipeline_size = pipeline_size
        self._missing = [range(file_state.filesize)] if file_state.filesize \
            else []
        self._in_flight = {}   # offset -> range asked for, not yet received
        self._fd = None
        self.temp_path = None
        if file_state.filesize <= MAX_BUFFERED:
            self._buffer = bytearray(file_state.filesize)
        else:
            self._buffer = None
            fd, name = _make_temp(self.output_path, file_state.filename)
            self._fd = fd
            self.temp_path = Path(name)
        # the file's hash, taken as its bytes arrive in order (those that
        # arrive early wait, a pipeline's worth at most); a piece that comes
        # again once hashed means the file must be read back to hash it
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._early = {}       # offset -> bytes that arrived before their turn
        self._early_bytes = 0
        self._read_back = False

    def __repr__(self):
        return '<TransferState {} from slave {}: {} bytes missing>'.format(
            self.file_state.filename, self.slave_id, self.missing_bytes)

    @property
    def missing_bytes(self):
        """How many bytes have still to arrive."""
        return sum(len(part) for part in self._missing)

    @property
    def done(self):
        """True when every byte has arrived."""
        return not self._missing

    def fetch(self):
        """Return the next :class:`~piwheels.protocols.Fetch` to send, or
        None if the pipeline is full or every missing piece is in flight.

        Missing pieces are asked for in file order, at most *chunk_size*
        bytes each, never overlapping a piece already in flight.
        """
        if len(self._in_flight) >= self.pipeline_size:
            return None
        for part in self._missing:
            start = part.start
            while start < part.stop:
                asked = self._in_flight_at(start)
                if asked is not None:
                    start = asked.stop
                    continue
                stop = min([part.stop, start + self.chunk_size] + [
                    other.start for other in self._in_flight.values()
                    if other.start > start])
                self._in_flight[start] = range(start, stop)
                return protocols.Fetch(start, stop - start)
        return None

    def _in_flight_at(self, offset):
        for asked in self._in_flight.values():
            if offset in asked:
                return asked
        return None

    def reset_credit(self):
        """Forget the FETCHes in flight (the slave went quiet: they or their
        CHUNKs were lost) so :meth:`fetch` asks for those pieces again."""
        self._in_flight.clear()

    def chunk(self, offset, data):
        """Take *data* received for *offset*.

        A chunk may be a repeat (it replaces what came before) or shorter
        than asked (the rest is fetched again).

        :raises TransferError: if the chunk lies outside the file.
        """
        end = offset + len(data)
        if offset < 0 or end > self.file_state.filesize:
            raise TransferError(
                'chunk of {} bytes at offset {} lies outside {} ({} bytes)'
                .format(len(data), offset, self.file_state.filename,
                        self.file_state.filesize))
        self._in_flight.pop(offset, None)
        if data:
            if self._buffer is not None:
                self._buffer[offset:end] = data
            else:
                os.pwrite(self._fd, data, offset)
                self._hash(offset, data)
            self._missing = list(exclude(self._missing, range(offset, end)))

    def _hash(self, offset, data):
        """Hash *data*, written at *offset*, if its turn has come; keep it
        for later if it came early."""
        if self._read_back:
            return
        if offset > self._hashed:
            end = offset + len(data)
            if (self._early_bytes + len(data) >
                    self.pipeline_size * self.chunk_size or any(
                        offset < other + len(piece) and other < end
                        for other, piece in self._early.items())):
                self._give_up_hashing()
            else:
                self._early[offset] = bytes(data)
                self._early_bytes += len(data)
        elif offset < self._hashed:
            self._give_up_hashing()
        else:
            self._digest.update(data)
            self._hashed += len(data)
            while self._hashed in self._early:
                piece = self._early.pop(self._hashed)
                self._early_bytes -= len(piece)
                self._digest.update(piece)
                self._hashed += len(piece)

    def _give_up_hashing(self):
        self._read_back = True
        self._early.clear()
        self._early_bytes = 0

    def verify(self):
        """Check the complete file's size and SHA256 against the expected.

        :raises TransferError: if a piece is missing or the size or hash is
            wrong; the caller rolls back and has the file sent again.
        """
        if not self.done:
            raise TransferError('{}: {} bytes never arrived'.format(
                self.file_state.filename, self.missing_bytes))
        if self._buffer is not None:
            digest = hashlib.sha256(self._buffer).hexdigest()
        else:
            size = os.fstat(self._fd).st_size
            if size != self.file_state.filesize:
                raise TransferError('{}: {} bytes arrived, expected {}'.format(
                    self.file_state.filename, size, self.file_state.filesize))
            if self._read_back or self._hashed != size:
                digest = _sha256_of_fd(self._fd)
            else:
                digest = self._digest.hexdigest()
        if digest != self.file_state.filehash:
            raise TransferError(
                '{}: SHA256 {} does not match the expected {}'.format(
                    self.file_state.filename, digest,
                    self.file_state.filehash))

    def stage(self, path):
        """Put the complete file (checked with :meth:`verify`) at *path*, on
        the same file-system as the output directory, replacing anything
        there; the transfer is over. The file is not flushed to disk."""
        if self._buffer is not None:
            _write_file(path, self._buffer)
        else:
            os.rename(self.temp_path, path)
            self.temp_path = None
        self.rollback()

    def commit(self, package_dir):
        """Verify the file and publish it as *package_dir*/filename,
        atomically.

        The file is checked with :meth:`verify`, flushed to disk and
        hard-linked into place, which never replaces an existing file: if
        one is there with the same bytes, this is a repeat and succeeds; if
        its bytes differ, :exc:`FileConflict` is raised and the published
        file is left alone. Either way the
        temporary file is removed.

        :param package_dir: the directory (created if needed) to publish in.
        :returns: the published file's path.
        :raises TransferError: if the file does not verify.
        :raises FileConflict: if another file of that name is published.
        """
        package_dir = Path(package_dir)
        final = package_dir / self.file_state.filename
        try:
            self.verify()
            if self._buffer is not None:
                fd, name = _make_temp(self.output_path,
                                      self.file_state.filename)
                self._fd, self.temp_path = fd, Path(name)
                _write_all(fd, self._buffer)
            os.fsync(self._fd)
            mkdir_override_symlink(package_dir)
            try:
                os.link(self.temp_path, final)
            except FileExistsError:
                with final.open('rb') as published:
                    digest = _sha256_of_fd(published.fileno())
                if digest != self.file_state.filehash:
                    raise FileConflict(
                        '{} is already published with SHA256 {}; not '
                        'replaced by one with {}'.format(
                            final, digest, self.file_state.filehash)) from None
            _fsync_dir(package_dir)
        finally:
            self.rollback()
        return final

    def rollback(self):
        """Close and remove the temporary file, if any, and drop what was
        received (safe to call twice)."""
        self._buffer = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.temp_path is not None:
            try:
                self.temp_path.unlink()
            except FileNotFoundError:
                pass
            self.temp_path = None


def _make_temp(output_path, filename):
    return tempfile.mkstemp(dir=str(output_path),
                            prefix=TRANSFER_PREFIX + filename + '.')


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_file(path, data):
    """Write *data* to a new file at *path* (replacing any)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                 0o600)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _sha256_of_fd(fd):
    digest = hashlib.sha256()
    offset = 0
    while True:
        block = os.pread(fd, 1024 * 1024, offset)
        if not block:
            return digest.hexdigest()
        digest.update(block)
        offset += len(block)


def _fsync_dir(path):
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_transfers(output_path):
    """Remove the temporary files of transfers left by a crash.

    :param output_path: the output directory.
    :returns: the number of files removed.
    """
    removed = 0
    for path in Path(output_path).glob(TRANSFER_PREFIX + '*'):
        path.unlink()
        removed += 1
    return removed


def mkdir_override_symlink(pkg_dir):
    """Make the directory *pkg_dir* (and its parents), replacing a symlink in
    its place.

    (A package's simple index directory may be a symlink left for one of its
    aliases; a real directory takes its place.)

    :raises FileExistsError: if a file that is neither a directory nor a
        symlink is in the way.
    """
    pkg_dir = Path(pkg_dir)
    if pkg_dir.is_symlink():
        pkg_dir.unlink()
    pkg_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        pkg_dir.mkdir()
    except FileExistsError:
        if not pkg_dir.is_dir():
            raise
