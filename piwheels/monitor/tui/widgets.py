"""The widgets of piw-monitor: the slave table, the statistics box, and a guard against terminals too small to draw in.

The slave table is laid out for the width it is drawn at: the columns
that fit are chosen by priority (label, ABI and state always; the build,
its time, then resources), so a narrow terminal loses detail, never the
layout. Every cell goes through the ``format_*`` helpers of
:mod:`piwheels.monitor.farm`, which show what makes no sense as ``?``.
"""

import urwid

from ..farm import (
    format_age, format_count, format_duration, format_free, format_load,
    format_per_abi, format_size, format_temperature, fraction,
)

#: (name, title, width, priority) of each column of the slave table; the
#: column of width None takes the room the others leave (at least
#: FLEXIBLE_MIN); columns of a higher priority number go first when the
#: terminal is narrow
COLUMNS = [
    ('id', '#', 3, 3),
    ('label', 'Label', 12, 0),
    ('abi', 'ABI', 6, 0),
    ('state', 'State', 11, 0),
    ('build', 'Build', None, 1),
    ('duration', 'Time', 7, 1),
    ('seen', 'Seen', 6, 2),
    ('disk', 'Disk free', 9, 2),
    ('mem', 'Mem free', 9, 2),
    ('load', 'Load', 5, 3),
    ('temp', 'Temp', 6, 3),
]

#: the narrowest the flexible (build) column gets
FLEXIBLE_MIN = 12

#: the display attribute of each slave state
STATE_ATTRS = {
    'unknown': 'unknown',
    'starting': 'unknown',
    'idle': 'idle',
    'building': 'building',
    'long build': 'long build',
    'sending': 'sending',
    'cleaning': 'cleaning',
    'silent': 'gone',
    'terminating': 'gone',
    'gone': 'gone',
}

#: the colours of piw-monitor: (name, foreground, background)
PALETTE = [
    ('header', 'white', 'dark blue'),
    ('paused', 'black', 'yellow'),
    ('disconnected', 'white', 'dark red'),
    ('title', 'light gray,bold', 'default'),
    ('focus', 'black', 'light gray'),
    ('button', 'light gray', 'default'),
    ('button focus', 'black', 'light gray'),
    ('message', 'yellow', 'default'),
    ('unknown', 'dark cyan', 'default'),
    ('idle', 'light gray', 'default'),
    ('building', 'light green', 'default'),
    ('long build', 'yellow', 'default'),
    ('sending', 'light blue', 'default'),
    ('cleaning', 'light magenta', 'default'),
    ('gone', 'light red', 'default'),
]


def table_layout(width):
    """Return ``[(name, width)]``, the columns of :data:`COLUMNS` that fit
    in *width* characters (one space between columns), in their order."""
    chosen = set()
    used = FLEXIBLE_MIN
    for name, title, col_width, priority in sorted(
            COLUMNS, key=lambda column: column[3]):
        if col_width is None:
            chosen.add(name)
            continue
        if used + 1 + col_width <= width:
            chosen.add(name)
            used += 1 + col_width
    fixed = sum(col_width + 1 for name, title, col_width, priority in COLUMNS
                if name in chosen and col_width is not None)
    return [(name, max(1, width - fixed) if col_width is None else col_width)
            for name, title, col_width, priority in COLUMNS if name in chosen]


def fit(text, width):
    """Return *text* cut or padded to exactly *width* characters (a cut is
    marked with ``~``)."""
    text = ''.join(c if c.isprintable() else '?' for c in text)
    if len(text) > width:
        return text[:width - 1] + '~' if width > 1 else text[:width]
    return text.ljust(width)


def row_markup(cells, width, attrs=None):
    """Return the urwid markup of one table row of *width* characters:
    *cells* maps column names to text, *attrs* column names to display
    attributes."""
    attrs = attrs or {}
    markup = []
    for index, (name, col_width) in enumerate(table_layout(width)):
        text = fit(cells.get(name, ''), col_width)
        if index:
            text = ' ' + text
        markup.append((attrs[name], text) if name in attrs else text)
    used = sum(len(text if isinstance(text, str) else text[1])
               for text in markup)
    if used < width:
        markup.append(' ' * (width - used))
    return markup


def format_free_space(free, size):
    """Return free space as a size; ``?`` when *free* is not within
    0..*size*."""
    if fraction(free, size) is None:
        return '?'
    return format_size(free)


