"""A systemd container from the local bookworm image, driven with podman.

The deploy tests install the Debian packages into a fresh container whose
PID 1 is systemd (see DESIGN.md, "Molecule", for the podman setup on these
machines: the project-local ``scripts/containers.conf`` named by
``CONTAINERS_CONF``) and check them the way an operator would, with
commands run inside it.
"""

import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
IMAGE = os.environ.get('PIWHEELS_IMAGE', 'localhost/piwheels-bookworm')


def podman_environment():
    """Return the environment podman runs with: the project's
    containers.conf unless the caller named another."""
    env = dict(os.environ)
    env.setdefault('CONTAINERS_CONF', os.path.join(TOP, 'scripts', 'containers.conf'))
    env['PIWHEELS_IMAGE'] = IMAGE
    return env


def podman(*args, timeout=120, check=True, input=None):
    """Run ``podman ARGS``; return the completed process (text output)."""
    return subprocess.run(
        ('podman',) + args, env=podman_environment(), input=input,
        capture_output=True, text=True, timeout=timeout, check=check)


class CommandFailed(AssertionError):
    """A command in the container failed; the message holds its output."""


class Container:
    """A running container named *name* booted from :data:`IMAGE`, with each
    ``host_path: container_path`` of *volumes* mounted."""

    def __init__(self, name, volumes=None):
        self.name = name
        self.volumes = dict(volumes or {})

    def create(self):
        """Create and boot the container; return self once systemd is up."""
        # CAP_SYS_ADMIN lets systemd build the services' sandboxes
        # (ProtectSystem=, PrivateTmp=, ...); without it they are silently
        # left out in a container and would go untested.
        args = ['run', '--detach', '--name', self.name, '--hostname', self.name,
                '--systemd', 'always', '--cap-add', 'SYS_ADMIN']
        for host_path, path in self.volumes.items():
            args += ['--volume', '{}:{}'.format(host_path, path)]
        podman(*args, IMAGE, '/lib/systemd/systemd')
        self.wait_booted()
        return self

    def start(self):
        """Boot the stopped container again (the "machine" after a reboot)."""
        podman('start', self.name)
        self.wait_booted()

    def remove(self):
        podman('rm', '--force', '--time', '5', self.name, check=False)

    def state(self):
        """The container's state: 'running', 'exited', ..."""
        return podman('inspect', '--format', '{{.State.Status}}',
                      self.name).stdout.strip()

    def wait_stopped(self, timeout):
        """Wait up to *timeout* seconds for the container to stop; return
        True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state() != 'running':
                return True
            time.sleep(1)
        return False

    def wait_booted(self, timeout=120):
        """Wait until systemd in the container has finished booting."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.run('systemctl is-system-running --wait',
                              check=False, timeout=timeout)
            if result.stdout.strip() in ('running', 'degraded'):
                return
            if time.monotonic() > deadline:
                raise CommandFailed('container {} did not boot: {}{}'.format(
                    self.name, result.stdout, result.stderr))
            time.sleep(1)

    def run(self, script, check=True, timeout=120, user=None, input=None):
        """Run the shell *script* in the container (as *user*, default root);
        return the completed process. With *check*, a non-zero exit raises
        :exc:`CommandFailed` with the output."""
        args = ['exec', '--interactive']
        if user:
            args += ['--user', user]
        args += [self.name, 'sh', '-c', script]
        result = podman(*args, timeout=timeout, check=False, input=input)
        if check and result.returncode != 0:
            raise CommandFailed('{!r} exited with {} in {}:\n{}{}'.format(
                script, result.returncode, self.name, result.stdout,
                result.stderr))
        return result

    def output(self, script, **kwargs):
        """Run *script* (see :meth:`run`) and return its stripped stdout."""
        return self.run(script, **kwargs).stdout.strip()

    def write(self, path, text):
        """Write *text* to the file *path* in the container."""
        self.run('mkdir -p "$(dirname {0})" && cat > {0}'.format(path),
                 input=text)

    def wait_for(self, script, timeout, interval=1):
        """Run *script* until it succeeds, for up to *timeout* seconds;
        return True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(script, check=False).returncode == 0:
                return True
            time.sleep(interval)
        return False
