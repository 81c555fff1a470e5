"""The low-level database API of the master: :class:`Database`.

A simple SQLAlchemy core affair running short queries and function calls
against PostgreSQL; the logic (what to build next, what a build's state is,
what counts as a download this month) lives in the database, in the views
and functions of ``sql/create_piwheels.sql``. The master's role reads tables
and writes only by calling those functions, each call in one transaction.

Build logs are not stored here: they are gzip files in the output directory
named after the ``build_id`` :meth:`Database.log_build` returns.

A package or version whose skip reason is :data:`DELETED` is marked for
deletion (PyPI removed it; the web output is cleaned up before the rows go).
"""

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import create_engine, exc as sa_exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from .. import __version__
from ..exc import DatabaseError

#: the skip reason that marks a package or version for deletion
DELETED = 'deleted'


def normalize_dsn(dsn):
    """Return *dsn* naming the psycopg2 driver: ``postgres://`` (which
    SQLAlchemy no longer accepts) and ``postgresql://`` (whose default driver
    differs between SQLAlchemy releases) become ``postgresql+psycopg2://``."""
    for scheme in ('postgres://', 'postgresql://'):
        if dsn.startswith(scheme):
            return 'postgresql+psycopg2://' + dsn[len(scheme):]
    return dsn


def safe_dsn(dsn):
    """Return *dsn* fit for a log line: with its password hidden."""
    try:
        return make_url(normalize_dsn(dsn)).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return '<unparseable DSN>'


