"""Tests of the piw-master command: a real process with a real database,
talked to as a monitor and by systemd would."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from piwheels import protocols, transport
from piwheels.master import batch_scheduling
from piwheels.protocols import SlaveStats

from ..fixtures.master import master_args, slave_hello
from ..fixtures.schema import run_sql

RUN_MASTER = [sys.executable, '-c',
              'import sys; from piwheels.master import main; sys.exit(main())']


def start_master(args, env=None):
    return subprocess.Popen(
        RUN_MASTER + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, env=env)


def finish(process, timeout=60):
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail('piw-master did not stop:\n' + out)
    return process.returncode, out


@pytest.fixture
def notify_socket(ipc_dir):
    path = os.path.join(ipc_dir, 'notify')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    yield path, sock
    sock.close()


@pytest.fixture
def running_master(with_build_abis, tmp_path, ipc_dir, notify_socket):
    """A piw-master process that has told systemd it is ready; yields
    ``(process, args)``."""
    path, sock = notify_socket
    output = tmp_path / 'output'
    output.mkdir()
    (output / '.incoming').mkdir()
    (output / '.incoming' / '3~foo-0.1-cp311-cp311-linux_x86_64.whl.part'
     ).write_bytes(b'half a wheel')
    args = master_args(with_build_abis[1], str(output), ipc_dir, '--oracles',
                       '2')
    env = dict(os.environ, NOTIFY_SOCKET=path)
    process = start_master(args, env)
    assert sock.recv(100) == b'READY=1'
    yield process, args, output
    if process.poll() is None:
        process.kill()
        process.communicate()


def option(args, name):
    return args[args.index(name) + 1]


def test_master_bad_dsn_is_one_line_error(tmp_path, ipc_dir):
    process = start_master(master_args(
        'postgresql://nobody:wrong@127.0.0.1:1/none', str(tmp_path), ipc_dir))
    code, out = finish(process)
    assert code != 0
    lines = out.strip().splitlines()
    assert lines[-1].startswith('piw-master: error: unable to connect')
    assert 'Traceback' not in out


def test_master_refuses_database_of_other_version(with_build_abis, tmp_path,
                                                  ipc_dir):
    run_sql(with_build_abis[0], "UPDATE configuration SET version = '0.0.1'")
    code, out = finish(start_master(master_args(
        with_build_abis[1], str(tmp_path), ipc_dir)))
    assert code != 0
    assert 'piw-master: error: the database is at version 0.0.1' in out


def test_master_bad_option_is_one_line_error(tmp_path, ipc_dir):
    code, out = finish(start_master(['--max-file-size', 'lots']))
    assert code == 2
    assert out.strip().startswith('piw-master: error:')


def test_master_ready_recovers_and_quits_on_request(running_master, peer):
    process, args, output = running_master
    # what a crash left in the output goes as FileJuggler starts
    deadline = time.monotonic() + 10
    while os.listdir(str(output / '.incoming')) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(str(output / '.incoming')) == []
    status = transport.Context.instance().socket(
        transport.SUB, protocol=protocols.monitor_status.reversed())
    status.connect(option(args, '--status-queue'))
    status.subscribe('')
    control = peer(transport.PUSH, protocols.master_control.reversed(),
                   connect=option(args, '--control-queue'))
    try:
        # a SUB socket takes a moment to subscribe: ask until heard
        for attempt in range(50):
            control.send('HELLO')
            if status.poll(0.2):
                break
        # the master also publishes its periodic STATS: skip to HELLO
        msg, info = status.recv_msg(timeout=5)
        while msg != 'HELLO':
            msg, info = status.recv_msg(timeout=5)
        assert info.piwheels_version
    finally:
        status.close(linger=0)
    control.send('QUIT')
    code, out = finish(process)
    assert code == 0, out
    assert 'quitting on request of a monitor' in out


def attach_monitor(args, peer):
    """Connect a monitor and say HELLO until the master answers; return its
    status queue (SUB) and control queue."""
    status = peer(transport.SUB, protocols.monitor_status.reversed(),
                  connect=option(args, '--status-queue'))
    status.socket.subscribe('')
    control = peer(transport.PUSH, protocols.master_control.reversed(),
                   connect=option(args, '--control-queue'))
    for attempt in range(50):
        control.send('HELLO')
        if status.socket.poll(0.2):
            break
    return status, control


def slave_events(status, action, timeout=10):
    """Return the slave events of *status* up to the first for *action*."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status.socket.poll(0.1):
            msg, data = status.recv()
            if msg == 'SLAVE':
                events.append(data)
                if data.action == action:
                    return events
    pytest.fail('no SLAVE {} event; got {!r}'.format(action, events))


