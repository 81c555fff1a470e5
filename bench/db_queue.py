"""Benchmark of the database: build-queue refresh and get_project_data on a PyPI-sized database.

Starts a private PostgreSQL cluster in a temporary directory, initializes it
with piw-initdb's script and bulk-loads it in SQL (generate_series) with 500,000
packages, 2,000,000 versions and 3 ABIs (cp39, cp311, cp313), the most
downloaded half of the packages built (half of those as pure-Python wheels
serving every ABI, half as one wheel per ABI), 10% of the versions requiring
Python >= 3.10 and some builds failed. Then, connected as the master's
ordinary role through :class:`~piwheels.master.db.Database`, it times:

* ``get_build_queue(1000)``: the build-queue refresh TheArchitect runs
  (target: under 0.1 s);
* ``get_project_data`` of random packages (what each project page costs);
* ``log_build`` of one build, ``get_statistics`` and ``get_search_index``;
* re-queueing one ABI from scratch (what ``piw-initdb --add-abi`` costs).

Usage: ``python bench/db_queue.py [--packages N] [--versions-per-package N]``
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from piwheels.initdb import get_connection  # noqa: E402
from piwheels.master.db import Database  # noqa: E402
from piwheels.pgcluster import PrivateCluster  # noqa: E402
from piwheels.states import BuildState, FileState  # noqa: E402

from farmdb import create_piwheels_database  # noqa: E402


#: the synthetic data, in SQL; :packages and :versions are filled in
GENERATE = [
    # a bulk load: no triggers (nor foreign key checks) row by row; the
    # queue is computed once at the end, from its definition
    ('(triggers off for the bulk load)', "SET session_replication_role = replica"),
    ('ABIs', "INSERT INTO build_abis (abi_tag) VALUES ('cp39'), ('cp311'), ('cp313')"),
    ('packages', """
        INSERT INTO packages (package, description, downloads_recent, downloads_all)
        SELECT
            'package-' || i,
            'Synthetic package number ' || i,
            -- a long tail: a few packages have most of the downloads
            floor(2000000.0 / i)::INTEGER,
            floor(20000000.0 / i)::BIGINT
        FROM generate_series(1, {packages}) AS i
    """),
    ('versions', """
        INSERT INTO versions (package, version, released, requires_python)
        SELECT
            'package-' || i,
            v || '.0',
            TIMESTAMP WITH TIME ZONE '2015-01-01 00:00Z'
                + (i % 3000) * INTERVAL '1 day' + v * INTERVAL '30 days',
            CASE WHEN (i + v) % 10 = 0 THEN '>=3.10' ELSE '' END
        FROM generate_series(1, {packages}) AS i, generate_series(1, {versions}) AS v
    """),
    ('builds of pure-Python wheels (one per version)', """
        INSERT INTO builds (package, version, abi_tag, built_by, duration, status, attempt)
        SELECT package, version, 'cp311', 1, INTERVAL '90 seconds', true, 1
        FROM versions
        WHERE split_part(package, '-', 2)::INTEGER <= {packages} / 2
        AND split_part(package, '-', 2)::INTEGER % 2 = 0
    """),
    ('their files', """
        INSERT INTO files (filename, build_id, filesize, filehash, package_tag,
                           package_version_tag, py_version_tag, abi_tag, platform_tag)
        SELECT
            replace(b.package, '-', '_') || '-' || b.version || '-py3-none-any.whl',
            b.build_id, 20000, md5(b.package || b.version) || md5(b.version),
            replace(b.package, '-', '_'), b.version, 'py3', 'none', 'any'
        FROM builds b
    """),
    ('builds of platform wheels (one per version and ABI, 2% failed)', """
        INSERT INTO builds (package, version, abi_tag, built_by, duration, status,
                            failure, attempt)
        SELECT
            v.package, v.version, a.abi_tag, 2, INTERVAL '20 minutes',
            hashtext(v.package || v.version || a.abi_tag) % 50 <> 0,
            CASE WHEN hashtext(v.package || v.version || a.abi_tag) % 50 = 0
                THEN 'error' END,
            1
        FROM versions v
            CROSS JOIN build_abis a
        WHERE split_part(v.package, '-', 2)::INTEGER <= {packages} / 2
        AND split_part(v.package, '-', 2)::INTEGER % 2 = 1
        AND python_accepts_abi(v.requires_python, a.abi_tag)
    """),
    ('their files', """
        INSERT INTO files (filename, build_id, filesize, filehash, package_tag,
                           package_version_tag, py_version_tag, abi_tag, platform_tag)
        SELECT
            replace(b.package, '-', '_') || '-' || b.version || '-' || b.abi_tag
                || '-' || b.abi_tag || '-linux_armv7l.whl',
            b.build_id, 500000, md5(b.package || b.version || b.abi_tag)
                || md5(b.abi_tag), replace(b.package, '-', '_'), b.version,
            b.abi_tag, b.abi_tag, 'linux_armv7l'
        FROM builds b
        WHERE b.abi_tag IN ('cp39', 'cp311', 'cp313') AND b.built_by = 2 AND b.status
    """),
    ('their dependencies', """
        INSERT INTO dependencies (filename, tool, dependency)
        SELECT filename, 'apt', dep
        FROM files, unnest(ARRAY['libc6', 'libgcc-s1']) AS dep
        WHERE platform_tag = 'linux_armv7l'
    """),
    ('(triggers back on)', "SET session_replication_role = DEFAULT"),
    ('the build queue of every ABI', "SELECT queue_abis(ARRAY(SELECT abi_tag FROM build_abis))"),
    ('statistics for the planner', 'ANALYZE'),
]


def timed(function, *args, repeat=1):
    """Return the seconds each of *repeat* calls of *function* took, and
    the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return times, result


