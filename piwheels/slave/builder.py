"""Builds one wheel with the real ``pip wheel`` in a sandbox, and describes the result.

:class:`Builder` runs ``pip wheel --no-deps`` for exactly ``package==version``
from the index the master names, in a fresh temporary directory with a
fresh ``HOME`` and ``TMPDIR`` inside it, in a process group of its own that
is killed whole at the timeout. It captures the log, and for each wheel
produced a :class:`Wheel` reads the wheel's ``Requires-Python`` and works out
the Debian packages its shared libraries need (``ldd`` + ``dpkg -S``).
:meth:`Builder.clean` removes every trace of the build.

Nothing of the machine's pip configuration reaches the build: the child's
environment is built from scratch (no ``PIP_*`` variables but
``PIP_CONFIG_FILE=/dev/null``, which makes pip skip every configuration
file, ``/etc/pip.conf`` included), so builds on every slave see the same
single index.
"""

import email.message
import email.parser
import errno
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import timedelta

from packaging.utils import canonicalize_name

from ..exc import MasterTimeout
from ..protocols import MAX_BUILD_OUTPUT, BuildResult, parse_wheel_filename
from ..states import FileState


#: environment variables passed through to builds: they say how to reach
#: the network and whom to trust there, never where packages come from
PASSED_ENVIRONMENT = (
    'PATH', 'http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY',
    'HTTPS_PROXY', 'NO_PROXY', 'SSL_CERT_FILE', 'SSL_CERT_DIR',
    'REQUESTS_CA_BUNDLE', 'PIP_CERT',
)

#: how long a file transfer waits without hearing from the FileJuggler
#: before greeting it again (it may have dropped our messages)
TRANSFER_NUDGE = timedelta(seconds=5)

#: how long a killed build's process group gets to exit after SIGTERM
#: before it is sent SIGKILL
KILL_GRACE = 5

#: what the log of a failed build says about why it failed, checked in this
#: order; the first kind (see :data:`piwheels.protocols.Failure`) whose
#: pattern matches anywhere in the log wins
FAILURE_PATTERNS = [
    ('disk', re.compile(
        r'No space left on device|ENOSPC|Disk quota exceeded')),
    ('killed', re.compile(
        r'MemoryError|Cannot allocate memory|out of memory|'
        r'virtual memory exhausted|Killed signal terminated program|'
        r'internal compiler error: Killed')),
    ('network', re.compile(
        r'Temporary failure in name resolution|Name or service not known|'
        r'NewConnectionError|Max retries exceeded|ConnectTimeoutError|'
        r'ReadTimeoutError|Connection refused|Connection reset by peer|'
        r'Network is unreachable|No route to host|'
        r'SSLError|HTTP error 5\d\d|HTTPError: 5\d\d')),
]


