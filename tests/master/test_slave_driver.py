"""Tests of SlaveDriver: a scripted slave over real sockets, with real
FileJuggler, Seraph and TheOracle threads and the test's PostgreSQL."""

import os
from datetime import datetime, timedelta, timezone

import pytest

from piwheels import protocols, transport
from piwheels.master import slave_driver
from piwheels.master.file_juggler import FileJuggler
from piwheels.master.seraph import Seraph
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master.the_oracle import TheOracle
from piwheels.protocols import BuildQueue, PackageVersion

from ..fixtures.schema import run_sql
from ..fixtures.zmq import poll_until
from .farm import RunningTasks, ScriptedSlave, result, stats, wheel


@pytest.fixture
def backend(master_config):
    tasks = RunningTasks(master_config, Seraph, TheOracle, FileJuggler)
    yield tasks
    tasks.stop()


@pytest.fixture
def queues(master_config, peer):
    """The peers of SlaveDriver's outgoing queues, and a PUSH standing in
    for TheArchitect."""
    class Queues:
        status = peer(transport.PULL, protocols.master_status,
                      bind=master_config.int_status_queue)
        web = peer(transport.PULL, protocols.the_secretary,
                   bind=master_config.web_queue)
        stats = peer(transport.PULL, protocols.big_brother,
                     bind=master_config.stats_queue)
    return Queues


@pytest.fixture
def driver(master_config, backend, queues):
    task = SlaveDriver(master_config)
    yield task
    task.close()


@pytest.fixture
def slaves(master_config):
    made = []

    def make(label='slave1', abi='cp311'):
        made.append(ScriptedSlave(master_config, label, abi))
        return made[-1]
    yield make
    for slave in made:
        slave.close()


@pytest.fixture
def slave(master_config, with_build_abis, driver, slaves, peer):
    """A slave that said HELLO and was told to BUILD foo 0.1."""
    add_version(with_build_abis[0])
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    slave = slaves()
    slave.hello(driver)
    msg, job = slave.request('IDLE', stats(), driver)
    assert (msg, tuple(job)) == ('BUILD', ('foo', '0.1'))
    return slave


def add_version(dsn, package='foo', version='0.1'):
    run_sql(dsn, "INSERT INTO packages (package) VALUES (:p) "
            "ON CONFLICT DO NOTHING", p=package)
    run_sql(dsn, "INSERT INTO versions (package, version) VALUES (:p, :v)",
            p=package, v=version)


def queue_builds(master_config, peer, driver, *versions, abi='cp311'):
    """Hand SlaveDriver a build queue, as TheArchitect would."""
    architect = peer(transport.PUSH, protocols.the_architect.reversed(),
                     connect=master_config.builds_queue)
    architect.send('QUEUE', BuildQueue(datetime.now(timezone.utc), {
        abi: [PackageVersion(*v) for v in versions]}))
    poll_until(driver, lambda: driver.queues.get(abi))


def recv_polling(driver, queue):
    """Receive from *queue* what SlaveDriver sends once it has run."""
    poll_until(driver, lambda: queue.socket.poll(0))
    return queue.recv()


def builds(with_build_abis):
    return run_sql(with_build_abis[0],
                   "SELECT package, version, abi_tag, status, failure "
                   "FROM builds ORDER BY build_id")


def test_slave_driver_hello_clamps_build_timeout(master_config, driver, slaves):
    slave = slaves()
    msg, ack = slave.hello(driver, build_timeout=timedelta(hours=10))
    assert msg == 'ACK'
    assert ack.build_timeout == timedelta(hours=3)
    assert ack.pypi_url == master_config.pypi_simple


def test_slave_driver_rejects_other_version(driver, slaves, caplog):
    slave = slaves()
    msg, reason = slave.hello(driver, version='0.0.1')
    assert msg == 'DIE'
    assert '0.0.1' in reason and 'upgrade' in reason
    assert 'rejecting slave slave1' in caplog.text


def test_slave_driver_idle_without_queue_sleeps(driver, slaves):
    slave = slaves()
    slave.hello(driver)
    assert slave.request('IDLE', stats(), driver) == ('SLEEP', protocols.NoData)


