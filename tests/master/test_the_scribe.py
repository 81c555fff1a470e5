"""Tests of TheScribe: the web output written from the test's PostgreSQL
into a real output directory, driven over its real queue."""

import argparse
import gzip
import hashlib
import json
import os
import re
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from piwheels import protocols, transport
from piwheels.master import the_scribe
from piwheels.master.db import Database
from piwheels.master.the_scribe import TheScribe
from piwheels.protocols import BuildLog, MasterStats, PackageVersion

from ..fixtures.schema import FOO_HASH, FOO_WHEEL
from ..fixtures.zmq import poll_until

METADATA = b'Metadata-Version: 2.1\nName: foo\nVersion: 0.1\nRequires-Dist: bar\n'


@pytest.fixture
def output(master_config):
    return master_config.output_path


@pytest.fixture
def scribe(master_config):
    task = TheScribe(master_config)
    task.once()
    yield task
    task.close()


@pytest.fixture
def secretary(master_config, scribe, peer):
    """A PUSH standing in for TheSecretary."""
    return peer(transport.PUSH, protocols.the_scribe.reversed(),
                connect=master_config.scribe_queue)


def read(output, *path):
    with open(os.path.join(output, *path), 'rb') as f:
        return f.read()


def send(scribe, secretary, msg, data):
    """Send one request and let the scribe handle it (without waiting for
    more requests to gather with it)."""
    before = scribe.protocol_errors + scribe.handler_errors
    secretary.send(msg, data)
    scribe.poll(5)
    scribe.write_gathered(force=True)
    return scribe.protocol_errors + scribe.handler_errors - before


def finish_rewrite(scribe, cycles=20):
    """Run the scribe's cycles until its full rewrite is done."""
    for _ in range(cycles):
        if scribe.rewrite is None:
            return
        scribe.loop()
        scribe.poll(0)
    assert scribe.rewrite is None, 'the rewrite did not finish'


def add_release(sql, package, version, *, released=None, yanked=False,
                reason='', description=''):
    sql("INSERT INTO packages (package, description) VALUES (:package, :description) "
        "ON CONFLICT DO NOTHING", package=package, description=description)
    sql("INSERT INTO versions (package, version, released, yanked, yank_reason, "
        "requires_python) VALUES (:package, :version, :released, :yanked, :reason, '>=3.9')",
        package=package, version=version, yanked=yanked, reason=reason,
        released=released or datetime(2021, 1, 1, tzinfo=timezone.utc))


def add_build(sql, package, version, abi='cp311', status=True, filename=None):
    build_id = sql(
        "INSERT INTO builds (package, version, abi_tag, built_by, duration, status, "
        "failure, attempt) VALUES (:package, :version, :abi, 1, :duration, :status, "
        ":failure, 1) RETURNING build_id", package=package, version=version, abi=abi,
        duration=timedelta(minutes=2), status=status,
        failure=None if status else 'error')[0][0]
    if status:
        filename = filename or '{}-{}-{}-{}-linux_armv7l.whl'.format(
            package.replace('-', '_'), version, abi, abi)
        sql("INSERT INTO files (filename, build_id, filesize, filehash, package_tag, "
            "package_version_tag, py_version_tag, abi_tag, platform_tag, requires_python) "
            "VALUES (:filename, :build_id, 2048, :hash, :package, :version, :abi, :abi, "
            "'linux_armv7l', '>=3.9')", filename=filename, build_id=build_id,
            hash=hashlib.sha256(filename.encode()).hexdigest(), package=package,
            version=version, abi=abi)
    return build_id


def place_wheel(output, package, filename, metadata=METADATA):
    directory = os.path.join(output, 'simple', package)
    os.makedirs(directory, exist_ok=True)
    name, version = filename.split('-')[:2]
    with zipfile.ZipFile(os.path.join(directory, filename), 'w') as wheel:
        wheel.writestr('{}/__init__.py'.format(name), b'')
        wheel.writestr('{}-{}.dist-info/METADATA'.format(name, version), metadata)


