"""piw-rebuild: asks the master to write parts of the web site again.

``home`` is the home page, ``search`` the search index, ``project`` a
package's project page (and JSON), ``both`` its simple index too. Without a
package, ``project`` and ``both`` apply to every package: a long rewrite,
which is asked for once (it goes on in the background, and resumes when
the master restarts).
"""

from ..admin import AdminCommand
from ..exc import ConfigError
from ..protocols import Rebuild

#: the parts of the site, as the command line names them
PARTS = {
    'home': 'HOME',
    'search': 'SEARCH',
    'project': 'PROJECT',
    'both': 'BOTH',
    'index': 'BOTH',   # the name piwheels 0.18 gave "both"
}


class PiWheelsRebuild(AdminCommand):
    """The piw-rebuild command."""

    section = 'rebuild'
    description = (
        'Ask the master to write parts of the piwheels web site again; run '
        'it on the master.')

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument(
            'part', choices=sorted(PARTS),
            help='what to write: the home page, the search index, the '
            'project page (and JSON) of a package, or both its project page '
            'and simple index ("index" is another name for "both")')
        parser.add_argument(
            'package', nargs='?', default=None,
            help='the package whose pages to write (default: every package, '
            'for project and both)')
        return parser

    def run(self, config):
        part = PARTS[config.part]
        if part in ('HOME', 'SEARCH') and config.package is not None:
            raise ConfigError('{} takes no package'.format(config.part))
        if part in ('PROJECT', 'BOTH') and config.package is None:
            if not self.confirm(
                    config, 'Write the {} of every package again? This can '
                    'take hours on a large farm.'.format(
                        'project pages' if part == 'PROJECT'
                        else 'project pages and simple indexes')):
                self.logger.warning('Nothing asked for')
                return 1
        with self.connect(config) as master:
            master.request('REBUILD', Rebuild(part, config.package))
        self.logger.info('Asked for %s%s to be written again', config.part,
                         ' of ' + config.package if config.package else '')
        return 0


main = PiWheelsRebuild()