class Wheel:
    """A wheel a build produced, at *path*; its filename deconstructed into
    the fields of PEP 427/425.

    :param str path: the wheel's path on the local file-system.
    :param dict dependencies: maps a tool (``'apt'``) to the set of packages
        of that tool the wheel needs at run time (default: none).
    :raises ValueError: if the file's name is not a wheel filename.
    """

    def __init__(self, path, dependencies=None):
        self.path = os.path.abspath(path)
        self._parts = parse_wheel_filename(os.path.basename(path))
        self.dependencies = {
            tool: set(packages)
            for tool, packages in (dependencies or {}).items()
        }
        self._filehash = None

    def __repr__(self):
        return '<Wheel {}>'.format(self.filename)

    @property
    def filename(self):
        """The wheel's filename, with no path components."""
        return os.path.basename(self.path)

    @property
    def filesize(self):
        """The size of the wheel in bytes."""
        return os.stat(self.path).st_size

    @property
    def filehash(self):
        """The SHA256 digest of the wheel's contents, as hex."""
        if self._filehash is None:
            digest = hashlib.sha256()
            with self.open() as f:
                for block in iter(lambda: f.read(1024 * 1024), b''):
                    digest.update(block)
            self._filehash = digest.hexdigest()
        return self._filehash

    @property
    def package_tag(self):
        """The distribution part of the filename (first element)."""
        return self._parts.package_tag

    @property
    def package_canon(self):
        """:attr:`package_tag` canonicalized by PyPI's rules."""
        return canonicalize_name(self.package_tag)

    @property
    def package_version_tag(self):
        """The version part of the filename (second element)."""
        return self._parts.package_version_tag

    @property
    def build_tag(self):
        """The optional build part of the filename ('' when absent)."""
        return self._parts.build_tag

    @property
    def py_version_tag(self):
        """The Python tag of the filename (third element from the end)."""
        return self._parts.py_version_tag

    @property
    def abi_tag(self):
        """The ABI tag of the filename (second element from the end)."""
        return self._parts.abi_tag

    @property
    def platform_tag(self):
        """The platform tag of the filename (last element)."""
        return self._parts.platform_tag

    def open(self):
        """Return the wheel opened for reading in binary mode."""
        return open(self.path, 'rb')

    @property
    def metadata(self):
        """The wheel's ``METADATA`` parsed as an :class:`email.message.Message`
        (empty when the wheel has none)."""
        with zipfile.ZipFile(self.path) as wheel:
            names = [
                name for name in wheel.namelist()
                if re.fullmatch(r'[^/]+\.dist-info/METADATA', name)
            ]
            if not names:
                return email.message.Message()
            text = wheel.read(names[0]).decode('utf-8', errors='replace')
        return email.parser.HeaderParser().parsestr(text)

    @property
    def requires_python(self):
        """The ``Requires-Python`` of the wheel's metadata, or :data:`None`."""
        return self.metadata.get('Requires-Python')

    def shared_libraries(self):
        """Return the names of the shared objects inside the wheel."""
        with zipfile.ZipFile(self.path) as wheel:
            return [
                name for name in wheel.namelist()
                if re.search(r'\.so(\.\d+)*$', name) and not name.endswith('/')
            ]

    def transfer(self, queue, slave_id, *, timeout=timedelta(minutes=5),
                 tick=None):
        """Send the wheel to the FileJuggler over *queue* (a connected DEALER
        socket speaking the reversed ``file_juggler_files`` protocol): greet
        it with HELLO *slave_id*, answer each FETCH with the CHUNK asked for,
        and return at DONE.

        The juggler keeps several FETCHes in flight and asks again for what
        it lost, so chunks are answered in whatever order they are asked.
        When it falls silent for :data:`TRANSFER_NUDGE` the slave greets it
        again.

        :param datetime.timedelta timeout: give up after this long without a
            message from the juggler.
        :param tick: called about once a second while waiting (the slave
            pings systemd's watchdog with it).
        :raises MasterTimeout: if the juggler is silent for *timeout*.
        """
        limit = timeout.total_seconds()
        with self.open() as wheel:
            queue.send_msg('HELLO', slave_id)
            heard = nudged = time.monotonic()
            while True:
                if not queue.poll(1):
                    now = time.monotonic()
                    if now - heard > limit:
                        raise MasterTimeout(
                            'file transfer of {}: no message from the master '
                            'within {}'.format(self.filename, timeout))
                    if now - nudged > TRANSFER_NUDGE.total_seconds():
                        queue.send_msg('HELLO', slave_id)
                        nudged = now
                    if tick is not None:
                        tick()
                    continue
                msg, data = queue.recv_msg()
                heard = nudged = time.monotonic()
                if msg == 'DONE':
                    return
                offset, length = data
                wheel.seek(offset)
                queue.send_msg('CHUNK', [offset, wheel.read(length)])

    def as_file_state(self):
        """Return the :class:`~piwheels.states.FileState` describing the
        wheel in the BUILT message."""
        return FileState(
            self.filename, self.filesize, self.filehash, self.package_tag,
            self.package_version_tag, self.py_version_tag, self.abi_tag,
            self.platform_tag, self.requires_python, self.dependencies)