def stats(**changes):
    values = dict(
        timestamp=datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
        packages_built=1234, builds_last_hour={'cp39': 3, 'cp311': 4},
        builds_time=timedelta(days=2, hours=3), builds_size=5 * 2 ** 30,
        builds_pending={'cp39': 12, 'cp311': 0}, new_last_hour=5, files_count=4321,
        downloads_last_hour=6, downloads_last_month=7890, downloads_all=123456,
        disk_size=10 ** 12, disk_free=10 ** 11, mem_size=8 * 2 ** 30,
        mem_free=2 ** 30, swap_size=0, swap_free=0, load_average=0.5, cpu_temp=None,
        slaves={'busy': 2, 'idle': 1},
        last_pypi_event=datetime.now(timezone.utc) - timedelta(minutes=3),
        last_build=None)
    values.update(changes)
    return MasterStats(**values)


def test_setup_writes_the_skeleton(with_build, scribe, output):
    assert b'Frequently asked questions' in read(output, 'faq.html')
    assert b'Not found' in read(output, '404.html')
    assert read(output, 'static', 'piwheels.css').startswith(b'/*')
    assert b'<a href="foo/">foo</a>' in read(output, 'simple', 'index.html')
    root = json.loads(read(output, 'simple', 'index.json'))
    assert root == {'meta': {'api-version': '1.1'}, 'projects': [{'name': 'foo'}]}
    assert b'<meta name="pypi:repository-version" content="1.1">' in read(
        output, 'simple', 'index.html')


def test_both_writes_the_simple_index(with_build, scribe, secretary, output):
    assert send(scribe, secretary, 'BOTH', 'foo') == 0
    page = read(output, 'simple', 'foo', 'index.html').decode('utf-8')
    assert '<meta name="pypi:repository-version" content="1.1">' in page
    assert ('<a href="{0}#sha256={1}" data-requires-python="">{0}</a>'.format(
        FOO_WHEEL, FOO_HASH) in page) or (
        '<a href="{0}#sha256={1}">{0}</a>'.format(FOO_WHEEL, FOO_HASH) in page)
    index = json.loads(read(output, 'simple', 'foo', 'index.json'))
    assert index['meta'] == {'api-version': '1.1'}
    assert index['name'] == 'foo'
    assert index['versions'] == ['0.1']
    [entry] = index['files']
    assert entry['filename'] == FOO_WHEEL and entry['url'] == FOO_WHEEL
    assert entry['hashes'] == {'sha256': FOO_HASH}
    assert entry['size'] == 123456 and entry['yanked'] is False
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', entry['upload-time'])


def test_both_writes_the_project_page_and_json(with_build, scribe, secretary, output):
    send(scribe, secretary, 'BOTH', 'foo')
    page = read(output, 'project', 'foo', 'index.html').decode('utf-8')
    assert 'A foo package' in page
    assert 'sudo apt install libc6' in page
    assert '/simple/foo/{}'.format(FOO_WHEEL) in page
    assert '2020-01-01' in page
    assert '/logs/000/000/001.txt.gz' in page
    data = json.loads(read(output, 'project', 'foo', 'json', 'index.json'))
    release = data['releases']['0.1']
    assert release['builds']['cp311']['status'] == 'success'
    assert release['builds']['cp39']['status'] == 'pending'
    assert release['files'][FOO_WHEEL]['apt_dependencies'] == ['libc6']
    assert release['files'][FOO_WHEEL]['url'] == '/simple/foo/{}'.format(FOO_WHEEL)


def test_no_page_refers_to_another_host(with_build, scribe, secretary, output):
    send(scribe, secretary, 'BOTH', 'foo')
    for path in [('simple', 'foo', 'index.html'), ('simple', 'foo', 'index.json'),
                 ('project', 'foo', 'json', 'index.json')]:
        assert b'://' not in read(output, *path)
    page = read(output, 'project', 'foo', 'index.html').decode('utf-8')
    # the only absolute link is to the project on PyPI, a link, not a resource
    assert re.findall(r'(?:href|src)="([a-z]+://[^"]*)"', page) == [
        'https://pypi.org/project/foo/']


