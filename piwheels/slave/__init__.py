"""piw-slave: builds wheels on behalf of the piwheels master.

The slave connects to the master's SlaveDriver (a REQ socket; protocol
:data:`piwheels.protocols.slave_driver`) and loops around the build
protocol: HELLO/ACK, then IDLE until it is told to BUILD, BUSY pings while
the :class:`~piwheels.slave.builder.Builder` runs, BUILT with the result,
and for each wheel the master asks for (SEND) a transfer to the FileJuggler
over a DEALER socket (:data:`piwheels.protocols.file_juggler_files`)
before SENT. When the master is silent for longer than the master timeout
the slave abandons any build and starts again from HELLO, so a master can be
restarted under its slaves. SIGTERM or Ctrl+C end the slave cleanly, with
BYE to the master when the protocol allows.
"""

import argparse
import os
import platform
import re
import signal
import socket
import sysconfig
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from packaging import tags

from .. import __version__, protocols, transport
from ..exc import ConfigError, MasterTimeout, ProtocolError
from ..protocols import NoData
from ..protocols import SlaveHello, SlaveStats
from ..systemd import Notifier
from ..terminal import Command, duration
from .builder import Builder

#: the replies the master may give to each request of the slave
REPLIES = {
    'HELLO': {'ACK', 'DIE'},
    'IDLE': {'SLEEP', 'BUILD', 'DIE'},
    'BUSY': {'CONT', 'DONE', 'DIE'},
    'BUILT': {'SEND', 'DONE', 'DIE'},
    'SENT': {'SEND', 'DONE', 'DIE'},
}

#: how long the slave waits before asking for work again after SLEEP
SLEEP_INTERVAL = timedelta(seconds=10)

#: how long the slave waits for a build to finish before pinging the master
#: with BUSY again
BUSY_INTERVAL = timedelta(seconds=5)


