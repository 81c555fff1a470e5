"""piw-master: runs the master's tasks, relays their status to monitors and obeys the monitors' commands.

:class:`PiWheelsMaster` is the ``piw-master`` command. It checks the
database, starts every task of :data:`TASKS` (each a thread talking to the
others over ZeroMQ, or a process of its own for a task whose
:attr:`~piwheels.tasks.Task.own_process` says so) and a relay forwarding
the tasks' status messages (``--int-status-queue``) to the monitors' PUB
queue, then spends its time in
:meth:`PiWheelsMaster.main_loop` carrying out the monitors' control
messages. SIGTERM, or a QUIT from a monitor, stops every task in reverse
order and exits.
"""

import gc
import importlib
import itertools
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from .. import __version__, protocols, transport
from ..exc import ConfigError, MasterError, ProtocolError
from ..systemd import Notifier
from ..tasks import TaskProcess
from ..terminal import Command, duration

#: the master's tasks in the order they start: each task binds its own
#: queues in its constructor, so a task comes after every task whose queue
#: it connects to. Each entry is ``(module, class, option)``: *option* names
#: the configuration value saying how many to run (``None``: one). A module
#: that does not exist (a part not written yet) is skipped with a warning.
TASKS = [
    ('piwheels.master.seraph', 'Seraph', None),
    ('piwheels.master.the_oracle', 'TheOracle', 'oracles'),
    ('piwheels.master.the_scribe', 'TheScribe', None),
    ('piwheels.master.the_secretary', 'TheSecretary', None),
    ('piwheels.master.file_juggler', 'FileJuggler', None),
    ('piwheels.master.big_brother', 'BigBrother', None),
    ('piwheels.master.slave_driver', 'SlaveDriver', None),
    ('piwheels.master.the_architect', 'TheArchitect', None),
    ('piwheels.master.mr_chase', 'MrChase', None),
    ('piwheels.master.cloud_gazer', 'CloudGazer', None),
    ('piwheels.master.lumberjack', 'Lumberjack', None),
]

#: the queues reaching the tasks that run in processes of their own (see
#: :attr:`~piwheels.tasks.Task.own_process`), and those tasks: never
#: ``inproc://``, and by default a socket in the master's private directory
PROCESS_QUEUES = {
    'scribe_queue': 'TheScribe',
    'oracle_queue': 'TheOracle',
    'fs_queue': 'FileJuggler',
    'stats_queue': 'FileJuggler',
}

#: how long the master waits for its tasks to stop, in all and each
STOP_TIMEOUT = timedelta(seconds=30)
STOP_TASK_TIMEOUT = timedelta(seconds=10)

#: how long a KILL of every slave waits for them to leave before the master
#: quits too
KILL_ALL_GRACE = timedelta(seconds=15)

#: how long a task may keep the interpreter while another waits for it
#: (Python's default is 5 ms): every ZeroMQ call hands the interpreter over,
#: and a task answering slaves would otherwise wait up to that long after
#: each while another task renders a page
SWITCH_INTERVAL = 0.0005

#: the collector's first threshold while the master runs (Python's default
#: is 700): each build makes a few hundred short-lived containers, and a
#: young collection every 700 took a turn on the interpreter from every task
GC_THRESHOLD = 10000

#: how long after its tasks start the master freezes the objects they made
#: (modules, templates, queues, caches), so that a full collection no
#: longer walks them all while every task waits (tens of milliseconds, as
#: long as the slowest reply to a slave may take)
GC_FREEZE_AFTER = timedelta(seconds=10)

_relay_ids = itertools.count(1)


def batch_scheduling():
    """Put this thread, and so every thread and task process it starts, under
    the batch scheduling policy if it has the default one; return whether
    it did.

    The tasks pass every build along in several messages to one another, and
    under the default policy each message's wake-up preempts the thread that
    runs, so each task takes its queue a message at a time; under the batch
    policy a thread keeps its turn and the next finds its messages waiting
    together, and fewer context switches cost less CPU per build. A policy
    an operator chose (a real-time one, say) is left alone.
    """
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        return False
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    return True


def size(text):
    """Parse *text* like ``500M``, ``2G`` or ``1048576`` into bytes; an
    argparse ``type``."""
    units = {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
    text = text.strip().upper().rstrip('B')
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, '')
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise ValueError('invalid size {!r} (use e.g. 500M, 2G)'.format(
            text)) from None
    if value <= 0:
        raise ValueError('size must be positive')
    return value


def positive_int(text):
    """Parse *text* as an integer of at least 1; an argparse ``type``."""
    value = int(text)
    if value < 1:
        raise ValueError('must be at least 1')
    return value