def test_metadata_is_extracted_from_the_wheel(with_build, scribe, secretary, output):
    place_wheel(output, 'foo', FOO_WHEEL)
    send(scribe, secretary, 'BOTH', 'foo')
    assert read(output, 'simple', 'foo', FOO_WHEEL + '.metadata') == METADATA
    digest = hashlib.sha256(METADATA).hexdigest()
    page = read(output, 'simple', 'foo', 'index.html').decode('utf-8')
    assert 'data-dist-info-metadata="sha256={}"'.format(digest) in page
    assert 'data-core-metadata="sha256={}"'.format(digest) in page
    [entry] = json.loads(read(output, 'simple', 'foo', 'index.json'))['files']
    assert entry['core-metadata'] == {'sha256': digest}
    # PEP 714: the old name would make older pips fail on the JSON form
    assert 'dist-info-metadata' not in entry


def test_yanked_versions_carry_their_reason(with_build, superuser_sql, scribe,
                                            secretary, output):
    superuser_sql("UPDATE versions SET yanked = true, yank_reason = 'broken <badly>'")
    send(scribe, secretary, 'BOTH', 'foo')
    page = read(output, 'simple', 'foo', 'index.html').decode('utf-8')
    assert 'data-yanked="broken &lt;badly&gt;"' in page
    [entry] = json.loads(read(output, 'simple', 'foo', 'index.json'))['files']
    assert entry['yanked'] == 'broken <badly>'
    assert 'class="tag yanked"' in read(output, 'project', 'foo', 'index.html').decode()


def test_yanked_without_reason_is_an_empty_attribute(with_build, superuser_sql, scribe,
                                                     secretary, output):
    superuser_sql("UPDATE versions SET yanked = true")
    send(scribe, secretary, 'BOTH', 'foo')
    assert 'data-yanked=""' in read(output, 'simple', 'foo', 'index.html').decode()
    [entry] = json.loads(read(output, 'simple', 'foo', 'index.json'))['files']
    assert entry['yanked'] is True


def test_project_writes_only_the_project_pages(with_build, scribe, secretary, output):
    send(scribe, secretary, 'PROJECT', 'foo')
    assert os.path.exists(os.path.join(output, 'project', 'foo', 'index.html'))
    assert os.path.exists(os.path.join(output, 'project', 'foo', 'json', 'index.json'))
    assert not os.path.exists(os.path.join(output, 'simple', 'foo', 'index.html'))


def test_descriptions_and_names_are_escaped(with_build, superuser_sql, scribe,
                                            secretary, output):
    superuser_sql("UPDATE packages SET description = '<script>alert(1)</script>'")
    superuser_sql("INSERT INTO package_names (package, name) VALUES ('foo', 'Foo')")
    send(scribe, secretary, 'BOTH', 'foo')
    page = read(output, 'project', 'foo', 'index.html').decode('utf-8')
    assert '<script>alert' not in page
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in page


def test_unchanged_pages_are_not_rewritten(with_build, scribe, secretary, output):
    send(scribe, secretary, 'BOTH', 'foo')
    paths = [os.path.join(output, *path) for path in [
        ('simple', 'foo', 'index.html'), ('simple', 'foo', 'index.json'),
        ('project', 'foo', 'index.html'), ('project', 'foo', 'json', 'index.json')]]
    before = {path: os.stat(path).st_ino for path in paths}
    send(scribe, secretary, 'BOTH', 'foo')
    assert {path: os.stat(path).st_ino for path in paths} == before


def test_changed_pages_are_replaced(with_build, superuser_sql, scribe, secretary,
                                    output):
    send(scribe, secretary, 'BOTH', 'foo')
    superuser_sql("UPDATE packages SET description = 'A better foo'")
    send(scribe, secretary, 'PROJECT', 'foo')
    assert b'A better foo' in read(output, 'project', 'foo', 'index.html')


def test_aliases_link_to_the_package(with_build, superuser_sql, scribe, secretary,
                                     output):
    superuser_sql("INSERT INTO package_names (package, name) VALUES ('foo', 'Foo')")
    send(scribe, secretary, 'BOTH', 'foo')
    for area in ('simple', 'project'):
        link = os.path.join(output, area, 'Foo')
        assert os.path.islink(link) and os.readlink(link) == 'foo'
    assert read(output, 'project', 'Foo', 'index.html') == read(
        output, 'project', 'foo', 'index.html')
    page = read(output, 'project', 'foo', 'index.html').decode('utf-8')
    assert '<h1>Foo</h1>' in page


