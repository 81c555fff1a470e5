"""The farm ``make run`` starts: a private PostgreSQL cluster under ``./var``
and whatever parts of piwheels exist, on embedded defaults.

Run as ``python -m piwheels.devfarm --var DIR``. A second run reuses the
cluster, database and output the first one created.
"""

import argparse
import importlib
import os
import sys

from .pgcluster import PrivateCluster

#: the commands make run would start, in order, with the module each needs
PARTS = [
    ('piw-initdb', 'piwheels.initdb'),
    ('piw-master', 'piwheels.master'),
    ('piw-slave', 'piwheels.slave'),
]


def missing_parts():
    """Return the commands of :data:`PARTS` whose code is not there yet."""
    missing = []
    for command, module in PARTS:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(command)
    return missing


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--var', default='var',
                        help='directory for the farm\'s state (default: var)')
    config = parser.parse_args(args)
    os.makedirs(config.var, exist_ok=True)
    cluster = PrivateCluster(os.path.join(config.var, 'postgres')).start()
    print('PostgreSQL cluster running in {} on 127.0.0.1:{}'.format(
        cluster.path, cluster.port))
    missing = missing_parts()
    if missing:
        print('Not built yet, so not started: {}'.format(', '.join(missing)))
        print('Stop the cluster with: python -m piwheels.pgcluster stop {}'.format(
            cluster.path))
        return 0
    return 0


if __name__ == '__main__':
    sys.exit(main())
