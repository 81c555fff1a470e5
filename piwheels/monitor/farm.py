"""The farm as the monitors see it: the master, its statistics and each build slave, kept from the master's status messages.

:class:`FarmView` takes each message of the master's status queue
(:data:`~piwheels.protocols.monitor_status`) through :meth:`FarmView.update`;
a :class:`SlaveView` follows one slave through the ``SLAVE`` events (the
messages SlaveDriver exchanged with it). What the messages never said is
shown as unknown (``?``) rather than guessed, and the ``format_*`` helpers
turn absurd values (a negative size, more free than there is, a load of
NaN) into ``?`` too, so nothing a slave reports can break a display.
"""

import math
from datetime import datetime, timedelta, timezone

#: how long a slave that left (or was killed) stays on show, marked gone
GONE_LINGER = timedelta(seconds=5)

#: a build running longer than this is shown as a long build
LONG_BUILD = timedelta(minutes=15)

#: a slave silent for longer than this is shown as silent (the master's
#: default slave timeout: it gives up on the slave then)
SLAVE_SILENCE = timedelta(minutes=5)

#: the master is shown as silent after this long without a message
MASTER_SILENCE = timedelta(seconds=30)

#: the longest duration or age shown; anything longer is absurd
LONGEST_SHOWN = timedelta(days=3650)

#: what each state means, in a few words (for legends and help)
STATES = {
    'unknown': 'no message from the slave seen yet',
    'starting': 'said HELLO; not asked for work yet',
    'idle': 'waiting for work',
    'building': 'building a package',
    'long build': 'building for more than 15 minutes',
    'sending': 'sending the wheels it built',
    'cleaning': 'cleaning up after a build',
    'silent': 'not heard from for 5 minutes',
    'terminating': 'told to stop',
    'gone': 'left the farm',
}

# the state a message to or from the slave puts it in
_STATE_AFTER = {
    'HELLO': 'starting',
    'ACK': 'idle',
    'IDLE': 'idle',
    'SLEEP': 'idle',
    'BUILD': 'building',
    'BUSY': 'building',
    'CONT': 'building',
    'BUILT': 'sending',
    'SEND': 'sending',
    'SENT': 'sending',
    'DONE': 'cleaning',
    'DIE': 'terminating',
    'BYE': 'gone',
}

# the messages that come from the slave (the others are the master's
# replies): they say when it was last heard from
_FROM_SLAVE = frozenset({'HELLO', 'IDLE', 'BUSY', 'BUILT', 'SENT', 'BYE'})


