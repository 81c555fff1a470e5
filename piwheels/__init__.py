"""piwheels: a build farm that follows PyPI and publishes wheels for platforms PyPI does not serve."""

__version__ = '0.1.0'