def slave_cells(slave, now):
    """Return the cells of *slave*'s row at *now*."""
    stats = slave.stats
    duration = slave.build_duration(now)
    return {
        'id': str(slave.slave_id),
        'label': slave.label,
        'abi': slave.abi,
        'state': slave.display_state(now),
        'build': slave.build_text(),
        'duration': format_duration(duration) if duration else '',
        'seen': format_age(slave.last_seen, now),
        'disk': format_free_space(stats.disk_free, stats.disk_size)
                if stats else '-',
        'mem': format_free_space(stats.mem_free, stats.mem_size)
               if stats else '-',
        'load': format_load(stats.load_average) if stats else '-',
        'temp': format_temperature(stats.cpu_temp) if stats else '-',
    }


class TableHeader(urwid.Widget):
    """The titles of the slave table's columns."""

    _sizing = frozenset([urwid.FLOW])

    def rows(self, size, focus=False):
        return 1

    def render(self, size, focus=False):
        (width,) = size
        titles = {name: title for name, title, col_width, priority in COLUMNS}
        return urwid.Text(('title', row_markup(titles, width)),
                          wrap='clip').render(size)


class SlaveRow(urwid.Widget):
    """One slave's row in the table: selectable (the target of kill and
    skip), drawn highlighted when focused.

    :param slave: the :class:`~piwheels.monitor.farm.SlaveView`.
    :param now: the time the row shows the slave at.
    """

    _sizing = frozenset([urwid.FLOW])
    _selectable = True

    def __init__(self, slave, now):
        super().__init__()
        self.slave_id = slave.slave_id
        self.cells = slave_cells(slave, now)

    def rows(self, size, focus=False):
        return 1

    def render(self, size, focus=False):
        (width,) = size
        if focus:
            markup = ('focus', row_markup(self.cells, width))
        else:
            markup = row_markup(self.cells, width, {
                'state': STATE_ATTRS.get(self.cells['state'], 'unknown')})
        return urwid.Text(markup, wrap='clip').render(size)

    def keypress(self, size, key):
        """A row takes no keys: they go on to the list and the hot-keys."""
        return key

    def mouse_event(self, size, event, button, col, row, focus):
        """A click selects the row (the list box moves the focus to it)."""
        return True


def stats_lines(farm, now):
    """Return the lines of the statistics box for *farm* at *now*."""
    stats = farm.stats
    if stats is None:
        return ['No statistics from the master yet']
    return [
        'Queue:       {}'.format(format_per_abi(stats.builds_pending)),
        'Builds/hour: {}   (new versions/hour: {})'.format(
            format_per_abi(stats.builds_last_hour),
            format_count(stats.new_last_hour)),
        'Built:       {} packages, {} files, {}, {} of building'.format(
            format_count(stats.packages_built),
            format_count(stats.files_count), format_size(stats.builds_size),
            format_duration(stats.builds_time)),
        'Disk free:   {} of {}'.format(
            format_free(stats.disk_free, stats.disk_size),
            format_size(stats.disk_size)),
        'Downloads:   {} last hour, {} last 30 days, {} in all'.format(
            format_count(stats.downloads_last_hour),
            format_count(stats.downloads_last_month),
            format_count(stats.downloads_all)),
        'Master:      load {}, memory free {}, {}; last build {} ago, '
        'last PyPI event {} ago'.format(
            format_load(stats.load_average),
            format_free(stats.mem_free, stats.mem_size),
            format_temperature(stats.cpu_temp),
            format_age(stats.last_build, now),
            format_age(stats.last_pypi_event, now)),
    ]


class SizeGuard(urwid.WidgetWrap):
    """Draws *widget* when the terminal is at least *min_cols* x
    *min_rows*, and otherwise a note saying the terminal is too small."""

    def __init__(self, widget, min_cols, min_rows):
        super().__init__(widget)
        self.min_cols = min_cols
        self.min_rows = min_rows

    def show(self, widget):
        """Draw *widget* from now on (when there is room)."""
        self._w = widget

    def too_small(self, size):
        cols, rows = size
        return cols < self.min_cols or rows < self.min_rows

    def render(self, size, focus=False):
        if not self.too_small(size):
            return super().render(size, focus)
        note = urwid.Text('Terminal too small ({}x{}): piw-monitor needs '
                          '{}x{}; q quits'.format(size[0], size[1],
                                                  self.min_cols,
                                                  self.min_rows), wrap='any')
        return urwid.Filler(note, valign='top').render(size)

    def keypress(self, size, key):
        """Keys reach the widget only when it is drawn (hot-keys always
        work)."""
        if self.too_small(size):
            return key
        return super().keypress(size, key)

    def mouse_event(self, size, event, button, col, row, focus):
        """Clicks reach the widget only when it is drawn."""
        if self.too_small(size):
            return False
        return super().mouse_event(size, event, button, col, row, focus)
