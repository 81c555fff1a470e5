"""Tests of FileJuggler, driven synchronously: a scripted slave sends the
file over a real DEALER socket, and requests arrive over a real REQ as
FsClient sends them."""

import hashlib
import logging
import os

import pytest

from piwheels import protocols, transport
from piwheels.master import file_juggler
from piwheels.master.file_juggler import FileJuggler
from piwheels.pgcluster import free_port
from piwheels.protocols import BuiltFile

from ..fixtures.schema import run_sql
from ..fixtures.zmq import poll_until

CONTENT = os.urandom(3 * 1024 * 1024 + 12345)
FILENAME = 'foo-0.1-cp311-cp311-linux_x86_64.whl'


def built_file(content=CONTENT, filename=FILENAME):
    return BuiltFile(filename, len(content),
                     hashlib.sha256(content).hexdigest(), 'foo', '0.1',
                     'cp311', 'cp311', 'linux_x86_64', None, {})


@pytest.fixture
def juggler(master_config, peer):
    peer(transport.PULL, protocols.big_brother, bind=master_config.stats_queue)
    task = FileJuggler(master_config)
    task.once()
    yield task
    task.close()


@pytest.fixture
def fs(master_config, peer, juggler):
    """A function making one FsClient request and returning the reply."""
    client = peer(transport.REQ, protocols.file_juggler_fs.reversed(),
                  connect=master_config.fs_queue)

    def request(msg, data=protocols.NoData):
        client.send(msg, data)
        poll_until(juggler, lambda: client.socket.poll(0))
        return client.recv()
    return request


@pytest.fixture
def slave(master_config, peer):
    return peer(transport.DEALER, protocols.file_juggler_files.reversed(),
                connect=master_config.file_queue)


def send_file(juggler, slave, content=CONTENT, slave_id=1, chunk=None):
    """Answer the juggler's FETCHes with *content* until DONE; *chunk* may
    replace a chunk (offset, data) with another (or None to drop it)."""
    slave.send('HELLO', slave_id)
    while True:
        poll_until(juggler, lambda: slave.socket.poll(0))
        msg, data = slave.recv()
        if msg == 'DONE':
            return
        reply = (data.offset, content[data.offset:data.offset + data.length])
        if chunk is not None:
            reply = chunk(*reply)
        if reply is not None:
            slave.send('CHUNK', protocols.Chunk(*reply))


def incoming(master_config):
    return sorted(os.listdir(os.path.join(master_config.output_path,
                                          '.incoming')))


def published(master_config, filename=FILENAME):
    return os.path.join(master_config.output_path, 'simple', 'foo', filename)


def test_file_juggler_transfer_check_publish(master_config, juggler, fs, slave):
    assert fs('EXPECT', protocols.ExpectFile(1, built_file())) == (
        'EXPECT', protocols.NoData)
    send_file(juggler, slave)
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'CHECK'
    assert not os.path.exists(published(master_config))
    assert fs('PUBLISH', [protocols.StagedFile(1, 'foo', FILENAME)])[0] == \
        'PUBLISH'
    with open(published(master_config), 'rb') as f:
        assert f.read() == CONTENT
    assert incoming(master_config) == []


def test_file_juggler_discard_leaves_nothing(master_config, juggler, fs,
                                             slave):
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    send_file(juggler, slave)
    fs('CHECK', protocols.VerifyFile(1, 'foo'))
    fs('DISCARD', [protocols.StagedFile(1, 'foo', FILENAME)])
    assert incoming(master_config) == []
    assert not os.path.exists(published(master_config))


@pytest.fixture
def stager(master_config, peer, juggler):
    """SlaveDriver's side of STAGE: a DEALER sending STAGE (whose answer
    comes when the transfer ends); returns a function sending it, one
    waiting for the next StageOutcome, and the DEALER."""
    dealer = peer(transport.DEALER, protocols.file_juggler_fs.reversed(),
                  connect=master_config.fs_queue)

    def stage(file=None, slave_id=1):
        dealer.send('STAGE', protocols.StageFile(slave_id, 'foo',
                                                 file or built_file()))

    def outcome():
        while True:
            poll_until(juggler, lambda: dealer.socket.poll(0))
            msg, data = dealer.recv()
            if msg == 'STAGE':
                return data
    return stage, outcome, dealer


