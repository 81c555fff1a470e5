"""piw-sense on the Sense HAT emulator: every screen checked pixel by pixel
on the emulator's screen buffer, the joystick (and --rotate), commands
reaching a scripted master, and the program itself driven through the
emulator's joystick socket.

The emulator's screen holds RGB565: 255 reads back as 248 (red, blue) or
252 (green), which :func:`rgb565` applies to the expected colours.
sense-emu is not packaged by Debian: these tests run in the virtualenv.
"""

import os
import socket
import struct
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from piwheels import protocols
from piwheels.monitor.sense import SenseApp
from piwheels.monitor.sense.renderers import (
    DetailScreen, MainScreen, QuitScreen, StatsScreen,
)
from piwheels.protocols import NoData

from .scripted import master_stats, slave_hello, slave_stats
from .test_link import connect
from .tmux import command_line

pytestmark = pytest.mark.venv_only

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
BLUE = (0, 0, 255)
GRAY = (128, 128, 128)
GREEN = (0, 255, 0)
YELLOW = (255, 255, 0)
PURPLE = (128, 0, 255)
RED = (255, 0, 0)
CYAN = (0, 128, 128)
FILL = (0, 0, 96)

#: a whole second: the cursor's pulse is dark then, and bright half a
#: second later
T = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
HALF = timedelta(seconds=0.5)


def rgb565(colour):
    red, green, blue = colour
    return [red & 0xF8, green & 0xFC, blue & 0xF8]


def art(picture, legend):
    """The 64 colours of an 8x8 *picture* (64 characters, spaces and line
    breaks aside), each character a key of *legend*."""
    chars = ''.join(picture.split())
    assert len(chars) == 64
    return [legend[char] for char in chars]


