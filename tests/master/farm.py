"""Helpers for tests driving master tasks: running tasks in threads, and a
scripted build slave speaking the real protocols over real sockets."""

import hashlib
from datetime import datetime, timedelta, timezone

from piwheels import protocols, transport
from piwheels.protocols import BuiltFile, SlaveStats

from ..fixtures.master import slave_hello
from ..fixtures.zmq import RECV_TIMEOUT


def stats():
    """Return the IDLE/BUSY statistics of a healthy slave."""
    return SlaveStats(datetime.now(timezone.utc), 10 ** 10, 5 * 10 ** 9,
                      10 ** 9, 5 * 10 ** 8, 0, 0, 0.5, None)


def wheel(package='foo', version='0.1', abi='cp311', content=b'wheel bytes'):
    """Return ``(BuiltFile, content)`` of a wheel of *package*."""
    filename = '{}-{}-{}-{}-linux_x86_64.whl'.format(
        package, version, abi, abi)
    return BuiltFile(filename, len(content),
                     hashlib.sha256(content).hexdigest(), package, version,
                     abi, abi, 'linux_x86_64', '>=3.9',
                     {'apt': {'libc6'}}), content


def result(files=(), status=True, failure='', output='build log'):
    """Return the data of a BUILT message."""
    return protocols.BuildResult(status, timedelta(seconds=3), output,
                                 [file for file, content in files], failure)


class ScriptedSlave:
    """A build slave played by the test: a REQ socket to SlaveDriver and a
    DEALER to FileJuggler, both real."""

    def __init__(self, config, label='slave1', abi='cp311'):
        ctx = transport.Context.instance()
        self.queue = ctx.socket(
            transport.REQ, protocol=protocols.slave_driver.reversed())
        self.queue.connect(config.slave_queue)
        self.files = ctx.socket(
            transport.DEALER, protocol=protocols.file_juggler_files.reversed())
        self.files.connect(config.file_queue)
        self.label = label
        self.abi = abi
        self.slave_id = None

    def close(self):
        self.queue.close(linger=0)
        self.files.close(linger=0)

    def request(self, msg, data=protocols.NoData, driver=None):
        """Send *msg* and return the reply; *driver* (the SlaveDriver task,
        run synchronously) is polled until it answers."""
        self.queue.send_msg(msg, data)
        if driver is not None:
            deadline = RECV_TIMEOUT * 10
            while not self.queue.poll(0) and deadline:
                driver.poll(0.1)
                deadline -= 1
        return self.queue.recv_msg(timeout=RECV_TIMEOUT)

    def hello(self, driver=None, **kwargs):
        kwargs.setdefault('label', self.label)
        kwargs.setdefault('abi', self.abi)
        reply = self.request('HELLO', slave_hello(**kwargs), driver)
        if reply[0] == 'ACK':
            self.slave_id = reply[1].slave_id
        return reply

    def transfer(self, content, corrupt=None):
        """Send *content* to FileJuggler as it asks (the juggler runs in
        its own thread); *corrupt(offset, data)* may change a chunk."""
        self.files.send_msg('HELLO', self.slave_id)
        while True:
            msg, data = self.files.recv_msg(timeout=RECV_TIMEOUT)
            if msg == 'DONE':
                return
            chunk = content[data.offset:data.offset + data.length]
            if corrupt is not None:
                chunk = corrupt(data.offset, chunk)
            self.files.send_msg('CHUNK', protocols.Chunk(data.offset, chunk))


class RunningTasks:
    """Tasks started in their threads, stopped (newest first) by
    :meth:`stop`."""

    def __init__(self, config, *classes):
        self.tasks = []
        for task_class in classes:
            task = task_class(config)
            task.start()
            self.tasks.append(task)

    def stop(self):
        for task in reversed(self.tasks):
            task.quit()
        for task in reversed(self.tasks):
            task.join(10)
            assert not task.is_alive(), '{} did not stop'.format(task.name)
            assert task.failure is None, task.failure
