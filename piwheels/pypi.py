"""Reads PyPI: its changelog of events over XML-RPC, and projects over the JSON API.

:class:`PyPIEvents` asks PyPI's XML-RPC service for the changelog entries
after a serial number (``changelog_since_serial``) and turns each entry
that matters to piwheels into an :class:`Event` (a project created, a
release, a file added or removed, a release yanked, ...). :func:`get_project`
fetches one project from the JSON API (``/pypi/NAME/json``, GET only) and
returns a :class:`Project` saying, for each release, when it was released,
whether it has a source distribution or a pure-Python wheel, and whether it
is yanked. :func:`get_release_files` does the same for one release.

Every failure (the network, an HTTP error, an XML-RPC fault, an answer that
is not what PyPI sends) is raised as :exc:`~piwheels.exc.PyPIError` with a
one-line reason; nothing here retries (the caller backs off).
"""

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
import xml.parsers.expat
import xmlrpc.client
from datetime import datetime, timezone
from typing import NamedTuple, Optional

from . import __version__
from .exc import PyPIError
from .protocols import parse_wheel_filename

#: the skip reason of a version PyPI has no source distribution of (it is
#: built once one appears)
BINARY_ONLY = 'binary only'

#: the skip reason of a version PyPI has a pure-Python wheel of: pip would
#: take our copy of a file PyPI already serves, with another hash
PURE_WHEEL = 'pure Python wheel on PyPI'

#: seconds a request to PyPI may take
DEFAULT_TIMEOUT = 30

#: the largest JSON document accepted from PyPI (bytes)
MAX_JSON_SIZE = 64 * 1024 * 1024

USER_AGENT = 'piwheels/{}'.format(__version__)


def is_pure_wheel(filename):
    """Return True if *filename* is a wheel that any Python 3 installs
    (``py3-none-any``, ``py2.py3-none-any``, ``py310-none-any``...)."""
    try:
        tags = parse_wheel_filename(filename)
    except ValueError:
        return False
    return (tags.abi_tag == 'none' and tags.platform_tag == 'any' and any(
        tag.startswith('py3') for tag in tags.py_version_tag.split('.')))


def version_skip(has_source, has_pure_wheel):
    """Return the skip reason a version gets from its files on PyPI:
    :data:`PURE_WHEEL`, :data:`BINARY_ONLY`, or ``''`` (build it)."""
    if has_pure_wheel:
        return PURE_WHEEL
    if not has_source:
        return BINARY_ONLY
    return ''


class Event(NamedTuple):
    """One changelog entry of PyPI that piwheels acts on.

    *action* is one of ``'create'`` (a new project), ``'release'`` (a new
    version), ``'source'`` (a source distribution added: *detail* is its
    filename), ``'wheel'`` (a wheel added: *detail*), ``'file'`` (another
    kind of file added), ``'remove-file'`` (*detail* removed),
    ``'remove-release'``, ``'remove-project'``, ``'yank'``, ``'unyank'``
    and ``'rename'`` (the project was renamed from *detail*).
    """

    package: str               # the project's name as PyPI spells it
    version: Optional[str]     # the version concerned, or None
    timestamp: datetime        # when it happened (UTC)
    action: str                # what happened (see above)
    detail: str                # a filename, an old name, or ''
    serial: int                # the changelog's serial number of the event


def parse_action(action, version):
    """Return ``(action, detail)`` for a changelog *action* text, or None
    for an action piwheels ignores (owners, roles, documentation...)."""
    words = action.split(' ', 3)
    if action == 'create':
        return 'create', ''
    if action == 'new release' and version:
        return 'release', ''
    if action in ('remove project', 'remove') and not version:
        return 'remove-project', ''
    if action in ('remove release', 'remove') and version:
        return 'remove-release', ''
    if action == 'yank release' and version:
        return 'yank', ''
    if action == 'unyank release' and version:
        return 'unyank', ''
    if words[:2] == ['rename', 'from'] and len(words) == 3:
        return 'rename', words[2]
    if words[:2] == ['remove', 'file'] and len(words) == 3 and version:
        return 'remove-file', words[2]
    if (words[0] == 'add' and len(words) == 4 and words[2] == 'file'
            and version):
        filename = words[3]
        if words[1] == 'source':
            return 'source', filename
        if filename.endswith('.whl'):
            return 'wheel', filename
        return 'file', filename
    return None


def _timestamp(value):
    return datetime.fromtimestamp(value, timezone.utc)


