"""Runs piw-remove as ``python -m piwheels.remove``."""

import sys

from . import main

sys.exit(main())