class PiWheelsSlave(Command):
    """The piw-slave command: connects to the master, then builds what it is
    told to until it is told to die or is terminated."""

    section = 'slave'
    description = 'Build wheels on behalf of the piwheels master.'

    def __init__(self):
        super().__init__()
        #: how long to wait after SLEEP before asking for work again
        self.sleep_interval = SLEEP_INTERVAL
        #: how long to wait for a running build between BUSY pings
        self.busy_interval = BUSY_INTERVAL
        self.config = None
        self.context = None
        self.notifier = None
        self.slave_id = None
        self.index_url = None
        self.build_timeout = None
        self.builder = None
        self.proven = False
        #: set when the slave should say BYE and exit
        self.terminating = False
        self._terminate_deadline = None
        self._watchdog_period = None
        self._watchdog_last = 0.0

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument(
            '-m', '--master', metavar='HOST', default='localhost',
            help='the IP address or hostname of the master server')
        parser.add_argument(
            '--master-port', metavar='PORT', type=port, default=5555,
            help="the master's build-coordination (SlaveDriver) port")
        parser.add_argument(
            '--file-port', metavar='PORT', type=port, default=5556,
            help="the master's file-transfer (FileJuggler) port")
        parser.add_argument(
            '-t', '--timeout', metavar='DURATION', type=positive_duration,
            default='3h',
            help='the time to wait before assuming a build has failed')
        parser.add_argument(
            '--master-timeout', metavar='DURATION', type=positive_duration,
            default='5m',
            help='the time to wait for the master to answer before '
                 'reconnecting and starting over')
        parser.add_argument(
            '--label', metavar='LABEL', default=socket.gethostname().split('.')[0],
            help='the name the master and its monitors show for this slave')
        parser.add_argument(
            '-d', '--dir', metavar='DIR', default=tempfile.gettempdir(),
            help='the directory builds run in (each in a fresh temporary '
                 'directory, removed afterwards)')
        parser.add_argument(
            '--proven-file', metavar='PATH', default=None,
            help='a file written once the master has first acknowledged '
                 'this slave (a "proven" stamp for boot-time guards)')
        return parser

    # -- the command -----------------------------------------------------

    def run(self, config):
        if not os.path.isdir(config.dir):
            raise ConfigError('build directory {} does not exist'.format(
                config.dir))
        if not os.access(config.dir, os.W_OK | os.X_OK):
            raise ConfigError('build directory {} is not writable'.format(
                config.dir))
        if not 0 < len(config.label) <= 200:
            raise ConfigError('the label must be 1 to 200 characters long')
        if config.proven_file:
            proven_dir = os.path.dirname(os.path.abspath(config.proven_file))
            if not os.access(proven_dir, os.W_OK | os.X_OK):
                raise ConfigError(
                    'cannot write the proven file {}: {} is not a writable '
                    'directory'.format(config.proven_file, proven_dir))
        self.config = config
        self.notifier = Notifier()
        self._watchdog_period = self.notifier.watchdog_period()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_termination)
            signal.signal(signal.SIGINT, self.request_termination)
        self.context = transport.Context()
        self.logger.info('piw-slave %s building for %s-%s-%s', __version__,
                         *native_tags())
        self.notifier.ready()
        try:
            while not self.terminating:
                try:
                    self.session()
                except MasterTimeout as exc:
                    if self.terminating:
                        self.logger.warning('%s', exc)
                    else:
                        self.logger.warning('%s; starting over', exc)
                except ProtocolError as exc:
                    self.logger.error('bad message from the master: %s; '
                                      'starting over', exc)
                    self.pause(self.sleep_interval)
                finally:
                    self.discard_build()
                    self.slave_id = None
        finally:
            self.notifier.stopping()
            self.context.destroy(linger=1)
            self.context = None
        self.logger.info('piw-slave stopped')
        return 0

    def request_termination(self, signum=None, frame=None):
        """Ask the slave to finish: it sends BYE at the next opportunity and
        exits. A second request (e.g. Ctrl+C twice) exits at once."""
        if self.terminating:
            raise KeyboardInterrupt
        self.logger.warning('terminating (signal %s)', signum)
        self._terminate_deadline = time.monotonic() + 5
        self.terminating = True

    # -- the protocol ----------------------------------------------------

    def session(self):
        """Connect to the master and run :meth:`main_loop` until the master
        says DIE or the slave is terminated."""
        address = 'tcp://{}:{}'.format(
            bracket(self.config.master), self.config.master_port)
        queue = self.context.socket(
            transport.REQ, protocol=reversed(protocols.slave_driver))
        queue.hwm = 10
        queue.connect(address)
        self.logger.info('connecting to master at %s', address)
        try:
            self.main_loop(queue, self.config.master_timeout)
        finally:
            queue.close(linger=1)

    def main_loop(self, queue, master_timeout=timedelta(minutes=5)):
        """Send HELLO, then dispatch each reply of the master via
        :meth:`handle_reply` and send what it returns, until BYE is sent.

        :raises MasterTimeout: if the master takes longer than
            *master_timeout* to reply.
        """
        request = ('HELLO', self.hello())
        while True:
            # the messages are logged by action only: a BUILT carries the
            # whole build log
            self.logger.debug('>> %s', request[0])
            queue.send_msg(*request)
            if request[0] == 'BYE':
                return
            msg, data = self.wait_reply(queue, master_timeout)
            self.logger.debug('<< %s', msg)
            if msg not in REPLIES[request[0]]:
                raise ProtocolError('master answered {} with {}'.format(
                    request[0], msg))
            if self.terminating and msg != 'DIE':
                request = ('BYE', NoData)
            else:
                request = self.handle_reply(msg, data)
            if self.terminating:
                request = ('BYE', NoData)

    def wait_reply(self, queue, master_timeout):
        """Wait for the master's reply on *queue*, pinging the watchdog.

        :raises MasterTimeout: after *master_timeout*, or a few seconds after
            termination was requested.
        """
        deadline = time.monotonic() + master_timeout.total_seconds()
        while not queue.poll(1):
            self.watchdog()
            if time.monotonic() > deadline:
                raise MasterTimeout('no reply from the master within {}'.format(
                    master_timeout))
            if (self._terminate_deadline is not None and
                    time.monotonic() > self._terminate_deadline):
                raise MasterTimeout('no reply from the master while '
                                    'terminating')
        return queue.recv_msg()

    def handle_reply(self, msg, data):
        """Dispatch the master's *msg* (with its *data*) to its ``do_``
        handler and return the request to send next."""
        handler = getattr(self, 'do_' + msg.lower())
        if data is NoData:
            return handler()
        return handler(data)

    def hello(self):
        """Return the data of the HELLO message introducing this slave."""
        py_tag, abi_tag, platform_tag = native_tags()
        os_name, os_version = os_release()
        board_revision, board_serial = board_info()
        return SlaveHello(
            protocol_version=protocols.PROTOCOL_VERSION,
            piwheels_version=__version__,
            build_timeout=self.config.timeout,
            master_timeout=self.config.master_timeout,
            py_version_tag=py_tag, abi_tag=abi_tag, platform_tag=platform_tag,
            label=self.config.label, os_name=os_name[:1000],
            os_version=os_version[:1000],
            board_revision=board_revision, board_serial=board_serial)

    def do_ack(self, data):
        """The master accepted our HELLO: remember our id, the index to
        build from and the build timeout it allows, stamp the proven file the
        first time, and ask for work with IDLE."""
        self.slave_id, self.index_url = data.slave_id, data.pypi_url
        self.build_timeout = data.build_timeout
        self.logger.info('connected to master as slave %d; building from %s '
                         'with a timeout of %s', self.slave_id,
                         self.index_url, self.build_timeout)
        self.notifier.status('connected to {} as slave {}'.format(
            self.config.master, self.slave_id))
        if not self.proven and self.config.proven_file:
            try:
                write_atomically(
                    self.config.proven_file, 'proven {} by {}\n'.format(
                        datetime.now(timezone.utc).isoformat(),
                        self.config.master))
            except OSError as exc:
                self.logger.error('unable to write the proven file %s: %s',
                                  self.config.proven_file, exc)
            else:
                self.logger.info('wrote %s', self.config.proven_file)
        self.proven = True
        return ('IDLE', self.get_stats())

    def do_sleep(self):
        """No work for us now: wait a while, then ask again with IDLE."""
        self.logger.debug('nothing to build; sleeping')
        self.pause(self.sleep_interval)
        return ('IDLE', self.get_stats())

    def do_build(self, data):
        """Start building *data* (package, version) and report BUSY."""
        self.logger.info('building %s %s', data.package, data.version)
        self.notifier.status('building {} {}'.format(data.package, data.version))
        self.builder = Builder(
            data.package, data.version, timeout=self.build_timeout,
            index_url=self.index_url, dir=self.config.dir)
        self.builder.start()
        return ('BUSY', self.get_stats())

    def do_cont(self):
        """The master wants the build to go on: wait up to
        :attr:`busy_interval` for it, then reply BUILT with its result or
        BUSY again."""
        deadline = time.monotonic() + self.busy_interval.total_seconds()
        while self.builder.is_alive() and time.monotonic() < deadline:
            if self.terminating:
                break
            self.builder.join(0.5)
            self.watchdog()
        if self.builder.is_alive():
            return ('BUSY', self.get_stats())
        result = self.builder.as_message()
        if result.status:
            self.logger.info('built %s %s in %s: %s', self.builder.package,
                             self.builder.version, result.duration,
                             ', '.join(f.filename for f in result.files))
        else:
            self.logger.warning('build of %s %s failed (%s) after %s',
                                self.builder.package, self.builder.version,
                                result.failure, result.duration)
        return ('BUILT', result)

    def do_send(self, filename):
        """Transfer the built wheel *filename* to the FileJuggler, then say
        SENT.

        :raises ProtocolError: if the master asks for a file this build did
            not produce.
        """
        wheels = {wheel.filename: wheel for wheel in
                  (self.builder.wheels if self.builder else [])}
        try:
            wheel = wheels[filename]
        except KeyError:
            raise ProtocolError(
                'master asked for {!r}, which this build did not '
                'produce'.format(filename)) from None
        self.logger.info('sending %s (%d bytes)', filename, wheel.filesize)
        queue = self.context.socket(
            transport.DEALER, protocol=reversed(protocols.file_juggler_files))
        queue.hwm = 10
        queue.connect('tcp://{}:{}'.format(
            bracket(self.config.master), self.config.file_port))
        try:
            wheel.transfer(queue, self.slave_id,
                           timeout=self.config.master_timeout,
                           tick=self.watchdog)
        finally:
            queue.close(linger=1)
        return ('SENT', NoData)

    def do_done(self):
        """The build is over (finished and sent, or cancelled by the
        master): remove everything it left and ask for work with IDLE."""
        if self.builder is not None and self.builder.is_alive():
            self.logger.warning('master cancelled the build of %s %s',
                                self.builder.package, self.builder.version)
        self.discard_build()
        self.notifier.status('idle; slave {}'.format(self.slave_id))
        return ('IDLE', self.get_stats())

    def do_die(self, reason):
        """The master wants us gone: log its *reason*, and say BYE."""
        self.logger.warning('master told this slave to stop: %s',
                            reason or 'at the operator\'s request')
        self.terminating = True
        return ('BYE', NoData)

    def discard_build(self):
        """Stop the current build, if any, and remove all its files."""
        if self.builder is not None:
            self.builder.clean()
            self.builder = None

    # -- helpers -----------------------------------------------------------

    def pause(self, interval):
        """Wait *interval* (a :class:`~datetime.timedelta`), pinging the
        watchdog; return early when termination is requested."""
        deadline = time.monotonic() + interval.total_seconds()
        # short sleeps rather than waiting on an Event: a signal handler must
        # not take a lock the interrupted code may hold
        while time.monotonic() < deadline and not self.terminating:
            time.sleep(min(0.2, max(0, deadline - time.monotonic())))
            self.watchdog()

    def watchdog(self):
        """Ping systemd's watchdog, at most four times per period."""
        if self._watchdog_period is None:
            return
        now = time.monotonic()
        if now - self._watchdog_last >= self._watchdog_period.total_seconds() / 4:
            self.notifier.watchdog_ping()
            self._watchdog_last = now

    def get_stats(self):
        """Return this slave's :class:`~piwheels.states.SlaveStats`."""
        return slave_stats(self.config.dir)


