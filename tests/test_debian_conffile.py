"""The /etc/piwheels.conf the Debian packages install (debian/piwheels.conf):
every setting it shows is a real option of its command, and every commented
value is that command's built-in default, so uncommenting a line changes
nothing until it is edited."""

import configparser
import importlib
import os
import re

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CONFFILE = os.path.join(os.path.dirname(HERE), 'debian', 'piwheels.conf')

#: the module of each section's command (setup.py's console scripts)
COMMAND_MODULES = {
    'master': 'piwheels.master',
    'slave': 'piwheels.slave',
    'monitor': 'piwheels.monitor.tui',
    'sense': 'piwheels.monitor.sense',
    'initdb': 'piwheels.initdb',
    'import': 'piwheels.importer',
    'add': 'piwheels.add',
    'remove': 'piwheels.remove',
    'rebuild': 'piwheels.rebuild',
    'logger': 'piwheels.logger',
}

COMMENTED_SETTING = re.compile(r'^#([a-z][a-z0-9-]*) = (.*)$')


def read_conffile():
    """Return ``{section: ([(key, value) set], [(key, value) commented])}``."""
    sections = {}
    current = None
    with open(CONFFILE, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            header = re.match(r'^\[(\w+)\]$', line)
            if header:
                current = sections.setdefault(header.group(1), ([], []))
                continue
            commented = COMMENTED_SETTING.match(line)
            if commented and current is not None:
                current[1].append(commented.groups())
            elif line and not line.startswith('#') and current is not None:
                key, _, value = line.partition('=')
                current[0].append((key.strip(), value.strip()))
    return sections


def test_conffile_has_a_section_per_command():
    assert set(read_conffile()) == set(COMMAND_MODULES)


def test_conffile_parses_as_ini():
    parser = configparser.ConfigParser(interpolation=None)
    assert parser.read(CONFFILE, encoding='utf-8') == [CONFFILE]


def read_setting(command, path, section, key, value):
    """Return ``(dest, value)``: *key* = *value* in *section*, read and
    converted as the command reads its configuration file."""
    path.write_text('[{}]\n{} = {}\n'.format(section, key, value))
    parser = command.configure_parser()
    # raises ConfigError when key is not an option of the command
    (dest, converted), = command._read_config(parser, str(path)).items()
    return parser, dest, converted


@pytest.mark.parametrize('section', sorted(COMMAND_MODULES))
def test_conffile_settings_are_options_with_their_defaults(section, tmp_path):
    command = importlib.import_module(COMMAND_MODULES[section]).main
    settings, commented = read_conffile()[section]
    path = tmp_path / 'piwheels.conf'
    for key, value in settings:
        read_setting(command, path, section, key, value)
    for key, value in commented:
        parser, dest, converted = read_setting(command, path, section, key, value)
        assert converted == default(parser, dest), key


def default(parser, dest):
    """The value *dest* takes when neither the file nor the command line
    sets it (argparse converts string defaults with the option's type)."""
    value = parser.get_default(dest)
    action, = [action for action in parser._actions if action.dest == dest]
    if isinstance(value, str) and action.type is not None:
        value = action.type(value)
    return value
