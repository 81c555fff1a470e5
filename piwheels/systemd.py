"""Tells systemd about a service's state (sd_notify) over ``$NOTIFY_SOCKET``.

A service started with ``Type=notify`` is only considered started once it
sends ``READY=1``; one with ``WatchdogSec=`` is restarted unless it sends
``WATCHDOG=1`` more often than that. Both go as datagrams to the Unix socket
systemd names in ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract
namespace). Outside systemd the variable is absent and every call here does
nothing, so the commands run the same from a shell.

Usage::

    notifier = Notifier()
    notifier.ready()
    period = notifier.watchdog_period()   # None when no watchdog is set
    ...
    notifier.watchdog_ping()              # at least every period / 2
    notifier.stopping()
"""

import os
import socket
from datetime import timedelta


class Notifier:
    """Sends state changes to systemd.

    :param str address:
        The notification socket; defaults to ``$NOTIFY_SOCKET``. When it is
        empty, every method is a no-op.
    """

    def __init__(self, address=None):
        if address is None:
            address = os.environ.get('NOTIFY_SOCKET', '')
        if address.startswith('@'):
            address = '\0' + address[1:]
        self._address = address

    @property
    def enabled(self):
        """True when there is a systemd to talk to."""
        return bool(self._address)

    def notify(self, state):
        """Send *state* (e.g. ``'READY=1'``; several lines may be joined with
        newlines) to systemd. Returns True when it was sent.

        A notification is advisory: a vanished socket is not worth killing
        the service for, so send errors are swallowed.
        """
        if not self._address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(self._address)
                sock.sendall(state.encode('utf-8'))
            except OSError:
                return False
        return True

    def ready(self):
        """Tell systemd the service has finished starting up."""
        return self.notify('READY=1')

    def reloading(self):
        """Tell systemd the service is reloading its configuration."""
        return self.notify('RELOADING=1')

    def stopping(self):
        """Tell systemd the service is shutting down."""
        return self.notify('STOPPING=1')

    def status(self, text):
        """Set the one-line status ``systemctl status`` shows."""
        return self.notify('STATUS={}'.format(text.replace('\n', ' ')))

    def extend_timeout(self, timeout):
        """Ask for *timeout* (a :class:`~datetime.timedelta`) more to finish
        starting or stopping."""
        return self.notify('EXTEND_TIMEOUT_USEC={:d}'.format(
            int(timeout.total_seconds() * 1000000)))

    def watchdog_ping(self):
        """Tell systemd's watchdog the service is alive."""
        return self.notify('WATCHDOG=1')

    def watchdog_period(self):
        """Return the watchdog period (a :class:`~datetime.timedelta`) systemd
        expects pings within, or None when no watchdog applies to this
        process. Ping at least twice per period."""
        usec = os.environ.get('WATCHDOG_USEC', '')
        pid = os.environ.get('WATCHDOG_PID', '')
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and (not pid.isdigit() or int(pid) != os.getpid()):
            return None
        return timedelta(microseconds=int(usec))
