"""The command-line frame shared by every piw-* command: options, configuration file, logging, errors.

Each command is a subclass of :class:`Command` with a ``section`` (its part
of the INI configuration file), a ``configure_parser`` that adds its own
options, and a ``run(config)`` that does the work and returns an exit code.
The module-level ``main = TheCommand()`` of each command package is the
console script entry point.

Configuration is layered: built-in defaults, then the command's section of
the configuration file (``-c FILE``, default :data:`DEFAULT_CONFIG`), then
the command line. Keys in the file are option names with dashes or
underscores (``output-path = /var/www``); boolean flags take
yes/no/true/false/on/off/1/0.
"""

import abc
import argparse
import configparser
import logging
import re
import sys
from datetime import timedelta

from . import __version__
from .exc import ConfigError, PiwheelsError

DEFAULT_CONFIG = '/etc/piwheels.conf'

_BOOLEANS = {
    '1': True, 'yes': True, 'true': True, 'on': True,
    '0': False, 'no': False, 'false': False, 'off': False,
}

_DURATION_UNITS = {
    'w': timedelta(weeks=1), 'd': timedelta(days=1), 'h': timedelta(hours=1),
    'm': timedelta(minutes=1), 's': timedelta(seconds=1),
}


def duration(text):
    """Parse *text* like ``3h``, ``1h30m``, ``90s`` or ``45`` (seconds) into a
    :class:`~datetime.timedelta`; an argparse ``type``."""
    text = text.strip().lower()
    if re.fullmatch(r'\d+(\.\d+)?', text):
        return timedelta(seconds=float(text))
    parts = re.findall(r'(\d+(?:\.\d+)?)\s*([wdhms])', text)
    if not parts or re.sub(r'(\d+(?:\.\d+)?)\s*([wdhms])', '', text).strip():
        raise argparse.ArgumentTypeError(
            'invalid duration {!r} (use e.g. 3h, 1h30m, 90s)'.format(text))
    return sum((float(n) * _DURATION_UNITS[unit] for n, unit in parts),
               timedelta(0))


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises :exc:`ConfigError` instead of exiting."""

    def error(self, message):
        raise ConfigError(message)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show the default of each option that takes a value, unless there is
    none or its help already says it."""

    def _get_help_string(self, action):
        if (action.nargs == 0 or action.default is None
                or '(default:' in (action.help or '')):
            return action.help
        return super()._get_help_string(action)


