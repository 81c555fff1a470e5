"""A terminal for the monitor's tests: a private tmux server running one
command in a window of a given size, typed into with send-keys and read
with capture-pane."""

import os
import shlex
import subprocess
import sys
import time


def command_line(module, *args):
    """Return the argument list running the ``main`` of *module* (e.g.
    ``'piwheels.monitor.tui'``) with *args* under this interpreter."""
    return [sys.executable, '-c',
            'import sys; from {} import main; sys.exit(main())'.format(
                module)] + list(args)


class Terminal:
    """Runs *command* (an argument list) in a *width* x *height* tmux
    window on a tmux server of its own."""

    def __init__(self, command, width=120, height=40):
        self.socket = 'piwtest-{}-{}'.format(os.getpid(), id(self))
        self.tmux('-f', os.devnull, 'new-session', '-d', '-s', 'monitor',
                  '-x', str(width), '-y', str(height),
                  shlex.join(command) + '; echo "[exited $?]"; sleep 600')

    def tmux(self, *args):
        return subprocess.run(
            ['tmux', '-L', self.socket] + list(args), check=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=30).stdout

    def keys(self, *keys):
        """Type *keys* (tmux key names, e.g. ``'p'``, ``'Tab'``)."""
        self.tmux('send-keys', '-t', 'monitor', *keys)

    def resize(self, width, height):
        self.tmux('resize-window', '-t', 'monitor', '-x', str(width),
                  '-y', str(height))

    def command_pid(self):
        """The process id of the command (the child of the window's
        shell)."""
        shell = self.tmux('display-message', '-p', '-t', 'monitor',
                          '#{pane_pid}').strip()
        with open('/proc/{0}/task/{0}/children'.format(shell)) as f:
            return int(f.read().split()[0])

    def screen(self):
        """Return what the window shows."""
        return self.tmux('capture-pane', '-p', '-t', 'monitor')

    def wait_for(self, predicate, what, timeout=60):
        """Wait until *predicate* (given the screen) is true; return the
        screen. Fail showing the screen after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError('timed out after {}s waiting for {}; '
                                     'the screen shows:\n{}'.format(
                                         timeout, what, screen))
            time.sleep(0.2)

    def wait_for_text(self, text, timeout=60):
        return self.wait_for(lambda screen: text in screen, repr(text),
                             timeout)

    def close(self):
        subprocess.run(['tmux', '-L', self.socket, 'kill-server'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
