"""The web output directory: where each page and file of the site lives, and
how files are put there so that nobody ever sees one half-written.

Layout (every path is below the output directory)::

    index.html  faq.html  404.html  packages.json  status.json
    sitemap.xml  sitemap/<n>.xml  static/...
    simple/index.html  simple/index.json          the root of the index
    simple/<pkg>/index.html  simple/<pkg>/index.json
    simple/<pkg>/<wheel>  simple/<pkg>/<wheel>.metadata
    project/<pkg>/index.html  project/<pkg>/json/index.json
    logs/<3 digits>/<3 digits>/<3 digits>.txt.gz   (build id 1 is 000/000/001)

``<pkg>`` is always the PEP 503 normalised name; a package's other spellings
are symbolic links to that directory. Wheels are placed in
``simple/<pkg>/`` by the file juggler (see :meth:`WebOutput.wheel_path`).
"""

import ctypes
import errno
import itertools
import logging
import os
import re
import shutil
import stat
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

from ..exc import PiwheelsError

log = logging.getLogger('master.output')

#: a project name as PyPI accepts it (PEP 508); nothing else names a directory
VALID_NAME = re.compile(r'^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$')

#: a plain file name: no separators, not hidden, printable, not too long
VALID_FILENAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+!-]{0,250}$')

#: with more files than this in a batch, one syncfs beats a fsync per file
SYNC_EACH_LIMIT = 8

#: threads moving the files of a large batch into place: a rename that
#: replaces a file frees the old one, which can wait for the disk (about
#: 0.2 ms where the file system discards freed blocks at once)
MOVERS = 4

#: the *current* of :meth:`FileBatch.write` when the caller has not read the
#: file in place
UNREAD = object()

#: temporary files are hidden (leading dot) and end with this
_TMP_SUFFIX = '.tmp'


class OutputError(PiwheelsError, ValueError):
    """A name or path cannot be used in the web output (it would escape the
    output directory, or is not a valid package or file name)."""


def canonicalize(name):
    """Return the PEP 503 normalised form of the project *name*.

    :param str name: a project name as PyPI spells it
    :raises OutputError: if *name* is not a valid project name (so it can't
        be turned into a path outside its directory)
    """
    if not isinstance(name, str) or not VALID_NAME.match(name):
        raise OutputError('invalid package name {!r}'.format(name))
    return re.sub(r'[-_.]+', '-', name).lower()


def check_filename(filename):
    """Return *filename* if it is a plain file name safe to publish.

    :raises OutputError: if it has path separators, starts with a dot, or
        holds characters a wheel or log name never has
    """
    if (not isinstance(filename, str) or not VALID_FILENAME.match(filename)
            or '..' in filename):
        raise OutputError('invalid file name {!r}'.format(filename))
    return filename


def wheel_version(filename):
    """Return the version field of a wheel *filename*, or :data:`None` if it
    is not a wheel's name."""
    if not filename.endswith('.whl'):
        return None
    parts = filename[:-4].split('-')
    if len(parts) not in (5, 6):
        return None
    return parts[1]


def wheel_version_tag(version):
    """Return *version* escaped as it appears in a wheel's file name."""
    return re.sub(r'[^\w\d.]+', '_', version)


def log_parts(build_id):
    """Split *build_id* into the three path components of its log file."""
    if not isinstance(build_id, int) or isinstance(build_id, bool) or build_id < 0:
        raise OutputError('invalid build id {!r}'.format(build_id))
    digits = '{:09d}'.format(build_id)
    return digits[:-6], digits[-6:-3], digits[-3:] + '.txt.gz'


def _syncfs(path):
    """Flush every dirty page of the file system holding *path*."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC is None or _LIBC.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def fsync_file(path):
    """Flush the file at *path* to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flush_to_disk(paths, root, each_limit=SYNC_EACH_LIMIT):
    """Flush the files at *paths* to disk: each on its own when there are
    no more than *each_limit*, else the whole file system holding *root*
    with one syncfs."""
    if len(paths) > each_limit:
        _syncfs(root)
    else:
        for path in paths:
            fsync_file(path)


def _load_libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs  # pylint: disable=pointless-statement
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


