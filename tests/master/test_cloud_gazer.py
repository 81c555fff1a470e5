"""Tests of CloudGazer against a stand-in PyPI on 127.0.0.1 (its XML-RPC
changelog and JSON API), with real Seraph and TheOracle threads and the
test's PostgreSQL. CloudGazer is driven synchronously by the test."""

from datetime import timedelta

import pytest

from piwheels import protocols, transport
from piwheels.exc import PyPIError
from piwheels.master import PiWheelsMaster
from piwheels.master.cloud_gazer import CloudGazer
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.pgcluster import free_port
from piwheels.pypi import PyPIEvents, get_project, is_pure_wheel

from ..fixtures.master import master_args
from ..fixtures.schema import run_sql
from .farm import RunningTasks


@pytest.fixture
def gazer_config(with_build_abis, tmp_path, ipc_dir, fake_pypi):
    def make(*extra):
        output = tmp_path / 'output'
        output.mkdir(exist_ok=True)
        return PiWheelsMaster().parse_args(master_args(
            with_build_abis[1], str(output), ipc_dir, '--oracles', '1',
            '--pypi-xmlrpc', fake_pypi.url, '--pypi-json', fake_pypi.url,
            *extra))
    return make


@pytest.fixture
def farm(gazer_config, peer):
    """A CloudGazer (following the changelog unless given other options)
    with the database tasks behind it and peers on its outgoing queues."""
    made = []

    def make(*extra):
        config = gazer_config(*extra)
        tasks = RunningTasks(config, Seraph, TheOracle)

        class Farm:
            web = peer(transport.PULL, protocols.the_secretary,
                       bind=config.web_queue)
            deletions = peer(transport.PULL,
                             protocols.slave_driver_deletions,
                             bind=config.deletions_queue)
            stats = peer(transport.PULL, protocols.big_brother,
                         bind=config.stats_queue)
            gazer = CloudGazer(config)
        Farm.config = config
        made.append((tasks, Farm.gazer))
        return Farm
    yield make
    for tasks, gazer in made:
        gazer.close()
        tasks.stop()


def database(dsn):
    """Return the packages and versions in the database like
    :meth:`FakePyPI.expected_database`."""
    result = {
        package: (description, {})
        for package, description in run_sql(
            dsn, "SELECT package, description FROM packages")
    }
    for package, version, released, skip, yanked in run_sql(
            dsn, "SELECT package, version, released, skip, yanked "
            "FROM versions"):
        result[package][1][version] = (released, skip, yanked)
    return result


def serial(dsn):
    return run_sql(dsn, "SELECT pypi_serial FROM configuration")[0][0]


def drain(peer_queue):
    """Return every message waiting on a peer."""
    messages = []
    while peer_queue.socket.poll(0.2):
        messages.append(peer_queue.recv())
    return messages


def follow(farm, pypi, dsn, limit=50):
    """Have CloudGazer read the changelog until it has all of it, then
    sweep twice for deleted packages."""
    for _ in range(limit):
        if serial(dsn) == pypi.last_serial:
            break
        farm.gazer.backoff.succeeded()
        farm.gazer.read_changelog()
    assert serial(dsn) == pypi.last_serial
    farm.gazer.purge_deleted()
    farm.gazer.purge_deleted()


def record_history(pypi):
    """A stream of PyPI events with one of each kind that matters."""
    pypi.create('Foo.Bar', 'The foo of bars')
    pypi.release('Foo.Bar', '1.0')
    pypi.upload('Foo.Bar', '1.0', 'Foo.Bar-1.0.tar.gz')
    pypi.noise('Foo.Bar')
    pypi.release('Foo.Bar', '1.1')
    pypi.upload('Foo.Bar', '1.1', 'Foo.Bar-1.1-cp311-cp311-linux_x86_64.whl')
    pypi.create('purelib', 'Pure library')
    pypi.release('purelib', '2.0')
    pypi.upload('purelib', '2.0', 'purelib-2.0.tar.gz')
    pypi.upload('purelib', '2.0', 'purelib-2.0-py3-none-any.whl')
    pypi.release('purelib', '2.1')
    pypi.upload('purelib', '2.1', 'purelib-2.1.tar.gz')
    pypi.upload('purelib', '2.1', 'purelib-2.1-py2.py3-none-any.whl')
    pypi.create('onlywheels', 'Wheels only')
    pypi.release('onlywheels', '0.1')
    pypi.upload('onlywheels', '0.1', 'onlywheels-0.1-cp39-cp39-linux_x86_64.whl')
    pypi.create('gone', 'Soon gone')
    pypi.release('gone', '1.0')
    pypi.upload('gone', '1.0', 'gone-1.0.tar.gz')
    pypi.release('Foo.Bar', '0.9')
    pypi.upload('Foo.Bar', '0.9', 'Foo.Bar-0.9.tar.gz')
    pypi.create('OldName', 'Renamed later')
    pypi.release('OldName', '3.0')
    pypi.upload('OldName', '3.0', 'OldName-3.0.tar.gz')
    pypi.release('OldName', '3.1')
    pypi.upload('OldName', '3.1', 'OldName-3.1.tar.gz')
    pypi.yank('OldName', '3.1')
    # later on...
    pypi.upload('Foo.Bar', '1.1', 'Foo.Bar-1.1.tar.gz')  # source comes later
    pypi.yank('Foo.Bar', '1.1')
    pypi.yank('purelib', '2.0')
    pypi.yank('Foo.Bar', '1.1', yanked=False)
    pypi.remove_release('Foo.Bar', '0.9')
    pypi.remove_project('gone')
    pypi.rename('OldName', 'NewName')
    pypi.remove_file('purelib', '2.1', 'purelib-2.1-py2.py3-none-any.whl')


