"""Tests for piwheels.protocols: every queue's messages over real sockets."""

import typing
from datetime import datetime, timedelta, timezone

import cbor2
import pytest

from piwheels import protocols, transport
from piwheels.exc import ProtocolError
from piwheels.protocols import (
    Batch, BuiltFile, Check, NoData, Protocol, SlaveEvent, Text, payload,
    parse_wheel_filename,
)

TIMEOUT = 5
WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)

ALL_PROTOCOLS = [
    value for name, value in vars(protocols).items()
    if isinstance(value, Protocol)
]

BUILT_FILE = BuiltFile(
    filename='foo-1.0-cp311-cp311-linux_armv7l.whl', filesize=123456,
    filehash='a' * 64, package_tag='foo', package_version_tag='1.0',
    py_version_tag='cp311', abi_tag='cp311', platform_tag='linux_armv7l',
    requires_python='>=3.9', dependencies={'apt': {'libc6', 'libgcc-s1'}})

PROJECT_DATA = {
    'name': 'foo', 'description': 'A foomatic package',
    'releases': {'1.0': {
        'abis': {'cp311': {'build_id': 1, 'status': 'success', 'skip': ''}},
        'files': {BUILT_FILE.filename: {
            'hash': 'a' * 64, 'size': 123456, 'abi_tag': 'cp311',
            'requires_python': None, 'apt_dependencies': {'libc6'}}},
        'released': WHEN, 'yanked': False, 'skip': '',
    }},
}


def sample(shape):
    """Return a valid value of *shape* (used to exercise every action)."""
    if shape is BuiltFile:
        return BUILT_FILE
    if shape is SlaveEvent:
        return SlaveEvent(1, WHEN, 'BUILD', protocols.BuildRequest(
            'foo', '1.0'))
    if shape is protocols.ProjectData:
        return PROJECT_DATA
    if isinstance(shape, type) and hasattr(shape, '_payload_fields'):
        return shape(*(sample(shape.__annotations__[name])
                       for name in shape._fields))
    if isinstance(shape, protocols.WheelFilename):
        return BUILT_FILE.filename
    if isinstance(shape, protocols.Sha256):
        return 'b' * 64
    if isinstance(shape, Text):
        return 'x' * shape.min_length
    if isinstance(shape, protocols.Natural):
        return min(7, shape.maximum)
    if isinstance(shape, Batch):
        return [sample(shape.shape)] * 2
    simple = {str: 'text', int: 3, bool: True, float: 1.5, bytes: b'\0\1',
              datetime: WHEN, timedelta: timedelta(seconds=90)}
    if shape in simple:
        return simple[shape]
    origin = typing.get_origin(shape)
    args = typing.get_args(shape)
    if origin is typing.Union:
        return sample(args[0])
    if origin is typing.Literal:
        return args[-1]
    if origin is list:
        return [sample(args[0])]
    if origin in (set, frozenset):
        return {sample(args[0])}
    if origin is tuple:
        return tuple(sample(arg) for arg in args)
    if origin is dict:
        return {sample(args[0]): sample(args[1])}
    raise AssertionError('no sample for {!r}'.format(shape))


def all_messages():
    for protocol in ALL_PROTOCOLS:
        for direction in ('recv', 'send'):
            for action, shape in getattr(protocol, direction).items():
                data = NoData if shape is NoData else sample(shape)
                yield pytest.param(
                    protocol, direction, action, data,
                    id='{}-{}-{}'.format(protocol.name, direction, action))


@pytest.mark.parametrize('protocol,direction,action,data',
                         list(all_messages()))
def test_protocols_every_message_round_trips(zmq_context, protocol,
                                             direction, action, data):
    # the binding end receives 'recv' actions; its peer (reversed) sends
    # them, and the other way round for 'send' actions
    address = 'inproc://{}-{}'.format(protocol.name, direction)
    if direction == 'recv':
        receiver_protocol, sender_protocol = protocol, protocol.reversed()
    else:
        receiver_protocol, sender_protocol = protocol.reversed(), protocol
    pull = zmq_context.socket(transport.PULL, protocol=receiver_protocol)
    pull.bind(address)
    push = zmq_context.socket(transport.PUSH, protocol=sender_protocol)
    push.connect(address)
    push.send_msg(action, data)
    assert pull.recv_msg(timeout=TIMEOUT) == (action, data)
    push.close()
    pull.close()


def test_protocols_every_queue_is_named():
    names = [protocol.name for protocol in ALL_PROTOCOLS]
    assert len(names) == len(set(names))
    for name, value in vars(protocols).items():
        if isinstance(value, Protocol):
            assert value.name == name


