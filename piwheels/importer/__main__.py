"""Runs piw-import as ``python -m piwheels.importer``."""

import sys

from . import main

sys.exit(main())