def test_pure_wheel_names():
    assert is_pure_wheel('foo-1.0-py3-none-any.whl')
    assert is_pure_wheel('foo-1.0-py2.py3-none-any.whl')
    assert is_pure_wheel('foo-1.0-py310-none-any.whl')
    assert not is_pure_wheel('foo-1.0-py2-none-any.whl')
    assert not is_pure_wheel('foo-1.0-cp311-abi3-linux_x86_64.whl')
    assert not is_pure_wheel('foo-1.0.tar.gz')


def test_cloud_gazer_replays_changelog_into_database(farm, fake_pypi,
                                                     with_build_abis):
    record_history(fake_pypi)
    f = farm()
    follow(f, fake_pypi, with_build_abis[0])
    expected = fake_pypi.expected_database()
    assert set(expected) == {'foo-bar', 'purelib', 'onlywheels', 'newname'}
    assert database(with_build_abis[0]) == expected
    # the outcome, spelled out
    versions = expected['foo-bar'][1]
    assert versions['1.0'][1:] == ('', False)
    assert versions['1.1'][1:] == ('', False)
    assert expected['purelib'][1]['2.0'][1:] == (
        'pure Python wheel on PyPI', True)
    assert expected['purelib'][1]['2.1'][1] == ''
    assert expected['onlywheels'][1]['0.1'][1] == 'binary only'
    assert expected['newname'][1]['3.1'][2] is True
    # the names PyPI spells them with are kept
    names = {row[0] for row in run_sql(
        with_build_abis[0], "SELECT name FROM package_names")}
    assert {'Foo.Bar', 'NewName'} <= names
    # deletions reached SlaveDriver and the web output
    deletions = drain(f.deletions)
    assert ('DELVER', protocols.PackageVersion('foo-bar', '0.9')) in deletions
    assert ('DELPKG', 'gone') in deletions
    assert ('DELPKG', 'oldname') in deletions
    web = drain(f.web)
    assert ('DELPKG', 'gone') in web
    assert ('BOTH', 'foo-bar') in web
    assert ('STATPYPI' in {msg for msg, data in drain(f.stats)})


def test_cloud_gazer_builds_only_what_it_should(farm, fake_pypi,
                                                with_build_abis):
    record_history(fake_pypi)
    follow(farm(), fake_pypi, with_build_abis[0])
    queued = {
        (package, version) for package, version in run_sql(
            with_build_abis[0],
            "SELECT DISTINCT package, version FROM build_queue")}
    assert queued == {('foo-bar', '1.0'), ('foo-bar', '1.1'),
                      ('purelib', '2.1'), ('newname', '3.0'),
                      ('newname', '3.1')}


def test_cloud_gazer_serial_saved_only_after_events_written(
        farm, fake_pypi, with_build_abis):
    dsn = with_build_abis[0]
    fake_pypi.create('alpha', 'Alpha')
    fake_pypi.release('alpha', '1.0')
    fake_pypi.upload('alpha', '1.0', 'alpha-1.0.tar.gz')
    fake_pypi.remove_file('alpha', '1.0', 'alpha-1.0.tar.gz')
    fake_pypi.batch_size = 10
    f = farm()
    start = serial(dsn)
    # the JSON API fails when the removed file's release is looked up: the
    # batch is not finished, so its serial is not stored
    fake_pypi.fail(None, 503)
    f.gazer.read_changelog()
    assert serial(dsn) == start
    assert f.gazer.backoff.delay == timedelta(seconds=10)
    # the next attempt (when due) reads the batch again and finishes it
    follow(f, fake_pypi, dsn)
    assert database(dsn) == fake_pypi.expected_database()
    assert database(dsn)['alpha'][1]['1.0'][1] == 'binary only'