class Command(abc.ABC):
    """Base of every piw-* command.

    Subclasses set :attr:`section` and :attr:`description`, override
    :meth:`configure_parser` to add options (calling ``super()``), and
    :meth:`run` to do the work.
    """

    #: the section of the configuration file this command reads
    section = None
    #: one line saying what the command does (shown by ``--help``)
    description = None

    def __init__(self):
        self.logger = logging.getLogger(
            'piwheels.{}'.format(self.section or 'command'))

    @property
    def prog(self):
        return 'piw-{}'.format(self.section)

    def configure_parser(self):
        """Return the command's :class:`argparse.ArgumentParser` with the
        common options; subclasses extend the returned parser."""
        parser = _Parser(
            prog=self.prog, description=self.description,
            formatter_class=_HelpFormatter)
        parser.add_argument(
            '--version', action='version', version=__version__)
        parser.add_argument(
            '-c', '--configuration', metavar='FILE', default=None,
            help='the configuration file to load (default: {})'.format(
                DEFAULT_CONFIG))
        parser.add_argument(
            '-q', '--quiet', dest='verbosity', action='store_const',
            const=logging.WARNING, default=logging.INFO,
            help='produce less console output')
        parser.add_argument(
            '-v', '--verbose', dest='verbosity', action='store_const',
            const=logging.DEBUG, help='produce more console output')
        parser.add_argument(
            '-l', '--log-file', metavar='FILE', default=None,
            help='log messages to the specified file')
        return parser

    def parse_args(self, args=None):
        """Parse *args* (default: ``sys.argv[1:]``) over the configuration
        file's section and return the resulting namespace."""
        if args is None:
            args = sys.argv[1:]
        parser = self.configure_parser()
        config_file = self._config_file(args)
        parser.set_defaults(**self._read_config(parser, config_file))
        config = parser.parse_args(args)
        config.configuration = config_file
        return config

    @staticmethod
    def _config_file(args):
        finder = _Parser(add_help=False)
        finder.add_argument('-c', '--configuration', default=None)
        known, _ = finder.parse_known_args(args)
        return known.configuration

    def _read_config(self, parser, config_file):
        """Return the defaults the configuration file sets for this command."""
        explicit = config_file is not None
        path = config_file if explicit else DEFAULT_CONFIG
        reader = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding='utf-8') as f:
                reader.read_file(f)
        except FileNotFoundError:
            if explicit:
                raise ConfigError(
                    'configuration file {} not found'.format(path)) from None
            return {}
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ConfigError('unable to read configuration file {}: {}'.format(
                path, str(exc).splitlines()[0])) from exc
        if not reader.has_section(self.section):
            return {}
        actions = {
            action.dest: action for action in parser._actions
            if action.dest not in ('help', 'version', 'configuration')
        }
        for action in parser._actions:
            for opt in action.option_strings:
                if opt.startswith('--'):
                    actions.setdefault(opt[2:].replace('-', '_'), action)
        defaults = {}
        for key, value in reader.items(self.section):
            action = actions.get(key.replace('-', '_'))
            if action is None:
                raise ConfigError(
                    'unknown option {!r} in section [{}] of {}'.format(
                        key, self.section, path))
            defaults[action.dest] = self._config_value(action, key, value, path)
        return defaults

    def _config_value(self, action, key, value, path):
        if action.nargs == 0:
            # a flag: store_true / store_false / store_const
            try:
                on = _BOOLEANS[value.strip().lower()]
            except KeyError:
                raise ConfigError(
                    '{} in [{}] of {} must be yes or no, not {!r}'.format(
                        key, self.section, path, value)) from None
            return action.const if on else action.default
        if action.nargs in ('*', '+') or isinstance(action, argparse._AppendAction):
            items = value.split()
            if action.type is not None:
                items = [self._convert(action, key, item, path) for item in items]
            return items
        # argparse converts string defaults through action.type itself, but
        # only when the option is absent from the command line; convert here
        # so a bad value is reported against the file, not later
        return self._convert(action, key, value, path)

    def _convert(self, action, key, value, path):
        if action.type is None:
            return value
        try:
            return action.type(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise ConfigError('{} in [{}] of {}: {}'.format(
                key, self.section, path, exc)) from None

    @staticmethod
    def configure_logging(config):
        """Send log messages to stderr at the chosen verbosity, and all of
        them to ``--log-file`` when given."""
        root = logging.getLogger()
        # only as verbose as some handler wants: a DEBUG message nobody
        # writes would still cost a log record (the master's queues log
        # every message at DEBUG)
        root.setLevel(logging.DEBUG if config.log_file else config.verbosity)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(config.verbosity)
        console.setFormatter(logging.Formatter('%(message)s'))
        root.addHandler(console)
        if config.log_file:
            try:
                to_file = logging.FileHandler(config.log_file)
            except OSError as exc:
                raise ConfigError('unable to open log file {}: {}'.format(
                    config.log_file, exc.strerror)) from exc
            to_file.setFormatter(logging.Formatter(
                '%(asctime)s %(name)s %(levelname)s: %(message)s'))
            root.addHandler(to_file)

    @abc.abstractmethod
    def run(self, config):
        """Do the command's work with the parsed *config*; return the exit
        code."""

    def __call__(self, args=None):
        """Entry point: parse, configure logging, run; turn errors into a
        one-line message and an exit code."""
        try:
            config = self.parse_args(args)
            self.configure_logging(config)
            return self.run(config) or 0
        except PiwheelsError as exc:
            print('{}: error: {}'.format(self.prog, exc), file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print('{}: interrupted'.format(self.prog), file=sys.stderr)
            return 130
        except SystemExit as exc:
            # argparse's --help and --version
            return exc.code or 0
