"""piw-monitor's screen: drawn at given sizes (what the terminal would show),
keys and mouse clicks through its widgets, commands reaching a scripted
master, and the program in tmux fed status messages it cannot understand."""

import os
import signal
from datetime import timedelta

import pytest
import urwid

from piwheels import protocols
from piwheels.monitor.farm import utcnow
from piwheels.monitor.tui import MonitorUI
from piwheels.protocols import NoData
from piwheels.transport import encode

from .scripted import master_stats, slave_hello, slave_stats
from .test_link import connect
from .tmux import Terminal, command_line

SIZE = (130, 32)


@pytest.fixture
def ui(link):
    return MonitorUI(link.farm, link)


def event(farm, slave_id, action, data=None, at=None):
    farm.update('SLAVE', protocols.SlaveEvent(
        slave_id, at or utcnow(), action, data))


def populate(farm):
    """Two slaves of different ABIs, one building."""
    event(farm, 1, 'HELLO', slave_hello('pi-b', 'cp313'))
    event(farm, 1, 'IDLE', slave_stats())
    event(farm, 2, 'HELLO', slave_hello('pi-a', 'cp311'))
    event(farm, 2, 'BUILD', protocols.BuildRequest('numpy', '1.26.4'),
          utcnow() - timedelta(minutes=3, seconds=5))
    event(farm, 2, 'BUSY', slave_stats(load=1.25, temp=61.0))


def draw(ui, size=SIZE):
    """The lines the terminal shows at *size*."""
    ui.refresh()
    canvas = ui.guard.render(size, focus=True)
    return [line.decode('utf-8') for line in canvas.text]


def cells(line):
    """The words of a table row, without the box around it."""
    return line.strip().strip('\u2502|').split()


def slave_row(lines, slave_id):
    """The cells of slave *slave_id*'s row."""
    for line in lines:
        if cells(line)[:1] == [str(slave_id)]:
            return cells(line)
    raise AssertionError('no row of slave {} on screen:\n{}'.format(
        slave_id, '\n'.join(lines)))


def line_with(lines, text):
    for line in lines:
        if text in line:
            return line
    raise AssertionError('{!r} not on screen:\n{}'.format(
        text, '\n'.join(lines)))


def test_tui_lists_slaves_by_abi_then_label(ui):
    populate(ui.farm)
    lines = draw(ui)
    rows = [line for line in lines if 'pi-' in line]
    assert [cells(row)[1] for row in rows] == ['pi-a', 'pi-b']
    building = line_with(lines, 'pi-a')
    for text in ('cp311', 'building', 'numpy 1.26.4', '3m0', '20.0 GB',
                 '1.0 GB', '1.25', '61.0C'):
        assert text in building
    assert 'idle' in line_with(lines, 'pi-b')
    header = line_with(lines, 'Label')
    for title in ('ABI', 'State', 'Build', 'Time', 'Seen', 'Disk free',
                  'Mem free', 'Load', 'Temp'):
        assert title in header


def test_tui_shows_unknown_and_absurd_values_as_unknown(ui):
    farm = ui.farm
    event(farm, 5, 'CONT')
    event(farm, 6, 'HELLO', slave_hello('pi-odd'))
    event(farm, 6, 'IDLE', slave_stats(
        disk_free=2 ** 62, mem_free=5, mem_size=0, load=float('nan'),
        temp=1e9, timestamp=utcnow() + timedelta(days=3000)))
    lines = draw(ui)
    assert slave_row(lines, 5)[:4] == ['5', '?', '?', 'building']
    odd = cells(line_with(lines, 'pi-odd'))
    assert odd[-4:] == ['?', '?', '?', '?']


def test_tui_narrow_terminal_keeps_label_abi_and_state(ui):
    populate(ui.farm)
    lines = draw(ui, (60, 24))
    assert all(len(line) == 60 for line in lines)
    row = line_with(lines, 'pi-a')
    assert 'cp311' in row and 'building' in row
    assert 'Disk free' not in line_with(lines, 'Label')


def test_tui_too_small_terminal_says_so(ui):
    populate(ui.farm)
    lines = draw(ui, (30, 8))
    assert 'Terminal too small' in lines[0]
    for size in ((1, 1), (59, 40), (200, 3)):
        canvas = ui.guard.render(size)
        assert (canvas.cols(), canvas.rows()) == size
    assert ui.guard.keypress((30, 8), 'q') == 'q'


def test_tui_statistics_box(ui):
    assert 'No statistics from the master yet' in '\n'.join(draw(ui))
    ui.farm.update('STATS', master_stats(
        pending={'cp311': 17, 'cp313': 3}, last_hour={'cp311': 40},
        disk_free=60 * 2 ** 30, disk_size=100 * 2 ** 30,
        downloads=(12, 3456, 78901)))
    lines = draw(ui)
    assert 'cp311 17, cp313 3' in line_with(lines, 'Queue:')
    assert 'cp311 40' in line_with(lines, 'Builds/hour:')
    assert '60.0 GB (60%) of 100.0 GB' in line_with(lines, 'Disk free:')
    assert '12 last hour, 3,456 last 30 days, 78,901 in all' in \
        line_with(lines, 'Downloads:')


