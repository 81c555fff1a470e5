"""Benchmark: what one hop of the message layer costs.

Sends messages from a PUSH to a PULL socket over inproc with the real
protocols, so each message is validated, encoded, scanned, decoded and
validated again, and prints:

* access-log records per second in LOGDOWNLOAD batches of 1,000
  (the lumberjack queue);
* BUSY messages per second (the slave_driver queue, one small payload);
* CHUNK throughput in MB/s with 1 MiB chunks (file_juggler_files).

Run: ``.venv/bin/python bench/message_layer.py`` (or with
``/usr/bin/python3`` for Debian's libraries).
"""

import os
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from piwheels import protocols, transport  # noqa: E402


def pair(ctx, protocol, name):
    pull = ctx.socket(transport.PULL, protocol=protocol)
    pull.bind('inproc://' + name)
    push = ctx.socket(transport.PUSH, protocol=protocol.reversed())
    push.connect('inproc://' + name)
    return push, pull


def rate(push, pull, action, data, count):
    start = time.perf_counter()
    for _ in range(count):
        push.send_msg(action, data)
        pull.recv_msg(timeout=10)
    return count / (time.perf_counter() - start)


def main():
    ctx = transport.Context()
    now = datetime.now(timezone.utc)
    record = protocols.DownloadState(
        'foo-1.0-py3-none-any.whl', '192.0.2.1', now, 'armv7l',
        'Raspbian GNU/Linux', '12', 'Linux', '6.1.21', 'CPython', '3.11.2',
        'pip', '23.0.1', '66.1.1')
    push, pull = pair(ctx, protocols.lumberjack, 'log')
    batches = rate(push, pull, 'LOGDOWNLOAD', [record] * 1000, 20)
    print('log records/s:    {:,.0f}'.format(batches * 1000))
    stats = protocols.SlaveStats(now, 2 ** 34, 2 ** 33, 2 ** 32, 2 ** 31,
                                 0, 0, 0.25, 48.5)
    push, pull = pair(ctx, protocols.slave_driver, 'slave')
    print('BUSY messages/s:  {:,.0f}'.format(
        rate(push, pull, 'BUSY', stats, 5000)))
    chunk = protocols.Chunk(0, os.urandom(1024 * 1024))
    push, pull = pair(ctx, protocols.file_juggler_files, 'files')
    print('CHUNK MB/s:       {:,.0f}'.format(
        rate(push, pull, 'CHUNK', chunk, 200) * len(chunk.data) / 1e6))
    ctx.destroy(linger=0)


if __name__ == '__main__':
    main()
