"""Tests of piwheels.master.db: every Database method against a real PostgreSQL cluster."""

from datetime import datetime, timedelta, timezone

import pytest

from piwheels.exc import DatabaseError
from piwheels.master.db import (
    DELETED, Database, LoggedBuild, ProjectFilesRow, ProjectVersionsRow,
    RewritePendingRow,
)
from piwheels.states import (
    BuildState, DownloadState, FileState, JSONState, PageState, ProjectState,
    SearchState,
)

from ..fixtures.schema import FOO_HASH, FOO_WHEEL, run_sql

UTC = timezone.utc


def wheel(filename, filehash='a' * 64, size=1000, requires_python=None,
          apt=()):
    """A FileState for *filename*, its tags taken from the name."""
    package, version, py_tag, abi_tag, platform = filename[:-4].split('-')
    return FileState(filename, size, filehash, package, version, py_tag,
                     abi_tag, platform, requires_python,
                     {'apt': set(apt)} if apt else {})


def build(package, version, abi, *files, status=True, failure='', slave=1):
    """A BuildState of *package* *version* for *abi* with *files*."""
    return BuildState(slave, package, version, abi, status,
                      timedelta(seconds=42), 'the build log', list(files),
                      failure=failure)


def ua_fields():
    return dict(
        arch='armv7l', distro_name='Raspbian GNU/Linux', distro_version='12',
        os_name='Linux', os_version='6.1', py_name='CPython',
        py_version='3.11.2', installer_name='pip', installer_version='23.0.1',
        setuptools_version='66.1.1')


def download(filename, when=None, host='192.0.2.1'):
    return DownloadState(filename, host, when or datetime.now(UTC), **ua_fields())


# The connection ------------------------------------------------------------

def test_database_refuses_dsn_that_does_not_connect(pg_cluster):
    dead = 'postgresql://piwheels:piwheels@127.0.0.1:1/nothing'
    with pytest.raises(DatabaseError) as info:
        Database(dead)
    assert 'unable to connect' in str(info.value)
    assert 'piwheels:piwheels' not in str(info.value)


def test_database_refuses_superuser(with_schema):
    with pytest.raises(DatabaseError) as info:
        Database(with_schema[0])
    assert 'superuser' in str(info.value)


def test_database_refuses_uninitialized_database(empty_db):
    with pytest.raises(DatabaseError) as info:
        Database(empty_db[1])
    assert 'piw-initdb' in str(info.value)


def test_database_refuses_other_version(with_schema, superuser_sql):
    superuser_sql("UPDATE configuration SET version = '0.0.9'")
    with pytest.raises(DatabaseError) as info:
        Database(with_schema[1])
    assert 'version 0.0.9' in str(info.value)


def test_database_reconnects_after_losing_connection(db, with_schema, superuser_sql):
    assert db.get_pypi_serial() == 0
    superuser_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE usename = 'piwheels'")
    with pytest.raises(DatabaseError):
        db.get_pypi_serial()
    assert db.get_pypi_serial() == 0


def test_database_error_is_one_line(db, with_schema):
    with pytest.raises(DatabaseError) as info:
        db.add_new_package_version('nosuchpackage', '1.0')
    assert '\n' not in str(info.value)
    assert 'violates foreign key' in str(info.value)


def test_master_role_cannot_write_tables(with_build):
    for sql in ("DELETE FROM builds", "DELETE FROM downloads",
                "INSERT INTO packages (package) VALUES ('bar')",
                "UPDATE configuration SET pypi_serial = 1",
                "TRUNCATE build_queue", "CREATE TABLE foo (bar INTEGER)"):
        with pytest.raises(Exception) as info:
            run_sql(with_build[1], sql)
        assert 'permission denied' in str(info.value)
    assert run_sql(with_build[0], "SELECT count(*) FROM builds") == [(1,)]


# Packages and versions ----------------------------------------------------

def test_add_new_package(db, with_schema, superuser_sql):
    assert db.add_new_package('foo', description='A foo')
    assert not db.add_new_package('foo', description='Another')
    assert db.add_new_package('bar', skip='binary only')
    assert superuser_sql(
        "SELECT package, skip, description FROM packages ORDER BY package") == [
            ('bar', 'binary only', ''), ('foo', '', 'A foo')]