def port(text):
    """Parse a TCP port number; an argparse ``type``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError('invalid port {!r}'.format(text))
    return value


def positive_duration(text):
    """Parse a duration greater than zero; an argparse ``type``."""
    value = duration(text)
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(
            'duration {!r} must be longer than zero'.format(text))
    return value


def bracket(host):
    """Return *host* in the form a ZeroMQ tcp:// address needs (IPv6
    addresses in brackets)."""
    if ':' in host and not host.startswith('['):
        return '[{}]'.format(host)
    return host


def native_tags():
    """Return the ``(python, abi, platform)`` tags this interpreter builds
    wheels for, e.g. ``('cp311', 'cp311', 'linux_armv7l')``."""
    tag = next(iter(tags.sys_tags()))
    return (tag.interpreter, tag.abi,
            sysconfig.get_platform().replace('-', '_').replace('.', '_'))


def os_release(path='/etc/os-release'):
    """Return ``(name, version)`` of the operating system, from
    ``/etc/os-release`` when it exists."""
    values = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                key, sep, value = line.strip().partition('=')
                if sep:
                    values[key] = value.strip('"\'')
    except OSError:
        pass
    return (values.get('NAME', platform.system()),
            values.get('VERSION', values.get('VERSION_ID', platform.release())))


def board_info(path='/proc/cpuinfo'):
    """Return the ``(revision, serial)`` of the board (a Raspberry Pi's
    codes from ``/proc/cpuinfo``), ``''`` for each that the machine does not
    report."""
    values = {}
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                key, sep, value = line.partition(':')
                if sep:
                    values[key.strip().lower()] = value.strip()
    except OSError:
        pass
    return values.get('revision', '')[:1000], values.get('serial', '')[:1000]


def memory_info(path='/proc/meminfo'):
    """Return ``(mem_size, mem_free, swap_size, swap_free)`` in bytes;
    *mem_free* is the memory available to new processes."""
    values = {}
    try:
        with open(path, encoding='ascii', errors='replace') as f:
            for line in f:
                match = re.match(r'(\w+):\s+(\d+)\s*kB', line)
                if match:
                    values[match.group(1)] = int(match.group(2)) * 1024
    except OSError:
        pass
    return (values.get('MemTotal', 0),
            values.get('MemAvailable', values.get('MemFree', 0)),
            values.get('SwapTotal', 0), values.get('SwapFree', 0))


def cpu_temperature(root='/sys/class/thermal'):
    """Return the CPU's temperature in degrees Celsius from the kernel's
    thermal zones (the one named for the CPU or SoC, else the first), or
    :data:`None` when the machine reports none."""
    readings = []
    try:
        zones = sorted(
            entry for entry in os.listdir(root)
            if entry.startswith('thermal_zone'))
    except OSError:
        return None
    for zone in zones:
        try:
            with open(os.path.join(root, zone, 'temp')) as f:
                millidegrees = int(f.read().strip())
        except (OSError, ValueError):
            continue
        try:
            with open(os.path.join(root, zone, 'type')) as f:
                kind = f.read().strip().lower()
        except OSError:
            kind = ''
        readings.append((not re.search(r'cpu|soc|x86_pkg', kind), millidegrees))
    if not readings:
        return None
    return min(readings)[1] / 1000


def slave_stats(build_dir):
    """Return the :class:`~piwheels.states.SlaveStats` of this machine, with
    the disk figures of the file-system holding *build_dir*."""
    disk = os.statvfs(build_dir)
    mem_size, mem_free, swap_size, swap_free = memory_info()
    return SlaveStats(
        timestamp=datetime.now(timezone.utc),
        disk_size=disk.f_frsize * disk.f_blocks,
        disk_free=disk.f_frsize * disk.f_bavail,
        mem_size=mem_size, mem_free=mem_free,
        swap_size=swap_size, swap_free=swap_free,
        load_average=os.getloadavg()[0],
        cpu_temp=cpu_temperature())


def write_atomically(path, text):
    """Write *text* to *path* so that readers see the old file or the whole
    new one, never a part (a temporary file, fsync, rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix='.tmp-')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


main = PiWheelsSlave()
