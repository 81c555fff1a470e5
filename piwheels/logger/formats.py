"""Parse Apache access log lines written in any LogFormat into :class:`LogEntry` tuples.

:class:`LogParser` turns an Apache ``LogFormat`` string (or one of the
nicknames of :data:`FORMATS`) into one regular expression and reads from
each line what the statistics need: the client's address, the time, the
request's method and path, the status and the user agent. Everything else
in the line is matched and ignored.

Apache escapes what it writes in ``%r`` and ``%{...}i``: ``\\"`` and
``\\\\`` for quotes and backslashes, C escapes for white space and
``\\xhh`` for every other byte that is not printable ASCII. :func:`unescape`
undoes that, so a user agent's UTF-8 comes back as text; bytes that are not
UTF-8 become U+FFFD.
"""

import re
import typing
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

from ..exc import ConfigError

#: The format nicknames of Apache's default configurations (Debian's
#: ``apache2.conf`` writes ``%O`` where upstream writes ``%b``; both are
#: matched the same way).
FORMATS = {
    'common': '%h %l %u %t "%r" %>s %b',
    'common_vhost': '%v %h %l %u %t "%r" %>s %b',
    'combined': '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    'vhost_combined':
        '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
}

#: the month abbreviations of ``%t`` (English, whatever Apache's locale)
MONTHS = {
    name: number for number, name in enumerate(
        'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split(), start=1)
}

# one directive of a LogFormat: %, optional status conditions and < or >,
# an optional {argument}, and the directive's letter
_DIRECTIVE = re.compile(
    r'%(?:!?\d{3}(?:,\d{3})*)?[<>]?(?:\{(?P<arg>[^}]*)\})?(?P<letter>[a-zA-Z%])')

# what each field of the statistics is read from
_HOST_LETTERS = 'ha'
_STATUS_LETTERS = 's'

# values that may hold spaces when they are not quoted in the format
_SPACED_LETTERS = 'riotfCenUqX'

#: how many user agents a :class:`LogParser` remembers
AGENT_CACHE_SIZE = 10000

_QUOTED_VALUE = r'[^"\\]*(?:\\.[^"\\]*)*'
_ESCAPE = re.compile(rb'\\(x[0-9a-fA-F]{2}|.)', re.DOTALL)
_C_ESCAPES = {
    b'n': b'\n', b't': b'\t', b'r': b'\r', b'f': b'\f', b'v': b'\v',
    b'b': b'\b', b'a': b'\a', b'"': b'"', b'\\': b'\\',
}
_APACHE_TIME = re.compile(
    r'(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})')


class LogEntry(typing.NamedTuple):
    """The parts of one access log line the statistics use."""

    host: str                  # the client's address (or name)
    timestamp: datetime        # when the request arrived (UTC)
    method: str                # e.g. "GET"
    path: str                  # the URL path, percent-decoded, no query
    status: int                # the final status, e.g. 200
    user_agent: str            # the client's user agent ('' when unknown)


def _unescape_match(match):
    code = match.group(1)
    if code[:1] == b'x':
        return bytes((int(code[1:], 16),))
    return _C_ESCAPES.get(code, b'\\' + code)


def unescape(value):
    """Undo Apache's escaping of a logged string.

    :param str value: a field as written in the log.
    :returns: the original text; bytes that are not UTF-8 become U+FFFD.
    """
    if '\\' not in value:
        return value
    return _ESCAPE.sub(_unescape_match, value.encode('utf-8')).decode(
        'utf-8', 'replace')


def parse_request_path(target):
    """Return the path of a request *target* (``/a/b?q``, or an absolute
    ``http://host/a/b``): percent-decoded, without query or fragment."""
    if target[:1] != '/':
        scheme, sep, rest = target.partition('://')
        if not sep or '/' not in rest:
            return target
        target = rest[rest.index('/'):]
    for mark in '?#':
        target = target.partition(mark)[0]
    if '%' in target:
        target = unquote(target, errors='replace')
    return target


class TimeParser:
    """Parse the time of a log line into an aware UTC datetime.

    Apache writes many lines per second with the same time, so the last
    value parsed is remembered.

    :param str spec: ``None`` for ``%t`` (``[10/Oct/2023:13:55:36 -0700]``),
        or the argument of ``%{...}t``: ``sec``, ``msec``, ``usec`` (time
        since the epoch) or a :func:`~time.strftime` format (local time
        unless it has ``%z``).
    """

    def __init__(self, spec=None):
        if spec is not None:
            for prefix in ('begin:', 'end:'):
                if spec.startswith(prefix):
                    spec = spec[len(prefix):]
        self.spec = spec
        self._last = (None, None)
        if spec is None:
            self._parse = self._parse_apache
        elif spec in ('sec', 'msec', 'usec'):
            self._divisor = {'sec': 1, 'msec': 10 ** 3, 'usec': 10 ** 6}[spec]
            self._parse = self._parse_epoch
        else:
            self._parse = self._parse_strftime

    def __call__(self, text):
        """Return *text* as a UTC datetime.

        :raises ValueError: if *text* isn't a time in the expected format.
        """
        last_text, last_value = self._last
        if text == last_text:
            return last_value
        value = self._parse(text)
        self._last = (text, value)
        return value

    @staticmethod
    def _parse_apache(text):
        match = _APACHE_TIME.fullmatch(text)
        if match is None:
            raise ValueError('bad time {!r}'.format(text[:40]))
        day, month, year, hour, minute, second, sign, tzh, tzm = match.groups()
        try:
            month = MONTHS[month]
        except KeyError:
            raise ValueError('bad month {!r}'.format(month)) from None
        offset = timedelta(hours=int(tzh), minutes=int(tzm))
        if sign == '-':
            offset = -offset
        local = datetime(int(year), month, int(day), int(hour), int(minute),
                         int(second), tzinfo=timezone(offset))
        return local.astimezone(timezone.utc)

    def _parse_epoch(self, text):
        if not text.isdigit() or len(text) > 20:
            raise ValueError('bad time {!r}'.format(text[:40]))
        return datetime.fromtimestamp(int(text) / self._divisor, timezone.utc)

    def _parse_strftime(self, text):
        value = datetime.strptime(text, self.spec)
        if value.tzinfo is None:
            value = value.astimezone()
        return value.astimezone(timezone.utc)


class LogParser:
    """Parse lines of one Apache LogFormat.

    :param str log_format: a nickname of :data:`FORMATS` or a LogFormat
        string (as Apache's configuration has it, ``\\"`` for quotes
        allowed). It must log the client (``%h`` or ``%a``), the time
        (``%t`` or ``%{...}t``), the request (``%r``, or ``%m`` and
        ``%U``) and the status (``%s`` or ``%>s``); ``%{User-Agent}i`` is
        optional.
    :raises ConfigError: if the format lacks one of those.
    """

    def __init__(self, log_format):
        self.log_format = FORMATS.get(log_format, log_format)
        # user agents as logged -> unescaped: the same few agents (pip's
        # with dozens of escaped quotes) make most of the lines
        self._agents = {}
        fmt = self.log_format.replace('\\"', '"').replace(
            '\\t', '\t').replace('\\\\', '\\')
        self._names = {}
        self.time_parser = None
        pieces = []
        pos = 0
        for match in _DIRECTIVE.finditer(fmt):
            pieces.append(re.escape(fmt[pos:match.start()]))
            quoted = (fmt[match.start() - 1:match.start()] == '"'
                      and fmt[match.end():match.end() + 1] == '"')
            if quoted and fmt[match.end():] == '"':
                # the last field of the line (the user agent of "combined")
                # ends at the line's last quote: no need to match it
                # escape by escape
                quoted = 'last'
            pieces.append(self._directive(
                match.group('letter'), match.group('arg'), quoted))
            pos = match.end()
        pieces.append(re.escape(fmt[pos:]))
        missing = [what for what, names in [
            ('the client (%h or %a)', ['host']),
            ('the time (%t)', ['time']),
            ('the request (%r, or %m and %U)', ['request', 'method+path']),
            ('the status (%s or %>s)', ['status'])]
            if not any(set(name.split('+')) <= set(self._names)
                       for name in names)]
        if missing:
            raise ConfigError('log format {!r} does not log {}'.format(
                self.log_format, ', '.join(missing)))
        self._regex = re.compile(''.join(pieces), re.DOTALL)
        self._groups = [
            self._names.get(name, 0) for name in
            ('host', 'time', 'request', 'method', 'path', 'status',
             'user_agent')]

    def _group(self, name, pattern):
        """Return a capturing group for the first field called *name*, a
        non-capturing one for later fields and those not needed."""
        if name is None or name in self._names:
            return '(?:{})'.format(pattern)
        self._names[name] = len(self._names) + 1
        return '({})'.format(pattern)

    def _directive(self, letter, arg, quoted):
        if letter == '%':
            return '%'
        if letter == 't':
            if 'time' not in self._names:
                self.time_parser = TimeParser(arg)
            if arg is None:
                return r'\[' + self._group('time', r'[^\]]*') + r'\]'
            return self._group('time', '.*?' if not quoted else
                               '.*' if quoted == 'last' else _QUOTED_VALUE)
        name = None
        if letter in _HOST_LETTERS and arg in (None, 'c'):
            name = 'host'
        elif letter in _STATUS_LETTERS:
            name = 'status'
        elif letter == 'r':
            name = 'request'
        elif letter == 'm':
            name = 'method'
        elif letter == 'U':
            name = 'path'
        elif letter == 'i' and arg is not None and arg.lower() == 'user-agent':
            name = 'user_agent'
        if quoted == 'last':
            pattern = '.*'
        elif quoted:
            pattern = _QUOTED_VALUE
        elif letter in _SPACED_LETTERS:
            pattern = '.*?'
        else:
            pattern = r'\S*'
        return self._group(name, pattern)

    def parse(self, line):
        """Return the :class:`LogEntry` of *line* (str, without its line
        ending), or ``None`` if the line is not in this format or holds
        something that cannot be a request (a bad time, status or client).
        """
        match = self._regex.fullmatch(line)
        if match is None:
            return None
        groups = (None,) + match.groups()
        host, stamp, request, method, path, status, agent = [
            groups[index] for index in self._groups]
        if not host or host == '-' or not status.isdigit() or len(status) != 3:
            return None
        try:
            timestamp = self.time_parser(stamp)
        except (ValueError, OverflowError, OSError):
            return None
        if request is not None:
            parts = unescape(request).split(' ')
            if len(parts) < 2 or not parts[1]:
                return None
            method, target = parts[0], parts[1]
            path = parse_request_path(target)
        else:
            path = unescape(path)
        return LogEntry(host, timestamp, method, path, int(status),
                        self._agent(agent))

    def _agent(self, logged):
        if not logged or logged == '-':
            return ''
        try:
            return self._agents[logged]
        except KeyError:
            pass
        if len(self._agents) >= AGENT_CACHE_SIZE:
            self._agents.clear()
        agent = self._agents[logged] = unescape(logged)
        return agent