def test_new_packages_join_the_root_index(with_build, superuser_sql, scribe, secretary,
                                          output):
    add_release(superuser_sql, 'bar-baz', '1.0')
    send(scribe, secretary, 'BOTH', 'bar-baz')
    scribe.write_root_index()
    assert b'<a href="bar-baz/">bar-baz</a>' in read(output, 'simple', 'index.html')
    sitemap = read(output, 'sitemap', '0.xml').decode('utf-8')
    assert '<loc>http://localhost/project/bar-baz/</loc>' in sitemap
    assert '<loc>http://localhost/sitemap/0.xml</loc>' in read(
        output, 'sitemap.xml').decode('utf-8')


def test_unknown_package_writes_nothing(with_build, scribe, secretary, output):
    send(scribe, secretary, 'BOTH', 'nothere')
    assert not os.path.exists(os.path.join(output, 'project', 'nothere'))


@pytest.mark.parametrize('name', ['../../evil', '..', 'a/b', '.hidden'])
def test_odd_names_cannot_escape(with_build, scribe, secretary, output, name):
    errors = send(scribe, secretary, 'DELPKG', name)
    errors += send(scribe, secretary, 'BOTH', name)
    assert errors >= 1
    parent = os.path.dirname(output)
    assert sorted(os.listdir(parent)) == ['output']
    assert os.path.isdir(os.path.join(output, 'simple'))
    send(scribe, secretary, 'BOTH', 'foo')
    assert os.path.exists(os.path.join(output, 'simple', 'foo', 'index.html'))


def test_delver_removes_the_versions_files(with_build, superuser_sql, scribe, secretary,
                                           output):
    add_release(superuser_sql, 'foo', '0.2', released=datetime(2022, 1, 1, tzinfo=timezone.utc))
    add_build(superuser_sql, 'foo', '0.2')
    newer = 'foo-0.2-cp311-cp311-linux_armv7l.whl'
    place_wheel(output, 'foo', FOO_WHEEL)
    place_wheel(output, 'foo', newer)
    send(scribe, secretary, 'BOTH', 'foo')
    send(scribe, secretary, 'DELVER', PackageVersion('foo', '0.1'))
    files = os.listdir(os.path.join(output, 'simple', 'foo'))
    assert FOO_WHEEL not in files and FOO_WHEEL + '.metadata' not in files
    assert newer in files and newer + '.metadata' in files
    page = read(output, 'simple', 'foo', 'index.html').decode('utf-8')
    assert FOO_WHEEL not in page and newer in page
    data = json.loads(read(output, 'project', 'foo', 'json', 'index.json'))
    assert list(data['releases']) == ['0.2']


def test_delpkg_removes_everything_of_the_package(with_build, superuser_sql, scribe,
                                                  secretary, output):
    superuser_sql("INSERT INTO package_names (package, name) VALUES ('foo', 'Foo')")
    place_wheel(output, 'foo', FOO_WHEEL)
    send(scribe, secretary, 'BOTH', 'foo')
    send(scribe, secretary, 'DELPKG', 'foo')
    for area in ('simple', 'project'):
        assert not os.path.lexists(os.path.join(output, area, 'foo'))
        assert not os.path.lexists(os.path.join(output, area, 'Foo'))
    scribe.write_root_index()
    assert b'foo/' not in read(output, 'simple', 'index.html')


def test_log_is_gzipped_at_its_split_path(scribe, secretary, output):
    log = 'Building <b>wheel</b> for foo\n' * 100
    send(scribe, secretary, 'LOG', BuildLog(1234567, log))
    data = read(output, 'logs', '001', '234', '567.txt.gz')
    assert gzip.decompress(data).decode('utf-8') == log


