"""The message protocols of every queue in piwheels, declared in one place.

Every message is an *action* (a short upper-case string) and, for most
actions, one *data* value. :class:`Protocol` lists, for one queue, the
actions each end may send and the shape of their data; the
:mod:`piwheels.transport` sockets validate every message against it on send
**and** on receive, so a malformed message never reaches a handler.

Declarations are written from the **binding** side of the queue: ``recv`` is
what the binding socket receives, ``send`` what it sends. The connecting peer
uses :meth:`Protocol.reversed`, e.g.::

    queue = ctx.socket(transport.ROUTER, protocol=protocols.slave_driver)
    queue.bind('tcp://*:5555')                              # master
    queue = ctx.socket(transport.REQ,
                       protocol=reversed(protocols.slave_driver))  # slave

Naming: a protocol is named after the task (or program) the queue serves,
plus the queue's purpose where one task has several, so ``grep`` finds both
ends. Each declaration's docstring says who binds and who connects:

* ``task_control`` -- main thread -> every task (PAUSE/RESUME/QUIT);
  ``slave_driver_control`` and ``big_brother_control`` extend it
* ``slave_driver`` -- piw-slave <-> SlaveDriver (the build protocol)
* ``file_juggler_files`` -- piw-slave / piw-import <-> FileJuggler
  (chunked file transfer)
* ``file_juggler_fs`` -- master tasks -> FileJuggler (file-system RPC:
  EXPECT, VERIFY, REMOVE, STATVFS)
* ``file_juggler_sync`` -- FileJuggler <-> its FileSyncer (flushes staged
  files to disk)
* ``the_oracle`` -- master tasks -> Seraph -> TheOracle (database RPC, one
  action per database method)
* ``the_architect`` -- TheArchitect -> SlaveDriver (the build queue)
* ``slave_driver_deletions`` -- CloudGazer / MrChase -> SlaveDriver
* ``big_brother`` -- tasks -> BigBrother (statistics)
* ``the_secretary`` -- tasks -> TheSecretary (web page requests)
* ``the_scribe`` -- TheSecretary -> TheScribe (web page writes)
* ``master_status`` -- tasks -> master main thread (status, internal)
* ``monitor_status`` -- master -> piw-monitor / piw-sense (status PUB)
* ``master_control`` -- piw-monitor / piw-sense -> master (control)
* ``mr_chase`` -- piw-import / piw-add / piw-remove / piw-rebuild <->
  MrChase
* ``lumberjack`` -- piw-logger <-> Lumberjack (batches of access-log
  records, each acknowledged)

Each data shape is defined once: either a plain type (``str``), a
:mod:`typing` form (``Optional[str]``, ``List[BuiltFile]``,
``Literal['HOME', 'SEARCH']``), a voluptuous validator, or a
:func:`payload` class -- a :class:`~typing.NamedTuple` whose annotated fields
derive its schema, with :meth:`as_message` / :meth:`from_message`. A payload
travels as a CBOR array of its fields in order and is received as an
instance of its class. The wire encoding of datetimes, durations, sets and
tuples is described in ``docs/protocols.rst`` (section "Wire format").
"""

import math
import re
import typing
from datetime import datetime, timedelta, timezone

from voluptuous import ALLOW_EXTRA, Invalid, MultipleInvalid, Required, Schema

from .exc import ProtocolError


class _NoData:
    """The type of :data:`NoData`; compares equal only to itself."""

    __slots__ = ()

    def __repr__(self):
        return 'NoData'

    def __reduce__(self):
        return 'NoData'


#: The data of an action that carries none (sent as the bare action string).
NoData = _NoData()


# -- validators --------------------------------------------------------------
#
# Each annotation is turned into a plain callable ``validate(value) ->
# value`` which raises :exc:`voluptuous.Invalid` carrying the path to the bad
# field. Validators accept both the Python form and the wire form of a value
# (a duration as seconds, a set or tuple as a list) and return the Python
# form, so the same schema serves send (checks Python values) and receive
# (restores them from CBOR).

def _invalid(message, path=()):
    return Invalid(message, path=list(path))


def _type_name(value):
    return type(value).__name__


def _plain(expected, name):
    def validate(value):
        if isinstance(value, expected) and not isinstance(value, bool):
            return value
        raise _invalid('expected {}, got {}'.format(name, _type_name(value)))
    return validate


def _validate_bool(value):
    if isinstance(value, bool):
        return value
    raise _invalid('expected bool, got {}'.format(_type_name(value)))