def _first_line(exc):
    """Return the first line of the database's message for *exc*."""
    message = str(getattr(exc, 'orig', None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


class RewritePendingRow(NamedTuple):
    """A page rewrite TheSecretary holds back: ``command`` is ``'PROJECT'``
    or ``'BOTH'``."""
    package: str
    added_at: datetime
    command: str


class LoggedBuild(NamedTuple):
    """What :meth:`Database.log_build` recorded."""
    #: the new build's identifier (its log is named after it)
    build_id: int
    #: files registered by this build: the master must fetch these
    new_files: frozenset
    #: files identical to an already published file: nothing to fetch
    duplicates: frozenset
    #: files whose name is taken by a published file with other bytes; the
    #: published file stays and the build is marked with a conflict
    conflicts: frozenset


class ProjectVersionsRow(NamedTuple):
    """A row of a project page's versions table."""
    version: str
    released: datetime
    yanked: bool
    skip: str
    builds_succeeded: frozenset
    builds_failed: frozenset


class ProjectFilesRow(NamedTuple):
    """A row of a project page's files table."""
    version: str
    abi_tag: str
    filename: str
    filesize: int
    filehash: str
    yanked: bool
    requires_python: str
    apt_dependencies: frozenset


def _hits_json(records):
    """Return the JSON array the log functions take for *records*: an array
    of each record's fields in order, its datetimes as ISO 8601 (a
    payload's fields are a tuple, which the JSON encoder writes as an array
    without any Python code but the datetimes')."""
    return json.dumps(list(records), default=_json_timestamp)


@lru_cache(maxsize=4096)
def _json_timestamp(value):
    # a web server logs many hits in the same second: the same datetimes
    if isinstance(value, datetime):
        return _timestamp(value)
    raise TypeError('{} cannot be logged'.format(type(value).__name__))


def _timestamp(value):
    """Return *value* (a datetime; naive means UTC) as ISO 8601 with an
    offset."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


class Database:
    """The piwheels database connection of one master task.

    :param str dsn: the database to connect to, as an ordinary (not
        superuser) role; the database must be at this software's version
        (run piw-initdb first).
    :raises DatabaseError: when the database cannot be reached, is at
        another version, or the role is a superuser.
    """

    def __init__(self, dsn):
        try:
            self._engine = create_engine(
                normalize_dsn(dsn), future=True, poolclass=NullPool,
                connect_args={'options': '-c timezone=UTC'})
            self._conn = self._engine.connect()
        except sa_exc.ArgumentError as exc:
            raise DatabaseError('invalid DSN {}: {}'.format(safe_dsn(dsn), exc)) from None
        except sa_exc.DBAPIError as exc:
            raise DatabaseError('unable to connect to {}: {}'.format(
                safe_dsn(dsn), _first_line(exc))) from None
        try:
            with self._transaction() as conn:
                superuser = conn.execute(text(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
                version = conn.execute(text(
                    "SELECT version FROM configuration")).scalar()
        except DatabaseError as exc:
            self.close()
            raise DatabaseError(
                'the database at {} is not a piwheels database; run piw-initdb '
                'first ({})'.format(safe_dsn(dsn), exc)) from None
        if superuser:
            self.close()
            raise DatabaseError(
                'piw-master must not connect as a cluster superuser; use the '
                'ordinary user given to piw-initdb')
        if version != __version__:
            self.close()
            raise DatabaseError(
                'the database is at version {} but this is piwheels {}; run '
                'piw-initdb to upgrade it'.format(version, __version__))

    def close(self):
        """Close the connection."""
        self._conn.close()
        self._engine.dispose()

    @contextmanager
    def _transaction(self):
        """Run the body in one transaction; turn database errors into
        :exc:`DatabaseError` (a lost connection is re-opened by the next
        transaction)."""
        try:
            with self._conn.begin():
                yield self._conn
        except sa_exc.DBAPIError as exc:
            raise DatabaseError(_first_line(exc)) from exc

    def _call(self, function, **params):
        """Call the database *function* with *params* (named after its
        arguments, in order) in a transaction of its own; return the
        result."""
        sql = 'SELECT {}({})'.format(
            function, ', '.join(':{}'.format(name) for name in params))
        with self._transaction() as conn:
            return conn.execute(text(sql), params).scalar()

    # Packages and versions ------------------------------------------------

    def add_new_package(self, package, skip='', description=''):
        """Insert a new package; return ``True`` if it was inserted, ``False``
        if it already existed.

        :param str package: the package's canonical name
        :param str skip: the reason never to build it (default: build it)
        :param str description: its one-line summary (default: none)
        """
        return self._call(
            'add_new_package', package=package, skip=skip,
            description=description)

    def add_new_package_version(self, package, version, released=None,
                                skip='', requires_python=''):
        """Insert a new version of *package*; return ``True`` if it was
        inserted, ``False`` if it already existed.

        :param datetime released: when PyPI released it (default: now)
        :param str skip: the reason never to build it (default: build it)
        :param str requires_python: its Requires-Python specifier set; ABIs
            it excludes are never scheduled (default: none)
        """
        return self._call(
            'add_new_package_version', package=package, version=version,
            released=released, skip=skip, requires_python=requires_python)

    def add_package_name(self, package, name, seen):
        """Record *name* as a name *package* was seen under at *seen*, or
        move its last-seen time forward."""
        self._call('add_package_name', package=package, name=name, seen=seen)

    def get_package_aliases(self, package):
        """Return the names *package* was seen under, other than its
        canonical name, as a sorted list."""
        with self._transaction() as conn:
            return list(conn.execute(text(
                "SELECT name FROM package_names "
                "WHERE package = :package AND name <> :package ORDER BY name"),
                {'package': package}).scalars())

    def get_project_display_name(self, package):
        """Return the name *package* was last seen under (its canonical name
        when none was recorded)."""
        with self._transaction() as conn:
            name = conn.execute(text(
                "SELECT name FROM package_names WHERE package = :package "
                "ORDER BY seen DESC, name LIMIT 1"), {'package': package}).scalar()
        return package if name is None else name

    def get_package_description(self, package):
        """Return the one-line description of *package* (``None`` for an
        unknown package)."""
        with self._transaction() as conn:
            return conn.execute(text(
                "SELECT description FROM packages WHERE package = :package"),
                {'package': package}).scalar()

    def set_package_description(self, package, description):
        """Set the one-line description of *package* (cut to 200
        characters)."""
        self._call('set_package_description', package=package,
                   description=description)

    def set_version_requires_python(self, package, version, requires_python):
        """Set the Requires-Python specifier set of a version (learnt after
        it was added); ABIs it excludes leave the build queue."""
        self._call('set_version_requires_python', package=package,
                   version=version, requires_python=requires_python)

    def test_package(self, package):
        """Return whether *package* is known."""
        with self._transaction() as conn:
            return conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM packages WHERE package = :package)"),
                {'package': package}).scalar()

    def test_package_version(self, package, version):
        """Return whether *version* of *package* is known."""
        with self._transaction() as conn:
            return conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM versions "
                "WHERE package = :package AND version = :version)"),
                {'package': package, 'version': version}).scalar()

    def get_all_packages(self):
        """Return the set of all known package names."""
        with self._transaction() as conn:
            return set(conn.execute(text("SELECT package FROM packages")).scalars())

    def get_all_package_versions(self):
        """Return the set of all known ``(package, version)`` tuples."""
        with self._transaction() as conn:
            return {
                (package, version) for package, version in conn.execute(text(
                    "SELECT package, version FROM versions"))
            }

    def skip_package(self, package, reason):
        """Never build *package* (any version, present or future) for
        *reason*; an empty reason builds it again. :data:`DELETED` marks it
        for deletion."""
        self._call('skip_package', package=package, reason=reason)

    def skip_package_version(self, package, version, reason):
        """Never build *version* of *package* for *reason*; an empty reason
        builds it again. :data:`DELETED` marks it for deletion."""
        self._call('skip_package_version', package=package, version=version,
                   reason=reason)

    def get_version_skip(self, package, version):
        """Return why *version* of *package* is not built: the package's
        skip reason, else the version's; ``''`` when it is built, ``None``
        when the version is unknown."""
        with self._transaction() as conn:
            return conn.execute(text(
                "SELECT coalesce(NULLIF(p.skip, ''), v.skip) "
                "FROM versions v JOIN packages p ON p.package = v.package "
                "WHERE v.package = :package AND v.version = :version"),
                {'package': package, 'version': version}).scalar()

    def package_marked_deleted(self, package):
        """Return whether *package* is marked for deletion."""
        with self._transaction() as conn:
            return conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM packages "
                "WHERE package = :package AND skip = :deleted)"),
                {'package': package, 'deleted': DELETED}).scalar()

    def get_versions_deleted(self, package):
        """Return the set of versions of *package* marked for deletion."""
        with self._transaction() as conn:
            return set(conn.execute(text(
                "SELECT version FROM versions "
                "WHERE package = :package AND skip = :deleted"),
                {'package': package, 'deleted': DELETED}).scalars())

    def get_packages_deleted(self):
        """Return the set of packages marked for deletion."""
        with self._transaction() as conn:
            return set(conn.execute(text(
                "SELECT package FROM packages WHERE skip = :deleted"),
                {'deleted': DELETED}).scalars())

    def yank_version(self, package, version, reason=''):
        """Mark *version* of *package* as yanked (PEP 592), for *reason*."""
        self._call('yank_version', package=package, version=version,
                   reason=reason)

    def unyank_version(self, package, version):
        """Mark *version* of *package* as no longer yanked."""
        self._call('unyank_version', package=package, version=version)

    def delete_package(self, package):
        """Remove *package* with all its versions, builds and files."""
        self._call('delete_package', package=package)

    def delete_version(self, package, version):
        """Remove *version* of *package* with all its builds and files."""
        self._call('delete_version', package=package, version=version)

    def delete_build(self, package, version):
        """Remove all builds of *version* of *package*, with their files; the
        version is queued to be built again (unless skipped)."""
        self._call('delete_build', package=package, version=version)

    # Builds ---------------------------------------------------------------

    def get_build_abis(self, *, exclude_skipped=False):
        """Return the set of ABIs in ``build_abis``; only those being built
        for (not skipped) when *exclude_skipped* is true."""
        sql = "SELECT abi_tag FROM build_abis"
        if exclude_skipped:
            sql += " WHERE skip = ''"
        with self._transaction() as conn:
            return set(conn.execute(text(sql)).scalars())

    def get_build_queue(self, limit=1000):
        """Return a mapping of every active ABI (in version order: cp39
        before cp311) to an ordered list of up to *limit* ``(package,
        version)`` tuples to build for it: the most downloaded packages in
        the last 30 days first, then the newest releases. Versions whose
        Requires-Python excludes the ABI never appear; nor do those built,
        skipped or failed for good (transient failures come back until
        ``max_build_attempts()`` builds were tried)."""
        with self._transaction() as conn:
            queue = {
                abi: list(zip(packages, versions))
                for abi, packages, versions in conn.execute(text(
                    "SELECT abi_tag, packages, versions FROM get_build_queue(:limit)"),
                    {'limit': limit})
            }
        return queue

    def log_build(self, build):
        """Record a build attempt and the files it produced, in one
        transaction; return a :class:`LoggedBuild`.

        *build* is a :class:`~piwheels.states.BuildState`: its ``slave_id``,
        ``package``, ``version``, ``abi_tag``, ``status``, ``duration``,
        ``failure`` (for a failed build, one of the ``build_failures``
        table's kinds: ``error``, ``timeout``, ``killed``, ``disk``,
        ``network``; ``error`` when it has none) and ``files`` (a mapping of
        filename to :class:`~piwheels.states.FileState`) are recorded. Its
        log output is not: the master writes it to a file named after the
        returned ``build_id``. The attempt number is counted here.
        """
        return self.log_builds([build])[0]

    def log_builds(self, builds):
        """Record many build attempts (see :meth:`log_build`) in one
        transaction, with one statement per table for the lot (the build
        queue is brought up to date once for the whole batch); return a
        :class:`LoggedBuild` for each, in order. If one of them cannot be
        recorded (its version was deleted, say), none is."""
        batch = [
            {
                'package': build.package,
                'version': build.version,
                'abi_tag': build.abi_tag,
                'built_by': build.slave_id,
                'duration': build.duration.total_seconds(),
                'status': bool(build.status),
                'failure': build.failure or None,
                'files': [
                    {
                        'filename': file.filename,
                        'filesize': file.filesize,
                        'filehash': file.filehash,
                        'package_tag': file.package_tag,
                        'package_version_tag': file.package_version_tag,
                        'py_version_tag': file.py_version_tag,
                        'abi_tag': file.abi_tag,
                        'platform_tag': file.platform_tag,
                        'requires_python': file.requires_python or '',
                        'dependencies': {
                            tool: sorted(names)
                            for tool, names in (file.dependencies or {}).items()},
                    }
                    for file in build.files.values()
                ],
            }
            for build in builds
        ]
        if not batch:
            return []
        build_ids = [None] * len(batch)
        outcomes = [{'new': set(), 'same': set(), 'conflict': set()}
                    for build in batch]
        with self._transaction() as conn:
            for index, build_id, filename, outcome in conn.execute(text(
                    "SELECT build_index, build_id, filename, outcome "
                    "FROM log_builds(CAST(:builds AS JSONB))"),
                    {'builds': json.dumps(batch)}):
                build_ids[index - 1] = build_id
                if filename is not None:
                    outcomes[index - 1][outcome].add(filename)
        return [
            LoggedBuild(build_id, frozenset(outcome['new']),
                        frozenset(outcome['same']),
                        frozenset(outcome['conflict']))
            for build_id, outcome in zip(build_ids, outcomes)
        ]

    def get_build(self, build_id):
        """Return what was recorded of build *build_id* as a dict (keys
        ``build_id``, ``package``, ``version``, ``abi_tag``, ``built_by``,
        ``built_at``, ``duration``, ``status``, ``failure``, ``attempt``,
        ``conflict``), or ``None`` when there is no such build."""
        with self._transaction() as conn:
            row = conn.execute(text(
                "SELECT build_id, package, version, abi_tag, built_by, built_at, "
                "duration, status, failure, attempt, conflict "
                "FROM builds WHERE build_id = :build_id"),
                {'build_id': build_id}).mappings().first()
        return None if row is None else dict(row)

    def get_package_files(self, package):
        """Return a mapping of the filenames of all files of *package* to
        their SHA256 hashes: what the package's simple index needs."""
        with self._transaction() as conn:
            return dict(conn.execute(text(
                "SELECT f.filename, f.filehash FROM files f "
                "JOIN builds b ON b.build_id = f.build_id "
                "WHERE b.package = :package"), {'package': package}).all())

    def get_version_files(self, package, version):
        """Return the set of filenames of *version* of *package*."""
        with self._transaction() as conn:
            return set(conn.execute(text(
                "SELECT f.filename FROM files f "
                "JOIN builds b ON b.build_id = f.build_id "
                "WHERE b.package = :package AND b.version = :version"),
                {'package': package, 'version': version}).scalars())

    def get_file_apt_dependencies(self, filename):
        """Return the set of apt packages *filename* needs."""
        with self._transaction() as conn:
            return set(conn.execute(text(
                "SELECT dependency FROM dependencies "
                "WHERE filename = :filename AND tool = 'apt'"),
                {'filename': filename}).scalars())

    # Project pages --------------------------------------------------------

    def get_project_data(self, package):
        """Return everything the project page, project JSON and simple index
        of *package* show, or ``None`` for an unknown package::

            {'package': 'foo', 'name': 'Foo', 'description': '...',
             'skip': '', 'aliases': ['Foo'],
             'downloads_recent': 12, 'downloads_all': 345,
             'releases': {               # newest release first
                 '1.0': {
                     'released': datetime(...), 'skip': '', 'yanked': False,
                     'yank_reason': '', 'requires_python': '>=3.9',
                     'abis': {           # in version order: cp39, cp311
                         'cp311': {'status': 'success', 'build_id': 1,
                                   'skip': '', 'built_at': datetime(...),
                                   'built_by': 2, 'duration': timedelta(...),
                                   'failure': None, 'attempt': 1,
                                   'conflict': False},
                     },
                     'files': {
                         'foo-1.0-py3-none-any.whl': {
                             'hash': '...', 'size': 123456, 'build_id': 1,
                             'abi_tag': 'cp311', 'py_version': 'py3',
                             'abi_file': 'none', 'platform': 'any',
                             'requires_python': '>=3.9',
                             'uploaded': datetime(...),
                             'apt_dependencies': {'libc6'}},
                     },
                 },
             }}

        An ABI's ``status`` is ``'success'``, ``'failed'`` (for good),
        ``'pending'``, ``'skipped'`` (``skip`` says why) or ``'not
        applicable'`` (the version's Requires-Python excludes it); the build
        fields describe the build that decided it and are ``None`` when
        there is none. The build log of ``build_id`` is in the output.
        """
        return self.get_project_data_many([package]).get(package)

    def get_project_data_many(self, packages):
        """Return a mapping of each known package of *packages* to its
        :meth:`get_project_data`, fetched with one query per table for them
        all (a rewrite of many pages spends its time in round trips
        otherwise); unknown packages are left out.

        The queries over build states and files start from the list of
        packages (``unnest``): PostgreSQL estimates its length, and reaches
        each package's rows through their indexes rather than scanning or
        hashing a whole table (or starting parallel workers, which cost
        more than the query)."""
        params = {'packages': list(packages)}
        result = {}
        with self._transaction() as conn:
            for package, description, skip, recent, total in conn.execute(text(
                    "SELECT package, description, skip, downloads_recent, downloads_all "
                    "FROM packages WHERE package = ANY(:packages)"), params):
                result[package] = {
                    'package': package,
                    'name': package,
                    'description': description,
                    'skip': skip,
                    'aliases': [],
                    'downloads_recent': recent,
                    'downloads_all': total,
                    'releases': {},
                }
            for package, name in conn.execute(text(
                    "SELECT package, name FROM package_names "
                    "WHERE package = ANY(:packages) ORDER BY seen, name DESC"), params):
                # the last name seen is the display name
                project = result[package]
                project['name'] = name
                if name != package:
                    project['aliases'].append(name)
            for package, version, released, skip, yanked, yank_reason, requires_python in (
                    conn.execute(text(
                        "SELECT package, version, released, skip, yanked, yank_reason, "
                        "requires_python FROM versions WHERE package = ANY(:packages) "
                        "ORDER BY released DESC, version DESC"), params)):
                result[package]['releases'][version] = {
                    'released': released,
                    'skip': skip,
                    'yanked': yanked,
                    'yank_reason': yank_reason,
                    'requires_python': requires_python,
                    'abis': {},
                    'files': {},
                }
            for (package, version, abi_tag, status, build_id, skip, built_at, built_by,
                 duration, failure, attempt, conflict) in conn.execute(text(
                    "SELECT s.package, s.version, s.abi_tag, s.status, s.build_id, s.skip, "
                    "b.built_at, b.built_by, b.duration, b.failure, b.attempt, b.conflict "
                    "FROM unnest(CAST(:packages AS VARCHAR[])) AS q(package) "
                    "JOIN build_states s ON s.package = q.package "
                    "JOIN build_abis a ON a.abi_tag = s.abi_tag "
                    "LEFT JOIN builds b ON b.build_id = s.build_id "
                    "WHERE a.skip = '' OR s.build_id IS NOT NULL "
                    "ORDER BY abi_python_version(s.abi_tag), s.abi_tag"), params):
                result[package]['releases'][version]['abis'][abi_tag] = {
                    'status': status,
                    'build_id': build_id,
                    'skip': skip if status == 'skipped' else '',
                    'built_at': built_at,
                    'built_by': built_by,
                    'duration': duration,
                    'failure': failure,
                    'attempt': attempt,
                    'conflict': conflict,
                }
            for (package, version, abi_builder, built_at, build_id, filename, filesize,
                 filehash, py_version_tag, abi_file, platform_tag, requires_python,
                 apt) in conn.execute(text(
                    "SELECT b.package, b.version, b.abi_tag, b.built_at, f.build_id, "
                    "f.filename, f.filesize, f.filehash, f.py_version_tag, f.abi_tag, "
                    "f.platform_tag, f.requires_python, ARRAY("
                    "  SELECT d.dependency FROM dependencies d "
                    "  WHERE d.filename = f.filename AND d.tool = 'apt') AS apt "
                    "FROM unnest(CAST(:packages AS VARCHAR[])) AS q(package) "
                    "JOIN builds b ON b.package = q.package "
                    "JOIN files f ON f.build_id = b.build_id "
                    "ORDER BY f.filename"), params):
                result[package]['releases'][version]['files'][filename] = {
                    'hash': filehash,
                    'size': filesize,
                    'build_id': build_id,
                    'abi_tag': abi_builder,
                    'py_version': py_version_tag,
                    'abi_file': abi_file,
                    'platform': platform_tag,
                    'requires_python': requires_python,
                    'uploaded': built_at,
                    'apt_dependencies': set(apt),
                }
        for project in result.values():
            project['aliases'].sort()
        return result

    def get_project_versions(self, package):
        """Return the rows of the versions table of *package*'s project page
        (:class:`ProjectVersionsRow`, newest release first)."""
        data = self.get_project_data(package)
        if data is None:
            return []
        return [
            ProjectVersionsRow(
                version, release['released'], release['yanked'], release['skip'],
                frozenset(abi for abi, state in release['abis'].items()
                          if state['status'] == 'success'),
                frozenset(abi for abi, state in release['abis'].items()
                          if state['status'] == 'failed'))
            for version, release in data['releases'].items()
        ]

    def get_project_files(self, package):
        """Return the rows of the files table of *package*'s project page
        (:class:`ProjectFilesRow`, newest release first)."""
        data = self.get_project_data(package)
        if data is None:
            return []
        return [
            ProjectFilesRow(
                version, file['abi_tag'], filename, file['size'],
                file['hash'], release['yanked'], file['requires_python'],
                frozenset(file['apt_dependencies']))
            for version, release in data['releases'].items()
            for filename, file in release['files'].items()
        ]

    # PyPI -------------------------------------------------------------

    def get_pypi_serial(self):
        """Return the serial number of the last PyPI event processed."""
        with self._transaction() as conn:
            return conn.execute(text("SELECT pypi_serial FROM configuration")).scalar()

    def set_pypi_serial(self, serial):
        """Record *serial* as the last PyPI event processed."""
        self._call('set_pypi_serial', serial=serial)

    # Statistics and search ------------------------------------------------

    def get_statistics(self):
        """Return the build and download statistics as a dict with the
        fields of :class:`~piwheels.protocols.DatabaseStats`:
        ``packages_built`` (packages with a successful build),
        ``builds_last_hour`` (a mapping of each ABI to its builds in the last
        hour), ``builds_time`` (total build time, a timedelta),
        ``builds_size`` (bytes of all files), ``new_last_hour`` (versions
        released in the last hour), ``files_count``,
        ``downloads_last_hour``, ``downloads_last_month`` (the last 30 days)
        and ``downloads_all``; plus ``builds_pending``: a mapping of each
        active ABI to the number of versions waiting for it (all of them,
        not only the queue's first :meth:`get_build_queue` entries)."""
        with self._transaction() as conn:
            stats = dict(conn.execute(text(
                "SELECT * FROM get_statistics()")).mappings().one())
            stats['builds_last_hour'] = dict(conn.execute(text(
                "SELECT abi_tag, count(*) FROM builds "
                "WHERE built_at > CURRENT_TIMESTAMP - INTERVAL '1 hour' "
                "GROUP BY abi_tag")).all())
            stats['builds_pending'] = dict(conn.execute(text(
                "SELECT a.abi_tag, count(q.abi_tag) FROM build_abis a "
                "LEFT JOIN build_queue q ON q.abi_tag = a.abi_tag "
                "WHERE a.skip = '' GROUP BY a.abi_tag")).all())
        return stats

    def get_search_index(self):
        """Return a mapping of every package (but those marked for deletion)
        to its ``(downloads_recent, downloads_all)``: downloads in the last 30
        days and in all, most downloaded first."""
        with self._transaction() as conn:
            return {
                package: (recent, total)
                for package, recent, total in conn.execute(text(
                    "SELECT package, downloads_recent, downloads_all "
                    "FROM get_search_index()"))
            }

    # Web logs -------------------------------------------------------------

    def log_downloads(self, downloads):
        """Record many wheel downloads in one transaction.

        :param downloads: :class:`~piwheels.states.DownloadState` records,
            or tuples of their fields in order (``filename``, ``host``,
            ``timestamp`` — naive means UTC — and the user agent's ``arch``,
            ``distro_name``, ``distro_version``, ``os_name``, ``os_version``,
            ``py_name``, ``py_version``, ``installer_name``,
            ``installer_version``, ``setuptools_version``); text longer than
            its column is cut
        """
        self._call('log_downloads', hits=_hits_json(downloads))

    def log_download(self, download):
        """Record one wheel download; see :meth:`log_downloads`."""
        self.log_downloads([download])

    def log_searches(self, searches):
        """Record many pip searches (fetches of a package's simple index) in
        one transaction: :class:`~piwheels.states.SearchState` records
        (``package``, ``host``, ``timestamp`` and the user agent fields of
        :meth:`log_downloads`)."""
        self._call('log_searches', hits=_hits_json(searches))

    def log_search(self, search):
        """Record one pip search; see :meth:`log_searches`."""
        self.log_searches([search])

    def log_projects(self, projects):
        """Record many project page hits in one transaction:
        :class:`~piwheels.states.ProjectState` records (``package``,
        ``host``, ``timestamp``, ``user_agent``)."""
        self._call('log_project_hits', hits=_hits_json(projects))

    def log_project(self, project):
        """Record one project page hit; see :meth:`log_projects`."""
        self.log_projects([project])

    def log_jsons(self, jsons):
        """Record many project JSON downloads in one transaction:
        :class:`~piwheels.states.JSONState` records (``package``, ``host``,
        ``timestamp``, ``user_agent``)."""
        self._call('log_json_hits', hits=_hits_json(jsons))

    def log_json(self, json_hit):
        """Record one project JSON download; see :meth:`log_jsons`."""
        self.log_jsons([json_hit])

    def log_pages(self, pages):
        """Record many web page hits in one transaction:
        :class:`~piwheels.states.PageState` records (``page``, ``host``,
        ``timestamp``, ``user_agent``)."""
        self._call('log_page_hits', hits=_hits_json(pages))

    def log_page(self, page):
        """Record one web page hit; see :meth:`log_pages`."""
        self.log_pages([page])

    # TheSecretary -----------------------------------------------------

    def load_rewrites_pending(self):
        """Return TheSecretary's saved queue: a list of
        :class:`RewritePendingRow`, oldest first."""
        with self._transaction() as conn:
            return [
                RewritePendingRow(*row) for row in conn.execute(text(
                    "SELECT package, added_at, command FROM rewrites_pending "
                    "ORDER BY added_at, package"))
            ]

    def save_rewrites_pending(self, queue):
        """Replace TheSecretary's saved queue with *queue*, a list of
        :class:`RewritePendingRow` (or equivalent tuples)."""
        self._call('save_rewrites_pending', rows=json.dumps([
            {'package': package, 'added_at': _timestamp(added_at),
             'command': command}
            for package, added_at, command in queue
        ]))
