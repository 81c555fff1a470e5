"""Download statistics end to end: Debian's Apache serving a master's output
with its access log piped to piw-logger, real pip downloading through it,
and the download in the database with pip's user agent's fields.

Apache runs as a foreground process with a configuration of its own (its
ServerRoot, PidFile, port and logs in a temporary directory), never as the
system's service. ``make test`` installs it (scripts/apt-packages)."""

import http.client
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from piwheels.devfarm import command_line
from piwheels.pgcluster import free_port

from ..fixtures.index import make_sdist
from ..fixtures.master import master_args
from ..fixtures.schema import run_sql

APACHE = '/usr/sbin/apache2'
MODULES = '/usr/lib/apache2/modules'

#: the longest a process of the test may take
TIMEOUT = 120

PACKAGE = 'piwi-apache'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(APACHE),
                       reason='needs Debian\'s apache2 (make test installs '
                       'it)'),
]

APACHE_CONF = """\
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{root}/apache2.pid"
ErrorLog "{root}/error.log"
LogLevel warn
{user}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule dir_module {modules}/mod_dir.so
LoadModule mime_module {modules}/mod_mime.so
TypesConfig /etc/mime.types
DocumentRoot "{output}"
<Directory "{output}">
    Options FollowSymLinks
    AllowOverride None
    Require all granted
    DirectoryIndex index.html index.json
</Directory>
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog "{root}/access.log" combined
CustomLog "|{logger} --drop --log-queue {log_queue} -c /dev/null" combined
"""


def clean_environment():
    """This process's environment without pip's configuration."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith('PIP_')}
    env['PIP_CONFIG_FILE'] = os.devnull
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    return env


def logger_command(root):
    """Return a piw-logger command for Apache running this source tree
    under this interpreter (an installed piw-logger may be another
    version)."""
    script = os.path.join(root, 'piw-logger')
    with open(script, 'w') as f:
        f.write('#!/bin/sh\nexec {} -c "import sys; sys.path.insert(0, {!r}); '
                'from piwheels.logger import main; sys.exit(main())" '
                '"$@"\n'.format(sys.executable, os.getcwd()))
    os.chmod(script, 0o755)
    return script


class Apache:
    """Debian's apache2 in the foreground, serving *output* on a free port
    of 127.0.0.1 and piping its access log to piw-logger."""

    def __init__(self, root, output, log_queue):
        self.root = root
        os.makedirs(root)
        self.port = free_port()
        user = 'User www-data\nGroup www-data' if os.geteuid() == 0 else ''
        self.conf = os.path.join(root, 'apache2.conf')
        with open(self.conf, 'w') as f:
            f.write(APACHE_CONF.format(
                root=root, port=self.port, user=user, modules=MODULES,
                output=output, logger=logger_command(root),
                log_queue=log_queue))
        self.process = subprocess.Popen(
            [APACHE, '-f', self.conf, '-DFOREGROUND'],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(root, 'stderr.log'), 'wb'))
        self.url = 'http://127.0.0.1:{}'.format(self.port)
        self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.errors()
            try:
                self.get('/')
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError('apache2 did not start: ' + self.errors())

    def get(self, path, connection=None):
        """GET *path*; return the status."""
        conn = connection or http.client.HTTPConnection(
            '127.0.0.1', self.port, timeout=TIMEOUT)
        try:
            conn.request('GET', path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            if connection is None:
                conn.close()

    def errors(self):
        text = ''
        for name in ('stderr.log', 'error.log'):
            path = os.path.join(self.root, name)
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    text += f.read()
        return text

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def web_root():
    """A directory the web server's user can read (pytest's temporary
    directories are private to root)."""
    path = tempfile.mkdtemp(prefix='piwapache')
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def built_wheel(web_root):
    """A real wheel of a fixture project, built by pip."""
    work = os.path.join(web_root, 'build')
    os.mkdir(work)
    sdist = make_sdist('pure', PACKAGE, '1.0', work)
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index',
         '--no-build-isolation', '-w', os.path.join(work, 'dist'), sdist],
        check=True, stdout=subprocess.DEVNULL, env=clean_environment(),
        timeout=TIMEOUT)
    (wheel,) = os.listdir(os.path.join(work, 'dist'))
    return os.path.join(work, 'dist', wheel)


@pytest.fixture
def master(with_build_abis, web_root, fake_pypi):
    """A piw-master process writing its output in *web_root*."""
    output = os.path.join(web_root, 'output')
    sockets = os.path.join(web_root, 's')
    os.mkdir(output)
    os.mkdir(sockets)
    args = master_args(with_build_abis[1], output, sockets, '--oracles', '2',
                       '--pypi-xmlrpc', fake_pypi.url, '--pypi-json',
                       fake_pypi.url)
    log = open(os.path.join(web_root, 'master.log'), 'wb')
    process = subprocess.Popen(
        command_line('piw-master', *args), stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    class Master:
        dsn = with_build_abis
        queues = {name: args[args.index('--{}-queue'.format(name)) + 1]
                  for name in ('import', 'file', 'log')}

        @staticmethod
        def sql(query, **params):
            return run_sql(with_build_abis[0], query, **params)

    Master.output = output
    yield Master
    process.terminate()
    try:
        process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def import_wheel(master, wheel):
    """Publish *wheel* through the master (piw-import): the master records
    it and writes its pages."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        result = subprocess.run(
            [sys.executable, '-m', 'piwheels.importer', '-c', os.devnull,
             '-y', '--import-queue', master.queues['import'], '--file-queue',
             master.queues['file'], wheel],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=TIMEOUT)
        if result.returncode == 0:
            return
        # the master may still be starting
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.5)


