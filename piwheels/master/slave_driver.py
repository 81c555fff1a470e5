"""SlaveDriver: hands builds to the build slaves, collects their results and wheels, and records them.

Slaves drive the conversation (:data:`~piwheels.protocols.slave_driver`, a
strict request/reply): HELLO is answered with ACK (or DIE when the slave
runs another piwheels or protocol version), IDLE with BUILD or SLEEP, BUSY
with CONT (or DONE to abandon the build), BUILT with SEND for each wheel
(transferred to FileJuggler) or DONE, SENT with the next SEND or DONE, and
any request with DIE once an operator killed the slave.

No reply waits for another task: FileJuggler is asked asynchronously (the
slave waiting on it is answered when it has answered), and finished builds
are recorded in batches
over an asynchronous queue (one LOGBUILDS in flight at a time; those that
finish meanwhile make the next batch), and their wheels, verified and
staged by FileJuggler, are published once the database has said whether
each file is new, a duplicate, or a conflict with a published file.

A version is never handed to two slaves at once, nor again while its build
is being recorded, nor while the queue from TheArchitect may predate its
record. A build that failed for a transient reason comes back in the queue
(the database counts the attempts) and goes preferably to another slave.
"""

import re
import time
from collections import deque
from datetime import timedelta

from .. import __version__, protocols, transport
from ..exc import TransportError
from ..protocols import NoData, PROTOCOL_VERSION
from ..states import SlaveState, utcnow
from ..tasks import PausingTask, TaskControl

#: failures worth another attempt, preferably on another slave
TRANSIENT_FAILURES = frozenset({'killed', 'disk', 'network'})

#: a build may overrun its (clamped) build timeout by this much before the
#: master abandons it
BUILD_GRACE = timedelta(minutes=1)

#: the most characters of build logs in one request to TheSecretary (a
#: request holds at least one build's, whatever its size)
WEB_BATCH_OUTPUT = 8 * 1024 * 1024


