"""FileJuggler: receives the slaves' wheels in chunks, verifies them and puts them in the output.

A transfer starts when SlaveDriver (through :class:`FsClient`) tells the
juggler to EXPECT a file from a slave. The slave then says HELLO on the file
queue and the juggler keeps several FETCHes in flight (credit-based flow
control, as in the ZeroMQ guide's file transfer chapter), writing each CHUNK
at its offset and hashing the file as it arrives. A FETCH whose CHUNK is
lost is asked again; a chunk at an offset or of a length that was not
asked for is refused.

Nothing partial is ever visible in the output: a file is received into
``.incoming/`` under the output directory (readable by the master only),
verified against the SHA256 the slave announced (a mismatch fetches it
again, a bounded number of times), and then either published at once
(VERIFY) or held as *staged* (CHECK; or STAGE, SlaveDriver's EXPECT and
CHECK in one, answered the moment the transfer ends, before the slave says
SENT) until the build is in the database,
which decides whether the file is new, identical to the published one, or
a conflict (PUBLISH or DISCARD). A published file is moved into
``simple/<package>/`` with one atomic rename, once it is on disk: the
PUBLISH requests waiting are flushed together by a :class:`FileSyncer`
thread, so that the juggler keeps answering slaves meanwhile.

At start-up the juggler clears what a crash left in ``.incoming/``:
unfinished transfers are removed, and staged files are published only if
the database recorded them with the same hash.

The master runs the juggler in a process of its own (see
:attr:`~piwheels.tasks.Task.own_process`), so its queues from the other
tasks are never ``inproc://``.
"""

import hashlib
import itertools
import os
import time
from datetime import timedelta

from .. import protocols, transport
from ..exc import DatabaseError, PiwheelsError, TransferError, TransportError
from ..protocols import DiskUsage
from ..states import FileState, TransferState
from ..tasks import NonStopTask
from .db import Database
from .output import WebOutput, canonicalize, flush_to_disk, fsync_file
from .rpc import RpcClient

#: FETCHes in flight per transfer
PIPELINE_SIZE = 16

#: a transfer with FETCHes unanswered for this long has them asked again
FETCH_TIMEOUT = timedelta(seconds=10)

#: times a transfer's chunks are asked again (lost, or refused as outside
#: the file) before it fails
MAX_REFETCHES = 20

#: the directory under the output path receiving transfers
INCOMING = '.incoming'

#: HELLOs kept while their EXPECT is awaited
MAX_EARLY_HELLOS = 1000

#: with more files than this to publish at once, one syncfs beats a fsync
#: per file
SYNC_EACH_LIMIT = 4

_syncer_ids = itertools.count(1)


class TransferRetry(TransferError):
    """A transferred file did not verify and must be sent again."""


class TransferIgnoreChunk(TransferError):
    """A CHUNK arrived that belongs to no transfer (a slave that sent CHUNK
    before HELLO, or whose transfer was dropped)."""


class Transfer:
    """One file expected from a slave: its
    :class:`~piwheels.states.TransferState` (the chunks, the temporary file,
    the verification), the slave's address on the file queue, and how often
    it had to be fetched again.

    :param int slave_id: the slave sending the file.
    :param file: the :class:`~piwheels.protocols.BuiltFile` expected.
    :param str incoming: the directory receiving it.
    :param int max_file_size: the size cap.
    """

    def __init__(self, slave_id, file, incoming, max_file_size):
        self.slave_id = slave_id
        self.file = file
        self.incoming = incoming
        self.max_file_size = max_file_size
        self.address = None
        self.stager = None     # (address, VerifyFile) of a STAGE waiting
        self.attempts = 1
        self.refetches = 0
        self.failed = False
        self.last_heard = time.monotonic()
        self.state = self.new_state()

    def new_state(self):
        return TransferState(
            self.slave_id, FileState(*self.file), self.incoming,
            pipeline_size=PIPELINE_SIZE, max_file_size=self.max_file_size)

    def restart(self):
        """Receive the whole file again (it failed to verify)."""
        self.state.rollback()
        self.attempts += 1
        self.refetches = 0
        self.state = self.new_state()

    def refetch(self):
        """Count one more chunk asked again; fail past the limit."""
        self.refetches += 1
        if self.refetches > MAX_REFETCHES:
            self.failed = True
            raise TransferError(
                'transfer of {} from slave {}: chunks lost or refused more '
                'than {} times; giving up'.format(
                    self.file.filename, self.slave_id, MAX_REFETCHES))

    def fetches(self):
        """Yield the FETCHes to send now (up to the pipeline's credit)."""
        while True:
            fetch = self.state.fetch()
            if fetch is None:
                return
            yield fetch


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def file_sha256(path):
    """Return the SHA256 hex digest of the file at *path*."""
    hasher = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1024 * 1024), b''):
            hasher.update(block)
    return hasher.hexdigest()


