"""PrivateCluster: a PostgreSQL cluster of our own, for the tests and ``make run``.

It is started from the system's server binaries (``initdb`` and ``pg_ctl``
of the newest ``/usr/lib/postgresql/*/bin``) in a directory of its own,
listening on 127.0.0.1 on a port of its own and on a socket in that
directory, so it never touches the user's clusters. PostgreSQL refuses to
run as root, so when we are root the server runs as the ``postgres`` system
user (created by Debian's postgresql package) and the directory is handed
to it.

Usage::

    python -m piwheels.pgcluster start DIR [PORT]   # idempotent
    python -m piwheels.pgcluster stop DIR
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

#: the cluster's bootstrap superuser
SUPERUSER = 'piwsuper'


def server_bindir():
    """Return the directory of the newest PostgreSQL server binaries."""
    candidates = sorted(
        glob.glob('/usr/lib/postgresql/*/bin/pg_ctl'),
        key=lambda p: int(p.split('/')[4]) if p.split('/')[4].isdigit() else 0)
    if not candidates:
        raise RuntimeError(
            'PostgreSQL server binaries not found under /usr/lib/postgresql; '
            'install the postgresql package')
    return os.path.dirname(candidates[-1])


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class PrivateCluster:
    """A PostgreSQL cluster in *path* listening on 127.0.0.1:*port*."""

    def __init__(self, path, port=None):
        self.path = os.path.abspath(path)
        self.data = os.path.join(self.path, 'data')
        self.port_file = os.path.join(self.path, 'port')
        if port is None and os.path.exists(self.port_file):
            with open(self.port_file) as f:
                port = int(f.read())
        self.port = port or free_port()
        self.bindir = server_bindir()
        self.run_as = 'postgres' if os.geteuid() == 0 else None

    def _run(self, *cmd, check=True):
        if self.run_as:
            cmd = ('runuser', '-u', self.run_as, '--') + cmd
        return subprocess.run(
            cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True)

    def _prepare_directory(self):
        os.makedirs(self.path, exist_ok=True)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.path, entry.pw_uid, entry.pw_gid)
            # the server user must be able to reach its directory
            parent = self.path
            while parent != '/':
                parent = os.path.dirname(parent)
                mode = os.stat(parent).st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)

    @property
    def running(self):
        return os.path.exists(os.path.join(self.data, 'postmaster.pid')) and \
            self._run(os.path.join(self.bindir, 'pg_ctl'), 'status', '-D',
                      self.data, check=False).returncode == 0

    def start(self):
        """Create the cluster if needed and start it (idempotent)."""
        self._prepare_directory()
        if not os.path.exists(os.path.join(self.data, 'PG_VERSION')):
            self._run(
                os.path.join(self.bindir, 'initdb'), '-D', self.data,
                '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8',
                '--locale=C.UTF-8')
            with open(self.port_file, 'w') as f:
                f.write(str(self.port))
        if not self.running:
            options = (
                '-c listen_addresses=127.0.0.1 -c port={port} '
                '-c unix_socket_directories={sock} -c fsync=off '
                '-c synchronous_commit=off -c full_page_writes=off '
                '-c max_connections=200'.format(port=self.port, sock=self.path))
            result = self._run(
                os.path.join(self.bindir, 'pg_ctl'), 'start', '-w', '-t', '60',
                '-D', self.data, '-l', os.path.join(self.path, 'server.log'),
                '-o', options, check=False)
            if result.returncode != 0:
                raise RuntimeError('unable to start PostgreSQL in {}: {}'.format(
                    self.path, result.stdout.strip()))
        self._wait_ready()
        return self

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(('127.0.0.1', self.port), 1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('PostgreSQL did not start listening on port {}'.format(
            self.port))

    def stop(self):
        """Stop the server, if it is running."""
        if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            self._run(os.path.join(self.bindir, 'pg_ctl'), 'stop', '-m', 'fast',
                      '-D', self.data, check=False)

    def destroy(self):
        """Stop the server and remove the cluster's directory."""
        self.stop()
        shutil.rmtree(self.path, ignore_errors=True)

    def dsn(self, user=SUPERUSER, database='postgres', password=None):
        """Return an SQLAlchemy DSN for *user* on *database* in this cluster."""
        auth = user if password is None else '{}:{}'.format(user, password)
        return 'postgresql://{}@127.0.0.1:{}/{}'.format(auth, self.port, database)

    def psql(self, sql, database='postgres', user=SUPERUSER):
        """Run *sql* with psql as *user*; return its output."""
        result = subprocess.run(
            [os.path.join(self.bindir, 'psql'), '-X', '-q', '-v',
             'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', str(self.port),
             '-U', user, '-d', database, '-At', '-c', sql],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip())
        return result.stdout


def main(args=None):
    args = sys.argv[1:] if args is None else args
    if len(args) < 2 or args[0] not in ('start', 'stop'):
        print('usage: python -m piwheels.pgcluster start|stop DIR [PORT]',
              file=sys.stderr)
        return 2
    cluster = PrivateCluster(
        args[1], int(args[2]) if len(args) > 2 else None)
    if args[0] == 'start':
        cluster.start()
        print(cluster.port)
    else:
        cluster.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
