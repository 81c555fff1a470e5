"""The whole build loop: a real piw-master and three real piw-slave processes
on loopback, building fixture sdists from the local index into a private
database and output directory.

The sdists: one pure Python, one C extension, one that fails to build and
one that outlives the slaves' build timeout. The slave that starts building
the slow one is killed (with its build) mid-build; the master must give that
version to another slave. Then every result must be in the database with
its log in the output, the two wheels must be published with the hashes the
database records, and pip must install them from the output into a fresh
virtualenv.
"""

import gzip
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from piwheels.devfarm import command_line
from piwheels.master.db import Database
from piwheels.master.output import log_parts
from piwheels.pgcluster import free_port
from piwheels.slave import native_tags

#: the fixture projects built, by kind
PROJECTS = {
    'pure': 'piwi-pure',
    'cext': 'piwi-cext',
    'broken': 'piwi-broken',
    'slow': 'piwi-slow',
}
VERSION = '1.0'

#: the slaves' build timeout: long enough for a real build on a busy
#: machine, short enough for the slow project to outlive it soon
BUILD_TIMEOUT = '40s'

#: the longest any one thing in the test may take
DEADLINE = 900

SLAVES = 3

# the module's fixtures start the farm and wait for every build within the
# first test; DEADLINE bounds each wait inside
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2 * DEADLINE)]


