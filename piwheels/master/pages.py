"""Renders the pages of the web output (HTML and the JSON forms) from the
data the database returns.

The site-wide pages come from the Chameleon templates in ``templates/``.
The pages every package has (its simple index and its project page) are
written by a full rewrite for every package, so they are built here as
plain strings, inside the page frame rendered once from ``layout.pt``:
that is several times faster than a template, which looks up every name
of every row through its scopes.

Nothing here touches the output directory: :class:`PageRenderer` turns data
into bytes and :class:`TheScribe <piwheels.master.the_scribe.TheScribe>`
decides where they go. The page of a package depends only on its data, never
on the time it is written, so rewriting an unchanged package produces the
same bytes (and the scribe can skip the write).
"""

import json
import os
import re
from datetime import timezone

from chameleon import PageTemplate, PageTemplateLoader

from .output import canonicalize, log_parts

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'templates')

#: the simple repository API version we implement (PEP 629, PEP 700)
API_VERSION = '1.1'

#: wheel filename: name-version(-build)?-python-abi-platform.whl
_WHEEL_TAGS = re.compile(
    r'^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?'
    r'-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$')

_PRERELEASE = re.compile(r'(?:a|b|c|rc|alpha|beta|pre|preview|dev)\.?\d*(?:$|[.+-])')

#: how each build status of the database is shown on the project page:
#: (CSS class, label)
_STATUS_SHOWN = {
    'success': ('success', '✓ built'),
    'failed': ('fail', '✗ failed'),
    'pending': ('pending', '… pending'),
    'skipped': ('skip', 'skipped'),
    'not applicable': ('skip', 'n/a'),
}


def iso8601(timestamp):
    """Format *timestamp* as RFC 3339 UTC (``2020-01-02T03:04:05Z``; naive
    timestamps are taken to be UTC), or return :data:`None` for
    :data:`None`."""
    if timestamp is None:
        return None
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(timezone.utc)
    # the first 19 characters leave out the offset of an aware timestamp
    return timestamp.isoformat(timespec='seconds')[:19] + 'Z'


def human_size(size):
    """Format a byte count for people (``1.5 MB``)."""
    if size < 1024:
        return '{} B'.format(size)
    for unit in ('KB', 'MB'):
        size /= 1024
        if size < 1024:
            return '{:.1f} {}'.format(size, unit)
    return '{:.1f} GB'.format(size / 1024)


def log_url(build_id):
    """The site path of the log of build *build_id*."""
    return '/logs/' + '/'.join(log_parts(build_id))


class BuildView:
    """The state of one release for one ABI, and the build that decided it,
    as a cell of the project page's versions table."""
    __slots__ = ('abi', 'build_id', 'status', 'skip', 'css', 'label', 'title',
                 'log_url')

    def __init__(self, abi, build):
        self.abi = abi
        self.build_id = build['build_id']
        self.status = build['status']
        self.skip = build['skip']
        css, self.label = _STATUS_SHOWN.get(self.status, ('pending', self.status))
        self.css = 'status ' + css
        if self.skip:
            self.title = self.skip
        elif self.status == 'not applicable':
            self.title = 'Requires-Python excludes ' + abi
        else:
            self.title = self.status + ' for ' + abi
        self.log_url = None if self.build_id is None else log_url(self.build_id)


class _NoBuild:
    """The cell of an ABI a release has no state for."""
    __slots__ = ()
    css = 'muted'
    label = '–'
    title = None
    log_url = None


NO_BUILD = _NoBuild()


class FileView:
    """One wheel of a release, as the index and project pages show it."""
    __slots__ = ('filename', 'url', 'href', 'site_url', 'version', 'sha256',
                 'size', 'size_text', 'requires_python', 'abi', 'platform',
                 'builder_abi', 'apt_dependencies', 'apt_command',
                 'metadata_sha256', 'metadata_attr', 'upload_time', 'yanked',
                 'yanked_attr')

    def __init__(self, project, filename, version, info, yanked, metadata_sha256):
        self.filename = filename
        self.url = filename
        self.sha256 = info['hash']
        self.href = filename + '#sha256=' + self.sha256
        self.site_url = '/simple/' + project + '/' + filename
        self.version = version
        self.size = info['size']
        self.size_text = human_size(self.size)
        self.requires_python = info['requires_python'] or None
        self.abi = info['abi_file']
        self.platform = info['platform']
        self.builder_abi = info['abi_tag']
        self.apt_dependencies = sorted(info['apt_dependencies'])
        self.apt_command = (
            'sudo apt install ' + ' '.join(self.apt_dependencies)
            if self.apt_dependencies else None)
        self.metadata_sha256 = metadata_sha256
        self.metadata_attr = 'sha256=' + metadata_sha256 if metadata_sha256 else None
        #: RFC 3339, as both JSON forms show it
        self.upload_time = iso8601(info['uploaded'])
        self.yanked = yanked
        # PEP 592: data-yanked holds the reason, and may be empty
        self.yanked_attr = None if yanked is False else ('' if yanked is True else yanked)


