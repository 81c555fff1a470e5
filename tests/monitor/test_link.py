"""MasterLink against a scripted master on ipc sockets: asking for the
master's state until it answers, commands, messages it does not understand,
and the master going away and coming back."""

import time

from piwheels.protocols import NoData
from piwheels.transport import encode

from .scripted import ScriptedMaster, slave_hello, slave_stats

TIMEOUT = 30


def poll_until(link, predicate, what, master=None):
    """Poll *link* until *predicate* is true; answer HELLOs reaching
    *master* meanwhile."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        link.poll(0.05)
        if master is not None:
            while master.control_queue.poll(0):
                if master.recv()[0] == 'HELLO':
                    master.hello()


def connect(link, master):
    poll_until(link, lambda: link.farm.connection == 'connected',
               'the master to answer', master)


def test_link_asks_for_the_masters_state_until_answered(link, master):
    hellos = 0
    while hellos < 2:
        link.poll(0.05)
        if master.control_queue.poll(0):
            assert master.recv() == ('HELLO', NoData)
            hellos += 1
    assert link.farm.connection == 'connecting'
    connect(link, master)
    assert link.farm.master.label == 'master'
    # answered: it stops asking
    for _ in range(30):
        link.poll(0.05)
    assert not master.control_queue.poll(0)


def test_link_keeps_the_farm_view(link, master):
    connect(link, master)
    master.send('PAUSED', True)
    master.slave(3, 'HELLO', slave_hello('pi-3'))
    master.slave(3, 'IDLE', slave_stats())
    poll_until(link, lambda: 3 in link.farm.slaves
               and link.farm.slaves[3].state == 'idle', 'slave 3')
    assert link.farm.paused is True
    assert link.farm.slaves[3].label == 'pi-3'


def test_link_sends_commands(link, master):
    connect(link, master)
    assert link.send('KILL', 3)
    assert master.recv(TIMEOUT) == ('KILL', 3)
    assert link.send('PAUSE')
    assert master.recv(TIMEOUT) == ('PAUSE', NoData)


def test_link_skips_status_messages_it_does_not_understand(link, master):
    connect(link, master)
    master.status_queue.send(b'\xff\x00garbage')
    master.status_queue.send(encode('FOO', 1))
    master.status_queue.send(encode('SLAVE', [1, 'soon', 'X', 1]))
    master.slave(4, 'HELLO', slave_hello('pi-4'))
    poll_until(link, lambda: 4 in link.farm.slaves, 'slave 4')
    assert link.farm.bad_messages == 3
    assert 'SLAVE' in link.farm.last_bad_message
    assert link.farm.connection == 'connected'


def test_link_follows_the_master_away_and_back(link, master, addresses):
    connect(link, master)
    master.slave(1, 'HELLO', slave_hello('pi-1'))
    poll_until(link, lambda: 1 in link.farm.slaves, 'slave 1')
    master.close()
    poll_until(link, lambda: link.farm.connection == 'disconnected',
               'the master to be missed')
    # nothing is sent to a master that is not there
    assert not link.send('PAUSE')
    # the last that was known stays on show until the master is back
    assert 1 in link.farm.slaves
    again = ScriptedMaster(*addresses)
    try:
        connect(link, again)
        # a restarted master numbers its slaves afresh
        assert link.farm.slaves == {}
        again.slave(1, 'HELLO', slave_hello('pi-new'))
        poll_until(link, lambda: 1 in link.farm.slaves, 'the new slave 1')
        assert link.farm.slaves[1].label == 'pi-new'
        assert link.send('RESUME')
        assert again.recv(TIMEOUT) == ('RESUME', NoData)
    finally:
        again.close()
