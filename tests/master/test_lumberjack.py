"""Tests of Lumberjack: batches from a scripted piw-logger written through
Seraph and TheOracle to the test's PostgreSQL."""

from datetime import datetime, timedelta, timezone

import cbor2
import pytest

from piwheels import protocols, transport
from piwheels.master import lumberjack
from piwheels.master.big_brother import BigBrother
from piwheels.master.lumberjack import Lumberjack
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.protocols import (
    DownloadState, JSONState, PageState, ProjectState, SearchState,
)

from ..fixtures.schema import FOO_WHEEL
from ..fixtures.zmq import poll_until
from .farm import RunningTasks

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
AGENT = ('armv7l', 'Raspbian GNU/Linux', '12', 'Linux', '6.1.21-v7+',
         'CPython', '3.11.2', 'pip', '23.0.1', '66.1.1')


def download(filename=FOO_WHEEL, host='192.0.2.1'):
    return DownloadState(filename, host, WHEN, *AGENT)


@pytest.fixture
def oracles(master_config):
    tasks = RunningTasks(master_config, Seraph, TheOracle)
    yield
    tasks.stop()


@pytest.fixture
def jack(master_config, oracles):
    task = Lumberjack(master_config)
    yield task
    task.close()


@pytest.fixture
def logger(master_config, peer):
    return peer(transport.DEALER, protocols.lumberjack.reversed(),
                connect=master_config.log_queue)


def answer(jack, logger):
    """Poll *jack* until *logger* has its answer; return it."""
    poll_until(jack, lambda: logger.socket.poll(0))
    return logger.recv()


def test_lumberjack_writes_downloads(jack, logger, with_build,
                                     superuser_sql):
    logger.send('LOGDOWNLOAD', [download(), download(host='2001:db8::1')])
    assert answer(jack, logger) == ('LOGDOWNLOAD', 2)
    assert jack.written['LOGDOWNLOAD'] == 2
    assert superuser_sql(
        "SELECT filename, package, host, accessed_at, arch, distro_name, "
        "distro_version, os_name, os_version, py_name, py_version, "
        "installer_name, installer_version, setuptools_version "
        "FROM downloads ORDER BY host") == [
            (FOO_WHEEL, 'foo', '192.0.2.1', WHEN) + AGENT,
            (FOO_WHEEL, 'foo', '2001:db8::1', WHEN) + AGENT]
    # WHEN is long ago: downloads in all, none in the last 30 days
    assert superuser_sql(
        "SELECT downloads_recent, downloads_all FROM packages") == [(0, 2)]


@pytest.mark.parametrize('action, record, table', [
    ('LOGSEARCH', SearchState('foo', '192.0.2.2', WHEN, *AGENT), 'searches'),
    ('LOGPROJECT', ProjectState('foo', '192.0.2.3', WHEN, 'Mozilla/5.0'),
     'project_page_hits'),
    ('LOGJSON', JSONState('foo', '192.0.2.4', WHEN, 'curl/8.0'),
     'project_json_downloads'),
    ('LOGPAGE', PageState('faq.html', '192.0.2.5', WHEN, 'Mozilla/5.0'),
     'web_page_hits'),
])
def test_lumberjack_writes_each_kind(jack, logger, superuser_sql, action,
                                     record, table):
    logger.send(action, [record] * 3)
    assert answer(jack, logger) == (action, 3)
    assert jack.written[action] == 3
    assert superuser_sql(
        "SELECT host, accessed_at, count(*) FROM {} GROUP BY 1, 2".format(
            table)) == [(record.host, WHEN, 3)]


def test_lumberjack_big_batch_is_one_message(jack, logger, superuser_sql):
    logger.send('LOGPAGE', [
        PageState('page{}.html'.format(n), '192.0.2.6', WHEN, 'x' * 1000)
        for n in range(protocols.MAX_LOG_BATCH)])
    assert answer(jack, logger) == ('LOGPAGE', protocols.MAX_LOG_BATCH)
    assert superuser_sql("SELECT count(*) FROM web_page_hits") == [
        (protocols.MAX_LOG_BATCH,)]


@pytest.mark.parametrize('message', [
    b'\xff\xfe garbage',
    cbor2.dumps(['DELPKG', 'foo']),
    transport.encode('LOGDOWNLOAD', [[
        '../../etc/passwd.whl', '192.0.2.1', WHEN] + [None] * 10]),
    transport.encode('LOGPAGE', [['faq.html', 'h' * 101, WHEN, '']]),
    transport.encode('LOGPAGE', [['p' * 201, '192.0.2.1', WHEN, '']]),
    transport.encode('LOGSEARCH', [['foo', '192.0.2.1', WHEN, 'a' * 101] +
                                   [None] * 9]),
    cbor2.dumps(['LOGDOWNLOAD', [None] * (protocols.MAX_LOG_BATCH + 1)]),
])
def test_lumberjack_refuses_bad_batches(jack, logger, with_build,
                                        superuser_sql, message):
    logger.send_raw(message)
    msg, error = answer(jack, logger)
    assert msg == 'ERROR' and error.startswith('lumberjack: ')
    assert jack.protocol_errors == 1
    logger.send('LOGDOWNLOAD', [download()])
    assert answer(jack, logger) == ('LOGDOWNLOAD', 1)
    assert superuser_sql("SELECT host FROM downloads") == [('192.0.2.1',)]
    assert superuser_sql("SELECT package FROM packages") == [('foo',)]


