"""TheSecretary: holds requests to rewrite project pages back for a while,
merging duplicates, before passing them on to TheScribe.
"""

from collections import OrderedDict
from datetime import datetime, timedelta, timezone

from .. import protocols, transport
from ..exc import PiwheelsError
from ..tasks import PauseableTask
from .the_oracle import DbClient

#: how long PROJECT and BOTH requests are held back
DELAY = timedelta(minutes=1)

#: how long they are held back with ``--dev-mode``
DEV_DELAY = timedelta(seconds=3)

#: the most requests waiting in the socket to TheScribe; the rest wait here
SCRIBE_HWM = 100

#: the most requests taken from the web queue in one cycle (so that held
#: requests still go out on time)
INTAKE_LIMIT = 1000


def _utcnow():
    return datetime.now(timezone.utc)


class TheSecretary(PauseableTask):
    """Buffers requests for TheScribe to merge repeated ones.

    Writing a project page costs a database query, and a new release often
    registers several files within seconds, each asking for the same pages.
    PROJECT and BOTH requests are therefore held for :data:`DELAY`
    (:data:`DEV_DELAY` in dev mode) from the first request for a package;
    further requests for that package within that time are merged into it
    (PROJECT and BOTH merge to BOTH). HOME, SEARCH, LOG, DELPKG and DELVER are
    passed straight on: the first two are rare, and the others must not wait
    (a deleted version's files must go now), and so is a request for the
    pages of every package (PROJECT or BOTH with no package), which TheScribe
    carries out in batches. A DELPKG or DELVER also drops
    the package's held request, which would otherwise write the pages again.
    A BUILDS request (SlaveDriver's, for the builds the database recorded
    together) counts as a LOG and a PROJECT or BOTH for each build.

    Requests still held when the master stops are saved in the database
    (the rewrites pending table) and taken up again when it starts.

    Queues:

    * ``web_queue``: PULL, binds ``config.web_queue``, speaks
      :data:`piwheels.protocols.the_secretary`; requests from SlaveDriver,
      MrChase, CloudGazer and BigBrother.
    * ``scribe_queue``: PUSH, connects ``config.scribe_queue``, speaks
      :data:`piwheels.protocols.the_scribe` (reversed). Held requests are
      only sent while TheScribe can take them, so a long queue of rewrites
      waits here (where it is saved on shutdown) rather than in a socket.
    * a :class:`~piwheels.master.the_oracle.DbClient` (REQ, connects
      ``config.db_queue``) to load and save the held requests.
    """
    name = 'master.the_secretary'

    def __init__(self, config):
        super().__init__(config)
        self.delay = DEV_DELAY if config.dev_mode else DELAY
        #: package -> [due time, 'PROJECT' or 'BOTH'], in order of due time
        self.buffer = OrderedDict()
        self.db = None
        self.web_queue = self.socket(transport.PULL, protocol=protocols.the_secretary)
        self.web_queue.hwm = 1000
        self.web_queue.bind(config.web_queue)
        self.register(self.web_queue, self.handle_input)
        self.scribe_queue = self.socket(
            transport.PUSH, protocol=protocols.the_scribe.reversed())
        self.scribe_queue.hwm = SCRIBE_HWM
        self.scribe_queue.connect(config.scribe_queue)
        self.every(timedelta(milliseconds=250), self.handle_output)

    def once(self):
        self.db = DbClient(self.config, self.logger)
        for row in self.db.load_rewrites_pending():
            self.hold(row.package, row.command, row.added_at)
        if self.buffer:
            self.logger.info('%s: %d page rewrites pending from the last run',
                             self.name, len(self.buffer))

    def close(self):
        if self.db is not None:
            try:
                self.db.save_rewrites_pending([
                    protocols.RewritePending(package, due - self.delay, command)
                    for package, (due, command) in self.buffer.items()
                ])
            except PiwheelsError as exc:
                self.logger.error('%s: %d pending page rewrites not saved: %s',
                                  self.name, len(self.buffer), exc)
            self.db.close()
            self.db = None
        super().close()

    def hold(self, package, command, added_at):
        """Hold *command* (PROJECT or BOTH) for *package*, first asked for at
        *added_at*, merging it with a request already held."""
        held = self.buffer.get(package)
        if held is None:
            due = added_at + self.delay
            if self.buffer and due < next(reversed(self.buffer.values()))[0]:
                # restored rows may come in any order; keep due-time order
                self.buffer[package] = [due, command]
                self.buffer = OrderedDict(
                    sorted(self.buffer.items(), key=lambda item: item[1][0]))
            else:
                self.buffer[package] = [due, command]
        elif command == 'BOTH':
            held[1] = 'BOTH'

    def handle_input(self, queue, limit=INTAKE_LIMIT):
        """Take the requests waiting (up to *limit*): hold PROJECT and BOTH,
        pass the rest on.

        Every request waiting is taken, not one a cycle: SlaveDriver asks
        for the pages of every build, and in a master busy with hundreds of builds a
        second a cycle of this task (the interpreter handed back and forth
        at each ZeroMQ call) took long enough that its queue grew without
        end while TheScribe waited for work."""
        for msg, data in self.waiting(queue, limit):
            if msg in ('PROJECT', 'BOTH') and data is not None:
                self.hold(data, msg, _utcnow())
                continue
            if msg == 'BUILDS':
                for build in data:
                    self.scribe_queue.send_msg('LOG', protocols.BuildLog(
                        build.build_id, build.output))
                    self.hold(build.package,
                              'BOTH' if build.both else 'PROJECT', _utcnow())
                continue
            if msg == 'DELPKG':
                self.buffer.pop(data, None)
            elif msg == 'DELVER':
                self.buffer.pop(data.package, None)
            self.scribe_queue.send_msg(msg, data)

    def handle_output(self):
        """Pass on the held requests that are due, while TheScribe can take
        them."""
        now = _utcnow()
        while self.buffer:
            package, (due, command) = next(iter(self.buffer.items()))
            if due > now or not self.scribe_queue.poll(0, transport.POLLOUT):
                break
            self.scribe_queue.send_msg(command, package)
            del self.buffer[package]
