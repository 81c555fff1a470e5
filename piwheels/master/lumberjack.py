"""Lumberjack: writes the web server's access-log records from piw-logger to the database, through TheOracle.

piw-logger sends batches of records of one kind (LOGDOWNLOAD, LOGSEARCH,
LOGPROJECT, LOGJSON, LOGPAGE: :data:`~piwheels.protocols.lumberjack`).
The lumberjack queue and the database queue carry these actions with the
same data, so the bytes piw-logger encoded are the database request:
Lumberjack reads a batch's action and size from its first bytes
(:func:`read_header`: only these actions pass, so nothing else piw-logger's
socket receives can reach the database) and hands it to TheOracle (through
Seraph) untouched. TheOracle decodes and validates it in full, once, before
anything is written, and refuses an invalid batch with ERROR. Decoding and
validating every batch in Lumberjack as well would double the master's
work per record. Each batch is one database transaction, and is answered
once it is dealt with: with its action and the number of records written,
LOST, or ERROR.

Up to :data:`IN_FLIGHT` batches are with the oracles at once, so one
batch is read while the database writes another and at least one
oracle stays free for the other tasks (with the default three). When all
are busy, Lumberjack stops reading its queue; piw-logger keeps only a few
batches unanswered, and with ``--drop`` drops what the master doesn't take
in time. A batch the database refuses is tried again :data:`RETRY_DELAY`
later, up to :data:`MAX_ATTEMPTS` times (a database restarting), then
answered LOST and counted in :attr:`Lumberjack.lost`.
"""

import time
from collections import deque
from datetime import timedelta
from typing import NamedTuple

from .. import protocols, transport
from ..exc import ProtocolError, TransportError
from ..protocols import MAX_LOG_BATCH
from ..tasks import PauseableTask

#: batches being written at once
IN_FLIGHT = 2

#: seconds before a batch the database refused is sent again
RETRY_DELAY = 5.0

#: times a batch is sent before it is given up
MAX_ATTEMPTS = 3


#: how TheOracle's ERROR begins when it refuses a request as invalid (a
#: :exc:`~piwheels.exc.ProtocolError` names the queue's protocol)
INVALID_PREFIX = protocols.the_oracle.name + ': '

#: CBOR's initial bytes: an array of two items, a text string of 0 bytes,
#: an array of 0 items
_PAIR, _TEXT, _ARRAY = 0x82, 0x60, 0x80


def read_header(message):
    """Return ``(action, number of records)`` of a lumberjack message,
    read from its first bytes (``[action, [record, ...]]`` in CBOR) without
    decoding the rest.

    :raises ProtocolError: if the message is not a batch of one of the
        lumberjack actions, of at most
        :data:`~piwheels.protocols.MAX_LOG_BATCH` records, and of at most the
        queue's size.
    """
    if len(message) > protocols.lumberjack.max_size:
        raise ProtocolError('lumberjack: message of {} bytes exceeds the '
                            '{}-byte limit'.format(
                                len(message), protocols.lumberjack.max_size))
    size = message[1] - _TEXT if len(message) > 2 else -1
    if message[:1] != bytes((_PAIR,)) or not 0 < size < 24:
        raise ProtocolError('lumberjack: not a message of this queue')
    action = bytes(message[2:2 + size]).decode('ascii', 'replace')
    if action not in protocols.lumberjack.recv:
        raise ProtocolError('lumberjack: unknown action {!r} (this end may '
                            'recv {})'.format(action, ', '.join(
                                sorted(protocols.lumberjack.recv))))
    pos = 2 + size
    head = message[pos] if pos < len(message) else 0
    info = head - _ARRAY
    if 0 <= info < 24:
        count = info
    elif info in (24, 25):
        width = 1 << (info - 24)
        count = int.from_bytes(message[pos + 1:pos + 1 + width], 'big')
    else:
        raise ProtocolError('lumberjack: {} needs a list of at most {} '
                            'records'.format(action, MAX_LOG_BATCH))
    if count > MAX_LOG_BATCH:
        raise ProtocolError('lumberjack: {}: batch of {} items exceeds '
                            '{}'.format(action, count, MAX_LOG_BATCH))
    return action, count


class LogBatch(NamedTuple):
    """A batch of records on its way to the database."""

    client: bytes              # the piw-logger it came from (its address)
    action: str                # LOGDOWNLOAD, LOGSEARCH, ...
    count: int                 # how many records it holds
    message: bytes             # the message as piw-logger encoded it
    attempts: int              # how many times it has been sent


