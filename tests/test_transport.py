"""Tests for piwheels.transport: real ZeroMQ sockets, CBOR, validation."""

import os
import sys
from datetime import datetime, timedelta, timezone
from typing import List, NamedTuple, Optional, Set, Tuple

import cbor2
import pytest

from piwheels import transport
from piwheels.exc import ProtocolError, TransportError
from piwheels.protocols import NoData, Protocol, payload

TIMEOUT = 5


@payload
class Sample(NamedTuple):
    name: str                    # a name
    when: datetime               # a timestamp
    took: timedelta              # a duration
    tags: Set[Tuple[str, str]]   # pairs
    size: Optional[int]          # optional size


sample_protocol = Protocol(name='sample', max_size=4096, recv={
    'HELLO': NoData,
    'SAMPLE': Sample,
    'NAMES': List[str],
}, send={
    'ACK': int,
    'BYE': NoData,
})


def make_sample():
    return Sample(
        name='numpy',
        when=datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=timezone.utc),
        took=timedelta(seconds=90.5),
        tags={('apt', 'libc6'), ('apt', 'libatlas3-base')},
        size=None)


@pytest.fixture
def pair(zmq_context):
    """A bound PULL and a connected PUSH speaking sample_protocol."""
    pull = zmq_context.socket(transport.PULL, protocol=sample_protocol)
    pull.bind('inproc://pair')
    push = zmq_context.socket(transport.PUSH,
                              protocol=sample_protocol.reversed())
    push.connect('inproc://pair')
    yield push, pull
    push.close(linger=0)
    pull.close(linger=0)


@pytest.fixture
def router_req(zmq_context):
    router = zmq_context.socket(transport.ROUTER, protocol=sample_protocol)
    port = router.bind_to_random_port('tcp://127.0.0.1')
    req = zmq_context.socket(transport.REQ,
                             protocol=sample_protocol.reversed())
    req.connect('tcp://127.0.0.1:{}'.format(port))
    yield router, req, port
    req.close(linger=0)
    router.close(linger=0)


def test_transport_payload_round_trip(pair):
    push, pull = pair
    push.send_msg('SAMPLE', make_sample())
    msg, data = pull.recv_msg(timeout=TIMEOUT)
    assert msg == 'SAMPLE'
    assert isinstance(data, Sample)
    assert data == make_sample()
    assert data.when.tzinfo == timezone.utc


def test_transport_bare_action_is_a_string_on_the_wire(pair):
    push, pull = pair
    push.send_msg('HELLO')
    frame = pull.recv(timeout=TIMEOUT)
    assert cbor2.loads(frame) == 'HELLO'


def test_transport_naive_datetime_is_sent_as_utc(pair):
    push, pull = pair
    push.send_msg('SAMPLE', make_sample()._replace(
        when=datetime(2024, 5, 1, 12, 0)))
    msg, data = pull.recv_msg(timeout=TIMEOUT)
    assert data.when == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_transport_wire_format_is_ours(pair):
    push, pull = pair
    push.send_msg('SAMPLE', make_sample())
    action, data = cbor2.loads(pull.recv(timeout=TIMEOUT))
    assert action == 'SAMPLE'
    name, when, took, tags, size = data
    assert when == datetime(2024, 5, 1, 12, 30, 15, 250000,
                            tzinfo=timezone.utc)
    assert took == 90.5
    # sets travel as sorted arrays of arrays
    assert tags == [['apt', 'libatlas3-base'], ['apt', 'libc6']]
    assert size is None


def test_transport_datetime_uses_epoch_tag():
    buf = transport.encode('X', [datetime(1970, 1, 1, 0, 1,
                                          tzinfo=timezone.utc)])
    # 0x82 array(2), 0x61 'X', 0x81 array(1), 0xc1 tag 1, then the float
    assert buf[:5] == b'\x82\x61X\x81\xc1'
    assert cbor2.loads(buf[4:]) == datetime(1970, 1, 1, 0, 1,
                                            tzinfo=timezone.utc)


def test_transport_send_refuses_unknown_action(pair):
    push, pull = pair
    with pytest.raises(ProtocolError) as exc:
        push.send_msg('ACK', 1)
    assert "sample: unknown action 'ACK'" in str(exc.value)


def test_transport_send_refuses_bad_field(pair):
    push, pull = pair
    with pytest.raises(ProtocolError) as exc:
        push.send_msg('SAMPLE', make_sample()._replace(name=3))
    assert str(exc.value) == 'sample: SAMPLE: name: expected str, got int'


def test_transport_send_refuses_missing_data(pair):
    push, pull = pair
    with pytest.raises(ProtocolError) as exc:
        push.send_msg('SAMPLE')
    assert str(exc.value) == 'sample: SAMPLE requires data'
    with pytest.raises(ProtocolError) as exc:
        push.send_msg('HELLO', 1)
    assert str(exc.value) == 'sample: HELLO takes no data'


