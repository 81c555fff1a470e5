"""Tests of BigBrother: statistics from the other tasks and the test's
PostgreSQL, sent to scripted monitors and web output queues."""

import os
from datetime import datetime, timezone

import pytest

from piwheels import protocols, transport
from piwheels.master.big_brother import BigBrother, memory_stats
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.protocols import DiskUsage, SlaveCounts

from ..fixtures.zmq import poll_until
from .farm import RunningTasks


@pytest.fixture
def queues(master_config, peer):
    class Queues:
        status = peer(transport.PULL, protocols.master_status,
                      bind=master_config.int_status_queue)
        web = peer(transport.PULL, protocols.the_secretary,
                   bind=master_config.web_queue)
    return Queues


@pytest.fixture
def big_brother(master_config, queues):
    tasks = RunningTasks(master_config, Seraph, TheOracle)
    task = BigBrother(master_config)
    yield task
    task.close()
    tasks.stop()


def test_big_brother_combines_statistics(master_config, big_brother, queues,
                                         peer):
    stats = peer(transport.PUSH, protocols.big_brother.reversed(),
                 connect=master_config.stats_queue)
    built = datetime(2024, 1, 2, tzinfo=timezone.utc)
    stats.send('STATFS', DiskUsage(1000, 400))
    stats.send('STATSLAVES', SlaveCounts({'idle': 2, 'building': 1}, built))
    poll_until(big_brother, lambda: big_brother.last_build is not None)
    # the first cycle gathered statistics before these arrived
    queues.status.socket.drain()
    queues.web.socket.drain()
    big_brother.gen_stats()
    msg, latest = queues.status.recv()
    assert msg == 'STATS'
    assert (latest.disk_size, latest.disk_free) == (1000, 400)
    assert latest.slaves == {'idle': 2, 'building': 1}
    assert latest.last_build == built
    assert latest.builds_pending == {'cp39': 0, 'cp311': 0}
    assert latest.mem_size > 0
    assert queues.web.recv() == ('HOME', latest)


def test_big_brother_replays_stats_to_new_monitor(big_brother, queues):
    big_brother.poll(0)     # the first cycle gathers statistics
    first = queues.status.recv()
    big_brother.replay_stats()
    big_brother.poll(1)
    assert queues.status.recv() == first


def test_big_brother_without_its_output_goes_on(master_config, big_brother,
                                               queues, caplog):
    output = master_config.output_path
    os.rename(output, output + '.away')
    big_brother.gen_stats()
    assert "unable to read the output's disk space" in caplog.text
    assert not queues.status.socket.poll(0.2)
    os.rename(output + '.away', output)
    big_brother.gen_stats()
    assert queues.status.recv()[0] == 'STATS'


def test_big_brother_search_index(big_brother, queues):
    big_brother.gen_search()
    assert queues.web.recv() == ('SEARCH', {})


def test_memory_stats_without_meminfo(tmp_path):
    assert memory_stats(str(tmp_path / 'missing')) == (0, 0, 0, 0)
