"""Seraph: shares the database requests of every task among the TheOracle workers.

Seraph is a load-balancing broker (the ZeroMQ guide's "load balancing"
pattern): clients send requests to its front queue, each
:class:`~piwheels.master.the_oracle.TheOracle` worker announces itself with
READY on the back queue, and each request goes to a worker that is free.
A worker's reply says it is free again. Requests that arrive while every
worker is busy wait, in order, for the next free one.

Messages are relayed as raw frames: they are validated by the clients and
the workers at each end, so Seraph only moves envelopes.
"""

from collections import deque

from .. import protocols, transport
from ..tasks import NonStopTask


class Seraph(NonStopTask):
    """The load-balancing router in front of the :class:`TheOracle` workers.

    Queues:

    * ``front_queue``: ROUTER, binds ``config.db_queue``
      (:data:`~piwheels.protocols.the_oracle`), from
      :class:`~piwheels.master.the_oracle.DbClient` instances (REQ) and
      asynchronous clients (DEALER);
    * ``back_queue``: ROUTER, binds ``config.oracle_queue``, to the workers
      (REQ).

    It never pauses: every other task depends on the database answering.
    """

    def __init__(self, config):
        super().__init__(config)
        self.front_queue = self.socket(
            transport.ROUTER, protocol=protocols.the_oracle)
        self.front_queue.hwm = 100000
        self.front_queue.bind(config.db_queue)
        self.back_queue = self.socket(
            transport.ROUTER, protocol=protocols.the_oracle)
        self.back_queue.hwm = 100000
        self.back_queue.bind(config.oracle_queue)
        self.workers = deque()
        self.waiting = deque()
        self.register(self.front_queue, self.handle_front)
        self.register(self.back_queue, self.handle_back)

    def handle_front(self, queue):
        """Receive a client's request and pass it to a free worker, or keep
        it until one is free."""
        frames = queue.recv_multipart()
        client, body = frames[0], frames[-1]
        if self.workers:
            self.back_queue.send_multipart(
                [self.workers.popleft(), b'', client, b'', body])
        else:
            self.waiting.append((client, body))

    def handle_back(self, queue):
        """Receive a worker's READY or reply; pass a reply back to its client
        and give the worker the next waiting request, if any."""
        frames = queue.recv_multipart()
        worker = frames[0]
        # [worker, b'', READY] or [worker, b'', client, b'', reply]
        if len(frames) == 5:
            try:
                self.front_queue.send_multipart([frames[2], b'', frames[4]])
            except transport.ZMQError as exc:
                # ROUTER_MANDATORY: the client went away while waiting
                self.logger.warning(
                    'Seraph: client %s left before its reply: %s',
                    frames[2].hex(), exc)
        if self.waiting:
            client, body = self.waiting.popleft()
            self.back_queue.send_multipart([worker, b'', client, b'', body])
        else:
            self.workers.append(worker)
