"""The farm ``make run`` starts: PostgreSQL, the master, one local slave and a
web server for the output, all on embedded defaults under ``./var``.

Run as ``python -m piwheels.devfarm [--var DIR]``. It starts a private
PostgreSQL cluster in ``DIR/postgres``, creates the ``piwheels`` role and
database and runs ``piw-initdb -y`` (which initialises or upgrades the
schema, or does nothing when it is current), then starts ``piw-master``
writing to ``DIR/output``, one ``piw-slave`` building for this machine's ABI
in ``DIR/builds``, and serves the output on 127.0.0.1. Ctrl+C (or SIGTERM)
stops everything, the cluster included. A second run reuses the cluster,
the database, the output and the ports the first one chose.

Parts of piwheels that do not exist yet are reported and skipped; the rest
still starts. Two hooks are meant to be extended: :func:`serve_output`
(how the output directory is served) and :func:`pypi_source_arguments`
(what the master follows on PyPI).
"""

import argparse
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from packaging import tags

from .pgcluster import PrivateCluster, free_port

#: the ordinary database role the master connects as, and its password
DB_USER = 'piwheels'
DB_PASSWORD = 'piwheels'
#: the farm's database
DB_NAME = 'piwheels'

#: the commands the farm runs, with the module each needs
PARTS = [
    ('piw-initdb', 'piwheels.initdb'),
    ('piw-master', 'piwheels.master'),
    ('piw-slave', 'piwheels.slave'),
]

#: how long the master and slave get to stop after SIGTERM before SIGKILL
STOP_TIMEOUT = 30


def missing_parts():
    """Return the commands of :data:`PARTS` whose code is not there yet."""
    missing = []
    for command, module in PARTS:
        try:
            imported = importlib.import_module(module)
        except ImportError:
            missing.append(command)
            continue
        if not callable(getattr(imported, 'main', None)):
            missing.append(command)
    return missing


def command_line(command, *args):
    """Return the argument list running piw-*command* (e.g. ``'piw-master'``)
    with *args* under this interpreter, whether or not its console script
    is installed."""
    module = dict(PARTS)[command]
    return [sys.executable, '-c',
            'import sys; from {} import main; sys.exit(main())'.format(module),
            ] + list(args)


def native_abi():
    """Return the ABI tag this interpreter builds wheels for (the one the
    farm's slave builds, so the database must schedule builds for it)."""
    return next(iter(tags.sys_tags())).abi


def serve_output(path, host='127.0.0.1', port=0):
    """Serve the output directory *path* on *host*:*port* in a background
    thread; return ``(url, close)`` where *url* ends with a slash and
    *close* stops the server.

    This is the hook for serving the output: it uses
    :class:`piwheels.webserver.OutputServer` (content negotiation as in
    production) when that exists, and a plain static server otherwise.
    """
    try:
        from .webserver import OutputServer
    except ImportError:
        server = ThreadingHTTPServer(
            (host, port), partial(_QuietHandler, directory=path))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def close():
            server.shutdown()
            server.server_close()
        return 'http://{}:{}/'.format(*server.server_address[:2]), close
    server = OutputServer(path, host, port).start()
    return server.url, server.close


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


#: where the farm reads projects from: PyPI's JSON API
PYPI_JSON = 'https://pypi.org/pypi'

#: the real PyPI projects the farm follows: small ones without a
#: pure-Python wheel on PyPI (those are never built), two pure Python
#: (docopt, sgmllib3k) and one with a C extension (markupsafe)
DEFAULT_PROJECTS = ['docopt', 'sgmllib3k', 'markupsafe']


def pypi_source_arguments(farm):
    """Return the extra ``piw-master`` arguments saying what the farm
    follows on PyPI: the projects of :data:`DEFAULT_PROJECTS`, read through
    PyPI's JSON API (GET requests only) every minute, rather than the whole
    of PyPI through its XML-RPC changelog.

    :param Farm farm: the farm being started (its paths and ports).
    """
    return (['--pypi-json', farm.pypi_json, '--pypi-interval', '1m',
             '--pypi-projects'] + DEFAULT_PROJECTS)


