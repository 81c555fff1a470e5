"""piw-slave against a scripted master: real sockets, real builds."""

import hashlib
import logging
import os
import socket
import threading
import time
from datetime import timedelta

import pytest

from piwheels import __version__, protocols, transport
from piwheels.exc import ConfigError
from piwheels.protocols import NoData
from piwheels.slave import (
    PiWheelsSlave, cpu_temperature, native_tags, slave_stats,
)
from piwheels.slave.builder import group_members
from piwheels.pgcluster import free_port

#: how long the scripted master waits for any message from the slave
RECV_TIMEOUT = 120


class ScriptedMaster:
    """The master's two sockets, played by the test: a ROUTER speaking
    ``slave_driver`` and a ROUTER speaking ``file_juggler_files``."""

    def __init__(self, context):
        self.slave_port = free_port()
        self.file_port = free_port()
        self.driver = context.socket(transport.ROUTER,
                                     protocol=protocols.slave_driver)
        self.driver.bind('tcp://127.0.0.1:{}'.format(self.slave_port))
        self.juggler = context.socket(transport.ROUTER,
                                      protocol=protocols.file_juggler_files)
        self.juggler.bind('tcp://127.0.0.1:{}'.format(self.file_port))
        self.address = None

    def recv(self, timeout=RECV_TIMEOUT):
        """Receive the slave's next request; remember who sent it."""
        self.address, msg, data = self.driver.recv_addr_msg(timeout=timeout)
        return msg, data

    def send(self, msg, data=NoData):
        self.driver.send_addr_msg(self.address, msg, data)

    def expect(self, expected, timeout=RECV_TIMEOUT):
        msg, data = self.recv(timeout)
        assert msg == expected, (msg, data)
        return data

    def hello(self, package_index, slave_id=1,
              build_timeout=timedelta(minutes=5)):
        """Take the slave's HELLO and welcome it; return the HELLO."""
        hello = self.expect('HELLO')
        self.send('ACK', protocols.SlaveAck(slave_id, package_index.url,
                                            build_timeout))
        return hello

    def build_until_done(self, package, version):
        """Send BUILD and answer BUSY with CONT until BUILT; return the
        result."""
        self.send('BUILD', protocols.BuildRequest(package, version))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            msg, data = self.recv()
            if msg == 'BUILT':
                return data
            assert msg == 'BUSY'
            self.send('CONT')
        raise AssertionError('build did not finish')

    def fetch_file(self, filesize, chunk_size=1000):
        """Receive a file over the juggler socket, as FileJuggler would (in
        out-of-order, overlapping FETCHes); return its bytes."""
        address, msg, slave_id = self.juggler.recv_addr_msg(
            timeout=RECV_TIMEOUT)
        assert msg == 'HELLO'
        data = bytearray(filesize)
        offsets = list(range(0, filesize, chunk_size))
        for offset in reversed(offsets):
            self.juggler.send_addr_msg(
                address, 'FETCH', protocols.Fetch(offset, chunk_size))
        for _ in offsets:
            address, msg, chunk = self.juggler.recv_addr_msg(
                timeout=RECV_TIMEOUT)
            assert msg == 'CHUNK'
            data[chunk.offset:chunk.offset + len(chunk.data)] = chunk.data
        self.juggler.send_addr_msg(address, 'DONE')
        return slave_id, bytes(data)

    def close(self):
        self.driver.close(linger=0)
        self.juggler.close(linger=0)


class RunningSlave:
    """A PiWheelsSlave run in a thread with a real parsed configuration."""

    def __init__(self, master, tmp_path, *args):
        self.build_dir = tmp_path / 'builds'
        self.build_dir.mkdir(exist_ok=True)
        self.slave = PiWheelsSlave()
        self.slave.sleep_interval = timedelta(seconds=0.1)
        self.slave.busy_interval = timedelta(seconds=0.5)
        self.config = self.slave.parse_args([
            '--master', '127.0.0.1',
            '--master-port', str(master.slave_port),
            '--file-port', str(master.file_port),
            '--dir', str(self.build_dir), '--label', 'testslave',
        ] + list(args))
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.result = self.slave.run(self.config)

    def join(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), 'slave did not stop'
        return self.result


@pytest.fixture
def master(zmq_context):
    master = ScriptedMaster(zmq_context)
    yield master
    master.close()


@pytest.fixture
def running(master, tmp_path):
    slaves = []

    def start(*args):
        slave = RunningSlave(master, tmp_path, *args)
        slaves.append(slave)
        return slave
    yield start
    for slave in slaves:
        slave.slave.terminating = True
        slave.thread.join(30)


