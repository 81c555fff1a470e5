"""Tests of piwheels.logger.formats: Apache LogFormat strings, lines and
their escapes."""

from datetime import datetime, timezone

import pytest

from piwheels.exc import ConfigError
from piwheels.logger.formats import (
    LogEntry, LogParser, TimeParser, parse_request_path, unescape,
)

UTC = timezone.utc
WHEN = datetime(2023, 10, 10, 20, 55, 36, tzinfo=UTC)
WHEEL = '/simple/foo/foo-1.0-py3-none-any.whl'


def entry(host='192.0.2.1', path=WHEEL, status=200, agent='pip/23.0.1',
          method='GET'):
    return LogEntry(host, WHEN, method, path, status, agent)


@pytest.mark.parametrize('log_format, line', [
    ('combined', '192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "GET {} '
     'HTTP/1.1" 200 2326 "-" "pip/23.0.1"'),
    ('common', '192.0.2.1 - frank [10/Oct/2023:13:55:36 -0700] "GET {} '
     'HTTP/1.1" 200 -'),
    ('common_vhost', 'www.piwheels.org 192.0.2.1 - - [10/Oct/2023:13:55:36 '
     '-0700] "GET {} HTTP/1.1" 200 2326'),
    ('vhost_combined', 'www.piwheels.org:443 192.0.2.1 - - [10/Oct/2023:'
     '13:55:36 -0700] "GET {} HTTP/1.1" 200 2326 "https://x/" "pip/23.0.1"'),
    ('%a %t %>s %m %U "%{User-agent}i"', '192.0.2.1 [10/Oct/2023:13:55:36 '
     '-0700] 200 GET {} "pip/23.0.1"'),
    ('%{User-Agent}i|%{sec}t|%h|%r|%s', 'pip/23.0.1|1696971336|192.0.2.1|'
     'GET {} HTTP/1.1|200'),
    ('%h %{%Y-%m-%dT%H:%M:%S%z}t \\"%r\\" %>s', '192.0.2.1 '
     '2023-10-10T20:55:36+0000 "GET {} HTTP/1.1" 200'),
])
def test_formats(log_format, line):
    parsed = LogParser(log_format).parse(line.format(WHEEL))
    agent = 'pip/23.0.1' if 'agent' in log_format.lower() or \
        log_format.endswith('combined') else ''
    assert parsed == entry(agent=agent)


@pytest.mark.parametrize('log_format, missing', [
    ('%l %t "%r" %>s', 'the client'),
    ('%h "%r" %>s', 'the time'),
    ('%h %t %m %>s', 'the request'),
    ('%h %t "%r"', 'the status'),
])
def test_format_without_what_is_needed(log_format, missing):
    with pytest.raises(ConfigError) as info:
        LogParser(log_format)
    assert missing in str(info.value)


def test_format_literal_percent_and_brackets():
    parser = LogParser('%h [%%] %t "%r" %>s')
    assert parser.parse('192.0.2.1 [%] [10/Oct/2023:13:55:36 -0700] '
                        '"GET {} HTTP/1.1" 200'.format(WHEEL)) == \
        entry(agent='')


def test_escaped_user_agent_comes_back_as_text():
    parser = LogParser('combined')
    line = ('192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "GET / HTTP/1.1" '
            '200 1 "-" "pip/23 {\\"name\\":\\"caf\\xc3\\xa9 \\\\ \\xff\\"}"')
    assert parser.parse(line).user_agent == \
        'pip/23 {"name":"caf\u00e9 \\ \ufffd"}'


def test_quoted_fields_with_escaped_quotes():
    parser = LogParser('combined')
    line = ('192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "GET /a\\"b HTTP/1.1"'
            ' 404 1 "http://x/\\"" "agent \\"quoted\\""')
    parsed = parser.parse(line)
    assert parsed.path == '/a"b'
    assert parsed.status == 404
    assert parsed.user_agent == 'agent "quoted"'


@pytest.mark.parametrize('line', [
    '',
    'garbage',
    '192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "GET / HTTP/1.1" 200',
    '192.0.2.1 - - [31/Feb/2023:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" ""',
    '192.0.2.1 - - [10/Foo/2023:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" ""',
    '192.0.2.1 - - [10/Oct/2023:13:55 -0700] "GET / HTTP/1.1" 200 1 "-" ""',
    '192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "GET / HTTP/1.1" 2000 1 "-" ""',
    '192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "-" 408 1 "-" ""',
    '- - - [10/Oct/2023:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" ""',
    '192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" '
    '"cut short',
])
def test_unreadable_lines(line):
    assert LogParser('combined').parse(line) is None


@pytest.mark.parametrize('target, path', [
    ('/simple/foo/', '/simple/foo/'),
    ('/simple/foo/?x=1#y', '/simple/foo/'),
    ('/simple/foo%2Dbar/', '/simple/foo-bar/'),
    ('/%ff/', '/\ufffd/'),
    ('http://www.piwheels.org/faq.html', '/faq.html'),
    ('*', '*'),
])
def test_request_paths(target, path):
    assert parse_request_path(target) == path


def test_unescape_leaves_plain_text_alone():
    assert unescape('plain text') == 'plain text'
    assert unescape('tab\\there\\n') == 'tab\there\n'


def test_time_zones_become_utc():
    parse = TimeParser()
    assert parse('10/Oct/2023:13:55:36 -0700') == WHEN
    assert parse('10/Oct/2023:22:25:36 +0130') == WHEN
    assert TimeParser('msec')('1696971336000') == WHEN
    assert TimeParser('begin:usec')('1696971336000000') == WHEN