def test_tui_header_shows_master_state(ui):
    lines = draw(ui)
    assert 'waiting for it to answer' in lines[0]
    ui.farm.update('HELLO', protocols.MasterInfo(utcnow(), 'farm-master',
                                                 '9.9'))
    ui.farm.update('PAUSED', True)
    lines = draw(ui)
    assert 'farm-master (piwheels 9.9)' in lines[0]
    assert 'PAUSED' in lines[0]
    ui.farm.update('PAUSED', False)
    ui.farm.bad_message('monitor_status: unknown action FOO')
    ui.farm.disconnected()
    lines = draw(ui)
    assert 'running' in lines[0]
    assert 'DISCONNECTED' in lines[0]
    assert '1 message not understood' in lines[0]


def test_tui_hot_keys_pass_through_the_widgets(ui):
    populate(ui.farm)
    draw(ui)
    for position in (0, 2):
        ui.body.focus_position = position
        for key in ('p', 'r', 'k', 's', 't', 'q', 'tab'):
            assert ui.guard.keypress(SIZE, key) == key
    ui.handle_key('tab')
    assert ui.body.focus_position == 0
    ui.handle_key('tab')
    assert ui.body.focus_position == 2


def test_tui_hot_keys_send_commands(ui, master):
    connect(ui.link, master)
    populate(ui.farm)
    draw(ui)
    ui.handle_key('p')
    assert master.recv() == ('PAUSE', NoData)
    ui.handle_key('r')
    assert master.recv() == ('RESUME', NoData)
    # the first row (pi-a, slave 2) is selected; move to pi-b (slave 1)
    ui.body.focus_position = 0
    ui.guard.keypress(SIZE, 'down')
    ui.handle_key('k')
    assert master.recv() == ('KILL', 1)
    assert 'Slave 1 (pi-b) will be told to stop' in ui.message.text
    ui.handle_key('s')
    assert master.recv() == ('SKIP', 1)
    ui.handle_key('t')
    assert 'Terminate the master?' in '\n'.join(draw(ui))
    ui.handle_key('p')      # only y or n answer the question
    ui.handle_key('n')
    assert 'The master carries on' in ui.message.text
    assert 'Terminate the master?' not in '\n'.join(draw(ui))
    ui.handle_key('t')
    ui.handle_key('y')
    assert master.recv() == ('QUIT', NoData)
    assert not master.control_queue.poll(0.5)
    with pytest.raises(urwid.ExitMainLoop):
        ui.handle_key('q')


def test_tui_refuses_commands_without_a_master(ui):
    populate(ui.farm)
    draw(ui)
    ui.handle_key('p')
    assert ui.message.text == 'Not connected to the master: PAUSE not sent'
    ui.farm.slaves.clear()
    draw(ui)
    ui.handle_key('k')
    assert ui.message.text == 'No slave selected'


def test_tui_mouse_selects_slaves_and_presses_buttons(ui, master):
    connect(ui.link, master)
    populate(ui.farm)
    lines = draw(ui)
    row = next(index for index, line in enumerate(lines) if 'pi-b' in line)
    ui.guard.mouse_event(SIZE, 'mouse press', 1, 10, row, True)
    assert ui.selected_slave_id() == 1
    y = next(index for index, line in enumerate(lines)
             if 'Kill slave (k)' in line)
    x = lines[y].index('Kill slave (k)')
    ui.guard.mouse_event(SIZE, 'mouse press', 1, x, y, True)
    ui.guard.mouse_event(SIZE, 'mouse release', 0, x, y, True)
    assert 'Slave 1 (pi-b) will be told to stop' in ui.message.text
    assert master.recv() == ('KILL', 1)


def test_tui_program_survives_what_it_cannot_understand(master, addresses):
    terminal = Terminal(command_line(
        'piwheels.monitor.tui', '-c', '/dev/null',
        '--status-queue', addresses[0], '--control-queue', addresses[1]),
        width=120, height=30)
    try:
        def answered(screen):
            while master.control_queue.poll(0):
                if master.recv()[0] == 'HELLO':
                    master.hello('scripted')
                    master.slave(1, 'HELLO', slave_hello('pi-odd'))
                    master.slave(1, 'IDLE', slave_stats(
                        disk_free=2 ** 62, load=float('inf'),
                        temp=float('nan')))
            return 'pi-odd' in screen
        terminal.wait_for(answered, 'the slave to be listed')
        master.status_queue.send(b'\x9f\x9f\x9f')
        master.status_queue.send(encode('NEWS', 'hello'))
        master.slave(9, 'SENT')
        screen = terminal.wait_for_text('2 messages not understood')
        # disk free (more than there is), memory free, load, temperature
        assert cells(line_with(screen.splitlines(), 'pi-odd'))[-5:] == \
            ['?', '1.0', 'GB', '?', '?']
        assert slave_row(screen.splitlines(), 9)[:4] == \
            ['9', '?', '?', 'sending']
        terminal.resize(40, 10)
        terminal.wait_for_text('Terminal too small')
        terminal.resize(120, 30)
        terminal.wait_for_text('pi-odd')
        terminal.keys('q')
        terminal.wait_for_text('[exited 0]')
    finally:
        terminal.close()


def test_tui_program_stops_on_sigterm(addresses):
    terminal = Terminal(command_line(
        'piwheels.monitor.tui', '-c', '/dev/null',
        '--status-queue', addresses[0], '--control-queue', addresses[1]),
        width=100, height=30)
    try:
        terminal.wait_for_text('waiting for it to answer')
        os.kill(terminal.command_pid(), signal.SIGTERM)
        terminal.wait_for_text('[exited 0]')
    finally:
        terminal.close()