def test_slave_hello_carries_versions_and_tags(master, running, package_index):
    slave = running('--timeout', '2h', '--master-timeout', '7m')
    hello = master.hello(package_index)
    assert hello.protocol_version == protocols.PROTOCOL_VERSION
    assert hello.piwheels_version == __version__
    assert (hello.py_version_tag, hello.abi_tag, hello.platform_tag) == \
        native_tags()
    assert hello.label == 'testslave'
    assert hello.build_timeout == timedelta(hours=2)
    assert hello.master_timeout == timedelta(minutes=7)
    stats = master.expect('IDLE')
    assert stats.disk_size > 0 and stats.mem_size > 0
    master.send('DIE', 'test over')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_logs_reason_for_die(master, running, package_index, caplog):
    caplog.set_level(logging.INFO)
    slave = running()
    master.expect('HELLO')
    master.send('DIE', 'slave version 0.0 is not the master\'s 9.9')
    master.expect('BYE')
    assert slave.join() == 0
    assert "master told this slave to stop: slave version 0.0 is not the " \
        "master's 9.9" in caplog.text


def test_slave_sleeps_then_asks_again(master, running, package_index):
    slave = running()
    master.hello(package_index)
    master.expect('IDLE')
    master.send('SLEEP')
    master.expect('IDLE')
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_says_bye_when_terminated(master, running, package_index):
    slave = running()
    master.hello(package_index)
    master.expect('IDLE')
    slave.slave.request_termination()
    master.send('SLEEP')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_builds_and_transfers_wheel(master, running, package_index,
                                          tmp_path):
    package_index.add_sdist('pure', 'piws-pure', '1.0')
    slave = running()
    master.hello(package_index, slave_id=42)
    master.expect('IDLE')
    result = master.build_until_done('piws-pure', '1.0')
    assert result.status and result.failure == ''
    [built] = result.files
    assert built.filename == 'piws_pure-1.0-py3-none-any.whl'
    assert built.requires_python == '>=3.7'
    assert 'piws-pure' in result.output
    master.send('SEND', built.filename)
    slave_id, data = master.fetch_file(built.filesize)
    assert slave_id == 42
    assert len(data) == built.filesize
    assert hashlib.sha256(data).hexdigest() == built.filehash
    master.expect('SENT')
    master.send('DONE')
    master.expect('IDLE')
    # the build's directory is gone once the master said DONE
    assert os.listdir(str(slave.build_dir)) == []
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_reports_failed_build(master, running, package_index):
    package_index.add_sdist('broken', 'piws-broken', '1.0')
    slave = running()
    master.hello(package_index)
    master.expect('IDLE')
    result = master.build_until_done('piws-broken', '1.0')
    assert not result.status
    assert result.failure == 'error'
    assert result.files == []
    assert 'piws-broken 1.0 refuses to build' in result.output
    master.send('DONE')
    master.expect('IDLE')
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_uses_build_timeout_from_ack(master, running, package_index):
    package_index.add_sdist('slow', 'piws-slow', '1.0')
    slave = running('--timeout', '3h')
    master.hello(package_index, build_timeout=timedelta(seconds=3))
    master.expect('IDLE')
    result = master.build_until_done('piws-slow', '1.0')
    assert not result.status
    assert result.failure == 'timeout'
    master.send('DONE')
    master.expect('IDLE')
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_abandons_build_when_master_says_done(
        master, running, package_index):
    package_index.add_sdist('slow', 'piws-cancelled', '1.0')
    slave = running()
    master.hello(package_index)
    master.expect('IDLE')
    master.send('BUILD', protocols.BuildRequest('piws-cancelled', '1.0'))
    master.expect('BUSY')
    deadline = time.monotonic() + 60
    while slave.slave.builder.pgid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pgid = slave.slave.builder.pgid
    assert pgid is not None
    master.send('DONE')
    master.expect('IDLE')
    assert group_members(pgid) == []
    assert os.listdir(str(slave.build_dir)) == []
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_restarts_from_hello_after_master_timeout(
        master, running, package_index, caplog):
    caplog.set_level(logging.INFO)
    slave = running('--master-timeout', '2s')
    master.hello(package_index, slave_id=1)
    master.expect('IDLE')
    first = master.address
    # the master falls silent; the slave reconnects and introduces itself
    master.expect('HELLO', timeout=30)
    assert master.address != first
    assert 'no reply from the master within 0:00:02; starting over' in \
        caplog.text
    master.send('ACK', protocols.SlaveAck(2, package_index.url,
                                          timedelta(minutes=5)))
    master.expect('IDLE')
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_abandons_build_when_master_is_silent(
        master, running, package_index):
    package_index.add_sdist('slow', 'piws-orphaned', '1.0')
    slave = running('--master-timeout', '2s')
    master.hello(package_index)
    master.expect('IDLE')
    master.send('BUILD', protocols.BuildRequest('piws-orphaned', '1.0'))
    master.expect('BUSY')
    master.expect('HELLO', timeout=60)
    assert slave.slave.builder is None
    assert os.listdir(str(slave.build_dir)) == []
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_starts_over_when_asked_for_unknown_file(
        master, running, package_index):
    package_index.add_sdist('pure', 'piws-unasked', '1.0')
    slave = running()
    master.hello(package_index)
    master.expect('IDLE')
    result = master.build_until_done('piws-unasked', '1.0')
    assert result.status
    master.send('SEND', 'other-1.0-py3-none-any.whl')
    master.expect('HELLO', timeout=30)
    assert os.listdir(str(slave.build_dir)) == []
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_starts_over_after_out_of_turn_reply(
        master, running, package_index, caplog):
    slave = running()
    master.hello(package_index)
    master.expect('IDLE')
    master.send('CONT')
    master.expect('HELLO', timeout=30)
    assert 'master answered IDLE with CONT' in caplog.text
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_writes_proven_file_after_ack(master, running, package_index,
                                            tmp_path):
    proven = tmp_path / 'state' / 'proven'
    proven.parent.mkdir()
    slave = running('--proven-file', str(proven))
    master.expect('HELLO')
    assert not proven.exists()
    master.send('ACK', protocols.SlaveAck(1, package_index.url,
                                          timedelta(minutes=5)))
    master.expect('IDLE')
    assert proven.read_text().startswith('proven ')
    assert os.listdir(str(proven.parent)) == ['proven']
    master.send('DIE', '')
    master.expect('BYE')
    assert slave.join() == 0


