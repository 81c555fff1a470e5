"""piw-monitor: a terminal UI showing the master's build slaves and statistics, with controls to pause, resume, kill, skip and terminate.

:class:`PiWheelsMonitor` is the ``piw-monitor`` command; :class:`MonitorUI`
is its urwid screen: a header saying which master it watches and whether it
is connected or paused, the build slaves (sorted by ABI then label), the
master's statistics, and a row of controls. Tab moves between the slave
list and the controls; the mouse works where the terminal supports it; and
every control has a hot-key:

=====  ==========================================================
p      pause the master
r      resume the master
k      kill the selected slave (at its next request for work)
s      skip the selected slave's build
t      terminate the master (asks for confirmation: y / n)
q      quit the monitor (the master carries on)
=====  ==========================================================
"""

import signal
import sys

import urwid

from ..farm import FarmView, utcnow
from ..link import MasterLink, add_queue_options
from ...exc import ConfigError
from ...protocols import NoData
from ...terminal import Command
from .widgets import (
    PALETTE, SizeGuard, SlaveRow, TableHeader, stats_lines,
)

#: the smallest terminal piw-monitor draws in (columns, rows)
MIN_SIZE = (60, 18)

#: seconds between looks at the status queue (and redraws of times)
TICK = 0.2


class PiWheelsMonitor(Command):
    """The piw-monitor command."""

    section = 'monitor'
    description = (
        'Watch the piwheels master and its build slaves, and control them, '
        'from a terminal.')

    def configure_parser(self):
        parser = super().configure_parser()
        add_queue_options(parser)
        return parser

    def run(self, config):
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise ConfigError('piw-monitor must be run in a terminal')
        farm = FarmView()
        link = MasterLink(config.status_queue, config.control_queue, farm)
        # SIGTERM leaves through urwid's clean-up, which restores the
        # terminal
        signal.signal(signal.SIGTERM, stop_on_signal)
        try:
            MonitorUI(farm, link).run()
        finally:
            link.close()
        return 0


def stop_on_signal(signo, stack_frame):
    """Handler for SIGTERM: leave the screen and exit."""
    raise SystemExit(0)


