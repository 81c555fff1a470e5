"""Where piw-logger's lines come from: a pipe (Apache's piped log), log files (plain or gzip), or a log file followed as it grows and is rotated.

Each source has ``read(timeout)`` returning the next chunk of bytes, ``b''``
when nothing arrived within *timeout* seconds, or ``None`` at its end; it
never waits longer, so the caller can send what it has in the meantime.
:class:`LineSplitter` cuts the chunks into lines.
"""

import gzip
import logging
import os
import select
import time

from ..exc import ConfigError

#: bytes read at a time
CHUNK_SIZE = 256 * 1024

#: the longest line accepted (bytes); Apache limits the request line and
#: each header to 8 KiB, which its escaping can make four times longer
MAX_LINE = 128 * 1024

#: seconds between looks at a followed file that has no new data
FOLLOW_INTERVAL = 0.5

#: seconds a rotated file is still read after it last grew: Apache writes
#: to it until its graceful restart reopens the logs
ROTATION_GRACE = 60.0

_GZIP_MAGIC = b'\x1f\x8b'

log = logging.getLogger('piwheels.logger')


class LineSplitter:
    """Cut chunks of bytes into lines (without their line endings).

    A line longer than :data:`MAX_LINE` is skipped as it arrives, without
    keeping it in memory; :attr:`too_long` counts those.
    """

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self.too_long = 0
        self._rest = b''
        self._skipping = False

    def feed(self, chunk):
        """Return the complete lines that *chunk* ends (a list of bytes;
        lines longer than the limit are left out and counted)."""
        if self._skipping:
            # the rest of a line too long to keep
            end = chunk.find(b'\n')
            if end == -1:
                return []
            chunk = chunk[end + 1:]
            self._skipping = False
        lines = (self._rest + chunk).split(b'\n')
        self._rest = lines.pop()
        if len(self._rest) > self.max_line:
            self._rest = b''
            self._skipping = True
            self.too_long += 1
        return lines

    def finish(self):
        """Return the last line if the input did not end with a line
        ending (often one cut short), else ``None``."""
        rest, self._rest = self._rest, b''
        skipping, self._skipping = self._skipping, False
        return rest if rest and not skipping else None


class PipeSource:
    """Read a pipe (or any file descriptor, such as stdin) without ever
    blocking longer than asked.

    :param int fd: the file descriptor to read.
    :param str name: how to call it in messages.
    """

    def __init__(self, fd, name='stdin'):
        self.fd = fd
        self.name = name

    def read(self, timeout):
        """Return the bytes available within *timeout* seconds (``b''`` if
        none), or ``None`` at the end of the input."""
        try:
            ready, _, _ = select.select([self.fd], [], [], timeout)
        except InterruptedError:
            return b''
        if not ready:
            return b''
        try:
            data = os.read(self.fd, CHUNK_SIZE)
        except BlockingIOError:
            return b''
        return data or None

    def close(self):
        """Nothing to release: the descriptor belongs to the caller."""


def open_log(path):
    """Open the log file *path* for reading bytes, decompressing it if it is
    gzip (by its content, whatever its name).

    :raises ConfigError: if it cannot be opened.
    """
    try:
        f = open(path, 'rb')
        magic = f.peek(2)[:2]
    except OSError as exc:
        raise ConfigError('unable to read {}: {}'.format(
            path, exc.strerror)) from None
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f, mode='rb')
    return f


class FileSource:
    """Read a whole log file, plain or gzip.

    :param str path: the file.
    """

    def __init__(self, path):
        self.name = path
        self._file = open_log(path)

    def read(self, timeout):
        """Return the next chunk, or ``None`` at the end of the file; a
        damaged gzip file ends where its damage starts (with a warning)."""
        try:
            data = self._file.read(CHUNK_SIZE)
        except (OSError, EOFError) as exc:
            log.warning('%s: unreadable from here on: %s', self.name, exc)
            return None
        return data or None

    def close(self):
        """Close the file."""
        self._file.close()


class FollowSource:
    """Follow a log file as the web server appends to it, like ``tail -F``:
    starting at its end, waiting for more, and carrying on with the new file
    when it is rotated (renamed and replaced, or truncated in place).

    :param str path: the log file; it need not exist yet.
    :param float interval: seconds between looks when there is nothing new.
    """

    def __init__(self, path, interval=FOLLOW_INTERVAL):
        self.name = path
        self.interval = interval
        #: rotated files still being read: [file, time it last grew]
        self.rotated = []
        self._file = None
        self._open(at_end=True)

    def _open(self, at_end=False):
        try:
            self._file = open(self.name, 'rb')
        except FileNotFoundError:
            self._file = None
            return
        except OSError as exc:
            raise ConfigError('unable to read {}: {}'.format(
                self.name, exc.strerror)) from None
        if at_end:
            self._file.seek(0, os.SEEK_END)

    def read(self, timeout):
        """Return what was appended since the last call (``b''`` if nothing
        within *timeout* seconds); never ``None``: a followed file has no
        end."""
        deadline = time.monotonic() + timeout
        while True:
            data = self._read_rotated() or self._read_current()
            if data:
                return data
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b''
            time.sleep(min(self.interval, remaining))

    def _read_rotated(self):
        now = time.monotonic()
        for entry in list(self.rotated):
            f, last_grew = entry
            data = f.read(CHUNK_SIZE)
            if data:
                entry[1] = now
                return data
            if now - last_grew > ROTATION_GRACE:
                f.close()
                self.rotated.remove(entry)
        return b''

    def _read_current(self):
        if self._file is None:
            self._open()
            if self._file is None:
                return b''
        data = self._file.read(CHUNK_SIZE)
        if data:
            return data
        try:
            current = os.stat(self.name)
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise ConfigError('unable to read {}: {}'.format(
                self.name, exc.strerror)) from None
        mine = os.fstat(self._file.fileno())
        if current is None or (current.st_dev, current.st_ino) != (
                mine.st_dev, mine.st_ino):
            # renamed (and perhaps replaced): keep reading the old file a
            # while, and read the new one from its start
            self.rotated.append([self._file, time.monotonic()])
            self._file = None
            self._open()
            return self._file.read(CHUNK_SIZE) if self._file else b''
        if current.st_size < self._file.tell():
            # truncated in place (copytruncate): start again
            self._file.seek(0)
            return self._file.read(CHUNK_SIZE)
        return b''

    def close(self):
        """Close the file and any rotated ones."""
        for f, _ in self.rotated:
            f.close()
        self.rotated = []
        if self._file is not None:
            self._file.close()
            self._file = None
