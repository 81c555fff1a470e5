"""Acceptance tests of the web output: real pip installs a wheel from the
index TheScribe wrote, served over HTTP on 127.0.0.1 in its HTML and its
JSON form, and the site's pages render in headless Chromium without errors.

Set ``PIWTEST_SCREENSHOTS`` to a directory to keep the browser's screenshots
of each page at phone and desktop sizes.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from piwheels import protocols, transport
from piwheels.master.the_scribe import TheScribe
from piwheels.protocols import BuildLog, MasterStats
from piwheels.webserver import JSON_TYPE, OutputServer

from ..fixtures.index import make_sdist

PACKAGE = 'piwtest-web'
VERSION = '1.0'
CHROMIUM = shutil.which('chromium')
#: flags for a headless Chromium that reaches nothing but the test's server
CHROMIUM_FLAGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--hide-scrollbars',
    '--enable-logging=stderr', '--log-level=0',
]
SIZES = {'phone': '390,844', 'desktop': '1280,900'}


@pytest.fixture(scope='module')
def built_wheel(tmp_path_factory):
    """A wheel of the ``pure`` fixture project, built by pip."""
    work = tmp_path_factory.mktemp('wheel')
    sdist = make_sdist('pure', PACKAGE, VERSION, str(work))
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
         '--no-index', '--disable-pip-version-check', '-q', '-w', str(work), sdist],
        check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    [wheel] = [name for name in os.listdir(str(work)) if name.endswith('.whl')]
    return os.path.join(str(work), wheel)


@pytest.fixture
def site(with_build, superuser_sql, master_config, built_wheel, peer):
    """The output directory of a farm that built the wheel: its file is in
    the database and in the output (where FileJuggler puts it), the scribe
    has written its pages, a home page and a build log."""
    filename = os.path.basename(built_wheel)
    with open(built_wheel, 'rb') as f:
        content = f.read()
    superuser_sql(
        "INSERT INTO packages (package, description) VALUES (:package, "
        "'A package <em>for</em> testing the index')", package=PACKAGE)
    superuser_sql(
        "INSERT INTO package_names (package, name) VALUES (:package, 'PiwTest_Web')",
        package=PACKAGE)
    superuser_sql(
        "INSERT INTO versions (package, version, requires_python) "
        "VALUES (:package, :version, '>=3.7')", package=PACKAGE, version=VERSION)
    # build 2 (build 1 is foo's, made by with_build): foo failed for cp39
    superuser_sql(
        "INSERT INTO builds (package, version, abi_tag, built_by, duration, status, "
        "failure, attempt) VALUES ('foo', '0.1', 'cp39', 1, :duration, false, 'error', 1)",
        duration=timedelta(seconds=42))
    superuser_sql(
        "INSERT INTO builds (package, version, abi_tag, built_by, duration, status, "
        "attempt) VALUES (:package, :version, 'cp311', 1, :duration, true, 1)",
        package=PACKAGE, version=VERSION, duration=timedelta(seconds=42))
    superuser_sql(
        "INSERT INTO files (filename, build_id, filesize, filehash, package_tag, "
        "package_version_tag, py_version_tag, abi_tag, platform_tag, requires_python) "
        "SELECT :filename, build_id, :size, :hash, :package, :version, 'py3', 'none', "
        "'any', '>=3.7' FROM builds WHERE package = :package",
        filename=filename, size=len(content),
        hash=hashlib.sha256(content).hexdigest(), package=PACKAGE, version=VERSION)
    output = master_config.output_path
    os.makedirs(os.path.join(output, 'simple', PACKAGE))
    shutil.copy(built_wheel, os.path.join(output, 'simple', PACKAGE, filename))
    scribe = TheScribe(master_config)
    try:
        scribe.once()
        secretary = peer(transport.PUSH, protocols.the_scribe.reversed(),
                         connect=master_config.scribe_queue)
        requests = [
            ('BOTH', PACKAGE), ('BOTH', 'foo'),
            ('SEARCH', {PACKAGE: (10, 20), 'foo': (5, 50)}),
            ('HOME', home_stats()),
            ('LOG', BuildLog(2, 'Building <b>wheel</b>\nerror: failed\n')),
        ]
        for msg, data in requests:
            secretary.send(msg, data)
            scribe.poll(5)
        scribe.write_root_index()
        assert scribe.handler_errors == 0 and scribe.protocol_errors == 0
    finally:
        scribe.close()
    return output


def home_stats():
    now = datetime.now(timezone.utc)
    return MasterStats(
        now, 2, {'cp311': 1}, timedelta(hours=5), 12345678, {'cp39': 3, 'cp311': 0},
        1, 2, 0, 30, 400, 10 ** 12, 10 ** 11, 2 ** 33, 2 ** 32, 0, 0, 0.2, 45.0,
        {'idle': 1, 'busy': 1}, now - timedelta(seconds=30), now - timedelta(minutes=2))


def pip_version():
    """The version of the pip the tests run, as a tuple of integers."""
    result = subprocess.run(
        [sys.executable, '-m', 'pip', '--version'], stdout=subprocess.PIPE, check=True)
    version = result.stdout.decode('ascii').split()[1]
    return tuple(int(part) for part in re.findall(r'\d+', version)[:2])


def pip_install(server, tmp_path):
    target = tmp_path / 'target'
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-v', '--no-cache-dir',
         '--disable-pip-version-check', '--target', str(target),
         '--index-url', server.index_url, PACKAGE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    log = result.stdout.decode('utf-8', 'replace')
    assert result.returncode == 0, log
    module = PACKAGE.replace('-', '_')
    assert (target / '{}.py'.format(module)).is_file(), log
    return log


def served(server, path):
    return [request for request in server.requests if request.path == path]


def test_pip_installs_from_the_html_index(site, built_wheel, tmp_path):
    filename = os.path.basename(built_wheel)
    with OutputServer(site, negotiate=False) as server:
        log = pip_install(server, tmp_path)
    [page] = served(server, '/simple/{}/'.format(PACKAGE))
    assert page.status == 200 and page.file.endswith('index.html')
    [metadata] = served(server, '/simple/{}/{}.metadata'.format(PACKAGE, filename))
    assert metadata.status == 200
    assert '{}.metadata'.format(filename) in log
    assert served(server, '/simple/{}/{}'.format(PACKAGE, filename))[0].status == 200


def test_pip_installs_from_the_json_index(site, built_wheel, tmp_path):
    filename = os.path.basename(built_wheel)
    with OutputServer(site) as server:
        log = pip_install(server, tmp_path)
    [page] = served(server, '/simple/{}/'.format(PACKAGE))
    assert page.status == 200 and page.file.endswith('index.json')
    assert page.content_type == JSON_TYPE
    metadata = served(server, '/simple/{}/{}.metadata'.format(PACKAGE, filename))
    if pip_version() >= (23, 2):
        assert [request.status for request in metadata] == [200]
        assert '{}.metadata'.format(filename) in log
    else:
        # pip before 23.2 (Debian bookworm's 23.0) knows only the old name
        # of the JSON key, which PEP 714 keeps out of the JSON form (it made
        # those pips fail): they fetch the wheel itself
        assert metadata == []


def chromium(url, *flags):
    """Load *url* in headless Chromium; return (DOM, console messages)."""
    result = subprocess.run(
        [CHROMIUM] + CHROMIUM_FLAGS + list(flags) + [url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
        env=dict(os.environ, HOME=os.environ.get('HOME', '/tmp')))
    console = [
        line for line in result.stderr.decode('utf-8', 'replace').splitlines()
        if ':CONSOLE' in line
    ]
    return result.stdout.decode('utf-8', 'replace'), console


PAGES = [
    ('home', '/'),
    ('project', '/project/{}/'.format(PACKAGE)),
    ('project-failed', '/project/foo/'),
    ('alias', '/project/PiwTest_Web/'),
    ('faq', '/faq.html'),
    ('missing', '/no/such/page'),
    ('simple', '/simple/{}/'.format(PACKAGE)),
]


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed')
@pytest.mark.parametrize('name, path', PAGES)
def test_pages_render_without_errors(site, tmp_path, name, path):
    profile = tmp_path / 'profile'
    shots = os.environ.get('PIWTEST_SCREENSHOTS') or str(tmp_path)
    with OutputServer(site) as server:
        dom, console = chromium(
            server.url + path.lstrip('/'), '--user-data-dir={}'.format(profile),
            '--dump-dom')
        assert console == []
        assert '</html>' in dom or '</body>' in dom
        for size, window in SIZES.items():
            shot = os.path.join(shots, '{}-{}.png'.format(name, size))
            chromium(server.url + path.lstrip('/'),
                     '--user-data-dir={}'.format(profile),
                     '--window-size={}'.format(window), '--screenshot={}'.format(shot))
            assert os.path.getsize(shot) > 1000
    failed = [
        request for request in server.requests
        if request.status >= 400 and request.path != '/no/such/page'
    ]
    assert failed == []
    # every resource came from our server (nothing else is reachable anyway,
    # but nothing may even be asked for)
    assert all(request.path.startswith('/') for request in server.requests)


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed')
def test_search_box_finds_packages(site, tmp_path):
    shots = os.environ.get('PIWTEST_SCREENSHOTS') or str(tmp_path)
    profile = '--user-data-dir={}'.format(tmp_path / 'p')
    with OutputServer(site) as server:
        dom, console = chromium(
            server.url + '?q=piwtest', profile, '--virtual-time-budget=5000', '--dump-dom')
        for size, window in SIZES.items():
            chromium(server.url + '?q=o', profile, '--virtual-time-budget=5000',
                     '--window-size={}'.format(window),
                     '--screenshot={}'.format(os.path.join(shots, 'search-{}.png'.format(size))))
    assert console == []
    results = re.findall(r'<li><a href="([^"]+)"', dom)
    assert results == ['/project/{}/'.format(PACKAGE)]
    assert served(server, '/packages.json')[0].status == 200


def test_project_page_shows_what_users_need(site):
    with open(os.path.join(site, 'project', PACKAGE, 'index.html'), encoding='utf-8') as f:
        page = f.read()
    assert 'A package &lt;em&gt;for&lt;/em&gt; testing the index' in page
    assert 'pip3 install {}'.format(PACKAGE) in page
    assert '/simple/{}/piwtest_web-1.0-py3-none-any.whl'.format(PACKAGE) in page
    with open(os.path.join(site, 'project', 'foo', 'index.html'), encoding='utf-8') as f:
        page = f.read()
    assert 'href="/logs/000/000/002.txt.gz"' in page
    assert '✗ failed' in page and 'sudo apt install libc6' in page
