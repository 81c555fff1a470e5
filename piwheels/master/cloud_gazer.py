"""CloudGazer: follows PyPI and writes its projects, releases, yanks and removals into the database.

It follows one of two sources, chosen by the master's configuration:

* **the changelog** (the default): every ``--pypi-interval`` it asks PyPI's
  XML-RPC service for the events after the serial number stored in the
  database (``changelog_since_serial``), writes what they say, and only then
  stores the batch's last serial; while a batch was full it asks again at
  once. A batch that fails half way (PyPI, the database) is read again
  from the same serial: every write is one that can be repeated.
* **a list of projects** (``--pypi-projects``): every ``--pypi-interval``
  it GETs each project from the JSON API (with its ETag, so an unchanged
  project costs a 304) and brings the database in line with it. Releases
  (and the project itself) that PyPI stops listing while the master runs
  are removed.

Either way, a version whose files on PyPI include a pure-Python wheel is
not built (:data:`~piwheels.pypi.PURE_WHEEL`: pip would otherwise take our
copy of a file PyPI already serves, with another hash), and a version
without a source distribution waits for one
(:data:`~piwheels.pypi.BINARY_ONLY`). Project descriptions come from the
JSON API.

When PyPI (or the database) fails, it backs off: the next attempt waits
twice as long as the last, up to :data:`RETRY_MAX`.

A project removed from PyPI is marked for deletion: SlaveDriver drops its
queued builds, the web output loses its pages and files, and a later sweep
(:meth:`CloudGazer.purge_deleted`, which also finishes what MrChase
marked) deletes its rows once the web output had time to read its names.
A removed release is deleted at once.
"""

import time
from datetime import timedelta

from .. import protocols, transport
from ..exc import DatabaseError, PyPIError, TransportError
from ..protocols import PackageVersion
from ..pypi import (
    BINARY_ONLY, NOT_MODIFIED, PURE_WHEEL, PyPIEvents, get_project,
    get_release_files, get_summary, is_pure_wheel, version_skip,
)
from ..states import utcnow
from ..tasks import PauseableTask
from .db import DELETED
from .output import OutputError, canonicalize
from .the_oracle import DbClient

#: the first wait after a failure; each further failure doubles it
RETRY_INITIAL = timedelta(seconds=10)

#: the longest wait between two attempts
RETRY_MAX = timedelta(minutes=10)

#: how often packages marked for deletion are looked for; one is deleted
#: when a sweep finds it marked a second time
PURGE_INTERVAL = timedelta(minutes=1)

#: the skip reasons CloudGazer sets itself; others were set by hand and
#: stay
AUTOMATIC_SKIPS = frozenset({'', BINARY_ONLY, PURE_WHEEL})

#: the longest package name or version the database holds
MAX_NAME = 200


class Backoff:
    """When to try again after failures: :attr:`initial` after the first,
    twice as long after each further one, never more than :attr:`maximum`.

    :param timedelta initial: the first wait.
    :param timedelta maximum: the longest wait.
    """

    def __init__(self, initial=RETRY_INITIAL, maximum=RETRY_MAX):
        self.initial = initial
        self.maximum = maximum
        self.delay = None
        self.retry_at = 0.0

    @property
    def ready(self):
        """True when the next attempt is due."""
        return time.monotonic() >= self.retry_at

    def failed(self):
        """Note a failure; return how long the next attempt waits."""
        self.delay = (self.initial if self.delay is None
                      else min(self.maximum, self.delay * 2))
        self.retry_at = time.monotonic() + self.delay.total_seconds()
        return self.delay

    def succeeded(self):
        """Note a success: the next failure waits :attr:`initial` again."""
        self.delay = None
        self.retry_at = 0.0


class Batch:
    """What one batch of changelog events has done so far: the packages
    and versions already made sure of (so each costs one database call per
    batch), the packages whose pages must be written, and those whose
    description must be fetched."""

    def __init__(self):
        self.packages = set()
        self.versions = set()
        self.touched = set()
        self.describe = {}


