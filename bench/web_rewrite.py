"""Benchmark: how fast TheScribe rewrites the whole web site.

Starts a private PostgreSQL cluster, creates the piwheels database with
piw-initdb, fills it with a synthetic farm (by default 20,000 packages of 1
to 8 versions each, built for two ABIs, a fifth of the builds failed, every
tenth package with another spelling of its name, a third of the wheels with
apt dependencies), puts the wheels (empty stand-ins) and their
``.metadata`` files in the output as they are once the wheels landed, and
then times a full rewrite (what
``piw-rebuild index`` asks for): every package's simple index (HTML and
JSON), project page and project JSON, in the scribe's own batches.

It prints the rate of three rewrites: the first into an output without
pages, a second after a change of the data shown on every page (so every
page is written again), and a third over the unchanged output (which
compares every page and writes none), with the CPU time per package of the
scribe and of its database server.

Run: ``.venv/bin/python bench/web_rewrite.py [--packages N] [--keep DIR]``
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from piwheels import initdb  # noqa: E402
from piwheels.master import PiWheelsMaster  # noqa: E402
from piwheels.master.the_scribe import TheScribe  # noqa: E402
from piwheels.pgcluster import PrivateCluster  # noqa: E402

USER = 'piwheels'
PASSWORD = 'piwheels'
ABIS = ('cp311', 'cp313')

POPULATE = """
INSERT INTO packages (package, description, downloads_recent, downloads_all)
SELECT 'package' || i, 'Synthetic package number ' || i || ' <for> "benchmarks"',
       (i * 7919) % 1000, (i * 104729) % 100000
FROM generate_series(1, {n}) AS i;

INSERT INTO package_names (package, name, seen)
SELECT 'package' || i, 'Package_' || i, CURRENT_TIMESTAMP
FROM generate_series(10, {n}, 10) AS i;

INSERT INTO versions (package, version, released, requires_python)
SELECT 'package' || i, '1.' || v, CURRENT_TIMESTAMP - (v || ' days')::INTERVAL, '>=3.9'
FROM generate_series(1, {n}) AS i, generate_series(0, i % 8) AS v;

INSERT INTO builds (package, version, abi_tag, built_by, duration, status, failure, attempt)
SELECT v.package, v.version, a.abi, 1, INTERVAL '93 seconds',
       (hashtext(v.package || v.version || a.abi) % 5) <> 0,
       CASE WHEN (hashtext(v.package || v.version || a.abi) % 5) <> 0 THEN NULL ELSE 'error' END,
       1
FROM versions v CROSS JOIN (VALUES {abis}) AS a(abi);

INSERT INTO files (filename, build_id, filesize, filehash, package_tag,
                   package_version_tag, py_version_tag, abi_tag, platform_tag,
                   requires_python)
SELECT b.package || '-' || b.version || '-' || b.abi_tag || '-' || b.abi_tag || '-linux_armv7l.whl',
       b.build_id, 100000 + b.build_id % 50000, md5(b.package || b.version) || md5(b.abi_tag || b.version),
       b.package, b.version, b.abi_tag, b.abi_tag, 'linux_armv7l', '>=3.9'
FROM builds b WHERE b.status;

INSERT INTO dependencies (filename, tool, dependency)
SELECT f.filename, 'apt', d.dependency
FROM files f CROSS JOIN (VALUES ('libc6'), ('libssl3')) AS d(dependency)
WHERE f.build_id % 3 = 0;
"""


#: a change of the data every page shows (as a fix in the database, or
#: new templates after an upgrade, would make)
CHANGE_EVERY_PAGE = """
UPDATE packages SET description = description || ' (revised)';
UPDATE files SET requires_python = '>=3.9.0';
"""


def setup_database(cluster, packages):
    """Create the benchmark's database with *packages* synthetic packages;
    return the ordinary user's DSN."""
    cluster.psql("CREATE ROLE {} LOGIN PASSWORD '{}'".format(USER, PASSWORD))
    cluster.psql('CREATE DATABASE piwbench')
    super_dsn = cluster.dsn(database='piwbench')
    args = ['--dsn', super_dsn, '--user', USER, '--yes', '-q']
    for abi in ABIS:
        args += ['--add-abi', abi]
    if initdb.main(args) != 0:
        raise RuntimeError('piw-initdb failed')
    cluster.psql(POPULATE.format(
        n=packages, abis=', '.join("('{}')".format(abi) for abi in ABIS)),
        database='piwbench')
    cluster.psql('ANALYZE', database='piwbench')
    return cluster.dsn(user=USER, password=PASSWORD, database='piwbench')


