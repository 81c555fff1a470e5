"""Lumberjack: writes the web server's access-log records from piw-logger to the database, through TheOracle.

piw-logger sends batches of records of one kind (LOGDOWNLOAD, LOGSEARCH,
LOGPROJECT, LOGJSON, LOGPAGE: :data:`~piwheels.protocols.lumberjack`).
Lumberjack validates each batch as it arrives, since piw-logger is outside
the master, and hands the message on to TheOracle (through Seraph)
untouched: the lumberjack queue and the database queue carry the same
actions with the same data, so the bytes piw-logger encoded are the
request, and nothing is decoded, validated and encoded again on the way
but in TheOracle itself. Each batch is one database transaction, and is
answered once it is dealt with: with its action and the number of
records written, LOST, or ERROR.

Up to :data:`IN_FLIGHT` batches are with the oracles at once, so one
batch is checked while the database writes another and at least one
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
from ..tasks import PauseableTask

#: batches being written at once
IN_FLIGHT = 2

#: seconds before a batch the database refused is sent again
RETRY_DELAY = 5.0

#: times a batch is sent before it is given up
MAX_ATTEMPTS = 3


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
        (returning, unread, if a control message arrives meanwhile). An
        invalid message is answered ERROR."""
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
            if len(message) > queue.max_size:
                raise ProtocolError(
                    'lumberjack: message of {} bytes exceeds the {}-byte '
                    'limit'.format(len(message), queue.max_size))
            action, records = transport.decode(message)
            records = queue.protocol.check('recv', action, records)
        except ProtocolError as exc:
            text = str(exc)
            if not text.startswith('lumberjack:'):
                text = 'lumberjack: ' + text
            self.answer(client, 'ERROR', text[:2000])
            raise ProtocolError(text) from None
        if records:
            self.send_batch(LogBatch(client, action, len(records), message, 1))
        else:
            self.answer(client, action, 0)

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
            self.log_queue.send_addr_msg(client, msg, data)
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
