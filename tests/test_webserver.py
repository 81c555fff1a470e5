"""Tests of the output web server: PEP 691 negotiation as the Apache role
does it, gzip logs, hidden files and the 404 page."""

import gzip
import os
import urllib.error
import urllib.request

import pytest

from piwheels.webserver import JSON_TYPE, OutputServer, choose_index, parse_accept

PIP_ACCEPT = ('application/vnd.pypi.simple.v1+json, '
              'application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01')


@pytest.fixture
def site(tmp_path):
    root = tmp_path / 'www'
    (root / 'simple' / 'foo').mkdir(parents=True)
    (root / 'simple' / 'index.html').write_bytes(b'<html>root</html>')
    (root / 'simple' / 'index.json').write_bytes(b'{"projects": []}')
    (root / 'simple' / 'foo' / 'index.html').write_bytes(b'<html>foo</html>')
    (root / 'simple' / 'foo' / 'index.json').write_bytes(b'{"name": "foo"}')
    (root / 'simple' / 'foo' / '.index.html.1.tmp').write_bytes(b'half')
    (root / 'logs' / '000' / '000').mkdir(parents=True)
    (root / 'logs' / '000' / '000' / '001.txt.gz').write_bytes(gzip.compress(b'build log <b>'))
    (root / '404.html').write_bytes(b'<html>not here</html>')
    return str(root)


def fetch(url, accept=None):
    request = urllib.request.Request(url)
    if accept is not None:
        request.add_header('Accept', accept)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_parse_accept_reads_qualities():
    assert parse_accept(PIP_ACCEPT) == [
        ('application/vnd.pypi.simple.v1+json', 1.0),
        ('application/vnd.pypi.simple.v1+html', 0.1),
        ('text/html', 0.01),
    ]
    assert parse_accept(None) == [('*/*', 1.0)]
    assert parse_accept('text/html;q=nonsense') == [('text/html', 0.0)]


@pytest.mark.parametrize('accept, chosen', [
    (PIP_ACCEPT, 'index.json'),
    ('text/html', 'index.html'),
    (None, 'index.html'),
    ('*/*', 'index.html'),
    ('application/vnd.pypi.simple.v1+html', 'index.html'),
    ('application/vnd.pypi.simple.latest+json', 'index.json'),
    ('text/html, application/vnd.pypi.simple.v1+json;q=0.5', 'index.json'),
    ('application/vnd.pypi.simple.v1+json;q=0', 'index.html'),
])
def test_choose_index_as_the_apache_role_does(accept, chosen):
    assert choose_index(accept)[0] == chosen


def test_choose_index_without_negotiation_is_html():
    assert choose_index(PIP_ACCEPT, negotiate=False)[0] == 'index.html'


def test_server_negotiates_the_index_form(site):
    with OutputServer(site) as server:
        status, headers, body = fetch(server.index_url + 'foo/', PIP_ACCEPT)
        assert status == 200 and body == b'{"name": "foo"}'
        assert headers['Content-Type'] == JSON_TYPE
        assert headers['Vary'] == 'Accept'
        status, headers, body = fetch(server.index_url + 'foo/', 'text/html')
        assert body == b'<html>foo</html>'
        assert headers['Content-Type'].startswith('text/html')
        status, headers, body = fetch(server.index_url, PIP_ACCEPT)
        assert body == b'{"projects": []}'
        status, _, body = fetch(server.index_url + 'foo/', 'image/png')
        assert body == b'<html>foo</html>'
    assert [r.file for r in server.requests if r.status == 200] == [
        os.path.join('simple', 'foo', 'index.json'),
        os.path.join('simple', 'foo', 'index.html'),
        os.path.join('simple', 'index.json'),
        os.path.join('simple', 'foo', 'index.html'),
    ]


def test_server_without_negotiation_serves_html(site):
    with OutputServer(site, negotiate=False) as server:
        status, headers, body = fetch(server.index_url + 'foo/', PIP_ACCEPT)
        assert body == b'<html>foo</html>'


def test_server_redirects_directories_to_their_slash(site):
    with OutputServer(site) as server:
        status, headers, body = fetch(server.index_url + 'foo', 'text/html')
        assert status == 200 and body == b'<html>foo</html>'
    assert server.requests[0].status == 301


def test_server_sends_logs_as_gzipped_text(site):
    with OutputServer(site) as server:
        request = urllib.request.Request(server.url + 'logs/000/000/001.txt.gz')
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers['Content-Encoding'] == 'gzip'
            assert response.headers['Content-Type'] == 'text/plain; charset=utf-8'
            assert gzip.decompress(response.read()) == b'build log <b>'


def test_server_hides_temporary_files_and_answers_404(site):
    with OutputServer(site) as server:
        status, headers, body = fetch(server.index_url + 'foo/.index.html.1.tmp')
        assert status == 404 and body == b'<html>not here</html>'
        status, headers, body = fetch(server.url + 'nothing/here')
        assert status == 404 and body == b'<html>not here</html>'
        status, headers, body = fetch(server.url + '../../etc/passwd')
        assert status == 404


def test_pip_command_names_the_index(site):
    server = OutputServer(site, port=0)
    try:
        assert server.pip_command('foo') == (
            'pip install --index-url {}simple/ foo'.format(server.url))
    finally:
        server.close()