def place_wheels(scribe):
    """Put every wheel of the database (an empty stand-in: the scribe never
    reads a wheel whose metadata is extracted) with its ``.metadata`` file
    in the output, as FileJuggler and an earlier rewrite leave them; return
    how many."""
    count = 0
    for package in scribe.db.get_all_packages():
        for filename in scribe.db.get_package_files(package):
            path = scribe.output.wheel_path(package, filename)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb'):
                pass
            with open(path + '.metadata', 'wb') as f:
                f.write('Metadata-Version: 2.1\nName: {}\n'.format(package).encode('ascii'))
            count += 1
    return count


def backend_cpu(cluster):
    """Return the CPU seconds used so far by the database server: its
    processes serving the benchmark's database, and those that ended (the
    postmaster's children, once it has reaped them: the rewrite's worker
    processes connect and leave)."""
    pids = cluster.psql(
        "SELECT pid FROM pg_stat_activity WHERE datname = 'piwbench' "
        "AND pid <> pg_backend_pid()", database='piwbench').split()
    with open(os.path.join(cluster.data, 'postmaster.pid')) as f:
        postmaster = f.readline().strip()
    total = 0
    ticks = os.sysconf('SC_CLK_TCK')
    for pid in pids + [postmaster]:
        try:
            with open('/proc/{}/stat'.format(pid)) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except FileNotFoundError:
            continue
        # utime and stime; for the postmaster also cutime and cstime
        used = fields[11:13] if pid != postmaster else fields[13:15]
        total += sum(int(field) for field in used) / ticks
    return total


def full_rewrite(scribe, cluster):
    """Run a full rewrite to its end; return (wall seconds, user and system
    CPU seconds of the scribe with its worker processes, CPU seconds of the
    database server)."""
    db_before = backend_cpu(cluster)
    times_before = os.times()
    start = time.perf_counter()
    scribe.start_rewrite(both=True)
    while scribe.rewrite:
        scribe.continue_rewrite()
    wall = time.perf_counter() - start
    times = os.times()
    # the worker processes' time is counted in children_* once they have
    # ended, which they do at the end of the rewrite
    return (wall,
            times.user + times.children_user
            - times_before.user - times_before.children_user,
            times.system + times.children_system
            - times_before.system - times_before.children_system,
            backend_cpu(cluster) - db_before)


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--packages', type=int, default=20000,
                        help='synthetic packages in the database (default: 20000)')
    parser.add_argument('--keep', metavar='DIR',
                        help='work in DIR and leave it behind; a database left '
                        'there by an earlier run is used again (default: a '
                        'temporary directory, removed)')
    config = parser.parse_args(args)
    # /var/tmp rather than /tmp: the output belongs on a disk like the one
    # under /var/www, and /tmp may be a RAM disk (or, on shared machines, a
    # directory with millions of entries)
    work = config.keep or tempfile.mkdtemp(
        prefix='piwbench-', dir=os.environ.get('TMPDIR', '/var/tmp'))
    os.makedirs(work, exist_ok=True)
    reuse = os.path.isdir(os.path.join(work, 'cluster'))
    cluster = PrivateCluster(os.path.join(work, 'cluster')).start()
    try:
        started = time.perf_counter()
        if reuse:
            dsn = cluster.dsn(user=USER, password=PASSWORD, database='piwbench')
        else:
            dsn = setup_database(cluster, config.packages)
            print('database of {:,} packages made in {:.1f}s'.format(
                config.packages, time.perf_counter() - started))
        # a new directory each run: removing the last one's files right
        # before would leave the file system busy during the measurement
        output = tempfile.mkdtemp(prefix='www-', dir=work)
        scribe = TheScribe(PiWheelsMaster().parse_args([
            '-c', os.devnull, '--dsn', dsn, '--output-path', output,
            '--site-url', 'https://example.org']))
        try:
            scribe.once()
            print('{:,} wheels with their .metadata files placed'.format(place_wheels(scribe)))
            os.sync()  # they landed long before the rewrite
            packages = len(scribe.packages)
            for label in ('into an empty output', 'after every page changed',
                          'over the unchanged output'):
                if label == 'after every page changed':
                    cluster.psql(CHANGE_EVERY_PAGE, database='piwbench')
                print('load average before: {:.1f}'.format(os.getloadavg()[0]))
                wall, user, system, db_cpu = full_rewrite(scribe, cluster)
                cpu = user + system
                print('full rewrite {}: {:,} packages in {:.2f}s = {:,.0f} packages/s'.format(
                    label, packages, wall, packages / wall))
                print('  CPU per package: scribe {:.3f} ms ({:.3f} user, {:.3f} system), '
                      'database server {:.3f} ms; all of it spread over two otherwise '
                      'idle cores: {:,.0f} packages/s'.format(
                          cpu / packages * 1000, user / packages * 1000,
                          system / packages * 1000, db_cpu / packages * 1000,
                          packages / ((cpu + db_cpu) / 2)))
        finally:
            scribe.close()
            if config.keep:
                shutil.rmtree(output, ignore_errors=True)
    finally:
        cluster.stop()
        if not config.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