class FileJuggler(NonStopTask):
    """Receives files from slaves and publishes them in the output.

    Queues:

    * ``file_queue``: ROUTER, binds ``config.file_queue``
      (:data:`~piwheels.protocols.file_juggler_files`), from slaves and
      importers (DEALER);
    * ``fs_queue``: ROUTER, binds ``config.fs_queue``
      (:data:`~piwheels.protocols.file_juggler_fs`), from :class:`FsClient`
      (REQ) in SlaveDriver and MrChase;
    * ``stats_queue``: PUSH, connects ``config.stats_queue``
      (:data:`~piwheels.protocols.big_brother`): the output's disk space;
    * ``sync_queue``: PAIR, binds an inproc address of its own
      (:data:`~piwheels.protocols.file_juggler_sync`), to its
      :class:`FileSyncer`, started by :meth:`once`.

    It never pauses: transfers in progress must not stall.
    """

    #: a process of its own: the transfers' chunks and the files' checks
    #: don't take turns on the master's interpreter with SlaveDriver
    own_process = True

    def __init__(self, config):
        super().__init__(config)
        self.output = WebOutput(config.output_path)
        self.incoming = os.path.join(self.output.root, INCOMING)
        self.max_file_size = config.max_file_size
        self.max_attempts = config.transfer_retries + 1
        self.file_queue = self.socket(
            transport.ROUTER, protocol=protocols.file_juggler_files,
            large_frames=True)
        self.file_queue.hwm = 1000
        self.file_queue.bind(config.file_queue)
        self.fs_queue = self.socket(
            transport.ROUTER, protocol=protocols.file_juggler_fs)
        self.fs_queue.bind(config.fs_queue)
        self.stats_queue = self.socket(
            transport.PUSH, protocol=protocols.big_brother.reversed())
        self.stats_queue.hwm = 10
        self.stats_queue.connect(config.stats_queue)
        self.sync_address = 'inproc://file-syncer-{}'.format(
            next(_syncer_ids))
        self.sync_queue = self.socket(
            transport.PAIR, protocol=protocols.file_juggler_sync)
        self.sync_queue.bind(self.sync_address)
        self.syncer = None
        self.expected = {}     # slave id -> Transfer
        self.by_address = {}   # slave's file queue address -> Transfer
        self.staged = {}       # (slave id, filename) -> staged path
        self.publishing = []   # (address, StagedFile) of PUBLISH requests
        # waiting for the next flush to disk, and those being flushed now
        self.flushing = []
        self.early = {}        # slave id -> address of a HELLO before EXPECT
        self.refused = set()   # slave ids whose EXPECT failed
        # requests first in each cycle: a slave's transfer waits on its
        # EXPECT (and an importer's SENT on CHECK), behind a whole cycle of
        # chunks otherwise
        self.register(self.fs_queue, self.handle_fs_request)
        self.register(self.file_queue, self.handle_file)
        self.register(self.sync_queue, self.handle_synced)
        self.every(timedelta(seconds=1), self.refetch_lost)
        self.every(timedelta(seconds=1), self.check_syncer)
        self.every(timedelta(seconds=10), self.send_disk_usage)

    def once(self):
        """Prepare ``.incoming/``, clear what a crash left there, and start
        the :class:`FileSyncer`."""
        os.makedirs(self.incoming, mode=0o700, exist_ok=True)
        os.chmod(self.incoming, 0o700)
        self.recover()
        self.syncer = FileSyncer(self.config, self.sync_address,
                                 self.incoming)
        self.syncer.start()

    def close(self):
        for transfer in self.expected.values():
            transfer.state.rollback()
        if self.syncer is not None:
            self.syncer.quit()
            self.syncer.join(10)
        super().close()

    def check_syncer(self):
        """Stop (a bug) if the FileSyncer died: PUBLISH would never be
        answered."""
        if self.syncer is not None and not self.syncer.is_alive():
            raise RuntimeError('FileSyncer stopped: {!r}'.format(
                self.syncer.failure))

    # -- crash recovery -------------------------------------------------------

    def recover(self):
        """Remove unfinished transfers; publish staged files the database
        recorded with the same hash and remove the others."""
        staged = []
        for name in sorted(os.listdir(self.incoming)):
            path = os.path.join(self.incoming, name)
            if name.endswith('.staged'):
                staged.append((path, name))
            else:
                self.logger.warning(
                    'FileJuggler: removing unfinished transfer %s', name)
                _unlink(path)
        if not staged:
            return
        try:
            db = Database(self.config.dsn)
        except DatabaseError as exc:
            self.logger.error('FileJuggler: cannot recover the staged files '
                              '(%s); kept for the next start', exc)
            return
        try:
            for path, name in staged:
                self.recover_staged(db, path, name)
        finally:
            db.close()

    def recover_staged(self, db, path, name):
        try:
            slave_id, package, filename = name[:-len('.staged')].split('~')
            known = db.get_package_files(package).get(filename)
        except (ValueError, PiwheelsError) as exc:
            self.logger.error('FileJuggler: cannot recover %s (%s); kept for '
                              'the next start', name, exc)
            return
        if known is not None and known == file_sha256(path):
            self.logger.warning('FileJuggler: publishing %s, recorded before '
                                'the master stopped', filename)
            fsync_file(path)
            self.move_into_place(path, package, filename)
        else:
            self.logger.warning('FileJuggler: removing %s, staged but never '
                                'recorded', filename)
            _unlink(path)

    # -- the file queue -------------------------------------------------------

    def handle_file(self, queue, limit=64):
        """Handle file-transfer messages from slaves (up to *limit* waiting
        ones per call, so a busy transfer cannot starve the other queues)."""
        for address, msg, data in self.waiting(queue, limit, addressed=True):
            transfer = self.by_address.get(address)
            try:
                if msg == 'HELLO':
                    self.new_transfer(address, data)
                elif transfer is None:
                    raise TransferIgnoreChunk(
                        'CHUNK from an unknown peer ignored (no HELLO, or its '
                        'transfer was dropped)')
                else:
                    self.current_transfer(transfer, data)
            except TransferError as exc:
                self.logger.warning('FileJuggler: %s', exc)
                if transfer is not None and transfer.failed:
                    self.fail(transfer)

    def new_transfer(self, address, slave_id):
        """A slave greets us (first, or again after losing messages): bind
        its address to the file it is expected to send and start (or
        restart) fetching.

        SlaveDriver tells the slave to SEND without waiting for the EXPECT it
        sent us, so a HELLO may come first: it is kept until the EXPECT
        arrives. A slave whose file was refused is told DONE (its SENT then
        fails to verify and the build fails).
        """
        if slave_id in self.refused:
            self.refused.discard(slave_id)
            self.file_queue.send_addr_msg(address, 'DONE')
            raise TransferError('HELLO from slave {}, whose file was refused; '
                                'told DONE'.format(slave_id))
        transfer = self.expected.get(slave_id)
        if transfer is None or transfer.failed:
            if len(self.early) >= MAX_EARLY_HELLOS:
                self.early.pop(next(iter(self.early)))
            self.early[slave_id] = address
            # the usual race, not a fault: no warning
            self.logger.info('FileJuggler: HELLO from slave %d, which has no '
                             'file to send (yet); kept until its file is '
                             'expected', slave_id)
            return
        if transfer.address not in (None, address):
            self.by_address.pop(transfer.address, None)
        elif transfer.address is not None:
            # the slave lost our FETCHes (or its CHUNKs were lost)
            transfer.state.reset_credit()
        transfer.address = address
        self.by_address[address] = transfer
        transfer.last_heard = time.monotonic()
        self.send_fetches(transfer)

    def current_transfer(self, transfer, chunk):
        """A CHUNK for a transfer in progress: write it, then ask for more
        or say DONE.

        :raises TransferError: for a chunk outside the file (it is counted
            as a refetch).
        """
        transfer.last_heard = time.monotonic()
        try:
            transfer.state.chunk(chunk.offset, chunk.data)
        except TransferError as exc:
            transfer.refetch()
            raise TransferError('slave {}: {}; ignored'.format(
                transfer.slave_id, exc)) from None
        self.send_fetches(transfer)

    def send_fetches(self, transfer):
        """FETCH what the pipeline has credit for; DONE when all arrived."""
        if transfer.state.done:
            if transfer.stager is not None:
                self.stage(transfer)
            self.send(transfer, 'DONE')
            return
        for fetch in transfer.fetches():
            self.send(transfer, 'FETCH', fetch)

    def send(self, transfer, msg, data=protocols.NoData):
        try:
            self.file_queue.send_addr_msg(transfer.address, msg, data)
        except TransportError as exc:
            self.logger.warning('FileJuggler: slave %d: %s',
                                transfer.slave_id, exc)

    def refetch_lost(self):
        """Ask again for the chunks of transfers that went quiet."""
        limit = time.monotonic() - FETCH_TIMEOUT.total_seconds()
        for transfer in list(self.by_address.values()):
            if transfer.state.done or transfer.last_heard > limit:
                continue
            try:
                transfer.refetch()
            except TransferError as exc:
                self.logger.warning('FileJuggler: %s', exc)
                self.fail(transfer)
                continue
            self.logger.warning(
                'FileJuggler: transfer of %s from slave %d went quiet; asking '
                'again', transfer.file.filename, transfer.slave_id)
            transfer.last_heard = time.monotonic()
            transfer.state.reset_credit()
            self.send_fetches(transfer)

    def fail(self, transfer):
        """Give up on *transfer*: tell the slave DONE so it stops sending;
        its SENT then fails to verify and the build fails."""
        self.logger.error('FileJuggler: transfer of %s from slave %d failed',
                          transfer.file.filename, transfer.slave_id)
        self.send(transfer, 'DONE')
        self.by_address.pop(transfer.address, None)
        transfer.address = None
        transfer.failed = True
        if transfer.stager is not None:
            self.stage(transfer)

    # -- the fs queue ---------------------------------------------------------

    def handle_fs_request(self, queue, limit=100):
        """Answer the requests waiting from :class:`FsClient` instances and
        SlaveDriver (up to *limit*). PUBLISH requests wait for the
        :class:`FileSyncer` to flush their files to disk, together, before
        they are renamed into place and answered."""
        for address, msg, data in self.waiting(queue, limit, addressed=True):
            if msg == 'PUBLISH':
                self.publishing.append((address, data))
                continue
            if msg == 'STAGE':
                self.do_stage(address, data)
                continue
            self.answer(address, msg, getattr(self, 'do_' + msg.lower()),
                        data)
        if self.publishing and not self.flushing:
            self.flush()

    def answer(self, address, msg, handler, *args):
        """Reply to request *msg* from *address* with what *handler(*args)*
        returns, or with the error it raised."""
        try:
            reply = handler(*args)
        except TransferRetry as exc:
            self.reply(address, 'RETRY', str(exc)[:2000])
        except (PiwheelsError, OSError) as exc:
            self.logger.error('FileJuggler: %s failed: %s', msg, exc)
            self.reply(address, 'ERROR', str(exc)[:2000] or msg)
        else:
            self.reply(address, msg, reply)

    def reply(self, address, msg, data=protocols.NoData):
        """Send a reply on the fs queue (a requester gone meanwhile is only
        logged)."""
        try:
            self.fs_queue.send_addr_msg(address, msg, data)
        except TransportError as exc:
            self.logger.warning('FileJuggler: %s', exc)

    def flush(self):
        """Have the FileSyncer flush the staged files of the waiting PUBLISH
        requests to disk (:meth:`handle_synced` publishes them)."""
        self.flushing, self.publishing = self.publishing, []
        paths = [
            self.staged[key] for key in (
                (staged.slave_id, staged.filename)
                for address, files in self.flushing for staged in files)
            if key in self.staged]
        self.sync_queue.send_msg('SYNC', paths)

    def handle_synced(self, queue):
        """The files of the PUBLISH requests being flushed are on disk: move
        each into place and answer it; flush the next lot."""
        msg, data = queue.recv_msg()
        requests, self.flushing = self.flushing, []
        for address, files in requests:
            if msg == 'ERROR':
                self.logger.error('FileJuggler: PUBLISH of %d files failed: '
                                  '%s', len(files), data)
                self.reply(address, 'ERROR', data)
            else:
                self.answer(address, 'PUBLISH', self.do_publish, files)
        if self.publishing:
            self.flush()

    def do_expect(self, expect):
        """Prepare to receive *expect.file* from slave *expect.slave_id*
        (replacing any transfer that slave had).

        :raises TransferError: if the file is over the size cap.
        """
        slave_id = expect.slave_id
        self.do_abort(slave_id)
        self.refused.discard(slave_id)
        try:
            self.expected[slave_id] = Transfer(
                slave_id, expect.file, self.incoming, self.max_file_size)
        except (TransferError, OSError):
            address = self.early.pop(slave_id, None)
            if address is None:
                self.refused.add(slave_id)
            else:
                self.file_queue.send_addr_msg(address, 'DONE')
            raise
        address = self.early.pop(slave_id, None)
        if address is not None:
            self.new_transfer(address, slave_id)
        return protocols.NoData

    def do_abort(self, slave_id):
        """Drop slave *slave_id*'s transfer, if any."""
        transfer = self.expected.pop(slave_id, None)
        if transfer is not None:
            self.by_address.pop(transfer.address, None)
            transfer.state.rollback()
        return protocols.NoData

    def _verified(self, verify):
        """Return the complete, verified transfer of *verify.slave_id*,
        forgotten (its file still held by ``transfer.state``).

        :raises TransferRetry: the file must be sent again.
        :raises TransferError: it failed too often, or there's none.
        """
        canonicalize(verify.package)
        transfer = self.expected.get(verify.slave_id)
        if transfer is None:
            raise TransferError('slave {} has no transfer to verify'.format(
                verify.slave_id))
        try:
            if transfer.failed:
                raise TransferError('too many chunks lost or refused')
            transfer.state.verify()
        except TransferError as exc:
            if transfer.attempts < self.max_attempts and not transfer.failed:
                transfer.restart()
                raise TransferRetry(
                    '{} from slave {} did not verify ({}); sending it again '
                    '(attempt {} of {})'.format(
                        transfer.file.filename, verify.slave_id, exc,
                        transfer.attempts, self.max_attempts)) from None
            self.do_abort(verify.slave_id)
            raise TransferError(
                '{} from slave {} did not verify ({}); giving up after {} '
                'attempts'.format(transfer.file.filename, verify.slave_id,
                                  exc, transfer.attempts)) from None
        del self.expected[verify.slave_id]
        self.by_address.pop(transfer.address, None)
        return transfer

    def do_verify(self, verify):
        """Verify slave *verify.slave_id*'s file and publish it at once (a
        published file of that name with other bytes stays, and this is an
        error)."""
        transfer = self._verified(verify)
        transfer.state.commit(self.output.simple_dir(verify.package))
        return protocols.NoData

    def do_check(self, verify):
        """Verify slave *verify.slave_id*'s file and stage it until PUBLISH
        or DISCARD."""
        transfer = self._verified(verify)
        key = (verify.slave_id, transfer.file.filename)
        path = os.path.join(self.incoming, '{}~{}~{}.staged'.format(
            verify.slave_id, verify.package, transfer.file.filename))
        transfer.state.stage(path)
        # not synced yet: a staged file is only published after the
        # database recorded it (and synced then), and crash recovery checks
        # its hash again
        self.staged[key] = path
        return protocols.NoData

    def do_stage(self, address, stage):
        """Expect *stage.file* from slave *stage.slave_id* (as
        :meth:`do_expect`; the same file again, after a RETRY, keeps its
        transfer), verify and stage it as :meth:`do_check` once the transfer
        is complete, and answer *address* then with a
        :class:`~piwheels.protocols.StageOutcome`."""
        transfer = self.expected.get(stage.slave_id)
        if transfer is None or transfer.file != stage.file:
            try:
                self.do_expect(protocols.ExpectFile(stage.slave_id,
                                                    stage.file))
            except (PiwheelsError, OSError) as exc:
                self.logger.error('FileJuggler: STAGE failed: %s', exc)
                self.reply(address, 'STAGE', protocols.StageOutcome(
                    stage.slave_id, stage.package, stage.file.filename,
                    'ERROR', str(exc)[:2000] or 'STAGE failed'))
                return
            transfer = self.expected[stage.slave_id]
        transfer.stager = (address, protocols.VerifyFile(stage.slave_id,
                                                         stage.package))
        if transfer.state.done or transfer.failed:
            self.stage(transfer)

    def stage(self, transfer):
        """Answer the STAGE waiting on *transfer*, which has ended."""
        (address, verify), transfer.stager = transfer.stager, None
        try:
            self.do_check(verify)
        except TransferRetry as exc:
            outcome, reason = 'RETRY', str(exc)
        except (PiwheelsError, OSError) as exc:
            self.logger.error('FileJuggler: STAGE failed: %s', exc)
            outcome, reason = 'ERROR', str(exc) or 'STAGE failed'
        else:
            outcome, reason = 'STAGED', None
        self.reply(address, 'STAGE', protocols.StageOutcome(
            verify.slave_id, verify.package, transfer.file.filename, outcome,
            reason and reason[:2000]))

    def do_publish(self, files):
        """Move staged files (already flushed to disk by the FileSyncer)
        into the output.

        :raises TransferError: naming those that could not be (the others
            are published).
        """
        problems = []
        for staged in files:
            path = self.staged.pop((staged.slave_id, staged.filename), None)
            if path is None:
                problems.append('{} from slave {} is not staged'.format(
                    staged.filename, staged.slave_id))
                continue
            try:
                self.move_into_place(path, staged.package, staged.filename)
            except (PiwheelsError, OSError) as exc:
                problems.append('{}: {}'.format(staged.filename, exc))
        if problems:
            raise TransferError('; '.join(problems))
        return protocols.NoData

    def do_discard(self, files):
        """Delete staged files."""
        for staged in files:
            path = self.staged.pop((staged.slave_id, staged.filename), None)
            if path is not None:
                _unlink(path)
        return protocols.NoData

    def do_remove(self, remove):
        """Delete a published wheel."""
        _unlink(self.output.wheel_path(remove.package, remove.filename))
        return protocols.NoData

    def do_statvfs(self, data):
        """Return the output file-system's size and free space."""
        return self.disk_usage()

    def move_into_place(self, path, package, filename):
        """Rename the complete, verified file at *path* to
        ``simple/<package>/<filename>`` (one atomic rename; a file of that
        name there is replaced: the database said this one is the file)."""
        target = self.output.wheel_path(package, filename)
        self.output.make_dir(os.path.dirname(target))
        os.chmod(path, 0o644)
        os.rename(path, target)
        self.logger.info('FileJuggler: published %s', filename)

    def disk_usage(self):
        stat = os.statvfs(self.output.root)
        return DiskUsage(stat.f_frsize * stat.f_blocks,
                         stat.f_frsize * stat.f_bavail)

    def send_disk_usage(self):
        """Tell BigBrother how full the output is."""
        try:
            self.stats_queue.send_msg('STATFS', self.disk_usage(),
                                      transport.NOBLOCK)
        except transport.Again:
            pass


