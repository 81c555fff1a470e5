"""Tests of the web output directory: names that can't escape it, files
replaced atomically only when changed, alias links, wheel metadata."""

import os
import zipfile

import pytest

from piwheels.master import output as output_module
from piwheels.master.output import (
    OutputError, WebOutput, canonicalize, check_filename, extract_metadata,
    log_parts, wheel_version)


@pytest.fixture
def web(tmp_path):
    return WebOutput(str(tmp_path / 'www'))


def make_wheel(path, name='foo', version='1.0', metadata=b'Metadata-Version: 2.1\nName: foo\n'):
    with zipfile.ZipFile(path, 'w') as wheel:
        wheel.writestr('{}/__init__.py'.format(name), b'')
        wheel.writestr('{}-{}.dist-info/METADATA'.format(name, version), metadata)
        wheel.writestr('{}-{}.dist-info/WHEEL'.format(name, version), b'Wheel-Version: 1.0\n')
    return path


@pytest.mark.parametrize('name, canon', [
    ('Foo', 'foo'), ('foo_bar', 'foo-bar'), ('Foo.Bar--baz', 'foo-bar-baz'), ('a', 'a'),
])
def test_canonicalize_normalises_like_pep503(name, canon):
    assert canonicalize(name) == canon


@pytest.mark.parametrize('name', [
    '../etc', 'foo/bar', '.hidden', 'foo\0', '', 'a b', '..', 'foo/../../x', '-foo',
    'föö', None,
])
def test_canonicalize_refuses_names_that_could_escape(name):
    with pytest.raises(OutputError):
        canonicalize(name)


@pytest.mark.parametrize('filename', [
    '../foo-1.0-py3-none-any.whl', 'a/b.whl', '.foo.whl', 'foo..whl', '', 'x\ny.whl',
])
def test_check_filename_refuses_paths(filename):
    with pytest.raises(OutputError):
        check_filename(filename)


def test_paths_stay_inside_the_output(web):
    assert web.simple_dir('Foo_Bar') == os.path.join(web.root, 'simple', 'foo-bar')
    assert web.wheel_path('foo', 'foo-1.0-py3-none-any.whl') == os.path.join(
        web.root, 'simple', 'foo', 'foo-1.0-py3-none-any.whl')
    with pytest.raises(OutputError):
        web.path('simple', '..', 'x')
    with pytest.raises(OutputError):
        web.wheel_path('foo', '../../etc/passwd')


def test_log_paths_split_the_build_id(web):
    assert log_parts(1) == ('000', '000', '001.txt.gz')
    assert log_parts(1234567) == ('001', '234', '567.txt.gz')
    assert log_parts(9876543210) == ('9876', '543', '210.txt.gz')
    assert web.log_path(42).endswith(os.path.join('logs', '000', '000', '042.txt.gz'))
    with pytest.raises(OutputError):
        log_parts(-1)


def test_wheel_version_reads_the_version_field():
    assert wheel_version('foo-1.0-py3-none-any.whl') == '1.0'
    assert wheel_version('foo-1.0-1-cp311-cp311-linux_armv7l.whl') == '1.0'
    assert wheel_version('foo-1.0.tar.gz') is None


def test_batch_writes_files_and_makes_directories(web):
    path = web.path('simple', 'foo', 'index.html')
    with web.batch() as batch:
        assert batch.write(path, b'hello')
        # nothing is visible before the commit
        assert not os.path.exists(path)
    with open(path, 'rb') as f:
        assert f.read() == b'hello'
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    assert batch.written == 1


def test_batch_pages_readable_by_the_web_server_under_a_strict_umask(web):
    path = web.path('simple', 'foo', 'index.html')
    old = os.umask(0o077)
    try:
        with web.batch() as batch:
            batch.write(path, b'hello')
    finally:
        os.umask(old)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)


def test_batch_skips_unchanged_content(web):
    path = web.path('index.html')
    with web.batch() as batch:
        batch.write(path, b'same')
    inode = os.stat(path).st_ino
    with web.batch() as batch:
        assert not batch.write(path, b'same')
    assert batch.unchanged == 1 and batch.written == 0
    assert os.stat(path).st_ino == inode
    with web.batch() as batch:
        assert batch.write(path, b'different')
    assert os.stat(path).st_ino != inode


def test_batch_discards_everything_on_error(web):
    path = web.path('index.html')
    with web.batch() as batch:
        batch.write(path, b'old')
    with pytest.raises(RuntimeError):
        with web.batch() as batch:
            batch.write(path, b'new')
            batch.write(web.path('other.html'), b'other')
            raise RuntimeError('render failed')
    with open(path, 'rb') as f:
        assert f.read() == b'old'
    assert sorted(os.listdir(web.root)) == ['index.html']