class ReleaseView:
    """One version of a project with its builds (one per ABI column) and
    its files."""
    __slots__ = ('version', 'released', 'released_iso', 'released_text', 'yanked',
                 'yanked_reason', 'skip', 'prerelease', 'builds', 'files')

    def __init__(self, project, version, release, abis, metadata):
        self.version = version
        self.released = release['released']
        self.released_iso = iso8601(self.released)
        self.released_text = self.released_iso[:10]
        # PEP 592: True, or the reason when PyPI gave one
        self.yanked = (release['yank_reason'] or True) if release['yanked'] else False
        self.yanked_reason = release['yank_reason'] or 'yanked on PyPI'
        self.skip = release['skip']
        self.prerelease = bool(_PRERELEASE.search(version.lower()))
        builds = release['abis']
        self.builds = [
            BuildView(abi, builds[abi]) if abi in builds else NO_BUILD
            for abi in abis
        ]
        self.files = [
            FileView(project, filename, version, info, self.yanked, metadata.get(filename))
            for filename, info in sorted(release['files'].items())
        ]


class ProjectView:
    """Everything the pages of one project show, built from the dictionary
    :meth:`Database.get_project_data() <piwheels.master.db.Database.get_project_data>`
    returns (its releases newest first).

    :param dict data: the project's data
    :param dict metadata: maps wheel file names to the SHA256 of their
        ``.metadata`` file (files without one get no PEP 658 attributes)
    :param set exclude: versions to leave out (being deleted)
    """

    def __init__(self, data, metadata=None, exclude=()):
        metadata = metadata or {}
        self.name = canonicalize(data['package'])
        self.display_name = data['name']
        self.description = data['description']
        self.skip = data['skip']
        self.aliases = data['aliases']
        self.downloads_recent = data['downloads_recent']
        self.downloads_all = data['downloads_all']
        releases = [
            (version, release) for version, release in data['releases'].items()
            if version not in exclude
        ]
        self.abis = sorted(
            {abi for _, release in releases for abi in release['abis']}, key=abi_key)
        self.releases = [
            ReleaseView(self.name, version, release, self.abis, metadata)
            for version, release in releases
        ]
        self.files = [file for release in self.releases for file in release.files]
        latest = [
            release for release in self.releases
            if not release.yanked and not release.prerelease
        ] or self.releases
        self.latest = latest[0] if latest else None


def abi_key(abi):
    """A sort key putting ABI tags in Python version order (cp39 before
    cp311)."""
    match = re.match(r'^[a-z]+(\d)(\d*)', abi)
    if match:
        return (int(match.group(1)), int(match.group(2) or 0), abi)
    return (0, 0, abi)


def _dump_json(obj):
    # the dictionaries are built in a fixed order, so the same data gives
    # the same bytes without sorting keys
    return json.dumps(obj, ensure_ascii=False, separators=(',', ':')).encode('utf-8')


def _text(value):
    """*value* escaped as HTML text (:data:`None` as nothing)."""
    if value is None:
        return ''
    return str(value).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def _attr(name, value):
    """The HTML attribute *name* with *value* (with a leading space), or
    nothing when *value* is :data:`None`."""
    if value is None:
        return ''
    return ' {}="{}"'.format(name, _text(value).replace('"', '&quot;'))


#: marks where the title and the content go in the page frame
_SLOT = 'piwheels-page-frame-slot'

#: a page of the site's layout holding only the slot markers
_FRAME = PageTemplate(
    '<!DOCTYPE html>\n'
    '<html metal:use-macro="layout.macros[\'page\']">'
    '<metal:content fill-slot="content">${slot}</metal:content></html>')


def _simple_package_html(project):
    """The HTML simple index (PEP 503, 592, 629, 658/714) of *project*."""
    parts = [
        '<!DOCTYPE html>\n<html>\n<head>\n'
        '<meta name="pypi:repository-version" content="', API_VERSION, '">\n'
        '<title>Links for ', _text(project.name), '</title>\n</head>\n<body>\n'
        '<h1>Links for ', _text(project.name), '</h1>\n',
    ]
    for file in project.files:
        parts += [
            '<a', _attr('href', file.href),
            _attr('data-requires-python', file.requires_python),
            # PEP 714: the old name too, for pip before 23.2
            _attr('data-dist-info-metadata', file.metadata_attr),
            _attr('data-core-metadata', file.metadata_attr),
            _attr('data-yanked', file.yanked_attr), '>',
            _text(file.filename), '</a><br>\n',
        ]
    parts.append('</body>\n</html>\n')
    return ''.join(parts)


