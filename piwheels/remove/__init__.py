"""piw-remove: removes a package or a version from the farm, or only its builds.

By default the package (or version) goes entirely: its builds, its files,
its pages and its rows. With ``--builds`` only its builds and files go (it
is built again); with ``--skip REASON`` its builds and files go and it
stays, marked never to be built again.
"""

from ..admin import AdminCommand
from ..protocols import RemovePackage, RemoveVersion


class PiWheelsRemove(AdminCommand):
    """The piw-remove command."""

    section = 'remove'
    description = (
        'Remove a package or a version, or only its builds and files, from '
        'piwheels; run it on the master.')

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument('package', help='the package to remove')
        parser.add_argument(
            'version', nargs='?', default=None,
            help='the version to remove (default: the whole package)')
        what = parser.add_mutually_exclusive_group()
        what.add_argument(
            '-s', '--skip', metavar='REASON', default='',
            help='leave the package (or version) in place, marked with this '
            'reason never to be built again; its builds and files go')
        what.add_argument(
            '-b', '--builds', action='store_true', default=False,
            help='remove only the builds and files; they will be built '
            'again')
        return parser

    def run(self, config):
        config.skip = config.skip.strip()
        target = config.package + (
            ' ' + config.version if config.version else '')
        if config.builds:
            question = 'Remove every build and file of {}?'.format(target)
        elif config.skip:
            question = ('Remove every build and file of {} and never build '
                        'it again?'.format(target))
        elif config.version:
            question = 'Remove {} with its builds and files?'.format(target)
        else:
            question = ('Remove package {} with all its versions, builds '
                        'and files?'.format(target))
        if not self.confirm(config, question):
            self.logger.warning('Nothing removed')
            return 1
        if config.version is None:
            request = ('REMPKG', RemovePackage(
                config.package, config.builds, config.skip))
        else:
            request = ('REMVER', RemoveVersion(
                config.package, config.version, config.builds, config.skip))
        with self.connect(config) as master:
            master.request(*request)
        self.logger.info('Removed %s%s', 'the builds of ' if config.builds
                         or config.skip else '', target)
        return 0


main = PiWheelsRemove()
