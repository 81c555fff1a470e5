"""Tests of TheArchitect: the build queue read from the test's PostgreSQL
and pushed to a scripted SlaveDriver."""

from datetime import datetime, timezone

import pytest

from piwheels import protocols, transport
from piwheels.master.seraph import Seraph
from piwheels.master.the_architect import TheArchitect
from piwheels.master.the_oracle import TheOracle

from ..fixtures.schema import run_sql
from .farm import RunningTasks


@pytest.fixture
def backend(master_config):
    tasks = RunningTasks(master_config, Seraph, TheOracle)
    yield tasks
    tasks.stop()


def test_architect_pushes_queue_per_abi(master_config, with_build_abis,
                                        backend, peer):
    run_sql(with_build_abis[0], "INSERT INTO packages (package) VALUES ('foo')")
    run_sql(with_build_abis[0], "INSERT INTO versions (package, version) "
            "VALUES ('foo', '0.1'), ('foo', '0.2')")
    driver = peer(transport.PULL, protocols.the_architect,
                  bind=master_config.builds_queue)
    before = datetime.now(timezone.utc)
    architect = TheArchitect(master_config)
    try:
        architect.update_build_queue()
        msg, queue = driver.recv()
    finally:
        architect.close()
    assert msg == 'QUEUE'
    assert before <= queue.queried_at <= datetime.now(timezone.utc)
    assert set(queue.queue) == {'cp39', 'cp311'}
    assert sorted(queue.queue['cp311']) == [('foo', '0.1'), ('foo', '0.2')]


def test_architect_survives_database_errors(master_config, with_build_abis,
                                            backend, peer, caplog):
    driver = peer(transport.PULL, protocols.the_architect,
                  bind=master_config.builds_queue)
    architect = TheArchitect(master_config)
    try:
        run_sql(with_build_abis[0],
                "REVOKE EXECUTE ON FUNCTION get_build_queue(INTEGER) "
                "FROM piwheels")
        architect.update_build_queue()
        assert 'unable to read the build queue' in caplog.text
        assert not driver.socket.poll(0.2)
    finally:
        architect.close()
