"""TheOracle: runs database requests for the other tasks; DbClient is how they ask.

Several TheOracle workers sit behind :class:`~piwheels.master.seraph.Seraph`,
each with its own connection to the database, so one slow query doesn't hold
up the others. A request is one action of
:data:`~piwheels.protocols.the_oracle`, carried out by the
:class:`~piwheels.master.db.Database` method of the same meaning; the reply
carries the request's action and the result, or ERROR and the database's
one-line complaint.
"""

from datetime import datetime, timezone

from .. import protocols, transport
from ..exc import DatabaseError
from ..protocols import (
    DatabaseStats, LoggedBuild, NoData, PackageVersion, RewritePending,
)
from ..states import BuildState
from ..tasks import NonStopTask
from .db import Database
from .rpc import RpcClient

#: each request action and the Database method carrying it out; payload
#: data is passed as positional arguments, other data as the one argument
DATABASE_METHODS = {
    'ALLPKGS': 'get_all_packages',
    'ALLVERS': 'get_all_package_versions',
    'NEWPKG': 'add_new_package',
    'NEWVER': 'add_new_package_version',
    'NEWPKGNAME': 'add_package_name',
    'GETPKGNAMES': 'get_package_aliases',
    'GETPKGNAME': 'get_project_display_name',
    'SETDESC': 'set_package_description',
    'SKIPPKG': 'skip_package',
    'SKIPVER': 'skip_package_version',
    'YANKVER': 'yank_version',
    'UNYANKVER': 'unyank_version',
    'DELPKG': 'delete_package',
    'DELVER': 'delete_version',
    'DELBUILD': 'delete_build',
    'PKGEXISTS': 'test_package',
    'VEREXISTS': 'test_package_version',
    'PKGDELETED': 'package_marked_deleted',
    'VERSDELETED': 'get_versions_deleted',
    'PKGSDELETED': 'get_packages_deleted',
    'GETSKIP': 'get_version_skip',
    'GETQUEUE': 'get_build_queue',
    'GETPYPI': 'get_pypi_serial',
    'SETPYPI': 'set_pypi_serial',
    'GETSEARCH': 'get_search_index',
    'PKGFILES': 'get_package_files',
    'VERFILES': 'get_version_files',
    'PROJDATA': 'get_project_data',
    'LOGDOWNLOAD': 'log_downloads',
    'LOGSEARCH': 'log_searches',
    'LOGPROJECT': 'log_projects',
    'LOGJSON': 'log_jsons',
    'LOGPAGE': 'log_pages',
    'SAVERWP': 'save_rewrites_pending',
}


class TheOracle(NonStopTask):
    """A database worker: answers requests that
    :class:`~piwheels.master.seraph.Seraph` passes on.

    Queues:

    * ``db_queue``: REQ, connects ``config.oracle_queue``
      (:data:`~piwheels.protocols.the_oracle`): it says READY, then each
      request arrives as ``[client, request]`` and is answered as
      ``[client, reply]``.

    It never pauses: the other tasks wait on its answers.
    """

    #: a process of its own: the database's rows are turned into replies
    #: without taking turns on the master's interpreter with the tasks
    #: answering slaves
    own_process = True

    def __init__(self, config):
        super().__init__(config)
        self.db = Database(config.dsn)
        self.db_queue = self.socket(
            transport.REQ, protocol=protocols.the_oracle)
        self.db_queue.connect(config.oracle_queue)
        self.register(self.db_queue, self.handle_db_request)

    def once(self):
        self.db_queue.send_msg('READY')

    def close(self):
        super().close()
        self.db.close()

    def handle_db_request(self, queue):
        """Carry out one request and answer it (a REQ socket must always
        answer, so even a malformed request gets ERROR)."""
        try:
            client, msg, data = queue.recv_addr_msg()
        except protocols.ProtocolError as exc:
            self.protocol_errors += 1
            self.logger.error('TheOracle: invalid request refused: %s', exc)
            client = getattr(exc, 'addr', None)
            if client:
                # Seraph passes the answer on and knows this worker is free
                queue.send_addr_msg(client, 'ERROR', str(exc)[:2000])
            else:
                # no client to answer; Seraph still needs this worker's
                # reply to know it is free again
                queue.send_msg('READY')
            return
        try:
            handler = getattr(self, 'do_{}'.format(msg.lower()), None)
            if handler is not None:
                result = handler(data)
            else:
                result = self.call(DATABASE_METHODS[msg], data)
        except DatabaseError as exc:
            self.logger.error('TheOracle: %s failed: %s', msg, exc)
            queue.send_addr_msg(client, 'ERROR', str(exc)[:2000] or msg)
        else:
            queue.send_addr_msg(client, msg, result)

    def call(self, method, data):
        """Call Database *method* with the request's *data*; return its
        result (None becomes NoData, for replies without data)."""
        method = getattr(self.db, method)
        if data is NoData:
            result = method()
        elif isinstance(data, tuple) and hasattr(data, '_fields'):
            result = method(*data)
        else:
            result = method(data)
        return NoData if result is None else result

    def do_getabis(self, exclude_skipped):
        """GETABIS: the build ABIs (only the active ones if asked)."""
        return self.db.get_build_abis(exclude_skipped=exclude_skipped)

    def do_getstats(self, data):
        """GETSTATS: the database's statistics."""
        stats = self.db.get_statistics()
        return DatabaseStats(*(stats[field] for field in DatabaseStats._fields))

    def do_loadrwp(self, data):
        """LOADRWP: TheSecretary's pending rewrites."""
        return [RewritePending(*row) for row in self.db.load_rewrites_pending()]

    def do_logbuild(self, record):
        """LOGBUILD: record one build; return its id."""
        return self.db.log_build(BuildState.from_message(record)).build_id

    def do_logbuilds(self, records):
        """LOGBUILDS: record the builds together in one transaction; if that
        fails, each in its own (so one that cannot be recorded does not lose
        the others); return a LoggedBuild for each."""
        builds = [BuildState.from_message(record) for record in records]
        try:
            return [logged_build(logged)
                    for logged in self.db.log_builds(builds)]
        except DatabaseError:
            return [self.log_alone(build) for build in builds]

    def log_alone(self, build):
        """Record *build* in a transaction of its own; return a LoggedBuild
        saying what the database made of it, or why it could not record
        it."""
        try:
            return logged_build(self.db.log_build(build))
        except DatabaseError as exc:
            self.logger.error('TheOracle: unable to record the build of '
                              '%s %s: %s', build.package, build.version, exc)
            return LoggedBuild(None, set(), set(), set(), str(exc)[:1000])