def sig_term(signo, stack_frame):
    """Handler for SIGTERM: raise :exc:`SystemExit` so that
    :meth:`PiWheelsMaster.main_loop` ends and the tasks are stopped."""
    raise SystemExit(0)


def load_tasks(task_list=TASKS, logger=None):
    """Return ``[(class, option)]`` for the entries of *task_list* whose
    module exists. A module that is missing is reported on *logger*; an
    import error inside a module that exists is not hidden."""
    classes = []
    for module_name, class_name, option in task_list:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            if logger is not None:
                logger.warning('%s is not available; not started', class_name)
            continue
        classes.append((getattr(module, class_name), option))
    return classes


class PiWheelsMaster(Command):
    """The piw-master command: starts the tasks and relays between them and
    the monitors."""

    section = 'master'
    description = (
        'Coordinate the build slaves, keep the database of packages and '
        'builds, and write the web output.')

    def __init__(self):
        super().__init__()
        self.tasks = []
        self.status_queue = None
        self.control_queue = None
        self.int_status_queue = None
        self.own_status_queue = None
        self.relay = None
        self.relay_control = None
        self.monitor_events = None
        #: a private directory for the ipc:// queues of the tasks run in
        #: processes of their own
        self.runtime_dir = None
        self.monitors = 0
        self.notifier = Notifier()
        self.quit_deadline = None
        self.paused = False

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument(
            '-d', '--dsn', default='postgresql:///piwheels',
            help='the database to use; it must have been set up with '
            'piw-initdb and the user must not be a PostgreSQL superuser')
        parser.add_argument(
            '-o', '--output-path', metavar='PATH', default='/var/www/piwheels',
            help='the path under which the web site is written; it must be '
            'writable by the current user')
        parser.add_argument(
            '--site-url', metavar='URL', default='http://localhost',
            help='the public address of the web site; only the sitemap, '
            'which must hold absolute URLs, uses it')
        parser.add_argument(
            '--dev-mode', action='store_true', default=False,
            help='run in development mode: shorter timeouts, faster queue '
            'refreshes (see the piw-master documentation)')
        parser.add_argument(
            '--pypi-xmlrpc', metavar='URL', default='https://pypi.org/pypi',
            help='the URL of the PyPI XML-RPC service')
        parser.add_argument(
            '--pypi-simple', metavar='URL', default='https://pypi.org/simple',
            help='the URL of the PyPI simple API slaves build from')
        parser.add_argument(
            '--pypi-json', metavar='URL', default='https://pypi.org/pypi',
            help='the URL of the PyPI JSON API (project descriptions, and '
            'the projects of --pypi-projects)')
        parser.add_argument(
            '--pypi-projects', metavar='NAME', nargs='*', default=[],
            help='follow only these projects, through the JSON API (GET '
            'requests only), instead of all of PyPI through its XML-RPC '
            'changelog (default: all of PyPI)')
        parser.add_argument(
            '--pypi-interval', metavar='DURATION', type=duration,
            default=None,
            help='how often PyPI is read (default: 1m for the changelog, '
            '10m for --pypi-projects)')
        for name, default, what in [
                ('status', 'ipc:///tmp/piw-status',
                 'report status to monitors'),
                ('control', 'ipc:///tmp/piw-control',
                 'let monitors control the master'),
                ('import', 'ipc:///tmp/piw-import',
                 'talk to piw-import, piw-add, piw-remove and piw-rebuild'),
                ('log', 'ipc:///tmp/piw-logger', 'receive from piw-logger'),
                ('slave', 'tcp://*:5555', 'talk to the build slaves'),
                ('file', 'tcp://*:5556', 'receive files from the slaves'),
                ('web', 'inproc://web', 'ask for web pages to be written'),
                ('scribe', None,
                 'pass the pages to write from the secretary to the scribe'),
                ('builds', 'inproc://builds', 'pass on pending builds'),
                ('db', 'inproc://db', 'talk to the database server'),
                ('fs', None, 'talk to the file-system server'),
                ('stats', None, 'send statistics to the collator task'),
                ('int-status', 'inproc://status',
                 'gather the tasks\' status for the monitors'),
                ('oracle', None,
                 'share database requests among the database tasks'),
                ('deletions', 'inproc://deletions',
                 'tell SlaveDriver of deleted packages and versions')]:
            option = '{}_queue'.format(name)
            if option in PROCESS_QUEUES:
                what += (' (used by {} in a process of its own: an ipc:// '
                         'or tcp:// address; default: a socket in a private '
                         'temporary directory)'.format(PROCESS_QUEUES[option]))
            parser.add_argument(
                '--{}-queue'.format(name), metavar='ADDR', default=default,
                help='the address of the queue used to {}'.format(what))
        parser.add_argument(
            '--oracles', metavar='N', type=positive_int, default=3,
            help='the number of database server tasks')
        parser.add_argument(
            '--max-build-timeout', metavar='DURATION', type=duration,
            default=timedelta(hours=3),
            help='the longest build timeout a slave may announce; longer '
            'ones are clamped to this')
        parser.add_argument(
            '--slave-timeout', metavar='DURATION', type=duration, default=None,
            help='how long a slave may stay silent before it is assumed '
            'dead and its build is handed to another (default: 5m, or 30s '
            'in development mode)')
        parser.add_argument(
            '--max-file-size', metavar='SIZE', type=size,
            default=size('2G'),
            help='the largest wheel accepted from a slave')
        parser.add_argument(
            '--transfer-retries', metavar='N', type=int, default=3,
            help='how many times a file that fails to verify is fetched '
            'again before its build counts as failed')
        return parser

    def parse_args(self, args=None):
        config = super().parse_args(args)
        if config.slave_timeout is None:
            config.slave_timeout = timedelta(
                seconds=30 if config.dev_mode else 300)
        for option, task in PROCESS_QUEUES.items():
            address = getattr(config, option)
            if address is not None and address.startswith('inproc://'):
                raise ConfigError(
                    '--{} cannot be an inproc:// address: {} runs in a '
                    'process of its own'.format(option.replace('_', '-'),
                                                task))
        if config.transfer_retries < 0:
            raise ConfigError('--transfer-retries must not be negative')
        if config.pypi_interval is None:
            config.pypi_interval = timedelta(
                minutes=10 if config.pypi_projects else 1)
        elif config.pypi_interval <= timedelta(0):
            raise ConfigError('--pypi-interval must be positive')
        for option in ('pypi_xmlrpc', 'pypi_json'):
            if not getattr(config, option).startswith(('http://', 'https://')):
                raise ConfigError('--{} must be an http or https URL'.format(
                    option.replace('_', '-')))
        return config

    def run(self, config):
        self.logger.info('PiWheels Master version %s', __version__)
        check_database(config)
        make_output_dir(config)
        signal.signal(signal.SIGTERM, sig_term)
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        gc_threshold = gc.get_threshold()
        gc.set_threshold(GC_THRESHOLD, *gc_threshold[1:])
        batched = batch_scheduling()
        ctx = transport.Context.instance()
        self.runtime_dir = tempfile.mkdtemp(prefix='piw-master-')
        for option in PROCESS_QUEUES:
            if getattr(config, option) is None:
                setattr(config, option, 'ipc://{}/{}'.format(
                    self.runtime_dir, option))
        try:
            self.start_queues(ctx, config)
            self.start_tasks(config)
            self.notifier.ready()
            self.logger.info('started; slaves connect to %s',
                             config.slave_queue)
            self.main_loop()
        except SystemExit:
            self.logger.warning('shutting down on request')
        except KeyboardInterrupt:
            self.logger.warning('shutting down on Ctrl+C')
        finally:
            self.notifier.stopping()
            self.stop_tasks()
            self.close_queues()
            sys.setswitchinterval(switch_interval)
            gc.set_threshold(*gc_threshold)
            gc.unfreeze()
            if batched:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        failed = self.failed_tasks()
        self.tasks = []
        return 1 if failed else 0

    def start_queues(self, ctx, config):
        """Bind the monitors' queues and the internal status queue, and start
        the relay from one to the other."""
        self.int_status_queue = ctx.socket(
            transport.PULL, protocol=protocols.master_status,
            logger=self.logger)
        self.int_status_queue.hwm = 100000
        self.int_status_queue.bind(config.int_status_queue)
        self.status_queue = ctx.socket(
            transport.PUB, protocol=protocols.monitor_status,
            logger=self.logger)
        self.status_queue.hwm = 100000
        self.control_queue = ctx.socket(
            transport.PULL, protocol=protocols.master_control,
            logger=self.logger)
        try:
            self.status_queue.bind(config.status_queue)
            self.control_queue.bind(config.control_queue)
        except transport.ZMQError as exc:
            raise MasterError(
                'unable to listen on the monitor queues ({}); is another '
                'master running?'.format(exc)) from None
        # the master's own status messages join the tasks' on their way
        self.own_status_queue = ctx.socket(
            transport.PUSH, protocol=protocols.monitor_status,
            logger=self.logger)
        self.own_status_queue.connect(config.int_status_queue)
        # monitors arriving and leaving (each says HELLO once here)
        self.monitor_events = self.status_queue.connection_events(
            transport.EVENT_ACCEPTED | transport.EVENT_DISCONNECTED)
        self.start_relay(ctx)

    def start_relay(self, ctx):
        """Relay the internal status queue to the monitors' in a thread of
        ZeroMQ's own code: thousands of messages a second pass without
        taking a turn on the interpreter from the tasks. The relay owns both
        queues until :meth:`close_queues` stops it."""
        address = 'inproc://status-relay-{}'.format(next(_relay_ids))
        relay_end = ctx.socket(transport.PAIR)
        relay_end.bind(address)
        self.relay_control = ctx.socket(transport.PAIR)
        self.relay_control.connect(address)
        self.relay = threading.Thread(
            target=self.run_relay, name='StatusRelay', daemon=True,
            args=(relay_end,))
        self.relay.start()

    def run_relay(self, control):
        try:
            transport.proxy(self.int_status_queue, self.status_queue, control)
        finally:
            control.close(linger=0)

    def close_queues(self):
        if self.relay is not None:
            self.relay_control.send(transport.PROXY_TERMINATE)
            self.relay.join(10)
            self.relay_control.close(linger=0)
            self.relay = None
        for queue in (self.own_status_queue, self.int_status_queue,
                      self.status_queue, self.monitor_events,
                      self.control_queue):
            if queue is not None:
                queue.close(linger=0)

    def start_tasks(self, config):
        """Construct and start every available task of :data:`TASKS`, in
        a process of its own for a task that asks for one (the processes
        start side by side: each is waited for once all are started)."""
        for task_class, option in load_tasks(logger=self.logger):
            for _ in range(getattr(config, option) if option else 1):
                try:
                    if task_class.own_process:
                        task = TaskProcess(task_class, config,
                                           self.runtime_dir)
                    else:
                        task = task_class(config)
                except transport.ZMQError as exc:
                    raise MasterError('{}: unable to set up its queues: '
                                      '{}'.format(task_class.__name__, exc))
                self.tasks.append(task)
                task.start()
        for task in self.tasks:
            if isinstance(task, TaskProcess):
                task.wait_started()

    def stop_tasks(self):
        """Stop the tasks newest first, each before the tasks it depends on
        (a task waiting on another's reply must not find it gone). A task
        that does not stop in time is left behind (tasks are daemon
        threads; a task's own process is killed), so the master always
        exits within :data:`STOP_TIMEOUT` or so."""
        deadline = time.monotonic() + STOP_TIMEOUT.total_seconds()
        for task in reversed(self.tasks):
            if task.is_alive():
                task.quit()
                task.join(timeout=max(1, min(
                    STOP_TASK_TIMEOUT.total_seconds(),
                    deadline - time.monotonic())))
            if task.is_alive():
                if isinstance(task, TaskProcess):
                    task.kill()
                    self.logger.error('%s did not stop in time; killed',
                                      task.name)
                else:
                    self.logger.error('%s did not stop in time; left behind',
                                      task.name)

    def failed_tasks(self):
        return [task for task in self.tasks if task.failure is not None]

    def find_task(self, class_name):
        """Return the running task called *class_name*, or None."""
        for task in self.tasks:
            if type(task).__name__ == class_name:
                return task
        return None

    def main_loop(self):
        """Obey control messages and follow the monitors coming and going
        until told to quit, or until a task dies."""
        poller = transport.Poller()
        poller.register(self.control_queue, transport.POLLIN)
        poller.register(self.monitor_events, transport.POLLIN)
        watchdog = self.notifier.watchdog_period()
        # none listens yet
        self._slave_driver_call('stop_reporting')
        freeze_at = time.monotonic() + GC_FREEZE_AFTER.total_seconds()
        while True:
            ready = poller.poll(1)
            if freeze_at is not None and time.monotonic() >= freeze_at:
                gc.freeze()
                freeze_at = None
            if self.monitor_events in ready:
                self.count_monitors()
            if self.control_queue in ready:
                try:
                    msg, data = self.control_queue.recv_msg()
                except ProtocolError as exc:
                    self.logger.error('invalid control message ignored: %s',
                                      exc)
                else:
                    handler = getattr(self, 'do_{}'.format(msg.lower()))
                    handler(data)
            dead = [task.name for task in self.tasks if not task.is_alive()]
            if not self.relay.is_alive():
                dead.append(self.relay.name)
            if dead:
                raise MasterError('{} stopped unexpectedly'.format(
                    ', '.join(dead)))
            if watchdog is not None:
                self.notifier.watchdog_ping()
            if (self.quit_deadline is not None
                    and datetime.now(timezone.utc) >= self.quit_deadline):
                self.logger.warning('stopping after KILL of every slave')
                return

    def count_monitors(self):
        """Follow monitors connecting and leaving the status queue; when the
        last has left, SlaveDriver stops reporting each message to and from
        the slaves (a monitor's HELLO has it report them again)."""
        while self.monitor_events.poll(0):
            event, endpoint = self.monitor_events.recv_event()
            if event == transport.EVENT_ACCEPTED:
                self.monitors += 1
            elif event == transport.EVENT_DISCONNECTED and self.monitors:
                self.monitors -= 1
                if not self.monitors:
                    self.logger.info('the last monitor left')
                    self._slave_driver_call('stop_reporting')

    def master_info(self):
        return protocols.MasterInfo(
            datetime.now(timezone.utc), socket.gethostname()[:200],
            __version__)

    def do_hello(self, data):
        """A monitor arrived: replay the master's HELLO and whether it is
        paused, every slave's HELLO and the latest statistics."""
        self.logger.info('monitor attached; replaying status')
        self.own_status_queue.send_msg('HELLO', self.master_info())
        self.own_status_queue.send_msg('PAUSED', self.paused)
        slave_driver = self.find_task('SlaveDriver')
        if slave_driver is not None:
            slave_driver.list_slaves()
        big_brother = self.find_task('BigBrother')
        if big_brother is not None:
            big_brother.replay_stats()

    def do_pause(self, data):
        """Pause every task, and tell the monitors."""
        self.logger.warning('pausing operations')
        for task in self.tasks:
            task.pause()
        self.paused = True
        self.own_status_queue.send_msg('PAUSED', True)

    def do_resume(self, data):
        """Resume every task, and tell the monitors."""
        self.logger.warning('resuming operations')
        for task in self.tasks:
            task.resume()
        self.paused = False
        self.own_status_queue.send_msg('PAUSED', False)

    def _slave_command(self, method, slave_id):
        if not self._slave_driver_call(method, slave_id):
            self.logger.error('no SlaveDriver to pass the command to')

    def _slave_driver_call(self, method, *args):
        """Call SlaveDriver's control *method*; return False if there is no
        SlaveDriver."""
        slave_driver = self.find_task('SlaveDriver')
        if slave_driver is None:
            return False
        getattr(slave_driver, method)(*args)
        return True

    def do_kill(self, slave_id):
        """Stop slave *slave_id*; None stops every slave and then the
        master."""
        if slave_id is None:
            self.logger.warning('killing every slave, then the master')
            self.quit_deadline = datetime.now(timezone.utc) + KILL_ALL_GRACE
        else:
            self.logger.warning('killing slave %d', slave_id)
        self._slave_command('kill_slave', slave_id)

    def do_skip(self, slave_id):
        """Abandon the current build of slave *slave_id*."""
        self.logger.warning('skipping the build of slave %d', slave_id)
        self._slave_command('skip_slave', slave_id)

    def do_sleep(self, slave_id):
        """Stop giving slave *slave_id* work; None pauses every slave and
        the master."""
        if slave_id is None:
            self.logger.warning('sleeping every slave and the master')
            self.do_pause(None)
        else:
            self.logger.warning('sleeping slave %d', slave_id)
            self._slave_command('sleep_slave', slave_id)

    def do_wake(self, slave_id):
        """Give slave *slave_id* work again; None resumes every slave and the
        master."""
        if slave_id is None:
            self.logger.warning('waking every slave and the master')
            self.do_resume(None)
        else:
            self.logger.warning('waking slave %d', slave_id)
            self._slave_command('wake_slave', slave_id)

    def do_quit(self, data):
        """Shut the master down."""
        self.logger.warning('quitting on request of a monitor')
        raise SystemExit(0)


def check_database(config):
    """Check the database at ``config.dsn`` is reachable and of the schema
    version this code needs.

    :raises DatabaseError: with a one-line explanation otherwise.
    """
    from .db import Database
    Database(config.dsn).close()


def make_output_dir(config):
    """Make the output directory ``config.output_path`` if it is missing,
    before any task (in whatever process) looks at it.

    :raises MasterError: with a one-line explanation if it can't.
    """
    try:
        os.makedirs(config.output_path, exist_ok=True)
    except OSError as exc:
        raise MasterError('unable to make the output directory {}: {}'.format(
            config.output_path, exc.strerror or exc)) from None


main = PiWheelsMaster()