def test_transport_recv_garbage_bytes(pair):
    push, pull = pair
    push.send(b'\xff\x00garbage')
    push.send_msg('HELLO')
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert str(exc.value).startswith('sample: invalid CBOR')
    assert pull.protocol_errors == 1
    # the bad message was consumed: the next one is served
    assert pull.recv_msg(timeout=TIMEOUT) == ('HELLO', NoData)


def test_transport_recv_unknown_action(pair):
    push, pull = pair
    push.send(cbor2.dumps(['DESTROY', 1]))
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert "sample: unknown action 'DESTROY'" in str(exc.value)


def test_transport_recv_data_failing_schema(pair):
    push, pull = pair
    push.send(cbor2.dumps(['SAMPLE', ['numpy', 1.0, 'slow', [], None]]))
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert str(exc.value) == (
        'sample: SAMPLE: when: expected a datetime, got float')


def test_transport_recv_list_item_path(pair):
    push, pull = pair
    push.send(cbor2.dumps(['NAMES', ['a', 'b', 7]]))
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert str(exc.value) == 'sample: NAMES: 2: expected str, got int'


def test_transport_recv_not_a_message(pair):
    push, pull = pair
    push.send(cbor2.dumps({'action': 'HELLO'}))
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert 'not a message' in str(exc.value)


@pytest.mark.parametrize('depth', [100, 5000, 200000])
def test_transport_recv_deeply_nested(zmq_context, depth):
    pull = zmq_context.socket(transport.PULL, protocol=Protocol(
        name='deep', recv={'NAMES': List[str]}))
    pull.bind('inproc://deep')
    push = zmq_context.socket(transport.PUSH)
    push.connect('inproc://deep')
    limit = sys.getrecursionlimit()
    push.send(b'\x82\x65NAMES' + b'\x81' * depth + b'\x60')
    push.send(b'\x82\x65NAMES' + b'\xc1' * depth + b'\x00')
    for _ in range(2):
        with pytest.raises(ProtocolError) as exc:
            pull.recv_msg(timeout=TIMEOUT)
        assert str(exc.value) == (
            'deep: invalid CBOR (nested deeper than 32 levels)')
    assert sys.getrecursionlimit() == limit


def test_transport_recv_refuses_other_tags(pair):
    push, pull = pair
    # tag 28/29: shared values, which can build cyclic structures
    push.send(b'\x82\x65NAMES\xd8\x1c\x81\xd8\x1d\x00')
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert 'unsupported CBOR tag 28' in str(exc.value)


def test_transport_recv_refuses_huge_claimed_array(pair):
    push, pull = pair
    push.send(b'\x82\x65NAMES\x9b\xff\xff\xff\xff\xff\xff\xff\xff')
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert 'truncated' in str(exc.value)


def test_transport_recv_refuses_trailing_bytes(pair):
    push, pull = pair
    push.send(cbor2.dumps('HELLO') + b'\x00')
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert 'trailing data' in str(exc.value)


def test_transport_send_refuses_oversized(pair):
    push, pull = pair
    with pytest.raises(ProtocolError) as exc:
        push.send_msg('NAMES', ['x' * 5000])
    assert 'exceeds the 4096-byte limit' in str(exc.value)


def test_transport_recv_refuses_oversized_inproc(zmq_context):
    # inproc does not enforce MAXMSGSIZE; the socket checks it itself
    pull = zmq_context.socket(transport.PULL, protocol=sample_protocol)
    pull.bind('inproc://big')
    push = zmq_context.socket(transport.PUSH)
    push.connect('inproc://big')
    big = cbor2.dumps(['NAMES', ['x' * 5000]])
    push.send(big)
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert str(exc.value) == (
        'sample: message of {} bytes exceeds the 4096-byte limit'.format(
            len(big)))


def test_transport_oversized_frame_on_tcp(zmq_context):
    pull = zmq_context.socket(transport.PULL, protocol=sample_protocol)
    port = pull.bind_to_random_port('tcp://127.0.0.1')
    push = zmq_context.socket(transport.PUSH)
    push.connect('tcp://127.0.0.1:{}'.format(port))
    big = cbor2.dumps(['NAMES', ['x' * 6000]])
    push.send(big)
    push.send(cbor2.dumps('HELLO'))
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert str(exc.value) == (
        'sample: message of {} bytes exceeds the 4096-byte limit'.format(
            len(big)))
    assert pull.protocol_errors == 1
    assert pull.recv_msg(timeout=TIMEOUT) == ('HELLO', NoData)
    push.close(linger=0)
    pull.close(linger=0)


