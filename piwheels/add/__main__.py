"""Runs piw-add as ``python -m piwheels.add``."""

import sys

from . import main

sys.exit(main())
