"""Packaging for piwheels: the library, its piw-* commands and their data."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def version():
    with open(os.path.join(HERE, 'piwheels', '__init__.py')) as f:
        for line in f:
            if line.startswith('__version__'):
                return line.split('=')[1].strip().strip("'\"")
    raise RuntimeError('no __version__ in piwheels/__init__.py')


COMMANDS = {
    'master': 'piwheels.master:main',
    'slave': 'piwheels.slave:main',
    'monitor': 'piwheels.monitor.tui:main',
    'sense': 'piwheels.monitor.sense:main',
    'initdb': 'piwheels.initdb:main',
    'import': 'piwheels.importer:main',
    'add': 'piwheels.add:main',
    'remove': 'piwheels.remove:main',
    'rebuild': 'piwheels.rebuild:main',
    'logger': 'piwheels.logger:main',
}

setup(
    name='piwheels',
    version=version(),
    description='A build farm that follows PyPI and publishes wheels for '
                'platforms PyPI does not serve',
    long_description=open(os.path.join(HERE, 'README.rst')).read(),
    long_description_content_type='text/x-rst',
    license='BSD-3-Clause',
    python_requires='>=3.9',
    # the SQL scripts of sql/ install as piwheels/sql, beside the code that
    # runs them (piw-initdb), rather than as a top-level "sql" directory
    packages=find_packages(exclude=['tests', 'tests.*']) + ['piwheels.sql'],
    package_dir={'piwheels.sql': 'sql'},
    package_data={
        'piwheels.sql': ['*.sql'],
        'piwheels.master': ['templates/*', 'static/*'],
    },
    install_requires=[
        'pyzmq>=24',
        'cbor2>=5.4',
        'voluptuous>=0.12',
    ],
    extras_require={
        'master': ['SQLAlchemy>=1.4', 'psycopg2>=2.9', 'Chameleon>=3.8'],
        'slave': ['pip', 'packaging'],
        'monitor': ['urwid>=2.1'],
        'sense': ['sense-hat'],
        'test': [
            'pytest', 'pytest-timeout', 'cbor2>=5.9', 'sense-emu',
            'build', 'setuptools', 'wheel',
        ],
        'doc': ['sphinx', 'sphinx-rtd-theme'],
    },
    entry_points={
        'console_scripts': [
            'piw-{} = {}'.format(name, target)
            for name, target in COMMANDS.items()
        ],
    },
    classifiers=[
        'Development Status :: 4 - Beta',
        'Environment :: Console',
        'Intended Audience :: System Administrators',
        'Operating System :: POSIX :: Linux',
        'Programming Language :: Python :: 3',
        'Topic :: System :: Software Distribution',
    ],
)
