"""Benchmark of the download statistics, end to end: an Apache log file through piw-logger and a real piw-master into PostgreSQL.

Starts a private PostgreSQL cluster in a temporary directory with the
piwheels database holding --packages packages with one wheel each, writes
a log file of --lines generated lines in Apache's combined format (wheel
downloads by pip with its JSON user agent, pip searches, project pages and
JSON, other pages, and some hits that aren't recorded), starts a real
``piw-master`` process running the tasks the statistics need (Seraph,
TheOracle, Lumberjack), then runs ``piw-logger FILE`` and times how long it
takes until every record is in the database. It prints lines per second
end to end and the CPU time each stage (piw-logger, piw-master, the
PostgreSQL backends) spent per line.

Usage::

    python bench/logger.py [--lines 1000000] [--packages 1000]
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from piwheels.pgcluster import PrivateCluster  # noqa: E402

from farmdb import create_piwheels_database  # noqa: E402
from procstat import database_cpu_seconds, tree_cpu_seconds  # noqa: E402

ABI = 'cp311'

#: the tasks the statistics need
TASKS = ('Seraph', 'TheOracle', 'Lumberjack')

#: (share of the lines, kind): what the generated lines are
MIX = [
    (0.75, 'download'), (0.14, 'search'), (0.04, 'project'),
    (0.02, 'json'), (0.03, 'page'), (0.02, 'ignored'),
]

#: the tables each kind of record lands in
TABLES = {
    'download': 'downloads', 'search': 'searches',
    'project': 'project_page_hits', 'json': 'project_json_downloads',
    'page': 'web_page_hits',
}

PIP_AGENT = (
    'pip/{pip} {{"ci":null,"cpu":"{cpu}","distro":{{"id":"{codename}",'
    '"libc":{{"lib":"glibc","version":"2.36"}},"name":"{distro}",'
    '"version":"{version}"}},"implementation":{{"name":"CPython",'
    '"version":"{python}"}},"installer":{{"name":"pip","version":"{pip}"}},'
    '"openssl_version":"OpenSSL 3.0.11 19 Sep 2023","python":"{python}",'
    '"setuptools_version":"66.1.1","system":{{"name":"Linux",'
    '"release":"6.1.21-v8+"}}}}')

BROWSER_AGENTS = [
    'Mozilla/5.0 (X11; Linux aarch64; rv:109.0) Gecko/20100101 Firefox/115.0',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, '
    'like Gecko) Chrome/120.0.0.0 Safari/537.36',
    'curl/7.88.1',
]


def pip_agents():
    """Return pip user agents as Apache logs them (quotes escaped)."""
    agents = []
    for pip in ('23.0.1', '24.0', '25.1.1'):
        for cpu in ('armv7l', 'aarch64'):
            for distro, version, codename, python in [
                    ('Raspbian GNU/Linux', '12', 'bookworm', '3.11.2'),
                    ('Debian GNU/Linux', '13', 'trixie', '3.13.5')]:
                agents.append(PIP_AGENT.format(
                    pip=pip, cpu=cpu, distro=distro, version=version,
                    codename=codename, python=python).replace('"', '\\"'))
    return agents


def write_log(path, lines, packages):
    """Write *lines* lines to *path*; return the number of records of each
    kind the database should end up with."""
    rng = random.Random(42)
    agents = pip_agents()
    kinds = rng.choices([kind for share, kind in MIX],
                        [share for share, kind in MIX], k=lines)
    expected = dict.fromkeys(TABLES, 0)
    start = datetime.now(timezone.utc) - timedelta(days=1)
    with open(path, 'w', encoding='ascii') as f:
        for n, kind in enumerate(kinds):
            when = (start + timedelta(seconds=n // 20)).strftime(
                '%d/%b/%Y:%H:%M:%S +0000')
            package = 'pkg{}'.format(int(rng.paretovariate(1.2)) % packages)
            host = '198.51.{}.{}'.format(n % 200, n % 251)
            agent = rng.choice(agents)
            status, size = 200, 1234
            if kind == 'download':
                path_ = '/simple/{0}/{0}-1.0-py3-none-any.whl'.format(package)
            elif kind == 'search':
                path_ = '/simple/{}/'.format(package)
            elif kind == 'project':
                path_ = '/project/{}/'.format(package)
                agent = rng.choice(BROWSER_AGENTS)
            elif kind == 'json':
                path_ = '/project/{}/json/'.format(package)
                agent = rng.choice(BROWSER_AGENTS)
            elif kind == 'page':
                path_ = rng.choice(['/', '/faq.html', '/packages.html'])
                agent = rng.choice(BROWSER_AGENTS)
            else:
                path_, status = '/static/piwheels.css', 304
                agent = rng.choice(BROWSER_AGENTS)
            if kind in expected:
                expected[kind] += 1
            f.write('{} - - [{}] "GET {} HTTP/1.1" {} {} "-" "{}"\n'.format(
                host, when, path_, status, size, agent))
    return expected


def prepare_database(path, packages):
    """Start a cluster in *path* with the piwheels database and *packages*
    packages with a published wheel each; return ``(cluster, user_dsn)``."""
    cluster = PrivateCluster(os.path.join(path, 'pg')).start()
    dsn = create_piwheels_database(cluster)
    cluster.psql(
        "INSERT INTO build_abis (abi_tag) VALUES ('{abi}');"
        "INSERT INTO packages (package) "
        "SELECT 'pkg' || n FROM generate_series(0, {count} - 1) AS n;"
        "INSERT INTO versions (package, version) "
        "SELECT 'pkg' || n, '1.0' FROM generate_series(0, {count} - 1) AS n;"
        "INSERT INTO builds (package, version, abi_tag, built_by, duration, "
        "status, attempt) SELECT package, version, '{abi}', 1, "
        "INTERVAL '1 minute', true, 1 FROM versions;"
        "INSERT INTO files (filename, build_id, filesize, filehash, "
        "package_tag, package_version_tag, py_version_tag, abi_tag, "
        "platform_tag) SELECT package || '-1.0-py3-none-any.whl', build_id, "
        "1234, repeat('0', 64), package, '1.0', 'py3', 'none', 'any' "
        "FROM builds;".format(abi=ABI, count=packages), database='piwheels')
    return cluster, dsn


def start_master(dsn, path):
    """Start piw-master with only :data:`TASKS`; return the process and its
    log queue's address."""
    sockets = os.path.join(path, 's')
    os.makedirs(sockets)
    script = (
        'import sys; import piwheels.master as m; '
        'm.TASKS[:] = [t for t in m.TASKS if t[1] in {tasks!r}]; '
        'sys.exit(m.main())'.format(tasks=TASKS))
    args = [sys.executable, '-c', script, '-c', os.devnull, '--dsn', dsn,
            '--output-path', path, '-q']
    for name in ('status', 'control', 'import', 'log'):
        args += ['--{}-queue'.format(name),
                 'ipc://{}/{}'.format(sockets, name)]
    log = open(os.path.join(path, 'master.log'), 'w')
    master = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(sockets, 'log')):
        if master.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError('the master did not start; see {}'.format(
                log.name))
        time.sleep(0.1)
    return master, 'ipc://{}/log'.format(sockets)


