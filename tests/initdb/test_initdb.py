"""Tests of piw-initdb: statement splitting, the upgrade chain, creating and upgrading real databases, and every way it refuses."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from piwheels import __version__
from piwheels.exc import DatabaseError
from piwheels.initdb import (
    InitDB, current_version, detect_users, detect_version, get_connection,
    get_script, main, parse_statements, script_dir,
)
from piwheels.master.db import Database

from ..fixtures.db import USER
from ..fixtures.schema import run_sql

UTC = timezone.utc
FIRST_RELEASE = Path(__file__).parent / 'create_piwheels_0.0.1.sql'
REPO = Path(__file__).resolve().parent.parent.parent


def pg_dump(cluster, dsn, schema_only=False):
    """Return the dump of the database of *dsn* (schema and data, or schema
    only), without the random key recent releases of pg_dump add."""
    database = dsn.rsplit('/', 1)[1]
    result = subprocess.run(
        [os.path.join(cluster.bindir, 'pg_dump'), '-h', '127.0.0.1',
         '-p', str(cluster.port), '-U', 'piwsuper', '--no-owner']
        + (['--schema-only'] if schema_only else []) + [database],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        check=True)
    return ''.join(
        line for line in result.stdout.splitlines(keepends=True)
        if not line.startswith(('\\restrict ', '\\unrestrict ')))


def make_first_release(dsn):
    """Initialize the database of *dsn* with the first released schema."""
    conn = get_connection(dsn)
    try:
        with conn.begin():
            InitDB().run_script(conn, FIRST_RELEASE.read_text(), USER)
    finally:
        conn.close()


def run_initdb(*args, stdin=''):
    """Run piw-initdb as a separate process; return (returncode, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, '-m', 'piwheels.initdb', '-c', '/dev/null'] + list(args),
        input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, env=env, timeout=300)
    return result.returncode, result.stderr


def assert_one_line_error(stderr, text):
    """Check *stderr* ends with the one-line error saying *text*, after
    nothing but progress."""
    lines = stderr.strip().splitlines()
    assert all(line.startswith('Progress: ') for line in lines[:-1]), stderr
    assert lines[-1].startswith('piw-initdb: error: ')
    assert text in lines[-1]


# parse_statements -----------------------------------------------------------

def test_parse_statements_splits_on_semicolons():
    assert list(parse_statements('SELECT 1; SELECT 2;\nSELECT 3')) == [
        'SELECT 1', 'SELECT 2', 'SELECT 3']


def test_parse_statements_drops_comments_and_empty_statements():
    script = '-- a comment; with a semicolon\nSELECT 1; ; -- trailing\n;SELECT 2 -- end'
    assert list(parse_statements(script)) == ['SELECT 1', 'SELECT 2']


def test_parse_statements_keeps_string_literals_whole():
    script = "SELECT 'a;b', 'it''s; -- not a comment'; SELECT 2"
    assert list(parse_statements(script)) == [
        "SELECT 'a;b', 'it''s; -- not a comment'", 'SELECT 2']


def test_parse_statements_keeps_quoted_identifiers_whole():
    script = 'CREATE TABLE "odd;name" ("a""b;" INTEGER); SELECT 2'
    assert list(parse_statements(script)) == [
        'CREATE TABLE "odd;name" ("a""b;" INTEGER)', 'SELECT 2']


def test_parse_statements_keeps_dollar_quoted_bodies_whole():
    script = (
        "CREATE FUNCTION f() RETURNS INTEGER LANGUAGE sql AS $$ SELECT 1; $$;\n"
        "CREATE FUNCTION g() RETURNS TEXT LANGUAGE plpgsql AS $body$\n"
        "BEGIN -- a comment; inside\n  RETURN $x$;'$x$ || 'y;';\nEND $body$;\n"
        "SELECT $1")
    assert list(parse_statements(script)) == [
        "CREATE FUNCTION f() RETURNS INTEGER LANGUAGE sql AS $$ SELECT 1; $$",
        "CREATE FUNCTION g() RETURNS TEXT LANGUAGE plpgsql AS $body$\n"
        "BEGIN -- a comment; inside\n  RETURN $x$;'$x$ || 'y;';\nEND $body$",
        'SELECT $1']


