"""Tests of the sd_notify client against a real Unix datagram socket."""

import os
import socket
from datetime import timedelta

import pytest

from piwheels.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / 'notify')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_systemd_ready_sends_ready(notify_socket):
    path, sock = notify_socket
    assert Notifier(path).ready()
    assert sock.recv(1024) == b'READY=1'


def test_systemd_watchdog_ping_sends_watchdog(notify_socket):
    path, sock = notify_socket
    assert Notifier(path).watchdog_ping()
    assert sock.recv(1024) == b'WATCHDOG=1'


def test_systemd_status_is_one_line(notify_socket):
    path, sock = notify_socket
    Notifier(path).status('two\nlines')
    assert sock.recv(1024) == b'STATUS=two lines'


def test_systemd_abstract_socket_address():
    name = 'piwtest-{}'.format(os.getpid())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind('\0' + name)
        sock.settimeout(5)
        assert Notifier('@' + name).stopping()
        assert sock.recv(1024) == b'STOPPING=1'


def test_systemd_without_socket_does_nothing(monkeypatch):
    monkeypatch.delenv('NOTIFY_SOCKET', raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready()


def test_systemd_vanished_socket_is_not_fatal(tmp_path):
    assert not Notifier(str(tmp_path / 'gone')).ready()


def test_systemd_watchdog_period(monkeypatch):
    monkeypatch.setenv('WATCHDOG_USEC', '30000000')
    monkeypatch.setenv('WATCHDOG_PID', str(os.getpid()))
    assert Notifier('').watchdog_period() == timedelta(seconds=30)
    monkeypatch.setenv('WATCHDOG_PID', str(os.getpid() + 1))
    assert Notifier('').watchdog_period() is None
    monkeypatch.delenv('WATCHDOG_USEC')
    assert Notifier('').watchdog_period() is None
