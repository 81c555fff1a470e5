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

Naming: a protocol is named after the task (or tool) that binds its queue,
plus the queue's purpose where a task binds several, so ``grep`` finds both
ends:

* ``task_control`` -- main thread -> each task's internal control queue
* ``slave_driver`` -- piw-slave <-> SlaveDriver (build protocol)
* ``file_juggler_files`` -- slave/importer <-> FileJuggler (chunk transfer)
* ``file_juggler_fs`` -- master tasks -> FileJuggler (file-system RPC)
* ``mr_chase`` -- piw-import/add/remove/rebuild <-> MrChase
* ``the_oracle`` -- master tasks -> Seraph -> TheOracle (database RPC)
* ``the_architect`` -- TheArchitect -> SlaveDriver (build queues)
* ``big_brother`` -- tasks -> BigBrother (statistics)
* ``the_secretary`` -- tasks -> TheSecretary (web page requests)
* ``the_scribe`` -- TheSecretary -> TheScribe (web page writes)
* ``monitor_stats`` -- master -> piw-monitor / piw-sense (status PUB)
* ``master_control`` -- piw-monitor / piw-sense -> master (control)
* ``lumberjack`` -- piw-logger <-> Lumberjack (access-log records)

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
import typing
from datetime import datetime, timedelta, timezone

from voluptuous import Invalid, MultipleInvalid, Schema

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
    if isinstance(annotation, type) and hasattr(annotation, '_payload_fields'):
        return annotation.validate
    try:
        return _SIMPLE[annotation]
    except (KeyError, TypeError):
        pass
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
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
    """
    fields = [
        (name, validator(cls.__annotations__[name])) for name in cls._fields
    ]

    def validate(value):
        if not isinstance(value, (list, tuple)):
            raise _invalid('expected {} (an array), got {}'.format(
                cls.__name__, _type_name(value)))
        if len(value) != len(fields):
            raise _invalid('{} needs {} fields ({}), got {}'.format(
                cls.__name__, len(fields), ', '.join(cls._fields),
                len(value)))
        result = []
        for item, (name, check) in zip(value, fields):
            try:
                result.append(check(item))
            except Invalid as exc:
                raise _invalid(exc.msg, [name] + exc.path) from None
        return cls(*result)

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
            raise ProtocolError('{}: unknown action {!r} ({} may {} {})'.format(
                self.name or 'queue', action, 'this end',
                direction, ', '.join(sorted(actions)) or 'nothing')) from None
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


# -- the queues ----------------------------------------------------------------

task_control = Protocol(name='task_control', recv={
    'PAUSE': NoData,   # stop doing work until RESUME (pauseable tasks)
    'RESUME': NoData,  # carry on after PAUSE
    'QUIT': NoData,    # leave the task loop and close every socket
})
"""Main thread -> each task's internal control queue (inproc PULL in the
task, bound by the task). Tasks that take more commands extend ``recv``."""