def test_protocols_network_queues_have_size_limits():
    for protocol in (protocols.slave_driver, protocols.file_juggler_files,
                     protocols.mr_chase, protocols.lumberjack):
        assert protocol.max_size is not None


def test_protocols_reversed_swaps_directions():
    reverse = protocols.slave_driver.reversed()
    assert reverse.send == protocols.slave_driver.recv
    assert reverse.recv == protocols.slave_driver.send
    assert reverse.name == 'slave_driver'
    assert reverse.max_size == protocols.slave_driver.max_size
    assert reversed(protocols.slave_driver) == reverse


def test_protocols_nodata_repr():
    assert repr(NoData) == 'NoData'
    assert repr(protocols.task_control) == (
        "Protocol(recv={'PAUSE': NoData, 'RESUME': NoData, 'QUIT': NoData}, "
        "send={}, name='task_control')")


def test_protocols_oracle_reply_differs_from_request():
    oracle = protocols.the_oracle
    assert oracle.check('recv', 'PKGEXISTS', 'foo') == 'foo'
    assert oracle.check('send', 'PKGEXISTS', True) is True
    with pytest.raises(ProtocolError) as exc:
        oracle.check('send', 'PKGEXISTS', 'foo')
    assert str(exc.value) == 'the_oracle: PKGEXISTS: expected bool, got str'


def test_protocols_oracle_has_every_database_method():
    assert set(protocols.the_oracle.recv) >= {
        'ALLPKGS', 'ALLVERS', 'NEWPKG', 'NEWVER', 'NEWPKGNAME',
        'GETPKGNAMES', 'GETPKGNAME', 'SETDESC', 'SKIPPKG', 'SKIPVER',
        'YANKVER', 'UNYANKVER', 'DELPKG', 'DELVER', 'DELBUILD', 'PKGEXISTS',
        'VEREXISTS', 'PKGDELETED', 'VERSDELETED', 'GETSKIP', 'GETABIS',
        'GETQUEUE', 'GETPYPI', 'SETPYPI', 'GETSEARCH', 'GETSTATS',
        'PKGFILES', 'VERFILES', 'PROJDATA', 'LOGBUILD', 'LOGDOWNLOAD',
        'LOGSEARCH', 'LOGPROJECT', 'LOGJSON', 'LOGPAGE', 'LOADRWP',
        'SAVERWP'}


def test_protocols_payload_as_message_and_back():
    request = protocols.ExpectFile(3, BUILT_FILE)
    message = request.as_message()
    assert message[0] == 3
    assert isinstance(message[1], list)
    assert protocols.ExpectFile.from_message(message) == request


def test_protocols_payload_from_message_names_field():
    with pytest.raises(ProtocolError) as exc:
        protocols.ExpectFile.from_message([3, ['x']])
    assert str(exc.value) == (
        'ExpectFile: file: BuiltFile needs 10 fields (filename, filesize, '
        'filehash, package_tag, package_version_tag, py_version_tag, '
        'abi_tag, platform_tag, requires_python, dependencies), got 1')


def test_protocols_payload_schema_is_voluptuous():
    schema = protocols.PackageVersion.schema()
    assert schema(['foo', '1.0']) == protocols.PackageVersion('foo', '1.0')


@pytest.mark.parametrize('filename,reason', [
    ('../foo-1.0-py3-none-any.whl', 'contains a path'),
    ('dir/foo-1.0-py3-none-any.whl', 'contains a path'),
    ('foo-1.0-py3-none-any.whl\\x', 'contains a path'),
    ('.foo-1.0-py3-none-any.whl', 'is not a wheel filename'),
    ('foo-1.0.tar.gz', 'is not a wheel filename'),
    ('foo-1.0-py3-none.whl', 'is not a wheel filename'),
    ('foo-1.0-x-py3-none-any.whl', 'bad build tag'),
    ('foo-1.0-py3-none-any$.whl', 'outside PEP 427'),
    ('f' * 300 + '-1.0-py3-none-any.whl', 'characters'),
])
def test_protocols_hostile_wheel_filenames(filename, reason):
    with pytest.raises(ValueError) as exc:
        parse_wheel_filename(filename)
    assert reason in str(exc.value)


def test_protocols_wheel_filename_parts():
    tags = parse_wheel_filename('foo_bar-1.0-1-cp311-cp311-linux_armv7l.whl')
    assert tags == protocols.WheelTags(
        'foo_bar', '1.0', '1', 'cp311', 'cp311', 'linux_armv7l')