class MonitorUI:
    """The screen of piw-monitor.

    :param farm: the :class:`~piwheels.monitor.farm.FarmView` to show.
    :param link: the :class:`~piwheels.monitor.link.MasterLink` keeping it
        and carrying the commands.
    """

    def __init__(self, farm, link):
        self.farm = farm
        self.link = link
        self.header = urwid.Text('', wrap='clip')
        self.message = urwid.Text('')
        self.slave_list = urwid.SimpleFocusListWalker([])
        self.stats = urwid.Text('')
        # two rows of three (a GridFlow would wrap them by itself, but
        # urwid 5 draws a wrapped GridFlow one row short in a Pile)
        self.controls = urwid.Pile([
            urwid.Columns([
                self.button('Pause (p)', self.pause),
                self.button('Resume (r)', self.resume),
                self.button('Terminate (t)', self.terminate),
            ], dividechars=1),
            urwid.Columns([
                self.button('Kill slave (k)', self.kill),
                self.button('Skip build (s)', self.skip),
                self.button('Quit (q)', self.quit),
            ], dividechars=1),
        ])
        self.body = urwid.Pile([
            ('weight', 1, urwid.LineBox(urwid.Frame(
                urwid.ListBox(self.slave_list), header=TableHeader()),
                title='Build slaves')),
            ('pack', urwid.LineBox(self.stats, title='Master statistics')),
            ('pack', self.controls),
        ])
        self.main = urwid.Frame(
            self.body, header=urwid.AttrMap(self.header, 'header'),
            footer=urwid.AttrMap(self.message, 'message'))
        self.guard = SizeGuard(self.main, *MIN_SIZE)
        self.confirming = False
        self.loop = None
        self.refresh()

    @staticmethod
    def button(label, action):
        button = urwid.Button(label, on_press=lambda button: action())
        return urwid.AttrMap(button, 'button', 'button focus')

    def run(self):
        """Show the screen until the user quits."""
        self.loop = urwid.MainLoop(
            self.guard, PALETTE,
            unhandled_input=self.handle_key, handle_mouse=True)
        self.loop.set_alarm_in(0, self.tick)
        self.loop.run()

    def tick(self, loop=None, user_data=None):
        """Take in the master's news and redraw (the times shown change
        even when nothing arrives)."""
        self.link.poll(0)
        self.refresh()
        if self.loop is not None:
            self.loop.set_alarm_in(TICK, self.tick)

    # -- drawing ----------------------------------------------------------

    def refresh(self):
        """Bring every part of the screen up to date with the farm."""
        now = utcnow()
        self.header.set_text(self.header_text())
        self.stats.set_text('\n'.join(stats_lines(self.farm, now)))
        focused = self.selected_slave_id()
        rows = [SlaveRow(slave, now)
                for slave in self.farm.sorted_slaves(now)]
        self.slave_list[:] = rows
        # the focus stays on the same slave; on the first if that one left
        positions = [row.slave_id for row in rows]
        if positions:
            self.slave_list.set_focus(
                positions.index(focused) if focused in positions else 0)

    def header_text(self):
        farm = self.farm
        if farm.master is None:
            master = 'master: waiting for it to answer'
        else:
            master = 'master: {} (piwheels {})'.format(
                farm.master.label, farm.master.piwheels_version)
        parts = [('header', ' piw-monitor | {} | '.format(master))]
        if farm.connection == 'disconnected':
            parts.append(('disconnected', ' DISCONNECTED: reconnecting '))
        else:
            parts.append(('header', farm.connection))
        if farm.paused:
            parts.append(('header', ' | '))
            parts.append(('paused', ' PAUSED '))
        elif farm.paused is False:
            parts.append(('header', ' | running'))
        parts.append(('header', ' | {} slaves'.format(len(farm.slaves))))
        if farm.bad_messages:
            parts.append(('header', ' | {} message{} not understood'.format(
                farm.bad_messages, '' if farm.bad_messages == 1 else 's')))
        return parts

    def say(self, text):
        """Show *text* in the message line."""
        self.message.set_text(text)

    def selected_slave_id(self):
        """The id of the slave focused in the list, or None."""
        row, position = self.slave_list.get_focus()
        return row.slave_id if row is not None else None

    # -- controls -----------------------------------------------------------

    def handle_key(self, key):
        """Hot-keys, Tab, and the answer to the terminate question."""
        if not isinstance(key, str):
            return
        if self.confirming:
            self.answer_terminate(key)
            return
        action = {
            'p': self.pause, 'r': self.resume, 'k': self.kill,
            's': self.skip, 't': self.terminate, 'q': self.quit,
            'Q': self.quit, 'tab': self.switch_focus,
            'shift tab': self.switch_focus,
        }.get(key)
        if action is not None:
            action()

    def switch_focus(self):
        """Move between the slave list and the controls."""
        self.body.focus_position = 2 if self.body.focus_position == 0 else 0

    def command(self, action, done, data=NoData):
        """Send *action* (with *data*) to the master and say *done*, or
        say that the master is not connected."""
        if self.link.send(action, data):
            self.say(done)
        else:
            self.say('Not connected to the master: {} not sent'.format(
                action))

    def pause(self):
        self.command('PAUSE', 'Asked the master to pause')

    def resume(self):
        self.command('RESUME', 'Asked the master to resume')

    def slave_command(self, action, done):
        slave_id = self.selected_slave_id()
        if slave_id is None:
            self.say('No slave selected')
            return
        slave = self.farm.slaves.get(slave_id)
        label = slave.label if slave is not None else '?'
        self.command(action, done.format(slave_id, label), slave_id)

    def kill(self):
        self.slave_command('KILL', 'Slave {} ({}) will be told to stop at '
                           'its next request')

    def skip(self):
        self.slave_command('SKIP', 'The build of slave {} ({}) will be '
                           'abandoned')

    def terminate(self):
        """Ask whether to terminate the master (y / n, or the buttons)."""
        self.confirming = True
        question = urwid.LineBox(urwid.Pile([
            urwid.Text('Terminate the master?\nThe slaves wait for it to '
                       'be started again.', align='center'),
            urwid.Divider(),
            urwid.Columns([
                self.button('Yes (y)', lambda: self.answer_terminate('y')),
                self.button('No (n)', lambda: self.answer_terminate('n')),
            ], dividechars=2),
        ]), title='Terminate')
        self.guard.show(urwid.Overlay(question, self.main, 'center', 50,
                                      'middle', 'pack'))
        self.say('Terminate the master? y: yes, n: no')

    def answer_terminate(self, key):
        """Act on the answer to :meth:`terminate`'s question."""
        if key in ('y', 'Y'):
            self.confirming = False
            self.guard.show(self.main)
            self.command('QUIT', 'Asked the master to terminate')
        elif key in ('n', 'N', 'esc'):
            self.confirming = False
            self.guard.show(self.main)
            self.say('The master carries on')

    def quit(self):
        raise urwid.ExitMainLoop()


main = PiWheelsMonitor()