def assert_shows(hat, expected):
    """Check the emulator's screen pixel by pixel."""
    shown = hat.get_pixels()
    wanted = [rgb565(colour) for colour in expected]
    wrong = [(index % 8, index // 8, shown[index], wanted[index])
             for index in range(64) if shown[index] != wanted[index]]
    assert not wrong, 'pixels (x, y, shown, expected): {}'.format(wrong)


def page(text, background, marks, fill=0):
    """A page: *text* (5 rows of 8, '#' lit white) on rows 1-5 over
    *background*, the bottom *fill* pixels of rows 0-6 in the fill colour,
    and the page markers (W current, g other) on row 7."""
    text_rows = text.split()
    pixels = [background] * 64
    for index in range(fill):
        y, x = divmod(index, 8)
        pixels[(6 - y) * 8 + x] = FILL
    for y, row in enumerate(text_rows, start=1):
        for x, char in enumerate(row):
            if char == '#':
                pixels[y * 8 + x] = WHITE
    for x, char in enumerate(marks):
        pixels[56 + x] = {'W': WHITE, 'g': GRAY, '_': BLACK}[char]
    return pixels


@pytest.fixture
def emulator():
    """The emulator's lock and screen, held by this test (no GUI)."""
    from sense_emu.lock import EmulatorLock
    from sense_emu.screen import init_screen
    lock = EmulatorLock('sense_emu')
    lock.acquire()
    try:
        init_screen().close()
        yield
    finally:
        lock.release()


@pytest.fixture
def screen(emulator):
    """A SenseHat reading the emulator's screen as it physically is."""
    from sense_emu import SenseHat
    hat = SenseHat()
    hat.clear()
    yield hat
    hat.stick.close()


@pytest.fixture
def app(screen, link):
    return SenseApp(screen, link.farm, link)


def event(farm, slave_id, action, data=None, at=None):
    farm.update('SLAVE', protocols.SlaveEvent(
        slave_id, at or T - timedelta(seconds=15), action, data),
        now=T - timedelta(seconds=15))


def built(status):
    return protocols.BuildResult(status, timedelta(seconds=30), '', [],
                                 '' if status else 'error')


def stick(direction):
    from sense_emu.stick import InputEvent
    return InputEvent(time.time(), direction, 'pressed')


def heard(farm, seconds_ago=15, stats=True):
    """The master spoke *seconds_ago*, with statistics: 60% disk free and
    20 builds pending."""
    farm.update('HELLO', protocols.MasterInfo(T, 'master', '1'),
                now=T - timedelta(seconds=seconds_ago))
    if stats:
        farm.update('STATS', master_stats(
            pending={'cp311': 17, 'cp313': 3}, disk_free=60,
            disk_size=100), now=T - timedelta(seconds=seconds_ago))


def farm_of_every_state(farm):
    building = protocols.BuildRequest('numpy', '1.26.4')
    for slave_id, label in enumerate(
            ['a-idle', 'b-build', 'c-long', 'd-send', 'e-clean', 'f-dying'],
            start=1):
        event(farm, slave_id, 'HELLO', slave_hello(label))
    event(farm, 1, 'IDLE', slave_stats())
    event(farm, 2, 'BUILD', building, T - timedelta(minutes=1))
    event(farm, 2, 'BUSY', slave_stats())
    event(farm, 3, 'BUILD', building, T - timedelta(minutes=20))
    event(farm, 3, 'BUSY', slave_stats())
    event(farm, 4, 'BUILD', building)
    event(farm, 4, 'BUILT', built(True))
    event(farm, 5, 'BUILD', building)
    event(farm, 5, 'BUILT', built(False))
    event(farm, 6, 'DIE', '')
    event(farm, 7, 'HELLO', slave_hello('a-other', 'cp313'))
    event(farm, 7, 'IDLE', slave_stats())
    event(farm, 8, 'CONT')


MAIN_LEGEND = {
    'W': WHITE, 'b': BLUE, '.': BLACK, 'g': GRAY, 'G': GREEN, 'y': YELLOW,
    's': BLUE, 'p': PURPLE, 'r': RED, 'c': CYAN,
    '8': (204, 204, 255),   # 0.8 of the way from blue to white
    '5': (128, 128, 255),   # half way
}


def test_sense_main_screen_shows_the_farm(app, screen):
    heard(app.farm)
    farm_of_every_state(app.farm)
    app.draw(T)
    # ping 15 of 30 s; disk 60% free; 20 builds pending at 8 a pixel;
    # slaves down the columns by ABI then label, the one never introduced
    # (but building) last
    assert_shows(screen, art("""
        WWWWbbbb
        WWWW8bbb
        WW5bbbbb
        gr......
        Gg......
        yG......
        s.......
        p.......
    """, MAIN_LEGEND))


def test_sense_main_screen_cursor_pulses(app, screen):
    heard(app.farm)
    farm_of_every_state(app.farm)
    app.draw(T + HALF)
    assert screen.get_pixel(0, 3) == rgb565(WHITE)
    app.handle_stick(stick('right'))
    app.handle_stick(stick('down'))
    app.draw(T + HALF)
    assert screen.get_pixel(1, 4) == rgb565(WHITE)
    assert screen.get_pixel(0, 3) == rgb565(GRAY)
    app.draw(T)
    assert screen.get_pixel(1, 4) == rgb565(GRAY)


def test_sense_main_screen_master_silent_or_unknown(app, screen):
    # never heard from, nothing known: the ping row pulses red, the disk
    # and queue rows stay dark
    app.draw(T)
    assert_shows(screen, art('.' * 64, MAIN_LEGEND))
    app.draw(T + HALF)
    assert_shows(screen, art('r' * 8 + '.' * 16 + 'W' + '.' * 39,
                             MAIN_LEGEND))
    # heard from 31 seconds ago: pulsing red too
    heard(app.farm, seconds_ago=31, stats=False)
    app.draw(T + HALF)
    assert screen.get_pixels()[:8] == [rgb565(RED)] * 8
    app.farm.disconnected()
    heard(app.farm, seconds_ago=3.75, stats=False)   # a pixel: 30s / 8
    app.draw(T)
    assert screen.get_pixels()[:8] == [rgb565(WHITE)] + [rgb565(BLUE)] * 7
    app.farm.disconnected()
    app.draw(T + HALF)
    assert screen.get_pixels()[:8] == [rgb565(RED)] * 8


X1 = """
    #.#..#..
    #.#.##..
    .#...#..
    #.#..#..
    #.#.###.
"""


def test_sense_detail_screen_pages(app, screen, master):
    connect(app.link, master)
    heard(app.farm)
    event(app.farm, 4, 'HELLO', slave_hello('x1'))
    event(app.farm, 4, 'BUILD', protocols.BuildRequest('numpy', '1.26.4'),
          T - timedelta(minutes=3, seconds=5))
    event(app.farm, 4, 'BUSY', slave_stats())
    app.draw(T)
    app.handle_stick(stick('middle'))
    assert isinstance(app.screen, DetailScreen)
    building = (0, 64, 0)
    app.draw(T)
    assert_shows(screen, page(X1, building, 'Wggg____'))
    app.handle_stick(stick('right'))
    # the ABI, cp311, scrolls: its start, then half a second on
    app.draw(T)
    assert_shows(screen, page("""
        .##.##..
        #...#.#.
        #...##..
        #...#...
        .##.#...
    """, building, 'gWgg____'))
    app.draw(T + HALF)
    assert_shows(screen, page("""
        ##..##..
        #.#...#.
        ##...#..
        #.....#.
        #...##..
    """, building, 'gWgg____'))
    app.handle_stick(stick('right'))
    app.draw(T)
    # "NUMPY 1.26.4 3M05S"
    assert_shows(screen, page("""
        #..#.#.#
        ##.#.#.#
        #.##.#.#
        #..#.#.#
        #..#.###
    """, building, 'ggWg____'))
    app.handle_stick(stick('right'))
    app.draw(T)
    assert_shows(screen, page("""
        #.#.###.
        #.#..#..
        ##...#..
        #.#..#..
        #.#.###.
    """, (128, 0, 0), 'gggW____'))
    app.handle_stick(stick('middle'))
    assert master.recv() == ('KILL', 4)
    assert isinstance(app.screen, MainScreen)


def test_sense_detail_screen_of_a_slave_gone(app, screen):
    heard(app.farm)
    event(app.farm, 4, 'HELLO', slave_hello('x1'))
    app.draw(T)
    app.handle_stick(stick('middle'))
    del app.farm.slaves[4]
    app.draw(T)
    # "GONE" on dim red: G, O
    assert_shows(screen, page("""
        .##..#..
        #...#.#.
        #.#.#.#.
        #.#.#.#.
        .##..#..
    """, (64, 0, 0), 'Wggg____'))
    # leaving without the kill page kills nothing
    app.handle_stick(stick('middle'))
    assert isinstance(app.screen, MainScreen)


def test_sense_statistics_screen_pages(app, screen):
    heard(app.farm)
    app.draw(T)
    app.handle_stick(stick('up'))
    assert isinstance(app.screen, StatsScreen)
    pages = [
        # PING 15s: half of 56 pixels filled
        ("""
        ##..###.
        #.#..#..
        ##...#..
        #....#..
        #...###.
        """, 28),
        # DISK 60%
        ("""
        ##..###.
        #.#..#..
        #.#..#..
        #.#..#..
        ##..###.
        """, 34),
        # QUEUE 20: a pixel a build
        ("""
        .#..#.#.
        #.#.#.#.
        #.#.#.#.
        ##..#.#.
        .##.###.
        """, 20),
        # RATE 40/H
        ("""
        ##...#..
        #.#.#.#.
        ##..###.
        #.#.#.#.
        #.#.#.#.
        """, 0),
        # TIME 2d02h
        ("""
        ###.###.
        .#...#..
        .#...#..
        .#...#..
        .#..###.
        """, 0),
        # SIZE 5.0 GB
        ("""
        .##.###.
        #....#..
        .#...#..
        ..#..#..
        ##..###.
        """, 0),
    ]
    for number, (text, fill) in enumerate(pages):
        marks = ''.join('W' if index == number else 'g'
                        for index in range(6)) + '__'
        app.draw(T)
        assert_shows(screen, page(text, BLACK, marks, fill))
        app.handle_stick(stick('right'))
    app.handle_stick(stick('down'))
    assert isinstance(app.screen, MainScreen)


def test_sense_quit_screen(app, screen, master):
    connect(app.link, master)
    heard(app.farm)
    app.draw(T)
    for _ in range(5):
        app.handle_stick(stick('down'))
    assert isinstance(app.screen, QuitScreen)
    app.draw(T)
    assert_shows(screen, page("""
        .#..#.#.
        #.#.#.#.
        #.#.#.#.
        ##..#.#.
        .##.###.
    """, (0, 0, 64), 'Wg______'))
    app.handle_stick(stick('right'))
    app.draw(T)
    assert_shows(screen, page("""
        .##.###.
        #....#..
        .#...#..
        ..#..#..
        ##...#..
    """, (128, 0, 0), 'gW______'))
    app.handle_stick(stick('middle'))
    assert master.recv() == ('QUIT', NoData)
    assert isinstance(app.screen, MainScreen)
    assert app.running
    app.handle_stick(stick('down'))
    assert isinstance(app.screen, QuitScreen)
    app.handle_stick(stick('up'))
    assert isinstance(app.screen, MainScreen)
    app.handle_stick(stick('down'))
    app.handle_stick(stick('middle'))
    assert not app.running


def test_sense_rotation_turns_picture_and_joystick(screen, link):
    from sense_emu import SenseHat
    hat = SenseHat()
    try:
        app = SenseApp(hat, link.farm, link, rotate=90)
        heard(app.farm)
        app.draw(T)
        shown = screen.get_pixels()
        # the ping row (4 white, 4 blue) runs down the right-hand column
        assert [shown[y * 8 + 7] for y in range(8)] == \
            [rgb565(WHITE)] * 4 + [rgb565(BLUE)] * 4
        # pushed towards the right-hand edge is up on the turned display
        app.handle_stick(stick('right'))
        assert isinstance(app.screen, StatsScreen)
        app.handle_stick(stick('left'))
        assert isinstance(app.screen, MainScreen)
        # and towards the bottom edge is right
        app.handle_stick(stick('down'))
        assert app.screen.cursor == (1, 3)
    finally:
        hat.stick.close()


class StickServer:
    """The emulator's joystick end (what its window does): takes the
    HELLO of piw-sense's SenseHat and sends it key events."""

    CODES = {'up': 103, 'left': 105, 'right': 106, 'down': 108,
             'middle': 28}

    def __init__(self):
        from sense_emu.stick import stick_address
        family, sock_type, self.address = stick_address()
        try:
            os.unlink(self.address)
        except FileNotFoundError:
            pass
        self.socket = socket.socket(family, sock_type)
        self.socket.bind(self.address)
        self.socket.settimeout(30)
        self.client = None

    def wait_for_client(self, pid):
        """Wait for the HELLO of process *pid*'s SenseHat (this process's
        own say HELLO too)."""
        while self.client is None:
            data, address = self.socket.recvfrom(64)
            if data == b'hello' and address.endswith('-{}'.format(pid)):
                self.client = address

    def push(self, direction):
        now = time.time()
        for value in (1, 0):
            self.socket.sendto(struct.pack(
                'llHHI', int(now), int(now % 1 * 1e6), 1,
                self.CODES[direction], value), self.client)

    def close(self):
        self.socket.close()
        os.unlink(self.address)


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.1)