@pytest.mark.parametrize('script', [
    "SELECT 'unterminated", 'SELECT "unterminated', 'SELECT $a$ unterminated'])
def test_parse_statements_refuses_unterminated(script):
    with pytest.raises(DatabaseError):
        list(parse_statements(script))


# Scripts ---------------------------------------------------------------------

def test_get_script_creates_from_nothing():
    assert get_script() == (script_dir() / 'create_piwheels.sql').read_text()
    assert "VALUES (1, '{}')".format(current_version()) in get_script()


def test_get_script_chains_updates():
    script = get_script('0.0.1')
    assert script == (script_dir() / 'update_piwheels_0.0.1_to_0.1.0.sql').read_text()
    assert get_script(current_version()) == ''


def test_get_script_without_upgrade_path():
    with pytest.raises(DatabaseError) as info:
        get_script('0.0.0')
    assert 'no upgrade path from database version 0.0.0' in str(info.value)


def test_current_version_is_the_software_version():
    assert current_version() == __version__


# Detection -------------------------------------------------------------------

def test_detect_version(empty_db, with_schema):
    for dsn, version in ((empty_db[0], None), (with_schema[0], __version__)):
        conn = get_connection(dsn)
        try:
            with conn.begin():
                assert detect_version(conn) == version
        finally:
            conn.close()


def test_detect_version_refuses_foreign_tables(empty_db):
    run_sql(empty_db[0], 'CREATE TABLE something_else (x INTEGER)')
    conn = get_connection(empty_db[0])
    try:
        with conn.begin(), pytest.raises(DatabaseError):
            detect_version(conn)
    finally:
        conn.close()


def test_detect_users(empty_db):
    conn = get_connection(empty_db[0])
    try:
        with conn.begin():
            detect_users(conn, USER)
            with pytest.raises(DatabaseError):
                detect_users(conn, 'piwsuper')
            with pytest.raises(DatabaseError):
                detect_users(conn, 'nosuchuser')
    finally:
        conn.close()


# Creating and upgrading ------------------------------------------------------

def test_initdb_creates_database(empty_db, capsys):
    assert main(['-c', '/dev/null', '-d', empty_db[0], '-y',
                 '--add-abi', 'cp311', '--add-abi', 'cp39']) == 0
    err = capsys.readouterr().err
    assert 'Progress: 100%' in err
    assert 'Building for: cp39, cp311' in err
    db = Database(empty_db[1])
    try:
        assert db.get_build_abis() == {'cp39', 'cp311'}
        assert db.add_new_package('foo')
    finally:
        db.close()


def test_initdb_again_changes_nothing(empty_db, pg_cluster, capsys):
    assert main(['-c', '/dev/null', '-d', empty_db[0], '-y']) == 0
    before = pg_dump(pg_cluster, empty_db[0])
    capsys.readouterr()
    assert main(['-c', '/dev/null', '-d', empty_db[0]]) == 0
    assert 'up to date' in capsys.readouterr().err
    assert pg_dump(pg_cluster, empty_db[0]) == before


def test_initdb_process_creates_then_upgrades(empty_db):
    make_first_release(empty_db[0])
    returncode, stderr = run_initdb('-d', empty_db[0], '-y')
    assert returncode == 0, stderr
    assert 'Done: the database is at version {}'.format(__version__) in stderr
    assert run_sql(empty_db[0], 'SELECT version FROM configuration') == [
        (__version__,)]


def test_initdb_process_creates(empty_db):
    returncode, stderr = run_initdb('-d', empty_db[0], '-y', '--add-abi', 'cp311')
    assert returncode == 0, stderr
    assert 'Done: the database is at version {}'.format(__version__) in stderr
    assert run_sql(empty_db[0], 'SELECT abi_tag FROM build_abis') == [('cp311',)]


