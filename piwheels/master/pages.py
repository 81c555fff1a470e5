"""Renders the pages of the web output (HTML from the Chameleon templates in
``templates/``, and the JSON forms) from the data the database returns.

Nothing here touches the output directory: :class:`PageRenderer` turns data
into bytes and :class:`TheScribe <piwheels.master.the_scribe.TheScribe>`
decides where they go. The page of a package depends only on its data, never
on the time it is written, so rewriting an unchanged package produces the
same bytes (and the scribe can skip the write).
"""

import json
import os
import re
from datetime import datetime, timezone

from chameleon import PageTemplateLoader

from .output import canonicalize, log_parts

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'templates')

#: the simple repository API version we implement (PEP 629, PEP 700)
API_VERSION = '1.1'

#: wheel filename: name-version(-build)?-python-abi-platform.whl
_WHEEL_TAGS = re.compile(
    r'^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?'
    r'-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$')

_PRERELEASE = re.compile(r'(?:a|b|c|rc|alpha|beta|pre|preview|dev)\.?\d*(?:$|[.+-])')

#: how each build status is shown on the project page
_STATUS_LABELS = {
    'success': '✓ built',
    'fail': '✗ failed',
    'pending': '… pending',
    'skip': 'skipped',
}


def iso8601(timestamp):
    """Format *timestamp* as RFC 3339 UTC (``2020-01-02T03:04:05Z``), or
    return :data:`None` for :data:`None`."""
    if timestamp is None:
        return None
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(timezone.utc).replace(tzinfo=None)
    return timestamp.replace(microsecond=0).isoformat() + 'Z'


def human_size(size):
    """Format a byte count for people (``1.5 MB``)."""
    if size is None:
        return '–'
    for unit in ('B', 'KB', 'MB', 'GB'):
        if size < 1024 or unit == 'GB':
            return '{:.0f} {}'.format(size, unit) if unit == 'B' else \
                '{:.1f} {}'.format(size, unit)
        size /= 1024


def version_key(version):
    """A sort key that orders version strings numerically part by part."""
    return [
        (0, int(part), '') if part.isdigit() else (-1, 0, part)
        for part in re.split(r'[.+!-]|(?<=\d)(?=\D)|(?<=\D)(?=\d)', version.lower())
        if part
    ]


def log_url(build_id):
    """The site path of the log of build *build_id*."""
    return '/logs/' + '/'.join(log_parts(build_id))


def _status(build):
    status = build.get('status')
    if status is True:
        return 'success'
    if status is False:
        return 'fail'
    if build.get('skip') and status in (None, '', 'pending'):
        return 'skip'
    if status in _STATUS_LABELS:
        return status
    return 'pending'


class BuildView:
    """The result of building one release for one ABI."""
    __slots__ = ('abi', 'build_id', 'status', 'skip', 'label', 'title', 'log_url')

    def __init__(self, abi, build):
        self.abi = abi
        self.build_id = build.get('build_id')
        self.status = _status(build)
        self.skip = build.get('skip') or ''
        self.label = _STATUS_LABELS[self.status]
        self.title = self.skip or '{} for {}'.format(self.label.split(' ', 1)[-1], abi)
        self.log_url = (
            log_url(self.build_id)
            if self.build_id is not None and self.status in ('success', 'fail')
            else None)


class FileView:
    """One wheel of a release, as the index and project pages show it."""
    __slots__ = ('filename', 'url', 'version', 'sha256', 'size', 'size_text',
                 'requires_python', 'abi', 'platform', 'apt_dependencies',
                 'metadata_sha256', 'metadata_attr', 'uploaded', 'yanked',
                 'yanked_attr')

    def __init__(self, filename, version, info, yanked, metadata_sha256):
        tags = _WHEEL_TAGS.match(filename)
        self.filename = filename
        self.url = filename
        self.version = version
        self.sha256 = info.get('hash') or ''
        self.size = info.get('size')
        self.size_text = human_size(self.size)
        self.requires_python = info.get('requires_python') or None
        self.abi = info.get('abi_tag') or (tags.group('abi') if tags else '')
        self.platform = info.get('platform_tag') or (tags.group('platform') if tags else '')
        self.apt_dependencies = sorted(info.get('apt_dependencies') or ())
        self.metadata_sha256 = metadata_sha256
        self.metadata_attr = 'sha256=' + metadata_sha256 if metadata_sha256 else None
        self.uploaded = info.get('uploaded')
        self.yanked = yanked
        # PEP 592: data-yanked holds the reason, and may be empty
        self.yanked_attr = None if yanked is False else ('' if yanked is True else yanked)