class FileSyncer(NonStopTask):
    """Flushes staged files to disk for a :class:`FileJuggler` (a flush can
    take tens of milliseconds on a busy disk, which the juggler spends
    answering slaves instead).

    Queues:

    * ``sync_queue``: PAIR, connects the juggler's
      (:data:`~piwheels.protocols.file_juggler_sync`): each SYNC is answered
      with SYNCED once its files are on disk, or ERROR.

    :param str address: the juggler's sync queue.
    :param str incoming: the juggler's ``.incoming/`` directory (its file
        system is synced whole when there are many files).
    """

    def __init__(self, config, address, incoming):
        super().__init__(config)
        self.incoming = incoming
        self.sync_queue = self.socket(
            transport.PAIR, protocol=protocols.file_juggler_sync.reversed())
        self.sync_queue.connect(address)
        self.register(self.sync_queue, self.handle_sync)

    def handle_sync(self, queue):
        """Flush the files of a SYNC: a fsync each for a few, one syncfs for
        many."""
        msg, paths = queue.recv_msg()
        try:
            flush_to_disk(paths, self.incoming, SYNC_EACH_LIMIT)
        except OSError as exc:
            queue.send_msg('ERROR', 'unable to flush staged files to disk: '
                           '{}'.format(exc)[:2000])
        else:
            queue.send_msg('SYNCED')