class Lumberjack(PauseableTask):
    """Passes piw-logger's batches of access-log records to TheOracle.

    Queues:

    * ``log_queue``: ROUTER, binds ``config.log_queue``
      (:data:`~piwheels.protocols.lumberjack`), from piw-logger (DEALER);
    * ``db_queues``: :data:`IN_FLIGHT` REQ sockets, each connecting
      ``config.db_queue`` (:data:`~piwheels.protocols.the_oracle`,
      reversed) with one batch at a time.

    :attr:`written` counts the records written per action, :attr:`lost`
    those the database refused every time.
    """

    def __init__(self, config):
        super().__init__(config)
        self.log_queue = self.socket(
            transport.ROUTER, protocol=protocols.lumberjack)
        self.log_queue.bind(config.log_queue)
        self.free = []
        self.busy = {}
        for _ in range(IN_FLIGHT):
            queue = self.socket(
                transport.REQ, protocol=protocols.the_oracle.reversed())
            queue.connect(config.db_queue)
            self.register(queue, self.handle_reply)
            self.free.append(queue)
        #: (due, batch) of batches to send again, oldest first
        self.retries = deque()
        self.written = dict.fromkeys(protocols.lumberjack.recv, 0)
        self.lost = 0
        self.register(self.log_queue, self.handle_log)
        self.every(timedelta(seconds=1), self.retry_batches)

    def handle_log(self, queue):
        """Receive a batch from piw-logger, check it and send it to the
        database; when every oracle queue is busy, wait for one first
        (returning, unread, if a control message arrives meanwhile). A
        message that isn't a batch is answered ERROR."""
        if not self.free and not self.wait_for_reply():
            return
        frames = queue.recv_multipart()
        client, parts = frames[0], frames[1:]
        # a DEALER sends the message alone, a REQ after an empty frame
        while len(parts) > 1 and not parts[0]:
            parts = parts[1:]
        message = parts[-1]
        try:
            if len(parts) != 1:
                raise ProtocolError('lumberjack: expected one message frame, '
                                    'got {}'.format(len(parts)))
            action, count = read_header(message)
        except ProtocolError as exc:
            self.answer(client, 'ERROR', str(exc))
            raise
        self.send_batch(LogBatch(client, action, count, message, 1))

    def wait_for_reply(self, timeout=1.0):
        """Wait up to *timeout* seconds for a database reply and handle it;
        return True when an oracle queue is free (False if the wait ended
        because a control message arrived, or in time)."""
        poller = transport.Poller()
        poller.register(self.control_queue, transport.POLLIN)
        for queue in self.busy:
            poller.register(queue, transport.POLLIN)
        for queue in poller.poll(timeout):
            if queue is not self.control_queue:
                self._call(self.handle_reply, queue)
        return bool(self.free)

    def send_batch(self, batch):
        """Send *batch* on a free oracle queue."""
        queue = self.free.pop()
        # REQ adds the envelope; TheOracle decodes and validates the body
        queue.send(batch.message)
        self.busy[queue] = batch

    def handle_reply(self, queue):
        """Count the batch the database has written and tell its
        piw-logger, or schedule it to be sent again if it was refused."""
        batch = self.busy.pop(queue)
        self.free.append(queue)
        try:
            msg, data = queue.recv_msg()
        except ProtocolError:
            self.give_up(batch, 'invalid reply from the database')
            raise
        if msg != 'ERROR':
            self.written[batch.action] += batch.count
            self.logger.debug('Lumberjack: %d %s records written',
                              batch.count, batch.action)
            self.answer(batch.client, batch.action, batch.count)
        elif data.startswith(INVALID_PREFIX):
            # TheOracle found the batch invalid: no use trying again
            self.answer(batch.client, 'ERROR', 'lumberjack: invalid batch: '
                        + data[len(INVALID_PREFIX):])
            raise ProtocolError('lumberjack: invalid batch from piw-logger '
                                '{}: {}'.format(batch.client.hex(), data))
        elif batch.attempts < MAX_ATTEMPTS:
            self.logger.warning(
                'Lumberjack: %s of %d records failed (%s); trying again in '
                '%ds', batch.action, batch.count, data, RETRY_DELAY)
            self.retries.append((time.monotonic() + RETRY_DELAY,
                                 batch._replace(attempts=batch.attempts + 1)))
        else:
            self.give_up(batch, data)

    def give_up(self, batch, reason):
        """Count *batch* as lost and tell its piw-logger."""
        self.lost += batch.count
        self.logger.error(
            'Lumberjack: %s of %d records lost after %d attempts: %s',
            batch.action, batch.count, batch.attempts, reason)
        self.answer(batch.client, 'LOST', batch.count)

    def answer(self, client, msg, data):
        """Send *msg* to the piw-logger at *client*, unless it has gone (it
        ended, or was restarted)."""
        try:
            self.log_queue.send_addr_msg(
                client, msg, data[:2000] if msg == 'ERROR' else data)
        except TransportError:
            self.logger.debug('Lumberjack: piw-logger %s left before its '
                              'answer', client.hex())

    def retry_batches(self):
        """Send again the refused batches that are due, while oracle queues
        are free."""
        now = time.monotonic()
        while self.retries and self.free and self.retries[0][0] <= now:
            due, batch = self.retries.popleft()
            self.send_batch(batch)
