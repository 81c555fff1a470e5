"""RpcClient: the request/reply plumbing shared by DbClient and FsClient.

An RPC client owns one REQ socket connected to a task's request queue. Each
call sends one request and waits for its reply: the reply carries the
request's action and its result, or ERROR and a one-line reason, which is
raised as the client's error class. A client belongs to the thread that
made it, like every socket.
"""

from .. import transport
from ..exc import TransportError
from ..protocols import NoData

#: seconds a call waits for its reply before giving up
DEFAULT_TIMEOUT = 60


class RpcClient:
    """Base of the RPC clients of master tasks.

    :param str address: the queue of the task answering requests.
    :param protocols.Protocol protocol: the queue's protocol (declared from
        the task's side; the client uses it reversed).
    :param dict errors: maps each reply action that reports a failure
        (ERROR, and any other the protocol has) to the exception raised
        with its text.
    :param logging.Logger logger: logs each message at DEBUG.
    :param float timeout: seconds to wait for each reply.
    """

    def __init__(self, address, protocol, errors, logger=None,
                 timeout=DEFAULT_TIMEOUT):
        self._address = address
        self._protocol = protocol.reversed()
        self._errors = errors
        self._logger = logger
        self._timeout = timeout
        self._queue = None

    def _connect(self):
        if self._queue is None:
            self._queue = transport.Context.instance().socket(
                transport.REQ, protocol=self._protocol, logger=self._logger)
            self._queue.connect(self._address)
        return self._queue

    def close(self):
        """Close the client's socket (a later call opens a new one)."""
        if self._queue is not None:
            self._queue.close(linger=0)
            self._queue = None

    def _call(self, msg, data=NoData):
        """Send request *msg* with *data*; return the reply's data.

        :raises Exception: the class *errors* maps a failure reply to.
        :raises TransportError: when no reply comes in time (the socket is
            then replaced, as a REQ socket that missed its reply is stuck).
        """
        queue = self._connect()
        queue.send_msg(msg, data)
        try:
            reply, result = queue.recv_msg(timeout=self._timeout)
        except TransportError:
            self.close()
            raise TransportError('{}: no answer to {} within {}s'.format(
                self._protocol.name, msg, self._timeout)) from None
        if reply in self._errors:
            raise self._errors[reply](result)
        return result