def test_slave_driver_build_transfer_and_publish(
        master_config, with_build_abis, driver, queues, slave):
    assert slave.request('BUSY', stats(), driver) == ('CONT', protocols.NoData)
    file, content = wheel()
    msg, filename = slave.request('BUILT', result([(file, content)]), driver)
    assert (msg, filename) == ('SEND', file.filename)
    slave.transfer(content)
    assert slave.request('SENT', driver=driver) == ('DONE', protocols.NoData)
    published = os.path.join(master_config.output_path, 'simple', 'foo',
                             file.filename)
    poll_until(driver, lambda: os.path.exists(published))
    with open(published, 'rb') as f:
        assert f.read() == content
    assert builds(with_build_abis) == [('foo', '0.1', 'cp311', True, None)]
    msg, pages = recv_polling(driver, queues.web)
    assert msg == 'BUILDS'
    assert [(build.package, build.both, build.output) for build in pages] == [
        ('foo', True, 'build log')]
    assert os.listdir(os.path.join(master_config.output_path,
                                   '.incoming')) == []


def test_slave_driver_failed_build_recorded(
        with_build_abis, driver, queues, slave):
    reply = slave.request(
        'BUILT', result(status=False, failure='error', output='it broke'),
        driver)
    assert reply == ('DONE', protocols.NoData)
    poll_until(driver, lambda: builds(with_build_abis))
    assert builds(with_build_abis) == [('foo', '0.1', 'cp311', False, 'error')]
    msg, pages = recv_polling(driver, queues.web)
    assert msg == 'BUILDS'
    assert [(build.package, build.both, build.output) for build in pages] == [
        ('foo', False, 'it broke')]


def test_slave_driver_sends_long_logs_in_several_requests(driver, queues,
                                                         monkeypatch):
    monkeypatch.setattr(slave_driver, 'WEB_BATCH_OUTPUT', 10)
    pages = [protocols.BuildPages(build_id, 'foo', False, output)
             for build_id, output in ((1, 'abcdef'), (2, 'ghij'), (3, 'klm'),
                                      (4, 'x' * 20))]
    driver.write_pages(pages)
    requests = [recv_polling(driver, queues.web) for _ in range(3)]
    assert requests == [('BUILDS', pages[:2]), ('BUILDS', pages[2:3]),
                        ('BUILDS', pages[3:])]


def test_slave_driver_never_hands_one_version_to_two_slaves(
        master_config, with_build_abis, driver, slaves, peer):
    add_version(with_build_abis[0])
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    first, second = slaves('one'), slaves('two')
    first.hello(driver)
    second.hello(driver)
    assert first.request('IDLE', stats(), driver)[0] == 'BUILD'
    # the architect's next queue still lists the version being built
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    assert second.request('IDLE', stats(), driver)[0] == 'SLEEP'


def test_slave_driver_finished_build_not_handed_out_from_stale_queue(
        master_config, with_build_abis, driver, slaves, peer):
    add_version(with_build_abis[0])
    queued_at = datetime.now(timezone.utc)
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    first, second = slaves('one'), slaves('two')
    first.hello(driver)
    second.hello(driver)
    first.request('IDLE', stats(), driver)
    first.request('BUILT', result(status=False, failure='error'), driver)
    poll_until(driver, lambda: builds(with_build_abis))
    poll_until(driver, lambda: not driver.active)
    # a queue queried before the build was recorded
    architect = peer(transport.PUSH, protocols.the_architect.reversed(),
                     connect=master_config.builds_queue)
    architect.send('QUEUE', BuildQueue(queued_at, {
        'cp311': [PackageVersion('foo', '0.1')]}))
    poll_until(driver, lambda: driver.queues['cp311'])
    assert second.request('IDLE', stats(), driver)[0] == 'SLEEP'


def test_slave_driver_transient_failure_retried_on_another_slave(
        master_config, with_build_abis, driver, slaves, peer):
    add_version(with_build_abis[0])
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    first, second = slaves('one'), slaves('two')
    first.hello(driver)
    second.hello(driver)
    first.request('IDLE', stats(), driver)
    first.request('BUILT', result(status=False, failure='network'), driver)
    poll_until(driver, lambda: builds(with_build_abis))
    # the database queues it again (attempt 2 of 3)
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    poll_until(driver, lambda: not driver.active)
    driver.recorded.clear()
    assert first.request('IDLE', stats(), driver)[0] == 'SLEEP'
    msg, job = second.request('IDLE', stats(), driver)
    assert (msg, tuple(job)) == ('BUILD', ('foo', '0.1'))