def utcnow():
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class SlaveView:
    """What the monitors know of one build slave.

    :param int slave_id: the master's id for the slave.
    """

    def __init__(self, slave_id):
        self.slave_id = slave_id
        self.hello = None          # its SlaveHello (None: never seen)
        self.state = 'unknown'     # see STATES
        self.build = None          # the BuildRequest it works on, or None
        self.build_started = None  # when BUILD was sent (master's clock)
        self.build_status = None   # True/False once its build is BUILT
        self.last_seen = None      # its last message (master's clock)
        self.stats = None          # its last SlaveStats, or None
        self.gone_at = None        # when it left (local clock), or None

    def __repr__(self):
        return '<SlaveView {} {} {} {}>'.format(
            self.slave_id, self.label, self.abi, self.state)

    @property
    def label(self):
        """The slave's label, ``?`` when unknown."""
        return self.hello.label if self.hello is not None else '?'

    @property
    def abi(self):
        """The ABI the slave builds for, ``?`` when unknown."""
        return self.hello.abi_tag if self.hello is not None else '?'

    @property
    def sort_key(self):
        """Slaves are listed by ABI, then label (then id); those never
        introduced come last."""
        return (self.hello is None, self.abi, self.label, self.slave_id)

    def update(self, event, now):
        """Follow a :class:`~piwheels.protocols.SlaveEvent` about this slave
        that arrived at *now* (local clock)."""
        action, data = event.action, event.data
        if self.state == 'gone':
            return
        if action in _FROM_SLAVE:
            self.last_seen = event.timestamp
        if action == 'HELLO':
            self.hello = data
            if self.state != 'unknown':
                # a replay for a monitor that just arrived: the slave's
                # state is as it was
                return
        elif action in ('IDLE', 'BUSY'):
            self.stats = data
        if action in ('HELLO', 'ACK', 'IDLE'):
            self.build = self.build_started = self.build_status = None
        elif action == 'BUILD':
            self.build = data
            self.build_started = event.timestamp
            self.build_status = None
        elif action == 'BUILT':
            self.build_status = data.status
        elif action == 'BYE':
            self.gone_at = now
        self.state = _STATE_AFTER.get(action, self.state)
        if action == 'BUILT' and not data.status:
            # nothing to send: the master answers DONE and the slave cleans up
            self.state = 'cleaning'

    def display_state(self, now):
        """Return the state to show at *now* (UTC): the last message's,
        or ``silent`` and ``long build`` when time says so."""
        if (self.state not in ('gone', 'terminating')
                and self.last_seen is not None
                and SLAVE_SILENCE < now - self.last_seen < LONGEST_SHOWN):
            return 'silent'
        if self.state == 'building' and self.build_started is not None:
            building = now - self.build_started
            if LONG_BUILD < building < LONGEST_SHOWN:
                return 'long build'
        return self.state

    def build_text(self):
        """Return the build in hand as ``package version``, ``?`` when a
        slave builds something the monitor never saw asked for, or ''."""
        if self.build is not None:
            return '{} {}'.format(self.build.package, self.build.version)
        if self.state in ('building', 'sending'):
            return '?'
        return ''

    def build_duration(self, now):
        """How long the build in hand has run at *now*, or None."""
        if self.build_started is None or self.state not in (
                'building', 'sending', 'cleaning'):
            return None
        return now - self.build_started


class FarmView:
    """The master, its statistics and its slaves, as its status messages
    tell them.

    :attr:`connection` is ``'connecting'`` until the master first answers,
    ``'connected'`` then, and ``'disconnected'`` once the link to it is
    lost; on reconnection the next HELLO from the master starts the view
    afresh (a restarted master gives its slaves new ids).
    """

    def __init__(self):
        self.master = None        # the master's MasterInfo, or None
        self.stats = None         # its last MasterStats, or None
        self.paused = None        # True/False once told, None: unknown
        self.connection = 'connecting'
        self.slaves = {}          # slave id -> SlaveView
        self.last_message = None  # local time of the last status message
        self.bad_messages = 0     # status messages not understood
        self.last_bad_message = ''
        self._stale = False       # disconnected since the last HELLO

    def update(self, action, data, now=None):
        """Take one status message (*action*, *data*) received at *now*
        (default: the current time)."""
        now = now or utcnow()
        self.last_message = now
        if action == 'HELLO':
            if self._stale:
                self.slaves.clear()
                self.stats = None
                self.paused = None
                self._stale = False
            self.master = data
            self.connection = 'connected'
        elif action == 'PAUSED':
            self.paused = data
        elif action == 'STATS':
            self.stats = data
        elif action == 'SLAVE':
            slave = self.slaves.get(data.slave_id)
            if slave is None:
                slave = self.slaves[data.slave_id] = SlaveView(data.slave_id)
            slave.update(data, now)

    def bad_message(self, description, now=None):
        """Count a status message that could not be understood."""
        self.last_message = now or utcnow()
        self.bad_messages += 1
        self.last_bad_message = description

    def disconnected(self):
        """The link to the master was lost."""
        self.connection = 'disconnected'
        self._stale = True

    def sorted_slaves(self, now=None):
        """Return the slaves by ABI and label, after forgetting those gone
        for longer than :data:`GONE_LINGER`."""
        now = now or utcnow()
        for slave_id, slave in list(self.slaves.items()):
            if slave.gone_at is not None and now - slave.gone_at > GONE_LINGER:
                del self.slaves[slave_id]
        return sorted(self.slaves.values(), key=lambda slave: slave.sort_key)

    def silence(self, now=None):
        """How long since the last status message (None: never heard)."""
        if self.last_message is None:
            return None
        return max(timedelta(0), (now or utcnow()) - self.last_message)

    def pending_builds(self):
        """The versions waiting to be built, over every ABI (None: not
        known yet)."""
        if self.stats is None:
            return None
        return sum(self.stats.builds_pending.values())

    def builds_last_hour(self):
        """The builds of the last hour, over every ABI (None: not known)."""
        if self.stats is None:
            return None
        return sum(self.stats.builds_last_hour.values())

    def disk_free_fraction(self):
        """The output's free space as a fraction of its size (None: not
        known, or not sensible)."""
        if self.stats is None:
            return None
        return fraction(self.stats.disk_free, self.stats.disk_size)


