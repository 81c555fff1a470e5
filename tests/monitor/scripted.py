"""A scripted master for the monitors' tests: the master's status PUB and
control PULL queues on ipc sockets, and the messages a real master sends."""

from datetime import datetime, timedelta, timezone

from piwheels import __version__, protocols, transport
from piwheels.protocols import NoData


def now():
    return datetime.now(timezone.utc)


def slave_hello(label, abi='cp311'):
    return protocols.SlaveHello(
        protocols.PROTOCOL_VERSION, __version__, timedelta(hours=3),
        timedelta(minutes=5), abi, abi, 'linux_armv7l', label,
        'Raspbian GNU/Linux', '12 (bookworm)', 'c03111', '')


def slave_stats(disk_free=20 * 2 ** 30, disk_size=30 * 2 ** 30,
                mem_free=2 ** 30, mem_size=4 * 2 ** 30, load=0.5,
                temp=47.5, timestamp=None):
    return protocols.SlaveStats(
        timestamp or now(), disk_size, disk_free, mem_size, mem_free,
        2 ** 30, 2 ** 30, load, temp)


def master_stats(pending=None, last_hour=None, disk_free=60 * 2 ** 30,
                 disk_size=100 * 2 ** 30, downloads=(12, 3456, 78901)):
    return protocols.MasterStats(
        now(), 1234, last_hour if last_hour is not None else {'cp311': 40},
        timedelta(hours=50), 5 * 2 ** 30,
        pending if pending is not None else {'cp311': 17, 'cp313': 3},
        7, 5678, downloads[0], downloads[1], downloads[2], disk_size,
        disk_free, 8 * 2 ** 30, 4 * 2 ** 30, 2 ** 30, 2 ** 30, 0.75, 51.0,
        {'idle': 1, 'building': 1}, now(), now())


class ScriptedMaster:
    """The master's side of the monitors' queues, bound on *status* and
    *control* (ipc addresses)."""

    def __init__(self, status, control):
        ctx = transport.Context.instance()
        self.status_queue = ctx.socket(
            transport.PUB, protocol=protocols.monitor_status)
        self.status_queue.bind(status)
        self.control_queue = ctx.socket(
            transport.PULL, protocol=protocols.master_control)
        self.control_queue.bind(control)

    def close(self):
        self.status_queue.close(linger=0)
        self.control_queue.close(linger=0)

    def hello(self, label='master'):
        self.status_queue.send_msg('HELLO', protocols.MasterInfo(
            now(), label, __version__))

    def slave(self, slave_id, action, data=NoData, timestamp=None):
        self.status_queue.send_msg('SLAVE', protocols.SlaveEvent(
            slave_id, timestamp or now(), action,
            None if data is NoData else data))

    def send(self, action, data=NoData):
        self.status_queue.send_msg(action, data)

    def recv(self, timeout=30):
        return self.control_queue.recv_msg(timeout=timeout)
