"""The slave's Builder: real pip builds of fixture sdists from the local index."""

import hashlib
import os
import re
import sys
import threading
import time
import zipfile
from datetime import timedelta

import pytest

from piwheels import protocols, transport
from piwheels.exc import MasterTimeout
from piwheels.slave import native_tags
from piwheels.slave.builder import (
    Builder, Wheel, apt_dependencies, classify_failure, group_members,
    trim_log,
)


def build(package_index, tmp_path, kind, name, *, timeout=timedelta(minutes=5)):
    package_index.add_sdist(kind, name, '1.0')
    builder = Builder(name, '1.0', timeout=timeout,
                      index_url=package_index.url, dir=str(tmp_path))
    builder.start()
    builder.join(300)
    assert not builder.is_alive()
    return builder


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_builder_builds_pure_wheel(package_index, tmp_path):
    builder = build(package_index, tmp_path, 'pure', 'piwb-pure')
    try:
        assert builder.status, builder.output
        assert builder.failure == ''
        [wheel] = builder.wheels
        assert wheel.filename == 'piwb_pure-1.0-py3-none-any.whl'
        assert wheel.filehash == sha256(wheel.path)
        assert wheel.requires_python == '>=3.7'
        state = wheel.as_file_state()
        assert state.filename == wheel.filename
        assert state.filesize == os.path.getsize(wheel.path)
        assert (state.package_tag, state.package_version_tag) == ('piwb_pure', '1.0')
        assert (state.py_version_tag, state.abi_tag, state.platform_tag) == (
            'py3', 'none', 'any')
    finally:
        builder.clean()


def test_builder_builds_extension_for_this_abi(package_index, tmp_path):
    builder = build(package_index, tmp_path, 'cext', 'piwb-cext')
    try:
        assert builder.status, builder.output
        [wheel] = builder.wheels
        py_tag, abi_tag, platform_tag = native_tags()
        assert (wheel.py_version_tag, wheel.abi_tag, wheel.platform_tag) == (
            py_tag, abi_tag, platform_tag)
        assert wheel.requires_python is None
        # the extension was inspected for the libraries it needs
        assert isinstance(wheel.dependencies['apt'], set)
        with zipfile.ZipFile(wheel.path) as archive:
            assert any(name.endswith('.so') for name in archive.namelist())
    finally:
        builder.clean()


def test_builder_reports_failed_build_with_log(package_index, tmp_path):
    builder = build(package_index, tmp_path, 'broken', 'piwb-broken')
    try:
        assert not builder.status
        assert builder.wheels == []
        assert builder.failure == 'error'
        assert 'piwb-broken 1.0 refuses to build' in builder.output
        result = builder.as_message()
        assert result.status is False
        assert result.files == []
        assert result.failure == 'error'
        assert result.duration > timedelta(0)
        assert 'refuses to build' in result.output
        # the result is a valid BUILT message
        protocols.slave_driver.reversed().check('send', 'BUILT', result)
    finally:
        builder.clean()


def test_builder_kills_whole_process_group_at_timeout(package_index, tmp_path):
    package_index.add_sdist('slow', 'piwb-slow', '1.0')
    builder = Builder('piwb-slow', '1.0', timeout=timedelta(seconds=4),
                      index_url=package_index.url, dir=str(tmp_path))
    builder.start()
    pgid = None
    deadline = time.monotonic() + 120
    while builder.is_alive() and time.monotonic() < deadline:
        pgid = builder.pgid or pgid
        time.sleep(0.05)
    assert not builder.is_alive()
    try:
        assert pgid is not None
        assert not builder.status
        assert builder.failure == 'timeout'
        assert 'exceeding the timeout' in builder.output
        # pip's build back-end (the sleeping setup.py) ran in a process of
        # its own; nothing of the group survives
        assert group_members(pgid) == []
    finally:
        builder.clean()


