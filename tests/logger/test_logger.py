"""Tests of the piw-logger command: log files, a piped log, following a log,
bad input, and a master that is down, slow or silent."""

import gzip
import os
import re
import signal
import subprocess
import time

import pytest

from piwheels import protocols
from piwheels.logger import main

from ..fixtures.zmq import RECV_TIMEOUT
from .lumberjack import (
    PIP_AGENT, PIP_FIELDS, WHEEL, FakeLumberjack, log_line, start_logger,
)


def wait_for(condition, timeout=RECV_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'nothing happened in time'
        time.sleep(0.02)


def summary(stderr):
    """Return the last line piw-logger wrote (its summary)."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode('utf-8')
    return stderr.strip().splitlines()[-1]


@pytest.fixture
def log_queue(ipc_dir):
    return 'ipc://{}/log.sock'.format(ipc_dir)


def test_logger_loads_plain_and_gzip_files(tmp_path, log_queue, capsys):
    plain = tmp_path / 'access.log'
    plain.write_bytes(log_line() * 3 + log_line('/simple/foo/'))
    with gzip.open(tmp_path / 'access.log.2.gz', 'wb') as f:
        f.write(log_line('/project/foo/', agent='Mozilla/5.0') +
                log_line('/project/Foo/json/', agent='curl/8') +
                log_line('/faq.html', agent='Mozilla/5.0') +
                log_line('/static/piwheels.css'))
    with FakeLumberjack(log_queue) as lumberjack:
        assert main(['-c', os.devnull, '--log-queue', log_queue, str(plain),
                     str(tmp_path / 'access.log.2.gz')]) == 0
    records = lumberjack.records
    assert records['LOGDOWNLOAD'] == [protocols.DownloadState(
        WHEEL, '192.0.2.1', records['LOGDOWNLOAD'][0].timestamp,
        *PIP_FIELDS)] * 3
    assert [r.package for r in records['LOGSEARCH']] == ['foo']
    assert [r.package for r in records['LOGPROJECT']] == ['foo']
    assert [r.package for r in records['LOGJSON']] == ['foo']
    assert [r.page for r in records['LOGPAGE']] == ['faq.html']
    assert summary(capsys.readouterr().err).endswith(
        '8 lines: 3 downloads, 1 searches, 1 project pages, 1 project JSON, '
        '1 other pages written; 1 ignored, 0 unreadable; 0 refused by the '
        'database, 0 dropped, 0 unconfirmed')


def test_logger_skips_bad_input_and_carries_on(tmp_path, log_queue, capsys):
    bad = [
        b'\x00\x01\x02\xff binary junk \xfe\n',
        b'\x89PNG\r\n\x1a\n',                       # two lines of junk
        log_line()[:40] + b'\n',                       # cut short
        log_line().replace(b'192.0.2.1', b'192.0.\x00.1'),
        b'x' * 200000 + b'\n',                         # absurdly long
        log_line(agent='pip/1 ' + '{"a":' * 5000 + '1' + '}' * 5000),
        log_line(agent='x' * 50000),
    ]
    ignored = [
        log_line('/simple/bar/' + WHEEL),             # another's directory
        log_line('/simple/foo/../bar/' + WHEEL),
        log_line('/simple/foo/%2e%2e/bar/' + WHEEL),
        log_line('/simple/foo/%2F' + WHEEL),
        log_line(status=404),
    ]
    good = [
        log_line(),
        # not UTF-8: kept, as U+FFFD
        log_line(agent='Mozilla/5.0').replace(b'Mozilla', b'Moz\xffilla'),
        log_line(agent='caf\u00e9 \u2603'),
    ]
    lines = bad[:3] + good[:1] + ignored + bad[3:] + good[1:]
    path = tmp_path / 'access.log'
    path.write_bytes(b''.join(lines) + log_line()[:60])
    with FakeLumberjack(log_queue) as lumberjack:
        assert main(['-c', os.devnull, '--log-queue', log_queue,
                     str(path)]) == 0
    agents = [r.installer_name for r in lumberjack.records['LOGDOWNLOAD']]
    assert agents == ['pip', None, None, None, None]
    assert lumberjack.count() == 5
    # an absurd user agent is recorded without its fields
    assert lumberjack.records['LOGDOWNLOAD'][2:] == [
        protocols.DownloadState(WHEEL, '192.0.2.1',
                                lumberjack.records['LOGDOWNLOAD'][0].timestamp,
                                *(None,) * 10)] * 3
    assert summary(capsys.readouterr().err).endswith(
        '{} lines: 5 downloads, 0 searches, 0 project pages, 0 project '
        'JSON, 0 other pages written; 5 ignored, 7 unreadable; 0 refused by '
        'the database, 0 dropped, 0 unconfirmed'.format(len(lines) + 2))


def test_logger_records_non_utf8_and_unicode_agents_safely(tmp_path,
                                                          log_queue):
    path = tmp_path / 'access.log'
    path.write_bytes(
        log_line('/faq.html', agent='Mozilla/5.0').replace(
            b'Mozilla', b'Moz\xffilla') +
        # Apache's escapes of a snowman's UTF-8
        log_line('/faq.html', agent='caf\u00e9 SNOWMAN').replace(
            b'SNOWMAN', b'\\xe2\\x98\\x83'))
    with FakeLumberjack(log_queue) as lumberjack:
        assert main(['-c', os.devnull, '--log-queue', log_queue,
                     str(path)]) == 0
    assert [r.user_agent for r in lumberjack.records['LOGPAGE']] == [
        'Moz\ufffdilla/5.0', 'caf\u00e9 \u2603']


def test_logger_piped_sends_as_lines_arrive(log_queue):
    with FakeLumberjack(log_queue) as lumberjack:
        logger = start_logger('--drop', '--log-queue', log_queue,
                              stdin=subprocess.PIPE)
        try:
            logger.stdin.write(log_line())
            logger.stdin.flush()
            # a record waits at most a second for its batch to fill
            wait_for(lambda: lumberjack.count('LOGDOWNLOAD') == 1)
            logger.stdin.write(log_line('/simple/foo/'))
            logger.stdin.close()
            assert logger.wait(RECV_TIMEOUT) == 0
        finally:
            if logger.poll() is None:
                logger.kill()
                logger.wait()
        assert lumberjack.count() == 2
        assert '1 downloads, 1 searches' in summary(logger.stderr.read())


def test_logger_drop_never_blocks_without_a_master(log_queue):
    lines = log_line() * 50000
    logger = start_logger('--drop', '--log-queue', log_queue,
                          stdin=subprocess.PIPE)
    # Apache writing its log: every line is taken, and the logger ends
    # soon after the input does
    _, stderr = logger.communicate(lines, timeout=RECV_TIMEOUT * 4)
    assert logger.returncode == 0
    # ZeroMQ holds the few batches piw-logger keeps unanswered for a master
    # that may yet come; they are unconfirmed, the rest dropped
    match = re.search(r'50000 lines: 0 downloads, .* 0 refused by the '
                      r'database, (\d+) dropped, (\d+) unconfirmed$',
                      summary(stderr))
    assert match is not None
    dropped, unconfirmed = map(int, match.groups())
    assert dropped + unconfirmed == 50000
    assert dropped >= 10000


def test_logger_drop_with_a_silent_master(log_queue):
    with FakeLumberjack(log_queue, answer=False) as lumberjack:
        logger = start_logger('--drop', '--log-queue', log_queue,
                              stdin=subprocess.PIPE)
        lines = b''.join(
            log_line('/simple/foo{}/'.format(n % 5)) for n in range(60000))
        _, stderr = logger.communicate(lines, timeout=RECV_TIMEOUT * 4)
    assert logger.returncode == 0
    text = summary(stderr)
    assert text.endswith('{} dropped, {} unconfirmed'.format(
        60000 - lumberjack.count(), lumberjack.count()))
    # only as many batches as piw-logger keeps unanswered were sent
    assert 0 < lumberjack.batches <= 4


def test_logger_waits_for_a_master_without_drop(tmp_path, log_queue):
    path = tmp_path / 'access.log'
    path.write_bytes(log_line() * 25000)
    logger = start_logger('--log-queue', log_queue, str(path))
    try:
        # no master yet: nothing is lost, the file waits
        with pytest.raises(subprocess.TimeoutExpired):
            logger.wait(1)
        with FakeLumberjack(log_queue) as lumberjack:
            assert logger.wait(RECV_TIMEOUT) == 0
    finally:
        if logger.poll() is None:
            logger.kill()
            logger.wait()
    assert lumberjack.count('LOGDOWNLOAD') == 25000
    assert summary(logger.stderr.read()).endswith(
        '0 dropped, 0 unconfirmed')


def test_logger_follows_a_rotated_log(tmp_path, log_queue):
    path = tmp_path / 'access.log'
    path.write_bytes(log_line('/old.html'))
    with FakeLumberjack(log_queue) as lumberjack:
        logger = start_logger('--follow', '--log-queue', log_queue,
                              str(path))
        try:
            # it starts at the end: probe until it reads what is appended
            with open(path, 'ab') as f:
                while not lumberjack.count('LOGPAGE'):
                    f.write(log_line('/probe.html'))
                    f.flush()
                    time.sleep(0.2)
                probes = lumberjack.count('LOGPAGE')
                f.write(log_line())
                f.flush()
                os.rename(path, tmp_path / 'access.log.1')
                path.write_bytes(log_line('/simple/foo/'))
                # written to the old file after the rotation
                f.write(log_line('/project/foo/'))
            wait_for(lambda: lumberjack.count() == probes + 3)
            with open(path, 'ab') as f:
                f.write(log_line('/project/foo/json/'))
            wait_for(lambda: lumberjack.count() == probes + 4)
            logger.send_signal(signal.SIGTERM)
            assert logger.wait(RECV_TIMEOUT) == 0
        finally:
            if logger.poll() is None:
                logger.kill()
                logger.wait()
    assert [r.page for r in lumberjack.records['LOGPAGE']] == [
        'probe.html'] * probes
    for action in ('LOGDOWNLOAD', 'LOGSEARCH', 'LOGPROJECT', 'LOGJSON'):
        assert len(lumberjack.records[action]) == 1


@pytest.mark.parametrize('args, message', [
    (['/nonexistent/access.log'], 'unable to read /nonexistent/access.log'),
    (['--format', '%h %t'], 'does not log the request'),
    (['--follow'], '--follow needs exactly one log file'),
    (['--follow', 'a.log', 'b.log'], '--follow needs exactly one log file'),
    (['--bogus'], 'unrecognized arguments'),
])
def test_logger_errors_are_one_line(args, message, log_queue):
    logger = start_logger('--log-queue', log_queue, *args)
    _, stderr = logger.communicate(timeout=RECV_TIMEOUT)
    assert logger.returncode != 0
    lines = stderr.decode('utf-8').strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('piw-logger: error: ')
    assert message in lines[0]


def test_logger_missing_file_among_others_sends_nothing(tmp_path, log_queue):
    path = tmp_path / 'access.log'
    path.write_bytes(log_line())
    with FakeLumberjack(log_queue) as lumberjack:
        assert main(['-c', os.devnull, '--log-queue', log_queue, str(path),
                     str(tmp_path / 'missing.log')]) != 0
    assert lumberjack.count() == 0
    assert PIP_AGENT
