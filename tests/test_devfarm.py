"""make run's farm: started twice in the same directory, stopped with Ctrl+C."""

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from piwheels.devfarm import (
    DEFAULT_PROJECTS, Farm, missing_parts, native_abi, pypi_source_arguments,
)

#: how long the farm may take to start or stop
DEADLINE = 300


class FarmProcess:
    """``python -m piwheels.devfarm`` running in the background, its output
    collected line by line."""

    def __init__(self, var):
        self.output = open(str(var.parent / 'devfarm.out'), 'w+')
        self.process = subprocess.Popen(
            # PyPI's JSON API at an address nothing answers: the farm must
            # not reach the internet in a test
            [sys.executable, '-m', 'piwheels.devfarm', '--var', str(var),
             '--pypi-json', 'http://127.0.0.1:9/pypi'],
            stdout=self.output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # started with SIGINT ignored, as a background job of a script
            # (a CI runner's, say) is: Ctrl+C must stop it all the same
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))

    def text(self):
        with open(self.output.name) as f:
            return f.read()

    def wait_for(self, pattern, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError('{!r} not seen in:\n{}'.format(
            pattern, self.text()))

    def interrupt(self):
        """Press Ctrl+C; return the exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(DEADLINE)
        finally:
            self.output.close()

    def kill(self):
        """Stop the farm after a failure: Ctrl+C so it stops what it
        started, SIGKILL if that does not work."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serves(url):
    """Return True if *url* answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def wait_until(predicate, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError('timed out waiting for ' + what)


@pytest.fixture
def var(tmp_path):
    path = tmp_path / 'var'
    yield path
    # whatever happened, leave no PostgreSQL behind
    Farm(str(path)).cluster.stop()


@pytest.mark.slow
@pytest.mark.timeout(5 * DEADLINE)
def test_devfarm_starts_stops_and_restarts(var):
    first = FarmProcess(var)
    try:
        served = first.wait_for(r'Served at (http://127\.0\.0\.1:\d+/)')
        first.wait_for('Press Ctrl\\+C to stop everything')
        url = served.group(1)
        if not missing_parts():
            slave_log = var / 'logs' / 'slave.log'
            wait_until(lambda: slave_log.exists() and
                       'connected to master' in slave_log.read_text(),
                       'the slave to connect to the master')
            # the master writes the home page into the served output
            wait_until(lambda: serves(url), 'the home page to be served')
        assert first.interrupt() == 0
    finally:
        first.kill()
    assert 'Farm stopped' in first.text()
    assert 'Output directory: {}'.format(var / 'output') in first.text()
    with open(str(var / 'ports.json')) as f:
        ports = json.load(f)

    second = FarmProcess(var)
    try:
        served = second.wait_for(r'Served at (http://127\.0\.0\.1:\d+/)')
        second.wait_for('Press Ctrl\\+C to stop everything')
        # the same cluster, database and ports as the first run
        assert served.group(1) == url
        assert second.interrupt() == 0
    finally:
        second.kill()
    with open(str(var / 'ports.json')) as f:
        assert json.load(f) == ports


def test_devfarm_master_arguments_keep_queues_private(tmp_path):
    farm = Farm(str(tmp_path / 'var'))
    args = farm.master_arguments()
    for option in ('--status-queue', '--control-queue', '--import-queue',
                   '--log-queue'):
        address = args[args.index(option) + 1]
        assert address.startswith('ipc://' + str(tmp_path))
    for option in ('--slave-queue', '--file-queue'):
        assert args[args.index(option) + 1].startswith('tcp://127.0.0.1:')
    pypi = pypi_source_arguments(farm)
    assert pypi[pypi.index('--pypi-json') + 1] == 'https://pypi.org/pypi'
    assert pypi[pypi.index('--pypi-projects') + 1:] == DEFAULT_PROJECTS
    slave_args = farm.slave_arguments()
    assert slave_args[slave_args.index('--master-port') + 1] == \
        str(farm.ports['slave'])


def test_devfarm_builds_for_this_abi():
    assert re.fullmatch(r'[a-z][a-z0-9_]*', native_abi())
