"""piw-rebuild: asks the master to write parts of the web site again.

``home`` is the home page, ``search`` the search index, ``project`` a
package's project page (and JSON), ``both`` its simple index too. Without a
package, ``project`` and ``both`` apply to every package: a long rewrite,
which is asked for once (it goes on in the background, and resumes when
the master restarts); the tool then shows its progress until it ends,
unless told not to wait.
"""

import time

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
        parser.add_argument(
            '--no-wait', dest='wait', action='store_false', default=True,
            help='when every package\'s pages are asked for, return at '
            'once rather than show the progress until they are written')
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
            self.logger.info(
                'Asked for %s%s to be written again', config.part,
                ' of ' + config.package if config.package else '')
            if (part in ('PROJECT', 'BOTH') and config.package is None
                    and config.wait):
                self.show_progress(master)
        return 0

    def show_progress(self, master, interval=1):
        """Report how far the rewrite of every package has got, until it
        ends (Ctrl+C stops watching; the rewrite goes on)."""
        shown = None
        try:
            while True:
                msg, progress = master.request('PROGRESS')
                if not progress.running:
                    self.logger.info('Done: the pages of %d packages '
                                     'written', progress.total)
                    return
                if (progress.done, progress.total) != shown:
                    shown = (progress.done, progress.total)
                    self.logger.info(
                        'Written %d of %d packages (%d%%)', progress.done,
                        progress.total,
                        100 * progress.done // max(1, progress.total))
                time.sleep(interval)
        except KeyboardInterrupt:
            self.logger.warning('Stopped watching; the rewrite goes on in '
                                'the background')


main = PiWheelsRebuild()
