"""Tests for piwheels.states: builds, slaves and file transfers."""

import hashlib
import os
from datetime import datetime, timedelta, timezone

import pytest

from piwheels import protocols, transport
from piwheels.exc import FileConflict, ProtocolError, TransferError
from piwheels.states import (
    MAX_BUFFERED, BuildState, FileState, SlaveState, TransferState,
    mkdir_override_symlink, remove_stale_transfers,
)

TIMEOUT = 5
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def file_state(content=b'wheel contents', filename=None, filesize=None,
               filehash=None):
    filename = filename or 'foo-1.0-cp311-cp311-linux_armv7l.whl'
    tags = protocols.parse_wheel_filename(filename)
    return FileState(
        filename,
        len(content) if filesize is None else filesize,
        filehash or hashlib.sha256(content).hexdigest(),
        tags.package_tag, tags.package_version_tag, tags.py_version_tag,
        tags.abi_tag, tags.platform_tag, '>=3.9', {'apt': {'libc6'}})


def build_state():
    return BuildState(
        1, 'foo', '1.0', 'cp311', True, timedelta(seconds=5), 'log',
        [file_state(), file_state(
            filename='foo-1.0-py3-none-any.whl')])


def test_states_file_state_round_trip():
    state = file_state()
    assert not state.transferred
    message = state.as_message()
    assert message[0] == 'foo-1.0-cp311-cp311-linux_armv7l.whl'
    again = FileState.from_message(message)
    assert isinstance(again, FileState)
    assert again == state
    again.verified()
    assert again.transferred
    assert not state.transferred


def test_states_file_state_from_message_refuses_lies():
    message = file_state().as_message()
    message[6] = 'none'
    with pytest.raises(ProtocolError) as exc:
        FileState.from_message(message)
    assert "abi_tag 'none' does not match filename" in str(exc.value)


def test_states_build_state_files_and_transfers():
    build = build_state()
    assert list(build.files) == [
        'foo-1.0-cp311-cp311-linux_armv7l.whl', 'foo-1.0-py3-none-any.whl']
    assert build.next_file == 'foo-1.0-cp311-cp311-linux_armv7l.whl'
    build.files[build.next_file].verified()
    assert build.next_file == 'foo-1.0-py3-none-any.whl'
    assert not build.transfers_done
    build.files[build.next_file].verified()
    assert build.next_file is None
    assert build.transfers_done
    assert build.build_id is None
    build.logged(42)
    assert build.build_id == 42


def test_states_build_state_message_round_trip(zmq_context):
    pull = zmq_context.socket(transport.PULL, protocol=protocols.the_oracle)
    pull.bind('inproc://oracle')
    push = zmq_context.socket(transport.PUSH,
                              protocol=protocols.the_oracle.reversed())
    push.connect('inproc://oracle')
    push.send_msg('LOGBUILD', build_state().as_message())
    action, record = pull.recv_msg(timeout=TIMEOUT)
    assert action == 'LOGBUILD'
    build = BuildState.from_message(record)
    assert build.package == 'foo'
    assert build.duration == timedelta(seconds=5)
    assert list(build.files) == list(build_state().files)
    assert all(isinstance(f, FileState) for f in build.files.values())
    assert BuildState.from_message(
        build.as_message().as_message()).as_message() == build.as_message()


def hello(build_timeout=3600):
    return protocols.SlaveHello(
        protocols.PROTOCOL_VERSION, '1.0', timedelta(seconds=build_timeout),
        timedelta(seconds=300), 'cp311', 'cp311', 'linux_armv7l', 'pi4',
        'Debian GNU/Linux', '12', 'c03111', '1234')


def test_states_slave_from_hello_clamps_timeout():
    slave = SlaveState.from_hello(b'addr', hello(build_timeout=100000),
                                  timedelta(minutes=5), timedelta(hours=3))
    assert slave.build_timeout == timedelta(hours=3)
    other = SlaveState.from_hello(b'addr2', hello(build_timeout=60),
                                  timedelta(minutes=5), timedelta(hours=3))
    assert other.build_timeout == timedelta(seconds=60)
    assert other.slave_id != slave.slave_id
    assert slave.native_abi == 'cp311'