def test_initdb_prompts_before_changing(empty_db, pg_cluster):
    before = pg_dump(pg_cluster, empty_db[0])
    for answer in ('n\n', ''):
        returncode, stderr = run_initdb('-d', empty_db[0], stdin=answer)
        assert returncode == 1
        assert 'initialize the database at version' in stderr
        assert 'Nothing changed' in stderr
        assert pg_dump(pg_cluster, empty_db[0]) == before
    returncode, stderr = run_initdb('-d', empty_db[0], stdin='y\n')
    assert returncode == 0, stderr
    assert run_sql(empty_db[0], 'SELECT version FROM configuration') == [
        (__version__,)]


def fill_first_release(dsn):
    """Put data of every kind in a database at the first released schema."""
    run_sql(dsn, """
        INSERT INTO build_abis (abi_tag) VALUES ('cp39'), ('cp311');
        UPDATE configuration SET pypi_serial = 4242;
        INSERT INTO packages (package, description, downloads_recent, downloads_all)
            VALUES ('foo', 'A foo package', 3, 10), ('bar', '', 0, 0);
        INSERT INTO package_names (package, name, seen)
            VALUES ('foo', 'Foo', '2020-01-01 00:00Z');
        INSERT INTO versions (package, version, released, yanked, yank_reason)
            VALUES ('foo', '1.0', '2020-01-01 00:00Z', true, 'oops'),
                   ('bar', '1.0', '2020-02-01 00:00Z', false, '');
        INSERT INTO builds (package, version, abi_tag, built_by, duration, status, failure)
            VALUES ('foo', '1.0', 'cp311', 1, '5 minutes', true, NULL),
                   ('bar', '1.0', 'cp39', 2, '1 minute', false, 'network'),
                   ('bar', '1.0', 'cp39', 3, '1 minute', false, 'network'),
                   ('bar', '1.0', 'cp311', 2, '1 minute', false, 'error');
        INSERT INTO files (filename, build_id, filesize, filehash, package_tag,
                           package_version_tag, py_version_tag, abi_tag, platform_tag)
            SELECT 'foo-1.0-cp311-cp311-linux_armv7l.whl', build_id, 1234,
                   repeat('a', 64), 'foo', '1.0', 'cp311', 'cp311', 'linux_armv7l'
            FROM builds WHERE package = 'foo';
        INSERT INTO dependencies (filename, tool, dependency)
            VALUES ('foo-1.0-cp311-cp311-linux_armv7l.whl', 'apt', 'libc6');
        INSERT INTO downloads (filename, package, host, accessed_at)
            VALUES ('foo-1.0-cp311-cp311-linux_armv7l.whl', 'foo', '192.0.2.1',
                    CURRENT_TIMESTAMP);
        INSERT INTO rewrites_pending (package, added_at, command)
            VALUES ('foo', '2024-01-01 00:00Z', 'BOTH');
    """)


def test_upgrade_preserves_data(empty_db, capsys):
    make_first_release(empty_db[0])
    fill_first_release(empty_db[0])
    assert main(['-c', '/dev/null', '-d', empty_db[0], '-y']) == 0
    assert 'Done: the database is at version' in capsys.readouterr().err
    db = Database(empty_db[1])
    try:
        assert db.get_pypi_serial() == 4242
        assert db.get_build_abis() == {'cp39', 'cp311'}
        assert db.get_all_package_versions() == {('foo', '1.0'), ('bar', '1.0')}
        assert db.get_project_display_name('foo') == 'Foo'
        assert db.get_search_index() == {'foo': (3, 10), 'bar': (0, 0)}
        assert db.load_rewrites_pending()[0][::2] == ('foo', 'BOTH')
        foo = db.get_project_data('foo')
        assert foo['releases']['1.0']['yanked']
        assert foo['releases']['1.0']['files'][
            'foo-1.0-cp311-cp311-linux_armv7l.whl']['apt_dependencies'] == {'libc6'}
        bar = db.get_project_data('bar')['releases']['1.0']['abis']
        # the attempts were counted: two network failures leave one retry
        assert (bar['cp39']['status'], bar['cp39']['attempt']) == ('pending', 2)
        assert (bar['cp311']['status'], bar['cp311']['attempt']) == ('failed', 1)
        # foo's downloads came through: it comes first
        assert db.get_build_queue() == {'cp39': [('foo', '1.0'), ('bar', '1.0')],
                                        'cp311': []}
    finally:
        db.close()


