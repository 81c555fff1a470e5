"""The task runtime: handlers, periodic jobs, control messages, pausing and errors."""

import argparse
import logging
import os
import signal
import time
from datetime import timedelta

import pytest

from piwheels import protocols, transport
from piwheels.exc import MasterError, TransportError
from piwheels.pgcluster import free_port
from piwheels.protocols import NoData, Protocol
from piwheels.tasks import (
    NonStopTask, PauseableTask, PausingTask, Task, TaskControl, TaskProcess,
    TaskQuit)
from tests.fixtures.zmq import RECV_TIMEOUT, inproc_address, poll_until

ECHO = Protocol(name='echo', recv={
    'PING': int,        # answered with PONG and the number plus one
    'REFUSE': NoData,   # the handler raises a PiwheelsError
    'CRASH': NoData,    # the handler has a bug
}, send={
    'PONG': int,
    'PAUSED': NoData,
})

RESETTING_CONTROL = Protocol(
    name='resetting_control',
    recv=dict(protocols.task_control.recv, RESET=int))


class EchoMixin:
    """Answers PING n with PONG n+1 on a ROUTER queue and counts ticks of a
    periodic job."""

    def __init__(self, config, address, **kwargs):
        super().__init__(config, **kwargs)
        self.ticks = 0
        self.echo_queue = self.socket(transport.ROUTER, protocol=ECHO)
        self.echo_queue.bind(address)
        self.register(self.echo_queue, self.handle_echo)
        self.every(timedelta(hours=1), self.tick)

    def tick(self):
        self.ticks += 1

    def handle_echo(self, queue):
        addr, msg, data = queue.recv_addr_msg()
        if msg == 'PING':
            queue.send_addr_msg(addr, 'PONG', data + 1)
        elif msg == 'REFUSE':
            raise TransportError('the other end went away')
        else:
            raise RuntimeError('a bug in the handler')


class PauseableEcho(EchoMixin, PauseableTask):
    pass


class NonStopEcho(EchoMixin, NonStopTask):
    pass


class PausingEcho(EchoMixin, PausingTask):
    pass


class AnsweringPausingEcho(EchoMixin, PausingTask):
    def handle_paused(self, queue):
        addr, msg, data = queue.recv_addr_msg()
        queue.send_addr_msg(addr, 'PAUSED')


class ResettingEcho(EchoMixin, NonStopTask):
    """Takes an extra control message, RESET n, setting its tick count."""

    def __init__(self, config, address):
        super().__init__(config, address, control_protocol=RESETTING_CONTROL)

    def reset(self, ticks):
        self.send_control('RESET', ticks)

    def handle_control(self, queue):
        try:
            super().handle_control(queue)
        except TaskControl as ctrl:
            if ctrl.msg != 'RESET':
                raise
            self.ticks = ctrl.data


class ForgetfulEcho(EchoMixin, NonStopTask):
    """Declares RESET in its control protocol but never handles it."""

    def __init__(self, config, address):
        super().__init__(config, address, control_protocol=RESETTING_CONTROL)


@pytest.fixture
def config():
    return argparse.Namespace()


@pytest.fixture
def address():
    return inproc_address('echo')


@pytest.fixture
def make_task(config, address):
    """Factory building a task of the given class on ``address``; every task
    is closed (and, if started, stopped) after the test."""
    tasks = []

    def make(cls):
        tasks.append(cls(config, address))
        return tasks[-1]

    yield make
    for task in tasks:
        if task.is_alive():
            task.quit()
            task.join(RECV_TIMEOUT)
        task.close()


@pytest.fixture
def client(peer, address):
    return peer(transport.DEALER, ECHO.reversed(), connect=address)


def test_task_is_abstract(config):
    with pytest.raises(TypeError):
        Task(config)


def test_task_thread_named_after_class(make_task):
    assert make_task(PauseableEcho).name == 'PauseableEcho'


def test_task_periodic_handler_runs_on_first_poll_only(make_task):
    task = make_task(PauseableEcho)
    task.poll(0)
    task.poll(0)
    assert task.ticks == 1


def test_task_force_runs_periodic_handler_again(make_task):
    task = make_task(PauseableEcho)
    task.poll(0)
    task.force(task.tick)
    task.poll(0)
    assert task.ticks == 2


def test_task_force_unknown_handler(make_task):
    task = make_task(PauseableEcho)
    with pytest.raises(ValueError):
        task.force(task.close)


def test_task_every_needs_timedelta(make_task):
    task = make_task(PauseableEcho)
    with pytest.raises(ValueError):
        task.every(60, task.close)


def test_task_handler_answers_message(make_task, client):
    task = make_task(PauseableEcho)
    client.send('PING', 41)
    task.poll(RECV_TIMEOUT)
    assert client.recv() == ('PONG', 42)


