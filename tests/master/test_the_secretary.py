"""Tests of TheSecretary: requests over its real queues, its saved state in
the test's PostgreSQL through real Seraph and TheOracle threads."""

import argparse
from datetime import datetime, timedelta, timezone

import pytest

from piwheels import protocols, transport
from piwheels.exc import TransportError
from piwheels.master import the_secretary
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.master.the_secretary import TheSecretary
from piwheels.protocols import BuildLog, PackageVersion

from ..fixtures.schema import run_sql
from ..fixtures.zmq import poll_until
from .farm import RunningTasks

#: how long requests are held in these tests
DELAY = timedelta(seconds=0.3)


@pytest.fixture
def backend(master_config):
    tasks = RunningTasks(master_config, Seraph, TheOracle)
    yield tasks
    tasks.stop()


@pytest.fixture
def scribe(master_config, peer):
    """A PULL standing in for TheScribe."""
    return peer(transport.PULL, protocols.the_scribe, bind=master_config.scribe_queue)


@pytest.fixture
def secretary(master_config, backend, scribe, monkeypatch):
    monkeypatch.setattr(the_secretary, 'DELAY', DELAY)
    task = TheSecretary(master_config)
    task.once()
    yield task
    task.close()


@pytest.fixture
def web(master_config, peer):
    """A PUSH standing in for the tasks asking for pages."""
    return peer(transport.PUSH, protocols.the_secretary.reversed(),
                connect=master_config.web_queue)


def request(secretary, web, msg, data):
    web.send(msg, data)
    poll_until(secretary, lambda: not web_pending(secretary))


def web_pending(secretary):
    return secretary.web_queue.poll(0)


def assert_nothing(scribe):
    with pytest.raises(TransportError):
        scribe.recv(timeout=0.1)


def test_requests_are_held_and_merged(secretary, web, scribe):
    request(secretary, web, 'PROJECT', 'foo')
    request(secretary, web, 'BOTH', 'foo')
    request(secretary, web, 'PROJECT', 'foo')
    request(secretary, web, 'PROJECT', 'bar')
    secretary.handle_output()
    assert_nothing(scribe)
    poll_until(secretary, lambda: not secretary.buffer)
    assert scribe.recv() == ('BOTH', 'foo')
    assert scribe.recv() == ('PROJECT', 'bar')
    assert_nothing(scribe)


@pytest.mark.parametrize('msg, data', [
    ('HOME', None),
    ('SEARCH', {'foo': (1, 2)}),
    ('LOG', BuildLog(1, 'log')),
    ('DELPKG', 'foo'),
    ('DELVER', PackageVersion('foo', '1.0')),
    ('BOTH', None),
    ('PROJECT', None),
])
def test_other_requests_pass_straight_through(secretary, web, scribe, msg, data):
    if msg == 'HOME':
        data = protocols.MasterStats(
            datetime.now(timezone.utc), 0, {}, timedelta(0), 0, {}, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0.0, None, {}, None, None)
    request(secretary, web, msg, data)
    assert scribe.recv(timeout=1) == (msg, data)
    assert not secretary.buffer


def test_deletions_drop_held_requests(secretary, web, scribe):
    request(secretary, web, 'BOTH', 'foo')
    request(secretary, web, 'BOTH', 'bar')
    request(secretary, web, 'DELPKG', 'foo')
    request(secretary, web, 'DELVER', PackageVersion('bar', '1.0'))
    assert scribe.recv(timeout=1) == ('DELPKG', 'foo')
    assert scribe.recv(timeout=1) == ('DELVER', PackageVersion('bar', '1.0'))
    assert not secretary.buffer
    secretary.handle_output()
    assert_nothing(scribe)


def test_dev_mode_holds_requests_briefly(master_config, backend, scribe):
    master_config.dev_mode = True
    task = TheSecretary(master_config)
    try:
        assert task.delay == the_secretary.DEV_DELAY < the_secretary.DELAY
    finally:
        task.close()


def test_invalid_requests_are_dropped(secretary, master_config, peer, web, scribe):
    raw = peer(transport.PUSH, connect=master_config.web_queue)
    raw.send_raw(b'not cbor at all')
    poll_until(secretary, lambda: secretary.protocol_errors == 1)
    request(secretary, web, 'DELPKG', 'foo')
    assert scribe.recv(timeout=1) == ('DELPKG', 'foo')


