"""piw-initdb: creates or upgrades the piwheels database, and manages the ABIs it builds for.

The database must already exist and the DSN must connect as a cluster
superuser; the master's ordinary role (``--user``) must exist and must not be
one. Everything happens in one transaction, after a confirmation prompt
(unless ``--yes``): on any error the database is left exactly as it was.

The scripts live in ``sql/``: ``create_piwheels.sql`` builds the current
schema from nothing and each ``update_piwheels_X_to_Y.sql`` takes version X
to version Y; :func:`get_script` chains them. In the scripts, ``{username}``
stands for the ordinary role.
"""

import re
import sys
from pathlib import Path

import psycopg2
from sqlalchemy import create_engine, exc as sa_exc, text
from sqlalchemy.pool import NullPool

from .. import __version__, terminal
from ..exc import ConfigError, DatabaseError
from ..master.db import normalize_dsn, safe_dsn

#: what a build ABI tag may look like
ABI_PATTERN = re.compile(r'[a-z][a-z0-9_]*')


def script_dir():
    """Return the directory holding the SQL scripts: ``piwheels/sql`` when
    installed, the source tree's ``sql/`` when running from a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / 'sql', package.parent / 'sql'):
        if (candidate / 'create_piwheels.sql').is_file():
            return candidate
    raise DatabaseError('the SQL scripts of piwheels are missing')


def parse_version(version):
    """Return *version* (``'0.1.0'``) as a tuple of integers for ordering."""
    try:
        return tuple(int(part) for part in version.split('.'))
    except ValueError:
        raise DatabaseError(
            'unrecognized database version {!r}'.format(version)) from None


def current_version():
    """Return the schema version this software creates: its own version."""
    return __version__


def get_connection(dsn):
    """Return an SQLAlchemy connection to *dsn*, or raise
    :exc:`~piwheels.exc.DatabaseError` saying why there is none (the database
    must exist; piw-initdb does not create it)."""
    engine = create_engine(normalize_dsn(dsn), future=True, poolclass=NullPool)
    try:
        return engine.connect()
    except sa_exc.OperationalError as exc:
        message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if 'does not exist' in message and 'database' in message:
            raise DatabaseError(
                '{}; create it first (createdb) and run piw-initdb again'.format(
                    message)) from None
        raise DatabaseError('unable to connect to {}: {}'.format(
            safe_dsn(dsn), message)) from None
    except sa_exc.ArgumentError as exc:
        raise DatabaseError('invalid DSN {}: {}'.format(safe_dsn(dsn), exc)) from None


def detect_users(conn, test_user):
    """Check that the user of *conn* is a cluster superuser and that
    *test_user*, the master's role, exists and is not one; raise
    :exc:`~piwheels.exc.DatabaseError` otherwise."""
    if not conn.execute(text(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
        raise DatabaseError(
            'the DSN must connect as a cluster superuser (e.g. postgres), '
            'not as {}'.format(conn.execute(text('SELECT current_user')).scalar()))
    row = conn.execute(text(
        "SELECT rolsuper FROM pg_roles WHERE rolname = :name"),
        {'name': test_user}).first()
    if row is None:
        raise DatabaseError(
            'the user {} does not exist; create it first (createuser {})'.format(
                test_user, test_user))
    if row[0]:
        raise DatabaseError(
            'the user {} is a cluster superuser; piw-master must run as an '
            'ordinary user'.format(test_user))


def detect_version(conn):
    """Return the schema version of the database *conn* is connected to, or
    ``None`` when it holds nothing of piwheels yet; raise
    :exc:`~piwheels.exc.DatabaseError` when it holds tables but not ours."""
    tables = set(conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    if 'configuration' in tables:
        return conn.execute(text('SELECT version FROM configuration')).scalar()
    if tables:
        raise DatabaseError(
            'the database holds tables but no piwheels configuration; '
            'refusing to touch it')
    return None


def _update_scripts():
    """Map each version the update scripts start from to ``(target, path)``."""
    scripts = {}
    for path in script_dir().glob('update_piwheels_*_to_*.sql'):
        match = re.fullmatch(
            r'update_piwheels_([0-9.]+)_to_([0-9.]+)\.sql', path.name)
        if match:
            scripts[match.group(1)] = (match.group(2), path)
    return scripts


def get_script(version=None):
    """Return the SQL that takes the database from *version* (the result of
    :func:`detect_version`) to :func:`current_version`: the create script
    when *version* is ``None``, else the chained update scripts."""
    if version is None:
        return (script_dir() / 'create_piwheels.sql').read_text(encoding='utf-8')
    scripts = _update_scripts()
    target = current_version()
    step = version
    chunks = []
    while step != target:
        try:
            step, path = scripts[step]
        except KeyError:
            raise DatabaseError(
                'no upgrade path from database version {} to {}'.format(
                    version, target)) from None
        chunks.append(path.read_text(encoding='utf-8'))
    return ''.join(chunks)


def parse_statements(script):
    """Split *script* into its statements, yielding each without its
    terminating semi-colon.

    It understands ``-- comments``, ``"quoted identifiers"``, ``'string
    literals'`` (with doubled quotes inside) and ``$tag$ dollar-quoted
    bodies $tag$``, in which semi-colons do not end a statement; not
    ``E'\\escaped'`` strings or ``/* C comments */``. Comments are dropped.
    """
    statement = []
    pos = 0
    end = len(script)
    token = re.compile(r"--|\"|'|\$([A-Za-z_][A-Za-z0-9_]*)?\$|;")
    while pos < end:
        match = token.search(script, pos)
        if match is None:
            statement.append(script[pos:])
            break
        statement.append(script[pos:match.start()])
        found = match.group(0)
        if found == '--':
            newline = script.find('\n', match.end())
            pos = end if newline == -1 else newline
            continue
        if found == ';':
            text_ = ''.join(statement).strip()
            if text_:
                yield text_
            statement = []
            pos = match.end()
            continue
        closer = found
        close = script.find(closer, match.end())
        if found in ('"', "'"):
            # a doubled quote inside is the quote itself, not the end
            while close != -1 and script.startswith(closer * 2, close):
                close = script.find(closer, close + 2)
        if close == -1:
            raise DatabaseError('unterminated {} in SQL script'.format(
                'quoted identifier' if found == '"' else
                'string literal' if found == "'" else
                'dollar-quoted body {}'.format(found)))
        statement.append(script[match.start():close + len(closer)])
        pos = close + len(closer)
    text_ = ''.join(statement).strip()
    if text_:
        yield text_


def quote_identifier(name):
    """Return *name* as a quoted PostgreSQL identifier."""
    return '"{}"'.format(name.replace('"', '""'))


class InitDB(terminal.Command):
    """The piw-initdb command."""

    section = 'initdb'
    description = (
        'Initialize or upgrade the piwheels master database, and manage the '
        'ABIs the farm builds for.')

    def configure_parser(self):
        parser = super().configure_parser()
        parser.add_argument(
            '-d', '--dsn', default='postgresql:///piwheels',
            help='the database to create or upgrade; this DSN must connect '
            'as the cluster superuser')
        parser.add_argument(
            '-u', '--user', metavar='NAME', default='piwheels',
            help='the name of the ordinary piwheels database user; this must '
            'not be a cluster superuser')
        parser.add_argument(
            '-y', '--yes', action='store_true', default=False,
            help='proceed without prompting before init/upgrades')
        parser.add_argument(
            '--add-abi', metavar='ABI', action='append', default=[],
            help='build for this ABI (e.g. cp311); an ABI that was skipped is '
            'built for again; may be repeated')
        parser.add_argument(
            '--skip-abi', metavar='ABI', action='append', default=[],
            help='stop building for this ABI, keeping its builds; may be '
            'repeated')
        parser.add_argument(
            '--skip-reason', metavar='TEXT', default='skipped by the operator',
            help='the reason recorded with --skip-abi')
        return parser

    def run(self, config):
        for abi in config.add_abi + config.skip_abi:
            if not ABI_PATTERN.fullmatch(abi) or abi in ('none', 'abi3'):
                raise ConfigError('{!r} is not an ABI tag (e.g. cp311)'.format(abi))
        overlap = set(config.add_abi) & set(config.skip_abi)
        if overlap:
            raise ConfigError('cannot both add and skip {}'.format(
                ', '.join(sorted(overlap))))
        conn = get_connection(config.dsn)
        try:
            return self.initialize(conn, config)
        finally:
            conn.close()

    def initialize(self, conn, config):
        """Work out what must change in the database *conn* is connected to,
        ask, and do it in one transaction."""
        with conn.begin():
            detect_users(conn, config.user)
            version = detect_version(conn)
        target = current_version()
        if version is not None and parse_version(version) > parse_version(target):
            raise DatabaseError(
                'the database is at version {}, newer than this software ({}); '
                'downgrades are not supported'.format(version, target))
        plan = []
        if version is None:
            plan.append('initialize the database at version {}'.format(target))
        elif version != target:
            plan.append('upgrade the database from version {} to {}'.format(
                version, target))
        plan.extend('build for ABI {}'.format(abi) for abi in config.add_abi)
        plan.extend('skip ABI {} ({})'.format(abi, config.skip_reason)
                    for abi in config.skip_abi)
        if not plan:
            self.logger.info('The database is at version %s: up to date', target)
        elif not (config.yes or self.confirm(plan)):
            self.logger.warning('Nothing changed')
            return 1
        else:
            with conn.begin():
                if version != target:
                    self.run_script(conn, get_script(version), config.user)
                self.manage_abis(conn, config)
            self.logger.info('Done: the database is at version %s', target)
        self.report_abis(conn)
        return 0

    def confirm(self, plan):
        """Show *plan* and ask whether to go ahead; end of input means no."""
        print('piw-initdb will:', file=sys.stderr)
        for step in plan:
            print('  - {}'.format(step), file=sys.stderr)
        print('Take a backup of the database first. Proceed? [y/N] ',
              end='', file=sys.stderr, flush=True)
        try:
            answer = input()
        except EOFError:
            answer = ''
        return answer.strip().lower() in ('y', 'yes')

    def run_script(self, conn, script, user):
        """Execute each statement of *script* on *conn*, showing progress;
        a failure names the statement and leaves the transaction to roll
        back."""
        statements = list(parse_statements(
            script.replace('{username}', quote_identifier(user))))
        shown = -1
        # the DBAPI cursor itself: without parameters psycopg2 sends the text
        # as it is (the scripts' format() calls hold % signs)
        cursor = conn.connection.cursor()
        for number, statement in enumerate(statements, start=1):
            self.logger.debug('Executing: %s', statement.splitlines()[0])
            try:
                cursor.execute(statement)
            except psycopg2.Error as exc:
                raise DatabaseError(
                    'statement {} of {} ({}) failed: {}; the database is '
                    'unchanged'.format(
                        number, len(statements), statement.splitlines()[0],
                        str(exc).strip().splitlines()[0])) from None
            percent = number * 100 // len(statements)
            if percent // 10 != shown // 10:
                shown = percent
                self.logger.info('Progress: %d%% (%d of %d statements)',
                                 percent, number, len(statements))

    def manage_abis(self, conn, config):
        """Add, re-enable and skip build ABIs as *config* asks."""
        for abi in config.add_abi:
            self.logger.info('Adding ABI %s (queueing its builds)', abi)
            conn.execute(text(
                "INSERT INTO build_abis (abi_tag) VALUES (:abi) "
                "ON CONFLICT (abi_tag) DO UPDATE SET skip = ''"), {'abi': abi})
        for abi in config.skip_abi:
            self.logger.info('Skipping ABI %s', abi)
            done = conn.execute(text(
                "UPDATE build_abis SET skip = :reason WHERE abi_tag = :abi"),
                {'abi': abi, 'reason': config.skip_reason[:200]})
            if not done.rowcount:
                raise DatabaseError(
                    'unknown ABI {}; nothing changed'.format(abi))
        if config.add_abi or config.skip_abi:
            # a table of a few rows is never analyzed by autovacuum (it
            # waits for 50 changed rows); without statistics PostgreSQL
            # plans the build_states queries for some 120 ABIs, and a batch
            # of project pages' data took 0.5 s instead of 16 ms (JIT
            # compiling the plan, and every version's states computed)
            conn.execute(text("ANALYZE build_abis"))

    def report_abis(self, conn):
        """Log the ABIs the farm builds for and those it skips."""
        with conn.begin():
            rows = conn.execute(text(
                "SELECT abi_tag, skip FROM build_abis "
                "ORDER BY abi_python_version(abi_tag), abi_tag")).all()
        active = [abi for abi, skip in rows if not skip]
        self.logger.info('Building for: %s', ', '.join(active) or 'no ABI yet '
                         '(add one with --add-abi)')
        for abi, skip in rows:
            if skip:
                self.logger.info('Skipping %s: %s', abi, skip)


main = InitDB()
