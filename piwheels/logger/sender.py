"""Send piw-logger's records to the master's Lumberjack in batches, and never hold up the web server when asked not to.

Records of each kind gather in a batch until it holds
:data:`~piwheels.protocols.MAX_LOG_BATCH` records or is
:data:`FLUSH_INTERVAL` old; full batches go to an outbox that is sent
without blocking whenever the queue to the master can take them.

With ``drop`` (a piped log), a batch the master hasn't taken within
:data:`DROP_TIMEOUT` seconds is dropped and its records counted, so a
master that is down or slow costs records and never the web server's time.
Without it (files, a followed log), sending waits for the master: the
input is the spool.
"""

import logging
import time
from collections import deque

from .. import transport
from ..exc import ProtocolError
from ..protocols import MAX_LOG_BATCH

#: the most seconds a record waits in an unfilled batch
FLUSH_INTERVAL = 1.0

#: with ``drop``: the seconds a batch may wait for the master before it is
#: dropped
DROP_TIMEOUT = 2.0

#: batches ZeroMQ holds for a master that is connected but busy
SEND_HWM = 4

#: seconds between warnings that the master isn't taking records
WARN_INTERVAL = 60.0

#: the actions of the lumberjack queue, in the order batches are flushed
ACTIONS = ('LOGDOWNLOAD', 'LOGSEARCH', 'LOGPROJECT', 'LOGJSON', 'LOGPAGE')


class Sender:
    """Batch records and send them on *queue*.

    :param transport.Socket queue: a PUSH socket connected to the master's
        log queue (:data:`~piwheels.protocols.lumberjack`, reversed).
    :param bool drop: drop batches the master doesn't take in time instead
        of waiting for it.
    :param int batch_size: the most records per message.
    :param float flush_interval: the most seconds a record waits for its
        batch to fill.
    :param float drop_timeout: with *drop*, the seconds a batch waits.
    """

    def __init__(self, queue, drop, *, batch_size=MAX_LOG_BATCH,
                 flush_interval=FLUSH_INTERVAL, drop_timeout=DROP_TIMEOUT):
        self.queue = queue
        self.drop = drop
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.drop_timeout = drop_timeout
        self.logger = logging.getLogger('piwheels.logger')
        self.batches = {action: [] for action in ACTIONS}
        self.started = {}
        #: (action, records, deadline) waiting for the master, oldest first
        self.outbox = deque()
        #: records handed to the master, per action
        self.sent = dict.fromkeys(ACTIONS, 0)
        #: records dropped because the master didn't take them
        self.dropped = 0
        self._warned = None

    def add(self, action, record):
        """Add *record* to the batch of *action*; a full batch is queued
        to be sent."""
        batch = self.batches[action]
        if not batch:
            self.started[action] = time.monotonic()
        batch.append(record)
        if len(batch) >= self.batch_size:
            self._queue(action)

    def _queue(self, action):
        records = self.batches[action]
        self.batches[action] = []
        self.outbox.append(
            (action, records, time.monotonic() + self.drop_timeout))

    def wait_time(self):
        """Return the seconds until a batch is due to be sent or dropped
        (:data:`FLUSH_INTERVAL` when nothing is waiting)."""
        now = time.monotonic()
        due = [started + self.flush_interval
               for action, started in self.started.items()
               if self.batches[action]]
        if self.outbox:
            due.append(now + 0.05 if not self.drop else min(
                self.outbox[0][2], now + 0.05))
        if not due:
            return self.flush_interval
        return max(0.0, min(due) - now)

    def service(self):
        """Queue the batches that have waited long enough and send what the
        master will take now; without ``drop`` wait until it has taken
        everything queued."""
        now = time.monotonic()
        for action in ACTIONS:
            if self.batches[action] and (
                    now - self.started[action] >= self.flush_interval):
                self._queue(action)
        self._send()

    def _send(self):
        while self.outbox:
            action, records, deadline = self.outbox[0]
            try:
                self.queue.send_msg(action, records, transport.NOBLOCK)
            except transport.Again:
                if self.drop:
                    self._drop_expired()
                    return
                self._wait_for_master()
                continue
            except ProtocolError as exc:
                # a record the classifier should never have made: lose its
                # batch, not the logger
                self.outbox.popleft()
                self.dropped += len(records)
                self.logger.error('batch of %d records dropped: %s',
                                  len(records), exc)
                continue
            self.outbox.popleft()
            self.sent[action] += len(records)

    def _drop_expired(self):
        now = time.monotonic()
        while self.outbox and self.outbox[0][2] <= now:
            action, records, deadline = self.outbox.popleft()
            self.dropped += len(records)
            self._warn('dropped %d records so far: the master is not taking '
                       'them', self.dropped)

    def _wait_for_master(self):
        if not self.queue.poll(WARN_INTERVAL, transport.POLLOUT):
            self._warn('waiting for the master to take records (%d '
                       'waiting)', sum(len(item[1]) for item in self.outbox))

    def _warn(self, message, *args):
        now = time.monotonic()
        if self._warned is None or now - self._warned >= WARN_INTERVAL:
            self._warned = now
            self.logger.warning(message, *args)

    def close(self):
        """Send every batch: without ``drop`` wait for the master to take
        them all; with it, wait at most :attr:`drop_timeout` and drop the
        rest."""
        for action in ACTIONS:
            if self.batches[action]:
                self._queue(action)
        if not self.drop:
            self._send()
            return
        deadline = time.monotonic() + self.drop_timeout
        while self.outbox:
            self._send()
            if not self.outbox:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for action, records, _ in self.outbox:
                    self.dropped += len(records)
                self.outbox.clear()
                break
            self.queue.poll(min(remaining, 0.1), transport.POLLOUT)