def test_logs_waiting_together_are_all_written(with_build, scribe, secretary,
                                               output):
    logs = [BuildLog(build_id, 'log of build {}\n'.format(build_id))
            for build_id in (1, 2, 3)]
    for log in logs[:2]:
        secretary.send('LOG', log)
    secretary.send('BOTH', 'foo')
    secretary.send('LOG', logs[2])
    poll_until(scribe, lambda: os.path.exists(
        os.path.join(output, 'logs', '000', '000', '003.txt.gz')))
    for log in logs:
        data = read(output, 'logs', '000', '000',
                    '{:03d}.txt.gz'.format(log.build_id))
        assert gzip.decompress(data).decode('utf-8') == log.output
    assert os.path.exists(os.path.join(output, 'project', 'foo', 'index.html'))


def test_logs_and_pages_gather_before_they_are_written(
        with_build, scribe, secretary, output):
    secretary.send('LOG', BuildLog(1, 'log of build 1\n'))
    scribe.poll(5)
    log = os.path.join(output, 'logs', '000', '000', '001.txt.gz')
    page = os.path.join(output, 'project', 'foo', 'index.html')
    assert not os.path.exists(log)
    secretary.send('BOTH', 'foo')
    poll_until(scribe, lambda: os.path.exists(log) and os.path.exists(page))


def test_home_writes_the_statistics(scribe, secretary, output):
    send(scribe, secretary, 'HOME', stats())
    page = read(output, 'index.html').decode('utf-8')
    assert '1,234' in page and '4,321' in page and '7,890' in page
    assert '<code>cp39</code>' in page
    assert '2024-05-06 07:08 UTC' in page


def test_home_writes_status_json(scribe, secretary, output):
    send(scribe, secretary, 'HOME', stats())
    status = json.loads(read(output, 'status.json'))
    assert status['build_queue'] == {'cp39': 12, 'cp311': 0}
    assert status['slaves'] == {'busy': 2, 'idle': 1}
    assert 170 <= status['last_pypi_event_age'] < 3600
    assert status['last_build_age'] is None
    assert status['updated'] == '2024-05-06T07:08:09+00:00'


def test_search_index_is_ordered_by_downloads(scribe, secretary, output):
    send(scribe, secretary, 'SEARCH', {'foo': (5, 100), 'Bar_Baz': (50, 60), 'qux': (5, 200)})
    assert json.loads(read(output, 'packages.json')) == [
        ['bar-baz', 50, 60], ['qux', 5, 200], ['foo', 5, 100]]


def test_invalid_messages_are_dropped(with_build, master_config, scribe, output, peer):
    raw = peer(transport.PUSH, connect=master_config.scribe_queue)
    raw.socket.send(b'\xff\xfe')
    poll_until(scribe, lambda: scribe.protocol_errors == 1)
    assert scribe.failure is None


def test_full_rewrite_writes_every_package(with_build, superuser_sql, monkeypatch,
                                           scribe, secretary, output):
    monkeypatch.setattr(the_scribe, 'BATCH_SIZE', 2)
    for name in ('bar', 'baz', 'qux'):
        add_release(superuser_sql, name, '1.0')
    send(scribe, secretary, 'BOTH', None)
    assert scribe.rewrite == {'both': True, 'after': ''}
    finish_rewrite(scribe)
    for name in ('foo', 'bar', 'baz', 'qux'):
        assert os.path.exists(os.path.join(output, 'simple', name, 'index.json'))
        assert os.path.exists(os.path.join(output, 'project', name, 'index.html'))
    assert not os.path.exists(os.path.join(output, the_scribe.REWRITE_STATE))