class ReleaseView:
    """One version of a project with its builds (one per ABI column) and
    its files."""
    __slots__ = ('version', 'released', 'released_text', 'yanked',
                 'yanked_reason', 'skip', 'prerelease', 'builds', 'files')

    def __init__(self, version, release, abis, metadata):
        self.version = version
        self.released = release.get('released')
        self.released_text = (
            self.released.strftime('%Y-%m-%d') if self.released else '–')
        yanked = release.get('yanked') or False
        self.yanked = yanked if isinstance(yanked, str) else bool(yanked)
        self.yanked_reason = yanked if isinstance(yanked, str) else 'yanked'
        self.skip = release.get('skip') or ''
        self.prerelease = bool(_PRERELEASE.search(version.lower()))
        builds = release.get('abis') or {}
        self.builds = [
            BuildView(abi, builds[abi]) if abi in builds else None
            for abi in abis
        ]
        self.files = [
            FileView(filename, version, info, self.yanked, metadata.get(filename))
            for filename, info in sorted((release.get('files') or {}).items())
        ]


class ProjectView:
    """Everything the pages of one project show, built from the dictionary
    :meth:`Database.get_project_data` returns.

    :param str package: the project's name
    :param dict data: the project's data (``name``, ``description``,
        ``releases``: version -> ``abis``, ``files``, ``released``,
        ``yanked``, ``skip``)
    :param dict metadata: maps wheel file names to the SHA256 of their
        ``.metadata`` file (files without one get no PEP 658 attributes)
    :param set exclude: versions to leave out (being deleted)
    """

    def __init__(self, package, data, metadata=None, exclude=()):
        metadata = metadata or {}
        self.name = canonicalize(package)
        self.display_name = data.get('name') or package
        self.description = data.get('description') or ''
        releases = {
            version: release
            for version, release in (data.get('releases') or {}).items()
            if version not in exclude
        }
        self.abis = sorted({
            abi for release in releases.values() for abi in (release.get('abis') or ())
        })
        self.releases = sorted(
            (ReleaseView(version, release, self.abis, metadata)
             for version, release in releases.items()),
            key=_release_order, reverse=True)
        self.files = [file for release in self.releases for file in release.files]
        latest = [
            release for release in self.releases
            if not release.yanked and not release.prerelease
        ] or self.releases
        self.latest = latest[0] if latest else None


def _release_order(release):
    released = release.released
    if released is not None and released.tzinfo is not None:
        released = released.astimezone(timezone.utc).replace(tzinfo=None)
    return (released or datetime.min, version_key(release.version))


def _dump_json(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(',', ':'),
                      sort_keys=True).encode('utf-8')


class PageRenderer:
    """Turns data into the bytes of each page of the site.

    :param str site_url: the absolute URL of the site (used only in the
        sitemap, which must have absolute URLs), e.g. ``https://example.org``
    """

    def __init__(self, site_url=''):
        self.site_url = site_url.rstrip('/')
        self.templates = PageTemplateLoader(TEMPLATES, auto_reload=False)

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
        html = self._html('simple_package.pt', api_version=API_VERSION, project=project)
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
            if file.uploaded is not None:
                entry['upload-time'] = iso8601(file.uploaded)
            if file.metadata_sha256:
                entry['core-metadata'] = {'sha256': file.metadata_sha256}
                entry['dist-info-metadata'] = {'sha256': file.metadata_sha256}
            files.append(entry)
        data = {
            'meta': {'api-version': API_VERSION},
            'name': project.name,
            'files': files,
            'versions': sorted({file.version for file in project.files}, key=version_key),
        }
        return html, _dump_json(data)

    def project_page(self, project):
        """A project's page for people."""
        return self._html('project.pt', project=project)

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
                    'released': iso8601(release.released),
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