@pytest.mark.parametrize('fault', [503, 'garbage', 'fault'])
def test_cloud_gazer_backs_off_when_pypi_fails(farm, fake_pypi,
                                               with_build_abis, fault):
    dsn = with_build_abis[0]
    fake_pypi.create('alpha', 'Alpha')
    f = farm()
    fake_pypi.fail(fault, fault)
    f.gazer.read_changelog()
    assert f.gazer.backoff.delay == timedelta(seconds=10)
    assert serial(dsn) == 0
    # not due yet: PyPI is not asked
    requests = len(fake_pypi.requests)
    f.gazer.read_changelog()
    assert len(fake_pypi.requests) == requests
    f.gazer.backoff.retry_at = 0
    f.gazer.read_changelog()
    assert f.gazer.backoff.delay == timedelta(seconds=20)
    f.gazer.backoff.retry_at = 0
    f.gazer.read_changelog()
    assert f.gazer.backoff.delay is None
    assert serial(dsn) == fake_pypi.last_serial
    assert 'alpha' in database(dsn)


def test_cloud_gazer_backs_off_when_pypi_refuses_connections(
        farm, fake_pypi, with_build_abis):
    f = farm('--pypi-xmlrpc', 'http://127.0.0.1:{}/pypi'.format(free_port()))
    for expected in (10, 20, 40):
        f.gazer.backoff.retry_at = 0
        f.gazer.read_changelog()
        assert f.gazer.backoff.delay == timedelta(seconds=expected)
    assert f.gazer.failure is None
    assert serial(with_build_abis[0]) == 0


def test_cloud_gazer_description_failure_is_not_fatal(
        farm, fake_pypi, with_build_abis):
    dsn = with_build_abis[0]
    fake_pypi.create('alpha', 'Alpha')
    fake_pypi.release('alpha', '1.0')
    fake_pypi.upload('alpha', '1.0', 'alpha-1.0.tar.gz')
    f = farm()
    fake_pypi.requests.clear()
    # the changelog answers; the description's GET fails
    fake_pypi.faults.extend([None, 503])
    f.gazer.read_changelog()
    assert serial(dsn) == fake_pypi.last_serial
    assert database(dsn)['alpha'] == ('', {
        '1.0': fake_pypi.expected_database()['alpha'][1]['1.0']})


def test_changelog_garbage_entries_are_refused(fake_pypi):
    fake_pypi.log.append(('alpha', None, 'yesterday', 'create', 5000))
    with pytest.raises(PyPIError):
        PyPIEvents(fake_pypi.url).since(0)


def test_cloud_gazer_follows_project_list(farm, fake_pypi, with_build_abis):
    dsn = with_build_abis[0]
    fake_pypi.create('Alpha', 'The first')
    fake_pypi.release('Alpha', '1.0')
    fake_pypi.upload('Alpha', '1.0', 'Alpha-1.0.tar.gz')
    fake_pypi.release('Alpha', '1.1')
    fake_pypi.upload('Alpha', '1.1', 'Alpha-1.1-py3-none-any.whl')
    fake_pypi.release('Alpha', '1.2')
    fake_pypi.upload('Alpha', '1.2', 'Alpha-1.2.tar.gz')
    fake_pypi.create('beta', 'The second')
    fake_pypi.release('beta', '0.1')
    fake_pypi.upload('beta', '0.1', 'beta-0.1-cp311-cp311-linux_x86_64.whl')
    fake_pypi.create('unfollowed', 'Not in the list')
    f = farm('--pypi-projects', 'alpha', 'beta', 'missing')
    f.gazer.read_projects()
    assert database(dsn) == {
        canon: data for canon, data in
        fake_pypi.expected_database(released='upload').items()
        if canon != 'unfollowed'}
    assert not any(method == 'POST' for method, path in fake_pypi.requests)
    # PyPI moves on: a yank, a source for beta, a removed release
    fake_pypi.yank('Alpha', '1.0')
    fake_pypi.upload('beta', '0.1', 'beta-0.1.tar.gz')
    fake_pypi.remove_release('Alpha', '1.2')
    f.gazer.read_projects()
    assert database(dsn) == {
        canon: data for canon, data in
        fake_pypi.expected_database(released='upload').items()
        if canon != 'unfollowed'}
    assert ('DELVER', protocols.PackageVersion('alpha', '1.2')) in drain(
        f.deletions)
    # nothing changed: each project costs a 304
    fake_pypi.requests.clear()
    f.gazer.read_projects()
    assert len(fake_pypi.requests) == 3
    # a failing project is retried later, the others carry on
    fake_pypi.remove_project('beta')
    fake_pypi.fail(503)
    f.gazer.read_projects()
    assert f.gazer.project_backoff['alpha'].delay == timedelta(seconds=10)
    assert 'beta' in database(dsn)
    assert run_sql(dsn, "SELECT skip FROM packages WHERE package = 'beta'"
                   ) == [('deleted',)]
    f.gazer.purge_deleted()
    f.gazer.purge_deleted()
    assert set(database(dsn)) == {'alpha'}


def test_json_api_garbage_is_an_error(fake_pypi):
    fake_pypi.create('alpha', 'A')
    fake_pypi.fail('garbage')
    with pytest.raises(PyPIError):
        get_project(fake_pypi.url, 'alpha')
    assert get_project(fake_pypi.url, 'alpha').summary == 'A'
    assert get_project(fake_pypi.url, 'nothing') is None