def test_task_poll_without_timeout_waits_for_a_message(make_task, client):
    task = make_task(PauseableEcho)
    task.poll(0)
    client.send('PING', 1)
    task.poll(None)
    assert client.recv() == ('PONG', 2)


def test_task_quit_raises_task_quit(make_task):
    task = make_task(PauseableEcho)
    task.quit()
    with pytest.raises(TaskQuit):
        task.poll(RECV_TIMEOUT)


def test_task_custom_control_message(make_task):
    task = make_task(ResettingEcho)
    task.reset(10)
    poll_until(task, lambda: task.ticks == 10)


def test_task_unhandled_control_message_is_a_bug(make_task):
    task = make_task(ForgetfulEcho)
    task.send_control('RESET', 10)
    with pytest.raises(TaskControl):
        poll_until(task, lambda: False)


def test_pauseable_task_leaves_queues_while_paused(make_task, client):
    task = make_task(PauseableEcho)
    task.poll(0)
    task.pause()
    poll_until(task, lambda: task.paused)
    client.send('PING', 1)
    assert task.echo_queue.poll(RECV_TIMEOUT)
    task.force(task.tick)
    task.poll(0.1)
    # the message is still queued and the periodic job did not run
    assert task.echo_queue.poll(0)
    assert task.ticks == 1
    task.resume()
    poll_until(task, lambda: not task.paused)
    task.poll(RECV_TIMEOUT)
    assert client.recv() == ('PONG', 2)


def test_pauseable_task_pause_is_idempotent(make_task):
    task = make_task(PauseableEcho)
    task.pause()
    task.pause()
    poll_until(task, lambda: task.paused)
    task.poll(0.1)
    assert task.paused
    task.resume()
    poll_until(task, lambda: not task.paused)


def test_pauseable_task_quits_while_paused(make_task):
    task = make_task(PauseableEcho)
    task.pause()
    poll_until(task, lambda: task.paused)
    task.quit()
    with pytest.raises(TaskQuit):
        poll_until(task, lambda: False)


def test_non_stop_task_ignores_pause(make_task, client):
    task = make_task(NonStopEcho)
    task.pause()
    task.poll(RECV_TIMEOUT)
    assert not task.paused
    client.send('PING', 1)
    task.poll(RECV_TIMEOUT)
    assert client.recv() == ('PONG', 2)


def test_pausing_task_drains_queues_while_paused(make_task, client):
    task = make_task(PausingEcho)
    task.pause()
    poll_until(task, lambda: task.paused)
    client.send('PING', 1)
    assert task.echo_queue.poll(RECV_TIMEOUT)
    task.poll(RECV_TIMEOUT)
    # the default handle_paused discarded the message: no reply later either
    assert not task.echo_queue.poll(0)
    task.resume()
    poll_until(task, lambda: not task.paused)
    client.send('PING', 2)
    task.poll(RECV_TIMEOUT)
    assert client.recv() == ('PONG', 3)


def test_pausing_task_answers_while_paused(make_task, client):
    task = make_task(AnsweringPausingEcho)
    task.poll(0)
    task.pause()
    poll_until(task, lambda: task.paused)
    client.send('PING', 1)
    task.poll(RECV_TIMEOUT)
    assert client.recv() == ('PAUSED', NoData)
    assert task.ticks == 1


def test_task_piwheels_error_is_logged_and_task_goes_on(
        make_task, client, caplog):
    task = make_task(NonStopEcho)
    client.send('REFUSE')
    client.send('PING', 1)
    poll_until(task, lambda: task.handler_errors == 1)
    task.poll(RECV_TIMEOUT)
    assert client.recv() == ('PONG', 2)
    assert ('NonStopEcho: handle_echo failed: the other end went away'
            in caplog.messages)


def test_running_task_survives_bad_messages(make_task, client, caplog):
    caplog.set_level(logging.INFO, logger='piwheels.tasks')
    task = make_task(NonStopEcho)
    task.start()
    client.send_raw(b'\xff\x00 not CBOR at all')
    client.send_raw(transport.encode('FROB', 1))
    client.send_raw(transport.encode('PING', 'forty-one'))
    client.send_raw(b'\x81' * 10000 + b'\x00')
    client.send('PING', 41)
    assert client.recv() == ('PONG', 42)
    assert task.protocol_errors == 4
    errors = [record.getMessage() for record in caplog.records
              if record.levelno == logging.ERROR]
    assert len(errors) == 4
    assert all(text.startswith('NonStopEcho: invalid message ignored: echo:')
               and '\n' not in text for text in errors)
    assert 'invalid CBOR' in errors[0]
    assert "unknown action 'FROB'" in errors[1]
    assert 'PING: expected int, got str' in errors[2]
    assert 'nested deeper than' in errors[3]
    task.quit()
    task.join(RECV_TIMEOUT)
    assert not task.is_alive()
    assert task.failure is None
    assert 'NonStopEcho: stopped' in caplog.messages


