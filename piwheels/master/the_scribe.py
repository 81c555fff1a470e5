"""TheScribe: writes the web output, the index pip installs from and the
site people read.

Every page is rendered by :class:`~piwheels.master.pages.PageRenderer` and
placed with a :class:`~piwheels.master.output.FileBatch`, so that a page is
only replaced when its content changed and is never seen half-written.
"""

import gzip
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from multiprocessing.util import Finalize

from .. import protocols, transport
from ..exc import PiwheelsError
from ..tasks import PauseableTask
from .db import DELETED, Database
from .output import (
    UNREAD, OutputError, WebOutput, canonicalize, check_filename, extract_metadata,
    read_file, wheel_version, wheel_version_tag)
from .pages import PageRenderer, ProjectView, abi_key, human_size

#: where the static assets (CSS, JS, icon) are copied from
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')

#: the file that records the progress of a full rewrite (hidden, so that
#: the web server doesn't serve it)
REWRITE_STATE = '.rewrite-progress'

#: packages written per database query and file batch
BATCH_SIZE = 250

#: how long page and log requests gather before they are written together
#: (unless a batch is full sooner): each batch costs a database query and a
#: flush to disk, and builds finishing by the hundred a second each ask
GATHER_TIME = 0.5

#: how long a full rewrite waits after an error (e.g. the database is
#: down) before it carries on
REWRITE_RETRY = timedelta(seconds=30)

#: worker processes rendering the batches of a full rewrite: one per core
REWRITE_PROCESSES = max(1, min(4, os.cpu_count() or 1))

#: batches of a full rewrite given to the workers at once: while the
#: oldest is committed, the next keeps them busy
REWRITE_DEPTH = 2

#: the most URLs in one sitemap file (the sitemap protocol's limit)
SITEMAP_SIZE = 50000


def _utcnow():
    return datetime.now(timezone.utc)


def _age(timestamp, now):
    if timestamp is None:
        return None
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    return max(0, int((now - timestamp).total_seconds()))