def test_slave_driver_filename_with_path_abandons_build(
        master_config, driver, peer, caplog, slave):
    file, content = wheel()
    evil = list(file.as_message())
    evil[0] = '../../etc/foo-0.1-cp311-cp311-linux_x86_64.whl'
    raw = [True, 1.0, '', [evil], '']
    slave.queue.send_multipart([transport.encode('BUILT', raw)])
    poll_until(driver, lambda: slave.queue.poll(0))
    assert slave.queue.recv_msg() == ('DONE', protocols.NoData)
    assert 'contains a path' in caplog.text
    assert not driver.active
    assert os.listdir(master_config.output_path) == ['.incoming']
    # the version comes back with the architect's next queue
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    assert slave.request('IDLE', stats(), driver)[0] == 'BUILD'


def test_slave_driver_tells_monitors_every_message(driver, slaves, queues):
    slave = slaves()
    slave.hello(driver)
    slave.request('IDLE', stats(), driver)
    events = [queues.status.recv()[1] for _ in range(4)]
    assert [event.action for event in events] == [
        'HELLO', 'ACK', 'IDLE', 'SLEEP']
    assert {event.slave_id for event in events} == {slave.slave_id}
    assert events[0].data.label == 'slave1'


def test_slave_driver_quiet_until_a_monitor_says_hello(driver, slaves,
                                                      queues):
    """With no monitor listening the slaves' messages are not reported; a
    monitor's HELLO replays the slaves and has them reported again."""
    driver.stop_reporting()
    driver.poll(1)
    slave = slaves()
    slave.hello(driver)
    slave.request('IDLE', stats(), driver)
    assert not queues.status.socket.poll(0.5)
    driver.list_slaves()
    driver.poll(1)
    slave.request('IDLE', stats(), driver)
    events = [queues.status.recv()[1] for _ in range(5)]
    assert [event.action for event in events] == [
        'HELLO', 'IDLE', 'SLEEP',    # the replay
        'IDLE', 'SLEEP']


def test_slave_driver_kill_sends_die(driver, slaves):
    slave = slaves()
    slave.hello(driver)
    driver.kill_slave(slave.slave_id)
    driver.poll(1)
    assert slave.request('IDLE', stats(), driver) == ('DIE', '')


def test_slave_driver_sleep_and_wake(master_config, with_build_abis, driver,
                                     slaves, peer):
    add_version(with_build_abis[0])
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    slave = slaves()
    slave.hello(driver)
    driver.sleep_slave(None)
    driver.poll(1)
    assert slave.request('IDLE', stats(), driver)[0] == 'SLEEP'
    driver.wake_slave(slave.slave_id)
    driver.poll(1)
    assert slave.request('IDLE', stats(), driver)[0] == 'BUILD'


def test_slave_driver_skip_abandons_build(driver, slave):
    driver.skip_slave(slave.slave_id)
    driver.poll(1)
    assert slave.request('BUSY', stats(), driver) == ('DONE', protocols.NoData)
    slave.request('IDLE', stats(), driver)
    assert not driver.active


def test_slave_driver_pause_answers_sleep(master_config, with_build_abis,
                                          driver, slaves, peer):
    add_version(with_build_abis[0])
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    slave = slaves()
    slave.hello(driver)
    driver.pause()
    driver.poll(1)
    assert slave.request('IDLE', stats(), driver)[0] == 'SLEEP'
    driver.resume()
    driver.poll(1)
    assert slave.request('IDLE', stats(), driver)[0] == 'BUILD'


def test_slave_driver_ignores_unknown_slave(driver, slaves, caplog):
    slave = slaves()
    slave.queue.send_msg('IDLE', stats())
    driver.poll(1)
    assert 'IDLE from an unknown slave ignored' in caplog.text
    assert not slave.queue.poll(0.2)