def test_running_task_stops_on_a_bug(make_task, client, caplog):
    task = make_task(NonStopEcho)
    task.start()
    client.send('CRASH')
    task.join(RECV_TIMEOUT)
    assert not task.is_alive()
    assert isinstance(task.failure, RuntimeError)
    record, = [record for record in caplog.records
               if record.levelno == logging.CRITICAL]
    assert record.getMessage() == (
        'NonStopEcho: stopped by an unexpected error')
    assert 'a bug in the handler' in caplog.text
    assert 'Traceback' in caplog.text
    assert task.echo_queue.closed and task.control_queue.closed


def test_quit_a_stopped_task_is_harmless(make_task):
    task = make_task(PauseableEcho)
    task.start()
    task.quit()
    task.join(RECV_TIMEOUT)
    assert not task.is_alive()
    task.quit()
    task.pause()


def test_task_close_closes_its_sockets(make_task):
    task = make_task(PauseableEcho)
    task.close()
    assert task.echo_queue.closed and task.control_queue.closed


class ProcessEcho(EchoMixin, PauseableTask):
    """An echo task built from its configuration alone, as the master builds
    a task it runs in a process of its own."""

    niceness = 5

    def __init__(self, config):
        super().__init__(config, config.address)


@pytest.fixture
def echo_process(ipc_dir):
    """Factory: a :class:`TaskProcess` running :class:`ProcessEcho` on an
    ipc:// address (returned with it); each is stopped after the test."""
    processes = []

    def make(address=None):
        config = argparse.Namespace(
            address=address or 'ipc://{}/echo'.format(ipc_dir),
            log_file=None, verbosity=logging.WARNING)
        processes.append(TaskProcess(ProcessEcho, config, ipc_dir))
        return processes[-1], config.address

    yield make
    for process in processes:
        if process.is_alive():
            process.kill()


def test_task_process_runs_the_task_and_quits(echo_process, peer):
    task, address = echo_process()
    task.start()
    task.wait_started()
    assert task.name == 'ProcessEcho' and task.pid != os.getpid()
    client = peer(transport.DEALER, ECHO.reversed(), connect=address)
    client.send('PING', 41)
    assert client.recv() == ('PONG', 42)
    assert os.getpriority(os.PRIO_PROCESS, task.pid) == min(
        19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    task.quit()
    task.join(RECV_TIMEOUT)
    assert not task.is_alive()
    assert task.failure is None


def test_task_processes_of_one_task_are_told_apart(echo_process, peer,
                                                    ipc_dir):
    first, address = echo_process()
    second, other = echo_process('ipc://{}/other'.format(ipc_dir))
    for task in first, second:
        task.start()
    for task in first, second:
        task.wait_started()
    with open('/proc/{}/comm'.format(second.pid)) as comm:
        assert comm.read().strip() == 'ProcessEcho'
    first.quit()
    first.join(RECV_TIMEOUT)
    assert not first.is_alive()
    client = peer(transport.DEALER, ECHO.reversed(), connect=other)
    client.send('PING', 1)
    assert client.recv() == ('PONG', 2)


def test_task_process_pauses_and_resumes(echo_process, peer):
    task, address = echo_process()
    task.start()
    task.wait_started()
    client = peer(transport.DEALER, ECHO.reversed(), connect=address)
    task.pause()
    # PAUSE travels through the process's relay, PING straight to the task
    time.sleep(1)
    client.send('PING', 1)
    with pytest.raises(TransportError):
        client.recv(timeout=1)
    task.resume()
    assert client.recv() == ('PONG', 2)


def test_task_process_failure_is_reported(echo_process, peer):
    task, address = echo_process()
    task.start()
    task.wait_started()
    client = peer(transport.DEALER, ECHO.reversed(), connect=address)
    client.send('CRASH')
    task.join(RECV_TIMEOUT)
    assert not task.is_alive()
    assert str(task.failure) == 'ProcessEcho exited with code 1'


def test_task_process_that_cannot_start_says_why(echo_process, peer):
    task, address = echo_process(
        'tcp://127.0.0.1:{}'.format(free_port()))
    peer(transport.ROUTER, ECHO, bind=address)
    task.start()
    with pytest.raises(MasterError) as exc:
        task.wait_started()
    assert str(exc.value).startswith('ProcessEcho: ')
    assert 'in use' in str(exc.value) and '\n' not in str(exc.value)
    assert not task.is_alive()


def test_task_process_stops_cleanly_on_sigterm(echo_process):
    task, address = echo_process()
    task.start()
    task.wait_started()
    os.kill(task.pid, signal.SIGTERM)
    task.join(RECV_TIMEOUT)
    assert not task.is_alive()
    assert task.failure is None