def fraction(part, whole):
    """Return *part* / *whole* when 0 <= part <= whole and whole > 0, else
    None (an absurd figure)."""
    if not isinstance(part, int) or not isinstance(whole, int):
        return None
    if whole <= 0 or not 0 <= part <= whole:
        return None
    return part / whole


def format_size(size):
    """Return a byte count as ``512 B``, ``1.5 KB`` ... ``2.0 TB``; ``?``
    for a negative or non-integer size, ``-`` for None."""
    if size is None:
        return '-'
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return '?'
    if size < 1024:
        return '{} B'.format(size)
    value = float(size)
    for unit in ('KB', 'MB', 'GB', 'TB', 'PB', 'EB'):
        value /= 1024
        if value < 1024 or unit == 'EB':
            return '{:.1f} {}'.format(value, unit)


def format_free(free, size):
    """Return free space as ``1.5 GB (12%)``; ``?`` when *free* is not
    within 0..*size*, ``-`` when unknown."""
    if free is None or size is None:
        return '-'
    share = fraction(free, size)
    if share is None:
        return '?'
    return '{} ({:.0f}%)'.format(format_size(free), share * 100)


def format_duration(duration):
    """Return a duration as ``45s``, ``3m05s``, ``2h07m`` or ``3d04h``;
    ``-`` for None, ``?`` when negative or absurdly long."""
    if duration is None:
        return '-'
    if not timedelta(0) <= duration < LONGEST_SHOWN:
        return '?'
    seconds = int(duration.total_seconds())
    if seconds < 60:
        return '{}s'.format(seconds)
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return '{}m{:02d}s'.format(minutes, seconds)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return '{}h{:02d}m'.format(hours, minutes)
    days, hours = divmod(hours, 24)
    return '{}d{:02d}h'.format(days, hours)


def format_age(then, now):
    """Return how long ago *then* was at *now* (see
    :func:`format_duration`); a time up to a minute in the future (another
    clock) counts as now."""
    if then is None:
        return '-'
    age = now - then
    if timedelta(minutes=-1) <= age < timedelta(0):
        age = timedelta(0)
    return format_duration(age)


def format_load(load):
    """Return a load average as ``0.52``; ``?`` when negative, not finite
    or absurd."""
    if load is None:
        return '-'
    if not isinstance(load, float) or not math.isfinite(load) or not (
            0 <= load < 10000):
        return '?'
    return '{:.2f}'.format(load)


def format_temperature(celsius):
    """Return a temperature as ``47.2C``; ``-`` where there is no sensor,
    ``?`` when outside what a computer survives."""
    if celsius is None:
        return '-'
    if not isinstance(celsius, float) or not math.isfinite(celsius) or not (
            -50 <= celsius <= 200):
        return '?'
    return '{:.1f}C'.format(celsius)


def format_count(count):
    """Return a count as ``12,345``; ``-`` for None."""
    if count is None:
        return '-'
    return '{:,}'.format(count)


def format_per_abi(counts):
    """Return ``cp311 12, cp313 3`` from an ABI -> count mapping (``-``
    for None, ``none`` for an empty mapping)."""
    if counts is None:
        return '-'
    if not counts:
        return 'none'
    return ', '.join('{} {}'.format(abi, format_count(count))
                     for abi, count in sorted(counts.items()))
