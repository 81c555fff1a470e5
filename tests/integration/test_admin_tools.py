"""The admin tools (piw-import, piw-add, piw-remove, piw-rebuild) run as
processes against a real piw-master process on loopback, with the test's
PostgreSQL and a stand-in PyPI: what they change in the database and the
output, their exit codes and their one-line errors. An imported wheel must
install with pip from the output."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from piwheels.devfarm import command_line

from ..fixtures.index import make_sdist
from ..fixtures.master import master_args
from ..fixtures.schema import run_sql

#: the longest a tool may take
TOOL_TIMEOUT = 120

PACKAGE = 'piwi-admin'
MODULE = 'piwi_admin'


def clean_environment():
    """This process's environment without pip's configuration."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith('PIP_')}
    env['PIP_CONFIG_FILE'] = os.devnull
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    return env


@pytest.fixture(scope='module')
def built_wheel(tmp_path_factory):
    """A real wheel of a fixture project, built once by pip."""
    work = tmp_path_factory.mktemp('wheel')
    sdist = make_sdist('pure', PACKAGE, '1.0', str(work))
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index',
         '--no-build-isolation', '-w', str(work / 'dist'), sdist],
        check=True, stdout=subprocess.DEVNULL, env=clean_environment(),
        timeout=TOOL_TIMEOUT)
    (wheel,) = (work / 'dist').iterdir()
    return wheel