class SlaveDriver(PausingTask):
    """Coordinates the build slaves.

    Queues:

    * ``slave_queue``: ROUTER, binds ``config.slave_queue``
      (:data:`~piwheels.protocols.slave_driver`), from piw-slave (REQ);
    * ``builds_queue``: PULL, binds ``config.builds_queue``
      (:data:`~piwheels.protocols.the_architect`), from TheArchitect;
    * ``delete_queue``: PULL, binds ``config.deletions_queue``
      (:data:`~piwheels.protocols.slave_driver_deletions`);
    * ``db_queues``: DEALERs (one per TheOracle but one), connect
      ``config.db_queue``
      (:data:`~piwheels.protocols.the_oracle`): LOGBUILDS, asynchronously,
      one batch in flight on each;
    * ``status_queue``: PUSH, connects ``config.int_status_queue``
      (:data:`~piwheels.protocols.master_status`): every message to and from
      a slave, for the monitors;
    * ``web_queue``: PUSH, connects ``config.web_queue``
      (:data:`~piwheels.protocols.the_secretary`): BUILDS, the logs and
      pages of each batch of recorded builds;
    * ``stats_queue``: PUSH, connects ``config.stats_queue``
      (:data:`~piwheels.protocols.big_brother`): queue sizes and slaves;
    * ``fs_queue``: DEALER, connects ``config.fs_queue``
      (:data:`~piwheels.protocols.file_juggler_fs`): requests to FileJuggler,
      asynchronously (it answers in order, but STAGE when the transfer
      ends, naming the slave: a slave whose SENT waits on one is answered
      then);
    * ``publish_queue``: DEALER, connects ``config.fs_queue``
      (:data:`~piwheels.protocols.file_juggler_fs`): PUBLISH requests, which
      FileJuggler answers once their files are on disk (after answers to
      later requests of the fs queue).

    While paused it still answers every slave (IDLE gets SLEEP).
    """

    def __init__(self, config):
        super().__init__(config, protocols.slave_driver_control)
        self.pypi_simple = config.pypi_simple
        self.max_build_timeout = config.max_build_timeout
        self.slave_timeout = config.slave_timeout
        self.max_file_size = config.max_file_size
        self.slave_queue = self.socket(
            transport.ROUTER, protocol=protocols.slave_driver)
        self.slave_queue.hwm = 10000
        self.slave_queue.bind(config.slave_queue)
        self.builds_queue = self.socket(
            transport.PULL, protocol=protocols.the_architect)
        self.builds_queue.hwm = 10
        self.builds_queue.bind(config.builds_queue)
        self.delete_queue = self.socket(
            transport.PULL, protocol=protocols.slave_driver_deletions)
        self.delete_queue.bind(config.deletions_queue)
        # one queue per batch in flight, so each reply is known by the
        # queue it comes back on; one TheOracle is left for the other
        # tasks' requests (TheArchitect's above all)
        self.db_queues = []
        for _ in range(max(1, config.oracles - 1)):
            queue = self.socket(
                transport.DEALER, protocol=protocols.the_oracle.reversed())
            queue.connect(config.db_queue)
            self.db_queues.append(queue)
            self.register(queue, self.handle_db_reply)
        self.recording = {}       # db queue -> the batch it is recording
        self.status_queue = self.socket(
            transport.PUSH, protocol=protocols.master_status.reversed())
        self.status_queue.hwm = 100000
        self.status_queue.connect(config.int_status_queue)
        self.web_queue = self.socket(
            transport.PUSH, protocol=protocols.the_secretary.reversed())
        self.web_queue.hwm = 100000
        self.web_queue.connect(config.web_queue)
        self.stats_queue = self.socket(
            transport.PUSH, protocol=protocols.big_brother.reversed())
        self.stats_queue.hwm = 10
        self.stats_queue.connect(config.stats_queue)
        self.fs_queue = self.socket(
            transport.DEALER, protocol=protocols.file_juggler_fs.reversed())
        self.fs_queue.hwm = 100000
        self.fs_queue.connect(config.fs_queue)
        self.publish_queue = self.socket(
            transport.DEALER, protocol=protocols.file_juggler_fs.reversed())
        self.publish_queue.hwm = 100000
        self.publish_queue.connect(config.fs_queue)
        # what to do with each FileJuggler reply, by queue
        self.fs_pending = {self.fs_queue: deque(), self.publish_queue: deque()}
        # files being sent: slave id -> Transfer, from SEND until SENT is
        # answered
        self.transfers = {}
        self.slaves = {}          # address -> SlaveState
        self.hellos = {}          # address -> the slave's SlaveHello
        self.queues = {}          # ABI -> deque of PackageVersion
        self.active = {}          # (package, version) -> SlaveState, or
        # self.unrecorded while the finished build is being recorded
        self.building = {}        # slave id -> its (package, version)
        self.unrecorded = []      # finished builds waiting for the database
        self.recorded = {}        # (package, version) -> when it was recorded
        self.failed_on = {}       # (package, version, abi) -> slave labels
        self.sleeping = set()     # slave ids told to sleep
        self.skipping = set()     # slave ids whose build is abandoned
        self.last_build = None
        self.web_dropped = 0
        # whether each message to and from a slave is reported to the
        # monitors (not while none listens: it costs as much as the rest
        # of a build's handling)
        self.reporting = True
        # FileJuggler's answers first in each cycle: slaves that said SENT
        # wait for them, behind the requests of a whole cycle otherwise
        self.register(self.fs_queue, self.handle_fs_reply)
        self.register(self.publish_queue, self.handle_fs_reply)
        self.register(self.slave_queue, self.handle_slave)
        self.register(self.builds_queue, self.handle_build)
        self.register(self.delete_queue, self.handle_delete)
        self.every(timedelta(seconds=5), self.remove_expired)
        self.every(timedelta(seconds=10), self.send_stats)

    # -- control ---------------------------------------------------------------

    def kill_slave(self, slave_id):
        """Tell slave *slave_id* (None: every slave) DIE at its next
        request."""
        self.send_control('KILL', slave_id)

    def skip_slave(self, slave_id):
        """Abandon slave *slave_id*'s current build."""
        self.send_control('SKIP', slave_id)

    def sleep_slave(self, slave_id):
        """Stop giving slave *slave_id* (None: every slave) work."""
        self.send_control('SLEEP', slave_id)

    def wake_slave(self, slave_id):
        """Give slave *slave_id* (None: every slave) work again."""
        self.send_control('WAKE', slave_id)

    def list_slaves(self):
        """Replay every slave's HELLO (and its latest reply) to the
        monitors, and report each message again if :meth:`stop_reporting`
        stopped it."""
        self.send_control('HELLO')

    def stop_reporting(self):
        """Stop reporting each message to and from the slaves to the
        monitors (none is listening) until the next :meth:`list_slaves`."""
        self.send_control('QUIET')

    def handle_control(self, queue):
        """Handle PAUSE/RESUME/QUIT, the monitors' KILL, SKIP, SLEEP, WAKE
        and HELLO, and QUIET."""
        try:
            super().handle_control(queue)
        except TaskControl as ctrl:
            if ctrl.msg == 'HELLO':
                self.reporting = True
                self.replay_slaves()
                return
            if ctrl.msg == 'QUIET':
                self.reporting = False
                return
            targets = [
                slave for slave in self.slaves.values()
                if ctrl.data is None or slave.slave_id == ctrl.data]
            if not targets:
                self.logger.warning('SlaveDriver: %s: no slave %s', ctrl.msg,
                                    ctrl.data)
            for slave in targets:
                if ctrl.msg == 'KILL':
                    slave.kill()
                elif ctrl.msg == 'SKIP':
                    self.skipping.add(slave.slave_id)
                elif ctrl.msg == 'SLEEP':
                    self.sleeping.add(slave.slave_id)
                else:
                    self.sleeping.discard(slave.slave_id)

    def replay_slaves(self):
        """Tell the monitors each slave's HELLO, the build it is on (when it
        began), its last statistics (when they came) and the last reply,
        so a monitor that just arrived sees what the others see."""
        for address, slave in self.slaves.items():
            self.status(slave, 'HELLO', self.hellos[address])
            last_reply = slave.reply[0] if slave.reply else None
            if slave.build_request is not None and last_reply != 'BUILD':
                self.status(slave, 'BUILD', slave.build_request,
                            slave.build_started)
            if slave.request is not None and slave.request[0] in (
                    'IDLE', 'BUSY'):
                self.status(slave, *slave.request, at=slave.last_seen)
            if slave.reply is not None:
                self.status(slave, *slave.reply)

    def handle_paused(self, queue):
        """While paused the slaves are still answered (IDLE gets SLEEP) and
        the other queues still drained."""
        handler = {
            self.slave_queue: self.handle_slave,
            self.builds_queue: self.handle_build,
            self.delete_queue: self.handle_delete,
            self.fs_queue: self.handle_fs_reply,
            self.publish_queue: self.handle_fs_reply,
        }.get(queue, self.handle_db_reply)
        self._call(handler, queue)

    # -- the build queue -------------------------------------------------------

    def handle_build(self, queue):
        """Replace the per-ABI build queues with TheArchitect's latest
        (builds recorded since its query began stay out of it)."""
        msg, build_queue = queue.recv_msg()
        now = time.monotonic()
        cutoff = now - (utcnow() - build_queue.queried_at).total_seconds()
        self.recorded = {
            key: when for key, when in self.recorded.items() if when >= cutoff}
        self.queues = {
            abi: deque(versions) for abi, versions in build_queue.queue.items()}
        self.logger.debug('SlaveDriver: build queue refreshed: %s', ', '.join(
            '{} {}'.format(len(versions), abi)
            for abi, versions in self.queues.items()))
        queued = {
            (entry.package, entry.version, abi)
            for abi, versions in build_queue.queue.items()
            for entry in versions}
        self.failed_on = {
            key: labels for key, labels in self.failed_on.items()
            if key in queued}

    def handle_delete(self, queue):
        """Forget queued builds of a deleted package or version."""
        msg, data = queue.recv_msg()
        if msg == 'DELPKG':
            def gone(entry):
                return entry.package == data
        else:
            def gone(entry):
                return entry == data
        for abi, versions in self.queues.items():
            self.queues[abi] = deque(
                entry for entry in versions if not gone(entry))

    def next_job(self, slave):
        """Return the next version for *slave* to build, or None.

        Versions being built or recorded are dropped from the queue; one
        this slave failed on for a transient reason is left for another
        slave of the same ABI, if there is one.
        """
        versions = self.queues.get(slave.native_abi)
        if not versions:
            return None
        others = any(
            other is not slave and other.native_abi == slave.native_abi
            for other in self.slaves.values())
        passed = []
        job = None
        while versions:
            entry = versions.popleft()
            key = (entry.package, entry.version)
            if key in self.active or key in self.recorded:
                continue
            failed_on = self.failed_on.get(key + (slave.native_abi,), ())
            if others and slave.label in failed_on:
                passed.append(entry)
                continue
            job = entry
            break
        versions.extendleft(reversed(passed))
        return job

    # -- the slaves -------------------------------------------------------------

    def handle_slave(self, queue, limit=100):
        """Answer the requests waiting from slaves (up to *limit* per call,
        so the other queues are not starved)."""
        for _ in range(limit):
            try:
                frames = queue.recv_multipart(transport.NOBLOCK)
            except transport.Again:
                return
            address = frames[0]
            try:
                msg, data = transport.decode(frames[-1])
                data = protocols.slave_driver.check('recv', msg, data)
            except protocols.ProtocolError as exc:
                self.invalid_request(address, exc)
            else:
                self.handle_request(address, msg, data)

    def invalid_request(self, address, exc):
        """A slave sent a message that breaks the protocol (a filename with
        a path, a field of the wrong type...): it is told DONE, so it drops
        whatever it was doing and asks for work again, and the version it
        was building goes back in the queue."""
        self.protocol_errors += 1
        slave = self.slaves.get(address)
        if slave is None:
            self.logger.error('SlaveDriver: invalid message from an unknown '
                              'slave ignored: %s', exc)
            return
        self.logger.error('SlaveDriver: slave %d sent an invalid message; '
                          'its build is abandoned: %s', slave.slave_id, exc)
        slave.last_seen = utcnow()
        self.drop_build(slave)
        try:
            self.slave_queue.send_addr_msg(address, 'DONE')
        except TransportError as exc:
            self.logger.warning('SlaveDriver: %s', exc)
            return
        slave.sent('DONE', NoData)
        self.status(slave, 'DONE', NoData)

    def handle_request(self, address, msg, data):
        slave = self.slaves.get(address)
        if msg == 'HELLO':
            reply = self.do_hello(address, data)
            slave = self.slaves.get(address)
        elif slave is None:
            self.logger.warning(
                'SlaveDriver: %s from an unknown slave ignored (the master '
                'restarted?); it will start again from HELLO', msg)
            return
        else:
            slave.received(msg, data)
            self.status(slave, msg, data)
            if slave.killed and msg != 'BYE':
                reply = ('DIE', '')
            else:
                reply = getattr(self, 'do_{}'.format(msg.lower()))(slave)
        if reply is None:
            return
        action, reply_data = reply
        try:
            self.slave_queue.send_addr_msg(address, action, reply_data)
        except TransportError as exc:
            self.logger.warning('SlaveDriver: %s', exc)
            return
        if slave is not None:
            slave.sent(action, reply_data)
            self.status(slave, action, reply_data)

    def do_hello(self, address, hello):
        """A slave (re)starts: welcome it with ACK, or send DIE when it runs
        other software."""
        if (hello.protocol_version != PROTOCOL_VERSION
                or hello.piwheels_version != __version__):
            reason = (
                'the master runs piwheels {} (protocol {}) but this slave '
                'runs piwheels {} (protocol {}); upgrade it'.format(
                    __version__, PROTOCOL_VERSION, hello.piwheels_version,
                    hello.protocol_version))
            self.logger.error('SlaveDriver: rejecting slave %s: %s',
                              hello.label, reason)
            return 'DIE', reason[:1000]
        if address in self.slaves:
            self.forget(self.slaves[address], 'started again')
        slave = SlaveState.from_hello(address, hello, self.slave_timeout,
                                      self.max_build_timeout)
        self.slaves[address] = slave
        self.hellos[address] = hello
        self.logger.warning(
            'SlaveDriver: slave %d (%s, %s on %s) connected', slave.slave_id,
            slave.label, slave.native_abi, slave.native_platform)
        self.status(slave, 'HELLO', hello)
        return 'ACK', protocols.SlaveAck(slave.slave_id, self.pypi_simple,
                                         slave.build_timeout)

    def do_idle(self, slave):
        """The slave wants work: BUILD the next version for its ABI, or
        SLEEP."""
        self.release(slave)
        if self.paused or slave.slave_id in self.sleeping:
            return 'SLEEP', NoData
        job = self.next_job(slave)
        if job is None:
            return 'SLEEP', NoData
        self.active[tuple(job)] = slave
        self.building[slave.slave_id] = tuple(job)
        self.logger.info('SlaveDriver: slave %d: build %s %s',
                         slave.slave_id, job.package, job.version)
        return 'BUILD', protocols.BuildRequest(job.package, job.version)

    def do_busy(self, slave):
        """The slave is still building: CONT, or DONE to abandon a build an
        operator skipped or that overran its time."""
        if slave.slave_id in self.skipping:
            self.skipping.discard(slave.slave_id)
            self.logger.warning('SlaveDriver: slave %d: build skipped on '
                                'request', slave.slave_id)
            return 'DONE', NoData
        if (slave.build_started is not None and utcnow() - slave.build_started
                > slave.build_timeout + BUILD_GRACE):
            self.logger.error(
                'SlaveDriver: slave %d: build of %s %s overran its %s '
                'timeout; abandoned', slave.slave_id,
                slave.build_request.package, slave.build_request.version,
                slave.build_timeout)
            return 'DONE', NoData
        return 'CONT', NoData

    def do_built(self, slave):
        """The build finished: record a failure (DONE), or ask for the first
        wheel (SEND)."""
        build = slave.build
        if build is None:
            self.logger.error('SlaveDriver: slave %d sent BUILT without a '
                              'build; ignored', slave.slave_id)
            return 'DONE', NoData
        self.last_build = utcnow()
        problem = self.check_files(slave, build)
        if problem is not None:
            self.logger.error('SlaveDriver: slave %d: build of %s %s '
                              'rejected: %s', slave.slave_id, build.package,
                              build.version, problem)
            self.fail(build, 'error', 'rejected by the master: ' + problem)
        if not build.status or not build.files:
            if not build.status:
                self.logger.info('SlaveDriver: slave %d: build of %s %s '
                                 'failed (%s)', slave.slave_id, build.package,
                                 build.version, build.failure or 'error')
            self.finish(slave)
            return 'DONE', NoData
        return self.send_next(slave)

    def check_files(self, slave, build):
        """Return why the files of *build* can't be accepted, or None."""
        package = canonical_name(build.package)
        for file in build.files.values():
            if canonical_name(file.package_tag) != package:
                return '{} is not a wheel of {}'.format(
                    file.filename, build.package)
            if file.abi_tag not in (slave.native_abi, 'none', 'abi3'):
                return '{} is not for ABI {}'.format(
                    file.filename, slave.native_abi)
            if file.filesize > self.max_file_size:
                return '{} is {} bytes, more than the {}-byte limit'.format(
                    file.filename, file.filesize, self.max_file_size)
        return None

    def fail(self, build, failure, reason):
        """Turn *build* into a failure of kind *failure*, saying why at the
        end of its log."""
        build.status = False
        build.failure = failure
        build.output = '{}\n[piw-master] {}\n'.format(
            build.output, reason)[-protocols.MAX_BUILD_OUTPUT:]
        self.discard(staged_files(build, transferred_only=True))
        build.files.clear()

    def send_next(self, slave):
        """Ask for the build's next wheel (SEND), or finish (DONE).

        FileJuggler is told to expect the file (STAGE) without waiting for
        its answer: it keeps a HELLO that beats the STAGE, and if it refuses
        the file the transfer ends at once and the build fails.
        """
        filename = slave.build.next_file
        if filename is None:
            self.finish(slave)
            return 'DONE', NoData
        self.stage(slave, filename)
        return 'SEND', filename

    def stage(self, slave, filename):
        """Have FileJuggler expect *filename* from *slave*, and verify and
        stage it as soon as its transfer ends (its answer, a StageOutcome,
        overtakes the others: :meth:`staged` takes it)."""
        self.fs_queue.send_msg('STAGE', protocols.StageFile(
            slave.slave_id, slave.build.package, slave.build.files[filename]))
        self.transfers[slave.slave_id] = Transfer(slave, filename)

    def do_sent(self, slave):
        """The slave sent the wheel asked for: once FileJuggler verified it
        (usually already), SEND the next, SEND it again, or finish."""
        transfer = self.transfers.get(slave.slave_id)
        if slave.build is None or transfer is None:
            self.logger.error('SlaveDriver: slave %d sent SENT with nothing '
                              'to send; ignored', slave.slave_id)
            return 'DONE', NoData
        if transfer.outcome is None:
            transfer.sent = True
            return None
        return self.transferred(slave, transfer.outcome)

    def staged(self, outcome):
        """FileJuggler says how a transfer ended: answer the slave's SENT if
        it waits, else keep the outcome for it (a file staged for a slave
        gone meanwhile is discarded)."""
        transfer = self.transfers.get(outcome.slave_id)
        if transfer is None or outcome.filename != transfer.filename:
            if outcome.outcome == 'STAGED':
                self.discard([protocols.StagedFile(
                    outcome.slave_id, outcome.package, outcome.filename)])
            return
        slave = transfer.slave
        if outcome.outcome == 'STAGED':
            # from now on a dropped build discards it
            slave.build.files[transfer.filename].verified()
        if transfer.sent:
            self.reply(slave, *self.transferred(slave, outcome))
        else:
            transfer.outcome = outcome

    def transferred(self, slave, outcome):
        """Return the reply to the SENT of *slave*, whose transfer ended as
        *outcome* says: SEND the next file, SEND it again, or DONE."""
        build = slave.build
        slave_id = slave.slave_id
        filename = self.transfers.pop(slave_id).filename
        if outcome.outcome == 'RETRY':
            self.logger.warning('SlaveDriver: %s', outcome.reason)
            self.stage(slave, filename)
            return 'SEND', filename
        if outcome.outcome == 'ERROR':
            self.logger.error('SlaveDriver: slave %d: %s', slave_id,
                              outcome.reason)
            self.fail(build, 'network', 'transfer of {} failed: {}'.format(
                filename, outcome.reason))
            self.finish(slave)
            return 'DONE', NoData
        return self.send_next(slave)

    def fs_request(self, msg, data, callback=None):
        """Send a request to FileJuggler (PUBLISH on the publish queue, the
        others on the fs queue); *callback(reply, data)* is called with its
        answer (None: only errors are logged)."""
        queue = self.publish_queue if msg == 'PUBLISH' else self.fs_queue
        queue.send_msg(msg, data)
        self.fs_pending[queue].append((msg, callback))

    def handle_fs_reply(self, queue, limit=100):
        """Act on FileJuggler's answers waiting on *queue* (up to *limit*),
        each to the oldest request unanswered there, STAGE to the slave it
        names (slaves wait on those: taking one a cycle left them queueing
        behind the cycles' requests)."""
        for _ in range(limit):
            try:
                msg, data = queue.recv_msg(transport.NOBLOCK)
            except transport.Again:
                return
            except protocols.ProtocolError as exc:
                msg, data = 'ERROR', str(exc)[:2000]
            if msg == 'STAGE':
                self.staged(data)
                continue
            request, callback = self.fs_pending[queue].popleft()
            if callback is not None:
                callback(msg, data)
            elif msg == 'ERROR':
                self.logger.error('SlaveDriver: %s failed: %s', request, data)

    def reply(self, slave, action, data):
        """Send a reply that had to wait (for FileJuggler) to *slave*, if it
        is still there."""
        if self.slaves.get(slave.address) is not slave:
            return
        try:
            self.slave_queue.send_addr_msg(slave.address, action, data)
        except TransportError as exc:
            self.logger.warning('SlaveDriver: %s', exc)
            return
        slave.sent(action, data)
        self.status(slave, action, data)

    def do_bye(self, slave):
        """The slave is leaving: forget it (no reply)."""
        self.forget(slave, 'left')
        return None

    def status(self, slave, action, data, at=None):
        """Tell the monitors about a message to or from *slave* that passed
        *at* (default: now); a build log is left out: monitors don't show
        it.

        The event is encoded without validating it again: its data is a
        request that passed validation on arrival or a reply that passed it
        on its way out, and this runs for every message of every slave.
        """
        if not self.reporting:
            return
        if action == 'BUILT':
            data = data._replace(output='')
        event = protocols.SlaveEvent(
            slave.slave_id, at or utcnow(), action,
            None if data is NoData else data)
        try:
            self.status_queue.send(transport.encode('SLAVE', event),
                                   transport.NOBLOCK)
        except transport.Again:
            pass

    # -- slaves that finish, leave or die ---------------------------------------

    def release(self, slave):
        """Forget the version *slave* was building (if it didn't finish, it
        will come back in the queue)."""
        key = self.building.pop(slave.slave_id, None)
        if key is not None and self.active.get(key) is slave:
            del self.active[key]

    def drop_build(self, slave):
        """Abandon *slave*'s build: its staged files and transfer are
        dropped and its version goes back in the queue."""
        if slave.build_request is not None:
            self.logger.warning(
                'SlaveDriver: the build of %s %s by slave %d will be retried',
                slave.build_request.package, slave.build_request.version,
                slave.slave_id)
        if slave.build is not None:
            self.discard(staged_files(slave.build, transferred_only=True))
            self.fs_request('ABORT', slave.slave_id)
        self.transfers.pop(slave.slave_id, None)
        self.release(slave)
        slave.build_request = slave.build_started = slave.build = None

    def forget(self, slave, why):
        """Remove *slave*, dropping its build and any transfer."""
        self.logger.warning('SlaveDriver: slave %d (%s) %s', slave.slave_id,
                            slave.label, why)
        self.drop_build(slave)
        self.sleeping.discard(slave.slave_id)
        self.skipping.discard(slave.slave_id)
        del self.slaves[slave.address]
        del self.hellos[slave.address]

    def remove_expired(self):
        """Remove slaves silent for longer than their timeout; their builds
        go to others."""
        now = utcnow()
        for slave in list(self.slaves.values()):
            if slave.expired(now):
                self.forget(slave, 'fell silent; assuming it died')
                self.status(slave, 'BYE', NoData)

    def discard(self, files):
        """Have FileJuggler delete staged *files* (a list of
        :class:`~piwheels.protocols.StagedFile`), if any."""
        if files:
            self.fs_request('DISCARD', files)

    # -- recording builds ---------------------------------------------------------

    def finish(self, slave):
        """Queue the slave's finished build for the database."""
        build = slave.build
        key = (build.package, build.version)
        if not build.status and build.failure in TRANSIENT_FAILURES:
            self.failed_on.setdefault(
                key + (slave.native_abi,), set()).add(slave.label)
        self.unrecorded.append(build)
        self.active[key] = self.unrecorded
        # the build is the database's now: nothing the slave does (leaving,
        # dying) may drop its staged files
        slave.build_request = slave.build_started = slave.build = None
        self.record_builds()

    def record_builds(self):
        """Send the waiting builds to the database in batches, one on each
        db queue that is free (the reply to a batch sends the next)."""
        for queue in self.db_queues:
            if not self.unrecorded:
                return
            if queue in self.recording:
                continue
            batch = self.unrecorded[:protocols.MAX_BUILD_BATCH]
            del self.unrecorded[:len(batch)]
            # the database doesn't keep logs: they go to TheScribe later
            queue.send_msg('LOGBUILDS', [
                build.as_message()._replace(output='') for build in batch])
            self.recording[queue] = batch

    def handle_db_reply(self, queue):
        """The database recorded a batch: publish the new wheels of its
        builds and discard the others (one request each for the batch), ask
        for their pages and logs to be written once the wheels are in place,
        send the next batch."""
        batch = self.recording.pop(queue)
        try:
            msg, data = queue.recv_msg()
        except protocols.ProtocolError as exc:
            msg, data = 'ERROR', str(exc)[:1000]
        if msg == 'ERROR':
            data = [protocols.LoggedBuild(None, set(), set(), set(), data)
                    ] * len(batch)
        now = time.monotonic()
        new_files, old_files, recorded = [], [], []
        for build, logged in zip(batch, data):
            key = (build.package, build.version)
            if self.active.get(key) is self.unrecorded:
                del self.active[key]
            self.recorded[key] = now
            if self.check_recorded(build, logged):
                recorded.append((build, logged))
            for staged in staged_files(build):
                if staged.filename in logged.new_files:
                    new_files.append(staged)
                else:
                    old_files.append(staged)
        self.discard(old_files)

        def write_pages(msg=None, data=None):
            if msg == 'ERROR':
                self.logger.error('SlaveDriver: PUBLISH failed: %s', data)
            self.write_pages([
                protocols.BuildPages(logged.build_id, build.package,
                                     bool(logged.new_files), build.output)
                for build, logged in recorded])
        if new_files:
            self.fs_request('PUBLISH', new_files, write_pages)
        else:
            write_pages()
        self.record_builds()

    def check_recorded(self, build, logged):
        """Return whether the database recorded *build*; log what it could
        not record, and the files that conflict with published ones."""
        if logged.build_id is None:
            self.logger.error(
                'SlaveDriver: the build of %s %s was not recorded (%s); it '
                'will be built again', build.package, build.version,
                logged.error)
            return False
        for filename in logged.conflicts:
            self.logger.error(
                'SlaveDriver: build %d of %s %s made %s with other bytes '
                'than the published file, which stays; the build is marked '
                'with a conflict', logged.build_id, build.package,
                build.version, filename)
        return True

    def write_pages(self, builds):
        """Ask TheSecretary for the logs and pages of recorded *builds* (a
        list of :class:`~piwheels.protocols.BuildPages`), in BUILDS
        requests of up to :data:`WEB_BATCH_OUTPUT` characters of logs
        each."""
        batch, size = [], 0
        for build in builds:
            if batch and size + len(build.output) > WEB_BATCH_OUTPUT:
                self.send_pages(batch)
                batch, size = [], 0
            batch.append(build)
            size += len(build.output)
        if batch:
            self.send_pages(batch)

    def send_pages(self, builds):
        """Send one BUILDS request, never blocking a slave's reply."""
        try:
            self.web_queue.send_msg('BUILDS', builds, transport.NOBLOCK)
        except transport.Again:
            self.web_dropped += len(builds)
            self.logger.error('SlaveDriver: the web queue is full; the logs '
                              'and pages of %d builds dropped so far',
                              self.web_dropped)

    def send_stats(self):
        """Tell BigBrother the queue sizes and what the slaves do."""
        counts = {}
        for slave in self.slaves.values():
            state = slave_state(slave, self.sleeping)
            counts[state] = counts.get(state, 0) + 1
        for msg, data in [
                ('STATBQ', {abi: len(versions)
                            for abi, versions in self.queues.items()}),
                ('STATSLAVES', protocols.SlaveCounts(counts, self.last_build))]:
            try:
                self.stats_queue.send_msg(msg, data, transport.NOBLOCK)
            except transport.Again:
                pass


class Transfer:
    """A file *slave* is sending: its *filename*, FileJuggler's
    :class:`~piwheels.protocols.StageOutcome` once the transfer ended, and
    whether the slave said SENT (and waits for the outcome)."""

    __slots__ = ('slave', 'filename', 'outcome', 'sent')

    def __init__(self, slave, filename):
        self.slave = slave
        self.filename = filename
        self.outcome = None
        self.sent = False


def staged_files(build, transferred_only=False):
    """Return the files of *build* as FileJuggler holds them (all, or only
    those it received)."""
    return [
        protocols.StagedFile(build.slave_id, build.package, file.filename)
        for file in build.files.values()
        if file.transferred or not transferred_only]


def canonical_name(name):
    """Return *name* normalised as PEP 503 says (wheel filenames spell
    ``foo-bar`` as ``foo_bar``)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def slave_state(slave, sleeping):
    """Return what *slave* is doing, in a word."""
    if slave.slave_id in sleeping:
        return 'sleeping'
    if slave.build is not None:
        return 'sending'
    if slave.build_request is not None:
        return 'building'
    return 'idle'