def test_sense_program_on_the_emulator(screen, master, addresses):
    server = StickServer()
    process = subprocess.Popen(command_line(
        'piwheels.monitor.sense', '-c', os.devnull, '--emulator',
        '--status-queue', addresses[0], '--control-queue', addresses[1]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        def answered():
            while master.control_queue.poll(0):
                if master.recv()[0] == 'HELLO':
                    master.hello()
                    master.slave(1, 'HELLO', slave_hello('pi-1'))
                    master.slave(1, 'IDLE', slave_stats())
                    master.send('STATS', master_stats(
                        pending={'cp311': 16}, disk_free=50, disk_size=100))
            return screen.get_pixels()[16:24] == \
                [rgb565(WHITE)] * 2 + [rgb565(BLUE)] * 6
        wait_for(answered, 'the queue row')
        server.wait_for_client(process.pid)
        server.push('middle')
        wait_for(lambda: screen.get_pixels()[56:64] == [rgb565(WHITE)] + [
            rgb565(GRAY)] * 3 + [rgb565(BLACK)] * 4, 'the detail screen')
        for direction in ('right', 'right', 'right', 'middle'):
            server.push(direction)
        assert master.recv() == ('KILL', 1)
        for direction in ('down',) * 5 + ('middle',):
            server.push(direction)
        assert process.wait(60) == 0
        # the display is left dark
        assert screen.get_pixels() == [[0, 0, 0]] * 64
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode('utf-8', 'replace')
        server.close()
    assert 'Traceback' not in output


def test_sense_program_stops_on_sigterm(screen, addresses):
    # no master: the ping row pulses red
    process = subprocess.Popen(command_line(
        'piwheels.monitor.sense', '-c', os.devnull, '--emulator',
        '--status-queue', addresses[0], '--control-queue', addresses[1]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: screen.get_pixels()[0][0] > 0, 'the ping row')
        process.terminate()
        assert process.wait(60) == 0
        assert screen.get_pixels() == [[0, 0, 0]] * 64
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode('utf-8', 'replace')
    assert 'Traceback' not in output