def test_full_rewrite_resumes_after_a_restart(with_build, superuser_sql, monkeypatch,
                                              master_config, output):
    monkeypatch.setattr(the_scribe, 'BATCH_SIZE', 2)
    for name in ('bar', 'baz', 'qux'):
        add_release(superuser_sql, name, '1.0')
    first = TheScribe(master_config)
    first.once()
    first.start_rewrite(both=True)
    first.loop()
    first.close()
    state = json.loads(read(output, the_scribe.REWRITE_STATE))
    assert state == {'both': True, 'after': 'baz'}
    written = sorted(os.listdir(os.path.join(output, 'project')))
    assert written == ['bar', 'baz']
    # a restarted master is a new process; here the first scribe's inproc
    # address may not be free yet (ZeroMQ closes sockets in the background)
    restarted = argparse.Namespace(**vars(master_config))
    restarted.scribe_queue += '-restarted'
    second = TheScribe(restarted)
    try:
        second.once()
        assert second.rewrite == {'both': True, 'after': 'baz'}
        finish_rewrite(second)
    finally:
        second.close()
    assert sorted(os.listdir(os.path.join(output, 'project'))) == ['bar', 'baz', 'foo', 'qux']
    assert not os.path.exists(os.path.join(output, the_scribe.REWRITE_STATE))


def test_get_project_data_many_matches_one_by_one(with_build, superuser_sql):
    add_release(superuser_sql, 'bar', '1.0')
    add_build(superuser_sql, 'bar', '1.0', abi='cp39', status=False)
    superuser_sql("INSERT INTO package_names (package, name, seen) VALUES "
                  "('bar', 'Bar', '2020-01-01'), ('bar', 'BAR', '2021-01-01')")
    db = Database(with_build[1])
    try:
        many = db.get_project_data_many(['foo', 'bar', 'missing'])
        assert set(many) == {'foo', 'bar'}
        assert many['foo'] == db.get_project_data('foo')
        assert many['bar'] == db.get_project_data('bar')
        assert many['bar']['name'] == 'BAR'
        assert many['bar']['aliases'] == ['BAR', 'Bar']
    finally:
        db.close()


def test_packages_being_deleted_get_no_pages(with_build, superuser_sql, master_config,
                                             output):
    add_release(superuser_sql, 'gone', '1.0')
    superuser_sql("UPDATE packages SET skip = 'deleted' WHERE package = 'gone'")
    scribe = TheScribe(master_config)
    try:
        scribe.once()
        assert b'gone/' not in read(output, 'simple', 'index.html')
        scribe.write_packages({'gone': True, 'foo': True})
    finally:
        scribe.close()
    assert not os.path.exists(os.path.join(output, 'project', 'gone'))
    assert os.path.exists(os.path.join(output, 'project', 'foo', 'index.html'))


def test_metadata_of_removed_wheels_goes(with_build, scribe, secretary, output):
    place_wheel(output, 'foo', FOO_WHEEL)
    send(scribe, secretary, 'BOTH', 'foo')
    # the builds were removed: FileJuggler deleted the wheel, then BOTH
    os.unlink(os.path.join(output, 'simple', 'foo', FOO_WHEEL))
    send(scribe, secretary, 'BOTH', 'foo')
    assert not os.path.exists(os.path.join(output, 'simple', 'foo', FOO_WHEEL + '.metadata'))


def test_replaced_wheel_gets_its_new_metadata(with_build, superuser_sql, scribe, secretary,
                                              output):
    place_wheel(output, 'foo', FOO_WHEEL)
    send(scribe, secretary, 'BOTH', 'foo')
    # the build was removed and built again: same name, other bytes
    newer = METADATA + b'Requires-Dist: baz\n'
    place_wheel(output, 'foo', FOO_WHEEL, metadata=newer)
    superuser_sql("UPDATE files SET filehash = :hash", hash='2' * 64)
    send(scribe, secretary, 'BOTH', 'foo')
    assert read(output, 'simple', 'foo', FOO_WHEEL + '.metadata') == newer
    [entry] = json.loads(read(output, 'simple', 'foo', 'index.json'))['files']
    assert entry['core-metadata'] == {'sha256': hashlib.sha256(newer).hexdigest()}


def test_lost_metadata_files_are_extracted_again(with_build, scribe, secretary, output):
    place_wheel(output, 'foo', FOO_WHEEL)
    send(scribe, secretary, 'BOTH', 'foo')
    os.unlink(os.path.join(output, 'simple', 'foo', FOO_WHEEL + '.metadata'))
    send(scribe, secretary, 'BOTH', None)
    finish_rewrite(scribe)
    assert read(output, 'simple', 'foo', FOO_WHEEL + '.metadata') == METADATA
