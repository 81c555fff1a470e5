"""Tests of MrChase over real sockets, with real FileJuggler, Seraph and
TheOracle threads and the test's PostgreSQL: what an importer sees when its
requests are malformed, out of turn, or its files arrive damaged or clash
with published ones. MrChase is driven synchronously by the test."""

import hashlib
from datetime import timedelta

import pytest

from piwheels import protocols, transport
from piwheels.master.file_juggler import FileJuggler
from piwheels.master.mr_chase import MrChase, abi_order
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.protocols import BuildRecord, BuiltFile

from ..fixtures.schema import run_sql
from .farm import RunningTasks

TRANSFER_ID = 1 << 40


def wheel_file(content, package='foo', version='1.0', abi='cp311'):
    filename = '{}-{}-{}-{}-linux_x86_64.whl'.format(
        package, version, abi, abi)
    return BuiltFile(filename, len(content),
                     hashlib.sha256(content).hexdigest(), package, version,
                     abi, abi, 'linux_x86_64', None, {})


def record(*files, transfer_id=TRANSFER_ID, abi='cp311'):
    return BuildRecord(transfer_id, 'foo', '1.0', abi, True,
                       timedelta(seconds=1), 'imported', list(files), '')


@pytest.fixture
def chase(master_config, peer):
    tasks = RunningTasks(master_config, Seraph, TheOracle, FileJuggler)
    for queue, protocol in [
            (master_config.web_queue, protocols.the_secretary),
            (master_config.stats_queue, protocols.big_brother),
            (master_config.deletions_queue,
             protocols.slave_driver_deletions)]:
        peer(transport.PULL, protocol, bind=queue)
    task = MrChase(master_config)
    yield task
    task.close()
    tasks.stop()


@pytest.fixture
def importer(master_config, chase, peer):
    """A REQ socket to MrChase; ``importer.request(msg, data)`` returns the
    answer, polling MrChase until it comes."""
    queue = peer(transport.REQ, protocols.mr_chase.reversed(),
                 connect=master_config.import_queue)
    files = peer(transport.DEALER, protocols.file_juggler_files.reversed(),
                 connect=master_config.file_queue)

    class Importer:
        socket = queue.socket

        @staticmethod
        def answer():
            for _ in range(100):
                if queue.socket.poll(0):
                    break
                chase.poll(0.1)
            return queue.recv()

        @classmethod
        def request(cls, msg, data=protocols.NoData):
            queue.send(msg, data)
            return cls.answer()

        @staticmethod
        def transfer(content, transfer_id=TRANSFER_ID):
            files.send('HELLO', transfer_id)
            while True:
                msg, data = files.recv()
                if msg == 'DONE':
                    return
                files.send('CHUNK', protocols.Chunk(
                    data.offset, content[data.offset:data.offset + data.length]))
    return Importer


def test_abi_order():
    assert sorted(['cp311', 'cp39', 'cp310'], key=abi_order) == [
        'cp39', 'cp310', 'cp311']


def test_mr_chase_answers_malformed_request(importer):
    importer.socket.send_multipart([b'\xff\x00garbage'])
    msg, data = importer.answer()
    assert msg == 'ERROR'
    assert data.startswith('invalid request')


def test_mr_chase_refuses_sent_out_of_turn(importer):
    assert importer.request('SENT') == (
        'ERROR', 'SENT without an import in progress')


def test_mr_chase_import_with_damaged_transfer(importer, master_config,
                                               with_build_abis):
    content = b'a wheel, honest' * 1000
    file = wheel_file(content)
    assert importer.request('IMPORT', record(file)) == ('SEND', file.filename)
    # the file arrives damaged: it is asked for again
    importer.transfer(b'x' * len(content))
    assert importer.request('SENT') == ('SEND', file.filename)
    importer.transfer(content)
    assert importer.request('SENT') == ('DONE', protocols.NoData)
    published = master_config.output_path + '/simple/foo/' + file.filename
    with open(published, 'rb') as f:
        assert f.read() == content
    assert run_sql(with_build_abis[0],
                   "SELECT package, version, abi_tag, built_by FROM builds"
                   ) == [('foo', '1.0', 'cp311', 0)]


def test_mr_chase_refuses_conflicting_file(importer, master_config,
                                           with_build_abis):
    first = wheel_file(b'the first build')
    importer.request('IMPORT', record(first))
    importer.transfer(b'the first build')
    assert importer.request('SENT')[0] == 'DONE'
    # the same name with other bytes: refused, the published file stays
    second = wheel_file(b'another build!!')
    importer.request('IMPORT', record(second))
    importer.transfer(b'another build!!')
    msg, data = importer.request('SENT')
    assert msg == 'ERROR'
    assert 'other bytes' in data
    with open(master_config.output_path + '/simple/foo/' + first.filename,
              'rb') as f:
        assert f.read() == b'the first build'


def test_mr_chase_refuses_what_it_cannot_import(importer, with_build_abis):
    file = wheel_file(b'content', abi='cp311')
    for bad, reason in [
            (record(file, abi='cp27'), 'not a build ABI'),
            (record(file, abi='cp39'), 'is not for ABI cp39'),
            (record(), 'only a successful build'),
            (record(file)._replace(package='../evil'), 'invalid package')]:
        msg, data = importer.request('IMPORT', bad)
        assert msg == 'ERROR'
        assert reason in data
    assert run_sql(with_build_abis[0], "SELECT count(*) FROM packages") == [
        (0,)]
