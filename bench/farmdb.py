"""The piwheels database the benchmarks run against, in a private cluster."""

from piwheels.initdb import InitDB, get_connection, get_script

USER = 'piwheels'
PASSWORD = 'piwheels'


def create_piwheels_database(cluster, database='piwheels'):
    """Create the master's role and *database* with the current schema in
    *cluster* (a started :class:`~piwheels.pgcluster.PrivateCluster`);
    return the DSN the master connects with."""
    cluster.psql("CREATE ROLE {} LOGIN PASSWORD '{}'".format(USER, PASSWORD))
    cluster.psql('CREATE DATABASE {}'.format(database))
    conn = get_connection(cluster.dsn(database=database))
    try:
        with conn.begin():
            InitDB().run_script(conn, get_script(), USER)
    finally:
        conn.close()
    return cluster.dsn(user=USER, password=PASSWORD, database=database)
