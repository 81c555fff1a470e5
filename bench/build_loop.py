"""Benchmark of the master's build loop: simulated slaves against a real piw-master.

Starts a private PostgreSQL cluster in a temporary directory, initialises
the database with piw-initdb's script and fills it with versions to build,
then runs a real ``piw-master`` process (with every task that exists, TheScribe
writing pages included) and simulated build slaves: real ZeroMQ clients,
each a state machine, many sharing the one thread of each of a few
processes (so no slave waits for a lock of its own process to notice a
reply), speaking the full slave protocol (HELLO, IDLE, BUILD, BUSY, BUILT,
SEND, the chunked file transfer of a tiny but real wheel, SENT, DONE). It
prints the file system's cost of a file creation in its scratch directory, the
builds coordinated per second (told DONE while every slave ran) and how many
the database recorded meanwhile, how long slaves waited for the master's
replies (the slowest reply above all), and the transfer rate of one 100 MB
wheel. The slaves start once the master has done its start-up work (the
first build queue, and the search index it writes then and every ten
minutes). With ``--monitor`` a monitor watches the master throughout (which
then reports every message to and from the slaves, as it does only while a
monitor listens).

The scratch directory is a temporary directory (``TMPDIR``). On an ext4 file
system without a journal (this project's CI machines), creating a file skips,
one by one, the inodes freed in the last minutes (up to six): right after a
run (or tests) deleted tens of thousands of files, file creations cost ten
times as much, and so does every wheel and page the master writes. The
printed cost of a file creation tells which case a run was in; ``--keep``
deletes nothing, so that runs in a row don't slow each other down.

The speed of this project's machines also varies from hour to hour (the
same code has coordinated 430 builds/s and 600 on the same day): the bench
first prints how long the interpreter takes over a fixed loop, so that runs
at different times can be compared, and which interpreter it is. The build
of the interpreter counts as much: Debian's ``python3``, which the Debian
packages of piwheels run on (compiled with profile-guided and link-time
optimisation), coordinated a fifth to a third more builds per second here
than a CPython of the same version compiled without them (such as pyenv's,
by default), the same libraries in both. ``make bench`` runs this script as the
Debian packages run the master: on Debian's ``python3`` and ``python3-*``
packages.

These machines are virtual and hand the memory they freed back to the host
("free page reporting"): writing into memory not used for a while runs at
about 190 MB/s instead of 1.5 GB/s, the host backing each page again. After
a long run, the 100 MB wheel and its copy in the output land in such memory,
and the transfer's first rounds can fall to that speed.

Usage::

    python bench/build_loop.py [--slaves 50] [--seconds 20] [--versions 40000]
                               [--monitor] [--no-pages] [--keep] [--verbose]
"""

import argparse
import hashlib
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from piwheels import __version__, protocols, transport  # noqa: E402
from piwheels.initdb import get_connection  # noqa: E402
from piwheels.pgcluster import PrivateCluster, free_port  # noqa: E402
from sqlalchemy import text  # noqa: E402

from farmdb import create_piwheels_database  # noqa: E402
from procstat import database_cpu_seconds, tree_cpu_seconds  # noqa: E402

ABI = 'cp311'


def prepare_database(path, versions):
    """Start a cluster in *path*, create the piwheels database with
    *versions* versions waiting to be built for :data:`ABI`; return
    ``(cluster, user_dsn)``."""
    cluster = PrivateCluster(os.path.join(path, 'pg')).start()
    dsn = create_piwheels_database(cluster)
    cluster.psql(
        "INSERT INTO build_abis (abi_tag) VALUES ('{abi}');"
        "INSERT INTO packages (package) "
        "SELECT 'pkg' || n FROM generate_series(1, {count}) AS n;"
        "INSERT INTO versions (package, version) "
        "SELECT 'pkg' || n, '1.0' FROM generate_series(1, {count}) AS n;"
        .format(abi=ABI, count=versions), database='piwheels')
    # as piw-initdb --add-abi does for build_abis (autovacuum never analyzes
    # a table this small), and as autovacuum would for the packages and
    # versions within a minute of their load: planned for the few hundred
    # rows of an empty table, each batch of pages took 300 ms of the
    # database's time instead of 20 (the tables that start empty are left
    # to autovacuum: analyzed empty, they would be planned as empty)
    cluster.psql('ANALYZE build_abis, packages, versions',
                 database='piwheels')
    return cluster, dsn