def _validate_float(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _invalid('expected a number, got {}'.format(_type_name(value)))


def _validate_datetime(value):
    # Always UTC: a naive datetime is taken to be UTC already; an aware one
    # is converted. Receivers always get an aware UTC datetime.
    if isinstance(value, datetime):
        if value.tzinfo is timezone.utc:
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    raise _invalid('expected a datetime, got {}'.format(_type_name(value)))


def _validate_timedelta(value):
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and abs(value) < 1e12:
            return timedelta(seconds=value)
        raise _invalid('duration out of range: {!r}'.format(value))
    raise _invalid('expected a duration in seconds, got {}'.format(
        _type_name(value)))


def _sequence(value, what):
    if isinstance(value, (list, tuple)):
        return value
    raise _invalid('expected {}, got {}'.format(what, _type_name(value)))


def _validate_items(items, validate):
    result = []
    for index, item in enumerate(items):
        try:
            result.append(validate(item))
        except Invalid as exc:
            raise _invalid(exc.msg, [index] + exc.path) from None
    return result


def _list_of(validate):
    def validate_list(value):
        return _validate_items(_sequence(value, 'a list'), validate)
    return validate_list


def _set_of(validate):
    def validate_set(value):
        if isinstance(value, (set, frozenset)):
            value = list(value)
        items = _validate_items(_sequence(value, 'a set (array)'), validate)
        try:
            return set(items)
        except TypeError:
            raise _invalid('set items must be hashable') from None
    return validate_set


def _tuple_of(validators):
    def validate_tuple(value):
        value = _sequence(value, 'a tuple (array)')
        if len(value) != len(validators):
            raise _invalid('expected {} items, got {}'.format(
                len(validators), len(value)))
        result = []
        for index, (item, validate) in enumerate(zip(value, validators)):
            try:
                result.append(validate(item))
            except Invalid as exc:
                raise _invalid(exc.msg, [index] + exc.path) from None
        return tuple(result)
    return validate_tuple


def _variable_tuple_of(validate):
    def validate_tuple(value):
        return tuple(_validate_items(_sequence(value, 'a tuple (array)'),
                                     validate))
    return validate_tuple


def _dict_of(validate_key, validate_value):
    def validate_dict(value):
        if not isinstance(value, dict):
            raise _invalid('expected a map, got {}'.format(_type_name(value)))
        result = {}
        for key, item in value.items():
            try:
                key = validate_key(key)
            except Invalid as exc:
                raise _invalid('bad key: ' + exc.msg) from None
            try:
                result[key] = validate_value(item)
            except Invalid as exc:
                raise _invalid(exc.msg, [key] + exc.path) from None
        return result
    return validate_dict


def _optional(validate):
    def validate_optional(value):
        if value is None:
            return None
        return validate(value)
    return validate_optional


def _any_of(validators, names):
    def validate_any(value):
        for validate in validators:
            try:
                return validate(value)
            except Invalid:
                pass
        raise _invalid('expected {}, got {}'.format(
            ' or '.join(names), _type_name(value)))
    return validate_any


def _literal(values):
    def validate_literal(value):
        if isinstance(value, str) and value in values:
            return value
        raise _invalid('expected one of {}, got {!r}'.format(
            ', '.join(sorted(values)), value))
    return validate_literal


def _voluptuous(schema):
    compiled = Schema(schema)

    def validate_with_schema(value):
        try:
            return compiled(value)
        except MultipleInvalid as exc:
            error = exc.errors[0]
            raise _invalid(error.msg, error.path) from None
    return validate_with_schema


def _describe(annotation):
    return getattr(annotation, '__name__', None) or repr(annotation)


_SIMPLE = {
    str: _plain(str, 'str'),
    bytes: _plain(bytes, 'bytes'),
    int: _plain(int, 'int'),
    bool: _validate_bool,
    float: _validate_float,
    datetime: _validate_datetime,
    timedelta: _validate_timedelta,
    type(None): lambda value: value if value is None else _raise_not_none(
        value),
}


def _raise_not_none(value):
    raise _invalid('expected None, got {}'.format(_type_name(value)))


class Check:
    """Base of the field checks declared here; a check is a callable
    ``check(value) -> value`` raising :exc:`voluptuous.Invalid`."""

    __slots__ = ()

    def compiled(self):
        """Return the fastest callable doing this check (used by
        :func:`validator`; a check may return a closure with its limits in
        local variables)."""
        return self


class Text(Check):
    """A str of *min_length* to *max_length* characters without NULs.

    :param int max_length: the longest value accepted.
    :param int min_length: the shortest value accepted (default 1).
    """

    __slots__ = ('min_length', 'max_length')

    def __init__(self, max_length, min_length=1):
        self.min_length = min_length
        self.max_length = max_length

    def __repr__(self):
        return 'Text({}..{})'.format(self.min_length, self.max_length)

    def compiled(self):
        low, high = self.min_length, self.max_length

        def check_text(value):
            if (type(value) is str and low <= len(value) <= high
                    and '\x00' not in value):
                return value
            return self(value)
        return check_text

    def __call__(self, value):
        if not isinstance(value, str):
            raise _invalid('expected str, got {}'.format(_type_name(value)))
        if not self.min_length <= len(value) <= self.max_length:
            raise _invalid('length {} is outside {}..{}'.format(
                len(value), self.min_length, self.max_length))
        if '\x00' in value:
            raise _invalid('NUL character in text')
        return value


class Natural(Check):
    """An int from 0 to *maximum* (default: PostgreSQL's largest bigint)."""

    __slots__ = ('maximum',)

    def __init__(self, maximum=2 ** 63 - 1):
        self.maximum = maximum

    def __repr__(self):
        return 'Natural(0..{})'.format(self.maximum)

    def compiled(self):
        maximum = self.maximum

        def check_natural(value):
            if type(value) is int and 0 <= value <= maximum:
                return value
            return self(value)
        return check_natural

    def __call__(self, value):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid('expected int, got {}'.format(_type_name(value)))
        if not 0 <= value <= self.maximum:
            raise _invalid('{} is outside 0..{}'.format(value, self.maximum))
        return value


_SHA256_HEX = re.compile('[0-9a-f]{64}')


class Sha256(Check):
    """A SHA256 digest as 64 lower-case hexadecimal digits."""

    __slots__ = ()

    def __repr__(self):
        return 'Sha256()'

    def __call__(self, value):
        if isinstance(value, str) and _SHA256_HEX.fullmatch(value):
            return value
        raise _invalid('expected a SHA256 hex digest, got {!r}'.format(
            value if not isinstance(value, str) else value[:80]))


class WheelTags(typing.NamedTuple):
    """The parts of a wheel's filename (PEP 427), see
    :func:`parse_wheel_filename`."""

    package_tag: str           # distribution name, e.g. "numpy"
    package_version_tag: str   # version, e.g. "1.26.4"
    build_tag: str             # optional build number, '' when absent
    py_version_tag: str        # e.g. "cp311"
    abi_tag: str               # e.g. "cp311" or "none"
    platform_tag: str          # e.g. "linux_armv7l"


_WHEEL_PARTS = re.compile(r'[A-Za-z0-9_.+!]+(?:-[A-Za-z0-9_.+!]+){4,5}')


def parse_wheel_filename(filename):
    """Split a wheel's *filename* into its :class:`WheelTags`.

    Only a plain name is accepted: no directory separators, no ``..``, no
    leading dot, no characters outside PEP 427's, at most 255 characters,
    ending in ``.whl`` with five or six ``-``-separated parts (the optional
    build tag starting with a digit). This is what makes a filename received
    from the network safe to join to the output directory.

    :raises ValueError: saying what is wrong with *filename*.
    """
    if not isinstance(filename, str):
        raise ValueError('wheel filename must be a str')
    if not 0 < len(filename) <= 255:
        raise ValueError('wheel filename of {} characters'.format(
            len(filename)))
    if '/' in filename or '\\' in filename or '..' in filename:
        raise ValueError('wheel filename {!r} contains a path'.format(
            filename))
    if filename.startswith('.') or not filename.endswith('.whl'):
        raise ValueError('{!r} is not a wheel filename'.format(filename))
    stem = filename[:-len('.whl')]
    if not _WHEEL_PARTS.fullmatch(stem):
        parts = stem.split('-')
        if len(parts) in (5, 6) and all(parts):
            raise ValueError('wheel filename {!r} has characters outside '
                             'PEP 427'.format(filename))
        raise ValueError('{!r} is not a wheel filename'.format(filename))
    parts = stem.split('-')
    if len(parts) == 6:
        package, version, build, py_tag, abi, platform = parts
        if not build[0].isdigit():
            raise ValueError('wheel filename {!r} has a bad build tag'.format(
                filename))
    else:
        package, version, py_tag, abi, platform = parts
        build = ''
    return WheelTags(package, version, build, py_tag, abi, platform)


class WheelFilename(Check):
    """A plain wheel filename, see :func:`parse_wheel_filename`."""

    __slots__ = ()

    def __repr__(self):
        return 'WheelFilename()'

    def __call__(self, value):
        try:
            if type(value) is str:
                wheel_tags(value)
            else:
                parse_wheel_filename(value)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        return value


#: how many accepted wheel filenames :func:`wheel_tags` remembers
WHEEL_FILENAME_MEMO = 10000

_accepted_wheel_filenames = {}


def wheel_tags(filename):
    """Return :func:`parse_wheel_filename` of the str *filename*, from
    memory if it was accepted lately: a batch of downloads names the same
    few wheels again and again, and a built wheel's name is checked at
    each queue it passes, against its tags each time."""
    tags = _accepted_wheel_filenames.get(filename)
    if tags is None:
        tags = parse_wheel_filename(filename)
        if len(_accepted_wheel_filenames) >= WHEEL_FILENAME_MEMO:
            _accepted_wheel_filenames.clear()
        _accepted_wheel_filenames[filename] = tags
    return tags


class Batch(Check):
    """A list of up to *max_items* values of *shape* (log record batches).

    :param shape: the shape of each item (anything :func:`validator`
        takes).
    :param int max_items: the most items accepted.
    """

    __slots__ = ('shape', 'max_items', '_validate')

    def __init__(self, shape, max_items):
        self.shape = shape
        self.max_items = max_items
        self._validate = _list_of(validator(shape))

    def __repr__(self):
        return 'Batch({}, {})'.format(_describe(self.shape), self.max_items)

    def __call__(self, value):
        if isinstance(value, (list, tuple)) and len(value) > self.max_items:
            raise _invalid('batch of {} items exceeds {}'.format(
                len(value), self.max_items))
        return self._validate(value)


class Anything(Check):
    """Any value CBOR can carry; used only where a later check (a payload's
    ``validated``) validates it."""

    __slots__ = ()

    def __repr__(self):
        return 'Anything()'

    def __call__(self, value):
        return value


def validator(annotation):
    """Return the validating callable for *annotation*.

    :param annotation: a plain type (``str``, ``int``, ``float``, ``bool``,
        ``bytes``, :class:`~datetime.datetime`, :class:`~datetime.timedelta`),
        a :func:`payload` class, a :mod:`typing` form (``Optional``,
        ``Union``, ``List``, ``Set``, ``FrozenSet``, ``Tuple``, ``Dict``,
        ``Literal``) or any voluptuous schema.
    :returns: a callable taking a value (Python or wire form) and returning
        its Python form, raising :exc:`voluptuous.Invalid` (with the path to
        the offending field) when it does not match.
    """
    if annotation is None:
        annotation = type(None)
    if isinstance(annotation, Check):
        return annotation.compiled()
    if isinstance(annotation, type) and hasattr(annotation, '_payload_fields'):
        return annotation.validate
    try:
        return _SIMPLE[annotation]
    except (KeyError, TypeError):
        pass
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        if len(args) == 2 and type(None) in args:
            return _optional(validator(
                args[0] if args[1] is type(None) else args[1]))
        return _any_of([validator(arg) for arg in args],
                       [_describe(arg) for arg in args])
    if origin is typing.Literal:
        return _literal(frozenset(args))
    if origin is list:
        return _list_of(validator(args[0]))
    if origin in (set, frozenset):
        return _set_of(validator(args[0]))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _variable_tuple_of(validator(args[0]))
        return _tuple_of([validator(arg) for arg in args])
    if origin is dict:
        return _dict_of(validator(args[0]), validator(args[1]))
    return _voluptuous(annotation)


def payload(cls):
    """Class decorator turning a :class:`~typing.NamedTuple` into a payload.

    The class gains :meth:`validate` (its voluptuous-compatible validator,
    derived from the field annotations), :meth:`schema`,
    :meth:`as_message` and :meth:`from_message`. On the wire a payload is a
    CBOR array of its fields in declaration order; receivers get an instance
    of the class.

    A class may define ``validated(self)`` for checks across fields: it
    returns the instance to use (itself, or a corrected copy) or raises
    :exc:`ValueError` with the reason.
    """
    fields = [
        (name, validator(cls.__annotations__[name])) for name in cls._fields
    ]
    checks = [check for name, check in fields]
    new = tuple.__new__
    cross_check = getattr(cls, 'validated', None)

    def validate(value):
        if not isinstance(value, (list, tuple)):
            raise _invalid('expected {} (an array), got {}'.format(
                cls.__name__, _type_name(value)))
        if len(value) != len(fields):
            raise _invalid('{} needs {} fields ({}), got {}'.format(
                cls.__name__, len(fields), ', '.join(cls._fields),
                len(value)))
        try:
            instance = new(cls, [
                check(item) for item, check in zip(value, checks)])
        except Invalid:
            # find the field at fault (the fast path above cannot say)
            for item, (name, check) in zip(value, fields):
                try:
                    check(item)
                except Invalid as exc:
                    raise _invalid(exc.msg, [name] + exc.path) from None
            raise
        if cross_check is not None:
            try:
                instance = cross_check(instance)
            except ValueError as exc:
                raise _invalid(str(exc)) from None
        return instance

    def schema():
        """Return the voluptuous schema of this payload."""
        return Schema(validate)

    def as_message(self):
        """Return this payload as the list sent on the wire."""
        return [
            item.as_message() if hasattr(item, 'as_message') else item
            for item in self
        ]

    def from_message(value):
        """Validate *value* (a list from the wire) and return an instance.

        :raises ProtocolError: if *value* does not match the payload.
        """
        try:
            return validate(value)
        except Invalid as exc:
            raise ProtocolError('{}: {}'.format(
                cls.__name__, describe_invalid(exc))) from None

    cls._payload_fields = tuple(name for name, check in fields)
    cls.validate = staticmethod(validate)
    cls.schema = staticmethod(schema)
    cls.as_message = as_message
    cls.from_message = staticmethod(from_message)
    return cls


def describe_invalid(exc):
    """Render a :exc:`voluptuous.Invalid` as ``field.path: message``."""
    if exc.path:
        return '{}: {}'.format('.'.join(str(part) for part in exc.path),
                               exc.msg)
    return exc.msg


class Protocol:
    """The actions one queue carries, declared from the binding side.

    :param dict recv: maps each action the binding socket receives to its
        data shape (:data:`NoData`, a type, a :mod:`typing` form, a
        voluptuous schema or a :func:`payload` class).
    :param dict send: the same for the actions the binding socket sends.
    :param str name: the queue's name, used in error messages.
    :param int max_size: the largest encoded message (bytes) a socket using
        this protocol accepts, or ``None`` for no limit. Set it on every
        protocol whose queue faces the network; the transport applies it as
        ZeroMQ's ``MAXMSGSIZE`` and checks it on send and receive.
    """

    __slots__ = ('recv', 'send', 'name', 'max_size', '_validators')

    def __init__(self, recv=None, send=None, *, name='', max_size=None):
        self.recv = dict(recv or {})
        self.send = dict(send or {})
        self.name = name
        self.max_size = max_size
        for action in list(self.recv) + list(self.send):
            if not isinstance(action, str):
                raise TypeError('action {!r} is not a str'.format(action))
        # An action may appear in both directions with different shapes
        # (a database request and its reply share the action's name).
        self._validators = {
            (direction, action): validator(shape)
            for direction, actions in (('recv', self.recv),
                                       ('send', self.send))
            for action, shape in actions.items()
            if shape is not NoData
        }

    def __repr__(self):
        return 'Protocol(recv={!r}, send={!r}{})'.format(
            self.recv, self.send,
            ', name={!r}'.format(self.name) if self.name else '')

    def __eq__(self, other):
        if not isinstance(other, Protocol):
            return NotImplemented
        return (self.recv, self.send) == (other.recv, other.send)

    def __hash__(self):
        return hash((self.name, tuple(self.recv), tuple(self.send)))

    def reversed(self):
        """Return the protocol as seen from the connecting end."""
        return Protocol(recv=self.send, send=self.recv, name=self.name,
                        max_size=self.max_size)

    __reversed__ = reversed

    def check(self, direction, action, data):
        """Validate one message and return its data in Python form.

        :param str direction: ``'send'`` or ``'recv'``.
        :param str action: the message's action.
        :param data: the message's data (or :data:`NoData`).
        :raises ProtocolError: naming the queue, action and field at fault.
        """
        actions = self.send if direction == 'send' else self.recv
        try:
            shape = actions[action]
        except (KeyError, TypeError):
            raise ProtocolError(
                '{}: unknown action {!r} (this end may {} {})'.format(
                    self.name or 'queue', action, direction,
                    ', '.join(sorted(actions)) or 'nothing')) from None
        if shape is NoData:
            if data is not NoData:
                raise ProtocolError('{}: {} takes no data'.format(
                    self.name or 'queue', action))
            return data
        if data is NoData:
            raise ProtocolError('{}: {} requires data'.format(
                self.name or 'queue', action))
        try:
            return self._validators[direction, action](data)
        except Invalid as exc:
            raise ProtocolError('{}: {}: {}'.format(
                self.name or 'queue', action,
                describe_invalid(exc))) from None



# -- limits and field types -------------------------------------------------

#: Version of the slave <-> master protocols (``slave_driver`` and
#: ``file_juggler_files``); a slave announcing another is sent DIE.
PROTOCOL_VERSION = 1

#: The longest build log (characters) a BUILT or IMPORT may carry; slaves
#: keep the head and tail of longer logs.
MAX_BUILD_OUTPUT = 2 * 1024 * 1024

#: The largest chunk a FETCH may ask for, in bytes.
MAX_CHUNK_SIZE = 4 * 1024 * 1024

#: The most records one LOG* message may carry.
MAX_LOG_BATCH = 10000

#: The most builds one LOGBUILDS message may carry.
MAX_BUILD_BATCH = 200

#: The most staged files one PUBLISH or DISCARD may carry.
MAX_STAGED_BATCH = 10000

#: The widths of the access-log records' fields (the database's columns):
#: a client's address, each field of pip's user agent, a page's path, and a
#: user agent kept whole.
MAX_HOST = 100
MAX_AGENT_FIELD = 100
MAX_PAGE = 200
MAX_USER_AGENT = 1000

Name = Text(200)                  # package names, versions, tags, labels
OptionalText = Text(1000, 0)      # skip reasons, descriptions of errors
Description = Text(10000, 0)      # project descriptions (PyPI summaries)
Output = Text(MAX_BUILD_OUTPUT, 0)
ErrorText = Text(2000)            # one-line error messages in replies
Count = Natural()                 # sizes, counts, ids
Hash = Sha256()
Filename = WheelFilename()
Host = Text(MAX_HOST)             # a web client's address (or name)
AgentField = typing.Optional[Text(MAX_AGENT_FIELD)]  # from pip's user agent
UserAgent = Text(MAX_USER_AGENT, 0)  # a web client's whole user agent


# -- payloads ----------------------------------------------------------------

@payload
class PackageVersion(typing.NamedTuple):
    """A version of a package."""

    package: Name              # the package's name
    version: Name              # the version string as PyPI has it


@payload
class BuiltFile(typing.NamedTuple):
    """A wheel produced by a build, as the slave (or importer) reports it.

    The tags must be exactly the parts of *filename*; a filename with a path
    in it is refused (:func:`parse_wheel_filename`).
    """

    filename: Filename         # the wheel's plain filename
    filesize: Count            # its size in bytes
    filehash: Hash             # SHA256 of its contents (hex)
    package_tag: Name          # 1st part of the filename
    package_version_tag: Name  # 2nd part of the filename
    py_version_tag: Name       # 3rd-from-last part, e.g. "cp311"
    abi_tag: Name              # 2nd-from-last part, e.g. "cp311", "none"
    platform_tag: Name         # last part, e.g. "linux_armv7l"
    requires_python: typing.Optional[Text(200, 0)]  # Requires-Python, or None
    dependencies: typing.Dict[Name, typing.Set[Name]]  # tool -> packages,
    # e.g. {'apt': {'libc6', 'libatlas3-base'}}

    def validated(self):
        tags = wheel_tags(self.filename)
        if self[3:8] == (tags.package_tag, tags.package_version_tag,
                         tags.py_version_tag, tags.abi_tag, tags.platform_tag):
            return self
        for field in ('package_tag', 'package_version_tag', 'py_version_tag',
                      'abi_tag', 'platform_tag'):
            if getattr(self, field) != getattr(tags, field):
                raise ValueError('{} {!r} does not match filename {!r}'.format(
                    field, getattr(self, field), self.filename))
        return self


#: Why a build failed (BuildResult.failure / BuildRecord.failure): '' when
#: it succeeded; 'error' the build itself failed; 'timeout' it outlived the
#: build timeout; 'killed' out of memory or killed by a signal; 'disk' the
#: disk filled; 'network' the source could not be fetched. All but 'error'
#: are transient and retried later.
Failure = typing.Literal['', 'error', 'timeout', 'killed', 'disk', 'network']


@payload
class SlaveHello(typing.NamedTuple):
    """A build slave introducing itself (slave_driver HELLO)."""

    protocol_version: Count    # PROTOCOL_VERSION of the slave's code
    piwheels_version: Name     # piwheels.__version__ of the slave
    build_timeout: timedelta   # the slave's build timeout (clamped by the
    # master, which says what it allows in ACK)
    master_timeout: timedelta  # how long the slave waits for a reply
    # before starting again from HELLO
    py_version_tag: Name       # Python tag it builds for, e.g. "cp311"
    abi_tag: Name              # ABI tag it builds for, e.g. "cp311"
    platform_tag: Name         # platform tag, e.g. "linux_armv7l"
    label: Name                # free-form label, usually the hostname
    os_name: OptionalText      # e.g. "Debian GNU/Linux"
    os_version: OptionalText   # e.g. "12 (bookworm)"
    board_revision: OptionalText  # e.g. "c03111", '' when unknown
    board_serial: OptionalText    # board serial number, '' when unknown


@payload
class SlaveAck(typing.NamedTuple):
    """The master welcoming a slave (slave_driver ACK)."""

    slave_id: Count            # the master's id for the slave (for logs)
    pypi_url: Text(2000)       # the simple index to build from
    build_timeout: timedelta   # the build timeout to use: the slave's,
    # clamped to the master's limits


@payload
class SlaveStats(typing.NamedTuple):
    """Resource statistics of a build slave (slave_driver IDLE and BUSY)."""

    timestamp: datetime        # the slave's clock when it sent them (UTC)
    disk_size: Count           # bytes in the build file-system
    disk_free: Count           # bytes free there
    mem_size: Count            # bytes of RAM
    mem_free: Count            # bytes of RAM available to builds
    swap_size: Count           # bytes of swap
    swap_free: Count           # bytes of swap free
    load_average: float        # one-minute load average
    cpu_temp: typing.Optional[float]  # CPU temperature (Celsius) or None


@payload
class BuildRequest(typing.NamedTuple):
    """What a slave is to build (slave_driver BUILD)."""

    package: Name              # the package to build
    version: Name              # exactly this version


@payload
class BuildResult(typing.NamedTuple):
    """The outcome of a slave's build (slave_driver BUILT)."""

    status: bool               # True if the build succeeded
    duration: timedelta        # how long pip took
    output: Output             # the build log
    files: typing.List[BuiltFile]  # the wheels produced ([] on failure)
    failure: Failure           # why it failed ('' when it succeeded)


@payload
class BuildRecord(typing.NamedTuple):
    """A complete build attempt: imported (mr_chase IMPORT) or logged
    (the_oracle LOGBUILD). :class:`piwheels.states.BuildState` converts to
    and from it."""

    slave_id: Count            # the slave that built it (0 for imports)
    package: Name              # the package built
    version: Name              # the version built
    abi_tag: typing.Optional[Name]  # the ABI built for; None only in IMPORT
    # (the master then uses its default ABI)
    status: bool               # True if the build succeeded
    duration: timedelta        # how long the build took
    output: Output             # the build log
    files: typing.List[BuiltFile]  # the wheels produced
    failure: Failure           # why it failed ('' when it succeeded)


@payload
class Chunk(typing.NamedTuple):
    """A piece of a file being transferred (file_juggler_files CHUNK)."""

    offset: Count              # where in the file *data* starts
    data: bytes                # the bytes (at most the FETCHed length)


@payload
class Fetch(typing.NamedTuple):
    """A request for a piece of a file (file_juggler_files FETCH)."""

    offset: Count              # where in the file to start
    length: Natural(MAX_CHUNK_SIZE)  # how many bytes to send


@payload
class ExpectFile(typing.NamedTuple):
    """Tell FileJuggler a transfer is coming (file_juggler_fs EXPECT)."""

    slave_id: Count            # the slave (or importer) that will send it
    file: BuiltFile            # the file, with its size and hash


@payload
class VerifyFile(typing.NamedTuple):
    """Ask FileJuggler to verify a finished transfer and publish it
    (file_juggler_fs VERIFY)."""

    slave_id: Count            # the slave that sent the file
    package: Name              # the package whose directory receives it


@payload
class StageFile(typing.NamedTuple):
    """Tell FileJuggler a transfer is coming, to be verified and staged the
    moment it ends (file_juggler_fs STAGE: EXPECT and CHECK in one)."""

    slave_id: Count            # the slave that will send it
    package: Name              # the package whose directory receives it
    file: BuiltFile            # the file, with its size and hash


@payload
class StageOutcome(typing.NamedTuple):
    """What became of a file SlaveDriver asked FileJuggler to STAGE once
    its transfer was complete (file_juggler_fs STAGE reply)."""

    slave_id: Count            # the slave that sent it
    package: Name              # the package whose directory receives it
    filename: Filename         # the wheel
    outcome: typing.Literal['STAGED', 'RETRY', 'ERROR']  # verified and
    # staged; did not verify and must be sent again; failed for good
    reason: typing.Optional[ErrorText]  # why (None when STAGED)


@payload
class RemoveFile(typing.NamedTuple):
    """Ask FileJuggler to delete a published wheel (file_juggler_fs
    REMOVE)."""

    package: Name              # the package directory holding it
    filename: Filename         # the wheel to delete


@payload
class StagedFile(typing.NamedTuple):
    """A verified file FileJuggler holds until the build is in the database
    (file_juggler_fs PUBLISH and DISCARD)."""

    slave_id: Count            # the slave that sent it
    package: Name              # the package whose directory receives it
    filename: Filename         # the wheel


@payload
class SlaveCounts(typing.NamedTuple):
    """What the build slaves are doing (big_brother STATSLAVES)."""

    slaves: typing.Dict[Name, Count]  # slave state (e.g. 'idle', 'busy')
    # -> slaves in it
    last_build: typing.Optional[datetime]  # when the last build finished
    # (UTC), or None


@payload
class DiskUsage(typing.NamedTuple):
    """The output file-system's space (file_juggler_fs STATVFS reply,
    big_brother STATFS)."""

    disk_size: Count           # bytes in the file-system
    disk_free: Count           # bytes available to the master


@payload
class NewPackage(typing.NamedTuple):
    """Register a package (the_oracle NEWPKG)."""

    package: Name              # the package's canonical name
    skip: OptionalText         # reason never to build it, or ''
    description: Description   # PyPI summary, or ''


@payload
class NewVersion(typing.NamedTuple):
    """Register a version (the_oracle NEWVER)."""

    package: Name              # the package (must exist)
    version: Name              # the version
    released: typing.Optional[datetime]  # release time (UTC), None: now
    skip: OptionalText         # reason never to build it, or ''


@payload
class PackageName(typing.NamedTuple):
    """Record a name a package was seen under (the_oracle NEWPKGNAME)."""

    package: Name              # the canonical name
    name: Name                 # the alias
    seen: datetime             # when it was last seen (UTC)


@payload
class PackageText(typing.NamedTuple):
    """A package and a piece of text: SETDESC (the description) and SKIPPKG
    (the skip reason) of the_oracle."""

    package: Name              # the package
    text: Description          # the description or the reason


@payload
class VersionText(typing.NamedTuple):
    """A version and a reason (the_oracle SKIPVER)."""

    package: Name              # the package
    version: Name              # the version
    text: OptionalText         # the skip reason ('' to build again)


@payload
class RewritePending(typing.NamedTuple):
    """A page rewrite TheSecretary is holding back (the_oracle
    LOADRWP/SAVERWP), kept across restarts."""

    package: Name              # the package whose pages are due
    added_at: datetime         # when the request arrived (UTC)
    command: typing.Literal['PROJECT', 'BOTH']  # which pages


@payload
class DatabaseStats(typing.NamedTuple):
    """Build and download statistics from the database (the_oracle
    GETSTATS reply)."""

    packages_built: Count      # packages with at least one built version
    builds_last_hour: typing.Dict[Name, Count]  # ABI -> builds in the
    # last hour
    builds_time: timedelta     # total time spent building
    builds_size: Count         # total bytes of wheels
    new_last_hour: Count       # versions registered in the last hour
    files_count: Count         # wheels in the index
    downloads_last_hour: Count  # downloads in the last hour
    downloads_last_month: Count  # downloads in the last 30 days
    downloads_all: Count       # downloads ever
    builds_pending: typing.Dict[Name, Count]  # ABI -> versions waiting


@payload
class LoggedBuild(typing.NamedTuple):
    """What the database made of one build of a LOGBUILDS batch."""

    build_id: typing.Optional[Count]  # the new build's id; None when it
    # could not be recorded (see *error*)
    new_files: typing.Set[Filename]   # files registered: publish them
    duplicates: typing.Set[Filename]  # identical to the published file
    conflicts: typing.Set[Filename]   # the published file of that name has
    # other bytes and stays; the build is marked with a conflict
    error: OptionalText        # why the build was not recorded, or ''


@payload
class MasterStats(typing.NamedTuple):
    """Statistics of the whole farm, made by BigBrother for the home page
    and the monitors."""

    timestamp: datetime        # when they were gathered (UTC)
    packages_built: Count      # packages with at least one built version
    builds_last_hour: typing.Dict[Name, Count]  # ABI -> builds in the
    # last hour
    builds_time: timedelta     # total time spent building
    builds_size: Count         # total bytes of wheels
    builds_pending: typing.Dict[Name, Count]  # ABI -> versions waiting
    new_last_hour: Count       # versions registered in the last hour
    files_count: Count         # wheels in the index
    downloads_last_hour: Count  # downloads in the last hour
    downloads_last_month: Count  # downloads in the last 30 days
    downloads_all: Count       # downloads ever
    disk_size: Count           # bytes in the output file-system
    disk_free: Count           # bytes free there
    mem_size: Count            # bytes of RAM on the master
    mem_free: Count            # bytes of RAM available
    swap_size: Count           # bytes of swap
    swap_free: Count           # bytes of swap free
    load_average: float        # one-minute load average
    cpu_temp: typing.Optional[float]  # CPU temperature (Celsius) or None
    slaves: typing.Dict[Name, Count]  # slave state (e.g. 'idle', 'busy')
    # -> slaves in it (for status.json)
    last_pypi_event: typing.Optional[datetime]  # when the last PyPI event
    # was read (UTC), or None
    last_build: typing.Optional[datetime]  # when the last build finished
    # (UTC), or None


@payload
class BuildLog(typing.NamedTuple):
    """A build log to publish (the_secretary / the_scribe LOG)."""

    build_id: Count            # the build's id in the database
    output: Output             # the log


@payload
class BuildPages(typing.NamedTuple):
    """A recorded build's log and the pages it changes (the_secretary
    BUILDS)."""

    build_id: Count            # the build's id in the database
    package: Name              # the package built
    both: bool                 # True: new files were published, so its
    # simple index is written as well as its project page and JSON
    output: Output             # the build's log


@payload
class DownloadState(typing.NamedTuple):
    """One wheel download from the web server's log (LOGDOWNLOAD)."""

    filename: Filename         # the wheel downloaded
    host: Host                 # the client's address
    timestamp: datetime        # when (UTC)
    arch: AgentField               # from pip's user agent, e.g. "armv7l"
    distro_name: AgentField        # e.g. "Raspbian GNU/Linux"
    distro_version: AgentField     # e.g. "12"
    os_name: AgentField            # e.g. "Linux"
    os_version: AgentField         # e.g. the kernel's version
    py_name: AgentField            # e.g. "CPython"
    py_version: AgentField         # e.g. "3.11.2"
    installer_name: AgentField     # e.g. "pip"
    installer_version: AgentField  # e.g. "23.0.1"
    setuptools_version: AgentField # e.g. "66.1.1"


@payload
class SearchState(typing.NamedTuple):
    """One fetch of a package's simple index page by pip (LOGSEARCH)."""

    package: Name              # the package looked up
    host: Host                 # the client's address
    timestamp: datetime        # when (UTC)
    arch: AgentField               # from pip's user agent, e.g. "armv7l"
    distro_name: AgentField        # e.g. "Raspbian GNU/Linux"
    distro_version: AgentField     # e.g. "12"
    os_name: AgentField            # e.g. "Linux"
    os_version: AgentField         # e.g. the kernel's version
    py_name: AgentField            # e.g. "CPython"
    py_version: AgentField         # e.g. "3.11.2"
    installer_name: AgentField     # e.g. "pip"
    installer_version: AgentField  # e.g. "23.0.1"
    setuptools_version: AgentField # e.g. "66.1.1"


@payload
class ProjectState(typing.NamedTuple):
    """One view of a project page (LOGPROJECT)."""

    package: Name              # the project viewed
    host: Host                 # the client's address
    timestamp: datetime        # when (UTC)
    user_agent: UserAgent      # the browser's user agent


@payload
class JSONState(typing.NamedTuple):
    """One fetch of a project's JSON (LOGJSON)."""

    package: Name              # the project fetched
    host: Host                 # the client's address
    timestamp: datetime        # when (UTC)
    user_agent: UserAgent      # the client's user agent


@payload
class PageState(typing.NamedTuple):
    """One view of another page of the site (LOGPAGE)."""

    page: Text(MAX_PAGE)       # the page's path, e.g. "faq.html"
    host: Host                 # the client's address
    timestamp: datetime        # when (UTC)
    user_agent: UserAgent      # the browser's user agent


@payload
class ImportPackage(typing.NamedTuple):
    """Add or change a package (mr_chase ADDPKG, from piw-add)."""

    package: Name              # the package
    description: typing.Optional[Description]  # new description, None: keep
    skip: typing.Optional[OptionalText]  # reason never to build it; ''
    # unskips; None: keep
    aliases: typing.List[Name]  # other names it is known by


@payload
class ImportVersion(typing.NamedTuple):
    """Add or change a version (mr_chase ADDVER, from piw-add)."""

    package: Name              # the package (added if new)
    version: Name              # the version
    released: typing.Optional[datetime]  # release time (UTC), None: keep
    # (or now, for a new version)
    skip: typing.Optional[OptionalText]  # reason never to build it; ''
    # unskips; None: keep
    yanked: typing.Optional[bool]  # True yanks, False unyanks, None keeps


@payload
class RemovePackage(typing.NamedTuple):
    """Remove a package, or only its builds (mr_chase REMPKG)."""

    package: Name              # the package
    builds_only: bool          # keep the package, remove builds and files
    skip: OptionalText         # if not '': keep it, marked never to build


@payload
class RemoveVersion(typing.NamedTuple):
    """Remove a version, or only its builds (mr_chase REMVER)."""

    package: Name              # the package
    version: Name              # the version
    builds_only: bool          # keep the version, remove builds and files
    skip: OptionalText         # if not '': keep it, marked never to build


@payload
class Rebuild(typing.NamedTuple):
    """Ask for pages to be written again (mr_chase REBUILD)."""

    part: typing.Literal['HOME', 'SEARCH', 'PROJECT', 'BOTH']  # which pages
    package: typing.Optional[Name]  # PROJECT/BOTH: the package, or None
    # for every package; None for HOME and SEARCH


@payload
class RebuildProgress(typing.NamedTuple):
    """How far the rewrite of every package's pages has got (mr_chase
    PROGRESS reply)."""

    running: bool              # a rewrite is under way (or about to start)
    done: Count                # packages written so far
    total: Count               # packages to write


@payload
class MasterInfo(typing.NamedTuple):
    """The master introducing itself to monitors (monitor_status HELLO)."""

    timestamp: datetime        # the master's clock (UTC)
    label: Name                # the master's hostname
    piwheels_version: Name     # piwheels.__version__ of the master


@payload
class SlaveEvent(typing.NamedTuple):
    """A message between SlaveDriver and a slave, told to the monitors
    (master_status / monitor_status SLAVE). *action* and *data* are
    validated as a slave_driver message; *data* is None when the action
    carries none."""

    slave_id: Count            # the slave concerned
    timestamp: datetime        # when the message passed (UTC)
    action: Name               # the slave_driver action, e.g. "BUILD"
    data: Anything()           # its data, as slave_driver declares it

    def validated(self):
        if self.action in slave_driver.recv:
            direction = 'recv'
        elif self.action in slave_driver.send:
            direction = 'send'
        else:
            raise ValueError('{!r} is not a slave_driver action'.format(
                self.action))
        data = slave_driver.check(
            direction, self.action,
            NoData if self.data is None else self.data)
        return self._replace(data=None if data is NoData else data)


_PROJECT_FILE = {
    Required('hash'): Hash,                 # SHA256 of the wheel
    Required('size'): Count,                # its size in bytes
    Required('abi_tag'): Name,              # the ABI it was built for
    Required('requires_python'): validator(
        typing.Optional[Text(200, 0)]),     # Requires-Python, or None
    Required('apt_dependencies'): validator(typing.Set[Name]),  # apt packages
}
_PROJECT_ABI = {
    Required('build_id'): validator(typing.Optional[Count]),  # last build
    Required('status'): Name,               # e.g. 'success', 'fail', 'skip'
    Required('skip'): OptionalText,         # why it is not built, or ''
}
_PROJECT_RELEASE = {
    Required('abis'): {Name: _PROJECT_ABI},        # ABI -> its build
    Required('files'): {Filename: _PROJECT_FILE},  # wheel -> its details
    Required('released'): validator(datetime),     # release time (UTC)
    Required('yanked'): validator(bool),           # yanked on PyPI
    Required('skip'): OptionalText,                # why never built, or ''
}

#: The data of a project page and JSON (the_oracle PROJDATA reply), as
#: db.Database.get_project_data returns it. Further keys are allowed (and
#: passed through as decoded); these are required.
ProjectData = Schema({
    Required('name'): Name,                 # the package's name
    Required('description'): Description,   # its PyPI summary
    Required('releases'): {Name: _PROJECT_RELEASE},  # version -> release
}, extra=ALLOW_EXTRA)


# -- the queues --------------------------------------------------------------

task_control = Protocol(name='task_control', recv={
    'PAUSE': NoData,   # stop doing work until RESUME (pauseable tasks)
    'RESUME': NoData,  # carry on after PAUSE
    'QUIT': NoData,    # leave the task loop and close every socket
})
"""Main thread -> each task's internal control queue (the task binds a
PULL on inproc; its control methods PUSH). Tasks with more commands extend
it: :data:`slave_driver_control`, :data:`big_brother_control`."""

#: A slave id, or None for every slave and the master itself.
SlaveTarget = typing.Optional[Count]

slave_driver_control = Protocol(name='slave_driver_control', recv=dict(
    task_control.recv,
    KILL=SlaveTarget,   # tell the slave (None: all) DIE at its next request
    SKIP=Count,         # abandon the slave's current build (DONE to BUSY)
    SLEEP=SlaveTarget,  # answer the slave's (None: all) IDLE with SLEEP
    WAKE=SlaveTarget,   # undo SLEEP
    HELLO=NoData,       # replay every slave's HELLO on master_status, and
                        # report each message again (after QUIET)
    QUIET=NoData,       # no monitor listens: report no message to or from
                        # a slave until the next HELLO
))
"""Main thread -> SlaveDriver's control queue: :data:`task_control` plus
the monitor's commands."""

big_brother_control = Protocol(name='big_brother_control', recv=dict(
    task_control.recv,
    STATS=NoData,       # replay the latest MasterStats on master_status
))
"""Main thread -> BigBrother's control queue."""

slave_driver = Protocol(name='slave_driver', max_size=16 * 1024 * 1024, recv={
    'HELLO': SlaveHello,   # first message of a (re)started slave
    'IDLE': SlaveStats,    # ready for a job
    'BUSY': SlaveStats,    # still building (every few seconds)
    'BUILT': BuildResult,  # the build finished, in answer to CONT
    'SENT': NoData,        # the file asked for by SEND has been transferred
    'BYE': NoData,         # the slave is leaving (no reply is sent)
}, send={
    'ACK': SlaveAck,       # to HELLO: welcome, with the slave's id
    'SLEEP': NoData,       # to IDLE: nothing to do, ask again later
    'BUILD': BuildRequest,  # to IDLE: build this
    'CONT': NoData,        # to BUSY: carry on building
    'DONE': NoData,        # to BUSY: abandon the build; to BUILT/SENT: all
                           # done, discard the build and go back to IDLE
    'SEND': Filename,      # to BUILT/SENT: transfer this file to FileJuggler
    'DIE': OptionalText,   # to anything: terminate (send BYE), with the
                           # reason ('' when asked to by the operator)
})
"""piw-slave (REQ, connects) <-> SlaveDriver (ROUTER, binds
``tcp://*:5555``). Strict request/reply; faces the network."""

file_juggler_files = Protocol(
    name='file_juggler_files', max_size=MAX_CHUNK_SIZE + 1024, recv={
        'HELLO': Count,    # start (or restart) sending: the slave's id
        'CHUNK': Chunk,    # a piece of the file, answering a FETCH
    }, send={
        'FETCH': Fetch,    # send this piece (several may be in flight)
        'DONE': NoData,    # every piece has arrived; close the file
    })
"""piw-slave / piw-import (DEALER, connects) <-> FileJuggler (ROUTER,
binds ``tcp://*:5556``). Credit-based: the juggler keeps several FETCHes in
flight and repeats any whose CHUNK is lost or bad. Faces the network."""

file_juggler_fs = Protocol(name='file_juggler_fs', recv={
    'EXPECT': ExpectFile,  # a slave is about to send this file
    'VERIFY': VerifyFile,  # check the slave's finished file, publish it
    'CHECK': VerifyFile,   # check the slave's finished file and hold it
    # (staged) until PUBLISH or DISCARD: SlaveDriver's builds reach the
    # database after the transfer, and the database decides whether the file
    # is new, the same as the published one, or a conflict
    'STAGE': StageFile,    # EXPECT and CHECK in one, answered as soon as
    # the transfer is complete (or has failed), so that a slave saying SENT
    # finds the outcome waiting; the same file again (after RETRY) keeps
    # the transfer and its count of attempts
    'PUBLISH': Batch(StagedFile, MAX_STAGED_BATCH),  # move staged files
    # into the output (a database batch's, flushed to disk together)
    'DISCARD': Batch(StagedFile, MAX_STAGED_BATCH),  # delete staged files
    'ABORT': Count,        # the slave is gone: drop its transfer
    'REMOVE': RemoveFile,  # delete a published wheel
    'STATVFS': NoData,     # how big and how full is the output?
}, send={
    'EXPECT': NoData,      # noted
    'VERIFY': NoData,      # verified and published
    'CHECK': NoData,       # verified and staged
    'STAGE': StageOutcome,  # the transfer completed (or failed): staged,
                            # to be sent again, or failed (never ERROR)
    'PUBLISH': NoData,     # all published (else ERROR: those that could
                           # not be, and why)
    'DISCARD': NoData,     # deleted (or already absent)
    'ABORT': NoData,       # dropped (or there was none)
    'RETRY': ErrorText,    # to VERIFY/CHECK: the file did not verify and must
                           # be sent again (a bounded number of times)
    'REMOVE': NoData,      # removed (or already absent)
    'STATVFS': DiskUsage,  # the output file-system's size and free space
    'ERROR': ErrorText,    # the request failed (e.g. hash mismatch: the
                           # file must be sent again)
})
"""Master tasks' FsClient (REQ) -> FileJuggler (ROUTER, binds
``inproc://fs``). Each request is answered by its own action, or ERROR, in
order, except PUBLISH: it is answered once its file is on disk, and answers
to later requests may overtake it (a DEALER wanting its replies in order
sends PUBLISH on a queue of its own); and STAGE: it is answered when its
transfer ends, and its answer names the slave and file."""

file_juggler_sync = Protocol(name='file_juggler_sync', recv={
    'SYNCED': NoData,      # the files of the last SYNC are on disk
    'ERROR': ErrorText,    # they could not be flushed
}, send={
    'SYNC': typing.List[Text(4096)],  # staged files to flush to disk
})
"""FileJuggler (PAIR, binds an inproc address of its own) <-> its
FileSyncer (PAIR, connects): one SYNC at a time, so that the juggler never
waits on the disk."""

# Shapes of the database RPC: each request action maps to (request data,
# reply data); the reply carries the request's action, or ERROR.
_ORACLE_CALLS = {
    'ALLPKGS': (NoData, typing.Set[Name]),          # get_all_packages
    'ALLVERS': (NoData, typing.Set[typing.Tuple[Name, Name]]),
    # get_all_package_versions: every (package, version)
    'NEWPKG': (NewPackage, bool),                   # add_new_package;
    # False if it existed
    'NEWVER': (NewVersion, bool),                   # add_new_package_version
    'NEWPKGNAME': (PackageName, NoData),            # add_package_name
    'GETPKGNAMES': (Name, typing.List[Name]),       # get_package_aliases
    'GETPKGNAME': (Name, typing.Optional[Name]),    # get_package_name: the
    # name it was last seen under
    'SETDESC': (PackageText, NoData),               # set_package_description
    'SKIPPKG': (PackageText, NoData),               # skip_package
    'SKIPVER': (VersionText, NoData),               # skip_package_version
    'YANKVER': (PackageVersion, NoData),            # yank_version
    'UNYANKVER': (PackageVersion, NoData),          # unyank_version
    'DELPKG': (Name, NoData),                       # delete_package
    'DELVER': (PackageVersion, NoData),             # delete_version
    'DELBUILD': (PackageVersion, NoData),           # delete_build
    'PKGEXISTS': (Name, bool),                      # test_package
    'VEREXISTS': (PackageVersion, bool),            # test_package_version
    'PKGDELETED': (Name, bool),                     # package_marked_deleted
    'VERSDELETED': (Name, typing.Set[Name]),        # get_versions_deleted
    'PKGSDELETED': (NoData, typing.Set[Name]),      # get_packages_deleted
    'GETSKIP': (PackageVersion, OptionalText),      # get_version_skip
    'GETABIS': (bool, typing.Set[Name]),            # get_build_abis;
    # request: exclude_skipped
    'GETQUEUE': (Count, typing.Dict[Name, typing.List[PackageVersion]]),
    # get_build_queue: request the limit per ABI; reply ABI -> versions to
    # build, most wanted first
    'GETPYPI': (NoData, Count),                     # get_pypi_serial
    'SETPYPI': (Count, NoData),                     # set_pypi_serial
    'GETSEARCH': (NoData, typing.Dict[Name, typing.Tuple[Count, Count]]),
    # get_search_index: package -> (downloads last 30 days, all downloads)
    'GETSTATS': (NoData, DatabaseStats),            # get_statistics
    'PKGFILES': (Name, typing.Dict[Filename, Hash]),  # get_package_files
    'VERFILES': (PackageVersion, typing.Set[Filename]),  # get_version_files
    'PROJDATA': (Name, ProjectData),                # get_project_data
    'LOGBUILD': (BuildRecord, Count),               # log_build: the build id
    'LOGBUILDS': (Batch(BuildRecord, MAX_BUILD_BATCH),
                  typing.List[LoggedBuild]),        # log_build of each, in
    # order (SlaveDriver records finished builds in batches)
    'LOGDOWNLOAD': (Batch(DownloadState, MAX_LOG_BATCH), NoData),
    # log_download
    'LOGSEARCH': (Batch(SearchState, MAX_LOG_BATCH), NoData),      # log_search
    'LOGPROJECT': (Batch(ProjectState, MAX_LOG_BATCH), NoData),
    # log_project
    'LOGJSON': (Batch(JSONState, MAX_LOG_BATCH), NoData),          # log_json
    'LOGPAGE': (Batch(PageState, MAX_LOG_BATCH), NoData),          # log_page
    'LOADRWP': (NoData, typing.List[RewritePending]),  # load_rewrites_pending
    'SAVERWP': (typing.List[RewritePending], NoData),  # save_rewrites_pending
}

the_oracle = Protocol(name='the_oracle', recv={
    action: request for action, (request, reply) in _ORACLE_CALLS.items()
}, send=dict({
    action: reply for action, (request, reply) in _ORACLE_CALLS.items()
}, **{
    'ERROR': ErrorText,    # the request failed; the text says why
    'READY': NoData,       # a TheOracle worker announcing itself to Seraph
}))
"""Master tasks' DbClient (REQ) -> Seraph (ROUTER, binds ``inproc://db``)
-> TheOracle workers (REQ, connect to Seraph's back queue; they receive
``[client, request]`` with :meth:`~piwheels.transport.Socket.recv_addr_msg`
and answer with :meth:`~piwheels.transport.Socket.send_addr_msg`). One
request action per :class:`~piwheels.master.db.Database` method; the reply
carries the request's action and its result, or ERROR."""

@payload
class BuildQueue(typing.NamedTuple):
    """The versions waiting to be built (the_architect QUEUE)."""

    queried_at: datetime       # when the query producing it started (UTC):
    # builds recorded after then may still be in it
    queue: typing.Dict[Name, typing.List[PackageVersion]]  # ABI ->
    # versions to build, most wanted first


the_architect = Protocol(name='the_architect', recv={
    'QUEUE': BuildQueue,   # replaces the previous queue
})
"""TheArchitect (PUSH, connects) -> SlaveDriver (PULL, binds
``inproc://builds``): the build queue, refreshed periodically."""

slave_driver_deletions = Protocol(name='slave_driver_deletions', recv={
    'DELPKG': Name,            # a package is gone: drop its queued builds
    'DELVER': PackageVersion,  # a version is gone: drop its queued builds
})
"""CloudGazer and MrChase (PUSH) -> SlaveDriver (PULL, binds
``inproc://deletions``): forget pending builds of deleted packages."""

big_brother = Protocol(name='big_brother', recv={
    'STATBQ': typing.Dict[Name, Count],  # from SlaveDriver: ABI -> versions
    # waiting to be built
    'STATFS': DiskUsage,   # from FileJuggler: the output's disk space
    'HOME': NoData,        # from MrChase: send the home page to be written
    # now (piw-rebuild home)
    'SEARCH': NoData,      # from MrChase: send the search index now
    'STATSLAVES': SlaveCounts,  # from SlaveDriver: what the slaves do
    'STATPYPI': datetime,  # from CloudGazer: when it last read a PyPI event
})
"""Tasks (PUSH) -> BigBrother (PULL, binds ``inproc://stats``)."""

_WEB_REQUESTS = {
    'HOME': MasterStats,   # write the home page with these statistics
    'SEARCH': typing.Dict[Name, typing.Tuple[Count, Count]],  # write the
    # search index: package -> (downloads last 30 days, all downloads)
    'PROJECT': typing.Optional[Name],  # write this package's project page
    # and JSON (None: every package's, resumably, in batches)
    'BOTH': typing.Optional[Name],  # write its simple index and project
    # page/JSON (None: every package's)
    'LOG': BuildLog,       # write a build's log
    'DELPKG': Name,        # remove a package's pages and files
    'DELVER': PackageVersion,  # remove a version's files, rewrite its pages
}

the_secretary = Protocol(name='the_secretary', recv=dict(
    _WEB_REQUESTS,
    BUILDS=Batch(BuildPages, MAX_BUILD_BATCH),  # the logs and pages of
    # recorded builds: a LOG and a BOTH or PROJECT each (SlaveDriver sends
    # a database batch's together)
))
"""Tasks (PUSH) -> TheSecretary (PULL, binds ``inproc://web``), which
holds PROJECT and BOTH back a while to merge duplicates and passes the rest
straight on."""

the_scribe = Protocol(name='the_scribe', recv=_WEB_REQUESTS)
"""TheSecretary (PUSH) -> TheScribe (PULL, binds ``inproc://scribe``),
which writes the pages (atomically)."""

_STATUS_MESSAGES = {
    'HELLO': MasterInfo,   # the master (replayed to each new monitor)
    'SLAVE': SlaveEvent,   # a message to or from a slave, as it passed
    'STATS': MasterStats,  # BigBrother's latest statistics
}

master_status = Protocol(name='master_status', recv=_STATUS_MESSAGES)
"""Tasks (PUSH) -> the master's main thread (PULL, binds
``inproc://status``), which publishes each on :data:`monitor_status`."""

monitor_status = Protocol(name='monitor_status', send=dict(
    _STATUS_MESSAGES,
    PAUSED=bool,           # the master's own: True once paused, False once
                           # resumed (replayed to each new monitor)
))
"""The master (PUB, binds ``ipc:///tmp/piw-status``) -> piw-monitor and
piw-sense (SUB, connect and subscribe to everything)."""

master_control = Protocol(name='master_control', recv={
    'HELLO': NoData,       # a monitor arrived: replay HELLO, slaves, stats
    'PAUSE': NoData,       # pause every task
    'RESUME': NoData,      # resume every task
    'KILL': SlaveTarget,   # stop a slave (None: every slave)
    'SKIP': Count,         # abandon a slave's current build
    'SLEEP': SlaveTarget,  # stop giving a slave (None: all) work
    'WAKE': SlaveTarget,   # give it work again
    'QUIT': NoData,        # shut the master down
})
"""piw-monitor and piw-sense (PUSH, connect) -> the master's main thread
(PULL, binds ``ipc:///tmp/piw-control``)."""

mr_chase = Protocol(name='mr_chase', max_size=16 * 1024 * 1024, recv={
    'IMPORT': BuildRecord,  # piw-import: register this build, then send
                            # its files
    'SENT': NoData,         # piw-import: the file asked for was sent
    'ADDPKG': ImportPackage,  # piw-add: add or change a package
    'ADDVER': ImportVersion,  # piw-add: add or change a version
    'REMPKG': RemovePackage,  # piw-remove: remove a package or its builds
    'REMVER': RemoveVersion,  # piw-remove: remove a version or its builds
    'REBUILD': Rebuild,       # piw-rebuild: write pages again
    'PROGRESS': NoData,       # piw-rebuild: how far is the rewrite of
                              # every package?
}, send={
    'SEND': Filename,      # to IMPORT/SENT: transfer this file to
                           # FileJuggler (HELLO with the build's slave_id)
    'DONE': NoData,        # the request is complete
    'PROGRESS': RebuildProgress,  # to PROGRESS
    'ERROR': ErrorText,    # the request was refused; nothing was changed
})
"""piw-import, piw-add, piw-remove, piw-rebuild (REQ, connect) -> MrChase
(ROUTER, binds ``ipc:///tmp/piw-import``). Strict request/reply."""

lumberjack = Protocol(name='lumberjack', max_size=32 * 1024 * 1024, recv={
    'LOGDOWNLOAD': Batch(DownloadState, MAX_LOG_BATCH),  # wheel downloads
    'LOGSEARCH': Batch(SearchState, MAX_LOG_BATCH),      # simple index fetches
    'LOGPROJECT': Batch(ProjectState, MAX_LOG_BATCH),    # project page views
    'LOGJSON': Batch(JSONState, MAX_LOG_BATCH),          # project JSON fetches
    'LOGPAGE': Batch(PageState, MAX_LOG_BATCH),          # other page views
}, send={
    'LOGDOWNLOAD': Count,  # a batch is written: its number of records
    'LOGSEARCH': Count,    # (each answer carries its request's action)
    'LOGPROJECT': Count,
    'LOGJSON': Count,
    'LOGPAGE': Count,
    'LOST': Count,         # the database refused a batch every time it was
                           # tried: its number of records
    'ERROR': ErrorText,    # a message was invalid and is ignored
})
"""piw-logger (DEALER, connects) <-> Lumberjack (ROUTER, binds
``ipc:///tmp/piw-logger``). Each message is a batch of up to
:data:`MAX_LOG_BATCH` records of one kind, written in one transaction and
answered once it is dealt with: piw-logger keeps only a few batches
unanswered (so neither end buffers more than that) and knows what reached
the database. (With PUSH/PULL, ZeroMQ drops messages a disconnecting
sender left in a full receiving queue: the end of every file.)"""