def test_add_new_package_version(db, with_package, superuser_sql):
    released = datetime(2021, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert db.add_new_package_version('foo', '1.0', released)
    assert not db.add_new_package_version('foo', '1.0')
    assert db.add_new_package_version('foo', '2.0', skip='broken',
                                      requires_python='>=3.10')
    rows = superuser_sql(
        "SELECT version, released, skip, requires_python FROM versions "
        "ORDER BY version")
    assert rows[0] == ('1.0', released, '', '')
    assert rows[1][0] == '2.0' and rows[1][2:] == ('broken', '>=3.10')
    assert abs(rows[1][1] - datetime.now(UTC)) < timedelta(minutes=1)


def test_add_new_package_version_of_unknown_package(db, with_schema, superuser_sql):
    with pytest.raises(DatabaseError):
        db.add_new_package_version('nosuchpackage', '1.0')
    assert superuser_sql("SELECT count(*) FROM versions") == [(0,)]


def test_package_names(db, with_package):
    assert db.get_package_aliases('foo') == []
    assert db.get_project_display_name('foo') == 'foo'
    db.add_package_name('foo', 'Foo', datetime(2020, 1, 1, tzinfo=UTC))
    db.add_package_name('foo', 'FOO', datetime(2021, 1, 1, tzinfo=UTC))
    db.add_package_name('foo', 'foo', datetime(2019, 1, 1, tzinfo=UTC))
    assert db.get_package_aliases('foo') == ['FOO', 'Foo']
    assert db.get_project_display_name('foo') == 'FOO'
    # seeing an alias again moves its time on, never back
    db.add_package_name('foo', 'Foo', datetime(2022, 1, 1, tzinfo=UTC))
    db.add_package_name('foo', 'FOO', datetime(2000, 1, 1, tzinfo=UTC))
    assert db.get_project_display_name('foo') == 'Foo'


def test_package_description(db, with_package):
    assert db.get_package_description('foo') == 'A foo package'
    assert db.get_package_description('bar') is None
    db.set_package_description('foo', 'x' * 300)
    assert db.get_package_description('foo') == 'x' * 200


def test_test_package_and_version(db, with_package_version):
    assert db.test_package('foo')
    assert not db.test_package('bar')
    assert db.test_package_version('foo', '0.1')
    assert not db.test_package_version('foo', '0.2')
    assert not db.test_package_version('bar', '0.1')


def test_get_all_packages_and_versions(db, with_package_version):
    db.add_new_package('bar')
    db.add_new_package_version('bar', '1.0')
    db.add_new_package_version('bar', '2.0')
    assert db.get_all_packages() == {'foo', 'bar'}
    assert db.get_all_package_versions() == {
        ('foo', '0.1'), ('bar', '1.0'), ('bar', '2.0')}


def test_skip_package(db, with_package_version):
    db.skip_package('foo', 'too big')
    assert db.get_version_skip('foo', '0.1') == 'too big'
    assert db.get_build_queue() == {'cp39': [], 'cp311': []}
    db.skip_package('foo', '')
    assert db.get_version_skip('foo', '0.1') == ''
    assert db.get_build_queue() == {'cp39': [('foo', '0.1')],
                                    'cp311': [('foo', '0.1')]}


def test_skip_package_version(db, with_package_version):
    db.add_new_package_version('foo', '0.2')
    db.skip_package_version('foo', '0.1', 'broken sdist')
    assert db.get_version_skip('foo', '0.1') == 'broken sdist'
    assert db.get_version_skip('foo', '0.2') == ''
    assert db.get_version_skip('foo', '9.9') is None
    assert db.get_build_queue()['cp311'] == [('foo', '0.2')]
    # the package's reason wins over the version's
    db.skip_package('foo', 'withdrawn')
    assert db.get_version_skip('foo', '0.1') == 'withdrawn'


def test_marked_deleted(db, with_package_version):
    db.add_new_package_version('foo', '0.2')
    assert not db.package_marked_deleted('foo')
    assert db.get_versions_deleted('foo') == set()
    db.skip_package_version('foo', '0.2', DELETED)
    assert db.get_versions_deleted('foo') == {'0.2'}
    db.skip_package('foo', DELETED)
    assert db.package_marked_deleted('foo')
    assert 'foo' not in db.get_search_index()


def test_get_packages_deleted(db, with_package):
    db.add_new_package('bar')
    assert db.get_packages_deleted() == set()
    db.skip_package('bar', DELETED)
    assert db.get_packages_deleted() == {'bar'}


def test_yank_and_unyank_version(db, with_package_version):
    db.yank_version('foo', '0.1', 'security hole')
    release = db.get_project_data('foo')['releases']['0.1']
    assert (release['yanked'], release['yank_reason']) == (True, 'security hole')
    db.unyank_version('foo', '0.1')
    release = db.get_project_data('foo')['releases']['0.1']
    assert (release['yanked'], release['yank_reason']) == (False, '')


def test_set_version_requires_python(db, with_package_version):
    db.set_version_requires_python('foo', '0.1', '>=3.10')
    assert db.get_build_queue() == {'cp39': [], 'cp311': [('foo', '0.1')]}
    abis = db.get_project_data('foo')['releases']['0.1']['abis']
    assert abis['cp39']['status'] == 'not applicable'


def test_delete_package(db, with_build, superuser_sql):
    db.delete_package('foo')
    assert not db.test_package('foo')
    for table in ('versions', 'builds', 'files', 'dependencies', 'build_queue'):
        assert superuser_sql("SELECT count(*) FROM {}".format(table)) == [(0,)]


def test_delete_version(db, with_build, superuser_sql):
    db.add_new_package_version('foo', '0.2')
    db.delete_version('foo', '0.1')
    assert db.get_all_package_versions() == {('foo', '0.2')}
    assert superuser_sql("SELECT count(*) FROM files") == [(0,)]
    assert db.get_build_queue()['cp311'] == [('foo', '0.2')]


def test_delete_build_queues_version_again(db, with_build, superuser_sql):
    assert db.get_build_queue()['cp311'] == []
    db.delete_build('foo', '0.1')
    assert superuser_sql("SELECT count(*) FROM builds") == [(0,)]
    assert superuser_sql("SELECT count(*) FROM files") == [(0,)]
    assert db.test_package_version('foo', '0.1')
    assert db.get_build_queue()['cp311'] == [('foo', '0.1')]


# Build ABIs and the queue -------------------------------------------------

def test_get_build_abis(db, with_build_abis, superuser_sql):
    superuser_sql("INSERT INTO build_abis (abi_tag, skip) VALUES ('cp37m', 'too old')")
    assert db.get_build_abis() == {'cp37m', 'cp39', 'cp311'}
    assert db.get_build_abis(exclude_skipped=True) == {'cp39', 'cp311'}


def test_build_queue_lists_abis_by_python_version(db, with_schema, superuser_sql):
    superuser_sql(
        "INSERT INTO build_abis (abi_tag) VALUES ('cp311'), ('cp39'), ('cp313')")
    assert list(db.get_build_queue()) == ['cp39', 'cp311', 'cp313']


def test_build_queue_orders_by_downloads_then_newest(db, with_build_abis, superuser_sql):
    for package, downloads in (('low', 1), ('high', 50), ('none', 0)):
        db.add_new_package(package)
        superuser_sql(
            "UPDATE packages SET downloads_recent = :n WHERE package = :p",
            n=downloads, p=package)
        for day, version in ((1, '1.0'), (2, '2.0')):
            db.add_new_package_version(
                package, version, datetime(2020, 1, day, tzinfo=UTC))
    assert db.get_build_queue()['cp311'] == [
        ('high', '2.0'), ('high', '1.0'), ('low', '2.0'), ('low', '1.0'),
        ('none', '2.0'), ('none', '1.0')]
    assert db.get_build_queue(limit=3) == {
        'cp39': [('high', '2.0'), ('high', '1.0'), ('low', '2.0')],
        'cp311': [('high', '2.0'), ('high', '1.0'), ('low', '2.0')]}


def test_build_queue_follows_downloads(db, with_build, superuser_sql):
    db.add_new_package('bar')
    db.add_new_package_version('bar', '1.0', datetime(2019, 1, 1, tzinfo=UTC))
    db.add_new_package_version('foo', '0.2', datetime(2019, 1, 1, tzinfo=UTC))
    assert db.get_build_queue()['cp311'] == [('bar', '1.0'), ('foo', '0.2')]
    db.log_downloads([download(FOO_WHEEL)])
    assert db.get_build_queue()['cp311'] == [('foo', '0.2'), ('bar', '1.0')]


def test_build_queue_excludes_abis_requires_python_excludes(db, with_package):
    db.add_new_package_version('foo', '1.0', requires_python='>=3.10')
    db.add_new_package_version('foo', '2.0', requires_python='<3.10')
    db.add_new_package_version('foo', '3.0', requires_python='>=3.9.4, !=3.11.*')
    assert db.get_build_queue() == {
        'cp39': [('foo', '3.0'), ('foo', '2.0')],
        'cp311': [('foo', '1.0')]}


@pytest.mark.parametrize('requires_python, abi, accepted', [
    ('', 'cp39', True),
    ('>=3.6', 'cp39', True),
    ('>=3.10', 'cp39', False),
    ('>=3.10', 'cp311', True),
    ('>3.9', 'cp39', True),          # 3.9.1 > 3.9
    ('>=3.9.2', 'cp39', True),       # a 3.9 with a later micro version
    ('<3.9', 'cp39', False),
    ('<3.9.1', 'cp39', True),
    ('<=3.9', 'cp39', True),
    ('<=3.8.99', 'cp39', False),
    ('==3.9.*', 'cp39', True),
    ('==3.9.*', 'cp311', False),
    ('==3.*', 'cp311', True),
    ('==2.*', 'cp311', False),
    ('==3.11.4', 'cp311', True),
    ('==3.11', 'cp39', False),
    ('!=3.9.*', 'cp39', False),
    ('!=3.9.1', 'cp39', True),
    ('!=3.*', 'cp39', False),
    ('~=3.9', 'cp311', True),
    ('~=3.9', 'cp37m', False),
    ('~=3.9.1', 'cp311', False),
    ('~=3.9.1', 'cp39', True),
    ('>=2.7, !=3.0.*, !=3.1.*, !=3.2.*', 'cp311', True),
    ('>=3.8,<3.11', 'cp311', False),
    ('>=3.8,<3.11', 'cp310', True),
    ('>= 3.6.0rc1', 'cp39', True),
    ('>=3.12', 'cp313t', True),
    ('>=3.10', 'pypy39_pp73', False),
    ('>=3.10', 'armv7l_odd', True),  # not a Python ABI: never excluded
    ('garbage', 'cp39', True),       # unreadable: never excluded
    ('>=3.6,garbage', 'cp39', True),
])
def test_python_accepts_abi(with_schema, requires_python, abi, accepted):
    assert run_sql(
        with_schema[1], "SELECT python_accepts_abi(:spec, :abi)",
        spec=requires_python, abi=abi) == [(accepted,)]


def test_build_queue_drops_built_versions(db, with_package_version):
    db.log_build(build('foo', '0.1', 'cp311', wheel(
        'foo-0.1-cp311-cp311-linux_armv7l.whl')))
    assert db.get_build_queue() == {'cp39': [('foo', '0.1')], 'cp311': []}


def test_build_queue_pure_wheel_serves_every_abi(db, with_package_version):
    db.log_build(build('foo', '0.1', 'cp311', wheel('foo-0.1-py3-none-any.whl')))
    assert db.get_build_queue() == {'cp39': [], 'cp311': []}
    abis = db.get_project_data('foo')['releases']['0.1']['abis']
    assert abis['cp39']['status'] == abis['cp311']['status'] == 'success'


def test_build_queue_stable_abi_wheel_serves_later_abis(db, with_package, superuser_sql):
    superuser_sql("INSERT INTO build_abis (abi_tag) VALUES ('cp313')")
    db.add_new_package_version('foo', '1.0')
    db.log_build(build('foo', '1.0', 'cp311', wheel(
        'foo-1.0-cp311-abi3-linux_armv7l.whl')))
    assert db.get_build_queue() == {'cp39': [('foo', '1.0')], 'cp311': [],
                                    'cp313': []}


def test_build_queue_retries_transient_failures(db, with_package_version):
    for attempt in range(1, 4):
        assert db.get_build_queue()['cp311'] == [('foo', '0.1')]
        db.log_build(build('foo', '0.1', 'cp311', status=False, failure='killed'))
    # three attempts: no more
    assert db.get_build_queue()['cp311'] == []
    abis = db.get_project_data('foo')['releases']['0.1']['abis']
    assert abis['cp311']['status'] == 'failed'
    assert abis['cp311']['attempt'] == 3


def test_build_queue_never_retries_build_errors(db, with_package_version):
    db.log_build(build('foo', '0.1', 'cp311', status=False, failure='error'))
    assert db.get_build_queue() == {'cp39': [('foo', '0.1')], 'cp311': []}


def test_build_queue_skipped_abi(db, with_package_version, superuser_sql):
    superuser_sql("UPDATE build_abis SET skip = 'retired' WHERE abi_tag = 'cp39'")
    assert db.get_build_queue() == {'cp311': [('foo', '0.1')]}
    superuser_sql("UPDATE build_abis SET skip = '' WHERE abi_tag = 'cp39'")
    assert db.get_build_queue() == {'cp39': [('foo', '0.1')],
                                    'cp311': [('foo', '0.1')]}


def test_build_queue_table_matches_its_definition(db, with_build, superuser_sql):
    # after a mix of changes the maintained queue is exactly what the
    # build_states view says is pending
    db.add_new_package('bar')
    for version in ('1.0', '2.0', '3.0'):
        db.add_new_package_version('bar', version)
    db.log_build(build('bar', '1.0', 'cp39', wheel('bar-1.0-py3-none-any.whl')))
    db.log_build(build('bar', '2.0', 'cp311', status=False, failure='network'))
    db.skip_package_version('bar', '3.0', 'nope')
    db.skip_package_version('bar', '3.0', '')
    db.set_version_requires_python('bar', '3.0', '>=3.11')
    db.delete_build('foo', '0.1')
    superuser_sql("INSERT INTO build_abis (abi_tag) VALUES ('cp313')")
    assert superuser_sql(
        "SELECT package, version, abi_tag FROM build_queue "
        "ORDER BY 1, 2, 3") == superuser_sql(
        "SELECT package, version, abi_tag FROM build_states "
        "WHERE status = 'pending' ORDER BY 1, 2, 3")
    # bar 2.0 (retrying on cp311) x3, bar 3.0 x2 (not cp39), foo 0.1 x3
    assert len(superuser_sql("SELECT * FROM build_queue")) == 8


# Builds -------------------------------------------------------------------

def test_log_build_success(db, with_package_version, superuser_sql):
    logged = db.log_build(build(
        'foo', '0.1', 'cp311',
        wheel('foo-0.1-cp311-cp311-linux_armv7l.whl', filehash='b' * 64,
              size=4321, apt={'libc6', 'libffi8'}),
        slave=7))
    assert logged == LoggedBuild(
        logged.build_id, frozenset({'foo-0.1-cp311-cp311-linux_armv7l.whl'}),
        frozenset(), frozenset())
    recorded = db.get_build(logged.build_id)
    assert recorded['package'] == 'foo' and recorded['version'] == '0.1'
    assert recorded['abi_tag'] == 'cp311' and recorded['built_by'] == 7
    assert recorded['status'] and recorded['failure'] is None
    assert recorded['duration'] == timedelta(seconds=42)
    assert recorded['attempt'] == 1 and not recorded['conflict']
    assert db.get_file_apt_dependencies(
        'foo-0.1-cp311-cp311-linux_armv7l.whl') == {'libc6', 'libffi8'}
    assert superuser_sql(
        "SELECT filesize, filehash, py_version_tag, abi_tag, platform_tag "
        "FROM files") == [(4321, 'b' * 64, 'cp311', 'cp311', 'linux_armv7l')]


def test_log_build_stores_no_output(db, with_package_version, superuser_sql):
    db.log_build(build('foo', '0.1', 'cp311', status=False, failure='error'))
    dumped = superuser_sql(
        "SELECT string_agg(b::TEXT, '') FROM builds b")[0][0]
    assert 'the build log' not in dumped


@pytest.mark.parametrize('failure', ['error', 'timeout', 'killed', 'disk', 'network'])
def test_log_build_failure_kinds(db, with_package_version, failure):
    logged = db.log_build(build('foo', '0.1', 'cp311', status=False,
                                failure=failure))
    assert logged.new_files == frozenset()
    recorded = db.get_build(logged.build_id)
    assert (recorded['status'], recorded['failure']) == (False, failure)


def test_log_build_failure_without_kind_is_error(db, with_package_version):
    logged = db.log_build(build('foo', '0.1', 'cp311', status=False))
    assert db.get_build(logged.build_id)['failure'] == 'error'


def test_log_build_unknown_failure_kind(db, with_package_version, superuser_sql):
    with pytest.raises(DatabaseError):
        db.log_build(build('foo', '0.1', 'cp311', status=False, failure='gremlins'))
    assert superuser_sql("SELECT count(*) FROM builds") == [(0,)]


def test_log_build_counts_attempts(db, with_package_version):
    first = db.log_build(build('foo', '0.1', 'cp311', status=False, failure='network'))
    other_abi = db.log_build(build('foo', '0.1', 'cp39', status=False, failure='network'))
    second = db.log_build(build('foo', '0.1', 'cp311', status=False, failure='network'))
    assert [db.get_build(logged.build_id)['attempt']
            for logged in (first, other_abi, second)] == [1, 1, 2]


def test_log_build_of_unknown_version_records_nothing(db, with_package_version, superuser_sql):
    with pytest.raises(DatabaseError):
        db.log_build(build('foo', '9.9', 'cp311', wheel('foo-9.9-py3-none-any.whl')))
    with pytest.raises(DatabaseError):
        db.log_build(build('foo', '0.1', 'cp27mu', wheel('foo-0.1-py3-none-any.whl')))
    assert superuser_sql("SELECT count(*) FROM builds") == [(0,)]
    assert superuser_sql("SELECT count(*) FROM files") == [(0,)]


def test_log_build_identical_file_is_a_duplicate(db, with_build):
    logged = db.log_build(build('foo', '0.1', 'cp39', wheel(FOO_WHEEL, filehash=FOO_HASH)))
    assert logged.new_files == frozenset() and logged.conflicts == frozenset()
    assert logged.duplicates == {FOO_WHEEL}
    assert not db.get_build(logged.build_id)['conflict']


def test_log_build_conflicting_file_never_replaces_published(db, with_build):
    logged = db.log_build(build(
        'foo', '0.1', 'cp39', wheel(FOO_WHEEL, filehash='f' * 64),
        wheel('foo-0.1-cp39-cp39-linux_armv7l.whl')))
    assert logged.conflicts == {FOO_WHEEL}
    assert logged.new_files == {'foo-0.1-cp39-cp39-linux_armv7l.whl'}
    assert db.get_build(logged.build_id)['conflict']
    assert db.get_package_files('foo')[FOO_WHEEL] == FOO_HASH


def test_log_build_learns_requires_python(db, with_package_version):
    db.add_new_package_version('foo', '0.2')
    db.log_build(build('foo', '0.2', 'cp311', wheel(
        'foo-0.2-cp311-cp311-linux_armv7l.whl', requires_python='>=3.10')))
    release = db.get_project_data('foo')['releases']['0.2']
    assert release['requires_python'] == '>=3.10'
    assert release['abis']['cp39']['status'] == 'not applicable'
    assert db.get_build_queue()['cp39'] == [('foo', '0.1')]


def test_log_builds_records_a_batch_in_order(db, with_package_version, superuser_sql):
    db.add_new_package('bar')
    db.add_new_package_version('bar', '1.0')
    bar_wheel = 'bar-1.0-cp311-cp311-linux_armv7l.whl'
    first, failed, retried, same, conflict = db.log_builds([
        build('bar', '1.0', 'cp311', wheel(bar_wheel, requires_python='>=3.10')),
        build('foo', '0.1', 'cp39', status=False, failure='network'),
        build('foo', '0.1', 'cp39', wheel('foo-0.1-cp39-cp39-linux_armv7l.whl')),
        build('bar', '1.0', 'cp39', wheel(bar_wheel)),
        build('bar', '1.0', 'cp39', wheel(bar_wheel, filehash='e' * 64)),
    ])
    assert first.new_files == {bar_wheel} and failed.new_files == frozenset()
    assert retried.new_files == {'foo-0.1-cp39-cp39-linux_armv7l.whl'}
    # later builds of the batch meet the file registered by the first
    assert same.duplicates == {bar_wheel} and same.new_files == frozenset()
    assert conflict.conflicts == {bar_wheel}
    assert [db.get_build(logged.build_id)['attempt']
            for logged in (first, failed, retried, same, conflict)] == [1, 1, 2, 1, 2]
    assert [db.get_build(logged.build_id)['conflict']
            for logged in (first, same, conflict)] == [False, False, True]
    assert db.get_package_files('bar') == {bar_wheel: 'a' * 64}
    assert db.get_project_data('bar')['releases']['1.0']['requires_python'] == '>=3.10'
    assert db.get_build_queue() == {'cp39': [], 'cp311': [('foo', '0.1')]}
    assert superuser_sql(
        "SELECT package, version, abi_tag FROM build_queue ORDER BY 1, 2, 3") == \
        superuser_sql(
            "SELECT package, version, abi_tag FROM build_states "
            "WHERE status = 'pending' ORDER BY 1, 2, 3")


def test_log_builds_records_none_when_one_fails(db, with_package_version, superuser_sql):
    with pytest.raises(DatabaseError):
        db.log_builds([
            build('foo', '0.1', 'cp311', wheel('foo-0.1-py3-none-any.whl')),
            build('foo', '9.9', 'cp311', status=False, failure='error')])
    assert superuser_sql("SELECT count(*) FROM builds") == [(0,)]
    assert superuser_sql("SELECT count(*) FROM files") == [(0,)]
    assert db.log_builds([]) == []


def test_get_build_of_unknown_id(db, with_schema):
    assert db.get_build(12345) is None


def test_get_package_files(db, with_build):
    db.add_new_package_version('foo', '0.2')
    db.log_build(build('foo', '0.2', 'cp311', wheel(
        'foo-0.2-py3-none-any.whl', filehash='c' * 64)))
    assert db.get_package_files('foo') == {
        FOO_WHEEL: FOO_HASH, 'foo-0.2-py3-none-any.whl': 'c' * 64}
    assert db.get_package_files('bar') == {}


def test_get_version_files(db, with_build):
    assert db.get_version_files('foo', '0.1') == {FOO_WHEEL}
    assert db.get_version_files('foo', '0.2') == set()


def test_get_file_apt_dependencies(db, with_build):
    assert db.get_file_apt_dependencies(FOO_WHEEL) == {'libc6'}
    assert db.get_file_apt_dependencies('nosuch.whl') == set()


# Project data ---------------------------------------------------------------

def test_get_project_data_unknown_package(db, with_schema):
    assert db.get_project_data('nosuch') is None


def test_get_project_data(db, with_build):
    db.add_package_name('foo', 'Foo', datetime(2020, 1, 1, tzinfo=UTC))
    db.add_new_package_version('foo', '0.2', datetime(2021, 1, 1, tzinfo=UTC))
    db.add_new_package_version('foo', '0.3', datetime(2022, 1, 1, tzinfo=UTC),
                               skip='broken')
    db.log_build(build('foo', '0.2', 'cp39', status=False, failure='error'))
    data = db.get_project_data('foo')
    assert data['package'] == 'foo' and data['name'] == 'Foo'
    assert data['description'] == 'A foo package'
    assert data['aliases'] == ['Foo']
    assert list(data['releases']) == ['0.3', '0.2', '0.1']
    release = data['releases']['0.1']
    assert release['released'] == datetime(2020, 1, 1, tzinfo=UTC)
    assert list(release['abis']) == ['cp39', 'cp311']
    assert release['abis']['cp311']['status'] == 'success'
    assert release['abis']['cp311']['duration'] == timedelta(minutes=5)
    assert release['abis']['cp39']['status'] == 'pending'
    assert release['abis']['cp39']['build_id'] is None
    assert release['files'][FOO_WHEEL] == {
        'hash': FOO_HASH, 'size': 123456,
        'build_id': release['abis']['cp311']['build_id'],
        'abi_tag': 'cp311', 'py_version': 'cp311', 'abi_file': 'cp311',
        'platform': 'linux_armv7l', 'requires_python': '',
        'uploaded': release['abis']['cp311']['built_at'],
        'apt_dependencies': {'libc6'}}
    assert data['releases']['0.2']['abis']['cp39']['status'] == 'failed'
    assert data['releases']['0.2']['abis']['cp39']['failure'] == 'error'
    assert data['releases']['0.2']['abis']['cp311']['status'] == 'pending'
    assert data['releases']['0.3']['abis']['cp311'] == dict(
        data['releases']['0.3']['abis']['cp311'], status='skipped', skip='broken')


def test_get_project_data_fits_the_oracle_protocol(db, with_build):
    from piwheels.protocols import ProjectData
    ProjectData(db.get_project_data('foo'))


def test_get_project_data_many(db, with_build):
    db.add_new_package('bar', description='A bar')
    db.add_new_package_version('bar', '2.0')
    db.add_package_name('bar', 'Bar', datetime(2020, 1, 1, tzinfo=UTC))
    many = db.get_project_data_many(['foo', 'bar', 'nosuch'])
    assert set(many) == {'foo', 'bar'}
    assert many['foo'] == db.get_project_data('foo')
    assert many['bar'] == db.get_project_data('bar')
    assert many['bar']['name'] == 'Bar'
    assert list(many['bar']['releases']['2.0']['abis']) == ['cp39', 'cp311']
    assert db.get_project_data_many([]) == {}


def test_get_project_versions(db, with_build):
    db.add_new_package_version('foo', '0.2', datetime(2021, 1, 1, tzinfo=UTC))
    db.log_build(build('foo', '0.2', 'cp39', status=False, failure='error'))
    assert db.get_project_versions('foo') == [
        ProjectVersionsRow('0.2', datetime(2021, 1, 1, tzinfo=UTC), False, '',
                           frozenset(), frozenset({'cp39'})),
        ProjectVersionsRow('0.1', datetime(2020, 1, 1, tzinfo=UTC), False, '',
                           frozenset({'cp311'}), frozenset()),
    ]
    assert db.get_project_versions('nosuch') == []


def test_get_project_files(db, with_build):
    assert db.get_project_files('foo') == [
        ProjectFilesRow('0.1', 'cp311', FOO_WHEEL, 123456, FOO_HASH, False, '',
                        frozenset({'libc6'}))]
    assert db.get_project_files('nosuch') == []


# PyPI -----------------------------------------------------------------------

def test_pypi_serial(db, with_schema):
    assert db.get_pypi_serial() == 0
    db.set_pypi_serial(1234567890123)
    assert db.get_pypi_serial() == 1234567890123


# Statistics and search ------------------------------------------------------

def test_get_statistics(db, with_build):
    db.add_new_package('bar')
    db.add_new_package_version('bar', '1.0')
    db.log_build(build('bar', '1.0', 'cp39', wheel('bar-1.0-cp39-cp39-linux_armv7l.whl',
                                                   size=1000)))
    db.log_downloads([download(FOO_WHEEL), download(FOO_WHEEL),
                      download(FOO_WHEEL, datetime.now(UTC) - timedelta(hours=2))])
    stats = db.get_statistics()
    assert stats == {
        'packages_built': 2,
        'builds_last_hour': {'cp311': 1, 'cp39': 1},
        'builds_time': timedelta(minutes=5, seconds=42),
        'builds_size': 124456,
        'builds_pending': {'cp39': 1, 'cp311': 1},
        'new_last_hour': 1,
        'files_count': 2,
        'downloads_last_hour': 2,
        'downloads_last_month': 3,
        'downloads_all': 3,
    }


def test_get_search_index(db, with_build, superuser_sql):
    db.add_new_package('bar')
    db.add_new_package('gone', skip=DELETED)
    db.log_downloads([download(FOO_WHEEL),
                      download(FOO_WHEEL, datetime.now(UTC) - timedelta(days=45))])
    index = db.get_search_index()
    assert index == {'foo': (1, 2), 'bar': (0, 0)}
    assert list(index) == ['foo', 'bar']


# Web logs -------------------------------------------------------------------

def test_log_downloads(db, with_build, superuser_sql):
    when = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    db.log_downloads([download(FOO_WHEEL, when), download('nosuch.whl', when)])
    rows = superuser_sql(
        "SELECT filename, package, host, accessed_at, arch, py_version, "
        "installer_version FROM downloads ORDER BY filename")
    assert rows == [
        (FOO_WHEEL, 'foo', '192.0.2.1', when, 'armv7l', '3.11.2', '23.0.1'),
        ('nosuch.whl', None, '192.0.2.1', when, 'armv7l', '3.11.2', '23.0.1')]
    assert db.get_search_index()['foo'] == (0, 1)


def test_log_download_naive_timestamp_is_utc(db, with_build, superuser_sql):
    db.log_download(download(FOO_WHEEL, datetime(2024, 3, 4, 5, 6, 7)))
    assert superuser_sql("SELECT accessed_at FROM downloads") == [
        (datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC),)]