def test_lumberjack_retries_refused_batch(jack, logger, with_build,
                                          superuser_sql, monkeypatch):
    monkeypatch.setattr(lumberjack, 'RETRY_DELAY', 0.2)
    superuser_sql("REVOKE EXECUTE ON FUNCTION log_downloads(JSONB) "
                  "FROM piwheels")
    logger.send('LOGDOWNLOAD', [download()])
    poll_until(jack, lambda: jack.retries)
    superuser_sql("GRANT EXECUTE ON FUNCTION log_downloads(JSONB) "
                  "TO piwheels")
    assert answer(jack, logger) == ('LOGDOWNLOAD', 1)
    assert jack.lost == 0
    assert superuser_sql("SELECT count(*) FROM downloads") == [(1,)]


def test_lumberjack_gives_up_after_attempts(jack, logger, with_build,
                                            superuser_sql, monkeypatch):
    monkeypatch.setattr(lumberjack, 'RETRY_DELAY', 0.1)
    superuser_sql("REVOKE EXECUTE ON FUNCTION log_downloads(JSONB) "
                  "FROM piwheels")
    logger.send('LOGDOWNLOAD', [download(), download()])
    assert answer(jack, logger) == ('LOST', 2)
    assert jack.lost == 2
    assert not jack.retries
    # and carries on with the next
    logger.send('LOGPAGE', [PageState('faq.html', '192.0.2.5', WHEN, '')])
    assert answer(jack, logger) == ('LOGPAGE', 1)


def test_lumberjack_answers_every_batch_of_many(jack, logger, peer,
                                                master_config, superuser_sql):
    other = peer(transport.DEALER, protocols.lumberjack.reversed(),
                 connect=master_config.log_queue)
    batches = lumberjack.IN_FLIGHT + 3
    for n in range(batches):
        logger.send('LOGPAGE', [PageState('faq.html', '192.0.2.5', WHEN, '')]
                    * (n + 1))
        other.send('LOGJSON', [JSONState('foo', '192.0.2.6', WHEN, '')])
    answers = [answer(jack, logger) for _ in range(batches)]
    assert sorted(answers) == [('LOGPAGE', n + 1) for n in range(batches)]
    assert [answer(jack, other) for _ in range(batches)] == [
        ('LOGJSON', 1)] * batches
    assert superuser_sql("SELECT count(*) FROM web_page_hits") == [
        (batches * (batches + 1) // 2,)]


def test_lumberjack_empty_batch_is_answered(jack, logger):
    logger.send('LOGSEARCH', [])
    assert answer(jack, logger) == ('LOGSEARCH', 0)


def test_lumberjack_survives_logger_leaving(jack, logger, peer, master_config,
                                            superuser_sql):
    logger.send('LOGPAGE', [PageState('faq.html', '192.0.2.5', WHEN, '')])
    poll_until(jack, lambda: jack.busy)
    # gone before its answer
    logger.close()
    poll_until(jack, lambda: jack.written['LOGPAGE'] == 1)
    again = peer(transport.DEALER, protocols.lumberjack.reversed(),
                 connect=master_config.log_queue)
    again.send('LOGPAGE', [PageState('faq.html', '192.0.2.5', WHEN, '')])
    assert answer(jack, again) == ('LOGPAGE', 1)


def test_downloads_reach_big_brother(master_config, jack, logger, peer,
                                     with_build):
    status = peer(transport.PULL, protocols.master_status,
                  bind=master_config.int_status_queue)
    web = peer(transport.PULL, protocols.the_secretary,
               bind=master_config.web_queue)
    now = datetime.now(timezone.utc)
    logger.send('LOGDOWNLOAD', [
        DownloadState(FOO_WHEEL, '192.0.2.1', now - timedelta(days=days),
                      *AGENT)
        for days in (0, 0, 0, 2, 2, 40)])
    assert answer(jack, logger) == ('LOGDOWNLOAD', 6)
    big_brother = BigBrother(master_config)
    try:
        big_brother.gen_stats()
    finally:
        big_brother.close()
    msg, stats = status.recv()
    assert msg == 'STATS'
    assert (stats.downloads_last_hour, stats.downloads_last_month,
            stats.downloads_all) == (3, 5, 6)
    assert web.recv() == ('HOME', stats)
