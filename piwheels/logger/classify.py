"""Decide what each web hit was (a wheel download, a pip search, a project page, a project's JSON, another page) and build its log record.

The web output's layout (see :mod:`piwheels.master.output`) says what a
path is::

    /simple/<pkg>/<wheel>.whl            a download (LOGDOWNLOAD)
    /simple/<pkg>/ (index.html, .json)   pip looking a package up (LOGSEARCH)
    /project/<pkg>/ (index.html)         a project page view (LOGPROJECT)
    /project/<pkg>/json/ (index.json)    a project JSON fetch (LOGJSON)
    /<anything>/ or /<anything>.html     another page view (LOGPAGE)

Anything else (static files, build logs, errors, HEAD requests, paths with
``..``, a wheel's name under a directory that is not its package's) is
ignored. Only successful GETs count: 200 for downloads (a 206 is a piece of
one), 200 or 304 (pip's cache revalidating) for the rest.

pip (and installers copying it, such as uv) append JSON to their user
agent; :func:`parse_user_agent` reads the installer, Python, OS,
distribution and CPU from it.
"""

import json
import re

from ..protocols import (
    MAX_AGENT_FIELD, MAX_HOST, MAX_PAGE, MAX_USER_AGENT, DownloadState,
    JSONState, PageState, ProjectState, SearchState, parse_wheel_filename,
)

#: a project name as PyPI accepts it (PEP 508)
VALID_NAME = re.compile(r'[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?')

#: characters a page's path may hold to be recorded
VALID_PAGE = re.compile(r'[A-Za-z0-9._~!$&\'()*+,;=:@/-]*')

_SEPARATORS = re.compile(r'[-_.]+')

#: how many user agents and paths :class:`Classifier` remembers
CACHE_SIZE = 50000

#: the user agent fields of a download or search when pip's JSON is absent
NO_AGENT_FIELDS = (None,) * 10


def canonicalize(name):
    """Return the PEP 503 normalised form of the project *name*."""
    return _SEPARATORS.sub('-', name).lower()


def _field(value):
    """Return *value* fit for a user agent field: a non-empty str without
    NULs, cut to the database's width; else None."""
    if type(value) is not str or not value or '\x00' in value:
        return None
    return value[:MAX_AGENT_FIELD]


def _member(mapping, *keys):
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def parse_user_agent(user_agent):
    """Return the fields pip's JSON user agent gives, in the order of
    :class:`~piwheels.protocols.DownloadState`: ``arch``, ``distro_name``,
    ``distro_version``, ``os_name``, ``os_version``, ``py_name``,
    ``py_version``, ``installer_name``, ``installer_version``,
    ``setuptools_version``. A field the agent lacks (or holds something
    other than text in) is None; a user agent without the JSON gives
    :data:`NO_AGENT_FIELDS`.

    :param str user_agent: e.g. ``pip/23.0.1 {"installer": {...}, ...}``
    """
    start = user_agent.find(' {')
    if start == -1 or not user_agent.endswith('}'):
        return NO_AGENT_FIELDS
    try:
        data = json.loads(user_agent[start + 1:])
    except (ValueError, RecursionError):
        return NO_AGENT_FIELDS
    if not isinstance(data, dict):
        return NO_AGENT_FIELDS
    installer_name = _field(_member(data, 'installer', 'name'))
    if installer_name is None:
        # fall back on the agent's own name: "pip/23.0.1 {...}"
        installer_name = _field(user_agent[:start].partition('/')[0])
    return (
        _field(data.get('cpu')),
        _field(_member(data, 'distro', 'name')),
        _field(_member(data, 'distro', 'version')),
        _field(_member(data, 'system', 'name')),
        _field(_member(data, 'system', 'release')),
        _field(_member(data, 'implementation', 'name')),
        _field(_member(data, 'implementation', 'version')) or _field(
            data.get('python')),
        installer_name,
        _field(_member(data, 'installer', 'version')),
        _field(data.get('setuptools_version')),
    )