#: a reply slower than this (seconds) misses the target
SLOW_REPLY = 0.1

#: the tasks that write the web output
PAGE_TASKS = ('TheSecretary', 'TheScribe')


def start_master(dsn, path, slave_port, file_port, pages=True, verbose=False):
    """Start piw-master (without the tasks writing pages unless *pages*);
    return the process and the output path."""
    sockets = os.path.join(path, 's')
    os.makedirs(sockets)
    output = os.path.join(path, 'output')
    script = (
        'import sys; import piwheels.master as m; '
        'm.TASKS[:] = [t for t in m.TASKS if {pages} or t[1] not in {tasks!r}]; '
        'sys.exit(m.main())'.format(pages=pages, tasks=PAGE_TASKS))
    args = [
        sys.executable, '-c', script,
        '-c', os.devnull, '--dsn', dsn, '--output-path', output,
        '--dev-mode', '-v' if verbose else '-q',
        '--slave-queue', 'tcp://127.0.0.1:{}'.format(slave_port),
        '--file-queue', 'tcp://127.0.0.1:{}'.format(file_port),
        '--max-file-size', '200M']
    for name in ('status', 'control', 'import', 'log'):
        args += ['--{}-queue'.format(name),
                 'ipc://{}/{}'.format(sockets, name)]
    log = open(os.path.join(path, 'master.log'), 'w')
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT), output


def stats():
    return protocols.SlaveStats(datetime.now(timezone.utc), 10 ** 10,
                                5 * 10 ** 9, 10 ** 9, 5 * 10 ** 8, 0, 0, 0.1,
                                None)


class EncodedStats:
    """The IDLE and BUSY messages, validated and encoded once a second
    rather than for every request: what the simulated slaves cost is not
    what is measured, and on two cores it is taken from the master."""

    def __init__(self):
        self.encoded = {}
        self.expires = 0

    def __call__(self, action):
        now = time.monotonic()
        if now >= self.expires:
            data = protocols.slave_driver.check('recv', 'IDLE', stats())
            self.encoded = {
                msg: transport.encode(msg, data) for msg in ('IDLE', 'BUSY')}
            self.expires = now + 1
        return self.encoded[action]


encoded_stats = EncodedStats()


def tiny_wheel(package, version):
    """Return a tiny but real wheel of *package* *version* (as bytes): TheScribe
    publishes its METADATA beside it, as for any wheel."""
    dist_info = '{}-{}.dist-info/'.format(package, version)
    return stored_zip([
        (dist_info + 'METADATA', 'Metadata-Version: 2.1\nName: {}\nVersion: {}\n'
         'Requires-Python: >=3.9\n'.format(package, version)),
        (dist_info + 'WHEEL', 'Wheel-Version: 1.0\nGenerator: bench\n'
         'Root-Is-Purelib: false\nTag: {0}-{0}-linux_x86_64\n'.format(ABI)),
        (dist_info + 'RECORD', '')])


#: the date of every member of a :func:`stored_zip` (2020-01-01, in DOS form)
ZIP_DATE = (2020 - 1980) << 9 | 1 << 5 | 1


