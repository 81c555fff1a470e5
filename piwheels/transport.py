"""ZeroMQ sockets that speak CBOR messages validated against a protocol.

This wraps :mod:`zmq` so every piwheels queue sends and receives
``[action, data]`` messages (:mod:`piwheels.protocols`), encoded with CBOR
in the wire format of ``docs/protocols.rst``, validated on send *and*
receive, with timeouts in seconds. Anything that cannot be decoded or does
not match the socket's protocol raises :exc:`~piwheels.exc.ProtocolError`
with a one-line description; the bad message is consumed, so the caller can
log it and receive the next one.

Hostile input is bounded before it reaches the CBOR decoder: the raw bytes
are scanned first (:func:`check_cbor`) for nesting deeper than
:data:`MAX_DEPTH`, tags other than epoch datetimes, truncation and trailing
bytes. This is what protects Debian's cbor2 5.4, which recurses without
limit; newer cbor2 is also given its own ``max_depth``.
"""

import itertools
import logging
import os
import struct
from datetime import datetime, timedelta, timezone

import cbor2
import zmq
from zmq.utils import monitor as zmq_monitor

from .exc import ProtocolError, TransportError
from .protocols import NoData, Protocol

# Socket types and flags, so tasks need not import zmq themselves.
PAIR = zmq.PAIR
PUB = zmq.PUB
SUB = zmq.SUB
REQ = zmq.REQ
REP = zmq.REP
DEALER = zmq.DEALER
ROUTER = zmq.ROUTER
PULL = zmq.PULL
PUSH = zmq.PUSH
# The flags are plain ints: pyzmq's are enum members, and each operation
# on one (``events & POLLIN``, ``SNDMORE | flags``) runs a Python method
# costing a microsecond, several times for every message.
POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)
NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
Again = zmq.Again
ZMQError = zmq.ZMQError
#: The connection events :meth:`Socket.connection_events` reports.
EVENT_CONNECTED = zmq.EVENT_CONNECTED
EVENT_DISCONNECTED = zmq.EVENT_DISCONNECTED
EVENT_ACCEPTED = zmq.EVENT_ACCEPTED

#: The deepest nesting of arrays, maps and tags a received message may have.
MAX_DEPTH = 32

#: Seconds a socket waits on close for unsent messages unless told otherwise.
DEFAULT_LINGER = 1.0

#: The only CBOR tag we accept: 1, a datetime as seconds since the epoch.
EPOCH_TAG = 1

#: Numbers the queues of :meth:`Socket.connection_events`.
_connection_events = itertools.count()

#: Byte strings from this size on are decoded without cbor2 and frames from
#: this size on are sent without copying (and received so on a socket made
#: with ``large_frames``).
LARGE_STRING = 65536



def _loads_accepts_max_depth():
    # cbor2 >= 5.9 limits nesting itself; 5.4 (Debian bookworm) has no
    # such argument and is protected by check_cbor alone.
    try:
        cbor2.loads(b'\x00', max_depth=2)
    except TypeError:
        return False
    return True


_LOADS_ACCEPTS_MAX_DEPTH = _loads_accepts_max_depth()


def _seconds_to_ms(timeout):
    return None if timeout is None else max(0, int(timeout * 1000))


# -- wire format -------------------------------------------------------------

_WIRE_NATIVE = frozenset({str, bytes, int, float, bool, type(None)})


