"""Tests of piwheels.logger.classify: what each hit is, and pip's user agent."""

import json
from datetime import datetime, timezone

import pytest

from piwheels import protocols
from piwheels.logger.classify import (
    NO_AGENT_FIELDS, Classifier, classify_path, parse_user_agent,
)
from piwheels.logger.formats import LogEntry

WHEN = datetime(2023, 10, 10, 20, 55, 36, tzinfo=timezone.utc)

PIP_AGENT = 'pip/23.0.1 ' + json.dumps({
    'ci': None, 'cpu': 'armv7l',
    'distro': {'id': 'bookworm', 'libc': {'lib': 'glibc', 'version': '2.36'},
               'name': 'Raspbian GNU/Linux', 'version': '12'},
    'implementation': {'name': 'CPython', 'version': '3.11.2'},
    'installer': {'name': 'pip', 'version': '23.0.1'},
    'openssl_version': 'OpenSSL 3.0.11 19 Sep 2023', 'python': '3.11.2',
    'setuptools_version': '66.1.1',
    'system': {'name': 'Linux', 'release': '6.1.21-v7+'},
})
PIP_FIELDS = ('armv7l', 'Raspbian GNU/Linux', '12', 'Linux', '6.1.21-v7+',
              'CPython', '3.11.2', 'pip', '23.0.1', '66.1.1')


def hit(path, status=200, method='GET', agent=PIP_AGENT, host='192.0.2.1'):
    return LogEntry(host, WHEN, method, path, status, agent)


@pytest.mark.parametrize('path, target', [
    ('/simple/foo/foo-1.0-py3-none-any.whl',
     ('LOGDOWNLOAD', 'foo-1.0-py3-none-any.whl')),
    ('/simple/foo-bar/Foo_Bar-1.0-1-cp311-cp311-linux_armv7l.whl',
     ('LOGDOWNLOAD', 'Foo_Bar-1.0-1-cp311-cp311-linux_armv7l.whl')),
    ('/simple/Foo_Bar/', ('LOGSEARCH', 'foo-bar')),
    ('/simple/foo/index.html', ('LOGSEARCH', 'foo')),
    ('/simple/foo/index.json', ('LOGSEARCH', 'foo')),
    ('/project/Foo.Bar/', ('LOGPROJECT', 'foo-bar')),
    ('/project/foo/index.html', ('LOGPROJECT', 'foo')),
    ('/project/foo/json/', ('LOGJSON', 'foo')),
    ('/project/foo/json/index.json', ('LOGJSON', 'foo')),
    ('/', ('LOGPAGE', 'index.html')),
    ('/faq.html', ('LOGPAGE', 'faq.html')),
    ('/stats/', ('LOGPAGE', 'stats/index.html')),
    # not recorded: other files, odd paths, wheels where they don't belong
    ('/static/piwheels.css', None),
    ('/simple/', None),
    ('/simple/foo', None),
    ('/project/foo', None),
    ('/project/foo/json', None),
    ('/simple/index.html', None),
    ('/simple/foo/foo-1.0-py3-none-any.whl.metadata', None),
    ('/simple/bar/foo-1.0-py3-none-any.whl', None),
    ('/simple/foo/../bar/foo-1.0-py3-none-any.whl', None),
    ('/simple/foo/sub/foo-1.0-py3-none-any.whl', None),
    ('/other/foo/foo-1.0-py3-none-any.whl', None),
    ('/project/foo/foo-1.0-py3-none-any.whl', None),
    ('/simple/foo//foo-1.0-py3-none-any.whl', None),
    ('/simple/foo/.foo-1.0-py3-none-any.whl', None),
    ('/simple/foo/foo-1.0-py3-none-any.whl/', None),
    ('/simple/foo/foo-1.0.whl', None),
    ('/simple/-foo/', None),
    ('/simple/foo\\bar/', None),
    ('/simple/f\x00o/', None),
    ('/logs/000/000/001.txt.gz', None),
    ('/project/foo/json/other.json', None),
    ('/' + 'a' * 300 + '.html', None),
    ('/caf\u00e9.html', None),
    ('*', None),
])
def test_paths(path, target):
    assert classify_path(path) == target