class Master:
    """A piw-master process and the addresses its tools use."""

    def __init__(self, dsn, root, pypi_url):
        self.dsn = dsn
        self.output = root / 'output'
        self.output.mkdir()
        self.sockets = root / 'sockets'
        self.sockets.mkdir()
        self.args = master_args(
            dsn[1], str(self.output), str(self.sockets), '--oracles', '1',
            '--pypi-xmlrpc', pypi_url, '--pypi-json', pypi_url)
        self.file_queue = self.args[self.args.index('--file-queue') + 1]
        self.import_queue = self.args[self.args.index('--import-queue') + 1]
        self.log = open(str(root / 'master.log'), 'wb')
        self.process = subprocess.Popen(
            command_line('piw-master', *self.args), stdout=self.log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, 'piw-master exited'
            if self.tool('rebuild', 'home', '--timeout', '2s').returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError('piw-master did not start')

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def tool(self, name, *args, queue=None):
        """Run piw-*name* with *args* against this master; return the
        :class:`subprocess.CompletedProcess` (text output)."""
        module = 'importer' if name == 'import' else name
        extra = ['--import-queue', queue or self.import_queue]
        if name == 'import':
            extra += ['--file-queue',
                      self.file_queue.replace('*', '127.0.0.1')]
        return subprocess.run(
            [sys.executable, '-m', 'piwheels.' + module, '-c', os.devnull]
            + extra + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, universal_newlines=True,
            timeout=TOOL_TIMEOUT)

    def sql(self, query, **params):
        return run_sql(self.dsn[0], query, **params)


@pytest.fixture
def master(with_build_abis, tmp_path, fake_pypi):
    running = Master(with_build_abis, tmp_path, fake_pypi.url)
    yield running
    running.stop()


def wheel_copy(built_wheel, tmp_path, name=None):
    target = tmp_path / (name or built_wheel.name)
    shutil.copy(str(built_wheel), str(target))
    return target


def one_line_error(result, command):
    """The tool failed with one line saying why (after its progress
    messages, if any), and no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert 'Traceback' not in result.stderr
    errors = [line for line in lines if ' error: ' in line]
    assert errors == lines[-1:], result.stderr
    assert lines[-1].startswith('piw-{}: error: '.format(command))
    return lines[-1]


def test_import_is_installable_with_pip(master, built_wheel, tmp_path):
    wheel = wheel_copy(built_wheel, tmp_path)
    result = master.tool('import', '-y', '--delete', str(wheel))
    assert result.returncode == 0, result.stderr
    assert not wheel.exists()
    published = master.output / 'simple' / PACKAGE / built_wheel.name
    assert published.read_bytes() == built_wheel.read_bytes()
    # the build is recorded, for the lowest ABI, by "slave" 0
    assert master.sql(
        "SELECT b.package, b.version, b.abi_tag, b.built_by, b.status "
        "FROM builds b JOIN files f USING (build_id)") == [
            (PACKAGE, '1.0', 'cp39', 0, True)]
    # a version PyPI never announced waits for a source distribution
    assert master.sql("SELECT skip FROM versions") == [('binary only',)]
    target = tmp_path / 'installed'
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-index',
         '--find-links', str(published.parent), '--target', str(target),
         PACKAGE], check=True, stdout=subprocess.DEVNULL,
        env=clean_environment(), timeout=TOOL_TIMEOUT)
    imported = subprocess.run(
        [sys.executable, '-c', 'import {0}; print({0}.__name__)'.format(
            MODULE)],
        env=dict(clean_environment(), PYTHONPATH=str(target)),
        stdout=subprocess.PIPE, universal_newlines=True, check=True)
    assert imported.stdout.strip() == MODULE
    # the same wheel again is no new file: still fine, nothing duplicated
    wheel = wheel_copy(built_wheel, tmp_path)
    result = master.tool('import', '-y', str(wheel), '--abi', 'cp311')
    assert result.returncode == 0, result.stderr
    assert wheel.exists()
    assert master.sql("SELECT count(*) FROM files") == [(1,)]


def test_import_refuses_bad_files(master, built_wheel, tmp_path):
    garbage = tmp_path / 'piwi_admin-1.0-py3-none-any.whl'
    garbage.write_bytes(b'not a zip at all')
    assert 'not a wheel' in one_line_error(
        master.tool('import', '-y', '--delete', str(garbage)), 'import')
    assert garbage.exists()
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    assert 'not a wheel' in one_line_error(
        master.tool('import', '-y', str(text)), 'import')
    assert 'no such file' in one_line_error(
        master.tool('import', '-y', str(tmp_path / 'nothing.whl')), 'import')
    wheel = wheel_copy(built_wheel, tmp_path)
    assert 'is not a wheel of other' in one_line_error(
        master.tool('import', '-y', '--package', 'other', str(wheel)),
        'import')
    assert 'is not a wheel of version 2.0' in one_line_error(
        master.tool('import', '-y', '--package-version', '2.0', str(wheel)),
        'import')
    # the master refuses an ABI it doesn't build for: nothing is recorded
    # and --delete deletes nothing
    assert 'not a build ABI' in one_line_error(
        master.tool('import', '-y', '--delete', '--abi', 'cp27', str(wheel)),
        'import')
    assert wheel.exists()
    assert master.sql("SELECT count(*) FROM builds") == [(0,)]
    assert master.sql("SELECT count(*) FROM packages") == [(0,)]
    assert not (master.output / 'simple' / PACKAGE / wheel.name).exists()


def test_tools_without_a_master(master, built_wheel, tmp_path):
    wheel = wheel_copy(built_wheel, tmp_path)
    gone = 'ipc://{}/nothing.sock'.format(master.sockets)
    for command, args in [('import', ['-y', '--delete', str(wheel)]),
                          ('add', ['foo']),
                          ('remove', ['-y', 'foo']),
                          ('rebuild', ['home'])]:
        error = one_line_error(master.tool(command, *args, queue=gone),
                               command)
        assert 'not running' in error
    assert wheel.exists()
    # a socket nobody answers on: a timeout, not a hang
    silent = master.sockets / 'silent.sock'
    silent.write_bytes(b'')
    result = master.tool('rebuild', 'home', '--timeout', '2s',
                         queue='ipc://{}'.format(silent))
    assert 'no answer from the master' in one_line_error(result, 'rebuild')


def versions(master):
    return {
        (package, version): (skip, yanked) for package, version, skip, yanked
        in master.sql("SELECT package, version, skip, yanked FROM versions")}


def test_add_packages_and_versions(master):
    result = master.tool('add', 'Foo_Bar', '-d', 'A foo of bars', '-a',
                         'foobar-legacy')
    assert result.returncode == 0, result.stderr
    assert master.sql("SELECT package, description, skip FROM packages") == [
        ('foo-bar', 'A foo of bars', '')]
    assert {name for (name,) in master.sql(
        "SELECT name FROM package_names")} == {'Foo_Bar', 'foobar-legacy'}
    assert master.tool('add', 'foo-bar', '1.0', '--released',
                       '2021-02-03T04:05:06').returncode == 0
    assert master.sql("SELECT released FROM versions")[0][0].isoformat(
    ) == '2021-02-03T04:05:06+00:00'
    assert master.tool('add', 'foo-bar', '1.0', '--skip', 'broken',
                       '--yank').returncode == 0
    assert versions(master) == {('foo-bar', '1.0'): ('broken', True)}
    assert master.tool('add', 'foo-bar', '1.0', '--unskip',
                       '--unyank').returncode == 0
    assert versions(master) == {('foo-bar', '1.0'): ('', False)}
    assert master.tool('add', 'foo-bar', '-s', 'too big').returncode == 0
    assert master.sql("SELECT skip FROM packages") == [('too big',)]
    # a new version brings its package
    assert master.tool('add', 'newpkg', '0.1').returncode == 0
    assert ('newpkg', '0.1') in versions(master)
    # errors change nothing
    assert 'need a version' in one_line_error(
        master.tool('add', 'foo-bar', '--yank'), 'add')
    assert 'release time is kept' in one_line_error(
        master.tool('add', 'foo-bar', '1.0', '--released', '2020-01-01',
                    '--yank'), 'add')
    assert versions(master)[('foo-bar', '1.0')] == ('', False)
    assert 'invalid package name' in one_line_error(
        master.tool('add', '../etc'), 'add')
    assert 'invalid timestamp' in one_line_error(
        master.tool('add', 'foo-bar', '2.0', '--released', 'tuesday'), 'add')


def imported(master, built_wheel, tmp_path):
    result = master.tool('import', '-y', str(wheel_copy(built_wheel,
                                                        tmp_path)))
    assert result.returncode == 0, result.stderr
    return master.output / 'simple' / PACKAGE / built_wheel.name


def test_remove_builds_skip_version_package(master, built_wheel, tmp_path):
    published = imported(master, built_wheel, tmp_path)
    assert published.exists()
    # no terminal and no --yes: refused, nothing removed
    assert '--yes' in one_line_error(master.tool('remove', PACKAGE, '1.0'),
                                     'remove')
    assert published.exists()
    assert master.tool('remove', '-y', '--builds', PACKAGE,
                       '1.0').returncode == 0
    assert not published.exists()
    assert master.sql("SELECT count(*) FROM builds") == [(0,)]
    assert versions(master) == {(PACKAGE, '1.0'): ('binary only', False)}
    published = imported(master, built_wheel, tmp_path)
    assert master.tool('remove', '-y', '--skip', 'asked by its author',
                       PACKAGE, '1.0').returncode == 0
    assert not published.exists()
    assert versions(master) == {(PACKAGE, '1.0'): (
        'asked by its author', False)}
    assert master.tool('remove', '-y', PACKAGE, '1.0').returncode == 0
    assert versions(master) == {}
    assert 'unknown version' in one_line_error(
        master.tool('remove', '-y', PACKAGE, '1.0'), 'remove')
    assert 'unknown package' in one_line_error(
        master.tool('remove', '-y', 'nothing'), 'remove')
    imported(master, built_wheel, tmp_path)
    assert master.tool('remove', '-y', PACKAGE).returncode == 0
    # marked for deletion at once (CloudGazer deletes the rows later)
    assert master.sql("SELECT skip FROM packages") == [('deleted',)]
    assert master.sql("SELECT count(*) FROM builds") == [(0,)]


def test_rebuild_parts(master, built_wheel, tmp_path):
    imported(master, built_wheel, tmp_path)
    for args in (['home'], ['search'], ['project', PACKAGE],
                 ['both', PACKAGE], ['-y', '--no-wait', 'index']):
        result = master.tool('rebuild', *args)
        assert result.returncode == 0, (args, result.stderr)
    # every package: the tool follows the rewrite to its end
    result = master.tool('rebuild', '-y', 'project')
    assert result.returncode == 0, result.stderr
    assert 'Done: the pages of 1 packages written' in result.stderr
    assert (master.output / 'project' / PACKAGE / 'index.html').exists()
    assert 'unknown package' in one_line_error(
        master.tool('rebuild', 'project', 'nothing'), 'rebuild')
    assert 'takes no package' in one_line_error(
        master.tool('rebuild', 'home', PACKAGE), 'rebuild')
    assert '--yes' in one_line_error(master.tool('rebuild', 'both'),
                                     'rebuild')
    assert 'invalid choice' in one_line_error(
        master.tool('rebuild', 'everything'), 'rebuild')