def _project_facts(project):
    name = _text(project.name)
    latest = project.latest
    if latest is None:
        latest_html = '<dd class="muted">no release built yet</dd>'
    else:
        latest_html = '<dd>{}{}</dd>'.format(
            _text(latest.version),
            ' (released {})'.format(latest.released_text) if latest.released else '')
    return [
        '<h1>', _text(project.display_name), '</h1>\n',
        '<p class="lead">{}</p>\n'.format(_text(project.description))
        if project.description else '',
        '<p class="notice">This package is not built here: {}</p>\n'.format(
            _text(project.skip)) if project.skip else '',
        '<dl class="facts">\n'
        '<dt>Install</dt><dd><code>pip3 install ', name, '</code></dd>\n'
        '<dt>Latest</dt>', latest_html, '\n'
        '<dt>Downloads</dt><dd>{:,} in the last 30 days, {:,} in all</dd>\n'.format(
            project.downloads_recent, project.downloads_all),
        '<dt>Index</dt><dd><a href="/simple/', name, '/">/simple/', name, '/</a></dd>\n'
        '<dt>JSON</dt><dd><a href="/project/', name, '/json/">/project/', name,
        '/json/</a></dd>\n'
        '<dt>PyPI</dt><dd><a href="https://pypi.org/project/', name,
        '/" rel="external">pypi.org/project/', name, '</a></dd>\n</dl>\n',
    ]


def _project_versions(project):
    if not project.releases:
        return ['<h2>Versions</h2>\n<p class="muted">No versions are known.</p>\n']
    parts = [
        '<h2>Versions</h2>\n<div class="table-scroll">\n<table class="versions">\n'
        '<thead><tr><th>Version</th><th>Released</th>',
    ]
    parts += ['<th><code>{}</code></th>'.format(_text(abi)) for abi in project.abis]
    parts.append('</tr></thead>\n<tbody>\n')
    for release in project.releases:
        parts += [
            '<tr>\n<td><span class="mono">', _text(release.version), '</span>',
            '<span class="tag pre">pre-release</span>' if release.prerelease else '',
            '<span class="tag yanked"{}>yanked</span>'.format(
                _attr('title', release.yanked_reason)) if release.yanked else '',
            '<span class="tag skipped"{}>skipped</span>'.format(
                _attr('title', release.skip)) if release.skip else '',
            '</td>\n<td class="date">', release.released_text, '</td>\n',
        ]
        for build in release.builds:
            parts += [
                '<td><a', _attr('href', build.log_url), _attr('class', build.css),
                _attr('title', build.title), '>', _text(build.label), '</a></td>\n',
            ]
        parts.append('</tr>\n')
    parts.append('</tbody>\n</table>\n</div>\n')
    return parts


def _project_files(project):
    if not project.files:
        return ['<h2>Files</h2>\n<p class="muted">No files have been built.</p>\n']
    parts = [
        '<h2>Files</h2>\n<div class="table-scroll">\n<table class="files">\n'
        '<thead><tr><th>File</th><th>ABI</th><th>Platform</th><th>Size</th>'
        '<th>Requires Python</th><th>System packages</th></tr></thead>\n<tbody>\n',
    ]
    for file in project.files:
        parts += [
            '<tr>\n<td class="file"><a', _attr('href', file.site_url), '>',
            _text(file.filename), '</a>',
            '<span class="tag yanked">yanked</span>' if file.yanked else '',
            '</td>\n<td><code>', _text(file.abi), '</code></td>\n'
            '<td><code>', _text(file.platform), '</code></td>\n'
            '<td class="num">', file.size_text, '</td>\n'
            '<td>', _text(file.requires_python or '–'), '</td>\n<td>',
            '<code>{}</code>'.format(_text(file.apt_command))
            if file.apt_command else 'none',
            '</td>\n</tr>\n',
        ]
    parts.append('</tbody>\n</table>\n</div>\n')
    return parts