def test_transport_giant_frame_on_tcp_drops_peer(zmq_context):
    pull = zmq_context.socket(transport.PULL, protocol=sample_protocol)
    port = pull.bind_to_random_port('tcp://127.0.0.1')
    assert pull.max_size == 4096
    rogue = zmq_context.socket(transport.PUSH)
    rogue.connect('tcp://127.0.0.1:{}'.format(port))
    rogue.send(b'\x00' * 1000000)
    # ZeroMQ refuses the frame before allocating it and drops the peer
    assert not pull.poll(0.5)
    honest = zmq_context.socket(transport.PUSH,
                                protocol=sample_protocol.reversed())
    honest.connect('tcp://127.0.0.1:{}'.format(port))
    honest.send_msg('HELLO')
    assert pull.recv_msg(timeout=TIMEOUT) == ('HELLO', NoData)
    for sock in (rogue, honest, pull):
        sock.close(linger=0)


def test_transport_router_req_addresses(router_req):
    router, req, port = router_req
    req.send_msg('NAMES', ['a', 'b'])
    addr, msg, data = router.recv_addr_msg(timeout=TIMEOUT)
    assert (msg, data) == ('NAMES', ['a', 'b'])
    router.send_addr_msg(addr, 'ACK', 2)
    assert req.recv_msg(timeout=TIMEOUT) == ('ACK', 2)


def test_transport_router_error_names_peer(router_req):
    router, req, port = router_req
    req.send(b'\xff')
    with pytest.raises(ProtocolError) as exc:
        router.recv_addr_msg(timeout=TIMEOUT)
    assert '(from peer ' in str(exc.value)


def test_transport_router_mandatory_reports_gone_peer(router_req):
    router, req, port = router_req
    with pytest.raises(TransportError) as exc:
        router.send_addr_msg(b'\x00nobody', 'BYE')
    assert str(exc.value) == 'sample: BYE: peer 006e6f626f6479 is gone'


def test_transport_dealer_talks_to_router(zmq_context, ipc_address):
    router = zmq_context.socket(transport.ROUTER, protocol=sample_protocol)
    router.bind(ipc_address)
    dealer = zmq_context.socket(transport.DEALER,
                                protocol=sample_protocol.reversed())
    dealer.connect(ipc_address)
    dealer.send_msg('HELLO')
    addr, msg, data = router.recv_addr_msg(timeout=TIMEOUT)
    assert (msg, data) == ('HELLO', NoData)
    router.send_addr_msg(addr, 'ACK', 1)
    assert dealer.recv_msg(timeout=TIMEOUT) == ('ACK', 1)
    dealer.close()
    router.close()


def test_transport_recv_timeout(pair):
    push, pull = pair
    with pytest.raises(TransportError) as exc:
        pull.recv_msg(timeout=0.05)
    assert str(exc.value) == 'sample: nothing received within 0.05s'


def test_transport_poll_and_drain(pair):
    push, pull = pair
    assert not pull.poll(0)
    for _ in range(3):
        push.send_msg('HELLO')
    assert pull.poll(TIMEOUT)
    pull.drain()
    assert not pull.poll(0.05)


def test_transport_hwm(zmq_context):
    sock = zmq_context.socket(transport.PUSH)
    sock.hwm = 10
    assert sock.hwm == 10
    sock.close()


def test_transport_pub_sub(zmq_context):
    pub = zmq_context.socket(transport.PUB, protocol=sample_protocol)
    port = pub.bind_to_random_port('tcp://127.0.0.1')
    sub = zmq_context.socket(transport.SUB,
                             protocol=sample_protocol.reversed())
    sub.connect('tcp://127.0.0.1:{}'.format(port))
    sub.subscribe('')
    # a subscription takes effect asynchronously: publish until one arrives
    for _ in range(100):
        pub.send_msg('ACK', 5)
        if sub.poll(0.05):
            break
    assert sub.recv_msg(timeout=TIMEOUT) == ('ACK', 5)
    sub.unsubscribe('')
    pub.close()
    sub.close()


def test_transport_poller(zmq_context):
    poller = transport.Poller()
    pull1 = zmq_context.socket(transport.PULL, protocol=sample_protocol)
    pull1.bind('inproc://one')
    pull2 = zmq_context.socket(transport.PULL, protocol=sample_protocol)
    pull2.bind('inproc://two')
    push = zmq_context.socket(transport.PUSH,
                              protocol=sample_protocol.reversed())
    push.connect('inproc://two')
    poller.register(pull1, transport.POLLIN)
    poller.register(pull2, transport.POLLIN)
    assert poller.poll(0.01) == {}
    push.send_msg('HELLO')
    assert poller.poll(TIMEOUT) == {pull2: transport.POLLIN}
    poller.unregister(pull2)
    assert poller.poll(0.01) == {}
    for sock in (pull1, pull2, push):
        sock.close()