class Farm:
    """The state of a development farm under *var*: its paths, and the ports
    it chose (kept in ``var/ports.json`` so a second run reuses them)."""

    def __init__(self, var, pypi_json=PYPI_JSON):
        self.var = os.path.abspath(var)
        self.pypi_json = pypi_json
        self.output = os.path.join(self.var, 'output')
        self.builds = os.path.join(self.var, 'builds')
        self.sockets = os.path.join(self.var, 'sockets')
        self.logs = os.path.join(self.var, 'logs')
        for path in (self.var, self.output, self.builds, self.sockets, self.logs):
            os.makedirs(path, exist_ok=True)
        self.ports = self._load_ports()
        self.cluster = PrivateCluster(os.path.join(self.var, 'postgres'))

    def _load_ports(self):
        path = os.path.join(self.var, 'ports.json')
        try:
            with open(path) as f:
                ports = json.load(f)
        except (OSError, ValueError):
            ports = {}
        for name in ('slave', 'file', 'web'):
            if not isinstance(ports.get(name), int) or not port_is_free(ports[name]):
                ports[name] = free_port()
        with open(path, 'w') as f:
            json.dump(ports, f)
        return ports

    def queue(self, name):
        """Return the ipc:// address of the master's *name* queue."""
        return 'ipc://{}'.format(os.path.join(self.sockets, name))

    @property
    def superuser_dsn(self):
        return self.cluster.dsn(database=DB_NAME)

    @property
    def user_dsn(self):
        return self.cluster.dsn(user=DB_USER, password=DB_PASSWORD,
                                database=DB_NAME)

    def create_database(self):
        """Create the role and database if a previous run has not."""
        if not self.cluster.psql(
                "SELECT 1 FROM pg_roles WHERE rolname = '{}'".format(DB_USER)).strip():
            self.cluster.psql("CREATE ROLE {} LOGIN PASSWORD '{}'".format(
                DB_USER, DB_PASSWORD))
        if not self.cluster.psql(
                "SELECT 1 FROM pg_database WHERE datname = '{}'".format(DB_NAME)).strip():
            self.cluster.psql('CREATE DATABASE {}'.format(DB_NAME))

    def master_arguments(self):
        """Return the ``piw-master`` options of the farm."""
        return [
            '--dsn', self.user_dsn, '--output-path', self.output, '--dev-mode',
            '--slave-queue', 'tcp://127.0.0.1:{}'.format(self.ports['slave']),
            '--file-queue', 'tcp://127.0.0.1:{}'.format(self.ports['file']),
            '--status-queue', self.queue('status'),
            '--control-queue', self.queue('control'),
            '--import-queue', self.queue('import'),
            '--log-queue', self.queue('logger'),
        ] + pypi_source_arguments(self)

    def slave_arguments(self):
        """Return the ``piw-slave`` options of the farm."""
        return [
            '--master', '127.0.0.1',
            '--master-port', str(self.ports['slave']),
            '--file-port', str(self.ports['file']),
            '--dir', self.builds, '--label', 'devfarm',
        ]


def port_is_free(port):
    """Return True if nothing listens on 127.0.0.1:*port*."""
    with socket.socket() as sock:
        # as the servers do: connections of a previous run lingering in
        # TIME_WAIT do not make the port busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


def start(command, args, log_path):
    """Start piw-*command* with *args*, its output appended to *log_path*;
    return the :class:`subprocess.Popen`."""
    log = open(log_path, 'ab')
    try:
        return subprocess.Popen(
            command_line(command, *args), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()


def stop(process, name):
    """Stop *process* with SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`."""
    if process.poll() is not None:
        return
    print('Stopping {}...'.format(name))
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print('{} did not stop within {}s; killing it'.format(name, STOP_TIMEOUT))
        process.kill()
        process.wait()


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--var', default='var',
                        help="directory for the farm's state (default: var)")
    parser.add_argument('--pypi-json', metavar='URL', default=PYPI_JSON,
                        help="PyPI's JSON API, where the farm reads its "
                        'projects (default: %(default)s)')
    config = parser.parse_args(args)
    farm = Farm(config.var, config.pypi_json)
    # Ctrl+C stops the farm even if it was started with SIGINT ignored (as
    # a shell script's background job is), and SIGTERM the same way
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    processes = []
    close_web = None
    try:
        farm.cluster.start()
        print('PostgreSQL running in {} on 127.0.0.1:{}'.format(
            farm.cluster.path, farm.cluster.port))
        farm.create_database()
        missing = missing_parts()
        if missing:
            print('Not built yet, so not started: {}'.format(', '.join(missing)))
        if 'piw-initdb' not in missing:
            result = subprocess.run(
                command_line('piw-initdb', '--yes', '--dsn', farm.superuser_dsn,
                             '--user', DB_USER, '--add-abi', native_abi()))
            if result.returncode != 0:
                print('piw-initdb failed (exit status {}); see above'.format(
                    result.returncode))
                return 1
        url, close_web = serve_output(farm.output, port=farm.ports['web'])
        if 'piw-master' not in missing and 'piw-initdb' not in missing:
            processes.append(('piw-master', start(
                'piw-master', farm.master_arguments(),
                os.path.join(farm.logs, 'master.log'))))
        if 'piw-slave' not in missing and processes:
            processes.append(('piw-slave', start(
                'piw-slave', farm.slave_arguments(),
                os.path.join(farm.logs, 'slave.log'))))
        print('Output directory: {}'.format(farm.output))
        print('Served at {}  (pip install --index-url {}simple/ PACKAGE)'.format(
            url, url))
        print('Running: {}'.format(
            ', '.join(name for name, process in processes) or
            'the database and web server only'))
        print('Logs: {}'.format(farm.logs))
        print('Database: {}'.format(farm.user_dsn))
        print('Watch it: piw-monitor --status-queue {} --control-queue '
              '{}'.format(farm.queue('status'), farm.queue('control')))
        print('Press Ctrl+C to stop everything.')
        while True:
            for name, process in processes:
                if process.poll() is not None:
                    print('{} exited with status {}; see {}'.format(
                        name, process.returncode, farm.logs))
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print('make run: error: {}'.format(exc))
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for name, process in reversed(processes):
            stop(process, name)
        if close_web is not None:
            close_web()
        farm.cluster.stop()
        print('Farm stopped; everything is kept in {} for the next run'.format(
            farm.var))


if __name__ == '__main__':
    sys.exit(main())