def test_upgraded_schema_equals_created_schema(pg_cluster, empty_db):
    make_first_release(empty_db[0])
    fill_first_release(empty_db[0])
    assert main(['-c', '/dev/null', '-d', empty_db[0], '-y']) == 0
    fresh = 'piwfresh'
    pg_cluster.psql('CREATE DATABASE {}'.format(fresh))
    try:
        fresh_dsn = pg_cluster.dsn(database=fresh)
        assert main(['-c', '/dev/null', '-d', fresh_dsn, '-y']) == 0
        assert pg_dump(pg_cluster, empty_db[0], schema_only=True) == \
            pg_dump(pg_cluster, fresh_dsn, schema_only=True)
    finally:
        pg_cluster.psql('DROP DATABASE {} WITH (FORCE)'.format(fresh))


# Privileges --------------------------------------------------------------------

@pytest.mark.parametrize('sql', [
    'CREATE TABLE foo (bar INTEGER)',
    'CREATE TEMPORARY TABLE foo (bar INTEGER)',
    'DELETE FROM builds',
    'DELETE FROM downloads',
    'INSERT INTO build_abis (abi_tag) VALUES (\'cp39\')',
    'DROP TABLE packages',
])
def test_master_role_cannot_change_structure_or_history(empty_db, sql):
    assert main(['-c', '/dev/null', '-d', empty_db[0], '-y']) == 0
    with pytest.raises(Exception) as info:
        run_sql(empty_db[1], sql)
    assert 'permission denied' in str(info.value) or \
        'must be owner' in str(info.value)


# ABI management ---------------------------------------------------------------

def test_abi_management(with_schema, capsys):
    superuser_dsn, user_dsn = with_schema
    run_sql(superuser_dsn, "INSERT INTO packages (package) VALUES ('foo')")
    run_sql(superuser_dsn, "INSERT INTO versions (package, version) VALUES ('foo', '1.0')")
    assert main(['-c', '/dev/null', '-d', superuser_dsn, '-y',
                 '--add-abi', 'cp39', '--add-abi', 'cp311']) == 0
    # the planner knows how many ABIs there are (autovacuum never analyzes
    # a table this small)
    assert run_sql(superuser_dsn, "SELECT reltuples FROM pg_class "
                   "WHERE relname = 'build_abis'") == [(2,)]
    db = Database(user_dsn)
    try:
        assert db.get_build_queue() == {'cp39': [('foo', '1.0')],
                                        'cp311': [('foo', '1.0')]}
        capsys.readouterr()
        assert main(['-c', '/dev/null', '-d', superuser_dsn, '-y',
                     '--skip-abi', 'cp39', '--skip-reason', 'retired']) == 0
        assert 'Skipping cp39: retired' in capsys.readouterr().err
        assert db.get_build_abis(exclude_skipped=True) == {'cp311'}
        assert db.get_build_queue() == {'cp311': [('foo', '1.0')]}
        abis = db.get_project_data('foo')['releases']['1.0']['abis']
        assert list(abis) == ['cp311']
        assert main(['-c', '/dev/null', '-d', superuser_dsn, '-y',
                     '--add-abi', 'cp39']) == 0
        assert db.get_build_queue() == {'cp39': [('foo', '1.0')],
                                        'cp311': [('foo', '1.0')]}
    finally:
        db.close()


