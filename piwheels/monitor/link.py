"""MasterLink: a monitor's connection to the master's status and control queues.

The link subscribes to the master's status queue
(:data:`~piwheels.protocols.monitor_status`, a SUB connecting to its PUB)
and pushes commands to its control queue
(:data:`~piwheels.protocols.master_control`, a PUSH connecting to its
PULL). Each time the status queue connects, the link asks the master to
replay its state (HELLO) and asks again every second until the master's
HELLO arrives: a new subscription takes a moment to reach the publisher,
and anything published before then is lost. ZeroMQ reconnects by itself
when the master restarts; the link watches the status queue's connection
events to tell the :class:`~piwheels.monitor.farm.FarmView` when the master
went away, and to ask the new master for its state.
"""

import time

from .. import protocols, transport
from ..exc import ProtocolError
from ..protocols import NoData

#: seconds between HELLOs until the master answers
HELLO_INTERVAL = 1.0

#: the most status messages taken in one :meth:`MasterLink.poll`
POLL_LIMIT = 1000


def add_queue_options(parser):
    """Add the monitors' ``--status-queue`` and ``--control-queue`` options
    to *parser*."""
    parser.add_argument(
        '--status-queue', metavar='ADDR', default='ipc:///tmp/piw-status',
        help='the address of the queue used to report status to monitors')
    parser.add_argument(
        '--control-queue', metavar='ADDR', default='ipc:///tmp/piw-control',
        help='the address of the queue a monitor can use to control the '
        'master')


class MasterLink:
    """Follows the master's status into *farm* and sends it commands.

    Queues:

    * ``status_queue``: SUB, connects *status_address*
      (:data:`~piwheels.protocols.monitor_status`, reversed);
    * ``events_queue``: PAIR, the status queue's connection events;
    * ``control_queue``: PUSH, connects *control_address*
      (:data:`~piwheels.protocols.master_control`, reversed).

    :param str status_address: the master's ``--status-queue``.
    :param str control_address: the master's ``--control-queue``.
    :param farm: the :class:`~piwheels.monitor.farm.FarmView` to keep.
    :param context: the :class:`~piwheels.transport.Context` (default: the
        process's).
    """

    def __init__(self, status_address, control_address, farm, context=None):
        context = context or transport.Context.instance()
        self.farm = farm
        self.status_queue = context.socket(
            transport.SUB, protocol=protocols.monitor_status.reversed())
        self.status_queue.hwm = 100000
        self.status_queue.subscribe('')
        self.events_queue = self.status_queue.connection_events()
        self.status_queue.connect(status_address)
        # commands are refused while the master is away (see send); the
        # short linger keeps the monitor from hanging on exit then
        self.control_queue = context.socket(
            transport.PUSH, protocol=protocols.master_control.reversed(),
            linger=0.5)
        self.control_queue.hwm = 10
        self.control_queue.connect(control_address)
        self.poller = transport.Poller()
        self.poller.register(self.events_queue, transport.POLLIN)
        self.poller.register(self.status_queue, transport.POLLIN)
        self.linked = False       # the status queue is connected
        self.asking = False       # a HELLO is awaiting the master's answer
        self.hello_due = 0.0      # when to ask again (time.monotonic())

    def close(self):
        """Close the queues."""
        self.status_queue.close(linger=0)
        self.events_queue.close()
        self.control_queue.close()

    def poll(self, timeout=0):
        """Wait up to *timeout* seconds for news of the master, take all
        that is waiting into the farm view, and ask for the master's state
        when due. Return True if the view may have changed."""
        ready = self.poller.poll(timeout)
        changed = False
        if self.events_queue in ready:
            changed |= self.handle_events()
        if self.status_queue in ready:
            changed |= self.handle_status()
        if self.linked and self.asking and time.monotonic() >= self.hello_due:
            self.hello_due = time.monotonic() + HELLO_INTERVAL
            self.send('HELLO')
        return changed

    def handle_events(self):
        """Follow the status queue's connection events."""
        while self.events_queue.poll(0):
            event, endpoint = self.events_queue.recv_event()
            if event == transport.EVENT_CONNECTED:
                self.linked = self.asking = True
                self.hello_due = 0.0
            elif event == transport.EVENT_DISCONNECTED:
                self.linked = self.asking = False
                self.farm.disconnected()
        return True

    def handle_status(self):
        """Take the waiting status messages into the farm view; a message
        that is not understood is counted and skipped."""
        for _ in range(POLL_LIMIT):
            try:
                action, data = self.status_queue.recv_msg(transport.NOBLOCK)
            except transport.Again:
                break
            except ProtocolError as exc:
                self.farm.bad_message(str(exc))
                continue
            if action == 'HELLO':
                self.asking = False
            self.farm.update(action, data)
        return True

    def send(self, action, data=NoData):
        """Send the command *action* with *data* to the master; return False
        (sending nothing) when the master is not connected."""
        if not self.linked:
            return False
        try:
            self.control_queue.send_msg(action, data, transport.NOBLOCK)
        except transport.Again:
            return False
        return True
