"""Test configuration: the shared fixtures live in tests/fixtures/."""

pytest_plugins = [
    'tests.fixtures.db',
    'tests.fixtures.schema',
    'tests.fixtures.index',
    'tests.fixtures.zmq',
    'tests.fixtures.deps',
    'tests.fixtures.logs',
    'tests.fixtures.master',
    'tests.fixtures.pypi',
]