def test_builder_stop_kills_running_build(package_index, tmp_path):
    package_index.add_sdist('slow', 'piwb-stopped', '1.0')
    builder = Builder('piwb-stopped', '1.0', timeout=timedelta(hours=1),
                      index_url=package_index.url, dir=str(tmp_path))
    builder.start()
    deadline = time.monotonic() + 120
    while builder.pgid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pgid = builder.pgid
    assert pgid is not None
    # let pip get as far as the back-end's sleeping subprocess
    while len(group_members(pgid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    builder.clean()
    assert not builder.is_alive()
    assert group_members(pgid) == []
    assert not builder.status
    assert os.listdir(str(tmp_path)) == []


def test_builder_clean_removes_build_directory_and_home(package_index, tmp_path):
    builder = build(package_index, tmp_path, 'pure', 'piwb-clean')
    path = builder.path
    assert os.path.isdir(os.path.join(path, 'home'))
    builder.clean()
    assert not os.path.exists(path)
    assert os.listdir(str(tmp_path)) == []


def test_builder_ignores_machine_pip_configuration(
        package_index, tmp_path, monkeypatch):
    # any of these, if it reached the build, would stop pip finding the sdist
    home = tmp_path / 'home'
    (home / '.config' / 'pip').mkdir(parents=True)
    (home / '.config' / 'pip' / 'pip.conf').write_text(
        '[global]\nno-index = true\n')
    (tmp_path / 'pip.conf').write_text('[global]\nindex-url = http://127.0.0.1:9/\n')
    monkeypatch.setenv('HOME', str(home))
    monkeypatch.setenv('PIP_CONFIG_FILE', str(tmp_path / 'pip.conf'))
    monkeypatch.setenv('PIP_NO_INDEX', '1')
    builds = tmp_path / 'builds'
    builds.mkdir()
    builder = build(package_index, builds, 'pure', 'piwb-isolated')
    try:
        assert builder.status, builder.output
    finally:
        builder.clean()


def test_builder_reports_missing_version(package_index, tmp_path):
    package_index.add_sdist('pure', 'piwb-missing', '1.0')
    builder = Builder('piwb-missing', '2.0', index_url=package_index.url,
                      dir=str(tmp_path))
    builder.start()
    builder.join(300)
    try:
        assert not builder.status
        assert builder.failure == 'error'
        assert 'piwb-missing==2.0' in builder.output
    finally:
        builder.clean()


@pytest.mark.parametrize('output, returncode, kind', [
    ('error: [Errno 28] No space left on device', 1, 'disk'),
    ('cc1plus: out of memory allocating 65536 bytes', 1, 'killed'),
    ('gcc: fatal error: Killed signal terminated program cc1', 1,
     'killed'),
    ('', -9, 'killed'),
    ("Failed to establish a new connection: [Errno -3] Temporary failure in "
     "name resolution", 1, 'network'),
    ('error: command gcc failed with exit status 1', 1, 'error'),
])
def test_classify_failure_from_log_and_status(output, returncode, kind):
    assert classify_failure(returncode, output, timed_out=False) == kind


def test_classify_failure_timeout_wins():
    assert classify_failure(-15, 'No space left on device', timed_out=True) == \
        'timeout'


def test_trim_log_keeps_head_and_tail_within_limit():
    text = 'a' * 1000 + 'b' * 1000
    trimmed = trim_log(text, limit=100)
    assert len(trimmed) <= 100
    head, left_out, tail = re.fullmatch(
        r'(a+)\n\[\.\.\. (\d+) characters of the log left out \.\.\.\]\n(b+)',
        trimmed).groups()
    assert len(head) == len(tail) >= 25
    assert len(head) + int(left_out) + len(tail) == 2000


def test_trim_log_leaves_short_log():
    assert trim_log('short', limit=5) == 'short'


def test_longest_log_still_fits_built_message():
    result = protocols.BuildResult(
        False, timedelta(seconds=1),
        trim_log('x' * (protocols.MAX_BUILD_OUTPUT * 2)), [], 'error')
    protocols.slave_driver.reversed().check('send', 'BUILT', result)


def test_apt_dependencies_of_interpreter():
    # the interpreter links against the C library, which libc6 provides
    assert 'libc6' in apt_dependencies([os.path.realpath(sys.executable)])


def test_apt_dependencies_of_nothing():
    assert apt_dependencies([]) == set()


def test_wheel_rejects_bad_filename(tmp_path):
    path = tmp_path / 'foo-1.0.tar.gz'
    path.write_bytes(b'')
    with pytest.raises(ValueError):
        Wheel(str(path))


def test_wheel_result_is_valid_built_message(package_index, tmp_path):
    builder = build(package_index, tmp_path, 'pure', 'piwb-message')
    try:
        result = builder.as_message()
        checked = protocols.slave_driver.reversed().check('send', 'BUILT', result)
        [built] = checked.files
        assert built.filename == 'piwb_message-1.0-py3-none-any.whl'
        assert built.requires_python == '>=3.7'
        assert checked.failure == ''
    finally:
        builder.clean()


def test_wheel_without_metadata_has_no_requires_python(tmp_path):
    path = tmp_path / 'foo-1.0-py3-none-any.whl'
    with zipfile.ZipFile(str(path), 'w') as archive:
        archive.writestr('foo.py', '')
    assert Wheel(str(path)).requires_python is None


@pytest.fixture
def juggler(zmq_context, ipc_address):
    """A ROUTER playing FileJuggler, and a DEALER connected to it as the
    slave's transfer socket."""
    router = zmq_context.socket(transport.ROUTER,
                                protocol=protocols.file_juggler_files)
    router.bind(ipc_address)
    dealer = zmq_context.socket(transport.DEALER,
                                protocol=protocols.file_juggler_files.reversed())
    dealer.connect(ipc_address)
    yield router, dealer
    dealer.close(linger=0)
    router.close(linger=0)


def make_wheel(tmp_path, size):
    path = tmp_path / 'foo-1.0-py3-none-any.whl'
    path.write_bytes(os.urandom(size))
    return Wheel(str(path))


def test_wheel_transfer_greets_again_when_juggler_is_silent(juggler, tmp_path):
    router, dealer = juggler
    wheel = make_wheel(tmp_path, 3000)
    thread = threading.Thread(
        target=wheel.transfer, args=(dealer, 5),
        kwargs={'timeout': timedelta(minutes=1)}, daemon=True)
    thread.start()
    address, msg, slave_id = router.recv_addr_msg(timeout=30)
    assert (msg, slave_id) == ('HELLO', 5)
    # the first greeting went unanswered (say the master was busy): the
    # slave greets again
    address, msg, slave_id = router.recv_addr_msg(timeout=30)
    assert (msg, slave_id) == ('HELLO', 5)
    received = bytearray(3000)
    for offset in (2000, 0, 1000, 0):
        router.send_addr_msg(address, 'FETCH', protocols.Fetch(offset, 1000))
        _, msg, chunk = router.recv_addr_msg(timeout=30)
        assert msg == 'CHUNK' and chunk.offset == offset
        received[offset:offset + len(chunk.data)] = chunk.data
    router.send_addr_msg(address, 'DONE')
    thread.join(30)
    assert not thread.is_alive()
    assert hashlib.sha256(received).hexdigest() == wheel.filehash


def test_wheel_transfer_gives_up_when_juggler_never_answers(juggler, tmp_path):
    router, dealer = juggler
    wheel = make_wheel(tmp_path, 10)
    with pytest.raises(MasterTimeout):
        wheel.transfer(dealer, 1, timeout=timedelta(seconds=2))
    _, msg, _ = router.recv_addr_msg(timeout=30)
    assert msg == 'HELLO'


def test_wheel_transfer_answers_fetch_past_end_with_empty_chunk(
        juggler, tmp_path):
    router, dealer = juggler
    wheel = make_wheel(tmp_path, 10)
    thread = threading.Thread(target=wheel.transfer, args=(dealer, 1),
                              daemon=True)
    thread.start()
    address, msg, _ = router.recv_addr_msg(timeout=30)
    router.send_addr_msg(address, 'FETCH', protocols.Fetch(1000, 100))
    _, msg, chunk = router.recv_addr_msg(timeout=30)
    assert msg == 'CHUNK' and chunk == (1000, b'')
    router.send_addr_msg(address, 'DONE')
    thread.join(30)
    assert not thread.is_alive()
