"""piw-add: adds packages and versions to the farm by hand, or changes them.

With a package only, it adds the package (or changes its description,
skip reason and aliases); with a version too, it adds the version (and its
package, if new) or changes its skip reason and yanked state. A release
time can be given to a new version only.
"""

from datetime import datetime, timezone

from ..admin import AdminCommand
from ..exc import ConfigError
from ..protocols import ImportPackage, ImportVersion


def timestamp(text):
    """Parse an ISO 8601 *text* (``2024-05-01`` or ``2024-05-01T12:00:00``,
    UTC unless it says otherwise) into an aware datetime; an argparse
    ``type``."""
    try:
        value = datetime.fromisoformat(text.strip().replace('Z', '+00:00'))
    except ValueError:
        raise ValueError('invalid timestamp {!r} (use e.g. 2024-05-01T12:00)'
                         .format(text)) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


class PiWheelsAdd(AdminCommand):
    """The piw-add command."""

    section = 'add'
    description = (
        'Add a package or a version to the piwheels database by hand, or '
        'change its description, skip reason, aliases or yanked state; run '
        'it on the master.')

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument('package', help='the package to add or change')
        parser.add_argument(
            'version', nargs='?', default=None,
            help='the version to add or change (default: the package only)')
        parser.add_argument(
            '-d', '--description', default=None,
            help='the package\'s one-line description')
        parser.add_argument(
            '-a', '--alias', dest='aliases', metavar='NAME', action='append',
            default=[], help='another name the package is known by (may be '
            'repeated)')
        skip = parser.add_mutually_exclusive_group()
        skip.add_argument(
            '-s', '--skip', metavar='REASON', default=None,
            help='never build the package (or version), for this reason')
        skip.add_argument(
            '--unskip', action='store_true', default=False,
            help='build the package (or version) again')
        parser.add_argument(
            '-r', '--released', metavar='TIMESTAMP', type=timestamp,
            default=None,
            help='the release time of a new version, ISO 8601 in UTC '
            '(default: now)')
        yank = parser.add_mutually_exclusive_group()
        yank.add_argument(
            '--yank', dest='yanked', action='store_const', const=True,
            default=None, help='mark the version as yanked')
        yank.add_argument(
            '--unyank', dest='yanked', action='store_const', const=False,
            help='mark the version as not yanked')
        return parser

    def run(self, config):
        skip = '' if config.unskip else config.skip
        if config.version is None and (
                config.released is not None or config.yanked is not None):
            raise ConfigError('--released, --yank and --unyank need a '
                              'version')
        requests = []
        if config.version is None or config.description is not None or (
                config.aliases):
            requests.append(('ADDPKG', ImportPackage(
                config.package, config.description,
                skip if config.version is None else None, config.aliases)))
        if config.version is not None:
            requests.append(('ADDVER', ImportVersion(
                config.package, config.version, config.released, skip,
                config.yanked)))
        with self.connect(config) as master:
            for msg, data in requests:
                master.request(msg, data)
        self.logger.info('Done: %s%s', config.package,
                         ' ' + config.version if config.version else '')
        return 0


main = PiWheelsAdd()