def to_wire(value):
    """Convert a validated Python value into CBOR-native types.

    Tuples (including payloads) become lists, sets become lists (sorted when
    their items can be ordered), durations become float seconds and
    datetimes a tag-1 epoch float in UTC. See ``docs/protocols.rst``.
    """
    if type(value) in _WIRE_NATIVE:
        return value
    if isinstance(value, (list, tuple)):
        return [
            item if type(item) in _WIRE_NATIVE else to_wire(item)
            for item in value
        ]
    if isinstance(value, dict):
        return {to_wire(key): to_wire(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [to_wire(item) for item in value]
        try:
            items.sort()
        except TypeError:
            pass
        return items
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return cbor2.CBORTag(EPOCH_TAG, value.timestamp())
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (str, bytes, int, float)):
        return value
    raise TypeError('cannot encode {} for the wire'.format(
        type(value).__name__))


def _read_argument(buf, pos, info):
    """Return (argument, new position) of a CBOR item header."""
    if info < 24:
        return info, pos
    if info > 27:
        raise ValueError('reserved additional information {}'.format(info))
    size = 1 << (info - 24)
    end = pos + size
    if end > len(buf):
        raise ValueError('truncated')
    return int.from_bytes(buf[pos:end], 'big'), end


def _leaf_sizes():
    # For each initial byte: the total size of the item when it is a leaf
    # whose size the byte alone tells (integers, simple values, floats, short
    # strings), else 0 (containers, tags, long strings, breaks, reserved).
    sizes = bytearray(256)
    for initial in range(256):
        major, info = initial >> 5, initial & 0x1F
        if major in (0, 1, 7) and info < 28 and initial != 0xFF:
            sizes[initial] = 1 if info < 24 else 1 + (1 << (info - 24))
        elif major in (2, 3) and info < 24:
            sizes[initial] = 1 + info
    return bytes(sizes)


_LEAF_SIZES = _leaf_sizes()


def check_cbor(buf, max_depth=MAX_DEPTH):
    """Check that *buf* holds exactly one well-formed, shallow CBOR item.

    Walks the item headers without building anything, so a hostile message
    (nested a million deep, claiming a huge array, or using tags whose
    decoding we do not want such as shared references) is refused in time
    linear in its length.

    :returns: True if the item holds a byte or text string of
        :data:`LARGE_STRING` bytes or more.
    :raises ValueError: describing what is wrong.
    """
    end = len(buf)
    pos = 0
    large = False
    leaf_sizes = _LEAF_SIZES
    count = 1     # items still expected in the current container (None:
    stack = []    # indefinite), and those of the enclosing containers
    while True:
        if count == 0:
            if not stack:
                break
            count = stack.pop()
            continue
        if pos >= end:
            raise ValueError('truncated')
        initial = buf[pos]
        size = leaf_sizes[initial]
        if size:
            pos += size
            if count is not None:
                count -= 1
            continue
        pos += 1
        if initial == 0xFF:
            if count is not None:
                raise ValueError('unexpected break')
            count = stack.pop()
            continue
        if count is not None:
            count -= 1
        major, info = initial >> 5, initial & 0x1F
        if info == 31:
            if major not in (2, 3, 4, 5):
                raise ValueError('bad indefinite length item')
            stack.append(count)
            count = None
        else:
            argument, pos = _read_argument(buf, pos, info)
            if major in (2, 3):
                pos += argument
                large = large or argument >= LARGE_STRING
                continue
            if major == 6 and argument != EPOCH_TAG:
                raise ValueError('unsupported CBOR tag {}'.format(argument))
            stack.append(count)
            count = {4: argument, 5: argument * 2, 6: 1}[major]
        if len(stack) > max_depth:
            raise ValueError('nested deeper than {} levels'.format(max_depth))
    if pos > end:
        raise ValueError('truncated')
    if pos != end:
        raise ValueError('{} bytes of trailing data'.format(end - pos))
    return large


def _decode_item(buf, pos):
    """Decode the item at *pos* of *buf* (checked by :func:`check_cbor`, so
    well-formed and shallow); return (value, position after it)."""
    initial = buf[pos]
    major, info = initial >> 5, initial & 0x1F
    if major == 7:
        if info <= 24:
            simple, pos = _read_argument(buf, pos + 1, info)
            if simple in _SIMPLE_VALUES:
                return _SIMPLE_VALUES[simple], pos
            raise ValueError('unsupported simple value {}'.format(simple))
        size = 1 << (info - 24)
        value = struct.unpack_from(_FLOAT_FORMATS[info], buf, pos + 1)[0]
        return value, pos + 1 + size
    if info == 31:
        return _decode_indefinite(buf, pos + 1, major)
    argument, pos = _read_argument(buf, pos + 1, info)
    if major == 0:
        return argument, pos
    if major == 1:
        return -1 - argument, pos
    if major == 2:
        return bytes(buf[pos:pos + argument]), pos + argument
    if major == 3:
        return str(buf[pos:pos + argument], 'utf-8'), pos + argument
    if major == 4:
        items = []
        for _ in range(argument):
            item, pos = _decode_item(buf, pos)
            items.append(item)
        return items, pos
    if major == 5:
        mapping = {}
        for _ in range(argument):
            key, pos = _decode_item(buf, pos)
            mapping[key], pos = _decode_item(buf, pos)
        return mapping, pos
    seconds, pos = _decode_item(buf, pos)   # tag 1, the only one allowed
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError('tag 1 needs a number')
    return datetime.fromtimestamp(seconds, timezone.utc), pos


def _decode_indefinite(buf, pos, major):
    items = []
    while buf[pos] != 0xFF:
        item, pos = _decode_item(buf, pos)
        items.append(item)
    pos += 1
    if major == 2:
        return b''.join(items), pos
    if major == 3:
        return ''.join(items), pos
    if major == 4:
        return items, pos
    return dict(zip(items[::2], items[1::2])), pos


_SIMPLE_VALUES = {20: False, 21: True, 22: None}
_FLOAT_FORMATS = {25: '>e', 26: '>f', 27: '>d'}


def encode(action, data=NoData):
    """Encode one message: the bare *action* string, or ``[action, data]``.

    A byte string of :data:`LARGE_STRING` bytes or more ending *data* (a
    file chunk's) is appended to cbor2's encoding of the rest, with the
    same header cbor2 gives it: cbor2 copies such a string at a few hundred
    MB/s, which bounded a slave's file transfers.
    """
    if data is NoData:
        return cbor2.dumps(action)
    wire = to_wire(data)
    if (type(wire) is list and wire and type(wire[-1]) is bytes
            and len(wire[-1]) >= LARGE_STRING):
        large = wire[-1]
        # the encoding of [action, [..., b'']] ends with b'' (one byte)
        head = cbor2.dumps([action, wire[:-1] + [b'']])
        return b''.join([head[:-1], _byte_string_header(len(large)), large])
    return cbor2.dumps([action, wire])


def _byte_string_header(length):
    """Return the CBOR header of a byte string of *length* bytes (65536 or
    more), in its shortest form."""
    if length < 1 << 32:
        return struct.pack('>BL', 0x5A, length)
    return struct.pack('>BQ', 0x5B, length)


def decode(buf, max_depth=MAX_DEPTH):
    """Decode one message into ``(action, data)`` without validating data.

    :raises ProtocolError: if *buf* is not a well-formed message.
    """
    try:
        if check_cbor(buf, max_depth):
            # Large byte strings (file chunks): cbor2 reads them in pieces
            # (5.4 at a few hundred MB/s); our own decoder slices them from
            # the frame in one copy.
            message, _ = _decode_item(buf, 0)
        elif _LOADS_ACCEPTS_MAX_DEPTH:
            message = cbor2.loads(buf, max_depth=max_depth + 1)
        else:
            message = cbor2.loads(buf)
    except (ValueError, TypeError, OverflowError, OSError, RecursionError,
            cbor2.CBORError) as exc:
        raise ProtocolError('invalid CBOR ({})'.format(
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        ) from None
    if isinstance(message, str):
        return message, NoData
    if (isinstance(message, list) and len(message) == 2
            and isinstance(message[0], str)):
        return message[0], message[1]
    raise ProtocolError('not a message: expected an action string or '
                        '[action, data], got {}'.format(
                            type(message).__name__))


# -- sockets -----------------------------------------------------------------

class Context:
    """Wrapper for :class:`zmq.Context`; use one per process.

    :meth:`instance` returns the process-wide context;
    :meth:`socket` makes :class:`Socket` objects bound to a protocol.
    """

    _instance = None

    def __init__(self, context=None):
        self._context = context if context is not None else zmq.Context()

    @classmethod
    def instance(cls):
        """Return the process-wide context, creating it on first use."""
        if cls._instance is None or cls._instance.closed:
            cls._instance = cls(zmq.Context.instance())
        return cls._instance

    @property
    def closed(self):
        """True once the context has been terminated."""
        return self._context.closed

    def socket(self, sock_type, protocol=None, logger=None, *,
               max_size=None, router_mandatory=True, linger=DEFAULT_LINGER,
               large_frames=False):
        """Create a :class:`Socket`.

        :param int sock_type: :data:`ROUTER`, :data:`REQ`, :data:`PUSH`, ...
        :param Protocol protocol: the protocol messages are validated
            against (``None``: :meth:`Socket.send_msg` and friends refuse
            every message; raw methods still work).
        :param logging.Logger logger: where to log each message at DEBUG.
        :param int max_size: largest message accepted, in bytes (default:
            the protocol's ``max_size``); set on network-facing sockets.
        :param bool router_mandatory: for ROUTER sockets, raise
            :exc:`~piwheels.exc.TransportError` when sending to a peer that
            is gone instead of silently dropping the message (default).
        :param float linger: seconds to wait for unsent messages on close.
        :param bool large_frames: receive frames of :data:`LARGE_STRING`
            bytes or more in place, without a copy (for a queue carrying
            file chunks; a small frame costs more that way).
        """
        return Socket(self._context.socket(sock_type), protocol, logger,
                      max_size=max_size, router_mandatory=router_mandatory,
                      linger=linger, large_frames=large_frames)

    def term(self):
        """Terminate the context (every socket must be closed first)."""
        self._context.term()

    def destroy(self, linger=DEFAULT_LINGER):
        """Close every socket still open with *linger* seconds, then
        terminate."""
        self._context.destroy(linger=_seconds_to_ms(linger))


class Socket:
    """Wrapper for :class:`zmq.Socket` validating messages with a protocol.

    :param zmq.Socket socket: the socket to wrap.
    :param Protocol protocol: the protocol for :meth:`send_msg` /
        :meth:`recv_msg` (declared from the binding side; connecting ends
        pass ``protocol.reversed()``).
    :param logging.Logger logger: logs every message at DEBUG when given.
    :param bool large_frames: see :meth:`Context.socket`.

    :attr:`protocol_errors` counts the received messages refused with
    :exc:`~piwheels.exc.ProtocolError`.
    """

    def __init__(self, socket, protocol=None, logger=None, *, max_size=None,
                 router_mandatory=True, linger=DEFAULT_LINGER,
                 large_frames=False):
        self._socket = socket
        self._large_frames = large_frames
        self._protocol = protocol if protocol is not None else Protocol(
            name='unspecified')
        self._logger = logger
        self._name = self._protocol.name or 'queue'
        self._monitored = False
        self.protocol_errors = 0
        if max_size is None:
            max_size = self._protocol.max_size
        self._max_size = max_size
        if max_size is not None:
            # ZeroMQ drops a peer sending a frame over MAXMSGSIZE before
            # allocating it, silently. Allowing twice the limit there lets a
            # moderately oversized message (a buggy peer, say) through to
            # _decode, which refuses it with a ProtocolError saying so,
            # while a hostile giant frame still costs nothing.
            socket.setsockopt(zmq.MAXMSGSIZE, 2 * max_size)
        if router_mandatory and socket.type == zmq.ROUTER:
            socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        socket.setsockopt(zmq.LINGER, _seconds_to_ms(linger))

    def __repr__(self):
        return '<Socket {} {}>'.format(self._name, self._socket.type)

    @property
    def protocol(self):
        """The :class:`~piwheels.protocols.Protocol` of this socket."""
        return self._protocol

    @property
    def max_size(self):
        """The largest message (bytes) this socket accepts, or ``None``."""
        return self._max_size

    @property
    def closed(self):
        """True once the socket is closed."""
        return self._socket.closed

    @property
    def hwm(self):
        """The high-water mark: messages queued before the socket blocks
        (or drops, depending on its type). Setting it sets both the send
        and receive marks."""
        return self._socket.hwm

    @hwm.setter
    def hwm(self, value):
        self._socket.hwm = value

    def bind(self, address):
        """Bind the socket to listen on *address*.

        An ``ipc://`` socket file is made readable and writable by its group
        (mode 0660), whatever the process's umask: local tools such as
        piw-logger under Apache or an operator's piw-monitor reach the
        master through group membership, never through world access.
        """
        self._socket.bind(address)
        if address.startswith('ipc://'):
            os.chmod(address[len('ipc://'):], 0o660)

    def bind_to_random_port(self, address):
        """Bind to a free port of *address* (``tcp://host``); return it."""
        return self._socket.bind_to_random_port(address)

    def connect(self, address):
        """Connect the socket to the listening socket at *address*."""
        self._socket.connect(address)

    def close(self, linger=None):
        """Close the socket, waiting up to *linger* seconds (default: the
        linger given at creation, :data:`DEFAULT_LINGER`) to flush unsent
        messages."""
        if self._monitored:
            self._socket.disable_monitor()
        self._socket.close(linger=_seconds_to_ms(linger))

    def subscribe(self, topic=''):
        """Subscribe a SUB socket to *topic* (a prefix; '' for all)."""
        self._socket.setsockopt(
            zmq.SUBSCRIBE, topic.encode('utf-8') if isinstance(topic, str)
            else topic)

    def unsubscribe(self, topic=''):
        """Unsubscribe a SUB socket from *topic*."""
        self._socket.setsockopt(
            zmq.UNSUBSCRIBE, topic.encode('utf-8') if isinstance(topic, str)
            else topic)

    def connection_events(self, events=EVENT_CONNECTED | EVENT_DISCONNECTED):
        """Return a PAIR :class:`Socket` on which ZeroMQ reports this
        socket's connections being made and lost (read them with
        :meth:`recv_event`). Monitors use it to notice a master going away
        and coming back; the master, with :data:`EVENT_ACCEPTED`, to count
        the monitors listening. Close it after this socket.

        :param int events: the events to report (default: connections made
            by this socket, and lost)."""
        # pyzmq would name the events' queue after the socket's file
        # descriptor, which a socket opened after this one is closed may
        # reuse while the old queue lingers: each gets a name of its own
        address = 'inproc://piwheels-connection-events-{}'.format(
            next(_connection_events))
        self._monitored = True
        return Socket(self._socket.get_monitor_socket(events, address),
                      linger=0)

    def recv_event(self, flags=0, *, timeout=None):
        """Receive one event from a :meth:`connection_events` socket:
        ``(event, endpoint)`` where *event* is :data:`EVENT_CONNECTED`,
        :data:`EVENT_ACCEPTED` or :data:`EVENT_DISCONNECTED` and *endpoint*
        the peer's address."""
        self._wait(timeout)
        event = zmq_monitor.recv_monitor_message(self._socket, flags)
        endpoint = event['endpoint']
        if isinstance(endpoint, bytes):
            endpoint = endpoint.decode('utf-8', errors='replace')
        return event['event'], endpoint

    def poll(self, timeout=None, flags=POLLIN):
        """Return True if the socket is ready for *flags* within *timeout*
        seconds (``None``: wait forever)."""
        return bool(self._socket.poll(_seconds_to_ms(timeout), flags))

    def _wait(self, timeout):
        if timeout is not None and not self.poll(timeout):
            raise TransportError('{}: nothing received within {}s'.format(
                self._name, timeout))

    def drain(self):
        """Receive and discard every message already waiting."""
        while self._socket.poll(0):
            self._socket.recv_multipart()

    # raw frames

    def send(self, buf, flags=0):
        """Send one frame of raw bytes."""
        self._socket.send(buf, flags)

    def recv(self, flags=0, *, timeout=None):
        """Receive one frame as bytes (*timeout* seconds, ``None`` waits)."""
        self._wait(timeout)
        return self._socket.recv(flags)

    def send_multipart(self, msg_parts, flags=0, copy=True):
        """Send *msg_parts*, a list of bytes, as one multi-part message
        (the last part without copying it unless *copy*)."""
        # pyzmq's send_multipart combines enum flags for every part
        send = self._socket.send
        flags = int(flags)
        for part in msg_parts[:-1]:
            send(part, flags | _SNDMORE)
        send(msg_parts[-1], flags, copy=copy)

    def recv_multipart(self, flags=0, *, timeout=None):
        """Receive a multi-part message as a list of bytes."""
        self._wait(timeout)
        return self._recv_parts(int(flags), True)

    def _recv_parts(self, flags, copy):
        # pyzmq's recv_multipart reads RCVMORE through its enum-typed
        # option getter
        recv, get = self._socket.recv, self._socket.get
        parts = [recv(flags, copy=copy)]
        while get(_RCVMORE):
            parts.append(recv(flags, copy=copy))
        return parts

    # messages

    def _encode(self, msg, data):
        data = self._protocol.check('send', msg, data)
        try:
            buf = encode(msg, data)
        except (TypeError, ValueError, cbor2.CBORError) as exc:
            raise ProtocolError('{}: {}: cannot encode ({})'.format(
                self._name, msg, exc)) from None
        if self._max_size is not None and len(buf) > self._max_size:
            raise ProtocolError('{}: {}: message of {} bytes exceeds the '
                                '{}-byte limit'.format(self._name, msg,
                                                       len(buf),
                                                       self._max_size))
        if self._logger is not None and self._logger.isEnabledFor(
                logging.DEBUG):
            self._logger.debug('>> %s %s %r', self._name, msg, data)
        return buf

    def _decode(self, frames):
        try:
            # REQ and ROUTER peers put an empty delimiter frame before the
            # message; DEALER and PUSH peers do not. Accept both.
            while len(frames) > 1 and not frames[0]:
                frames = frames[1:]
            if len(frames) != 1:
                raise ProtocolError(
                    'expected one message frame, got {}'.format(len(frames)))
            buf = frames[0]
            if self._max_size is not None and len(buf) > self._max_size:
                raise ProtocolError('message of {} bytes exceeds the {}-byte '
                                    'limit'.format(len(buf), self._max_size))
            msg, data = decode(buf)
            data = self._protocol.check('recv', msg, data)
        except ProtocolError as exc:
            self.protocol_errors += 1
            text = str(exc)
            if not text.startswith(self._name + ':'):
                text = '{}: {}'.format(self._name, text)
            raise ProtocolError(text) from None
        if self._logger is not None and self._logger.isEnabledFor(
                logging.DEBUG):
            self._logger.debug('<< %s %s %r', self._name, msg, data)
        return msg, data

    def _recv_frames(self, flags):
        # On a queue of large frames they are read in place (a memoryview
        # of ZeroMQ's buffer) and small ones copied from theirs; elsewhere
        # every frame is copied, which costs a small one half as much.
        if not self._large_frames:
            return self._recv_parts(flags, True)
        return [
            frame.buffer if len(frame) >= LARGE_STRING else frame.bytes
            for frame in self._recv_parts(flags, False)
        ]

    def send_msg(self, msg, data=NoData, flags=0):
        """Send action *msg* with its *data*, validated and CBOR-encoded.

        :raises ProtocolError: if the message does not match the protocol
            or is larger than :attr:`max_size`.
        """
        buf = self._encode(msg, data)
        self._socket.send(buf, flags, copy=len(buf) < LARGE_STRING)

    def recv_msg(self, flags=0, *, timeout=None):
        """Receive one message and return ``(action, data)``.

        *data* is :data:`~piwheels.protocols.NoData` for bare actions and
        payload instances for payload-shaped data.

        :param float timeout: seconds to wait (``None``: forever).
        :raises ProtocolError: if the message is malformed or does not match
            the protocol (the message is consumed).
        :raises TransportError: if *timeout* passes with nothing received.
        """
        self._wait(timeout)
        return self._decode(self._recv_frames(flags))

    def send_addr_msg(self, addr, msg, data=NoData, flags=0):
        """Send action *msg* with *data* to the peer *addr* of a ROUTER.

        :raises TransportError: if the peer is gone (ROUTER_MANDATORY).
        """
        buf = self._encode(msg, data)
        try:
            self.send_multipart([addr, b'', buf], flags,
                                copy=len(buf) < LARGE_STRING)
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                raise TransportError('{}: {}: peer {} is gone'.format(
                    self._name, msg, addr.hex())) from None
            raise

    def recv_addr_msg(self, flags=0, *, timeout=None):
        """Receive one message on a ROUTER: ``(addr, action, data)``.

        :raises ProtocolError: as :meth:`recv_msg`; its text names the peer,
            and its ``addr`` attribute holds the peer's address so the
            receiver can still answer (e.g. DIE to a slave of another
            protocol version).
        """
        self._wait(timeout)
        frames = self._recv_frames(flags)
        addr = frames[0]
        try:
            msg, data = self._decode(frames[1:])
        except ProtocolError as exc:
            error = ProtocolError('{} (from peer {})'.format(exc, addr.hex()))
            error.addr = addr
            raise error from None
        return addr, msg, data


class Poller:
    """Wrapper for :class:`zmq.Poller` taking seconds and returning a dict
    of :class:`Socket` to events."""

    def __init__(self):
        self._poller = zmq.Poller()
        self._sockets = {}

    def register(self, sock, flags=POLLIN | POLLOUT):
        """Watch *sock* for *flags* (default: POLLIN and POLLOUT)."""
        self._poller.register(sock._socket, flags)
        self._sockets[sock._socket] = sock

    def unregister(self, sock):
        """Stop watching *sock*."""
        self._poller.unregister(sock._socket)
        del self._sockets[sock._socket]

    def poll(self, timeout=None):
        """Wait up to *timeout* seconds (``None``: forever) and return
        ``{socket: events}`` for the sockets that are ready (empty on
        timeout)."""
        return {
            self._sockets[socket]: events
            for socket, events in self._poller.poll(_seconds_to_ms(timeout))
        }


def proxy(frontend, backend, control):
    """Pass every message arriving on *frontend* to *backend*, in ZeroMQ's
    own code (no Python runs per message), until *control* (a PAIR) receives
    :data:`PROXY_TERMINATE`. Call it in a thread of its own: it blocks.

    Messages are relayed as they are, unvalidated.
    """
    zmq.proxy_steerable(frontend._socket, backend._socket, None,
                        control._socket)


#: the message that ends :func:`proxy`, sent on its control socket
PROXY_TERMINATE = b'TERMINATE'