def test_slave_driver_silent_slave_expires_and_build_goes_to_another(
        master_config, with_build_abis, driver, slaves, peer, caplog):
    add_version(with_build_abis[0])
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    first, second = slaves('one'), slaves('two')
    first.hello(driver)
    second.hello(driver)
    assert first.request('IDLE', stats(), driver)[0] == 'BUILD'
    # the first slave vanishes mid-build: nothing heard for longer than its
    # timeout
    for slave in driver.slaves.values():
        if slave.label == 'one':
            slave.last_seen -= master_config.slave_timeout * 2
    driver.remove_expired()
    assert 'fell silent' in caplog.text
    assert 'will be retried' in caplog.text
    queue_builds(master_config, peer, driver, ('foo', '0.1'))
    msg, job = second.request('IDLE', stats(), driver)
    assert (msg, tuple(job)) == ('BUILD', ('foo', '0.1'))


def test_slave_driver_rejects_wheel_over_size_cap(
        master_config, with_build_abis, driver, caplog, slave):
    file, content = wheel()
    file = file._replace(filesize=master_config.max_file_size + 1)
    reply = slave.request('BUILT', result([(file, content)]), driver)
    assert reply == ('DONE', protocols.NoData)
    assert 'more than the' in caplog.text
    poll_until(driver, lambda: builds(with_build_abis))
    assert builds(with_build_abis) == [('foo', '0.1', 'cp311', False, 'error')]
    assert os.listdir(master_config.output_path) == ['.incoming']


def test_slave_driver_corrupt_transfer_sent_again_then_fails(
        master_config, with_build_abis, driver, caplog, slave):
    file, content = wheel()
    msg, filename = slave.request('BUILT', result([(file, content)]), driver)
    attempts = 0
    while msg == 'SEND':
        attempts += 1
        slave.transfer(content, corrupt=lambda offset, data: b'X' * len(data))
        msg, filename = slave.request('SENT', driver=driver)
    assert msg == 'DONE'
    assert attempts == master_config.transfer_retries + 1
    assert 'giving up' in caplog.text
    poll_until(driver, lambda: builds(with_build_abis))
    assert builds(with_build_abis) == [
        ('foo', '0.1', 'cp311', False, 'network')]
    assert not os.path.exists(os.path.join(master_config.output_path, 'simple'))
    assert os.listdir(os.path.join(master_config.output_path, '.incoming')) == []


@pytest.mark.parametrize('outcome_first', [True, False])
def test_slave_driver_slave_gone_before_sent_leaves_nothing_staged(
        master_config, with_build_abis, driver, caplog, slave, outcome_first):
    """A slave vanishing between sending its wheel and saying SENT: the
    wheel FileJuggler verified and staged for it (before telling it DONE)
    is deleted, whether SlaveDriver heard of it before forgetting the slave
    or after."""
    file, content = wheel()
    msg, filename = slave.request('BUILT', result([(file, content)]), driver)
    assert msg == 'SEND'
    slave.transfer(content)
    incoming = os.path.join(master_config.output_path, '.incoming')
    assert os.listdir(incoming) == ['{}~foo~{}.staged'.format(
        slave.slave_id, filename)]
    if outcome_first:
        poll_until(driver, lambda: driver.transfers[slave.slave_id].outcome)
    for state in driver.slaves.values():
        state.last_seen -= master_config.slave_timeout * 2
    driver.remove_expired()
    assert 'will be retried' in caplog.text
    poll_until(driver, lambda: not os.listdir(incoming))
    assert not os.path.exists(os.path.join(master_config.output_path,
                                           'simple'))


def test_slave_driver_replays_slaves_for_a_new_monitor(driver, slaves,
                                                       queues, slave):
    busy = stats()
    assert slave.request('BUSY', busy, driver) == ('CONT', protocols.NoData)
    events = [queues.status.recv()[1] for _ in range(6)]
    assert [event.action for event in events] == [
        'HELLO', 'ACK', 'IDLE', 'BUILD', 'BUSY', 'CONT']
    state, = driver.slaves.values()
    asked = datetime.now(timezone.utc)
    driver.list_slaves()
    driver.poll(1)
    # the monitor learns the build and when it began, and the last
    # statistics and when they came, not just the last reply
    replayed = [queues.status.recv()[1] for _ in range(4)]
    assert [event.action for event in replayed] == [
        'HELLO', 'BUILD', 'BUSY', 'CONT']
    assert tuple(replayed[1].data) == ('foo', '0.1')
    assert replayed[1].timestamp == state.build_started < asked
    assert replayed[2].data == busy
    assert replayed[2].timestamp == state.last_seen < asked