def parse_changelog(entries):
    """Turn *entries* (the answer of ``changelog_since_serial``: a list of
    ``[name, version, timestamp, action, serial]``) into ``(events,
    last_serial)``: the :class:`Event` list ordered by serial, leaving out
    the actions piwheels ignores, and the highest serial of all the entries
    (None when there are none).

    :raises PyPIError: if the answer is not shaped like PyPI's (nothing of
        it is used then).
    """
    if not isinstance(entries, (list, tuple)):
        raise PyPIError('PyPI answered the changelog with a {} instead of '
                        'a list'.format(type(entries).__name__))
    events = []
    last_serial = None
    for index, entry in enumerate(entries):
        if not (isinstance(entry, (list, tuple)) and len(entry) >= 5):
            raise PyPIError('changelog entry {} is not [name, version, '
                            'timestamp, action, serial]'.format(index))
        name, version, timestamp, action, serial = entry[:5]
        if not (isinstance(name, str) and name
                and (version is None or isinstance(version, str))
                and isinstance(timestamp, (int, float))
                and not isinstance(timestamp, bool)
                and isinstance(action, str)
                and isinstance(serial, int) and not isinstance(serial, bool)
                and serial >= 0):
            raise PyPIError('changelog entry {} has fields of the wrong '
                            'types: {!r}'.format(index, entry[:5])[:300])
        try:
            when = _timestamp(timestamp)
        except (OverflowError, OSError, ValueError):
            raise PyPIError('changelog entry {} has an impossible timestamp '
                            '{!r}'.format(index, timestamp)) from None
        last_serial = serial if last_serial is None else max(
            last_serial, serial)
        parsed = parse_action(action, version or None)
        if parsed is not None:
            events.append(Event(name, version or None, when, parsed[0],
                                parsed[1], serial))
    events.sort(key=lambda event: event.serial)
    return events, last_serial


class _TimeoutMixin:
    """Gives an XML-RPC transport a timeout and our user agent."""

    user_agent = USER_AGENT

    def __init__(self, timeout):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


class _TimeoutTransport(_TimeoutMixin, xmlrpc.client.Transport):
    """The XML-RPC transport over HTTP."""


class _SafeTimeoutTransport(_TimeoutMixin, xmlrpc.client.SafeTransport):
    """The XML-RPC transport over HTTPS."""


class PyPIEvents:
    """The changelog of PyPI's XML-RPC service at *url*.

    :param str url: the XML-RPC endpoint (e.g. ``https://pypi.org/pypi``).
    :param float timeout: seconds a request may take.
    """

    def __init__(self, url, timeout=DEFAULT_TIMEOUT):
        self.url = url
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ('http', 'https'):
            raise ValueError('the PyPI XML-RPC URL must be http or https: '
                             '{!r}'.format(url))
        transport = (_SafeTimeoutTransport if scheme == 'https'
                     else _TimeoutTransport)(timeout)
        self._proxy = xmlrpc.client.ServerProxy(url, transport=transport)

    def since(self, serial):
        """Return ``(events, last_serial)``: the :class:`Event` list after
        *serial* (PyPI sends a batch at a time) and the last serial of the
        batch (*serial* itself when there's nothing new).

        :raises PyPIError: when PyPI can't be asked or answers oddly.
        """
        try:
            entries = self._proxy.changelog_since_serial(serial)
        except xmlrpc.client.Fault as exc:
            raise PyPIError('PyPI refused the changelog request: {}'.format(
                exc.faultString)[:500]) from None
        except xmlrpc.client.ProtocolError as exc:
            raise PyPIError('PyPI answered HTTP {} {}'.format(
                exc.errcode, exc.errmsg)) from None
        except (xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError,
                http.client.HTTPException, ValueError, TypeError) as exc:
            raise PyPIError('PyPI answered something that is not XML-RPC '
                            '({})'.format(exc)[:500]) from None
        except (socket.timeout, TimeoutError):
            raise PyPIError('PyPI did not answer at {}'.format(
                self.url)) from None
        except OSError as exc:
            raise PyPIError('unable to reach PyPI at {}: {}'.format(
                self.url, exc.strerror or exc)) from None
        events, last_serial = parse_changelog(entries)
        return events, serial if last_serial is None else last_serial


class Release(NamedTuple):
    """What piwheels needs of one release on PyPI."""

    released: Optional[datetime]  # its first upload (UTC), None: no files
    has_source: bool           # a source distribution is among its files
    has_pure_wheel: bool       # a pure-Python wheel is among its files
    yanked: bool               # it is yanked (PEP 592)

    @property
    def skip(self):
        """The skip reason its files give it (see :func:`version_skip`)."""
        return version_skip(self.has_source, self.has_pure_wheel)


class Project(NamedTuple):
    """A project as the JSON API describes it."""

    name: str                  # its name as PyPI spells it
    summary: str               # its one-line description
    releases: dict             # version -> :class:`Release`
    etag: Optional[str]        # the ETag of the answer, for the next GET


