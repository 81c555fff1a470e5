"""Tests of piwheels.logger.sender: batching, credit, answers, drops and
sending again, against a Lumberjack queue played by the test."""

import time
from datetime import datetime, timezone

import pytest

from piwheels import protocols, transport
from piwheels.logger.sender import CREDIT, Sender

from ..fixtures.zmq import RECV_TIMEOUT

WHEN = datetime(2024, 1, 2, tzinfo=timezone.utc)


def page(n=0):
    return protocols.PageState('page{}.html'.format(n), '192.0.2.1', WHEN, '')


@pytest.fixture
def queues(peer, ipc_address):
    lumberjack = peer(transport.ROUTER, protocols.lumberjack,
                      bind=ipc_address)
    logger = peer(transport.DEALER, protocols.lumberjack.reversed(),
                  connect=ipc_address)
    return lumberjack, logger


def until(sender, condition):
    deadline = time.monotonic() + RECV_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, 'nothing happened in time'
        sender.service()
        time.sleep(0.01)


def test_sender_sends_full_batches_at_once(queues):
    lumberjack, logger = queues
    sender = Sender(logger.socket, drop=True, batch_size=3,
                    flush_interval=60)
    for n in range(4):
        sender.add('LOGPAGE', page(n))
    sender.service()
    addr, msg, records = lumberjack.recv_addr()
    assert (msg, records) == ('LOGPAGE', [page(0), page(1), page(2)])
    assert sender.batches['LOGPAGE'] == [page(3)]


def test_sender_flushes_old_batches(queues):
    lumberjack, logger = queues
    sender = Sender(logger.socket, drop=True, flush_interval=0.05)
    sender.add('LOGJSON', protocols.JSONState('foo', '192.0.2.1', WHEN, ''))
    assert sender.wait_time() <= 0.05
    until(sender, lambda: lumberjack.socket.poll(0))
    addr, msg, records = lumberjack.recv_addr()
    assert msg == 'LOGJSON' and len(records) == 1


def test_sender_keeps_credit_and_counts_answers(queues):
    lumberjack, logger = queues
    sender = Sender(logger.socket, drop=True, batch_size=1, drop_timeout=60)
    for n in range(CREDIT + 2):
        sender.add('LOGPAGE', page(n))
    sender.service()
    assert len(sender.in_flight) == CREDIT
    assert len(sender.outbox) == 2
    received = [lumberjack.recv_addr() for _ in range(CREDIT)]
    # answers out of order are matched by action and size
    for addr, msg, records in reversed(received):
        lumberjack.send_addr(addr, msg, len(records))
    until(sender, lambda: not sender.outbox)
    for _ in range(2):
        addr, msg, records = lumberjack.recv_addr()
        lumberjack.send_addr(addr, 'LOST', len(records))
    sender.close()
    assert sender.written['LOGPAGE'] == CREDIT
    assert (sender.lost, sender.dropped, sender.unconfirmed) == (2, 0, 0)


def test_sender_drops_what_the_master_does_not_take(queues):
    lumberjack, logger = queues
    sender = Sender(logger.socket, drop=True, batch_size=1,
                    drop_timeout=0.05, answer_timeout=0.2)
    for n in range(CREDIT + 3):
        sender.add('LOGPAGE', page(n))
    until(sender, lambda: sender.dropped == 3)
    assert len(sender.in_flight) == CREDIT
    until(sender, lambda: sender.unconfirmed == CREDIT)
    # a late answer still counts
    addr, msg, records = lumberjack.recv_addr()
    lumberjack.send_addr(addr, msg, len(records))
    until(sender, lambda: sender.written['LOGPAGE'] == 1)
    assert sender.unconfirmed == CREDIT - 1


def test_sender_sends_again_what_was_never_answered(queues):
    lumberjack, logger = queues
    sender = Sender(logger.socket, drop=False, batch_size=2,
                    answer_timeout=0.2)
    sender.add('LOGPAGE', page(1))
    sender.add('LOGPAGE', page(2))
    sender.service()
    first = lumberjack.recv_addr()
    # the master stopped with it: no answer, so it comes again
    until(sender, lambda: lumberjack.socket.poll(0))
    addr, msg, records = lumberjack.recv_addr()
    assert (msg, records) == first[1:] == ('LOGPAGE', [page(1), page(2)])
    lumberjack.send_addr(addr, msg, len(records))
    sender.close()
    assert sender.written['LOGPAGE'] == 2
    assert sender.unconfirmed == 0


def test_sender_counts_refused_batches(queues):
    lumberjack, logger = queues
    sender = Sender(logger.socket, drop=True, batch_size=1)
    sender.add('LOGPAGE', page())
    sender.service()
    addr, msg, records = lumberjack.recv_addr()
    lumberjack.send_addr(addr, 'ERROR', 'lumberjack: invalid batch')
    sender.close()
    assert sender.lost == 1