class TheScribe(PauseableTask):
    """Writes the web output in :attr:`config.output_path`.

    Queues:

    * ``scribe_queue``: PULL, binds ``config.scribe_queue``, speaks
      :data:`piwheels.protocols.the_scribe`; TheSecretary sends the pages
      to write (HOME, SEARCH, PROJECT, BOTH, LOG, DELPKG, DELVER).

    It reads the pages' data through a database connection of its own
    (read-only queries): a full rewrite fetches the data of hundreds of
    packages per query, which would otherwise keep the oracles from
    everybody else.

    Requests that queue up while the scribe is busy are taken together: the
    data of all their packages is fetched in one query and their files are
    written as one :class:`~piwheels.master.output.FileBatch`. A full
    rewrite (PROJECT or BOTH for every package) proceeds in batches of
    :data:`BATCH_SIZE` packages between other requests, records its
    progress in the output directory after each batch, and resumes from
    there when the master restarts. The pages of a full rewrite are made by
    worker processes (one per core, see :data:`REWRITE_PROCESSES`): each
    fetches the data of its share of a batch with a database connection of
    its own, renders the pages and stages them; a thread of this task then
    commits the batch (one flush to disk for all of it) while the workers
    go on with the next.

    :param config: the master's configuration: ``dsn``, ``output_path``,
        ``site_url`` (used in the sitemap), ``scribe_queue`` and
        ``dev_mode`` (the root index is refreshed every 5 seconds rather
        than every minute)
    """
    name = 'master.the_scribe'

    #: rendering pages takes turns on the interpreter with the tasks that
    #: answer slaves: in a process of its own it doesn't; and as pages can
    #: wait where slaves can't, that process yields the processor to the
    #: master's
    own_process = True
    niceness = 10

    def __init__(self, config):
        super().__init__(config)
        self.writer = PageWriter(config.output_path, config.site_url, self.logger)
        self.output = self.writer.output
        self.renderer = self.writer.renderer
        self._workers = None
        self.db = None
        #: normalised names of the packages in the root index
        self.packages = set()
        self.root_stale = False
        #: the full rewrite under way: None or {'both': bool, 'after': name}
        self.rewrite = None
        self._rewrite_queue = []
        #: batches being rendered by the workers, oldest first: (the last
        #: package of the batch, the futures of its parts)
        self._rendering = deque()
        self._rewrite_resume = 0.0
        self._commit = None
        self._committer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix='scribe-commit')
        #: gathered requests: package -> whether BOTH, and build logs; since
        #: when (monotonic), or None
        self._packages = OrderedDict()
        self._logs = []
        self._gathered_at = None
        scribe_queue = self.socket(transport.PULL, protocol=protocols.the_scribe)
        scribe_queue.hwm = 100
        scribe_queue.bind(config.scribe_queue)
        self.register(scribe_queue, self.handle_index)
        interval = timedelta(seconds=5 if config.dev_mode else 60)
        self.every(interval, self.write_root_index)
        self.every(timedelta(seconds=GATHER_TIME / 5), self.write_gathered)

    def once(self):
        self.db = Database(self.config.dsn)
        self.setup_output_path()
        # the search index lists every package but those being deleted
        self.packages = set(self._valid_names(self.db.get_search_index()))
        self.root_stale = True
        self.write_root_index()
        self.load_rewrite()

    def close(self):
        if self.db is not None:
            self.write_gathered(force=True)
        super().close()
        self._abandon_rendering()
        try:
            self.finish_commit()
        except (PiwheelsError, OSError) as exc:
            self.logger.error('%s: the last batch of the rewrite failed: %s',
                              self.name, exc)
        self._committer.shutdown(wait=True)
        self._stop_workers()
        if self.db is not None:
            self.db.close()
            self.db = None

    def _rewriting(self):
        return self.rewrite is not None and time.monotonic() >= self._rewrite_resume

    def poll(self, timeout=1):
        # while a full rewrite is under way, don't wait for messages between
        # its batches
        super().poll(0 if self._rewriting() and not self.paused else timeout)

    def loop(self):
        if self._rewriting():
            try:
                self.continue_rewrite()
            except (PiwheelsError, OSError) as exc:
                self.handler_errors += 1
                self.logger.error('%s: full rewrite interrupted, retrying in %ds: %s',
                                  self.name, REWRITE_RETRY.total_seconds(), exc)
                self._abandon_rendering()
                self._rewrite_resume = time.monotonic() + REWRITE_RETRY.total_seconds()

    def handle_index(self, queue):
        """Handle the requests waiting on *queue* (at most
        :data:`BATCH_SIZE`): PROJECT and BOTH requests for a package, and
        LOG requests, gather for up to :data:`GATHER_TIME` (see
        :meth:`write_gathered`); every other request is carried out in its
        turn, after those gathered before it. A request that fails is logged
        and the others carry on."""
        # the batches of a full rewrite being rendered and committed may be
        # older than these requests: let them land first
        self._carry_out(self.settle_rewrite)
        for msg, data in self.waiting(queue, BATCH_SIZE):
            if msg in ('PROJECT', 'BOTH') and data is not None:
                self._packages[data] = (self._packages.get(data, False)
                                        or msg == 'BOTH')
            elif msg == 'LOG':
                self._logs.append(data)
            else:
                self.write_gathered(force=True)
                self._carry_out(self._handle_other, msg, data)
                continue
            if self._gathered_at is None:
                self._gathered_at = time.monotonic()
        self.write_gathered(force=len(self._packages) >= BATCH_SIZE
                            or len(self._logs) >= BATCH_SIZE)

    def write_gathered(self, force=False):
        """Write the gathered logs and the pages of the gathered packages,
        each in one batch, once the first has waited :data:`GATHER_TIME`
        (at once if *force*)."""
        if self._gathered_at is None or not force and (
                time.monotonic() - self._gathered_at < GATHER_TIME):
            return
        logs, self._logs = self._logs, []
        packages, self._packages = self._packages, OrderedDict()
        self._gathered_at = None
        self._carry_out(self.write_logs, logs)
        self._carry_out(self.write_packages, packages)

    def _carry_out(self, method, *args):
        try:
            method(*args)
        except (PiwheelsError, OSError) as exc:
            self.handler_errors += 1
            self.logger.error('%s: %s failed: %s', self.name, method.__name__, exc)

    def _handle_other(self, msg, data):
        if msg in ('PROJECT', 'BOTH'):
            self.start_rewrite(both=msg == 'BOTH')
        elif msg == 'HOME':
            self.write_homepage(data)
        elif msg == 'SEARCH':
            self.write_search_index(data)
        elif msg == 'DELPKG':
            self.delete_package(data)
        elif msg == 'DELVER':
            self.delete_version(data.package, data.version)

    def setup_output_path(self):
        """Make the output directory's skeleton and copy the static
        resources, the FAQ and the 404 page into it."""
        for area in ('simple', 'project', 'logs', 'static'):
            self.output.make_dir(self.output.path(area))
        with self.output.batch() as batch:
            for name in sorted(os.listdir(STATIC)):
                with open(os.path.join(STATIC, name), 'rb') as f:
                    content = f.read()
                batch.write(self.output.path('static', name), content)
                if name == 'favicon.ico':
                    # where browsers look for it without being told
                    batch.write(self.output.path(name), content)
            batch.write(self.output.path('faq.html'), self.renderer.faq())
            batch.write(self.output.path('404.html'), self.renderer.not_found())

    def write_homepage(self, statistics):
        """Write the home page and ``status.json`` from BigBrother's
        *statistics* (a :class:`~piwheels.protocols.MasterStats`)."""
        stats = statistics
        builds_hour = sum(stats.builds_last_hour.values())
        shown = [
            ('packages with wheels', '{:,}'.format(stats.packages_built)),
            ('wheels', '{:,}'.format(stats.files_count)),
            ('builds in the last hour', '{:,}'.format(builds_hour)),
            ('new versions in the last hour', '{:,}'.format(stats.new_last_hour)),
            ('downloads in the last 30 days', '{:,}'.format(stats.downloads_last_month)),
            ('downloads ever', '{:,}'.format(stats.downloads_all)),
            ('time spent building', _duration(stats.builds_time)),
            ('size of all wheels', human_size(stats.builds_size)),
        ]
        pending = sorted(stats.builds_pending.items(), key=lambda item: abi_key(item[0]))
        with self.output.batch() as batch:
            batch.write(self.output.path('index.html'),
                        self.renderer.home(shown, pending, stats.timestamp))
            batch.write(self.output.path('status.json'),
                        self.renderer.status(self.status(stats)))

    def status(self, stats):
        """The content of ``status.json`` for monitoring systems, from
        BigBrother's *stats*."""
        now = _utcnow()
        return {
            'updated': stats.timestamp.astimezone(timezone.utc).isoformat(),
            'build_queue': dict(stats.builds_pending),
            'builds_last_hour': dict(stats.builds_last_hour),
            'slaves': dict(stats.slaves),
            'last_pypi_event_age': _age(stats.last_pypi_event, now),
            'last_build_age': _age(stats.last_build, now),
            'disk_free': stats.disk_free,
            'disk_size': stats.disk_size,
        }

    def write_search_index(self, search_index):
        """Write ``packages.json`` from *search_index* (package ->
        (downloads last 30 days, all downloads))."""
        downloads = {}
        for package, counts in search_index.items():
            try:
                downloads[canonicalize(package)] = counts
            except OutputError as exc:
                self.logger.warning('%s: search index: %s', self.name, exc)
        with self.output.batch() as batch:
            batch.write(self.output.path('packages.json'),
                        self.renderer.search_index(downloads))

    def write_logs(self, logs):
        """Write the build logs *logs* (:class:`~piwheels.protocols.BuildLog`),
        gzip-compressed, to ``logs/`` (each build id split into three
        directory levels), in one batch: SlaveDriver sends one for every
        build, and a batch each cost a flush to disk each."""
        if logs:
            with self.output.batch() as batch:
                for log in logs:
                    batch.write(self.output.log_path(log.build_id), gzip.compress(
                        log.output.encode('utf-8', 'replace'), mtime=0))

    def write_root_index(self):
        """Write the root of the simple index (and the sitemap) if the set
        of packages changed since it was last written."""
        if not self.root_stale:
            return
        self.root_stale = False
        html, data = self.renderer.simple_root(self.packages)
        with self.output.batch() as batch:
            batch.write(self.output.path('simple', 'index.html'), html)
            batch.write(self.output.path('simple', 'index.json'), data)
            self.write_sitemap(batch)

    def write_sitemap(self, batch):
        """Stage the sitemap (an index, ``sitemap.xml``, of sitemaps of at
        most :data:`SITEMAP_SIZE` pages in ``sitemap/``) in *batch*."""
        paths = ['/', '/faq.html'] + [
            '/project/{}/'.format(package) for package in sorted(self.packages)]
        sitemaps = []
        for number, start in enumerate(range(0, len(paths), SITEMAP_SIZE)):
            name = '{}.xml'.format(number)
            batch.write(self.output.path('sitemap', name),
                        self.renderer.sitemap(paths[start:start + SITEMAP_SIZE]))
            sitemaps.append('/sitemap/' + name)
        batch.write(self.output.path('sitemap.xml'),
                    self.renderer.sitemap_index(sitemaps))

    def write_packages(self, requests):
        """Write the pages of several packages in one batch.

        :param dict requests: package -> :data:`True` to write its simple
            index as well as its project page and JSON
        """
        if requests:
            with self.output.batch() as batch:
                self.stage_packages(
                    batch, requests, self.db.get_project_data_many(requests))

    def stage_packages(self, batch, requests, data, *, tidy=True):
        """Stage the pages of several packages in *batch* (see
        :meth:`PageWriter.stage_packages`)."""
        self.add_packages(self.writer.stage_packages(batch, requests, data, tidy=tidy))

    def add_packages(self, names):
        """Note that the packages *names* have pages (for the root index)."""
        for canon in names:
            if canon not in self.packages:
                self.packages.add(canon)
                self.root_stale = True

    def write_pages(self, package, *, both=False, exclude=None):
        """(Re)write the project page and project JSON (and the simple index
        if *both*) of *package*, leaving out the versions in *exclude*."""
        data = self.db.get_project_data(package)
        if data is None:
            raise OutputError('no package {!r} to write'.format(package))
        with self.output.batch() as batch:
            self.add_packages(self.writer.stage_pages(
                batch, package, data, both=both, exclude=exclude))

    def _valid_names(self, packages):
        for package in packages:
            try:
                yield canonicalize(package)
            except OutputError as exc:
                self.logger.warning('%s: %s', self.name, exc)

    def delete_package(self, package):
        """Remove the index and project directories of *package* (with its
        wheels) and the links of its other names."""
        canon = canonicalize(package)
        for alias in self.db.get_package_aliases(package):
            for area in ('simple', 'project'):
                try:
                    self.output.remove_alias(area, alias, canon)
                except OutputError as exc:
                    self.logger.error('%s: %s', self.name, exc)
        self.output.remove(self.output.path('simple', canon))
        self.output.remove(self.output.path('project', canon))
        if canon in self.packages:
            self.packages.discard(canon)
            self.root_stale = True
        self.logger.info('%s: removed package %s', self.name, canon)

    def delete_version(self, package, version):
        """Remove the wheels (and metadata files) of *version* of *package*
        and rewrite its pages without that version."""
        canon = canonicalize(package)
        tag = wheel_version_tag(version)
        for filename in self.output.wheel_files(canon):
            if wheel_version(filename) == tag:
                wheel = self.output.path('simple', canon, filename)
                self.output.remove(wheel + '.metadata')
                self.output.remove(wheel)
        self.logger.info('%s: removed files of %s %s', self.name, canon, version)
        if self.db.get_project_data(package) is not None:
            self.write_pages(package, both=True, exclude={version})

    # -- full rewrites -------------------------------------------------------

    def start_rewrite(self, both):
        """Start a rewrite of every package's pages (the simple index too if
        *both*); a rewrite already under way starts over."""
        self._abandon_rendering()
        self.finish_commit()
        self.rewrite = {'both': both, 'after': ''}
        self._rewrite_queue = []
        self.save_rewrite()
        self.logger.info('%s: rewriting the pages of every package', self.name)

    def load_rewrite(self):
        """Resume the full rewrite recorded in the output directory, if any."""
        try:
            with open(self.output.path(REWRITE_STATE), 'rb') as f:
                state = json.loads(f.read().decode('utf-8'))
            self.rewrite = {'both': bool(state['both']), 'after': str(state['after'])}
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            self.logger.error('%s: ignoring unreadable %s: %s',
                              self.name, REWRITE_STATE, exc)
            self.output.remove(self.output.path(REWRITE_STATE))
            return
        self.logger.info('%s: resuming the full rewrite after %r',
                         self.name, self.rewrite['after'])

    def save_rewrite(self):
        """Record the progress of the full rewrite (or its end)."""
        path = self.output.path(REWRITE_STATE)
        if self.rewrite is None:
            self.output.remove(path)
        else:
            with self.output.batch() as batch:
                batch.write(path, json.dumps(self.rewrite).encode('utf-8'))

    def continue_rewrite(self):
        """Carry the full rewrite one batch further: wait for the oldest
        batch the workers render and have it committed in the committer's
        thread (which records the progress after it), while the workers go
        on with the next batches (up to :data:`REWRITE_DEPTH`)."""
        self._fill_rendering()
        if self._rendering:
            self._commit_rendered()
            self._fill_rendering()
            return
        self.finish_commit()
        self._stop_workers()
        self.logger.info('%s: full rewrite finished', self.name)
        self.rewrite = None
        self.save_rewrite()

    def settle_rewrite(self):
        """Commit the batches of the full rewrite being rendered (their data
        may be older than a request about to be written) and wait until they
        are in place."""
        try:
            while self._rendering:
                self._commit_rendered()
            self.finish_commit()
        except BaseException:
            self._abandon_rendering()
            raise

    def _fill_rendering(self):
        while self.rewrite is not None and len(self._rendering) < REWRITE_DEPTH:
            batch = self._next_rewrite_batch()
            if not batch:
                return
            pool = self.worker_pool()
            parts = (batch[n::REWRITE_PROCESSES] for n in range(REWRITE_PROCESSES))
            self._rendering.append((batch[-1], [
                pool.submit(_write_in_worker, part, self.rewrite['both'])
                for part in parts if part]))

    def _commit_rendered(self):
        """Wait for the oldest batch being rendered and hand its files to
        the committer's thread."""
        after, futures = self._rendering[0]
        try:
            results = [future.result() for future in futures]
            self.finish_commit()
        except BaseException:
            self._abandon_rendering()
            raise
        self._rendering.popleft()
        files = self.output.batch()
        written = []
        for staged, names, problems in results:
            files.attach(*staged)
            written.extend(names)
            for level, message in problems:
                self.logger.log(level, '%s: %s', self.name, message)
        progress = {'both': self.rewrite['both'], 'after': after}
        self._commit = (
            self._committer.submit(self._commit_rewrite, files, written, progress),
            after)

    def _abandon_rendering(self):
        """Drop the batches being rendered (their staged files and the
        directories made for them are removed); the rewrite carries on
        after the last batch committed."""
        rendering, self._rendering = self._rendering, deque()
        self._rewrite_queue = []
        for _, futures in rendering:
            for future in futures:
                try:
                    staged = future.result()[0]
                except Exception:  # pylint: disable=broad-except
                    # the worker discarded its own files
                    continue
                files = self.output.batch()
                files.attach(*staged)
                files.discard()
        if rendering:
            # a worker may have died: start afresh
            self._stop_workers()

    def worker_pool(self):
        """The worker processes that render the batches of a full rewrite
        (started when first needed)."""
        if self._workers is None:
            self._workers = ProcessPoolExecutor(
                max_workers=REWRITE_PROCESSES,
                mp_context=multiprocessing.get_context('spawn'),
                initializer=_start_worker,
                initargs=(self.config.output_path, self.config.site_url, self.config.dsn))
        return self._workers

    def _stop_workers(self):
        if self._workers is not None:
            self._workers.shutdown(wait=True)
            self._workers = None

    def _commit_rewrite(self, files, written, progress):
        # in the committer's thread: nothing else uses *files*, and the
        # progress file is only written here while a commit is under way
        try:
            files.commit()
        except BaseException:
            files.discard()
            raise
        with self.output.batch() as batch:
            batch.write(self.output.path(REWRITE_STATE), json.dumps(progress).encode('utf-8'))
        return written

    def finish_commit(self):
        """Wait until the batch being committed in the background (if any)
        is in place, and count it as written; raises the error that stopped
        it (the batch is then written again)."""
        commit, self._commit = self._commit, None
        if commit is not None:
            future, after = commit
            try:
                written = future.result()
            except BaseException:
                # carry on from the last batch in place
                self._rewrite_queue = []
                raise
            self.rewrite['after'] = after
            self.add_packages(written)

    def _next_rewrite_batch(self):
        if not self._rewrite_queue and not self._rendering:
            self.finish_commit()
            # packages added while the rewrite went on come after the last
            # one written, so they are caught by this query too
            self._rewrite_queue = sorted(
                (package for package in self.db.get_all_packages()
                 if package > self.rewrite['after']), reverse=True)
        batch = self._rewrite_queue[-1:-BATCH_SIZE - 1:-1]
        if batch:
            del self._rewrite_queue[-len(batch):]
        return batch


