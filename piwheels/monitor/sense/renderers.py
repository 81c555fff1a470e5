"""The screens of piw-sense: the farm at a glance, a slave's details, the master's statistics, and quit/terminate.

Each screen draws an :class:`~piwheels.monitor.sense.images.Image` of the
farm at a given time (:meth:`Screen.render`) and answers the joystick with
the screen to show next (:meth:`Screen.move`, :meth:`Screen.press`):

* :class:`MainScreen`: row 0 the time since the master's last message
  (white over blue, up to 30 seconds; pulsing red after that or when the
  master is gone), row 1 the output's free disk space, row 2 the pending
  builds (a white pixel for every 8), then one pixel per slave, down the
  columns, sorted by ABI then label; a pulsing white cursor. Pressing on a
  slave shows its details; moving off the top shows the statistics, off the
  bottom the quit and terminate options.
* :class:`DetailScreen`: a slave's label, ABI, build, and the kill option.
* :class:`StatsScreen`: ping time, disk free, queue size, build rate, total
  build time and total build size.
* :class:`QuitScreen`: quit piw-sense, or terminate the master.

Pages scroll their text and show, on the bottom row, which page of how
many is on show. Rows of statistics not known yet stay dark.
"""

import abc

from ...protocols import NoData
from ..farm import (
    MASTER_SILENCE, format_duration, format_size,
)
from .images import (
    BLACK, BLUE, CYAN, DARK_BLUE, GRAY, GREEN, HEIGHT, PURPLE, RED, WHITE,
    WIDTH, YELLOW, Image, bar, clamp, dim, mix, pulse,
)

#: the first row of slave pixels, and how many rows of them there are
SLAVE_TOP = 3
SLAVE_ROWS = HEIGHT - SLAVE_TOP

#: how many slaves the main screen shows (the rest are not drawn)
MAX_SLAVES = SLAVE_ROWS * WIDTH

#: builds in the queue per white pixel of the main screen's queue row
BUILDS_PER_PIXEL = 8

#: the colour of a slave in each state
STATE_COLOURS = {
    'unknown': CYAN,
    'starting': GRAY,
    'idle': GRAY,
    'building': GREEN,
    'long build': YELLOW,
    'sending': BLUE,
    'cleaning': PURPLE,
    'silent': RED,
    'terminating': RED,
    'gone': RED,
}

#: how much of their colour the pages' backgrounds are
BACKGROUND = 0.25

#: the row of the pages' markers, and the rows their content uses
MARKS_ROW = HEIGHT - 1
CONTENT_ROWS = HEIGHT - 1


def slave_position(index):
    """Return the ``(x, y)`` of the *index*-th slave's pixel."""
    x, row = divmod(index, SLAVE_ROWS)
    return x, SLAVE_TOP + row


def seconds_of(now):
    """The pulse's clock: *now* (UTC) in seconds."""
    return now.timestamp()


class Screen(abc.ABC):
    """A screen of piw-sense.

    :param app: the :class:`~piwheels.monitor.sense.SenseApp` showing it
        (its ``farm``, ``send(action, data)`` and ``quit()`` are used).
    """

    def __init__(self, app):
        self.app = app

    def move(self, direction):
        """Return the screen to show after the joystick was pushed
        *direction* (``'up'``, ``'down'``, ``'left'``, ``'right'``)."""
        return self

    def press(self):
        """Return the screen to show after the joystick was pressed in."""
        return self

    @abc.abstractmethod
    def render(self, now):
        """Return the :class:`Image` of this screen at *now* (UTC)."""


class MainScreen(Screen):
    """The farm at a glance, with a cursor on the slaves.

    :param tuple cursor: the cursor's ``(x, y)`` (default: the first
        slave's pixel).
    """

    def __init__(self, app, cursor=None):
        super().__init__(app)
        self.cursor = cursor or slave_position(0)
        self.shown_slaves = []

    def move(self, direction):
        x, y = self.cursor
        if direction == 'up':
            if y == SLAVE_TOP:
                return StatsScreen(self.app, back=self.cursor)
            y -= 1
        elif direction == 'down':
            if y == HEIGHT - 1:
                return QuitScreen(self.app, back=self.cursor)
            y += 1
        elif direction == 'left':
            x = max(0, x - 1)
        elif direction == 'right':
            x = min(WIDTH - 1, x + 1)
        self.cursor = (x, y)
        return self

    def press(self):
        slave = self.slave_at_cursor()
        if slave is None:
            return self
        return DetailScreen(self.app, slave.slave_id, back=self.cursor)

    def slave_at_cursor(self):
        """The slave under the cursor (as last drawn), or None."""
        x, y = self.cursor
        index = x * SLAVE_ROWS + y - SLAVE_TOP
        if 0 <= index < len(self.shown_slaves):
            return self.shown_slaves[index]
        return None

    def render(self, now):
        farm = self.app.farm
        image = Image()
        image.row(0, self.ping_row(now))
        share = farm.disk_free_fraction()
        if share is not None:
            image.row(1, bar(share * WIDTH, WHITE, BLUE))
        pending = farm.pending_builds()
        if pending is not None:
            image.row(2, bar(pending / BUILDS_PER_PIXEL, WHITE, BLUE))
        self.shown_slaves = farm.sorted_slaves(now)[:MAX_SLAVES]
        for index, slave in enumerate(self.shown_slaves):
            image[slave_position(index)] = STATE_COLOURS.get(
                slave.display_state(now), CYAN)
        image[self.cursor] = mix(image[self.cursor], WHITE,
                                 pulse(seconds_of(now)))
        return image

    def ping_row(self, now):
        """The time since the master last spoke: white over blue, pulsing
        red once that is :data:`MASTER_SILENCE` or the master is gone."""
        farm = self.app.farm
        silence = farm.silence(now)
        if (farm.connection != 'connected' or silence is None
                or silence >= MASTER_SILENCE):
            return [dim(RED, pulse(seconds_of(now)))] * WIDTH
        return bar(silence / MASTER_SILENCE * WIDTH, WHITE, BLUE)