def test_log_downloads_big_batch(db, with_build, superuser_sql):
    now = datetime.now(UTC)
    db.log_downloads([download(FOO_WHEEL, now - timedelta(seconds=n))
                      for n in range(5000)])
    assert superuser_sql("SELECT count(*) FROM downloads") == [(5000,)]
    assert db.get_search_index()['foo'] == (5000, 5000)


def test_download_window_rolls_on(db, with_build, superuser_sql):
    # the state a database was left in 10 days ago: a download 35 days ago
    # still counted as recent
    superuser_sql(
        "UPDATE configuration SET downloads_since = CURRENT_DATE - 40")
    superuser_sql(
        "INSERT INTO downloads (filename, package, host, accessed_at) "
        "VALUES (:f, 'foo', '192.0.2.1', CURRENT_TIMESTAMP - INTERVAL '35 days'), "
        "(:f, 'foo', '192.0.2.1', CURRENT_TIMESTAMP - INTERVAL '5 days')", f=FOO_WHEEL)
    superuser_sql(
        "UPDATE packages SET downloads_recent = 2, downloads_all = 2")
    db.add_new_package_version('foo', '0.2')
    assert db.get_search_index()['foo'] == (1, 2)
    assert superuser_sql(
        "SELECT downloads_since = (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')::DATE - 30 "
        "FROM configuration") == [(True,)]
    assert superuser_sql(
        "SELECT priority FROM build_queue WHERE version = '0.2'") == [(1,), (1,)]


