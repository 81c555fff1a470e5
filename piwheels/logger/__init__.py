"""piw-logger: reads the web server's access log and sends its download statistics to the master.

It reads Apache's access log as a piped log on stdin (Apache's
``CustomLog "|piw-logger --drop" combined``), from log files (plain or
gzip), or by following a log file as it grows (``--follow``, surviving
rotation), in any Apache LogFormat (:mod:`piwheels.logger.formats`). Each
hit is classified (:mod:`piwheels.logger.classify`) as a wheel download, a
pip search, a project page, a project JSON fetch or another page, and
sent in batches to the master's Lumberjack over ``--log-queue``
(:mod:`piwheels.logger.sender`), which writes them to the database.

Lines that cannot be read (cut short, binary junk, not in the format) are
counted and skipped; hits that are not statistics (errors, static files,
odd paths) are counted as ignored. A summary is logged at the end.
"""

import signal
import sys

from .. import __version__, protocols, transport
from ..exc import ConfigError
from ..terminal import Command
from .classify import Classifier
from .formats import FORMATS, LogParser
from .sender import ACTIONS, CREDIT, Sender
from .sources import (
    MAX_LINE, FileSource, FollowSource, LineSplitter, PipeSource,
)

#: the words the summary uses for each action's records
KINDS = {
    'LOGDOWNLOAD': 'downloads',
    'LOGSEARCH': 'searches',
    'LOGPROJECT': 'project pages',
    'LOGJSON': 'project JSON',
    'LOGPAGE': 'other pages',
}


def sig_term(signo, stack_frame):
    """Handler for SIGTERM: end like at the end of the input (the records
    read are sent, or dropped with --drop)."""
    raise SystemExit(0)


class PiWheelsLogger(Command):
    """The piw-logger command: Apache access logs to the master."""

    section = 'logger'
    description = (
        'Load web server access logs into the piwheels database: as '
        'Apache\'s piped log script (CustomLog "|piw-logger --drop" '
        'combined), from log files, or following a log file.')

    def __init__(self):
        super().__init__()
        #: lines read
        self.lines = 0
        #: lines that could not be read as the format says
        self.bad = 0
        #: hits read but not recorded (errors, static files, odd paths)
        self.ignored = 0

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument(
            'files', nargs='*', metavar='FILE', default=[],
            help='the log files to load, plain or gzip; "-" or none reads '
            'stdin, as a piped log does')
        parser.add_argument(
            '--format', default='combined',
            help='the Apache LogFormat of the lines: {} or a format string '
            'such as \'%%h %%l %%u %%t "%%r" %%>s %%b\''.format(
                ', '.join(FORMATS)))
        parser.add_argument(
            '--log-queue', metavar='ADDR', default='ipc:///tmp/piw-logger',
            help='the address of the master\'s queue for log records; this '
            'should always be an ipc address')
        parser.add_argument(
            '--drop', action='store_true', default=False,
            help='drop records the master does not take within a short '
            'time instead of waiting for it; give this when Apache pipes '
            'its log to piw-logger, so Apache never waits')
        parser.add_argument(
            '--follow', action='store_true', default=False,
            help='follow the one FILE as the web server writes it (from its '
            'end, carrying on through log rotation) instead of reading it '
            'once; the web server then never depends on piw-logger')
        return parser

    def parse_args(self, args=None):
        config = super().parse_args(args)
        if config.follow and (len(config.files) != 1
                              or config.files[0] == '-'):
            raise ConfigError('--follow needs exactly one log file')
        return config

    def run(self, config):
        self.lines = self.bad = self.ignored = 0
        parser = LogParser(config.format)
        sources = self.open_sources(config)
        ctx = transport.Context()
        # every batch is answered before piw-logger ends (or given up), so
        # nothing is left for the socket to deliver on close
        queue = ctx.socket(
            transport.DEALER, protocol=protocols.lumberjack.reversed(),
            logger=self.logger, linger=0)
        queue.hwm = CREDIT
        sender = Sender(queue, config.drop)
        previous = signal.signal(signal.SIGTERM, sig_term)
        try:
            queue.connect(config.log_queue)
            classifier = Classifier()
            for source in sources:
                self.consume(source, parser, classifier, sender)
        finally:
            signal.signal(signal.SIGTERM, previous)
            try:
                sender.close()
            finally:
                for source in sources:
                    source.close()
                queue.close()
                ctx.term()
                self.report(sender)
        return 0

    def open_sources(self, config):
        """Return the sources to read, in order (every file is opened
        first, so a missing one stops piw-logger before it sends
        anything)."""
        if config.follow:
            return [FollowSource(config.files[0])]
        if not config.files:
            return [PipeSource(sys.stdin.buffer.fileno())]
        sources = []
        try:
            for name in config.files:
                sources.append(PipeSource(sys.stdin.buffer.fileno())
                               if name == '-' else FileSource(name))
        except ConfigError:
            for source in sources:
                source.close()
            raise
        return sources

    def consume(self, source, parser, classifier, sender):
        """Read *source* to its end, sending its records as they come."""
        splitter = LineSplitter()
        while True:
            chunk = source.read(sender.wait_time())
            if chunk is None:
                break
            if chunk:
                self.process(splitter.feed(chunk), parser, classifier,
                             sender)
            sender.service()
        last = splitter.finish()
        if last is not None:
            self.process([last], parser, classifier, sender)
        self.lines += splitter.too_long
        self.bad += splitter.too_long

    def process(self, lines, parser, classifier, sender):
        """Parse, classify and queue each of *lines* (bytes)."""
        parse = parser.parse
        classify = classifier.classify
        add = sender.add
        bad = ignored = 0
        for raw in lines:
            if len(raw) > MAX_LINE:
                bad += 1
                continue
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError:
                line = raw.decode('utf-8', 'replace')
            if line[-1:] == '\r':
                line = line[:-1]
            entry = parse(line) if '\x00' not in line else None
            if entry is None:
                bad += 1
                continue
            hit = classify(entry)
            if hit is None:
                ignored += 1
            else:
                add(*hit)
        self.lines += len(lines)
        self.bad += bad
        self.ignored += ignored

    def report(self, sender):
        """Log what was read, written, ignored, lost and dropped."""
        self.logger.info(
            'piw-logger %s: %d lines: %s written; %d ignored, %d '
            'unreadable; %d refused by the database, %d dropped, %d '
            'unconfirmed', __version__, self.lines, ', '.join(
                '{} {}'.format(sender.written[action], KINDS[action])
                for action in ACTIONS), self.ignored, self.bad,
            sender.lost, sender.dropped, sender.unconfirmed)


main = PiWheelsLogger()