def apt_dependencies(paths):
    """Return the set of Debian packages that provide the shared libraries
    the shared objects at *paths* link against (via ``ldd`` and
    ``dpkg -S``). Libraries no package owns are left out; an empty set when
    ``ldd`` or ``dpkg`` is missing."""
    libraries = set()
    for path in paths:
        try:
            result = subprocess.run(
                ['ldd', path], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, universal_newlines=True,
                timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return set()
        for line in result.stdout.splitlines():
            match = re.match(r'\s*\S+\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)', line)
            if match:
                libraries.add(match.group(1))
    candidates = set()
    for library in libraries:
        candidates.add(library)
        candidates.add(os.path.realpath(library))
        # on a merged-/usr system ldd reports /lib/... while dpkg may know
        # the file under /usr/lib/... (or the other way round)
        if library.startswith('/usr/'):
            candidates.add(library[len('/usr'):])
        else:
            candidates.add('/usr' + library)
    if not candidates:
        return set()
    try:
        result = subprocess.run(
            ['dpkg', '-S'] + sorted(candidates), stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, universal_newlines=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    packages = set()
    for line in result.stdout.splitlines():
        owners, sep, _ = line.partition(': ')
        if not sep or owners.startswith('diversion by'):
            continue
        for owner in owners.split(','):
            packages.add(owner.strip().split(':')[0])
    return packages


def classify_failure(returncode, output, timed_out):
    """Return why a build failed, as one of the kinds of
    :data:`piwheels.protocols.Failure`: ``'timeout'``, ``'disk'``,
    ``'killed'`` (out of memory or killed by a signal), ``'network'`` or
    ``'error'`` (the build itself failed), judged from pip's *returncode*
    (negative: killed by that signal), its *output* and whether it was
    killed at the timeout (*timed_out*)."""
    if timed_out:
        return 'timeout'
    for kind, pattern in FAILURE_PATTERNS:
        if pattern.search(output):
            return kind
    if returncode is not None and returncode < 0:
        return 'killed'
    return 'error'


def trim_log(text, limit=MAX_BUILD_OUTPUT):
    """Return *text*, or when it is longer than *limit* characters its head
    and tail with a note of what was left out, *limit* characters in all."""
    if len(text) <= limit:
        return text
    # the note's own length depends on the number in it; reserve for the
    # longest it can be
    note = '\n[... {} characters of the log left out ...]\n'
    keep = (limit - len(note.format(len(text)))) // 2
    return text[:keep] + note.format(len(text) - 2 * keep) + text[-keep:]


class Builder(threading.Thread):
    """Builds the wheel of *package* at *version* in the background; call
    :meth:`start`, then watch :meth:`is_alive` (or :meth:`join`) and finally
    :meth:`clean`.

    :param str package: the name of the package to build.
    :param str version: the version of the package to build.
    :param datetime.timedelta timeout: how long pip may run before the build
        is killed (default: 5 minutes).
    :param str index_url: the PEP 503 index to fetch the sdist and build
        requirements from (default: PyPI's).
    :param str dir: the directory under which the build's temporary
        directory is made (default: the system's temporary directory).
    """

    def __init__(self, package, version, *, timeout=timedelta(minutes=5),
                 index_url='https://pypi.org/simple/', dir=None):
        super().__init__(daemon=True, name='builder')
        self.package = package
        self.version = version
        self.timeout = timeout
        self.index_url = index_url
        self.parent_dir = dir
        self.logger = logging.getLogger('piwheels.slave.builder')
        #: the build's temporary directory (:data:`None` before it starts and
        #: after :meth:`clean`)
        self.path = None
        #: the process group id of the running pip (:data:`None` when idle)
        self.pgid = None
        #: :data:`True` once pip exited 0 and produced at least one wheel
        self.status = False
        #: why the build failed (see :data:`piwheels.protocols.Failure`; ''
        #: while it has not)
        self.failure = ''
        #: pip's exit status (negative: killed by that signal)
        self.returncode = None
        #: the build's log
        self.output = ''
        #: the :class:`Wheel` objects the build produced
        self.wheels = []
        self._started_at = None
        self._finished_at = None
        self._stop_requested = threading.Event()

    @property
    def duration(self):
        """How long the build has run (or ran), as a
        :class:`~datetime.timedelta`."""
        if self._started_at is None:
            return timedelta(0)
        end = self._finished_at or time.monotonic()
        return timedelta(seconds=end - self._started_at)

    def build_command(self, wheel_dir):
        """Return the ``pip wheel`` command line of the build."""
        return [
            sys.executable, '-m', 'pip', 'wheel',
            '--verbose', '--no-input', '--disable-pip-version-check',
            '--progress-bar', 'off',
            '--no-deps', '--no-cache-dir',
            # build this project from its source even when the index has a
            # wheel of it: building is the point
            '--no-binary', self.package,
            '--index-url', self.index_url,
            '--wheel-dir', wheel_dir,
            '{}=={}'.format(self.package, self.version),
        ]

    def build_environment(self, home, tmp):
        """Return the environment of the build: a fresh *home* and *tmp*,
        and nothing of pip's configuration from this machine."""
        env = {
            name: os.environ[name] for name in PASSED_ENVIRONMENT
            if name in os.environ
        }
        env.setdefault('PATH', os.defpath)
        env.update({
            'HOME': home,
            'TMPDIR': tmp,
            'LANG': 'C.UTF-8',
            'LC_ALL': 'C.UTF-8',
            'PIP_CONFIG_FILE': os.devnull,
            'PYTHONDONTWRITEBYTECODE': '1',
        })
        return env

    def run(self):
        """Run the build (in the builder's thread): pip, then the wheels'
        details."""
        self._started_at = time.monotonic()
        try:
            self.path = tempfile.mkdtemp(prefix='piw-build-', dir=self.parent_dir)
            home, tmp, wheel_dir = (
                os.path.join(self.path, name) for name in ('home', 'tmp', 'wheels'))
            for directory in (home, tmp, wheel_dir):
                os.mkdir(directory, 0o700)
            timed_out = self.run_pip(
                self.build_command(wheel_dir),
                self.build_environment(home, tmp),
                os.path.join(self.path, 'output.log'))
            if self.returncode == 0:
                self.wheels = [
                    self.describe_wheel(os.path.join(wheel_dir, name))
                    for name in sorted(os.listdir(wheel_dir))
                    if name.endswith('.whl')
                ]
                self.status = bool(self.wheels)
            if not self.status:
                self.failure = classify_failure(
                    self.returncode, self.output, timed_out)
        except OSError as exc:
            self.fail('The build could not run: {}'.format(exc),
                      'disk' if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                      else 'error')
        except (ValueError, zipfile.BadZipFile) as exc:
            # pip made something that is not a valid wheel
            self.fail('The build produced a bad wheel: {}'.format(exc), 'error')
        finally:
            # whatever stopped the build (even a bug here), a build without
            # wheels is reported as failed with a kind the master knows
            if not self.status and not self.failure:
                self.failure = 'error'
            self._finished_at = time.monotonic()

    def fail(self, reason, failure):
        """Record that the build failed for *reason* (added to the log),
        of the kind *failure*."""
        self.output = trim_log('{}\n{}\n'.format(self.output, reason))
        self.failure = failure
        self.status = False
        self.wheels = []

    def run_pip(self, command, env, output_file):
        """Run *command* with *env* in a new session, its output going to
        *output_file*; kill its whole process group at the timeout or when
        :meth:`stop` is called. Return :data:`True` if it was killed at the
        timeout."""
        deadline = self._started_at + self.timeout.total_seconds()
        timed_out = False
        with open(output_file, 'wb') as output:
            output.write('$ {}\n'.format(' '.join(command[1:])).encode('utf-8'))
            output.flush()
            process = subprocess.Popen(
                command, env=env, cwd=self.path, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True)
            self.pgid = process.pid
            try:
                while True:
                    try:
                        process.wait(timeout=0.1)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if self._stop_requested.is_set():
                        break
                    if time.monotonic() > deadline:
                        timed_out = True
                        break
            finally:
                # kill what is left of the group even when pip itself has
                # exited: a build may leave daemons behind
                kill_process_group(process.pid, process)
                self.pgid = None
        self.returncode = process.returncode
        with open(output_file, 'rb') as output:
            text = output.read().decode('utf-8', errors='replace')
        if timed_out:
            text += '\nBuild killed after exceeding the timeout of {}\n'.format(
                self.timeout)
        elif self._stop_requested.is_set():
            text += '\nBuild stopped at the master\'s request\n'
        self.output = trim_log(text)
        return timed_out

    def describe_wheel(self, path):
        """Return the :class:`Wheel` at *path* with its apt dependencies."""
        wheel = Wheel(path)
        libraries = wheel.shared_libraries()
        if libraries:
            unpacked = os.path.join(self.path, 'unpacked')
            with zipfile.ZipFile(path) as archive:
                paths = []
                for name in libraries:
                    paths.append(archive.extract(name, unpacked))
            wheel.dependencies['apt'] = apt_dependencies(paths)
        return wheel

    def stop(self):
        """Ask the build to stop early (it is killed, and counts as failed);
        returns immediately, :meth:`join` to wait."""
        self._stop_requested.set()

    def clean(self):
        """Stop the build if it is running and remove its directory and all
        it contains."""
        self.stop()
        if self.is_alive():
            self.join()
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None

    def as_message(self):
        """Return the :class:`~piwheels.protocols.BuildResult` of the
        finished build, the data of the BUILT message."""
        return BuildResult(
            self.status, self.duration, self.output,
            [wheel.as_file_state() for wheel in self.wheels], self.failure)


def kill_process_group(pgid, process=None):
    """Kill every process in process group *pgid*: SIGTERM, then SIGKILL to
    whatever is left after :data:`KILL_GRACE` seconds; reap *process* (the
    group's leader, a :class:`subprocess.Popen`) if given."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_members(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + KILL_GRACE
        while time.monotonic() < deadline:
            if process is not None:
                process.poll()
            if not group_members(pgid):
                break
            time.sleep(0.05)
    if process is not None:
        process.wait()


def group_members(pgid):
    """Return the ids of the live (not zombie) processes in process group
    *pgid*, read from ``/proc``."""
    members = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/{}/stat'.format(entry), 'rb') as f:
                stat = f.read().decode('ascii', errors='replace')
        except OSError:
            continue
        # the command name is in brackets and may itself contain spaces
        fields = stat[stat.rfind(')') + 2:].split()
        if len(fields) > 2 and fields[0] != 'Z' and int(fields[2]) == pgid:
            members.append(int(entry))
    return members
