import logging
from datetime import timedelta

import pytest

from piwheels.exc import ConfigError, PiwheelsError
from piwheels.terminal import Command, duration


class Echo(Command):
    section = 'echo'
    description = 'a test command'

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument('-o', '--output-path', default='/tmp/out')
        parser.add_argument('-t', '--timeout', type=duration, default='3h')
        parser.add_argument('--dev-mode', action='store_true')
        return parser

    def run(self, config):
        self.seen = config
        if config.output_path == 'fail':
            raise PiwheelsError('it went wrong')
        return 0


def write(tmp_path, text):
    path = tmp_path / 'piwheels.conf'
    path.write_text(text)
    return str(path)


def test_duration_parses_units():
    assert duration('3h') == timedelta(hours=3)
    assert duration('1h30m') == timedelta(minutes=90)
    assert duration('45') == timedelta(seconds=45)


def test_duration_rejects_garbage():
    with pytest.raises(Exception):
        duration('3 fortnights')


def test_command_defaults_without_file(tmp_path):
    cmd = Echo()
    assert cmd(['-c', write(tmp_path, '')]) == 0
    assert cmd.seen.output_path == '/tmp/out'
    assert cmd.seen.timeout == timedelta(hours=3)
    assert cmd.seen.verbosity == logging.INFO


def test_command_file_sets_options(tmp_path):
    conf = write(tmp_path, '[echo]\noutput-path = /srv\ntimeout = 2m\ndev_mode = yes\n')
    cmd = Echo()
    assert cmd(['-c', conf]) == 0
    assert cmd.seen.output_path == '/srv'
    assert cmd.seen.timeout == timedelta(minutes=2)
    assert cmd.seen.dev_mode is True


def test_command_line_overrides_file(tmp_path):
    conf = write(tmp_path, '[echo]\noutput-path = /srv\n')
    cmd = Echo()
    assert cmd(['-c', conf, '-o', '/var/www']) == 0
    assert cmd.seen.output_path == '/var/www'


def test_command_other_sections_ignored(tmp_path):
    conf = write(tmp_path, '[master]\nwhatever = 1\n[echo]\n')
    assert Echo()(['-c', conf]) == 0


def test_command_unknown_key_is_one_line_error(tmp_path, capsys):
    conf = write(tmp_path, '[echo]\nbogus = 1\n')
    assert Echo()(['-c', conf]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert err.count('\n') == 1
    assert "unknown option 'bogus'" in err


def test_command_bad_value_in_file(tmp_path, capsys):
    conf = write(tmp_path, '[echo]\ntimeout = soon\n')
    assert Echo()(['-c', conf]) == 2
    assert 'timeout in [echo]' in capsys.readouterr().err


def test_command_missing_explicit_file(tmp_path, capsys):
    assert Echo()(['-c', str(tmp_path / 'nope.conf')]) == 2
    assert 'not found' in capsys.readouterr().err


def test_command_wrong_option(tmp_path, capsys):
    assert Echo()(['-c', write(tmp_path, ''), '--frobnicate']) == 2
    err = capsys.readouterr().err
    assert 'unrecognized arguments: --frobnicate' in err


def test_command_error_becomes_exit_code(tmp_path, capsys):
    assert Echo()(['-c', write(tmp_path, ''), '-o', 'fail']) == 1
    assert capsys.readouterr().err == 'piw-echo: error: it went wrong\n'


def test_command_version(capsys):
    assert Echo()(['--version']) == 0
    from piwheels import __version__
    assert capsys.readouterr().out.strip() == __version__


def test_command_log_file(tmp_path):
    log = tmp_path / 'log.txt'
    cmd = Echo()
    assert cmd(['-c', write(tmp_path, ''), '-l', str(log)]) == 0
    cmd.logger.debug('hello from the test')
    assert 'hello from the test' in log.read_text()