class PageWriter:
    """Renders the pages of packages and stages them in a
    :class:`~piwheels.master.output.FileBatch`; used by TheScribe, and by
    the worker processes of its full rewrites.

    :param str output_path: the output directory
    :param str site_url: the site's public address (for the sitemap)
    :param logging.Logger logger: where problems with single packages go
    """

    def __init__(self, output_path, site_url, logger):
        self.output = WebOutput(output_path)
        self.renderer = PageRenderer(site_url)
        self.logger = logger

    def stage_packages(self, batch, requests, data, *, tidy=True):
        """Stage the pages of several packages in *batch*.

        :param dict requests: package -> :data:`True` to write its simple
            index as well as its project page and JSON
        :param dict data: the packages' data (see
            :meth:`~piwheels.master.db.Database.get_project_data_many`)
        :param bool tidy: look for ``.metadata`` files whose wheel is gone
        :returns: the normalised names of the packages given pages
        """
        written = []
        for package, both in requests.items():
            try:
                project = data.get(package)
                if project is None:
                    self.logger.warning('no package %s to write', package)
                    continue
                canon = self.stage_pages(batch, package, project, both=both, tidy=tidy)
            except OutputError as exc:
                self.logger.error('%s', exc)
            else:
                if canon is not None:
                    written.append(canon)
        return written

    def stage_pages(self, batch, package, data, *, both, exclude=None, tidy=True):
        """Stage the pages of *package* from its *data* (as returned by
        :meth:`Database.get_project_data`) in *batch*. A package marked for
        deletion gets no pages (its DELPKG removes them). Returns the
        package's normalised name, or :data:`None` if it got no pages."""
        canon = canonicalize(package)
        if data['skip'] == DELETED:
            self.logger.info('%s is being deleted; pages not written', canon)
            return None
        if both:
            index_json = self.output.path('simple', canon, 'index.json')
            previous = read_file(index_json)
            metadata = self.stage_metadata(batch, canon, data, _known_metadata(previous), tidy)
        else:
            metadata = {}
        project = ProjectView(data, metadata, exclude or ())
        if both:
            self.write_package_index(batch, project, previous)
        self.write_project_page(batch, project)
        self.write_project_json(batch, project)
        for alias in project.aliases:
            for area in ('simple', 'project'):
                self.output.link_alias(area, alias, canon)
        return canon

    def stage_metadata(self, batch, canon, data, known, tidy=True):
        """Return file name -> SHA256 of its ``.metadata`` file for every
        wheel of *data* that is in the output.

        :param dict known: file name -> (SHA256 of the wheel, SHA256 of its
            metadata) as the package's last index said; the hash is used
            again, without reading the file, while the wheel's hash is
            the same and its metadata file is there. A missing metadata file,
            or one of a wheel since replaced, is extracted from the wheel's
            METADATA and staged in *batch*.
        :param bool tidy: remove the metadata files whose wheel is gone
        """
        result = {}
        directory = self.output.path('simple', canon)
        # one read of the directory rather than a look at each file
        present = _plain_files(directory)
        for release in data['releases'].values():
            for filename, info in release['files'].items():
                try:
                    wheel = os.path.join(directory, check_filename(filename))
                except OutputError as exc:
                    self.logger.error('%s', exc)
                    continue
                wheel_hash, metadata_hash = known.get(filename, (None, None))
                replaced = wheel_hash is not None and wheel_hash != info['hash']
                if not replaced and metadata_hash and filename + '.metadata' in present:
                    result[filename] = metadata_hash
                    continue
                metadata = None if replaced else read_file(wheel + '.metadata')
                if metadata is None:
                    metadata = extract_metadata(wheel)
                    if metadata is None:
                        continue
                    batch.write(wheel + '.metadata', metadata)
                result[filename] = hashlib.sha256(metadata).hexdigest()
        if tidy:
            for name in present:
                if name.endswith('.whl.metadata') and name[:-len('.metadata')] not in present:
                    self.output.remove(os.path.join(directory, name))
        return result

    def write_package_index(self, batch, project, previous_json=UNREAD):
        """Stage the simple index of *project* (a
        :class:`~piwheels.master.pages.ProjectView`), HTML and JSON;
        *previous_json* is the JSON index in place if it was read already
        (:data:`None` if there is none)."""
        html, data = self.renderer.simple_package(project)
        batch.write(self.output.path('simple', project.name, 'index.html'), html)
        batch.write(self.output.path('simple', project.name, 'index.json'), data,
                    current=previous_json)

    def write_project_page(self, batch, project):
        """Stage the project page of *project*."""
        batch.write(self.output.path('project', project.name, 'index.html'),
                    self.renderer.project_page(project))

    def write_project_json(self, batch, project):
        """Stage the project JSON of *project*."""
        batch.write(self.output.path('project', project.name, 'json', 'index.json'),
                    self.renderer.project_json(project))