class WebOutput:
    """The output directory at *root*: path helpers that refuse anything
    that could escape it, and the operations the scribe needs on whole
    package directories (aliases, deletion, wheel metadata).

    :param str root: the output directory (piw-master makes it before
        starting its tasks)
    """

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def path(self, *parts):
        """Join *parts* below the root; each must be one plain component."""
        for part in parts:
            if (not part or part in ('.', '..') or '/' in part or '\0' in part):
                raise OutputError('invalid path component {!r}'.format(part))
        return os.path.join(self.root, *parts)

    def simple_dir(self, package):
        """The directory of *package*'s index page and files."""
        return self.path('simple', canonicalize(package))

    def project_dir(self, package):
        """The directory of *package*'s project page."""
        return self.path('project', canonicalize(package))

    def wheel_path(self, package, filename):
        """Where the wheel *filename* of *package* is published."""
        return self.path('simple', canonicalize(package), check_filename(filename))

    def log_path(self, build_id):
        """Where the (gzipped) log of build *build_id* is published."""
        return self.path('logs', *log_parts(build_id))

    def batch(self):
        """Return a new :class:`FileBatch` writing below the root."""
        return FileBatch(self)

    def make_dir(self, path):
        """Make the real directory *path* (and its parents below the root).
        A symbolic link in its place (a package alias) is replaced by the
        directory; a link is never followed. Returns the directories made
        where there was nothing, parents first."""
        if path == self.root:
            os.makedirs(path, exist_ok=True)
            return []
        parent = os.path.dirname(path)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            made = self.make_dir(parent)
            try:
                os.mkdir(path)
            except FileExistsError:
                return made + self.make_dir(path)
            return made + [path]
        if stat.S_ISDIR(mode):
            return []
        if stat.S_ISLNK(mode):
            log.info('replacing alias link %s with a directory', path)
            os.unlink(path)
            os.mkdir(path)
            return []
        raise OutputError('{} is in the way of a directory'.format(path))

    def link_alias(self, area, alias, package):
        """Make ``area/alias`` a relative symbolic link to ``area/<package>``.

        Nothing happens when *alias* normalises to itself or a real directory
        already has the name; a link is replaced, never followed.

        :param str area: ``simple`` or ``project``
        :returns: :data:`True` if the link was created or changed
        """
        canon = canonicalize(package)
        canonicalize(alias)
        if alias == canon:
            return False
        path = self.path(area, alias)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISLNK(st.st_mode):
                return False
            if os.readlink(path) == canon:
                return False
        self.make_dir(self.path(area))
        tmp = self.path(area, '.{}.{}{}'.format(alias, os.getpid(), _TMP_SUFFIX))
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(canon, tmp)
        os.rename(tmp, path)
        return True

    def remove(self, path):
        """Remove *path*: a link or file is unlinked, a directory removed
        with everything in it (links inside are removed, not followed)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return True

    def remove_alias(self, area, alias, package):
        """Remove ``area/alias`` if it is a link to *package*'s directory."""
        path = self.path(area, alias)
        if os.path.islink(path) and os.readlink(path) == canonicalize(package):
            os.unlink(path)
            return True
        return False

    def wheel_files(self, package):
        """Return the names of the wheels in *package*'s directory."""
        try:
            with os.scandir(self.simple_dir(package)) as entries:
                return sorted(
                    entry.name for entry in entries
                    if entry.name.endswith('.whl') and entry.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []


def extract_metadata(wheel_path):
    """Return the bytes of the core metadata (``*.dist-info/METADATA``) in
    the wheel at *wheel_path*, or :data:`None` if the wheel is missing or
    holds no (unambiguous) metadata."""
    name, version = os.path.basename(wheel_path).split('-')[:2]
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            candidates = [
                info for info in wheel.infolist()
                if info.filename.count('/') == 1
                and info.filename.endswith('.dist-info/METADATA')
            ]
            expected = '{}-{}.dist-info/METADATA'.format(name, version).lower()
            chosen = [info for info in candidates if info.filename.lower() == expected]
            if not chosen and len(candidates) == 1:
                chosen = candidates
            if len(chosen) != 1:
                log.warning('no unambiguous METADATA in %s', wheel_path)
                return None
            return wheel.read(chosen[0])
    except FileNotFoundError:
        return None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        log.warning('cannot read METADATA from %s: %s', wheel_path, exc)
        return None


class FileBatch:
    """Files written to the output directory as one unit.

    :meth:`write` compares the new content with the file in place and, only
    if it differs, writes it to a temporary file beside it. :meth:`commit`
    makes all temporary files durable (a fsync each for a few files, one
    ``syncfs`` for many: a fsync costs milliseconds, so a full rewrite of
    many thousand pages would otherwise spend its time waiting on the disk)
    and then renames each over its target. A reader therefore sees either
    the old or the new complete file. Used as a context manager, the batch
    commits on success and removes its temporary files on error.

    :param WebOutput output: the output directory
    """
    _counter = itertools.count()

    def __init__(self, output):
        self.output = output
        self._staged = []
        self._directories = set()
        #: directories made for the staged files (removed if they are
        #: discarded)
        self._made = []
        self.written = 0
        self.unchanged = 0
        # a fchmod is one more journalled change per file: only when the
        # umask would take permissions from the pages
        umask = _umask()
        self._chmod = umask is None or bool(umask & 0o644)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def __len__(self):
        return len(self._staged)

    def write(self, path, data, current=UNREAD):
        """Stage *data* (bytes) to replace the file at *path* (which must be
        below the output directory; its directory is created). Returns
        :data:`False` when the file already holds exactly *data*.

        :param current: the content of the file in place if the caller has
            read it already with :func:`read_file` (:data:`None`: there is
            none); by default it is read here
        """
        if (not path.startswith(self.output.root + os.sep)
                or os.path.normpath(path) != path):
            raise OutputError('{} is outside the output directory'.format(path))
        directory, name = os.path.split(path)
        # first, so that a link in the directory's place is replaced rather
        # than followed
        if directory not in self._directories:
            self._made.extend(self.output.make_dir(directory))
            self._directories.add(directory)
        if current is UNREAD:
            unchanged = _same_content(path, data)
        else:
            unchanged = current == data
        if unchanged:
            self.unchanged += 1
            return False
        tmp = os.path.join(directory, '.{}.{}.{}{}'.format(
            name, os.getpid(), next(self._counter), _TMP_SUFFIX))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            if self._chmod:
                os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        self._staged.append((tmp, path))
        return True

    def commit(self):
        """Make the staged files durable, then move each into place."""
        staged, self._staged = self._staged, []
        self._made = []
        try:
            flush_to_disk([tmp for tmp, _ in staged], self.output.root)
        except BaseException:
            _unlink_all(tmp for tmp, _ in staged)
            raise
        if len(staged) > SYNC_EACH_LIMIT:
            results = list(_movers().map(_move, (staged[n::MOVERS] for n in range(MOVERS))))
        else:
            results = [_move(staged)]
        self.written += sum(moved for moved, _ in results)
        for _, error in results:
            if error is not None:
                raise error

    def discard(self):
        """Remove the staged temporary files, and the directories made for
        them that nothing else has filled since; nothing in place changes."""
        staged, self._staged = self._staged, []
        made, self._made = self._made, []
        _unlink_all(tmp for tmp, _ in staged)
        for directory in reversed(made):
            try:
                os.rmdir(directory)
            except OSError:
                pass

    def detach(self):
        """Forget the staged files and the directories made for them, and
        return both (as (temporary file, target) pairs, and paths) for
        another batch, perhaps in another process, to :meth:`attach`: a
        worker stages, its parent commits."""
        staged, self._staged = self._staged, []
        made, self._made = self._made, []
        return staged, made

    def attach(self, staged, made=()):
        """Take over the *staged* files and the directories *made* for them
        by another batch (see :meth:`detach`), to commit or discard them
        with this batch's own."""
        prefix = self.output.root + os.sep
        for path in itertools.chain(itertools.chain.from_iterable(staged), made):
            if not path.startswith(prefix):
                raise OutputError('{} is outside the output directory'.format(path))
        self._staged.extend(staged)
        self._made.extend(made)


def _umask():
    """Return the process's umask, read without changing it, or :data:`None`
    where the kernel doesn't show it (before Linux 4.7)."""
    try:
        with open('/proc/self/status', 'rb') as status:
            for line in status:
                if line.startswith(b'Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return None


def read_file(path):
    """Return the content of the plain file at *path* (not following a link
    in its place), or :data:`None` if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


_MOVERS = []
_MOVERS_LOCK = threading.Lock()


def _movers():
    """The threads of :data:`MOVERS` (started when first needed)."""
    with _MOVERS_LOCK:
        if not _MOVERS:
            _MOVERS.append(ThreadPoolExecutor(
                max_workers=MOVERS, thread_name_prefix='output-mover'))
        return _MOVERS[0]


def _move(staged):
    """Rename each temporary file of *staged* over its target, in order;
    after an error, remove the temporary files not moved. Return how many
    were moved and the error (or :data:`None`)."""
    for moved, (tmp, path) in enumerate(staged):
        try:
            os.rename(tmp, path)
        except OSError as exc:
            _unlink_all(tmp for tmp, _ in staged[moved:])
            return moved, exc
    return len(staged), None


def _same_content(path, data):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENOTDIR):
            raise OutputError('{} is not a plain file'.format(path)) from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError('{} is not a plain file'.format(path))
        # a plain file of the size asked for is read whole at once
        return st.st_size == len(data) and os.read(fd, st.st_size + 1) == data
    finally:
        os.close(fd)


def _unlink_all(paths):
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