def test_file_juggler_stage_answered_when_transfer_ends(
        master_config, juggler, slave, stager):
    stage, outcome, dealer = stager
    stage()
    juggler.poll(1)
    # no answer before the file arrived
    assert not dealer.socket.poll(0)
    send_file(juggler, slave)
    assert outcome() == protocols.StageOutcome(1, 'foo', FILENAME, 'STAGED',
                                               None)
    staged, = incoming(master_config)
    assert staged == '1~foo~{}.staged'.format(FILENAME)
    assert not os.path.exists(published(master_config))


def test_file_juggler_stage_of_a_bad_copy_retries_then_fails(
        master_config, juggler, slave, stager):
    stage, outcome, dealer = stager
    stage()
    zeros = lambda offset, data: (offset, b'\0' * len(data))  # noqa: E731
    send_file(juggler, slave, chunk=zeros)
    retry = outcome()
    assert retry.outcome == 'RETRY' and 'does not match' in retry.reason
    # SlaveDriver asks again and the slave sends it again
    for attempt in range(master_config.transfer_retries - 1):
        stage()
        send_file(juggler, slave, chunk=zeros)
        assert outcome().outcome == 'RETRY'
    stage()
    send_file(juggler, slave, chunk=zeros)
    error = outcome()
    assert error.outcome == 'ERROR' and 'giving up' in error.reason
    assert incoming(master_config) == []


def test_file_juggler_stage_of_a_refused_file_fails(master_config, juggler,
                                                    stager):
    stage, outcome, dealer = stager
    stage(built_file()._replace(filesize=master_config.max_file_size + 1))
    error = outcome()
    assert (error.filename, error.outcome) == (FILENAME, 'ERROR')
    assert 'larger than the' in error.reason
    assert incoming(master_config) == []


def test_file_juggler_stage_of_a_transfer_given_up_fails(
        master_config, juggler, slave, stager, monkeypatch):
    monkeypatch.setattr(file_juggler, 'FETCH_TIMEOUT',
                        file_juggler.timedelta(0))
    monkeypatch.setattr(file_juggler, 'MAX_REFETCHES', 0)
    stage, outcome, dealer = stager
    stage()
    slave.send('HELLO', 1)
    poll_until(juggler, lambda: slave.socket.poll(0))
    # the slave vanishes: its chunks never come
    juggler.refetch_lost()
    error = outcome()
    assert error.outcome == 'ERROR' and 'giving up' in error.reason
    assert incoming(master_config) == []


def test_file_juggler_publish_answered_after_later_requests(
        master_config, juggler, fs, slave, peer):
    """PUBLISH waits for its file to reach the disk (flushed in
    FileSyncer's thread); a request sent after it on the same queue is
    answered meanwhile."""
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    send_file(juggler, slave)
    fs('CHECK', protocols.VerifyFile(1, 'foo'))
    dealer = peer(transport.DEALER, protocols.file_juggler_fs.reversed(),
                  connect=master_config.fs_queue)
    dealer.send('PUBLISH', [protocols.StagedFile(1, 'foo', FILENAME)])
    dealer.send('STATVFS')
    replies = []
    while len(replies) < 2:
        poll_until(juggler, lambda: dealer.socket.poll(0))
        replies.append(dealer.recv()[0])
    assert replies == ['STATVFS', 'PUBLISH']
    with open(published(master_config), 'rb') as f:
        assert f.read() == CONTENT