#: :func:`get_project` returns this when the project is unchanged since the
#: ETag it was given
NOT_MODIFIED = object()


def _get_json(url, timeout, etag=None):
    """GET *url*; return ``(document, etag)``, or None for 404, or
    :data:`NOT_MODIFIED` for 304."""
    headers = {'User-Agent': USER_AGENT, 'Accept': 'application/json'}
    if etag:
        headers['If-None-Match'] = etag
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_JSON_SIZE + 1)
            new_etag = response.headers.get('ETag')
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            return None
        if exc.code == 304:
            return NOT_MODIFIED
        raise PyPIError('{} answered HTTP {} {}'.format(
            url, exc.code, exc.reason)) from None
    except (socket.timeout, TimeoutError):
        raise PyPIError('no answer from {}'.format(url)) from None
    except urllib.error.URLError as exc:
        raise PyPIError('unable to reach {}: {}'.format(
            url, exc.reason)) from None
    except (http.client.HTTPException, OSError) as exc:
        raise PyPIError('unable to read {}: {}'.format(url, exc)) from None
    if len(body) > MAX_JSON_SIZE:
        raise PyPIError('{} sent more than {} bytes'.format(
            url, MAX_JSON_SIZE))
    try:
        document = json.loads(body.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        raise PyPIError('{} answered something that is not JSON'.format(
            url)) from None
    if not isinstance(document, dict):
        raise PyPIError('{} answered JSON that is not an object'.format(url))
    return document, new_etag


def _upload_time(file, url):
    text = file.get('upload_time_iso_8601') or file.get('upload_time')
    if not isinstance(text, str):
        raise PyPIError('{}: a file without an upload time'.format(url))
    try:
        when = datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        raise PyPIError('{}: bad upload time {!r}'.format(
            url, text[:50])) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def parse_release(files, url):
    """Return the :class:`Release` made of *files* (the JSON API's list of
    a release's file objects).

    :raises PyPIError: if *files* is not shaped as the JSON API's.
    """
    if not isinstance(files, list):
        raise PyPIError('{}: the files of a release are not a list'.format(
            url))
    released = None
    has_source = has_pure_wheel = False
    yanked = bool(files)
    for file in files:
        if not (isinstance(file, dict) and isinstance(
                file.get('filename'), str)):
            raise PyPIError('{}: a file without a filename'.format(url))
        when = _upload_time(file, url)
        released = when if released is None else min(released, when)
        if file.get('packagetype') == 'sdist':
            has_source = True
        elif is_pure_wheel(file['filename']):
            has_pure_wheel = True
        yanked = yanked and bool(file.get('yanked', False))
    return Release(released, has_source, has_pure_wheel, yanked)


def _json_url(base, *parts):
    return '{}/{}/json'.format(base.rstrip('/'), '/'.join(
        urllib.parse.quote(part, safe='') for part in parts))


def get_project(base_url, name, *, etag=None, timeout=DEFAULT_TIMEOUT):
    """Fetch project *name* from the JSON API under *base_url* (e.g.
    ``https://pypi.org/pypi``).

    :returns: a :class:`Project`; None when PyPI has no such project;
        :data:`NOT_MODIFIED` when *etag* still matches.
    :raises PyPIError: when PyPI can't be asked or answers oddly.
    """
    url = _json_url(base_url, name)
    result = _get_json(url, timeout, etag)
    if result is None or result is NOT_MODIFIED:
        return result
    document, new_etag = result
    info = document.get('info')
    releases = document.get('releases')
    if not (isinstance(info, dict) and isinstance(info.get('name'), str)
            and isinstance(releases, dict)):
        raise PyPIError('{}: no project info and releases'.format(url))
    summary = info.get('summary') or ''
    if not isinstance(summary, str):
        raise PyPIError('{}: the summary is not text'.format(url))
    return Project(
        info['name'], ' '.join(summary.split()),
        {str(version): parse_release(files, url)
         for version, files in releases.items()}, new_etag)


def get_release_files(base_url, name, version, *, timeout=DEFAULT_TIMEOUT):
    """Fetch release *version* of project *name* from the JSON API.

    :returns: its :class:`Release`, or None when PyPI has no such release.
    :raises PyPIError: when PyPI can't be asked or answers oddly.
    """
    url = _json_url(base_url, name, version)
    result = _get_json(url, timeout)
    if result is None:
        return None
    document, etag = result
    return parse_release(document.get('urls'), url)


def get_summary(base_url, name, *, timeout=DEFAULT_TIMEOUT):
    """Return the one-line description of project *name*, or None when PyPI
    has no such project.

    :raises PyPIError: when PyPI can't be asked or answers oddly.
    """
    project = get_project(base_url, name, timeout=timeout)
    return None if project is None else project.summary