def test_slave_tells_systemd_it_is_ready_and_alive(
        master, running, package_index, tmp_path, monkeypatch):
    path = str(tmp_path / 'notify')
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(path)
    notify.settimeout(RECV_TIMEOUT)
    monkeypatch.setenv('NOTIFY_SOCKET', path)
    # a watchdog of 2s: the slave pings at least every half second
    monkeypatch.setenv('WATCHDOG_USEC', '2000000')
    monkeypatch.setenv('WATCHDOG_PID', str(os.getpid()))
    try:
        slave = running('--master-timeout', '1m')
        assert notify.recv(1024) == b'READY=1'
        master.expect('HELLO')
        # while the master keeps it waiting, the slave still pings
        pings = 0
        deadline = time.monotonic() + 60
        while pings < 3 and time.monotonic() < deadline:
            if notify.recv(1024) == b'WATCHDOG=1':
                pings += 1
        assert pings == 3
        master.send('DIE', '')
        master.expect('BYE')
        assert slave.join() == 0
        states = set()
        while b'STOPPING=1' not in states:
            states.add(notify.recv(1024))
    finally:
        notify.close()


def test_slave_refuses_missing_build_directory(tmp_path):
    slave = PiWheelsSlave()
    config = slave.parse_args(['--dir', str(tmp_path / 'missing')])
    with pytest.raises(ConfigError, match='does not exist'):
        slave.run(config)


def test_slave_refuses_unwritable_proven_file(tmp_path):
    slave = PiWheelsSlave()
    config = slave.parse_args([
        '--dir', str(tmp_path), '--proven-file',
        str(tmp_path / 'missing' / 'proven')])
    with pytest.raises(ConfigError, match='cannot write the proven file'):
        slave.run(config)


@pytest.mark.parametrize('args', [
    ['--master-port', '0'], ['--file-port', 'http'], ['--timeout', '0s'],
    ['--master-timeout', 'soon'],
])
def test_slave_refuses_bad_options(args):
    with pytest.raises(ConfigError):
        PiWheelsSlave().parse_args(args)


def test_slave_reads_configuration_file(tmp_path):
    config_file = tmp_path / 'piwheels.conf'
    config_file.write_text(
        '[slave]\nmaster = 10.0.0.1\ntimeout = 90m\n'
        'proven-file = /var/lib/piwheels/proven\n')
    config = PiWheelsSlave().parse_args(['-c', str(config_file)])
    assert config.master == '10.0.0.1'
    assert config.timeout == timedelta(minutes=90)
    assert config.proven_file == '/var/lib/piwheels/proven'


def test_slave_stats_describe_this_machine(tmp_path):
    stats = slave_stats(str(tmp_path))
    assert 0 < stats.disk_free <= stats.disk_size
    assert 0 < stats.mem_free <= stats.mem_size
    assert stats.swap_free <= stats.swap_size
    assert stats.load_average >= 0
    protocols.slave_driver.reversed().check('send', 'IDLE', stats)


def test_cpu_temperature_prefers_cpu_zone(tmp_path):
    for number, kind, millidegrees in [(0, 'acpitz', 30000),
                                       (1, 'x86_pkg_temp', 45500)]:
        zone = tmp_path / 'thermal_zone{}'.format(number)
        zone.mkdir()
        (zone / 'type').write_text(kind + '\n')
        (zone / 'temp').write_text('{}\n'.format(millidegrees))
    assert cpu_temperature(str(tmp_path)) == 45.5


def test_cpu_temperature_absent(tmp_path):
    assert cpu_temperature(str(tmp_path / 'none')) is None