def count_rows(cluster):
    """Return the rows in each log table, as :data:`TABLES` names them."""
    output = cluster.psql('SELECT {}'.format(', '.join(
        '(SELECT count(*) FROM {})'.format(table)
        for table in TABLES.values())), database='piwheels')
    return dict(zip(TABLES, (int(value) for value in output.split('|'))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lines', type=int, default=1000000)
    parser.add_argument('--packages', type=int, default=1000)
    parser.add_argument('--timeout', type=float, default=1800,
                        help='seconds to wait for the records')
    config = parser.parse_args()
    path = tempfile.mkdtemp(prefix='piwbench')
    cluster = master = None
    try:
        cluster, dsn = prepare_database(path, config.packages)
        log_file = os.path.join(path, 'access.log')
        expected = write_log(log_file, config.lines, config.packages)
        master, log_queue = start_master(dsn, path)
        time.sleep(2)
        master_cpu = tree_cpu_seconds(master.pid)
        backend_cpu = database_cpu_seconds(cluster)
        start = time.perf_counter()
        logger = subprocess.Popen(
            [sys.executable, '-c', 'import sys; from piwheels.logger import '
             'main; sys.exit(main())', '-c', os.devnull,
             '--log-queue', log_queue, log_file],
            stderr=subprocess.PIPE, universal_newlines=True)
        deadline = start + config.timeout
        while True:
            rows = count_rows(cluster)
            if rows == expected:
                break
            if master.poll() is not None:
                raise RuntimeError('the master stopped; see {}'.format(
                    os.path.join(path, 'master.log')))
            if time.perf_counter() > deadline:
                raise RuntimeError('only {} of {} after {:.0f} s'.format(
                    rows, expected, config.timeout))
            time.sleep(0.5)
        elapsed = time.perf_counter() - start
        master_cpu = tree_cpu_seconds(master.pid) - master_cpu
        backend_cpu = database_cpu_seconds(cluster) - backend_cpu
        summary = logger.stderr.read()
        _, logger.returncode, usage = os.wait4(logger.pid, 0)
        logger_cpu = usage.ru_utime + usage.ru_stime
        print(summary.strip().splitlines()[-1])
        print('records: {}'.format(', '.join(
            '{} {}'.format(count, kind) for kind, count in expected.items())))
        print('{:,} lines end to end into PostgreSQL in {:.1f} s: {:,.0f} '
              'lines/s'.format(config.lines, elapsed,
                               config.lines / elapsed))
        print('CPU per line: piw-logger {:.1f} us, piw-master {:.1f} us, '
              'PostgreSQL {:.1f} us; load average {:.1f} on {} CPUs'.format(
                  1e6 * logger_cpu / config.lines,
                  1e6 * master_cpu / config.lines,
                  1e6 * backend_cpu / config.lines,
                  os.getloadavg()[0], os.cpu_count()))
    finally:
        if master is not None:
            master.terminate()
            master.wait(60)
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(path, ignore_errors=True)


if __name__ == '__main__':
    main()