class PageRenderer:
    """Turns data into the bytes of each page of the site.

    :param str site_url: the absolute URL of the site (used only in the
        sitemap, which must have absolute URLs), e.g. ``https://example.org``
    """

    def __init__(self, site_url=''):
        self.site_url = site_url.rstrip('/')
        self.templates = PageTemplateLoader(TEMPLATES, auto_reload=False)
        frame = _FRAME(layout=self.templates['layout.pt'], title=_SLOT, slot=_SLOT)
        #: the page frame: before the title, between title and content, after
        self._frame = frame.split(_SLOT)

    def _html(self, name, **context):
        return self.templates[name](
            layout=self.templates['layout.pt'], **context).encode('utf-8')

    def simple_root(self, packages):
        """The root of the simple index: HTML and PEP 691 JSON, listing the
        (normalised) names in *packages*."""
        names = sorted(packages)
        html = self._html('simple_root.pt', api_version=API_VERSION, packages=names)
        data = {
            'meta': {'api-version': API_VERSION},
            'projects': [{'name': name} for name in names],
        }
        return html, _dump_json(data)

    def simple_package(self, project):
        """A project's simple index page: HTML (PEP 503, 592, 629, 658/714)
        and JSON (PEP 691, 700)."""
        html = _simple_package_html(project).encode('utf-8')
        files = []
        for file in project.files:
            entry = {
                'filename': file.filename,
                'url': file.url,
                'hashes': {'sha256': file.sha256},
                'yanked': file.yanked,
            }
            if file.requires_python:
                entry['requires-python'] = file.requires_python
            if file.size is not None:
                entry['size'] = file.size
            if file.upload_time is not None:
                entry['upload-time'] = file.upload_time
            if file.metadata_sha256:
                # PEP 714: only the new name in JSON; the old one
                # ("dist-info-metadata") makes pip 22.3 to 23.1 fail
                entry['core-metadata'] = {'sha256': file.metadata_sha256}
            files.append(entry)
        data = {
            'meta': {'api-version': API_VERSION},
            'name': project.name,
            'files': files,
            # the versions offered, oldest first
            'versions': [
                release.version for release in reversed(project.releases)
                if release.files
            ],
        }
        return html, _dump_json(data)

    def project_page(self, project):
        """A project's page for people."""
        head, middle, tail = self._frame
        return ''.join(
            [head, _text(project.display_name), middle]
            + _project_facts(project) + _project_versions(project)
            + _project_files(project) + [tail]).encode('utf-8')

    def project_json(self, project):
        """A project's JSON description (``/project/<name>/json/``)."""
        data = {
            'package': project.name,
            'name': project.display_name,
            'summary': project.description,
            'project_url': '/project/{}/'.format(project.name),
            'index_url': '/simple/{}/'.format(project.name),
            'releases': {
                release.version: {
                    'released': release.released_iso,
                    'prerelease': release.prerelease,
                    'yanked': release.yanked,
                    'skip_reason': release.skip,
                    'builds': {
                        build.abi: {
                            'status': build.status,
                            'skip_reason': build.skip,
                            'log_url': build.log_url,
                        }
                        for build in release.builds if build is not None
                    },
                    'files': {
                        file.filename: {
                            'url': '/simple/{}/{}'.format(project.name, file.filename),
                            'hash': file.sha256,
                            'size': file.size,
                            'abi_tag': file.abi,
                            'platform_tag': file.platform,
                            'builder_abi': file.builder_abi,
                            'uploaded': file.upload_time,
                            'requires_python': file.requires_python,
                            'apt_dependencies': file.apt_dependencies,
                        }
                        for file in release.files
                    },
                }
                for release in project.releases
            },
        }
        return _dump_json(data)

    def search_index(self, downloads):
        """``packages.json``: ``[name, downloads last month, downloads all
        time]`` for each package, most downloaded first.

        :param dict downloads: package -> (recent, all) download counts
        """
        rows = sorted(
            ([name, recent, total] for name, (recent, total) in downloads.items()),
            key=lambda row: (-row[1], -row[2], row[0]))
        return _dump_json(rows)

    def home(self, stats, pending, updated):
        """The home page.

        :param list stats: (label, value) pairs to show
        :param list pending: (ABI, count) pairs of the build queue
        :param datetime updated: when the statistics were gathered
        """
        return self._html(
            'home.pt', stats=[_Stat(label, value) for label, value in stats],
            pending=pending,
            updated=updated.strftime('%Y-%m-%d %H:%M UTC') if updated else 'never')

    def faq(self):
        """The FAQ page."""
        return self._html('faq.pt')

    def not_found(self):
        """The page served for a missing file."""
        return self._html('not_found.pt')

    def sitemap(self, paths):
        """A sitemap of the site *paths* (at most 50,000)."""
        return self._html('sitemap.pt', urls=[self.site_url + path for path in paths])

    def sitemap_index(self, paths):
        """The sitemap index listing the sitemaps at *paths*."""
        return self._html('sitemap_index.pt',
                          sitemaps=[self.site_url + path for path in paths])

    def status(self, status):
        """``status.json`` from the *status* dictionary."""
        return _dump_json(status)


class _Stat:
    __slots__ = ('label', 'value')

    def __init__(self, label, value):
        self.label = label
        self.value = value