class Classifier:
    """Turn :class:`~piwheels.logger.formats.LogEntry` tuples into log
    records, remembering what recent paths were and the fields of recent
    user agents (the same few make most of the hits)."""

    def __init__(self):
        self._agents = {}
        self._paths = {}

    def agent_fields(self, user_agent):
        """Return :func:`parse_user_agent` of *user_agent*, cached."""
        try:
            return self._agents[user_agent]
        except KeyError:
            pass
        fields = parse_user_agent(user_agent)
        if len(self._agents) >= CACHE_SIZE:
            self._agents.clear()
        self._agents[user_agent] = fields
        return fields

    def target(self, path):
        """Return :func:`classify_path` of *path*, cached."""
        try:
            return self._paths[path]
        except KeyError:
            pass
        target = classify_path(path)
        if len(self._paths) >= CACHE_SIZE:
            self._paths.clear()
        self._paths[path] = target
        return target

    def classify(self, entry):
        """Return ``(action, record)`` for *entry*: the LOG* action of the
        :data:`~piwheels.protocols.lumberjack` protocol and its record; or
        ``None`` when the hit is not recorded."""
        if entry.method != 'GET' or entry.status not in (200, 304):
            return None
        target = self.target(entry.path)
        if target is None:
            return None
        action, name = target
        host = entry.host[:MAX_HOST]
        if action == 'LOGDOWNLOAD':
            if entry.status != 200:
                return None
            return action, DownloadState._make(
                (name, host, entry.timestamp) +
                self.agent_fields(entry.user_agent))
        if action == 'LOGSEARCH':
            return action, SearchState._make(
                (name, host, entry.timestamp) +
                self.agent_fields(entry.user_agent))
        return action, PAGE_STATES[action](
            name, host, entry.timestamp, entry.user_agent[:MAX_USER_AGENT])


def classify_path(path):
    """Return what a request for *path* is: ``(action, name)`` with the
    LOG* action it is recorded with and the wheel's filename
    (LOGDOWNLOAD), the package's canonical name (LOGSEARCH, LOGPROJECT,
    LOGJSON) or the page (LOGPAGE); ``None`` if it isn't recorded.

    :param str path: the URL's path, percent-decoded, without the query.
    """
    if (path[:1] != '/' or '\\' in path or '\x00' in path
            or '/.' in path or '//' in path):
        # not a path Apache serves from the output as it is; hidden files
        # and anything with . or .. parts are never counted
        return None
    parts = path[1:].split('/')
    top = parts[0]
    if top in ('simple', 'project'):
        if len(parts) < 3:
            # the index's own pages (simple/index.html), or a package's
            # directory without its slash (redirected, not served)
            return None
        package, rest = parts[1], parts[2:]
        if not VALID_NAME.fullmatch(package) or len(package) > 200:
            return None
        if top == 'simple':
            return _simple_target(package, rest)
        if rest in ([''], ['index.html']):
            return 'LOGPROJECT', canonicalize(package)
        if rest in (['json', ''], ['json', 'index.json']):
            return 'LOGJSON', canonicalize(package)
        return None
    if path.endswith('/') or path.endswith('.html'):
        page = path[1:]
        if not page or page.endswith('/'):
            page += 'index.html'
        if len(page) <= MAX_PAGE and VALID_PAGE.fullmatch(page):
            return 'LOGPAGE', page
    return None


def _simple_target(package, rest):
    if rest in ([''], ['index.html'], ['index.json']):
        return 'LOGSEARCH', canonicalize(package)
    if len(rest) != 1 or not rest[0].endswith('.whl'):
        return None
    filename = rest[0]
    try:
        tags = parse_wheel_filename(filename)
    except ValueError:
        return None
    if canonicalize(tags.package_tag) != canonicalize(package):
        # a wheel's name in a directory that isn't its package's
        return None
    return 'LOGDOWNLOAD', filename


#: the records of the hits that keep the whole user agent
PAGE_STATES = {
    'LOGPROJECT': ProjectState,
    'LOGJSON': JSONState,
    'LOGPAGE': PageState,
}
