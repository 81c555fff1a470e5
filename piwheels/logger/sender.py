"""Send piw-logger's records to the master's Lumberjack in batches, and never hold up the web server when asked not to.

Records of each kind gather in a batch until it holds
:data:`~piwheels.protocols.MAX_LOG_BATCH` records or is
:data:`FLUSH_INTERVAL` old; full batches go to an outbox. Lumberjack
answers each batch once it is written (:data:`~piwheels.protocols.lumberjack`),
and at most :data:`CREDIT` batches are sent and unanswered at a time, so
neither end ever buffers more than that.

With ``drop`` (a piped log), a batch the master hasn't taken within
:data:`DROP_TIMEOUT` seconds is dropped and its records counted, so a
master that is down or slow costs records and never the web server's time.
Without it (files, a followed log), sending waits for the master: the
input is the spool. Batches unanswered for :data:`ANSWER_TIMEOUT` seconds
(the master stopped with them) are counted as unconfirmed with ``drop``,
and sent again without it (a master that stopped after writing a batch but
before answering it then has it twice: rare, and better than losing it).
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

#: batches sent and not yet answered
CREDIT = 4

#: seconds after which batches still unanswered are given up as unconfirmed
ANSWER_TIMEOUT = 60.0

#: seconds between warnings that the master isn't taking records
WARN_INTERVAL = 60.0

#: seconds between retries while batches wait for the master with ``drop``
RETRY_INTERVAL = 0.05

#: the actions of the lumberjack queue, in the order batches are flushed
ACTIONS = ('LOGDOWNLOAD', 'LOGSEARCH', 'LOGPROJECT', 'LOGJSON', 'LOGPAGE')


class Sender:
    """Batch records and send them on *queue*.

    :param transport.Socket queue: a DEALER socket connected to the master's
        log queue (:data:`~piwheels.protocols.lumberjack`, reversed).
    :param bool drop: drop batches the master doesn't take in time instead
        of waiting for it.
    :param int batch_size: the most records per message.
    :param float flush_interval: the most seconds a record waits for its
        batch to fill.
    :param float drop_timeout: with *drop*, the seconds a batch waits.
    :param float answer_timeout: the seconds a sent batch waits for its
        answer.
    """

    def __init__(self, queue, drop, *, batch_size=MAX_LOG_BATCH,
                 flush_interval=FLUSH_INTERVAL, drop_timeout=DROP_TIMEOUT,
                 answer_timeout=ANSWER_TIMEOUT):
        self.queue = queue
        self.drop = drop
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.drop_timeout = drop_timeout
        self.answer_timeout = answer_timeout
        self.logger = logging.getLogger('piwheels.logger')
        self.batches = {action: [] for action in ACTIONS}
        self.started = {}
        #: (action, records, deadline) waiting to be sent, oldest first
        self.outbox = deque()
        #: [action, records, sent at] of the batches sent and unanswered
        self.in_flight = deque()
        #: records the master wrote, per action
        self.written = dict.fromkeys(ACTIONS, 0)
        #: records the database refused
        self.lost = 0
        #: records dropped because the master didn't take them in time
        self.dropped = 0
        #: records sent without an answer in time (the master stopped)
        self.unconfirmed = 0
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
        """Return the seconds until a batch is due to be sent (or dropped),
        :data:`FLUSH_INTERVAL` when nothing is waiting."""
        now = time.monotonic()
        due = [started + self.flush_interval
               for action, started in self.started.items()
               if self.batches[action]]
        if self.outbox or self.in_flight:
            due.append(now + RETRY_INTERVAL)
        if not due:
            return self.flush_interval
        return max(0.0, min(due) - now)

    def service(self):
        """Queue the batches that have waited long enough, take the master's
        answers and send what it will take now; without ``drop`` wait
        until it has taken everything queued."""
        now = time.monotonic()
        for action in ACTIONS:
            if self.batches[action] and (
                    now - self.started[action] >= self.flush_interval):
                self._queue(action)
        self._send()

    def _send(self):
        while True:
            self._take_answers()
            if not self.outbox:
                return
            if len(self.in_flight) < CREDIT and self._send_one():
                continue
            if self.drop:
                self._drop_expired()
                return
            self._wait_for_master()

    def _send_one(self):
        """Send the oldest batch of the outbox; return False if the master
        can't take it now."""
        action, records, deadline = self.outbox[0]
        try:
            self.queue.send_msg(action, records, transport.NOBLOCK)
        except transport.Again:
            return False
        except ProtocolError as exc:
            # a record the classifier should never have made: lose its
            # batch, not the logger
            self.logger.error('batch of %d records dropped: %s',
                              len(records), exc)
            self.dropped += len(records)
        else:
            self.in_flight.append([action, records, time.monotonic()])
        self.outbox.popleft()
        return True

    def _take_answers(self):
        """Count the master's answers to sent batches; give up on those
        unanswered for :attr:`answer_timeout`."""
        while self.queue.poll(0):
            try:
                msg, count = self.queue.recv_msg()
            except ProtocolError as exc:
                self.logger.error('invalid answer from the master: %s', exc)
                continue
            self._answered(msg, count)
        if self.in_flight and (time.monotonic() - self.in_flight[0][2]
                               > self.answer_timeout):
            if self.drop:
                self.unconfirmed += sum(
                    len(entry[1]) for entry in self.in_flight)
                self._warn('%d records sent without an answer from the '
                           'master', self.unconfirmed)
            else:
                deadline = time.monotonic() + self.drop_timeout
                self.outbox.extendleft(
                    (action, records, deadline)
                    for action, records, sent_at in reversed(self.in_flight))
                self._warn('no answer from the master for %ds: sending '
                           'again', self.answer_timeout)
            self.in_flight.clear()

    def _answered(self, msg, data):
        entry = self._match(msg, data)
        if msg == 'ERROR':
            self.logger.error('the master refused a batch: %s', data)
            if entry is not None:
                self.lost += len(entry[1])
            return
        if entry is None:
            # answered after it was given up as unconfirmed
            self.unconfirmed = max(0, self.unconfirmed - data)
        if msg == 'LOST':
            self.lost += data
        else:
            self.written[msg] += data

    def _match(self, msg, data):
        """Remove and return the in-flight entry an answer is about (the
        oldest one of its action and size; answers may come out of order);
        None if there is none."""
        for entry in self.in_flight:
            if msg == 'ERROR' or len(entry[1]) == data and msg in (
                    entry[0], 'LOST'):
                self.in_flight.remove(entry)
                return entry
        return None

    def _drop_expired(self):
        now = time.monotonic()
        while self.outbox and self.outbox[0][2] <= now:
            action, records, deadline = self.outbox.popleft()
            self.dropped += len(records)
            self._warn('dropped %d records so far: the master is not taking '
                       'them', self.dropped)

    def _wait_for_master(self):
        if not self.queue.poll(WARN_INTERVAL, transport.POLLIN | (
                transport.POLLOUT if len(self.in_flight) < CREDIT else 0)):
            self._warn('waiting for the master to take records (%d '
                       'waiting)', sum(len(item[1]) for item in self.outbox))

    def _warn(self, message, *args):
        now = time.monotonic()
        if self._warned is None or now - self._warned >= WARN_INTERVAL:
            self._warned = now
            self.logger.warning(message, *args)

    def close(self):
        """Send every batch and take the answers: without ``drop`` wait for
        the master as long as it takes; with it, at most
        :attr:`drop_timeout` (the rest is dropped, or unconfirmed)."""
        for action in ACTIONS:
            if self.batches[action]:
                self._queue(action)
        deadline = time.monotonic() + self.drop_timeout
        while self.outbox or self.in_flight:
            self._send()
            if not (self.outbox or self.in_flight):
                break
            remaining = deadline - time.monotonic()
            if self.drop and remaining <= 0:
                self.dropped += sum(len(item[1]) for item in self.outbox)
                self.unconfirmed += sum(
                    len(entry[1]) for entry in self.in_flight)
                self.outbox.clear()
                self.in_flight.clear()
                break
            self.queue.poll(min(remaining, 0.1) if self.drop else 1.0)