def test_file_juggler_publish_of_a_lost_staged_file_fails(
        master_config, juggler, fs, slave):
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    send_file(juggler, slave)
    fs('CHECK', protocols.VerifyFile(1, 'foo'))
    staged, = incoming(master_config)
    os.unlink(os.path.join(master_config.output_path, '.incoming', staged))
    msg, error = fs('PUBLISH', [protocols.StagedFile(1, 'foo', FILENAME)])
    assert msg == 'ERROR' and 'unable to flush' in error
    assert not os.path.exists(published(master_config))
    # the juggler carries on
    assert fs('STATVFS')[0] == 'STATVFS'


def test_file_juggler_verify_publishes_at_once(master_config, juggler, fs,
                                               slave):
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    send_file(juggler, slave)
    assert fs('VERIFY', protocols.VerifyFile(1, 'foo'))[0] == 'VERIFY'
    assert os.path.exists(published(master_config))


def test_file_juggler_hash_mismatch_refetched_then_fails(
        master_config, juggler, fs, slave):
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    replies = []
    for attempt in range(master_config.transfer_retries + 1):
        send_file(juggler, slave,
                  chunk=lambda offset, data: (offset, b'\0' * len(data)))
        replies.append(fs('CHECK', protocols.VerifyFile(1, 'foo')))
    assert [msg for msg, text in replies] == (
        ['RETRY'] * master_config.transfer_retries + ['ERROR'])
    assert 'does not match' in replies[0][1]
    assert 'giving up' in replies[-1][1]
    assert incoming(master_config) == []
    assert not os.path.exists(published(master_config))


def test_file_juggler_hash_mismatch_then_good_copy(master_config, juggler, fs,
                                                   slave):
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    send_file(juggler, slave,
              chunk=lambda offset, data: (offset, b'\0' * len(data)))
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'RETRY'
    send_file(juggler, slave)
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'CHECK'


def test_file_juggler_refuses_chunk_outside_file(master_config, juggler, fs,
                                                 slave, caplog):
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    slave.send('HELLO', 1)
    poll_until(juggler, lambda: slave.socket.poll(0))
    slave.send('CHUNK', protocols.Chunk(2 ** 40, b'absurd'))
    juggler.poll(1)
    assert 'lies outside' in caplog.text
    slave.socket.drain()
    send_file(juggler, slave)
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'CHECK'


def test_file_juggler_refuses_file_over_size_cap(master_config, juggler, fs):
    big = built_file()._replace(filesize=master_config.max_file_size + 1)
    msg, text = fs('EXPECT', protocols.ExpectFile(1, big))
    assert msg == 'ERROR'
    assert 'larger than the' in text
    assert incoming(master_config) == []


def test_file_juggler_lost_chunks_fetched_again(
        master_config, juggler, fs, slave, monkeypatch):
    monkeypatch.setattr(file_juggler, 'FETCH_TIMEOUT',
                        file_juggler.timedelta(0))
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    lost = set()

    def lose_first(offset, data):
        if offset not in lost:
            lost.add(offset)
            juggler.refetch_lost()
            return None
        return offset, data
    send_file(juggler, slave, chunk=lose_first)
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'CHECK'


def test_file_juggler_abort_removes_partial_file(master_config, juggler, fs,
                                                 slave):
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    slave.send('HELLO', 1)
    poll_until(juggler, lambda: slave.socket.poll(0))
    msg, fetch = slave.recv()
    slave.send('CHUNK', protocols.Chunk(
        fetch.offset, CONTENT[fetch.offset:fetch.offset + fetch.length]))
    juggler.poll(1)
    assert incoming(master_config)
    assert fs('ABORT', 1) == ('ABORT', protocols.NoData)
    assert incoming(master_config) == []
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'ERROR'


def test_file_juggler_hello_without_expect_ignored(juggler, slave, caplog):
    caplog.set_level(logging.INFO)
    slave.send('HELLO', 42)
    juggler.poll(1)
    assert 'slave 42, which has no file to send' in caplog.text
    assert not slave.socket.poll(0.2)


def test_file_juggler_statvfs(fs):
    msg, usage = fs('STATVFS')
    assert msg == 'STATVFS'
    assert 0 < usage.disk_free <= usage.disk_size