def test_waiting_requests_are_taken_together(secretary, master_config, peer,
                                             web, scribe):
    raw = peer(transport.PUSH, connect=master_config.web_queue)
    web.send('BOTH', 'foo')
    raw.send_raw(b'not cbor at all')
    web.send('LOG', BuildLog(1, 'log of build 1'))
    web.send('PROJECT', 'bar')
    poll_until(secretary, lambda: len(secretary.buffer) == 2)
    assert secretary.protocol_errors == 1
    assert scribe.recv(timeout=1) == ('LOG', BuildLog(1, 'log of build 1'))
    assert [(package, command) for package, (due, command)
            in secretary.buffer.items()] == [('foo', 'BOTH'), ('bar', 'PROJECT')]


def test_builds_pass_their_logs_on_and_hold_their_pages(secretary, web,
                                                        scribe):
    request(secretary, web, 'BUILDS', [
        protocols.BuildPages(1, 'foo', True, 'log of build 1'),
        protocols.BuildPages(2, 'bar', False, 'log of build 2'),
        protocols.BuildPages(3, 'bar', True, 'log of build 3')])
    assert [scribe.recv(timeout=1) for _ in range(3)] == [
        ('LOG', BuildLog(build_id, 'log of build {}'.format(build_id)))
        for build_id in (1, 2, 3)]
    assert [(package, command) for package, (due, command)
            in secretary.buffer.items()] == [('foo', 'BOTH'), ('bar', 'BOTH')]
    assert_nothing(scribe)


def test_held_requests_wait_while_the_scribe_is_busy(master_config, backend, peer,
                                                     monkeypatch):
    monkeypatch.setattr(the_secretary, 'DELAY', timedelta(0))
    monkeypatch.setattr(the_secretary, 'SCRIBE_HWM', 1)
    task = TheSecretary(master_config)
    try:
        task.once()
        web = peer(transport.PUSH, protocols.the_secretary.reversed(),
                   connect=master_config.web_queue)
        for n in range(20):
            request(task, web, 'PROJECT', 'package{}'.format(n))
        # no scribe yet: the socket takes what its high-water mark allows,
        # the rest waits in the buffer
        task.handle_output()
        assert len(task.buffer) >= 20 - 2 * the_secretary.SCRIBE_HWM
        scribe = peer(transport.PULL, protocols.the_scribe, bind=master_config.scribe_queue)
        received = []
        for _ in range(40):
            task.handle_output()
            try:
                received.append(scribe.recv(timeout=0.1))
            except TransportError:
                pass
            if len(received) == 20:
                break
        assert received == [('PROJECT', 'package{}'.format(n)) for n in range(20)]
    finally:
        task.close()


def test_held_requests_survive_a_restart(master_config, backend, scribe, monkeypatch):
    monkeypatch.setattr(the_secretary, 'DELAY', timedelta(hours=1))
    first = TheSecretary(master_config)
    first.once()
    web = first.ctx.socket(transport.PUSH, protocol=protocols.the_secretary.reversed())
    web.connect(master_config.web_queue)
    try:
        web.send_msg('PROJECT', 'foo')
        web.send_msg('BOTH', 'bar')
        web.send_msg('PROJECT', 'bar')
        poll_until(first, lambda: len(first.buffer) == 2)
    finally:
        web.close(linger=0)
        first.close()
    rows = run_sql(master_config.dsn, 'SELECT package, command FROM rewrites_pending '
                                      'ORDER BY package')
    assert rows == [('bar', 'BOTH'), ('foo', 'PROJECT')]
    monkeypatch.setattr(the_secretary, 'DELAY', timedelta(0))
    # a restarted master is a new process; here the first secretary's inproc
    # address may not be free yet (ZeroMQ closes sockets in the background)
    restarted = argparse.Namespace(**vars(master_config))
    restarted.web_queue += '-restarted'
    second = TheSecretary(restarted)
    try:
        second.once()
        assert list(second.buffer) == ['foo', 'bar']
        second.handle_output()
        assert scribe.recv(timeout=1) == ('PROJECT', 'foo')
        assert scribe.recv(timeout=1) == ('BOTH', 'bar')
    finally:
        second.close()
    assert run_sql(master_config.dsn, 'SELECT * FROM rewrites_pending') == []
