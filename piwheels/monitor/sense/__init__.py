"""piw-sense: shows the master's build slaves and statistics on a Raspberry Pi Sense HAT, navigated with its joystick.

:class:`PiWheelsSense` is the ``piw-sense`` command; :class:`SenseApp`
runs the display: it follows the master through a
:class:`~piwheels.monitor.link.MasterLink`, turns joystick events into
moves between the screens of :mod:`piwheels.monitor.sense.renderers`, and
draws the current screen several times a second (the cursor pulses and
text scrolls). ``--rotate`` turns both the picture and the joystick, so
"up" is up however the HAT is mounted.

It drives a real Sense HAT through the ``sense-hat`` library, or with
``--emulator`` the ``sense-emu`` emulator (which has the same API).
"""

import signal
import time

from ...exc import ConfigError
from ...protocols import NoData
from ...terminal import Command
from ..farm import FarmView, utcnow
from ..link import MasterLink, add_queue_options
from .renderers import MainScreen

#: pictures drawn a second
FRAME_RATE = 15

#: the joystick's directions clockwise from up
DIRECTIONS = ('up', 'right', 'down', 'left')


def rotation(text):
    """Parse a rotation of 0, 90, 180 or 270 degrees; an argparse
    ``type``."""
    value = int(text)
    if value not in (0, 90, 180, 270):
        raise ValueError('must be 0, 90, 180 or 270')
    return value


def unrotate(direction, degrees):
    """Return the direction on the rotated display of *direction* pushed
    on a HAT mounted *degrees* round (see ``--rotate``)."""
    if direction not in DIRECTIONS:
        return direction
    return DIRECTIONS[(DIRECTIONS.index(direction) - degrees // 90) % 4]


def open_hat(emulator):
    """Return a SenseHat: the real one (``sense-hat``), or with *emulator*
    the ``sense-emu`` emulator's.

    :raises ConfigError: when the library or the HAT is missing.
    """
    if emulator:
        package = 'sense-emu'
        try:
            from sense_emu import SenseHat
        except ImportError:
            SenseHat = None
    else:
        package = 'sense-hat'
        try:
            from sense_hat import SenseHat
        except ImportError:
            SenseHat = None
    if SenseHat is None:
        raise ConfigError('the {} package is not installed'.format(package))
    try:
        return SenseHat()
    except OSError as exc:
        raise ConfigError('unable to use the Sense HAT: {}'.format(
            exc)) from None


class PiWheelsSense(Command):
    """The piw-sense command."""

    section = 'sense'
    description = (
        'Watch the piwheels master and its build slaves, and control them, '
        'on a Raspberry Pi Sense HAT.')

    def configure_parser(self):
        parser = super().configure_parser()
        add_queue_options(parser)
        parser.add_argument(
            '-r', '--rotate', metavar='DEGREES', type=rotation, default=0,
            help='the rotation of the HAT in degrees; must be 0, 90, 180 or '
            '270')
        parser.add_argument(
            '--emulator', action='store_true', default=False,
            help='use the Sense HAT emulator (sense-emu) instead of a real '
            'Sense HAT')
        return parser

    def run(self, config):
        hat = open_hat(config.emulator)
        farm = FarmView()
        link = MasterLink(config.status_queue, config.control_queue, farm)
        signal.signal(signal.SIGTERM, stop_on_signal)
        try:
            SenseApp(hat, farm, link, config.rotate).run()
        finally:
            link.close()
            hat.clear()
        return 0


def stop_on_signal(signo, stack_frame):
    """Handler for SIGTERM: leave the display loop (and clear the
    display)."""
    raise SystemExit(0)


class SenseApp:
    """Runs piw-sense's display.

    :param hat: the SenseHat (real or emulated).
    :param farm: the :class:`~piwheels.monitor.farm.FarmView` shown.
    :param link: the :class:`~piwheels.monitor.link.MasterLink` keeping it
        and carrying commands.
    :param int rotate: the HAT's rotation in degrees.
    """

    def __init__(self, hat, farm, link, rotate=0):
        self.hat = hat
        self.farm = farm
        self.link = link
        self.rotate = rotate
        self.running = True
        self.screen = MainScreen(self)
        hat.set_rotation(rotate, False)

    def send(self, action, data=NoData):
        """Send a command to the master (nothing is sent while it is
        away)."""
        return self.link.send(action, data)

    def quit(self):
        """Leave :meth:`run`."""
        self.running = False

    def handle_stick(self, event):
        """Move between screens as the joystick is pushed (holding it does
        not repeat: a screen's edge is not overshot)."""
        if event.action != 'pressed':
            return
        if event.direction == 'middle':
            self.screen = self.screen.press()
        else:
            self.screen = self.screen.move(
                unrotate(event.direction, self.rotate))

    def draw(self, now=None):
        """Show the current screen as at *now* (default: the current
        time)."""
        image = self.screen.render(now or utcnow())
        self.hat.set_pixels(image.as_list())

    def run(self):
        """Follow the master and the joystick until told to quit, drawing
        :data:`FRAME_RATE` pictures a second however busy the master is."""
        next_frame = time.monotonic()
        while self.running:
            self.link.poll(max(0.0, next_frame - time.monotonic()))
            for event in self.hat.stick.get_events():
                self.handle_stick(event)
                if not self.running:
                    return
            if time.monotonic() >= next_frame:
                self.draw()
                next_frame = time.monotonic() + 1 / FRAME_RATE


main = PiWheelsSense()