def stored_zip(members):
    """Return a zip archive of *members* (``(name, text)`` pairs), stored
    uncompressed: zipfile's general writer took as much of a simulated
    slave's time as the rest of its build and transfer."""
    local, central, offset = [], [], 0
    for name, content in members:
        name, data = name.encode('ascii'), content.encode('utf-8')
        crc = zlib.crc32(data)
        header = struct.pack('<4s5H3L2H', b'PK\x03\x04', 20, 0, 0, 0, ZIP_DATE,
                             crc, len(data), len(data), len(name), 0) + name
        central.append(struct.pack(
            '<4s6H3L5H2L', b'PK\x01\x02', 20, 20, 0, 0, 0, ZIP_DATE, crc,
            len(data), len(data), len(name), 0, 0, 0, 0, 0, offset) + name)
        local.append(header + data)
        offset += len(header) + len(data)
    directory = b''.join(central)
    end = struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, len(members),
                      len(members), len(directory), offset, 0)
    return b''.join(local) + directory + end


def interpreter_speed(count=3 * 10 ** 6):
    """Return the CPU time (in seconds) this interpreter takes to add up
    *count* numbers in a loop."""
    start = time.process_time()
    total = 0
    for n in range(count):
        total += n
    return time.process_time() - start


def file_create_cost(path, count=500):
    """Return the CPU time (in seconds) one file creation in a new directory
    in *path* costs (the files are left there)."""
    probe = os.path.join(path, 'probe')
    os.mkdir(probe)
    start = time.process_time()
    for n in range(count):
        os.close(os.open(os.path.join(probe, str(n)),
                         os.O_CREAT | os.O_WRONLY, 0o600))
    return (time.process_time() - start) / count


def hello(label):
    return protocols.SlaveHello(
        protocols.PROTOCOL_VERSION, __version__, timedelta(hours=1),
        timedelta(minutes=5), ABI, ABI, 'linux_x86_64', label, 'Linux', '',
        '', '')