class CloudGazer(PauseableTask):
    """Follows PyPI.

    Queues:

    * ``web_queue``: PUSH, connects ``config.web_queue``
      (:data:`~piwheels.protocols.the_secretary`): pages to write (BOTH)
      and to remove (DELPKG, DELVER);
    * ``deletions_queue``: PUSH, connects ``config.deletions_queue``
      (:data:`~piwheels.protocols.slave_driver_deletions`): queued builds
      SlaveDriver must forget;
    * ``stats_queue``: PUSH, connects ``config.stats_queue``
      (:data:`~piwheels.protocols.big_brother`): STATPYPI, when PyPI was
      last read;
    * a :class:`~piwheels.master.the_oracle.DbClient` (REQ).

    While paused it does not read PyPI.
    """

    def __init__(self, config):
        super().__init__(config)
        self.pypi_json = config.pypi_json
        self.db = DbClient(config, self.logger)
        self.web_queue = self.socket(
            transport.PUSH, protocol=protocols.the_secretary.reversed())
        self.web_queue.hwm = 100000
        self.web_queue.connect(config.web_queue)
        self.deletions_queue = self.socket(
            transport.PUSH,
            protocol=protocols.slave_driver_deletions.reversed())
        self.deletions_queue.hwm = 100000
        self.deletions_queue.connect(config.deletions_queue)
        self.stats_queue = self.socket(
            transport.PUSH, protocol=protocols.big_brother.reversed())
        self.stats_queue.hwm = 10
        self.stats_queue.connect(config.stats_queue)
        self.backoff = Backoff()
        self.marked_before = None
        # the projects of --pypi-projects: canonical name -> the name given
        self.projects = {}
        self.etags = {}         # project -> ETag of its last answer
        self.seen = {}          # project -> versions in its last answer
        self.project_backoff = {}
        if config.pypi_projects:
            for name in config.pypi_projects:
                try:
                    self.projects[canonicalize(name)] = name
                except OutputError as exc:
                    self.logger.error('CloudGazer: --pypi-projects: %s; '
                                      'ignored', exc)
            self.events = None
            self.every(config.pypi_interval, self.read_projects)
        else:
            self.events = PyPIEvents(config.pypi_xmlrpc)
            self.every(config.pypi_interval, self.read_changelog)
        self.every(PURGE_INTERVAL, self.purge_deleted)

    def close(self):
        self.db.close()
        super().close()

    # -- talking to the other tasks -----------------------------------------

    def web(self, msg, data):
        """Ask TheSecretary for pages to be written or removed."""
        self.web_queue.send_msg(msg, data)

    def forget_builds(self, msg, data):
        """Tell SlaveDriver to drop the queued builds of a package or
        version."""
        self.deletions_queue.send_msg(msg, data)

    def read_pypi(self):
        """Tell BigBrother PyPI was read just now."""
        try:
            self.stats_queue.send_msg('STATPYPI', utcnow(), transport.NOBLOCK)
        except transport.Again:
            pass

    # -- the changelog -------------------------------------------------------

    def read_changelog(self):
        """Read the next batch of the changelog and write it (backing off
        when PyPI or the database fails); ask again at once while batches
        keep coming."""
        if not self.backoff.ready:
            return
        try:
            serial = self.db.get_pypi_serial()
            events, last_serial = self.events.since(serial)
            if last_serial > serial:
                self.apply_events(events)
                self.db.set_pypi_serial(last_serial)
        except (PyPIError, DatabaseError, TransportError) as exc:
            delay = self.backoff.failed()
            self.logger.warning('CloudGazer: %s; reading PyPI again in %ds',
                                exc, delay.total_seconds())
            return
        self.backoff.succeeded()
        if last_serial > serial:
            self.logger.info('CloudGazer: read %d events up to serial %d',
                             len(events), last_serial)
            self.read_pypi()
            self.force(self.read_changelog)

    def apply_events(self, events):
        """Write what *events* (:class:`~piwheels.pypi.Event`) say into the
        database, then fetch the descriptions of the projects created or
        released and ask for the pages of every project touched."""
        batch = Batch()
        for event in events:
            problem = event_problem(event)
            if problem is not None:
                self.logger.warning('CloudGazer: serial %d ignored: %s',
                                    event.serial, problem)
                continue
            canon = canonicalize(event.package)
            handler = getattr(self, 'on_' + event.action.replace('-', '_'))
            handler(batch, canon, event)
        for canon, name in batch.describe.items():
            self.update_description(canon, name)
        for canon in sorted(batch.touched):
            self.web('BOTH', canon)

    def ensure_package(self, batch, canon, name, when):
        """Make sure *canon* exists (and isn't marked for deletion: PyPI has
        it again), and record *name* as seen at *when*."""
        if canon in batch.packages:
            return
        if not self.db.add_new_package(canon):
            if self.db.package_marked_deleted(canon):
                self.db.skip_package(canon, '')
        self.db.add_package_name(canon, name, when)
        batch.packages.add(canon)

    def ensure_version(self, batch, canon, event):
        """Make sure the version of *event* exists; a new one waits for a
        source distribution (:data:`~piwheels.pypi.BINARY_ONLY`)."""
        self.ensure_package(batch, canon, event.package, event.timestamp)
        key = (canon, event.version)
        if key not in batch.versions:
            self.db.add_new_package_version(
                canon, event.version, event.timestamp, BINARY_ONLY)
            batch.versions.add(key)
        batch.touched.add(canon)

    def update_files(self, canon, version, has_source, has_pure_wheel):
        """Bring the automatic skip reason of *version* in line with what is
        known of its files on PyPI (None: no news of that kind)."""
        current = self.db.get_version_skip(canon, version)
        if current not in AUTOMATIC_SKIPS:
            # skipped by hand (or the whole package is): not ours to change
            return
        if has_pure_wheel is None:
            has_pure_wheel = current == PURE_WHEEL
        if has_source is None:
            has_source = current != BINARY_ONLY
        wanted = version_skip(has_source, has_pure_wheel)
        if wanted != current:
            self.db.skip_package_version(canon, version, wanted)

    def on_create(self, batch, canon, event):
        """A project was created."""
        self.ensure_package(batch, canon, event.package, event.timestamp)
        batch.describe[canon] = event.package
        batch.touched.add(canon)

    def on_release(self, batch, canon, event):
        """A release was made (its time is the event's)."""
        self.ensure_version(batch, canon, event)
        batch.describe[canon] = event.package

    def on_source(self, batch, canon, event):
        """A source distribution was added: the version can be built."""
        self.ensure_version(batch, canon, event)
        self.update_files(canon, event.version, True, None)

    def on_wheel(self, batch, canon, event):
        """A wheel was added: a pure-Python one means we don't build it."""
        self.ensure_version(batch, canon, event)
        if is_pure_wheel(event.detail):
            self.update_files(canon, event.version, None, True)

    def on_file(self, batch, canon, event):
        """Another kind of file (an egg, an installer) was added."""
        self.ensure_version(batch, canon, event)

    def on_remove_file(self, batch, canon, event):
        """A file was removed: what is left decides (asked of the JSON
        API)."""
        if not self.db.test_package_version(canon, event.version):
            return
        release = get_release_files(self.pypi_json, event.package,
                                    event.version)
        if release is not None:
            self.update_files(canon, event.version, release.has_source,
                              release.has_pure_wheel)
            batch.touched.add(canon)

    def on_remove_release(self, batch, canon, event):
        """A release was removed."""
        batch.versions.discard((canon, event.version))
        self.remove_version(canon, event.version)

    def on_remove_project(self, batch, canon, event):
        """A project was removed."""
        batch.packages.discard(canon)
        batch.versions = {key for key in batch.versions if key[0] != canon}
        batch.touched.discard(canon)
        batch.describe.pop(canon, None)
        self.remove_package(canon)

    def on_yank(self, batch, canon, event):
        """A release was yanked."""
        if self.db.test_package_version(canon, event.version):
            self.db.yank_version(canon, event.version)
            batch.touched.add(canon)

    def on_unyank(self, batch, canon, event):
        """A release was unyanked."""
        if self.db.test_package_version(canon, event.version):
            self.db.unyank_version(canon, event.version)
            batch.touched.add(canon)

    def on_rename(self, batch, canon, event):
        """The project was renamed from *event.detail*: the new name gets
        the old one's versions (built again under the new name) and the old
        name goes."""
        self.ensure_package(batch, canon, event.package, event.timestamp)
        batch.touched.add(canon)
        batch.describe[canon] = event.package
        try:
            old = canonicalize(event.detail)
        except OutputError:
            return
        if old == canon:
            # only the spelling changed; ensure_package recorded it
            return
        data = self.db.get_project_data(old)
        if data is None or data['skip'] == DELETED:
            return
        for version, release in data['releases'].items():
            self.db.add_new_package_version(
                canon, version, release['released'], release['skip'])
            if release['yanked']:
                self.db.yank_version(canon, version)
            batch.versions.add((canon, version))
        if data['skip']:
            self.db.skip_package(canon, data['skip'])
        self.on_remove_project(batch, old, event)

    def update_description(self, canon, name):
        """Set the description of *canon* to its PyPI summary (a failure to
        fetch it is logged and leaves the description as it was)."""
        try:
            summary = get_summary(self.pypi_json, name)
        except PyPIError as exc:
            self.logger.warning('CloudGazer: no description for %s: %s',
                                name, exc)
            return
        if summary is not None:
            self.db.set_package_description(canon, summary)

    # -- removals ------------------------------------------------------------

    def remove_version(self, canon, version):
        """Delete *version* of *canon*, its queued builds, files and
        pages."""
        if not self.db.test_package_version(canon, version):
            return
        self.db.delete_version(canon, version)
        self.forget_builds('DELVER', PackageVersion(canon, version))
        self.web('DELVER', PackageVersion(canon, version))
        self.logger.info('CloudGazer: removed %s %s', canon, version)

    def remove_package(self, canon):
        """Mark *canon* for deletion, drop its queued builds and its pages
        and files (:meth:`purge_deleted` deletes the rows later)."""
        if (not self.db.test_package(canon)
                or self.db.package_marked_deleted(canon)):
            return
        self.db.skip_package(canon, DELETED)
        self.forget_builds('DELPKG', canon)
        self.web('DELPKG', canon)
        self.logger.info('CloudGazer: removed %s', canon)

    def purge_deleted(self):
        """Delete the packages marked for deletion that the previous sweep
        found marked already (their pages and files have gone meanwhile).
        The first sweep after a start asks for their pages and files to be
        removed again, in case the master stopped before that happened."""
        try:
            marked = self.db.get_packages_deleted()
        except (DatabaseError, TransportError) as exc:
            self.logger.warning('CloudGazer: %s', exc)
            return
        if self.marked_before is None:
            for canon in sorted(marked):
                self.forget_builds('DELPKG', canon)
                self.web('DELPKG', canon)
        else:
            for canon in sorted(marked & self.marked_before):
                try:
                    self.db.delete_package(canon)
                except (DatabaseError, TransportError) as exc:
                    self.logger.warning('CloudGazer: %s', exc)
                else:
                    marked.discard(canon)
                    self.logger.info('CloudGazer: deleted %s', canon)
        self.marked_before = marked

    # -- a list of projects --------------------------------------------------

    def read_projects(self):
        """Read each project of ``--pypi-projects`` that is due, backing off
        separately for each one PyPI (or the database) fails on."""
        for canon, name in self.projects.items():
            backoff = self.project_backoff.setdefault(canon, Backoff())
            if not backoff.ready:
                continue
            try:
                self.follow_project(canon, name)
            except (PyPIError, DatabaseError, TransportError) as exc:
                delay = backoff.failed()
                self.logger.warning(
                    'CloudGazer: %s: %s; reading it again in %ds', name, exc,
                    delay.total_seconds())
            else:
                backoff.succeeded()

    def follow_project(self, canon, name):
        """Bring project *canon* in line with PyPI's JSON API."""
        project = get_project(self.pypi_json, name,
                              etag=self.etags.get(canon))
        if project is NOT_MODIFIED:
            return
        if project is None:
            if canon in self.seen:
                self.remove_package(canon)
                del self.seen[canon]
                self.etags.pop(canon, None)
            else:
                self.logger.warning('CloudGazer: PyPI has no project %s',
                                    name)
            return
        self.apply_project(canon, project)
        if project.etag:
            self.etags[canon] = project.etag
        self.read_pypi()

    def apply_project(self, canon, project):
        """Write *project* (a :class:`~piwheels.pypi.Project`) into the
        database and ask for its pages."""
        if not self.db.add_new_package(canon, '', project.summary):
            if self.db.package_marked_deleted(canon):
                self.db.skip_package(canon, '')
            self.db.set_package_description(canon, project.summary)
        if len(project.name) <= MAX_NAME:
            self.db.add_package_name(canon, project.name, utcnow())
        data = self.db.get_project_data(canon)
        known = data['releases'] if data is not None else {}
        for version, release in project.releases.items():
            if not 0 < len(version) <= MAX_NAME or '\x00' in version:
                continue
            current = known.get(version)
            if current is None:
                self.db.add_new_package_version(
                    canon, version, release.released, release.skip)
                if release.yanked:
                    self.db.yank_version(canon, version)
                continue
            if (current['skip'] in AUTOMATIC_SKIPS
                    and current['skip'] != release.skip):
                self.db.skip_package_version(canon, version, release.skip)
            if current['yanked'] != release.yanked:
                if release.yanked:
                    self.db.yank_version(canon, version)
                else:
                    self.db.unyank_version(canon, version)
        listed = set(project.releases)
        for version in sorted(self.seen.get(canon, set()) - listed):
            if version in known:
                self.remove_version(canon, version)
        self.seen[canon] = listed
        self.web('BOTH', canon)


def event_problem(event):
    """Return why *event* can't be written into the database, or None."""
    try:
        canonicalize(event.package)
    except OutputError as exc:
        return str(exc)
    if len(event.package) > MAX_NAME:
        return 'package name longer than {} characters'.format(MAX_NAME)
    if event.version is not None and (
            len(event.version) > MAX_NAME or '\x00' in event.version):
        return 'unusable version {!r}'.format(event.version[:50])
    return None