def test_protocols_built_file_tags_must_match(zmq_context):
    pull = zmq_context.socket(transport.PULL,
                              protocol=protocols.file_juggler_fs)
    pull.bind('inproc://fs')
    push = zmq_context.socket(transport.PUSH)
    push.connect('inproc://fs')
    lying = BUILT_FILE._replace(abi_tag='none').as_message()
    push.send(cbor2.dumps(['EXPECT', [1, transport.to_wire(lying)]]))
    with pytest.raises(ProtocolError) as exc:
        pull.recv_msg(timeout=TIMEOUT)
    assert str(exc.value) == (
        "file_juggler_fs: EXPECT: file: abi_tag 'none' does not match "
        "filename 'foo-1.0-cp311-cp311-linux_armv7l.whl'")


def test_protocols_slave_send_rejects_path(zmq_context):
    router = zmq_context.socket(transport.ROUTER,
                                protocol=protocols.slave_driver)
    with pytest.raises(ProtocolError) as exc:
        router.send_addr_msg(b'slave', 'SEND', '../../etc/passwd.whl')
    assert 'contains a path' in str(exc.value)
    router.close()


def test_protocols_hello_of_other_version_can_be_answered(zmq_context):
    router = zmq_context.socket(transport.ROUTER,
                                protocol=protocols.slave_driver)
    port = router.bind_to_random_port('tcp://127.0.0.1')
    req = zmq_context.socket(transport.REQ)
    req.connect('tcp://127.0.0.1:{}'.format(port))
    req.send(cbor2.dumps(['HELLO', [300, 300, 'cp35', 'cp35m']]))
    with pytest.raises(ProtocolError) as exc:
        router.recv_addr_msg(timeout=TIMEOUT)
    assert 'slave_driver: HELLO: SlaveHello needs 12 fields' in str(
        exc.value)
    router.send_addr_msg(exc.value.addr, 'DIE', 'protocol version mismatch')
    assert cbor2.loads(req.recv(timeout=TIMEOUT)) == [
        'DIE', 'protocol version mismatch']
    req.close()
    router.close()


def test_protocols_slave_event_validates_nested_message():
    with pytest.raises(ProtocolError) as exc:
        protocols.master_status.check(
            'recv', 'SLAVE', [1, WHEN, 'BUILD', ['foo']])
    assert 'SLAVE: slave_driver: BUILD: PackageVersion' not in str(exc.value)
    assert 'BuildRequest needs 2 fields' in str(exc.value)
    event = protocols.master_status.check(
        'recv', 'SLAVE', [1, WHEN, 'SENT', None])
    assert event.data is None
    with pytest.raises(ProtocolError) as exc:
        protocols.master_status.check(
            'recv', 'SLAVE', [1, WHEN, 'FLY', None])
    assert "'FLY' is not a slave_driver action" in str(exc.value)


def test_protocols_log_batch_limit():
    record = sample(protocols.PageState)
    protocols.lumberjack.check('recv', 'LOGPAGE', [record] * 10000)
    with pytest.raises(ProtocolError) as exc:
        protocols.lumberjack.check('recv', 'LOGPAGE', [record] * 10001)
    assert str(exc.value) == (
        'lumberjack: LOGPAGE: batch of 10001 items exceeds 10000')


def test_protocols_project_data_missing_key():
    data = dict(PROJECT_DATA)
    del data['description']
    with pytest.raises(ProtocolError) as exc:
        protocols.the_oracle.check('send', 'PROJDATA', data)
    assert "description" in str(exc.value)


def test_protocols_text_limits():
    with pytest.raises(ProtocolError) as exc:
        protocols.the_oracle.check('recv', 'PKGEXISTS', '')
    assert str(exc.value) == (
        'the_oracle: PKGEXISTS: length 0 is outside 1..200')
    with pytest.raises(ProtocolError) as exc:
        protocols.the_oracle.check('recv', 'PKGEXISTS', 'a\0b')
    assert 'NUL character' in str(exc.value)


def test_protocols_durations_and_numbers():
    @payload
    class Timing(typing.NamedTuple):
        took: timedelta
        load: float
        count: protocols.Natural(10)

    assert Timing.from_message([1.5, 2, 3]) == Timing(
        timedelta(seconds=1.5), 2.0, 3)
    for bad, text in [
            ([float('inf'), 1, 1], 'took: duration out of range: inf'),
            (['1', 1, 1], 'took: expected a duration in seconds, got str'),
            ([1, True, 1], 'load: expected a number, got bool'),
            ([1, 1, 11], 'count: 11 is outside 0..10'),
            ([1, 1, -1], 'count: -1 is outside 0..10')]:
        with pytest.raises(ProtocolError) as exc:
            Timing.from_message(bad)
        assert str(exc.value) == 'Timing: ' + text


def test_protocols_checks_are_callables():
    assert isinstance(protocols.Name, Check)
    assert protocols.Name('foo') == 'foo'