class SimulatedSlave:
    """One slave as a state machine: it builds whatever it is given
    instantly and sends a tiny wheel (or *content*). Many of them share one
    thread (see :func:`run_slaves`), so that no slave waits for a lock of
    its own process to notice a reply: each reply's latency is taken when
    the poll that saw it returned.

    It encodes its messages without validating them again (the master
    validates every one it receives and would answer a bad one with DONE,
    which fails the run) and decodes the master's replies without
    validating them (the master validated them on their way out): a real
    slave's checks are not what is measured, and on two cores their CPU
    time would be taken from the master."""

    def __init__(self, ctx, label, slave_port, file_port, content=None):
        self.label = label
        self.content = content
        self.queue = ctx.socket(transport.REQ,
                                protocol=protocols.slave_driver.reversed())
        self.queue.connect('tcp://127.0.0.1:{}'.format(slave_port))
        self.files = ctx.socket(
            transport.DEALER, protocol=protocols.file_juggler_files.reversed())
        self.files.connect('tcp://127.0.0.1:{}'.format(file_port))
        self.latencies = {}
        self.built_at = []
        self.transfer_seconds = None
        self.started = None
        self.slave_id = None
        self.request = None       # (action, when it was sent)
        self.wake_at = None       # when a slave told to SLEEP asks again
        self.wheel = None
        self.transfer_start = None
        self.stopping = False
        self.gone = False

    def send(self, msg, data=protocols.NoData):
        self.send_encoded(msg, transport.encode(msg, data))

    def send_encoded(self, msg, buf):
        self.queue.send_multipart([buf])
        self.request = (msg, time.perf_counter())

    def start(self):
        self.send('HELLO', hello(self.label))

    def stop(self):
        """Leave at the next chance: now if asleep, else once the build in
        hand is done."""
        self.stopping = True
        if self.wake_at is not None:
            self.leave()

    def leave(self):
        self.queue.send_multipart([transport.encode('BYE')])
        self.wake_at = None
        self.gone = True

    def wake(self):
        self.wake_at = None
        if self.stopping:
            self.leave()
        else:
            self.send_encoded('IDLE', encoded_stats('IDLE'))

    def on_reply(self, received_at):
        """Handle the master's reply (it arrived by *received_at*)."""
        msg, data = transport.decode(self.queue.recv_multipart()[-1])
        sent, sent_at = self.request
        self.latencies.setdefault(sent, []).append(received_at - sent_at)
        self.request = None
        if sent == 'HELLO':
            assert msg == 'ACK', (msg, data)
            self.slave_id = data[0]
            self.started = time.time()
            self.send_encoded('IDLE', encoded_stats('IDLE'))
        elif msg == 'SLEEP':
            if self.stopping:
                self.leave()
            else:
                self.wake_at = time.monotonic() + 0.05
        elif msg == 'BUILD':
            if self.stopping:
                self.leave()
                return
            self.wheel = self.content or tiny_wheel(*data)
            self.build = data
            self.send_encoded('BUSY', encoded_stats('BUSY'))
        elif msg == 'CONT':
            self.send('BUILT', self.build_result(*self.build, self.wheel))
        elif msg == 'SEND':
            self.transfer_start = time.perf_counter()
            self.files.send_multipart([transport.encode('HELLO',
                                                        self.slave_id)])
        elif msg == 'DONE':
            assert sent in ('BUILT', 'SENT'), (sent, msg)
            self.built_at.append(time.time())
            if self.stopping or self.content is not None:
                self.leave()
            else:
                self.send_encoded('IDLE', encoded_stats('IDLE'))
        else:
            raise AssertionError((sent, msg, data))

    def on_file_message(self):
        """Answer a FETCH with its CHUNK; on DONE say SENT."""
        msg, data = transport.decode(self.files.recv_multipart()[-1])
        if msg == 'DONE':
            self.transfer_seconds = time.perf_counter() - self.transfer_start
            self.send('SENT')
            return
        offset, length = data
        view = memoryview(self.wheel)
        self.files.send_msg('CHUNK', protocols.Chunk(
            offset, bytes(view[offset:offset + length])))

    def build_result(self, package, version, content):
        filename = '{}-{}-{}-{}-linux_x86_64.whl'.format(
            package, version, ABI, ABI)
        file = protocols.BuiltFile(
            filename, len(content), hashlib.sha256(content).hexdigest(),
            package, version, ABI, ABI, 'linux_x86_64', '>=3.9',
            {'apt': {'libc6'}})
        return protocols.BuildResult(True, timedelta(seconds=1),
                                     'built {} {}\n'.format(package, version),
                                     [file], '')

    def close(self):
        self.queue.close(linger=1)
        self.files.close(linger=0)


def run_slaves(slaves, seconds):
    """Run *slaves* in this thread for *seconds*, then until each has said
    BYE (finishing the build in hand)."""
    poller = transport.Poller()
    owner = {}
    for slave in slaves:
        poller.register(slave.queue, transport.POLLIN)
        poller.register(slave.files, transport.POLLIN)
        owner[slave.queue] = (slave, slave.on_reply)
        owner[slave.files] = (slave, lambda received_at, slave=slave:
                              slave.on_file_message())
        slave.start()
    stop_at = time.monotonic() + seconds
    deadline = stop_at + 120
    stopped = None
    while not all(slave.gone for slave in slaves):
        now = time.monotonic()
        if stopped is None and now >= stop_at:
            stopped = time.time()
            for slave in slaves:
                slave.stop()
        if now > deadline:
            raise RuntimeError('slaves still busy 120 s after the end')
        wakes = [slave.wake_at for slave in slaves if slave.wake_at]
        timeout = max(0, min(wakes + [stop_at if stopped is None
                                      else now + 1]) - now)
        ready = poller.poll(timeout)
        received_at = time.perf_counter()
        for queue in ready:
            slave, handler = owner[queue]
            handler(received_at)
        now = time.monotonic()
        for slave in slaves:
            if slave.wake_at is not None and slave.wake_at <= now:
                slave.wake()
    for slave in slaves:
        slave.close()
    return stopped