def test_batch_staged_elsewhere_is_committed_or_discarded_whole(web):
    # a rewrite's worker stages, its parent commits (or discards) the lot
    old = web.path('simple', 'foo', 'index.html')
    with web.batch() as batch:
        batch.write(old, b'old')
    web.make_dir(web.path('project'))
    worker = web.batch()
    worker.write(old, b'new')
    worker.write(web.path('project', 'bar', 'json', 'index.json'), b'{}')
    staged, made = worker.detach()
    assert made == [web.path('project', 'bar'), web.path('project', 'bar', 'json')]
    parent = web.batch()
    parent.attach(staged, made)
    parent.discard()
    with open(old, 'rb') as f:
        assert f.read() == b'old'
    assert os.listdir(web.path('simple', 'foo')) == ['index.html']
    assert os.listdir(web.path('project')) == []
    worker.write(old, b'new')
    parent.attach(*worker.detach())
    parent.commit()
    with open(old, 'rb') as f:
        assert f.read() == b'new'
    with pytest.raises(OutputError):
        parent.attach([(web.path('.x.tmp'), '/etc/passwd')])


def test_large_batch_is_synced_once(web, monkeypatch):
    calls = []
    real_syncfs = output_module._syncfs
    monkeypatch.setattr(output_module, '_syncfs', lambda path: calls.append(path) or real_syncfs(path))
    with web.batch() as batch:
        for i in range(output_module.SYNC_EACH_LIMIT + 1):
            batch.write(web.path('p{}.html'.format(i)), b'x')
    assert calls == [web.root]
    assert len(os.listdir(web.root)) == output_module.SYNC_EACH_LIMIT + 1


def test_large_batch_moves_what_it_can_and_leaves_no_temporary_files(web):
    batch = web.batch()
    count = output_module.SYNC_EACH_LIMIT * 2
    for i in range(count):
        batch.write(web.path('p{}.html'.format(i)), b'x')
    # something takes the place of one page meanwhile
    os.mkdir(web.path('p3.html'))
    with pytest.raises(OSError):
        batch.commit()
    assert 0 < batch.written < count
    assert not [name for name in os.listdir(web.root) if name.startswith('.')]
    assert os.path.isdir(web.path('p3.html'))
    # staged before the one in the way
    assert os.path.isfile(web.path('p0.html'))


def test_batch_refuses_paths_outside(web, tmp_path):
    with web.batch() as batch:
        with pytest.raises(OutputError):
            batch.write(str(tmp_path / 'outside.html'), b'x')
        with pytest.raises(OutputError):
            batch.write(web.root + '/simple/../../outside.html', b'x')


def test_writing_into_an_alias_replaces_the_link(web):
    target = web.path('simple', 'foo')
    with web.batch() as batch:
        batch.write(os.path.join(target, 'index.html'), b'foo')
    assert web.link_alias('simple', 'Bar', 'foo')
    assert os.readlink(web.path('simple', 'Bar')) == 'foo'
    # a package "Bar" takes the name for real: the link goes, the target stays
    with web.batch() as batch:
        batch.write(web.path('simple', 'Bar', 'index.html'), b'bar')
    assert not os.path.islink(web.path('simple', 'Bar'))
    with open(os.path.join(target, 'index.html'), 'rb') as f:
        assert f.read() == b'foo'


def test_alias_links_are_relative_and_idempotent(web):
    web.make_dir(web.path('project', 'foo-bar'))
    assert web.link_alias('project', 'Foo_Bar', 'foo-bar')
    assert not web.link_alias('project', 'Foo_Bar', 'foo_bar')
    assert not web.link_alias('project', 'foo-bar', 'Foo_Bar')
    assert os.path.isdir(web.path('project', 'Foo_Bar'))
    assert web.remove_alias('project', 'Foo_Bar', 'foo-bar')
    assert not os.path.lexists(web.path('project', 'Foo_Bar'))


def test_alias_never_replaces_a_real_directory(web):
    web.make_dir(web.path('simple', 'Foo'))
    assert not web.link_alias('simple', 'Foo', 'foo')
    assert os.path.isdir(web.path('simple', 'Foo')) and not os.path.islink(web.path('simple', 'Foo'))


def test_remove_does_not_follow_links(web, tmp_path):
    outside = tmp_path / 'precious'
    outside.mkdir()
    (outside / 'keep').write_bytes(b'keep')
    web.make_dir(web.path('simple', 'foo'))
    os.symlink(str(outside), web.path('simple', 'foo', 'link'))
    web.remove(web.path('simple', 'foo'))
    assert not os.path.exists(web.path('simple', 'foo'))
    assert (outside / 'keep').read_bytes() == b'keep'


def test_extract_metadata_reads_the_wheels_metadata(tmp_path):
    wheel = make_wheel(str(tmp_path / 'foo-1.0-py3-none-any.whl'), metadata=b'Name: foo\n')
    assert extract_metadata(wheel) == b'Name: foo\n'


def test_extract_metadata_of_missing_or_broken_wheels(tmp_path):
    assert extract_metadata(str(tmp_path / 'foo-1.0-py3-none-any.whl')) is None
    broken = tmp_path / 'bar-1.0-py3-none-any.whl'
    broken.write_bytes(b'not a zip')
    assert extract_metadata(str(broken)) is None
    empty = tmp_path / 'baz-1.0-py3-none-any.whl'
    with zipfile.ZipFile(str(empty), 'w') as wheel:
        wheel.writestr('baz/__init__.py', b'')
    assert extract_metadata(str(empty)) is None