class PagedScreen(Screen):
    """A screen of pages, turned by pushing the joystick left and right.

    :param tuple back: where the main screen's cursor was (and returns to).
    """

    #: the names of the pages
    pages = ()

    def __init__(self, app, back=None):
        super().__init__(app)
        self.back = back
        self.page = 0
        self.shown_at = None

    @property
    def page_name(self):
        return self.pages[self.page]

    def move(self, direction):
        if direction in ('left', 'right'):
            step = 1 if direction == 'right' else -1
            self.page = (self.page + step) % len(self.pages)
            self.shown_at = None
        return self

    def main_screen(self):
        return MainScreen(self.app, self.back)

    def scrolled(self, now):
        """Seconds the page has been on show: its text scrolls from its
        start when first drawn."""
        if self.shown_at is None:
            self.shown_at = now
        return (now - self.shown_at).total_seconds()

    def page_image(self, background, text, now, fill=0.0,
                   fill_colour=DARK_BLUE):
        """Return a page: *background*, *fill* (0..1) of the content rows in
        *fill_colour*, *text* in white, and the page markers."""
        image = Image(background)
        image.fill(fill, fill_colour, rows=CONTENT_ROWS)
        image.text(text, WHITE, self.scrolled(now))
        image.row(MARKS_ROW, [BLACK] * WIDTH)
        for index in range(len(self.pages)):
            image[index, MARKS_ROW] = WHITE if index == self.page else GRAY
        return image


class DetailScreen(PagedScreen):
    """One slave: its label, ABI, build in hand, and the kill option.
    Pressing the joystick returns to the main screen, killing the slave if
    the kill page is on show.

    :param int slave_id: the slave's id.
    """

    pages = ('label', 'abi', 'build', 'kill')

    def __init__(self, app, slave_id, back=None):
        super().__init__(app, back)
        self.slave_id = slave_id

    def press(self):
        if self.page_name == 'kill':
            self.app.send('KILL', self.slave_id)
        return self.main_screen()

    def render(self, now):
        slave = self.app.farm.slaves.get(self.slave_id)
        if self.page_name == 'kill':
            return self.page_image(dim(RED, 0.5), 'KILL', now)
        if slave is None:
            return self.page_image(dim(RED, BACKGROUND), 'GONE', now)
        state = slave.display_state(now)
        background = dim(STATE_COLOURS.get(state, CYAN), BACKGROUND)
        if self.page_name == 'label':
            text = slave.label
        elif self.page_name == 'abi':
            text = slave.abi
        else:
            text = slave.build_text() or state
            duration = slave.build_duration(now)
            if duration is not None:
                text = '{} {}'.format(text, format_duration(duration))
        return self.page_image(background, text, now)


class StatsScreen(PagedScreen):
    """The master's statistics; pushing the joystick down returns to the
    main screen."""

    pages = ('ping', 'disk', 'queue', 'rate', 'time', 'size')

    def move(self, direction):
        if direction == 'down':
            return self.main_screen()
        return super().move(direction)

    def render(self, now):
        farm = self.app.farm
        stats = farm.stats
        fill, fill_colour = 0.0, DARK_BLUE
        if self.page_name == 'ping':
            silence = farm.silence(now)
            text = 'PING {}'.format(format_duration(silence))
            if silence is not None:
                fill = silence / MASTER_SILENCE
                if silence >= MASTER_SILENCE:
                    fill_colour = dim(RED, 0.5)
        elif self.page_name == 'disk':
            share = farm.disk_free_fraction()
            text = 'DISK {}'.format(
                '?' if share is None else '{:.0f}%'.format(share * 100))
            fill = share or 0.0
        elif self.page_name == 'queue':
            pending = farm.pending_builds()
            text = 'QUEUE {}'.format('?' if pending is None else pending)
            fill = (pending or 0) / (WIDTH * CONTENT_ROWS)
        elif self.page_name == 'rate':
            rate = farm.builds_last_hour()
            text = 'RATE {}/H'.format('?' if rate is None else rate)
        elif self.page_name == 'time':
            text = 'TIME {}'.format(
                '?' if stats is None else format_duration(stats.builds_time))
        else:
            text = 'SIZE {}'.format(
                '?' if stats is None else format_size(stats.builds_size))
        return self.page_image(BLACK, text, now, clamp(fill), fill_colour)


class QuitScreen(PagedScreen):
    """Quit piw-sense, or terminate the master; pushing the joystick up
    returns to the main screen."""

    pages = ('quit', 'terminate')

    def move(self, direction):
        if direction == 'up':
            return self.main_screen()
        return super().move(direction)

    def press(self):
        if self.page_name == 'quit':
            self.app.quit()
            return self
        self.app.send('QUIT', NoData)
        return self.main_screen()

    def render(self, now):
        if self.page_name == 'quit':
            return self.page_image(dim(BLUE, BACKGROUND), 'QUIT', now)
        return self.page_image(dim(RED, 0.5), 'STOP MASTER', now)