def test_master_reports_slaves_to_each_monitor_that_says_hello(
        running_master, peer):
    """Once the last monitor has gone, the slaves' messages are no longer
    reported; a monitor arriving later gets them again from its HELLO on,
    the slaves replayed first."""
    process, args, output = running_master
    slave = peer(transport.REQ, protocols.slave_driver.reversed(),
                 connect=option(args, '--slave-queue'))
    first, _ = attach_monitor(args, peer)
    slave.send('HELLO', slave_hello('watched'))
    assert slave.recv()[0] == 'ACK'
    slave.send('IDLE', SlaveStats(
        datetime.now(timezone.utc), 10 ** 10, 5 * 10 ** 9, 10 ** 9,
        5 * 10 ** 8, 0, 0, 0.1, None))
    assert slave.recv()[0] in ('SLEEP', 'BUILD')
    assert slave_events(first, 'IDLE')[0].action == 'HELLO'
    first.close()
    # time for the master to notice (nothing it does shows it)
    time.sleep(2)
    second, _ = attach_monitor(args, peer)
    replayed = slave_events(second, 'HELLO')
    assert replayed[-1].data.label == 'watched'
    slave.send('BYE')
    assert slave_events(second, 'BYE')
    process.send_signal(signal.SIGTERM)
    code, out = finish(process)
    assert 'the last monitor left' in out


def children(pid):
    """Return the ids of the processes process *pid* started."""
    found = []
    for entry in os.listdir('/proc'):
        try:
            with open('/proc/{}/stat'.format(entry)) as f:
                if f.read().rsplit(')', 1)[1].split()[1] == str(pid):
                    found.append(int(entry))
        except (OSError, IndexError):
            pass
    return found


def task_processes(pid):
    """Return the ids of the processes running tasks of their own under the
    master *pid*, by task name."""
    found = {}
    for child in children(pid):
        with open('/proc/{}/comm'.format(child)) as comm:
            found.setdefault(comm.read().strip(), []).append(child)
    return found


def test_master_stops_cleanly_on_sigterm(running_master):
    process, args, output = running_master
    tasks = task_processes(process.pid)
    assert len(tasks['TheOracle']) == 2
    assert len(tasks['TheScribe']) == len(tasks['FileJuggler']) == 1
    process.send_signal(signal.SIGTERM)
    code, out = finish(process)
    assert code == 0, out
    assert 'shutting down on request' in out
    assert 'Traceback' not in out
    for pid in tasks['TheScribe'] + tasks['TheOracle'] + tasks['FileJuggler']:
        assert not os.path.exists('/proc/{}'.format(pid))


def test_master_threads_and_task_processes_are_batch_scheduled(
        running_master):
    process, args, output = running_master
    pids = [process.pid] + [
        pid for pids in task_processes(process.pid).values() for pid in pids]
    policies = {
        (pid, int(tid)): os.sched_getscheduler(int(tid))
        for pid in pids for tid in os.listdir('/proc/{}/task'.format(pid))}
    assert len(policies) > 10
    assert set(policies.values()) == {os.SCHED_BATCH}, policies


def test_batch_scheduling_leaves_a_policy_an_operator_chose():
    seen = []

    def thread():
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        seen.append(batch_scheduling())
        seen.append(os.sched_getscheduler(0))
    runner = threading.Thread(target=thread)
    runner.start()
    runner.join()
    assert seen == [False, os.SCHED_IDLE]


@pytest.mark.parametrize('task', ['TheScribe', 'TheOracle', 'FileJuggler'])
def test_master_stops_when_a_task_process_dies(running_master, task):
    process, args, output = running_master
    os.kill(task_processes(process.pid)[task][0], signal.SIGKILL)
    code, out = finish(process)
    assert code != 0
    assert '{} stopped unexpectedly'.format(task) in out


def test_master_that_cannot_make_its_output_says_why(with_build_abis,
                                                     tmp_path, ipc_dir):
    (tmp_path / 'file').write_text('not a directory')
    output = str(tmp_path / 'file' / 'output')
    code, out = finish(start_master(master_args(
        with_build_abis[1], output, ipc_dir)))
    assert code != 0
    assert out.strip().splitlines()[-1] == (
        'piw-master: error: unable to make the output directory {}: Not a '
        'directory'.format(output))


@pytest.mark.parametrize('queue, task', [('scribe', 'TheScribe'),
                                         ('oracle', 'TheOracle'),
                                         ('fs', 'FileJuggler'),
                                         ('stats', 'FileJuggler')])
def test_master_refuses_an_inproc_queue_to_a_task_process(tmp_path, ipc_dir,
                                                          queue, task):
    code, out = finish(start_master(master_args(
        'postgresql://nobody:wrong@127.0.0.1:1/none', str(tmp_path), ipc_dir,
        '--{}-queue'.format(queue), 'inproc://{}'.format(queue))))
    assert code != 0
    assert out.strip().splitlines()[-1] == (
        'piw-master: error: --{}-queue cannot be an inproc:// address: '
        '{} runs in a process of its own'.format(queue, task))
