"""Runs piw-initdb as ``python -m piwheels.initdb``."""

import sys

from . import main

sys.exit(main())