def test_states_slave_follows_a_build():
    slave = SlaveState.from_hello(b'addr', hello(), timedelta(minutes=5),
                                  timedelta(hours=3))
    stats = protocols.SlaveStats(NOW, 10, 5, 10, 5, 0, 0, 0.5, None)
    slave.received('IDLE', stats, now=NOW)
    assert slave.stats == stats
    slave.sent('BUILD', protocols.BuildRequest('foo', '1.0'), now=NOW)
    assert not slave.expired(now=NOW + timedelta(minutes=4))
    assert slave.expired(now=NOW + timedelta(minutes=6))
    slave.received('BUSY', stats, now=NOW + timedelta(hours=3))
    # silent enough, but building longer than its timeout allows
    assert slave.expired(now=NOW + timedelta(hours=3, minutes=5, seconds=1))
    result = protocols.BuildResult(True, timedelta(seconds=9), 'ok',
                                   [file_state()], '')
    slave.received('BUILT', result, now=NOW + timedelta(hours=3, minutes=1))
    assert slave.build.package == 'foo'
    assert slave.build.abi_tag == 'cp311'
    assert slave.build.next_file == file_state().filename
    slave.received('IDLE', stats, now=NOW + timedelta(hours=3, minutes=2))
    assert slave.build is None and slave.build_request is None


def test_states_slave_event_is_a_valid_status_message():
    slave = SlaveState.from_hello(b'addr', hello(), timedelta(minutes=5),
                                  timedelta(hours=3))
    event = slave.event('SLEEP', protocols.NoData, now=NOW)
    assert protocols.master_status.check('recv', 'SLAVE', event) == event
    event = slave.event('BUILD', protocols.BuildRequest('foo', '1.0'))
    assert protocols.master_status.check('recv', 'SLAVE', event).data == (
        protocols.BuildRequest('foo', '1.0'))
    slave.kill()
    assert slave.killed


def test_states_transfer_in_order(tmp_path):
    content = os.urandom(10000)
    transfer = TransferState(1, file_state(content), tmp_path,
                             chunk_size=3000, pipeline_size=2)
    first = transfer.fetch()
    second = transfer.fetch()
    assert (first, second) == (protocols.Fetch(0, 3000),
                               protocols.Fetch(3000, 3000))
    assert transfer.fetch() is None      # pipeline full
    transfer.chunk(3000, content[3000:6000])
    assert transfer.fetch() == protocols.Fetch(6000, 3000)
    transfer.chunk(0, content[:3000])
    assert transfer.fetch() == protocols.Fetch(9000, 1000)
    assert transfer.fetch() is None      # everything missing is in flight
    transfer.chunk(6000, content[6000:9000])
    transfer.chunk(9000, content[9000:])
    assert transfer.done
    published = transfer.commit(tmp_path / 'simple' / 'foo')
    assert published.read_bytes() == content
    assert os.listdir(tmp_path) == ['simple']


def test_states_transfer_refetches_lost_and_short_chunks(tmp_path):
    content = os.urandom(8000)
    transfer = TransferState(1, file_state(content), tmp_path,
                             chunk_size=2000, pipeline_size=4)
    fetches = [transfer.fetch() for _ in range(4)]
    assert transfer.fetch() is None
    # the chunk for 2000 is lost; the one for 4000 arrives short
    transfer.chunk(0, content[0:2000])
    transfer.chunk(4000, content[4000:5000])
    transfer.chunk(6000, content[6000:8000])
    assert transfer.fetch() == protocols.Fetch(5000, 1000)
    assert transfer.fetch() is None
    transfer.reset_credit()
    assert transfer.fetch() == protocols.Fetch(2000, 2000)
    assert transfer.fetch() == protocols.Fetch(5000, 1000)
    transfer.chunk(2000, content[2000:4000])
    transfer.chunk(5000, content[5000:6000])
    assert transfer.done and transfer.missing_bytes == 0
    assert len(fetches) == 4
    transfer.commit(tmp_path / 'foo')
    assert (tmp_path / 'foo' / file_state().filename).read_bytes() == content


def test_states_transfer_refuses_absurd_offset(tmp_path):
    transfer = TransferState(1, file_state(b'x' * 100), tmp_path)
    with pytest.raises(TransferError) as exc:
        transfer.chunk(2 ** 62, b'data')
    assert str(exc.value) == (
        'chunk of 4 bytes at offset 4611686018427387904 lies outside '
        'foo-1.0-cp311-cp311-linux_armv7l.whl (100 bytes)')
    with pytest.raises(TransferError):
        transfer.chunk(98, b'data')
    assert transfer.missing_bytes == 100
    transfer.rollback()


