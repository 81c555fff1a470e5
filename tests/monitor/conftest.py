"""Fixtures of the monitors' tests: a scripted master on ipc sockets and a
MasterLink connected to it."""

import pytest

from piwheels.monitor.farm import FarmView
from piwheels.monitor.link import MasterLink

from .scripted import ScriptedMaster


@pytest.fixture
def addresses(ipc_dir):
    return ('ipc://{}/status'.format(ipc_dir),
            'ipc://{}/control'.format(ipc_dir))


@pytest.fixture
def master(addresses):
    master = ScriptedMaster(*addresses)
    yield master
    master.close()


@pytest.fixture
def link(addresses):
    link = MasterLink(*addresses, FarmView())
    yield link
    link.close()