def slave_process(labels, slave_port, file_port, seconds, results):
    """Run the slaves *labels* in this process's one thread for *seconds*,
    then report when each build finished, the reply latencies by request,
    and the window during which all of them were running."""
    ctx = transport.Context.instance()
    slaves = [SimulatedSlave(ctx, label, slave_port, file_port)
              for label in labels]
    stopped = run_slaves(slaves, seconds)
    latencies = {}
    for slave in slaves:
        for msg, values in slave.latencies.items():
            latencies.setdefault(msg, []).extend(values)
    results.put((max(slave.started or stopped for slave in slaves), stopped,
                 [when for slave in slaves for when in slave.built_at],
                 latencies))


class RecordedBuilds(threading.Thread):
    """Samples how many builds the database holds, four times a second, so
    that the builds recorded during a window can be told (the slaves are
    answered DONE before their build is recorded)."""

    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.conn = get_connection(dsn)
        self.samples = []
        self.finished = threading.Event()

    def run(self):
        while not self.finished.wait(0.25):
            count = self.conn.execute(text(
                'SELECT count(*) FROM builds')).scalar()
            self.conn.rollback()
            self.samples.append((time.time(), count))

    def stop(self):
        self.finished.set()
        self.join()
        self.conn.close()

    def at(self, when):
        """Return the builds recorded by *when* (interpolated)."""
        before = max((s for s in self.samples if s[0] <= when),
                     default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= when),
                    default=self.samples[-1])
        if after[0] == before[0]:
            return before[1]
        return before[1] + (after[1] - before[1]) * (
            when - before[0]) / (after[0] - before[0])


class Monitor(threading.Thread):
    """A monitor attached to the master (as piw-monitor would be): says
    HELLO and takes every status message, counting those about slaves."""

    def __init__(self, path):
        super().__init__(daemon=True)
        ctx = transport.Context.instance()
        self.status = ctx.socket(
            transport.SUB, protocol=protocols.monitor_status.reversed())
        self.status.hwm = 100000
        self.status.subscribe('')
        self.status.connect('ipc://{}/s/status'.format(path))
        self.control = ctx.socket(
            transport.PUSH, protocol=protocols.master_control.reversed())
        self.control.connect('ipc://{}/s/control'.format(path))
        self.slave_events = 0
        self.finished = threading.Event()

    def run(self):
        answered = False
        while not self.finished.is_set():
            if not answered:
                self.control.send_msg('HELLO')
            while self.status.poll(0.2):
                msg, data = self.status.recv_msg()
                answered = answered or msg == 'HELLO'
                self.slave_events += msg == 'SLAVE'

    def stop(self):
        self.finished.set()
        self.join()
        self.status.close(linger=0)
        self.control.close(linger=0)


def measure_builds(slave_port, file_port, count, seconds, processes):
    """Run *count* slaves over *processes* processes for *seconds*; return
    ``(builds, window, latencies)``: the builds finished while every
    slave was running, when that was (start and end times), and the reply
    latencies of each kind of request."""
    # spawn, not fork: a forked ZeroMQ context is unusable
    mp = multiprocessing.get_context('spawn')
    results = mp.Queue()
    labels = ['sim{}'.format(n) for n in range(count)]
    workers = [
        mp.Process(target=slave_process, args=(
            labels[n::processes], slave_port, file_port, seconds, results))
        for n in range(processes)]
    for worker in workers:
        worker.start()
    starts, stops, built_at, latencies = [], [], [], {}
    for _ in workers:
        start, stop, built, lats = results.get(timeout=seconds + 300)
        starts.append(start)
        stops.append(stop)
        built_at += built
        for msg, values in lats.items():
            latencies.setdefault(msg, []).extend(values)
    for worker in workers:
        worker.join()
    window = (max(starts), min(stops))
    builds = sum(1 for when in built_at if window[0] <= when <= window[1])
    return builds, window, latencies