def summary(times):
    return 'median {:.4f} s, min {:.4f} s, max {:.4f} s ({} runs)'.format(
        statistics.median(times), min(times), max(times), len(times))


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--packages', type=int, default=500000)
    parser.add_argument('--versions-per-package', type=int, default=4)
    parser.add_argument('--runs', type=int, default=50)
    config = parser.parse_args(args)

    path = tempfile.mkdtemp(prefix='piwbench-db-')
    cluster = PrivateCluster(os.path.join(path, 'cluster')).start()
    try:
        user_dsn = create_piwheels_database(cluster, 'piwbench')
        conn = get_connection(cluster.dsn(database='piwbench'))
        print('Generating {:,} packages x {} versions, 3 ABIs:'.format(
            config.packages, config.versions_per_package))
        started = time.perf_counter()
        for what, sql in GENERATE:
            step = time.perf_counter()
            with conn.begin():
                # the DBAPI cursor: psycopg2 leaves the % of modulo alone
                # when given no parameters
                conn.connection.cursor().execute(sql.format(
                    packages=config.packages, versions=config.versions_per_package))
            print('  {:<60} {:7.1f} s'.format(what, time.perf_counter() - step))
        print('  {:<60} {:7.1f} s'.format('total', time.perf_counter() - started))
        with conn.begin():
            for table in ('packages', 'versions', 'builds', 'files', 'build_queue'):
                count = conn.exec_driver_sql(
                    'SELECT count(*) FROM {}'.format(table)).scalar()
                print('  {:<20} {:>12,} rows'.format(table, count))
            size = conn.exec_driver_sql(
                "SELECT pg_size_pretty(pg_database_size('piwbench'))").scalar()
            print('  {:<20} {:>12}'.format('database size', size))

        db = Database(user_dsn)
        try:
            print('Timings (as the master\'s ordinary role):')
            times, queue = timed(db.get_build_queue, 1000, repeat=config.runs)
            print('  get_build_queue(1000): {}; {} entries per ABI'.format(
                summary(times), ', '.join(
                    '{} {}'.format(abi, len(entries)) for abi, entries in queue.items())))
            packages = ['package-{}'.format(random.randint(1, config.packages))
                        for _ in range(config.runs)]
            times = [timed(db.get_project_data, package)[0][0] for package in packages]
            print('  get_project_data:      {}'.format(summary(times)))
            package, version = queue['cp311'][0]
            state = BuildState(
                3, package, version, 'cp311', True, timedelta(minutes=3), 'log',
                [FileState('{}-{}-cp311-cp311-linux_armv7l.whl'.format(
                    package.replace('-', '_'), version), 1000, 'f' * 64,
                    package.replace('-', '_'), version, 'cp311', 'cp311',
                    'linux_armv7l', None, {'apt': {'libc6'}})])
            times, _ = timed(db.log_build, state)
            print('  log_build:             {:.4f} s'.format(times[0]))
            times, _ = timed(db.get_statistics)
            print('  get_statistics:        {:.4f} s'.format(times[0]))
            times, index = timed(db.get_search_index)
            print('  get_search_index:      {:.4f} s ({:,} packages)'.format(
                times[0], len(index)))
        finally:
            db.close()
        step = time.perf_counter()
        with conn.begin():
            conn.exec_driver_sql("SELECT queue_abis(ARRAY['cp313'])")
        print('  re-queue one ABI from scratch (piw-initdb --add-abi): {:.1f} s'.format(
            time.perf_counter() - step))
        conn.close()
    finally:
        cluster.destroy()
        shutil.rmtree(path, ignore_errors=True)


if __name__ == '__main__':
    main()