def test_download_record_has_agent_fields():
    assert Classifier().classify(
        hit('/simple/foo/foo-1.0-py3-none-any.whl')) == (
            'LOGDOWNLOAD', protocols.DownloadState(
                'foo-1.0-py3-none-any.whl', '192.0.2.1', WHEN, *PIP_FIELDS))


def test_search_record_has_agent_fields():
    assert Classifier().classify(hit('/simple/Foo/')) == (
        'LOGSEARCH', protocols.SearchState('foo', '192.0.2.1', WHEN,
                                           *PIP_FIELDS))


def test_page_records_keep_the_user_agent():
    classifier = Classifier()
    agent = 'Mozilla/5.0 ' + 'x' * 2000
    assert classifier.classify(hit('/project/foo/', agent=agent)) == (
        'LOGPROJECT', protocols.ProjectState('foo', '192.0.2.1', WHEN,
                                             agent[:1000]))
    assert classifier.classify(hit('/project/foo/json/', agent='')) == (
        'LOGJSON', protocols.JSONState('foo', '192.0.2.1', WHEN, ''))
    assert classifier.classify(hit('/faq.html', status=304)) == (
        'LOGPAGE', protocols.PageState('faq.html', '192.0.2.1', WHEN,
                                       PIP_AGENT))


@pytest.mark.parametrize('entry', [
    hit('/simple/foo/foo-1.0-py3-none-any.whl', status=304),
    hit('/simple/foo/foo-1.0-py3-none-any.whl', status=206),
    hit('/simple/foo/foo-1.0-py3-none-any.whl', status=404),
    hit('/simple/foo/foo-1.0-py3-none-any.whl', method='HEAD'),
    hit('/simple/foo/', status=500),
    hit('/faq.html', method='POST'),
])
def test_only_successful_gets_count(entry):
    assert Classifier().classify(entry) is None


def test_records_pass_their_protocol():
    classifier = Classifier()
    long_host = 'h' * 300
    for path in ('/simple/foo/foo-1.0-py3-none-any.whl', '/simple/foo/',
                 '/project/foo/', '/project/foo/json/', '/faq.html'):
        action, record = classifier.classify(
            hit(path, host=long_host, agent='pip/1 ' + json.dumps(
                {'cpu': 'x' * 500, 'installer': {'name': 'pip'}})))
        protocols.lumberjack.check('recv', action, [record])
        assert record.host == 'h' * protocols.MAX_HOST


def test_user_agent_fields():
    assert parse_user_agent(PIP_AGENT) == PIP_FIELDS


@pytest.mark.parametrize('agent', [
    '',
    'Mozilla/5.0 (X11; Linux x86_64)',
    'pip/23.0.1 {not json}',
    'pip/23.0.1 {"cpu": "armv7l"',
    'pip/23.0.1 ' + '[' * 100000 + ']' * 100000,
    'pip/23.0.1 {"a": ' * 100000 + '1' + '}' * 100000,
    'pip/23.0.1 ["cpu"]',
])
def test_user_agents_without_fields(agent):
    assert parse_user_agent(agent) in (NO_AGENT_FIELDS, (
        None, None, None, None, None, None, None, 'pip', None, None))


def test_user_agent_fields_of_the_wrong_type_are_left_out():
    agent = 'uv/0.4.0 ' + json.dumps({
        'installer': {'name': 'uv', 'version': 4},
        'cpu': ['armv7l'], 'distro': 'Debian', 'system': {'name': 'L\x00x'},
        'implementation': {'name': 'CPython'}, 'python': '3.12.1',
        'setuptools_version': 'v' * 500})
    assert parse_user_agent(agent) == (
        None, None, None, None, None, 'CPython', '3.12.1', 'uv', None,
        'v' * protocols.MAX_AGENT_FIELD)


def test_installer_name_from_the_agent_when_json_lacks_it():
    assert parse_user_agent('pip/9.0 {"python": "3.5.3"}') == (
        None, None, None, None, None, None, '3.5.3', 'pip', None, None)