def children_cpu_seconds():
    """Return the CPU time of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_transfer(slave_port, file_port, size):
    ctx = transport.Context.instance()
    slave = SimulatedSlave(ctx, 'bigwheel', slave_port, file_port,
                           content=os.urandom(size))
    # it leaves after its one build
    run_slaves([slave], 600)
    if slave.transfer_seconds is None:
        raise RuntimeError('the master did not take the wheel (over '
                           '--max-file-size?)')
    return slave.transfer_seconds


def wait_for_file(path, timeout=120):
    """Wait until *path* exists."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError('the master did not write {}'.format(path))
        time.sleep(0.2)


#: the CPU time (seconds) in a second under which the master counts as idle
IDLE_CPU = 0.1


def wait_until_idle(pid, timeout=180):
    """Wait until process *pid* and its children used less than
    :data:`IDLE_CPU` seconds of CPU in a second (the pages held back during
    a run written), or *timeout* seconds; return the CPU time of their last
    second."""
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(pid)
    while True:
        time.sleep(1)
        now = tree_cpu_seconds(pid)
        if now - before < IDLE_CPU or time.monotonic() > deadline:
            return now - before
        before = now


def wait_for_master(slave_port):
    ctx = transport.Context.instance()
    probe = SimulatedSlave(ctx, 'probe', slave_port, 0)
    deadline = time.monotonic() + 60
    while True:
        probe.queue.send_msg('HELLO', hello('probe'))
        if probe.queue.poll(1):
            probe.queue.recv_msg()
            probe.queue.send_msg('BYE')
            probe.queue.close(linger=1)
            probe.files.close(linger=0)
            return
        probe.queue.close(linger=0)
        if time.monotonic() > deadline:
            raise RuntimeError('the master did not answer')
        probe.queue = ctx.socket(transport.REQ,
                                 protocol=protocols.slave_driver.reversed())
        probe.queue.connect('tcp://127.0.0.1:{}'.format(slave_port))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--slaves', type=int, default=50)
    parser.add_argument('--seconds', type=float, default=20)
    parser.add_argument('--versions', type=int, default=40000)
    parser.add_argument('--processes', type=int, default=2)
    parser.add_argument('--transfer-mb', type=int, default=100)
    parser.add_argument('--keep', action='store_true',
                        help='keep the temporary directory (with the '
                        "master's log) for a look afterwards (and delete "
                        'nothing: see above)')
    parser.add_argument('--verbose', action='store_true',
                        help='have the master log every message (which slows '
                        'it down)')
    parser.add_argument('--monitor', action='store_true',
                        help='attach a monitor to the master (it then reports '
                        'every message to and from the slaves)')
    parser.add_argument('--no-pages', dest='pages', action='store_false',
                        help='run the master without {}'.format(
                            ' and '.join(PAGE_TASKS)))
    config = parser.parse_args()
    path = tempfile.mkdtemp(prefix='piwbench')
    cluster = master = monitor = None
    try:
        print('this machine: a loop adding up 3 million numbers takes '
              '{:.2f} s of CPU in {} {} ({})'.format(
                  interpreter_speed(), platform.python_implementation(),
                  platform.python_version(), sys.executable))
        print('scratch directory {}: a file creation costs {:.0f} us of '
              'CPU'.format(path, 1e6 * file_create_cost(path)))
        cluster, dsn = prepare_database(path, config.versions)
        slave_port, file_port = free_port(), free_port()
        master, output = start_master(dsn, path, slave_port, file_port,
                                      config.pages, config.verbose)
        wait_for_master(slave_port)
        if config.monitor:
            monitor = Monitor(path)
            monitor.start()
        # the master's start-up work is not what is measured: the first
        # build queue, and the search index (every package's downloads:
        # over a second of CPU for 40,000 packages here, which the master
        # writes at start and then every ten minutes)
        time.sleep(2)
        if config.pages:
            wait_for_file(os.path.join(output, 'packages.json'))
        recorded = RecordedBuilds(dsn)
        recorded.start()
        cpu_before = tree_cpu_seconds(master.pid)
        database_before = database_cpu_seconds(cluster)
        slaves_before = children_cpu_seconds()
        builds, window, latencies = measure_builds(
            slave_port, file_port, config.slaves, config.seconds,
            config.processes)
        cpu_used = tree_cpu_seconds(master.pid) - cpu_before
        database_used = database_cpu_seconds(cluster) - database_before
        slaves_used = children_cpu_seconds() - slaves_before
        recorded.stop()
        if monitor is not None:
            monitor.stop()
        if not builds:
            raise RuntimeError('no builds were coordinated')
        elapsed = window[1] - window[0]
        in_database = recorded.at(window[1]) - recorded.at(window[0])
        print('pages written by {}: {}'.format(
            ' and '.join(PAGE_TASKS), 'yes' if config.pages else 'no'))
        print('monitor attached: {}'.format(
            'yes ({} messages about slaves)'.format(monitor.slave_events)
            if monitor is not None else 'no'))
        print('{} simulated slaves: {} builds coordinated (told DONE) in '
              '{:.1f} s while all ran: {:.0f} builds/s; {:.0f} recorded in '
              'the database meanwhile: {:.0f} builds/s'.format(
                  config.slaves, builds, elapsed, builds / elapsed,
                  in_database, in_database / elapsed))
        everything = sorted(lat for values in latencies.values()
                            for lat in values)
        print("master CPU time (TheScribe's process included): {:.1f} s, "
              '{:.2f} ms per build (database '
              'server {:.1f} s, simulated slaves {:.1f} s); load average '
              '{}'.format(cpu_used, 1000 * cpu_used / max(builds, 1),
                          database_used, slaves_used, os.getloadavg()[0]))
        for msg, values in sorted(latencies.items()) + [
                ('all', everything)]:
            values.sort()
            print('  {:6} replies: {:6} median {:6.1f} ms, 99th percentile '
                  '{:6.1f} ms, slowest {:6.1f} ms, {} over {} ms'.format(
                      msg, len(values), 1000 * values[len(values) // 2],
                      1000 * values[int(len(values) * 0.99)],
                      1000 * values[-1],
                      sum(value > SLOW_REPLY for value in values),
                      int(SLOW_REPLY * 1000)))
        # the transfer is measured on an otherwise idle master: once the
        # pages held back during the run are written; and as one takes a
        # fraction of a second while other processes come and go on two
        # cores, the median of three
        waited = time.monotonic()
        last_second = wait_until_idle(master.pid)
        print('the master {} {:.0f} s after the run (its last second: '
              '{:.2f} s of CPU)'.format(
                  'went quiet' if last_second < IDLE_CPU else 'was still busy',
                  time.monotonic() - waited, last_second))
        rates = sorted(
            config.transfer_mb / measure_transfer(
                slave_port, file_port, config.transfer_mb * 1024 * 1024)
            for _ in range(3))
        print('transfer of a {} MB wheel: median {:.0f} MB/s (of {})'.format(
            config.transfer_mb, rates[1], ', '.join(
                '{:.0f}'.format(rate) for rate in rates)))
        logs = os.path.join(output, 'logs')
        print('pages written meanwhile: {} files under simple/, {} logs'.format(
            sum(len(files) for _, _, files in os.walk(
                os.path.join(output, 'simple'))),
            sum(len(files) for _, _, files in os.walk(logs))))
    except BaseException:
        with open(os.path.join(path, 'master.log')) as log:
            print('master log:', *log.readlines()[-30:], sep='\n',
                  file=sys.stderr)
        raise
    finally:
        if master is not None:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(60)
            except subprocess.TimeoutExpired:
                master.kill()
        if cluster is not None:
            cluster.stop()
        if config.keep:
            print('kept', path)
        else:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == '__main__':
    main()