def test_transport_context_instance_is_shared():
    ctx = transport.Context.instance()
    assert transport.Context.instance() is ctx
    assert not ctx.closed


def test_transport_large_message_decoder_matches_cbor2():
    # messages holding a large byte string are decoded by our own decoder;
    # it must agree with cbor2 on every type we use
    blob = bytes(range(256)) * 512
    data = [blob, 'text', 'ünïcode', -5, 2 ** 40, 1.5, True, False, None,
            {'key': [1, 2, {'nested': b'x'}]}, [],
            datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=timezone.utc)]
    buf = transport.encode('BIG', data)
    assert transport.decode(buf) == ('BIG', cbor2.loads(buf)[1])
    assert transport.decode(memoryview(buf)) == ('BIG', cbor2.loads(buf)[1])
    # indefinite-length items and half/single floats too
    buf = (b'\x82\x63BIG\x87\x5f\x41a\x41b\xff\x7f\x61c\x61d\xff'
           b'\x9f\x01\xff\xbf\x61k\x02\xff\xf9\x3c\x00\xfa\x3f\xc0\x00\x00'
           + b'\x5a\x00\x01\x00\x00' + b'\x00' * 65536)
    assert transport.decode(buf) == ('BIG', [
        b'ab', 'cd', [1], {'k': 2}, 1.0, 1.5, b'\x00' * 65536])
    assert cbor2.loads(buf)[1][:6] == [b'ab', 'cd', [1], {'k': 2}, 1.0, 1.5]


@pytest.mark.parametrize('data', [
    [7, bytes(range(256)) * 256],                 # LARGE_STRING exactly
    ['name', {'k': [1]}, b'\xff' * (1024 * 1024 + 3)],
    [b'\x00' * 65536, b'\x01' * 70000],            # only the last is spliced
])
def test_transport_large_trailing_bytes_encoded_as_cbor2_does(data):
    # a large byte string ending the data is appended to cbor2's encoding of
    # the rest: the bytes must be exactly cbor2's
    buf = transport.encode('BIG', data)
    assert buf == cbor2.dumps(['BIG', data])
    assert transport.decode(buf) == ('BIG', data)


def test_transport_byte_string_header_beyond_4_gib():
    assert transport._byte_string_header(65536) == b'\x5a\x00\x01\x00\x00'
    assert transport._byte_string_header(2 ** 32) == (
        b'\x5b\x00\x00\x00\x01\x00\x00\x00\x00')


@pytest.mark.parametrize('tail,reason', [
    (b'\x62\xff\xfe', "codec can't decode"),
    (b'\xf7', 'unsupported simple value 23'),
    (b'\xc1\x61x', 'tag 1 needs a number'),
    (b'\xc1\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00', 'invalid CBOR'),
])
def test_transport_large_message_bad_items(tail, reason):
    big = b'\x5a\x00\x01\x00\x00' + b'\x00' * 65536
    buf = b'\x82\x63BIG\x82' + big + tail
    with pytest.raises(ProtocolError) as exc:
        transport.decode(buf)
    assert reason in str(exc.value)
    assert str(exc.value).startswith('invalid CBOR (')


def test_transport_large_chunk_over_tcp(zmq_context):
    from piwheels import protocols
    router = zmq_context.socket(transport.ROUTER,
                                protocol=protocols.file_juggler_files)
    port = router.bind_to_random_port('tcp://127.0.0.1')
    dealer = zmq_context.socket(transport.DEALER,
                                protocol=protocols.file_juggler_files
                                .reversed())
    dealer.connect('tcp://127.0.0.1:{}'.format(port))
    data = bytes(range(256)) * 16384        # 4 MiB, the largest chunk
    dealer.send_msg('CHUNK', protocols.Chunk(123, data))
    addr, msg, chunk = router.recv_addr_msg(timeout=TIMEOUT)
    assert msg == 'CHUNK'
    assert chunk == protocols.Chunk(123, data)
    assert type(chunk.data) is bytes
    dealer.close()
    router.close()


def test_transport_ipc_socket_is_group_writable(zmq_context, ipc_address):
    # under a umask of 0022 the socket file would be 0755 and Apache's
    # piw-logger (in the piwheels group) could not connect to the master
    old = os.umask(0o022)
    try:
        sock = zmq_context.socket(transport.PULL)
        sock.bind(ipc_address)
    finally:
        os.umask(old)
    try:
        mode = os.stat(ipc_address[len('ipc://'):]).st_mode & 0o777
        assert mode == 0o660
    finally:
        sock.close(linger=0)
