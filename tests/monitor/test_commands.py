"""piw-monitor and piw-sense as commands: what a wrong start says."""

import importlib.util
import os
import subprocess

import pytest

from .tmux import command_line


def run(module, *args):
    result = subprocess.run(
        command_line(module, '-c', os.devnull, *args),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    return result.returncode, result.stdout


def test_monitor_needs_a_terminal():
    code, out = run('piwheels.monitor.tui')
    assert code == 2
    assert out.strip() == 'piw-monitor: error: piw-monitor must be run in ' \
        'a terminal'


def test_monitor_bad_option_is_one_line_error():
    code, out = run('piwheels.monitor.tui', '--status-queue')
    assert code == 2
    assert out.strip().startswith('piw-monitor: error: argument '
                                  '--status-queue')
    assert len(out.strip().splitlines()) == 1


def test_sense_rotation_must_be_a_right_angle():
    code, out = run('piwheels.monitor.sense', '--rotate', '45')
    assert code == 2
    assert out.strip() == "piw-sense: error: argument -r/--rotate: " \
        "invalid rotation value: '45'"


@pytest.mark.skipif(importlib.util.find_spec('sense_hat') is not None,
                    reason='sense-hat is installed here')
def test_sense_without_the_sense_hat_library():
    code, out = run('piwheels.monitor.sense')
    assert code == 2
    assert out.strip() == 'piw-sense: error: the sense-hat package is not ' \
        'installed'
