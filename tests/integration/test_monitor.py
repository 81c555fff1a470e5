"""piw-monitor in a terminal (tmux) watching a real piw-master with two real
piw-slave processes idling on an empty build queue.

The operator sees both slaves, pauses and resumes the master, kills a slave
(it leaves the list and its process ends), terminates the master (the
monitor says it is disconnected), and starts the master again: the monitor
reconnects by itself and the remaining slave comes back into the list.
"""

import os
import re
import subprocess

import pytest

from piwheels.devfarm import command_line

from ..fixtures.master import master_args
from ..monitor.tmux import Terminal, command_line as monitor_line

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: an address where nothing answers: the master must never reach PyPI
DEAD_URL = 'http://127.0.0.1:9/'

LABELS = ('mon-slave-a', 'mon-slave-b')


def option(args, name):
    return args[args.index(name) + 1]


class Farm:
    """A master and two slaves as processes, logging into *root*."""

    def __init__(self, root, dsn, ipc_dir):
        self.root = root
        output = os.path.join(root, 'output')
        os.makedirs(output)
        self.master_args = master_args(
            dsn, output, ipc_dir, '--oracles', '1',
            '--pypi-xmlrpc', DEAD_URL, '--pypi-json', DEAD_URL,
            '--pypi-simple', DEAD_URL + 'simple')
        self.master = None
        self.slaves = {}

    def spawn(self, command, name, args):
        log = open(os.path.join(self.root, name + '.log'), 'ab')
        with log:
            return subprocess.Popen(
                command_line(command, *args), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root)

    def log(self, name):
        with open(os.path.join(self.root, name + '.log'), 'rb') as f:
            return f.read().decode('utf-8', errors='replace')

    def start_master(self):
        self.master = self.spawn('piw-master', 'master', self.master_args)

    def start_slave(self, label):
        build_dir = os.path.join(self.root, label)
        os.makedirs(build_dir)
        port = option(self.master_args, '--slave-queue').rsplit(':', 1)[1]
        file_port = option(self.master_args, '--file-queue').rsplit(':', 1)[1]
        # a short master timeout: after the master restarts, the slave
        # gives up on its unanswered request and says HELLO again soon
        self.slaves[label] = self.spawn('piw-slave', label, [
            '-c', os.devnull, '--master', '127.0.0.1', '--master-port', port,
            '--file-port', file_port, '--label', label, '--dir', build_dir,
            '--master-timeout', '10s'])

    def monitor_command(self):
        return monitor_line(
            'piwheels.monitor.tui', '-c', os.devnull,
            '--status-queue', option(self.master_args, '--status-queue'),
            '--control-queue', option(self.master_args, '--control-queue'))

    def stop(self):
        procs = list(self.slaves.values()) + [self.master]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in procs:
            if proc is None:
                continue
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def farm(with_build_abis, tmp_path, ipc_dir):
    farm = Farm(str(tmp_path), with_build_abis[1], ipc_dir)
    farm.start_master()
    for label in LABELS:
        farm.start_slave(label)
    yield farm
    farm.stop()


@pytest.fixture
def terminal(farm):
    terminal = Terminal(farm.monitor_command(), width=130, height=40)
    yield terminal
    terminal.close()


def slave_rows(screen):
    """The labels of the slave rows on *screen*, top to bottom."""
    return re.findall(r'^\W*\d+\s+(mon-slave-\w)\s', screen, re.MULTILINE)


def test_monitor_watches_and_controls_a_farm(farm, terminal):
    # both slaves are listed (same ABI: by label), the master is running
    screen = terminal.wait_for(
        lambda screen: len(slave_rows(screen)) == 2 and 'running' in screen,
        'both slaves listed')
    assert slave_rows(screen) == list(LABELS)
    assert 'connected' in screen
    assert 'idle' in screen

    terminal.keys('p')
    terminal.wait_for_text('PAUSED')
    assert 'pausing operations' in farm.log('master')
    terminal.keys('r')
    screen = terminal.wait_for(
        lambda screen: 'PAUSED' not in screen and 'running' in screen,
        'the master running again')

    # the focus stays on the slave that was listed first, whichever said
    # HELLO first: move it up to the first row, then kill that slave
    terminal.keys('Up', 'Up')
    terminal.keys('k')
    terminal.wait_for_text('will be told to stop')
    screen = terminal.wait_for(
        lambda screen: slave_rows(screen) == [LABELS[1]],
        'the killed slave to leave the list')
    assert farm.slaves[LABELS[0]].wait(60) == 0
    assert farm.slaves[LABELS[1]].poll() is None

    # terminate the master (confirming), which the monitor outlives
    terminal.keys('t')
    terminal.wait_for_text('Terminate the master?')
    terminal.keys('y')
    assert farm.master.wait(120) == 0, farm.log('master')
    terminal.wait_for_text('DISCONNECTED')

    # the master comes back: the monitor reconnects, and the slave that
    # is left says HELLO to the new master
    farm.start_master()
    screen = terminal.wait_for(
        lambda screen: slave_rows(screen) == [LABELS[1]]
        and 'DISCONNECTED' not in screen and 'connected' in screen,
        'the monitor to reconnect and show the remaining slave',
        timeout=180)