def test_skip_unknown_abi_changes_nothing(with_schema, pg_cluster, capsys):
    before = pg_dump(pg_cluster, with_schema[0])
    assert main(['-c', '/dev/null', '-d', with_schema[0], '-y',
                 '--add-abi', 'cp311', '--skip-abi', 'cp27mu']) == 1
    err = capsys.readouterr().err
    assert 'Adding ABI cp311' in err
    assert err.strip().splitlines()[-1] == (
        'piw-initdb: error: unknown ABI cp27mu; nothing changed')
    assert pg_dump(pg_cluster, with_schema[0]) == before


@pytest.mark.parametrize('args, text', [
    (['--add-abi', 'CP311'], "'CP311' is not an ABI tag"),
    (['--add-abi', 'none'], "'none' is not an ABI tag"),
    (['--add-abi', 'cp39', '--skip-abi', 'cp39'], 'cannot both add and skip cp39'),
])
def test_bad_abi_options(with_schema, capsys, args, text):
    assert main(['-c', '/dev/null', '-d', with_schema[0], '-y'] + args) == 2
    assert_one_line_error(capsys.readouterr().err, text)


# Bad input ------------------------------------------------------------------------

def test_dsn_that_does_not_connect(pg_cluster):
    returncode, stderr = run_initdb(
        '-d', 'postgresql://piwsuper:secret@127.0.0.1:1/piwheels', '-y')
    assert returncode == 1
    assert_one_line_error(stderr, 'unable to connect to postgresql+psycopg2://piwsuper:***@')
    assert 'secret' not in stderr


def test_database_that_does_not_exist(pg_cluster):
    returncode, stderr = run_initdb(
        '-d', pg_cluster.dsn(database='nosuchdatabase'), '-y')
    assert returncode == 1
    assert_one_line_error(stderr, 'database "nosuchdatabase" does not exist')


def test_superuser_given_as_ordinary_user(empty_db, pg_cluster):
    before = pg_dump(pg_cluster, empty_db[0])
    returncode, stderr = run_initdb('-d', empty_db[0], '-u', 'piwsuper', '-y')
    assert returncode == 1
    assert_one_line_error(stderr, 'the user piwsuper is a cluster superuser')
    assert pg_dump(pg_cluster, empty_db[0]) == before


def test_ordinary_user_that_does_not_exist(empty_db):
    returncode, stderr = run_initdb('-d', empty_db[0], '-u', 'nobody', '-y')
    assert returncode == 1
    assert_one_line_error(stderr, 'the user nobody does not exist')


def test_connecting_as_ordinary_user(empty_db):
    returncode, stderr = run_initdb('-d', empty_db[1], '-y')
    assert returncode == 1
    assert_one_line_error(stderr, 'must connect as a cluster superuser')


def test_schema_newer_than_code(with_schema, pg_cluster):
    run_sql(with_schema[0], "UPDATE configuration SET version = '9.9.9'")
    before = pg_dump(pg_cluster, with_schema[0])
    returncode, stderr = run_initdb('-d', with_schema[0], '-y')
    assert returncode == 1
    assert_one_line_error(
        stderr, 'the database is at version 9.9.9, newer than this software')
    assert pg_dump(pg_cluster, with_schema[0]) == before


def test_upgrade_failing_halfway_leaves_database_as_it_was(empty_db, pg_cluster):
    make_first_release(empty_db[0])
    fill_first_release(empty_db[0])
    # something the update does not expect, met after it has altered builds
    run_sql(empty_db[0],
            'CREATE FUNCTION max_build_attempts() RETURNS INTEGER '
            'LANGUAGE sql AS $$ SELECT 7 $$')
    before = pg_dump(pg_cluster, empty_db[0])
    returncode, stderr = run_initdb('-d', empty_db[0], '-y')
    assert returncode == 1
    assert_one_line_error(stderr, 'failed: function "max_build_attempts" already exists')
    assert 'the database is unchanged' in stderr
    assert pg_dump(pg_cluster, empty_db[0]) == before


def test_unknown_option(empty_db):
    returncode, stderr = run_initdb('--frobnicate')
    assert returncode == 2
    assert_one_line_error(stderr, 'unrecognized arguments: --frobnicate')