class FsClient(RpcClient):
    """RPC client of :class:`FileJuggler`, for SlaveDriver and MrChase.

    Each method raises :exc:`TransferError` when the juggler reports an
    error, and :exc:`TransferRetry` when a file must be sent again.
    """

    def __init__(self, config, logger=None):
        super().__init__(config.fs_queue, protocols.file_juggler_fs,
                         {'ERROR': TransferError, 'RETRY': TransferRetry},
                         logger)

    def expect(self, slave_id, file_state):
        """Say slave *slave_id* is about to send *file_state* (a
        :class:`~piwheels.protocols.BuiltFile`)."""
        self._call('EXPECT', protocols.ExpectFile(slave_id, file_state))

    def verify(self, slave_id, package):
        """Verify slave *slave_id*'s transfer and publish it in *package*'s
        directory."""
        self._call('VERIFY', protocols.VerifyFile(slave_id, package))

    def check(self, slave_id, package):
        """Verify slave *slave_id*'s transfer and stage it."""
        self._call('CHECK', protocols.VerifyFile(slave_id, package))

    def publish(self, files):
        """Publish files staged by :meth:`check` (a list of
        :class:`~piwheels.protocols.StagedFile`)."""
        self._call('PUBLISH', list(files))

    def discard(self, files):
        """Delete files staged by :meth:`check` (a list of
        :class:`~piwheels.protocols.StagedFile`)."""
        self._call('DISCARD', list(files))

    def abort(self, slave_id):
        """Drop slave *slave_id*'s transfer (it has gone)."""
        self._call('ABORT', slave_id)

    def remove(self, package, filename):
        """Delete the published wheel *filename* of *package*."""
        self._call('REMOVE', protocols.RemoveFile(package, filename))

    def statvfs(self):
        """Return the output's :class:`~piwheels.protocols.DiskUsage`."""
        return self._call('STATVFS')