def logged_build(logged):
    """Return the :class:`~piwheels.protocols.LoggedBuild` reply for what
    :meth:`~piwheels.master.db.Database.log_builds` returned of a build."""
    return LoggedBuild(logged.build_id, set(logged.new_files),
                       set(logged.duplicates), set(logged.conflicts), '')


class DbClient(RpcClient):
    """RPC client of :class:`TheOracle` (through Seraph), for any task.

    Each method is the :class:`~piwheels.master.db.Database` method of the
    same name, and raises :exc:`~piwheels.exc.DatabaseError` with the
    database's reason when the request fails.
    """

    def __init__(self, config, logger=None):
        super().__init__(config.db_queue, protocols.the_oracle,
                         {'ERROR': DatabaseError}, logger)

    def _result(self, msg, data=NoData):
        result = self._call(msg, data)
        return None if result is NoData else result

    def add_new_package(self, package, skip='', description=''):
        return self._result('NEWPKG', protocols.NewPackage(
            package, skip, description))

    def add_new_package_version(self, package, version, released=None,
                                skip=''):
        return self._result('NEWVER', protocols.NewVersion(
            package, version, released, skip))

    def add_package_name(self, package, name,
                         seen=datetime(1970, 1, 1, tzinfo=timezone.utc)):
        return self._result('NEWPKGNAME', protocols.PackageName(
            package, name, seen))

    def get_package_aliases(self, package):
        return self._result('GETPKGNAMES', package)

    def get_project_display_name(self, package):
        return self._result('GETPKGNAME', package)

    def set_package_description(self, package, description):
        return self._result('SETDESC', protocols.PackageText(
            package, description))

    def skip_package(self, package, reason):
        return self._result('SKIPPKG', protocols.PackageText(package, reason))

    def skip_package_version(self, package, version, reason):
        return self._result('SKIPVER', protocols.VersionText(
            package, version, reason))

    def yank_version(self, package, version):
        return self._result('YANKVER', PackageVersion(package, version))

    def unyank_version(self, package, version):
        return self._result('UNYANKVER', PackageVersion(package, version))

    def delete_package(self, package):
        return self._result('DELPKG', package)

    def delete_version(self, package, version):
        return self._result('DELVER', PackageVersion(package, version))

    def delete_build(self, package, version):
        return self._result('DELBUILD', PackageVersion(package, version))

    def test_package(self, package):
        return self._result('PKGEXISTS', package)

    def test_package_version(self, package, version):
        return self._result('VEREXISTS', PackageVersion(package, version))

    def package_marked_deleted(self, package):
        return self._result('PKGDELETED', package)

    def get_versions_deleted(self, package):
        return self._result('VERSDELETED', package)

    def get_packages_deleted(self):
        return self._result('PKGSDELETED')

    def get_version_skip(self, package, version):
        return self._result('GETSKIP', PackageVersion(package, version))

    def get_all_packages(self):
        return self._result('ALLPKGS')

    def get_all_package_versions(self):
        return self._result('ALLVERS')

    def get_build_abis(self, *, exclude_skipped=False):
        return self._result('GETABIS', exclude_skipped)

    def get_build_queue(self, limit=1000):
        return self._result('GETQUEUE', limit)

    def get_pypi_serial(self):
        return self._result('GETPYPI')

    def set_pypi_serial(self, serial):
        return self._result('SETPYPI', serial)

    def get_search_index(self):
        return self._result('GETSEARCH')

    def get_statistics(self):
        return self._result('GETSTATS')

    def get_package_files(self, package):
        return self._result('PKGFILES', package)

    def get_version_files(self, package, version):
        return self._result('VERFILES', PackageVersion(package, version))

    def get_project_data(self, package):
        return self._result('PROJDATA', package)

    def log_build(self, build):
        """Record *build* (a :class:`~piwheels.states.BuildState`); return
        its build id."""
        return self._result('LOGBUILD', build.as_message())

    def log_builds(self, builds):
        """Record each of *builds*; return a
        :class:`~piwheels.protocols.LoggedBuild` for each."""
        return self._result('LOGBUILDS', [build.as_message()
                                          for build in builds])

    def log_downloads(self, downloads):
        return self._result('LOGDOWNLOAD', list(downloads))

    def log_searches(self, searches):
        return self._result('LOGSEARCH', list(searches))

    def log_projects(self, projects):
        return self._result('LOGPROJECT', list(projects))

    def log_jsons(self, jsons):
        return self._result('LOGJSON', list(jsons))

    def log_pages(self, pages):
        return self._result('LOGPAGE', list(pages))

    def load_rewrites_pending(self):
        return self._result('LOADRWP')

    def save_rewrites_pending(self, queue):
        return self._result('SAVERWP', [
            RewritePending(*row) for row in queue])