class _Problems(logging.Handler):
    """Collects what a worker process logs, for its parent to log."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append((record.levelno, record.getMessage()))


#: the page writer and the database connection of a worker process
_worker = {}


def _start_worker(output_path, site_url, dsn):
    """Prepare a worker process of full rewrites: its page writer, whose
    problems are collected for the parent to log, and what
    :func:`_write_in_worker` connects to."""
    logger = logging.getLogger('piwheels.tasks.master.the_scribe.worker')
    logger.propagate = False
    logger.addHandler(_Problems())
    _worker['writer'] = PageWriter(output_path, site_url, logger)
    _worker['dsn'] = dsn


def _write_in_worker(packages, both):
    """Fetch the data of *packages*, render their pages (the simple indexes
    too if *both*) and stage them, in a worker process of a full rewrite;
    return what :meth:`~piwheels.master.output.FileBatch.detach` gives, the
    names given pages, and the problems met as (level, message) pairs."""
    if 'db' not in _worker:
        # connected here rather than when the worker starts, so that a
        # database that is down fails this batch, not the worker
        db = Database(_worker['dsn'])
        Finalize(db, db.close, exitpriority=10)
        _worker['db'] = db
    writer = _worker['writer']
    problems = writer.logger.handlers[0]
    problems.records = []
    data = _worker['db'].get_project_data_many(packages)
    batch = writer.output.batch()
    try:
        written = writer.stage_packages(
            batch, OrderedDict((package, both) for package in packages), data, tidy=False)
    except BaseException:
        batch.discard()
        raise
    return batch.detach(), written, problems.records


def _plain_files(directory):
    """Return the names of the plain files in *directory* (none if it is
    missing)."""
    try:
        with os.scandir(directory) as entries:
            return {entry.name for entry in entries if entry.is_file(follow_symlinks=False)}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _known_metadata(index_json):
    """Return file name -> (wheel SHA256, metadata SHA256 or None) from the
    bytes of a package's JSON index (or :data:`None`)."""
    if index_json is None:
        return {}
    try:
        return {
            entry['filename']: (entry['hashes']['sha256'],
                                (entry.get('core-metadata') or {}).get('sha256'))
            for entry in json.loads(index_json.decode('utf-8'))['files']
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _duration(delta):
    days = delta.days
    hours = delta.seconds // 3600
    if days:
        return '{:,}d {}h'.format(days, hours)
    return '{}h {}m'.format(hours, delta.seconds // 60 % 60)
