"""Tests of piwheels.logger.sources: lines from pipes, files and followed
files."""

import gzip
import os

import pytest

from piwheels.exc import ConfigError
from piwheels.logger.sources import (
    FileSource, FollowSource, LineSplitter, PipeSource,
)


def read_all(source, timeout=0.1):
    chunks = []
    while True:
        chunk = source.read(timeout)
        if not chunk:
            return b''.join(chunks), chunk
        chunks.append(chunk)


def test_splitter_cuts_lines_across_chunks():
    splitter = LineSplitter()
    assert splitter.feed(b'one\ntw') == [b'one']
    assert splitter.feed(b'o\nthr') == [b'two']
    assert splitter.feed(b'ee\n\n') == [b'three', b'']
    assert splitter.finish() is None


def test_splitter_returns_a_last_line_cut_short():
    splitter = LineSplitter()
    assert splitter.feed(b'one\ntruncat') == [b'one']
    assert splitter.finish() == b'truncat'


def test_splitter_skips_over_long_lines_without_keeping_them():
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b'short\n' + b'x' * 8) == [b'short']
    assert splitter.feed(b'x' * 8) == []
    assert splitter._rest == b''
    assert splitter.feed(b'x' * 100) == []
    assert splitter.feed(b'xx\nnext\n') == [b'next']
    assert splitter.too_long == 1
    assert splitter.feed(b'y' * 20) == []
    assert splitter.finish() is None
    assert splitter.too_long == 2


def test_pipe_source_never_waits_longer_than_asked():
    read_end, write_end = os.pipe()
    try:
        source = PipeSource(read_end)
        assert source.read(0.05) == b''
        os.write(write_end, b'line\n')
        assert source.read(5) == b'line\n'
        os.close(write_end)
        write_end = None
        assert source.read(5) is None
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)


@pytest.mark.parametrize('name, opener', [
    ('access.log', open), ('access.log.1.gz', gzip.open),
    ('gzip-without-suffix', gzip.open), ('plain.gz', open),
])
def test_file_source_reads_plain_and_gzip(tmp_path, name, opener):
    content = b''.join(b'line %d\n' % n for n in range(100000))
    with opener(tmp_path / name, 'wb') as f:
        f.write(content)
    source = FileSource(str(tmp_path / name))
    try:
        assert read_all(source) == (content, None)
    finally:
        source.close()


def test_file_source_damaged_gzip_ends_with_a_warning(tmp_path, caplog):
    data = gzip.compress(b''.join(b'line %d\n' % n for n in range(100000)))
    path = tmp_path / 'cut.gz'
    path.write_bytes(data[:len(data) // 2])
    source = FileSource(str(path))
    try:
        content, end = read_all(source)
    finally:
        source.close()
    assert end is None
    assert content.startswith(b'line 0\nline 1\n')
    assert 'unreadable from here on' in caplog.text


def test_file_source_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        FileSource(str(tmp_path / 'missing.log'))
    assert 'missing.log' in str(info.value)


def test_follow_starts_at_the_end(tmp_path):
    path = tmp_path / 'access.log'
    path.write_bytes(b'old line\n')
    source = FollowSource(str(path), interval=0.01)
    try:
        assert source.read(0.05) == b''
        with open(path, 'ab') as f:
            f.write(b'new line\n')
        assert source.read(5) == b'new line\n'
    finally:
        source.close()


def test_follow_survives_rotation(tmp_path, monkeypatch):
    path = tmp_path / 'access.log'
    path.write_bytes(b'')
    source = FollowSource(str(path), interval=0.01)
    try:
        with open(path, 'ab') as old:
            old.write(b'before\n')
            old.flush()
            assert source.read(5) == b'before\n'
            os.rename(path, tmp_path / 'access.log.1')
            path.write_bytes(b'new file\n')
            # the web server writes to the old file until it reopens its log
            old.write(b'late\n')
        received = b''
        while received.count(b'\n') < 2:
            received += source.read(5)
        assert sorted(received.splitlines()) == [b'late', b'new file']
        with open(path, 'ab') as f:
            f.write(b'after\n')
        assert source.read(5) == b'after\n'
    finally:
        source.close()


def test_follow_survives_truncation(tmp_path):
    path = tmp_path / 'access.log'
    path.write_bytes(b'')
    source = FollowSource(str(path), interval=0.01)
    try:
        with open(path, 'ab') as f:
            f.write(b'a long line before copytruncate\n')
        assert source.read(5) == b'a long line before copytruncate\n'
        with open(path, 'wb') as f:
            f.write(b'short\n')
        assert source.read(5) == b'short\n'
    finally:
        source.close()


def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path):
    path = tmp_path / 'access.log'
    source = FollowSource(str(path), interval=0.01)
    try:
        assert source.read(0.05) == b''
        path.write_bytes(b'first\n')
        assert source.read(5) == b'first\n'
    finally:
        source.close()
