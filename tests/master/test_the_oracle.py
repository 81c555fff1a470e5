"""Tests of TheOracle behind Seraph: DbClient calls over real sockets to
worker threads using the test's PostgreSQL."""

from datetime import timedelta

import pytest

from piwheels import protocols, transport
from piwheels.exc import DatabaseError
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import DbClient, TheOracle
from piwheels.states import BuildState, FileState

from .farm import RunningTasks, wheel


@pytest.fixture
def db_client(master_config):
    tasks = RunningTasks(master_config, Seraph, TheOracle, TheOracle)
    client = DbClient(master_config)
    yield client
    client.close()
    tasks.stop()


def build_state(package='foo', version='0.1', files=()):
    return BuildState(1, package, version, 'cp311', bool(files),
                      timedelta(seconds=5), 'log',
                      [FileState(*file) for file in files],
                      failure='' if files else 'error')


def test_oracle_packages_and_queue(db_client):
    assert db_client.add_new_package('foo', '', 'A foo')
    assert not db_client.add_new_package('foo')
    assert db_client.add_new_package_version('foo', '0.1')
    assert db_client.test_package('foo')
    assert db_client.test_package_version('foo', '0.1')
    assert db_client.get_all_packages() == {'foo'}
    assert db_client.get_build_abis() == {'cp39', 'cp311'}
    queue = db_client.get_build_queue(10)
    assert queue == {'cp39': [('foo', '0.1')], 'cp311': [('foo', '0.1')]}


def test_oracle_log_builds_batch(db_client):
    db_client.add_new_package('foo')
    db_client.add_new_package_version('foo', '0.1')
    file, content = wheel()
    first, second, unknown = db_client.log_builds([
        build_state(files=[file]),
        build_state(files=[file._replace(filehash='0' * 64)]),
        build_state(package='nope')])
    assert first.build_id and first.new_files == {file.filename}
    assert second.build_id and second.conflicts == {file.filename}
    assert unknown.build_id is None and unknown.error
    assert db_client.get_package_files('foo') == {
        file.filename: file.filehash}


def test_oracle_error_reply_raises(db_client):
    with pytest.raises(DatabaseError):
        db_client.add_new_package_version('missing', '1.0')
    # the workers carry on
    assert db_client.get_all_packages() == set()


def test_oracle_statistics(db_client):
    stats = db_client.get_statistics()
    assert isinstance(stats, protocols.DatabaseStats)
    assert stats.builds_pending == {'cp39': 0, 'cp311': 0}


def test_seraph_queues_requests_while_workers_busy(master_config, peer):
    """More requests than workers: every one is answered, in turn."""
    tasks = RunningTasks(master_config, Seraph, TheOracle)
    try:
        clients = [
            peer(transport.DEALER, protocols.the_oracle.reversed(),
                 connect=master_config.db_queue) for _ in range(5)]
        for client in clients:
            client.send('ALLPKGS')
        for client in clients:
            assert client.recv(timeout=10) == ('ALLPKGS', set())
    finally:
        tasks.stop()


def test_oracle_answers_invalid_request_with_error(master_config, peer):
    """A request that fails its schema is refused with ERROR, so the client
    is not left waiting, and the worker carries on."""
    tasks = RunningTasks(master_config, Seraph, TheOracle)
    try:
        client = peer(transport.DEALER, protocols.the_oracle.reversed(),
                      connect=master_config.db_queue)
        client.send_raw(b'', transport.encode('LOGPAGE', [['faq.html']]))
        msg, error = client.recv(timeout=10)
        assert msg == 'ERROR'
        assert error.startswith('the_oracle: LOGPAGE: ')
        client.send_raw(b'', transport.encode('ALLPKGS'))
        assert client.recv(timeout=10) == ('ALLPKGS', set())
    finally:
        tasks.stop()
