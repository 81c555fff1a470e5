"""The frame of the admin tools (piw-import, piw-add, piw-remove, piw-rebuild): their common options, talking to MrChase, asking the operator.

Each tool is an :class:`AdminCommand`: a :class:`~piwheels.terminal.Command`
with ``--yes``, ``--import-queue`` and ``--timeout``, whose :meth:`connect`
returns a :class:`MasterClient` speaking
:data:`~piwheels.protocols.mr_chase` to the master. A master that is not
running is reported in one line: at once when the queue is an ``ipc://``
socket that does not exist, otherwise when no answer comes within
``--timeout``.
"""

import os
import sys
from datetime import timedelta

from . import protocols, transport
from .exc import ConfigError, MasterError, TransportError
from .protocols import NoData
from .terminal import Command, duration

#: the address MrChase listens on unless told otherwise
DEFAULT_IMPORT_QUEUE = 'ipc:///tmp/piw-import'


class MasterClient:
    """A REQ socket to MrChase at *address*; each :meth:`request` waits up
    to *timeout* for its answer.

    :raises MasterError: if *address* is an ipc socket that doesn't exist
        (the master is not running).
    """

    def __init__(self, address, timeout):
        if address.startswith('ipc://') and not os.path.exists(
                address[len('ipc://'):]):
            raise MasterError('the master is not running (nothing listens at '
                              '{})'.format(address))
        self.address = address
        self.timeout = timeout
        self.queue = transport.Context.instance().socket(
            transport.REQ, protocol=protocols.mr_chase.reversed())
        self.queue.connect(address)

    def close(self):
        self.queue.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, msg, data=NoData):
        """Send *msg* with *data*; return the answer ``(msg, data)``.

        :raises MasterError: for an ERROR answer (with its reason), or when
            none comes within the timeout.
        """
        self.queue.send_msg(msg, data)
        try:
            reply, reply_data = self.queue.recv_msg(
                timeout=self.timeout.total_seconds())
        except TransportError:
            raise MasterError(
                'no answer from the master at {} within {}s; is piw-master '
                'running?'.format(self.address,
                                  int(self.timeout.total_seconds()))) from None
        if reply == 'ERROR':
            raise MasterError(reply_data)
        return reply, reply_data


class AdminCommand(Command):
    """Base of the admin tools."""

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument(
            '-y', '--yes', action='store_true', default=False,
            help='run non-interactively; never prompt during operation')
        parser.add_argument(
            '--import-queue', metavar='ADDR', default=DEFAULT_IMPORT_QUEUE,
            help='the address of the master\'s queue for the admin tools; '
            'this should always be an ipc address')
        parser.add_argument(
            '--timeout', metavar='DURATION', type=duration,
            default=timedelta(seconds=60),
            help='how long to wait for each answer of the master')
        return parser

    def connect(self, config):
        """Return a :class:`MasterClient` to the master."""
        return MasterClient(config.import_queue, config.timeout)

    @staticmethod
    def confirm(config, question):
        """Return True if the operator agrees to *question* (always, with
        ``--yes``).

        :raises ConfigError: when there's nobody to ask (no terminal) and
            ``--yes`` was not given.
        """
        if config.yes:
            return True
        if not sys.stdin.isatty():
            raise ConfigError('{} (no terminal to ask on: use --yes)'.format(
                question))
        answer = input('{} [y/N] '.format(question))
        return answer.strip().lower() in ('y', 'yes')
