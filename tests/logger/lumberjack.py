"""Helpers for piw-logger's tests: Apache log lines, a Lumberjack played by the
test, and piw-logger run as a process."""

import json
import subprocess
import sys
import threading

from piwheels import protocols, transport

from ..fixtures.zmq import RECV_TIMEOUT

PIP_AGENT = 'pip/23.0.1 ' + json.dumps({
    'cpu': 'armv7l',
    'distro': {'name': 'Raspbian GNU/Linux', 'version': '12'},
    'implementation': {'name': 'CPython', 'version': '3.11.2'},
    'installer': {'name': 'pip', 'version': '23.0.1'},
    'python': '3.11.2', 'setuptools_version': '66.1.1',
    'system': {'name': 'Linux', 'release': '6.1.21-v7+'},
})
PIP_FIELDS = ('armv7l', 'Raspbian GNU/Linux', '12', 'Linux', '6.1.21-v7+',
              'CPython', '3.11.2', 'pip', '23.0.1', '66.1.1')
WHEEL = 'foo-1.0-py3-none-any.whl'


def log_line(path='/simple/foo/' + WHEEL, status=200, agent=PIP_AGENT,
             host='192.0.2.1', method='GET'):
    """Return a line of Apache's combined format (as bytes, with its line
    ending), the user agent escaped as Apache escapes it."""
    escaped = agent.replace('\\', '\\\\').replace('"', '\\"')
    return ('{} - - [10/Oct/2023:13:55:36 +0000] "{} {} HTTP/1.1" {} 1234 '
            '"-" "{}"\n'.format(host, method, path, status, escaped)).encode(
                'utf-8')


class FakeLumberjack(threading.Thread):
    """Lumberjack played by the test: a ROUTER bound at *address* that
    validates every batch, keeps its records in :attr:`records` and answers
    it (unless *answer* is False)."""

    def __init__(self, address, answer=True):
        super().__init__(daemon=True)
        self.address = address
        self.answer = answer
        self.records = {action: [] for action in protocols.lumberjack.recv}
        self.batches = 0
        self._ready = threading.Event()
        self._finish = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self):
        self.start()
        assert self._ready.wait(RECV_TIMEOUT)
        return self

    def __exit__(self, *exc):
        self._finish.set()
        self.join(RECV_TIMEOUT)

    def run(self):
        queue = transport.Context.instance().socket(
            transport.ROUTER, protocol=protocols.lumberjack)
        queue.bind(self.address)
        self._ready.set()
        try:
            while not self._finish.is_set():
                if queue.poll(0.05):
                    addr, msg, data = queue.recv_addr_msg()
                    with self._lock:
                        self.records[msg].extend(data)
                        self.batches += 1
                    if self.answer:
                        queue.send_addr_msg(addr, msg, len(data))
        finally:
            queue.close(linger=0)

    def count(self, action=None):
        """Return the records received (of *action*, or all)."""
        with self._lock:
            return sum(len(records) for name, records in self.records.items()
                       if action in (None, name))


def start_logger(*args, stdin=subprocess.DEVNULL):
    """Start piw-logger as a process with *args* (no configuration file)."""
    return subprocess.Popen(
        [sys.executable, '-c',
         'import sys; from piwheels.logger import main; sys.exit(main())',
         '-c', '/dev/null'] + list(args),
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