def test_states_transfer_size_cap(tmp_path):
    with pytest.raises(TransferError) as exc:
        TransferState(1, file_state(filesize=2000, filehash='0' * 64),
                      tmp_path, max_file_size=1000)
    assert str(exc.value) == (
        'foo-1.0-cp311-cp311-linux_armv7l.whl is 2000 bytes, larger than '
        'the 1000-byte limit')
    assert os.listdir(tmp_path) == []


def test_states_transfer_refuses_hostile_filename(tmp_path):
    state = file_state()._replace(filename='../../etc/cron.d/x.whl')
    with pytest.raises(TransferError) as exc:
        TransferState(1, state, tmp_path)
    assert 'contains a path' in str(exc.value)


def test_states_transfer_bad_hash_publishes_nothing(tmp_path):
    content = b'good wheel'
    transfer = TransferState(1, file_state(content), tmp_path)
    fetch = transfer.fetch()
    transfer.chunk(fetch.offset, b'evil wheel')
    with pytest.raises(TransferError) as exc:
        transfer.commit(tmp_path / 'foo')
    assert 'does not match the expected' in str(exc.value)
    assert os.listdir(tmp_path) == []


def test_states_transfer_incomplete_publishes_nothing(tmp_path):
    transfer = TransferState(1, file_state(b'x' * 100), tmp_path,
                             chunk_size=50)
    transfer.chunk(0, b'x' * 50)
    with pytest.raises(TransferError) as exc:
        transfer.commit(tmp_path / 'foo')
    assert str(exc.value) == (
        'foo-1.0-cp311-cp311-linux_armv7l.whl: 50 bytes never arrived')
    assert os.listdir(tmp_path) == []


def test_states_transfer_never_replaces_published_file(tmp_path):
    old = TransferState(1, file_state(b'first build'), tmp_path)
    old.chunk(0, b'first build')
    published = old.commit(tmp_path / 'foo')
    same = TransferState(2, file_state(b'first build'), tmp_path)
    same.chunk(0, b'first build')
    assert same.commit(tmp_path / 'foo') == published
    other = TransferState(3, file_state(b'other build'), tmp_path)
    other.chunk(0, b'other build')
    with pytest.raises(FileConflict) as exc:
        other.commit(tmp_path / 'foo')
    assert 'not replaced' in str(exc.value)
    assert published.read_bytes() == b'first build'
    assert sorted(os.listdir(tmp_path)) == ['foo']


def test_states_transfer_empty_file(tmp_path):
    transfer = TransferState(1, file_state(b''), tmp_path)
    assert transfer.done
    assert transfer.fetch() is None
    assert transfer.commit(tmp_path / 'foo').read_bytes() == b''


LARGE = os.urandom(MAX_BUFFERED + 5000)