def test_file_juggler_recovery_after_crash(master_config, with_build_abis):
    """Unfinished transfers go; a staged file the database recorded is
    published, one it did not is removed."""
    incoming_dir = os.path.join(master_config.output_path, '.incoming')
    os.makedirs(incoming_dir)
    recorded = b'recorded wheel'
    unrecorded = b'unrecorded wheel'
    run_sql(with_build_abis[0], "INSERT INTO packages (package) VALUES ('foo')")
    run_sql(with_build_abis[0],
            "INSERT INTO versions (package, version) VALUES ('foo', '0.1')")
    run_sql(with_build_abis[0],
            "INSERT INTO builds (package, version, abi_tag, built_by, "
            "duration, status, attempt) VALUES ('foo', '0.1', 'cp311', 1, "
            "'1 minute', true, 1)")
    run_sql(with_build_abis[0],
            "INSERT INTO files (filename, build_id, filesize, filehash, "
            "package_tag, package_version_tag, py_version_tag, abi_tag, "
            "platform_tag) SELECT :f, build_id, 14, :h, 'foo', '0.1', "
            "'cp311', 'cp311', 'linux_x86_64' FROM builds",
            f=FILENAME, h=hashlib.sha256(recorded).hexdigest())
    other = 'foo-0.1-cp39-cp39-linux_x86_64.whl'
    for name, content in [
            ('2~{}.part'.format(FILENAME), b'half'),
            ('1~foo~{}.staged'.format(FILENAME), recorded),
            ('4~foo~{}.staged'.format(other), unrecorded)]:
        with open(os.path.join(incoming_dir, name), 'wb') as f:
            f.write(content)
    juggler = FileJuggler(master_config)
    juggler.once()
    juggler.close()
    assert os.listdir(incoming_dir) == []
    with open(published(master_config), 'rb') as f:
        assert f.read() == recorded
    assert not os.path.exists(published(master_config, other))


def test_file_juggler_recovery_without_a_database_keeps_staged_files(
        master_config, caplog):
    incoming_dir = os.path.join(master_config.output_path, '.incoming')
    os.makedirs(incoming_dir)
    staged = '1~foo~{}.staged'.format(FILENAME)
    for name in ('2~{}.part'.format(FILENAME), staged):
        with open(os.path.join(incoming_dir, name), 'wb') as f:
            f.write(b'wheel')
    master_config.dsn = 'postgresql://nobody:wrong@127.0.0.1:{}/none'.format(
        free_port())
    juggler = FileJuggler(master_config)
    juggler.once()
    juggler.close()
    assert os.listdir(incoming_dir) == [staged]
    assert 'cannot recover the staged files' in caplog.text
    assert 'kept for the next start' in caplog.text


def test_file_juggler_hello_before_expect_is_kept(master_config, juggler, fs,
                                                  slave):
    slave.send('HELLO', 1)
    juggler.poll(1)
    assert not slave.socket.poll(0.2)
    fs('EXPECT', protocols.ExpectFile(1, built_file()))
    # the juggler starts fetching at once: no second HELLO needed
    while True:
        poll_until(juggler, lambda: slave.socket.poll(0))
        msg, fetch = slave.recv()
        if msg == 'DONE':
            break
        slave.send('CHUNK', protocols.Chunk(
            fetch.offset, CONTENT[fetch.offset:fetch.offset + fetch.length]))
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'CHECK'


def test_file_juggler_refused_file_ends_transfer(master_config, juggler, fs,
                                                 slave):
    big = built_file()._replace(filesize=master_config.max_file_size + 1)
    assert fs('EXPECT', protocols.ExpectFile(1, big))[0] == 'ERROR'
    slave.send('HELLO', 1)
    poll_until(juggler, lambda: slave.socket.poll(0))
    assert slave.recv() == ('DONE', protocols.NoData)
    assert fs('CHECK', protocols.VerifyFile(1, 'foo'))[0] == 'ERROR'