def test_log_searches(db, with_schema, superuser_sql):
    when = datetime(2024, 3, 4, tzinfo=UTC)
    db.log_searches([SearchState('foo', '192.0.2.2', when, **ua_fields())])
    db.log_search(SearchState('bar', '2001:db8::1', when, **ua_fields()))
    assert superuser_sql(
        "SELECT package, host, accessed_at, distro_name FROM searches ORDER BY package") == [
            ('bar', '2001:db8::1', when, 'Raspbian GNU/Linux'),
            ('foo', '192.0.2.2', when, 'Raspbian GNU/Linux')]


@pytest.mark.parametrize('method, single, state, table, name_column', [
    ('log_projects', 'log_project', ProjectState, 'project_page_hits', 'package'),
    ('log_jsons', 'log_json', JSONState, 'project_json_downloads', 'package'),
    ('log_pages', 'log_page', PageState, 'web_page_hits', 'page'),
])
def test_log_page_hits(db, with_schema, superuser_sql, method, single, state,
                       table, name_column):
    when = datetime(2024, 3, 4, tzinfo=UTC)
    getattr(db, method)([state('foo', '192.0.2.3', when, 'Mozilla/5.0'),
                         state('bar', '192.0.2.4', when, 'x' * 3000)])
    getattr(db, single)(state('baz', '192.0.2.5', when, 'curl/8'))
    rows = superuser_sql(
        "SELECT {}, host, accessed_at, user_agent FROM {} ORDER BY 1".format(
            name_column, table))
    assert rows == [('bar', '192.0.2.4', when, 'x' * 2000),
                    ('baz', '192.0.2.5', when, 'curl/8'),
                    ('foo', '192.0.2.3', when, 'Mozilla/5.0')]


# TheSecretary ---------------------------------------------------------------

def test_rewrites_pending(db, with_schema):
    assert db.load_rewrites_pending() == []
    queue = [
        RewritePendingRow('foo', datetime(2024, 1, 1, tzinfo=UTC), 'PROJECT'),
        RewritePendingRow('bar', datetime(2024, 1, 2, tzinfo=UTC), 'BOTH'),
    ]
    db.save_rewrites_pending(queue)
    assert db.load_rewrites_pending() == queue
    db.save_rewrites_pending(queue[1:])
    assert db.load_rewrites_pending() == queue[1:]
    db.save_rewrites_pending([])
    assert db.load_rewrites_pending() == []


def test_rewrites_pending_bad_command_saves_nothing(db, with_schema):
    queue = [RewritePendingRow('foo', datetime(2024, 1, 1, tzinfo=UTC), 'PROJECT')]
    db.save_rewrites_pending(queue)
    with pytest.raises(DatabaseError):
        db.save_rewrites_pending([('bar', datetime(2024, 1, 1, tzinfo=UTC), 'DELETE')])
    assert db.load_rewrites_pending() == queue