def wait_for(predicate, what, timeout=DEADLINE, interval=1):
    """Call *predicate* until it returns something true; return that. Fail
    the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError('timed out after {}s waiting for {}'.format(
        timeout, what))


def processes_under(path):
    """Return the pids of the processes whose working directory is below
    *path* (a slave's builds, even after the slave itself is gone)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink('/proc/{}/cwd'.format(entry))
        except OSError:
            continue
        if cwd == path or cwd.startswith(path + os.sep):
            pids.append(int(entry))
    return pids


def kill_under(path):
    """SIGKILL every process working below *path*."""
    for pid in processes_under(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def clean_environment():
    """This process's environment without pip's configuration (the machine
    has a pip.conf and PIP_* variables pointing at other indexes)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith('PIP_')}
    env['PIP_CONFIG_FILE'] = os.devnull
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    return env


class Farm:
    """The processes and places of one farm."""

    def __init__(self, root, cluster, database, package_index):
        self.root = root
        self.cluster = cluster
        self.database = database
        self.package_index = package_index
        self.output = os.path.join(root, 'output')
        self.logs = os.path.join(root, 'logs')
        os.makedirs(self.output)
        os.makedirs(self.logs)
        self.slave_port = free_port()
        self.file_port = free_port()
        self.master = None
        self.slaves = {}

    @property
    def user_dsn(self):
        return self.cluster.dsn(user='piwheels', password='piwheels',
                                database=self.database)

    def query(self, sql):
        """Run *sql* on the farm's database; return rows of strings."""
        return [
            line.split('|') for line in
            self.cluster.psql(sql, database=self.database).splitlines()
        ]

    def spawn(self, command, name, args):
        with open(os.path.join(self.logs, name + '.log'), 'wb') as log:
            return subprocess.Popen(
                command_line(command, *args), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root)

    def start_master(self):
        sockets = os.path.join(self.root, 'sockets')
        os.makedirs(sockets, exist_ok=True)
        self.master = self.spawn('piw-master', 'master', [
            '-v', '--dsn', self.user_dsn, '--output-path', self.output,
            '--dev-mode',
            '--pypi-simple', self.package_index.url,
            '--pypi-xmlrpc', 'http://127.0.0.1:{}/pypi'.format(free_port()),
            '--slave-queue', 'tcp://127.0.0.1:{}'.format(self.slave_port),
            '--file-queue', 'tcp://127.0.0.1:{}'.format(self.file_port),
            '--status-queue', 'ipc://' + os.path.join(sockets, 'status'),
            '--control-queue', 'ipc://' + os.path.join(sockets, 'control'),
            '--import-queue', 'ipc://' + os.path.join(sockets, 'import'),
            '--log-queue', 'ipc://' + os.path.join(sockets, 'logger'),
        ])

    def start_slave(self, number):
        name = 'slave{}'.format(number)
        build_dir = os.path.join(self.root, name)
        os.makedirs(build_dir)
        self.slaves[name] = (self.spawn('piw-slave', name, [
            '-v', '--master', '127.0.0.1',
            '--master-port', str(self.slave_port),
            '--file-port', str(self.file_port),
            '--timeout', BUILD_TIMEOUT, '--label', name, '--dir', build_dir,
        ]), build_dir)

    def log(self, name):
        with open(os.path.join(self.logs, name + '.log'), 'rb') as f:
            return f.read().decode('utf-8', errors='replace')

    def check_running(self):
        """Fail at once if the master died (instead of waiting for the
        deadline), showing its log."""
        if self.master.poll() is not None:
            raise AssertionError('piw-master exited with {}:\n{}'.format(
                self.master.returncode, self.log('master')[-5000:]))

    def stop(self):
        """Stop the slaves and the master with SIGTERM (SIGKILL after a
        while); return ``{name: exit status}``."""
        statuses = {}
        procs = [(name, proc) for name, (proc, _) in self.slaves.items()]
        procs.append(('master', self.master))
        for name, proc in procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for name, proc in procs:
            if proc is None:
                continue
            try:
                statuses[name] = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                statuses[name] = proc.wait()
        for _, build_dir in self.slaves.values():
            kill_under(build_dir)
        return statuses


@pytest.fixture(scope='module')
def farm(pg_cluster, package_index, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('farm'))
    database = 'piwfarm{}'.format(os.getpid())
    pg_cluster.psql('CREATE DATABASE {}'.format(database))
    farm = Farm(root, pg_cluster, database, package_index)
    try:
        result = subprocess.run(
            command_line('piw-initdb', '--yes',
                         '--dsn', pg_cluster.dsn(database=database),
                         '--user', 'piwheels', '--add-abi', native_tags()[1]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, timeout=300)
        assert result.returncode == 0, result.stdout
        db = Database(farm.user_dsn)
        try:
            for kind, name in PROJECTS.items():
                package_index.add_sdist(kind, name, VERSION)
                db.add_new_package(name)
                db.add_new_package_version(name, VERSION)
        finally:
            db.close()
        farm.start_master()
        for number in range(1, SLAVES + 1):
            farm.start_slave(number)
        yield farm
    finally:
        farm.statuses = farm.stop()
        pg_cluster.psql(
            'DROP DATABASE IF EXISTS {} WITH (FORCE)'.format(database))


@pytest.fixture(scope='module')
def killed_slave(farm):
    """Kill the slave that starts building the slow project, with its build
    (as if its machine died); return its name and master-given id."""
    marker = 'building {} {}'.format(PROJECTS['slow'], VERSION)

    def builder_of_slow():
        farm.check_running()
        for name in farm.slaves:
            if marker in farm.log(name):
                return name
        return None
    name = wait_for(builder_of_slow, 'a slave to start building the slow '
                    'project', interval=0.2)
    proc, build_dir = farm.slaves[name]
    proc.kill()
    proc.wait(60)
    kill_under(build_dir)
    slave_id = int(re.search(r'connected to master as slave (\d+)',
                             farm.log(name)).group(1))
    return name, slave_id


@pytest.fixture(scope='module')
def results(farm, killed_slave):
    """Wait until every project has a build recorded (the slow one by a
    slave other than the killed one); return ``{package: [row, ...]}`` with
    rows of (build_id, status, failure, built_by)."""
    _, killed_id = killed_slave

    def all_recorded():
        farm.check_running()
        rows = farm.query(
            "SELECT package, build_id, status, COALESCE(failure, ''), built_by "
            "FROM builds ORDER BY build_id")
        builds = {}
        for package, build_id, status, failure, built_by in rows:
            builds.setdefault(package, []).append(
                (int(build_id), status == 't', failure, int(built_by)))
        if set(builds) != set(PROJECTS.values()):
            return None
        if not any(built_by != killed_id
                   for _, _, _, built_by in builds[PROJECTS['slow']]):
            return None
        return builds
    return wait_for(all_recorded, 'every build to be recorded')


def published(farm, package):
    """Return ``{filename: filehash}`` of *package*'s files in the database
    once they are all in the output too."""
    def files_published():
        farm.check_running()
        rows = farm.query(
            "SELECT f.filename, f.filehash FROM files f "
            "JOIN builds b USING (build_id) WHERE b.package = '{}'".format(
                package))
        files = dict(rows)
        directory = os.path.join(farm.output, 'simple', package)
        if files and all(os.path.exists(os.path.join(directory, filename))
                         for filename in files):
            return files
        return None
    return wait_for(files_published, '{} to be published'.format(package))


def read_log(farm, build_id):
    path = os.path.join(farm.output, 'logs', *log_parts(build_id))
    wait_for(lambda: os.path.exists(path), 'the log of build {}'.format(
        build_id))
    with gzip.open(path, 'rt', encoding='utf-8') as f:
        return f.read()


def test_good_builds_succeed(results):
    for kind in ('pure', 'cext'):
        [(_, status, failure, _)] = results[PROJECTS[kind]]
        assert status and failure == ''


def test_broken_build_fails_with_its_log(farm, results):
    [(build_id, status, failure, _)] = results[PROJECTS['broken']]
    assert not status
    assert failure == 'error'
    assert 'piwi-broken 1.0 refuses to build' in read_log(farm, build_id)


def test_slow_build_times_out(farm, results):
    build_id, status, failure, _ = results[PROJECTS['slow']][0]
    assert not status
    assert failure == 'timeout'
    assert 'exceeding the timeout' in read_log(farm, build_id)


def test_killed_slaves_build_is_built_by_another(results, killed_slave):
    _, killed_id = killed_slave
    assert all(built_by != killed_id
               for _, _, _, built_by in results[PROJECTS['slow']])


def test_every_build_has_its_log(farm, results):
    for package, builds in results.items():
        for build_id, _, _, _ in builds:
            assert package in read_log(farm, build_id)


def test_wheels_published_with_recorded_hashes(farm, results):
    for kind in ('pure', 'cext'):
        package = PROJECTS[kind]
        files = published(farm, package)
        assert len(files) == 1
        for filename, filehash in files.items():
            with open(os.path.join(farm.output, 'simple', package, filename),
                      'rb') as f:
                assert hashlib.sha256(f.read()).hexdigest() == filehash


def test_pip_installs_from_output(farm, results, tmp_path):
    for kind in ('pure', 'cext'):
        published(farm, PROJECTS[kind])
    env = clean_environment()
    venv = str(tmp_path / 'venv')
    subprocess.run([sys.executable, '-m', 'venv', venv], check=True,
                   env=env, timeout=300)
    python = os.path.join(venv, 'bin', 'python')
    for kind in ('pure', 'cext'):
        package = PROJECTS[kind]
        result = subprocess.run(
            [python, '-m', 'pip', 'install', '--no-index', '--find-links',
             os.path.join(farm.output, 'simple', package) + '/',
             '{}=={}'.format(package, VERSION)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, env=env, timeout=300)
        assert result.returncode == 0, result.stdout
        module = package.replace('-', '_')
        subprocess.run([python, '-c', 'import ' + module], check=True,
                       env=env, timeout=60)


def test_slaves_stop_cleanly(farm, results, killed_slave):
    killed, _ = killed_slave
    for name, (proc, build_dir) in farm.slaves.items():
        if name == killed:
            continue
        proc.terminate()
        assert proc.wait(60) == 0, farm.log(name)[-3000:]
        assert 'piw-slave stopped' in farm.log(name)