def large_transfer(tmp_path, content=LARGE):
    """A transfer of *content* too large to be kept in memory, in chunks of
    a quarter of it."""
    return TransferState(1, file_state(content), tmp_path,
                         chunk_size=len(content) // 4 + 1, pipeline_size=4)


def test_states_transfer_large_file_out_of_order(tmp_path):
    transfer = large_transfer(tmp_path)
    # on disk while it arrives
    assert len(os.listdir(tmp_path)) == 1
    fetches = [transfer.fetch() for _ in range(4)]
    for fetch in reversed(fetches):
        transfer.chunk(fetch.offset,
                       LARGE[fetch.offset:fetch.offset + fetch.length])
    published = transfer.commit(tmp_path / 'foo')
    assert published.read_bytes() == LARGE
    assert os.listdir(tmp_path) == ['foo']


@pytest.mark.parametrize('first, again, verifies', [
    (b'x', None, True),       # a bad chunk sent again with the right bytes
    (None, b'x', False),      # a good chunk sent again with wrong bytes
])
def test_states_transfer_large_file_repeated_chunk(tmp_path, first, again,
                                                   verifies):
    """A chunk arriving again replaces the first copy: the file verifies
    by what was written last."""
    transfer = large_transfer(tmp_path)
    fetches = [transfer.fetch() for _ in range(4)]

    def piece(fetch, fill):
        good = LARGE[fetch.offset:fetch.offset + fetch.length]
        return good if fill is None else fill * len(good)
    transfer.chunk(fetches[0].offset, piece(fetches[0], first))
    transfer.chunk(fetches[1].offset, piece(fetches[1], None))
    transfer.chunk(fetches[0].offset, piece(fetches[0], again))
    for fetch in fetches[2:]:
        transfer.chunk(fetch.offset, piece(fetch, None))
    if verifies:
        transfer.stage(tmp_path / 'staged')
        assert (tmp_path / 'staged').read_bytes() == LARGE
    else:
        with pytest.raises(TransferError):
            transfer.verify()
        transfer.rollback()
    assert os.listdir(tmp_path) == (['staged'] if verifies else [])


def test_states_transfer_small_file_staged_from_memory(tmp_path):
    content = b'tiny wheel'
    transfer = TransferState(1, file_state(content), tmp_path)
    # nothing on disk until it is complete and verified
    transfer.chunk(transfer.fetch().offset, content)
    assert os.listdir(tmp_path) == []
    transfer.verify()
    transfer.stage(tmp_path / 'staged')
    assert (tmp_path / 'staged').read_bytes() == content
    assert os.listdir(tmp_path) == ['staged']


def test_states_remove_stale_transfers(tmp_path):
    # a crash leaves the temporary file of a large transfer (a small one
    # is received in memory)
    TransferState(1, file_state(filesize=MAX_BUFFERED + 1, filehash='0' * 64),
                  tmp_path)
    (tmp_path / 'index.html').write_text('keep')
    assert remove_stale_transfers(tmp_path) == 1
    assert os.listdir(tmp_path) == ['index.html']


def test_states_transfer_over_sockets(zmq_context, tmp_path):
    """The file_juggler_files protocol end to end on tcp: several FETCHes in
    flight, one CHUNK lost and fetched again after reset_credit."""
    content = os.urandom(300000)
    state = file_state(content)
    juggler = zmq_context.socket(transport.ROUTER,
                                 protocol=protocols.file_juggler_files)
    port = juggler.bind_to_random_port('tcp://127.0.0.1')
    slave = zmq_context.socket(transport.DEALER,
                               protocol=protocols.file_juggler_files
                               .reversed())
    slave.connect('tcp://127.0.0.1:{}'.format(port))
    slave.send_msg('HELLO', 7)
    addr, action, slave_id = juggler.recv_addr_msg(timeout=TIMEOUT)
    assert (action, slave_id) == ('HELLO', 7)
    transfer = TransferState(slave_id, state, tmp_path, chunk_size=32768,
                             pipeline_size=4)
    dropped = []
    while not transfer.done:
        for fetch in iter(transfer.fetch, None):
            juggler.send_addr_msg(addr, 'FETCH', fetch)
        # the slave answers every FETCH waiting for it, but the first
        # CHUNK for offset 65536 is lost on the way
        while slave.poll(0.1):
            action, fetch = slave.recv_msg(timeout=TIMEOUT)
            assert action == 'FETCH'
            if fetch.offset == 65536 and not dropped:
                dropped.append(fetch)
                continue
            slave.send_msg('CHUNK', protocols.Chunk(
                fetch.offset,
                content[fetch.offset:fetch.offset + fetch.length]))
        received = 0
        while juggler.poll(0.1):
            addr, action, chunk = juggler.recv_addr_msg(timeout=TIMEOUT)
            transfer.chunk(chunk.offset, chunk.data)
            received += 1
        if not received:
            transfer.reset_credit()
    juggler.send_addr_msg(addr, 'DONE')
    assert slave.recv_msg(timeout=TIMEOUT) == ('DONE', protocols.NoData)
    assert dropped == [protocols.Fetch(65536, 32768)]
    published = transfer.commit(tmp_path / 'simple' / 'foo')
    assert published.read_bytes() == content


def test_states_mkdir_override_symlink(tmp_path):
    target = tmp_path / 'bar'
    target.mkdir()
    link = tmp_path / 'foo'
    link.symlink_to(target)
    mkdir_override_symlink(link)
    assert link.is_dir() and not link.is_symlink()
    mkdir_override_symlink(link)
    assert link.is_dir()
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(FileExistsError):
        mkdir_override_symlink(blocker)
