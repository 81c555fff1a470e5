"""piw-import: imports wheels built elsewhere into the farm, as one build.

The package, version and ABI come from the first wheel's filename unless
given; when given, every wheel must agree with them. The master (MrChase)
checks the build, asks for each file in turn, which is sent to FileJuggler
like a slave sends its wheels and verified there, and records the build
once every file has arrived. ``--delete`` removes the files only after the
master said DONE; on any failure nothing is deleted and the exit code is
not zero.
"""

import os
import re
import zipfile
from datetime import timedelta

from .. import protocols, transport
from ..admin import AdminCommand
from ..exc import ConfigError, MasterError
from ..master.output import canonicalize, wheel_version_tag
from ..protocols import BuildRecord, BuiltFile
from ..slave.builder import Wheel
from ..terminal import duration

#: transfer ids of imports start here, above any slave's id (the process id
#: is added, so two imports at once don't collide)
IMPORT_ID_BASE = 1 << 40


def open_wheel(path):
    """Return the :class:`~piwheels.slave.builder.Wheel` at *path*.

    :raises ConfigError: if *path* is missing or is not a wheel (its name,
        or its content: a zip with ``.dist-info/WHEEL`` and ``METADATA``).
    """
    if not os.path.isfile(path):
        raise ConfigError('{}: no such file'.format(path))
    try:
        wheel = Wheel(path)
    except ValueError as exc:
        raise ConfigError('{}: not a wheel ({})'.format(path, exc)) from None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        raise ConfigError('{}: not a wheel (not a zip archive)'.format(
            path)) from None
    for part in ('WHEEL', 'METADATA'):
        if not any(re.fullmatch(r'[^/]+\.dist-info/' + part, name)
                   for name in names):
            raise ConfigError('{}: not a wheel (no .dist-info/{})'.format(
                path, part))
    return wheel


class PiWheelsImporter(AdminCommand):
    """The piw-import command."""

    section = 'import'
    description = (
        'Import wheels built elsewhere into the piwheels database and '
        'web output, as one build; run it on the master.')

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument(
            'files', metavar='FILE', nargs='+',
            help='the wheels to import (all of them make one build)')
        parser.add_argument(
            '--package', default=None,
            help='the package of the build (default: from the first file)')
        parser.add_argument(
            '--package-version', metavar='VERSION', default=None,
            help='the version of the build (default: from the first file)')
        parser.add_argument(
            '--abi', default=None,
            help='the ABI of the build (default: from the first file; the '
            'master\'s lowest build ABI for "none" and "abi3" wheels)')
        parser.add_argument(
            '--duration', type=duration, default=timedelta(0),
            help='how long the build took')
        parser.add_argument(
            '--output', metavar='FILE', default=None,
            help='a file with the build\'s log (default: a line saying '
            'the build was imported)')
        parser.add_argument(
            '-d', '--delete', action='store_true', default=False,
            help='remove the files once the import succeeded (never when it '
            'failed)')
        parser.add_argument(
            '--file-queue', metavar='ADDR', default='tcp://localhost:5556',
            help='the address of the master\'s file queue')
        return parser

    def run(self, config):
        wheels = [open_wheel(path) for path in config.files]
        names = [wheel.filename for wheel in wheels]
        if len(set(names)) != len(names):
            raise ConfigError('the same wheel is given twice')
        record = self.build_record(config, wheels)
        self.logger.info(
            'Importing %s %s for ABI %s: %s', record.package, record.version,
            record.abi_tag or '(the master\'s default)', ', '.join(names))
        if not self.confirm(config, 'Import {} file{} as a build of {} '
                            '{}?'.format(len(wheels), 's' if len(wheels) > 1
                                         else '', record.package,
                                         record.version)):
            self.logger.warning('Nothing imported')
            return 1
        with self.connect(config) as master:
            self.import_build(config, master, record, wheels)
        self.logger.info('Imported %s %s', record.package, record.version)
        if config.delete:
            for wheel in wheels:
                os.unlink(wheel.path)
                self.logger.info('Deleted %s', wheel.path)
        return 0

    def build_record(self, config, wheels):
        """Return the IMPORT message's :class:`BuildRecord` for *wheels*."""
        first = wheels[0]
        package = config.package or first.package_tag
        version = config.package_version or first.package_version_tag
        abi = config.abi
        if abi is None and first.abi_tag not in ('none', 'abi3'):
            abi = first.abi_tag
        for wheel in wheels:
            if config.package and (canonicalize(wheel.package_tag)
                                   != canonicalize(config.package)):
                raise ConfigError('{} is not a wheel of {}'.format(
                    wheel.filename, config.package))
            if config.package_version and (
                    wheel.package_version_tag.lower()
                    != wheel_version_tag(config.package_version).lower()):
                raise ConfigError('{} is not a wheel of version {}'.format(
                    wheel.filename, config.package_version))
            if abi is not None and wheel.abi_tag not in (abi, 'none', 'abi3'):
                raise ConfigError('{} is not a wheel for ABI {}'.format(
                    wheel.filename, abi))
        if config.output:
            try:
                with open(config.output, encoding='utf-8',
                          errors='replace') as f:
                    output = f.read()[-protocols.MAX_BUILD_OUTPUT:]
            except OSError as exc:
                raise ConfigError('unable to read {}: {}'.format(
                    config.output, exc.strerror)) from None
        else:
            output = 'Imported manually by piw-import: {}\n'.format(
                ', '.join(wheel.filename for wheel in wheels))
        return BuildRecord(
            IMPORT_ID_BASE + os.getpid(), package, version, abi, True,
            config.duration, output,
            [BuiltFile(*wheel.as_file_state()) for wheel in wheels], '')

    def import_build(self, config, master, record, wheels):
        """Send IMPORT, then each file the master asks for, until DONE.

        :raises MasterError: if the master refuses the build or a file.
        """
        by_name = {wheel.filename: wheel for wheel in wheels}
        files = transport.Context.instance().socket(
            transport.DEALER,
            protocol=protocols.file_juggler_files.reversed())
        files.connect(config.file_queue)
        try:
            msg, data = master.request('IMPORT', record)
            while msg == 'SEND':
                wheel = by_name.get(data)
                if wheel is None:
                    raise MasterError('the master asked for {}, which is not '
                                      'being imported'.format(data))
                self.logger.info('Sending %s', wheel.filename)
                wheel.transfer(files, record.slave_id, timeout=config.timeout)
                msg, data = master.request('SENT')
        finally:
            files.close(linger=0)


main = PiWheelsImporter()
