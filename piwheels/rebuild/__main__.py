"""Runs piw-rebuild as ``python -m piwheels.rebuild``."""

import sys

from . import main

sys.exit(main())