def wait_for_rows(master, query, count=1):
    deadline = time.monotonic() + TIMEOUT
    while True:
        rows = master.sql(query)
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, 'no rows for ' + query
        time.sleep(0.2)


def readable_by_all(path):
    """Let the web server's user read *path* and below."""
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(parent, name)
            mode = os.lstat(full).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(full, mode | 0o444 | (0o111 if stat.S_ISDIR(mode)
                                                else 0))


def os_release_name():
    with open('/etc/os-release') as f:
        for line in f:
            key, _, value = line.strip().partition('=')
            if key == 'NAME':
                return value.strip('"')
    return None


def test_pip_download_through_apache_is_recorded(master, built_wheel,
                                                  web_root, tmp_path):
    import_wheel(master, built_wheel)
    filename = os.path.basename(built_wheel)
    wait_for_rows(master, "SELECT 1 FROM files")
    index = os.path.join(master.output, 'simple', PACKAGE, 'index.html')
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(index):
        assert time.monotonic() < deadline, 'no simple index written'
        time.sleep(0.2)
    readable_by_all(master.output)
    apache = Apache(os.path.join(web_root, 'apache'), master.output,
                    master.queues['log'])
    try:
        downloaded = tmp_path / 'downloaded'
        result = subprocess.run(
            [sys.executable, '-m', 'pip', 'download', '--no-deps',
             '--no-cache-dir', '--index-url', apache.url + '/simple/',
             '-d', str(downloaded), '{}==1.0'.format(PACKAGE)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, env=clean_environment(),
            timeout=TIMEOUT)
        assert result.returncode == 0, result.stdout + apache.errors()
        assert os.listdir(str(downloaded)) == [filename]
        pip_version = subprocess.run(
            [sys.executable, '-m', 'pip', '--version'],
            stdout=subprocess.PIPE, universal_newlines=True,
            check=True).stdout.split()[1]
        # Apache's own log says how many downloads pip made (some versions
        # fetch the wheel twice: once for its metadata, once to save it)
        with open(os.path.join(apache.root, 'access.log')) as f:
            fetches = [line for line in f
                       if '/{} HTTP/1.1" 200 '.format(filename) in line]
        assert fetches
        rows = wait_for_rows(
            master,
            "SELECT filename, package, host, arch, distro_name, os_name, "
            "py_name, py_version, installer_name, installer_version "
            "FROM downloads", len(fetches))
        assert len(rows) == len(fetches)
        assert set(rows) == {(
            filename, PACKAGE, '127.0.0.1', platform.machine(),
            os_release_name(), platform.system(),
            platform.python_implementation(), platform.python_version(),
            'pip', pip_version)}
        searches = wait_for_rows(
            master, "SELECT package, installer_name FROM searches")
        assert set(searches) == {(PACKAGE, 'pip')}
        # BigBrother's figures count them too
        count = len(fetches)
        assert master.sql(
            "SELECT downloads_last_hour, downloads_last_month, downloads_all "
            "FROM get_statistics()") == [(count, count, count)]
    finally:
        apache.stop()


def test_apache_never_waits_for_a_master_that_is_down(web_root):
    output = os.path.join(web_root, 'output')
    os.mkdir(output)
    with open(os.path.join(output, 'faq.html'), 'w') as f:
        f.write('<html><body>piwheels</body></html>\n')
    readable_by_all(output)
    # nothing listens on the log queue
    log_queue = 'ipc://{}/nobody.sock'.format(web_root)
    apache = Apache(os.path.join(web_root, 'apache'), output, log_queue)
    try:
        conn = http.client.HTTPConnection('127.0.0.1', apache.port,
                                          timeout=TIMEOUT)
        try:
            # page views until piw-logger says it drops them: by then far
            # more log went down the pipe than it holds (64 KiB), so a
            # logger that stopped reading would have stalled Apache
            deadline = time.monotonic() + TIMEOUT
            requests = 0
            while 'dropped' not in apache.errors():
                assert time.monotonic() < deadline, apache.errors()
                for _ in range(200):
                    assert apache.get('/faq.html?' + 'x' * 500, conn) == 200
                requests += 200
        finally:
            conn.close()
    finally:
        apache.stop()
    assert requests * 500 > 64 * 1024
