"""Sphinx configuration for the piwheels documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath('..'))
sys.path.insert(0, os.path.abspath('_ext'))

from piwheels import __version__  # noqa: E402

project = 'piwheels'
author = 'the piwheels developers'
copyright = '2026, ' + author
version = release = __version__

extensions = ['sphinx.ext.autodoc', 'sphinx.ext.intersphinx', 'sphinx.ext.viewcode',
              'piwheels_protocols']
autodoc_member_order = 'bysource'
autodoc_mock_imports = ['sense_hat', 'sense_emu']
intersphinx_mapping = {}
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'sphinx_rtd_theme'
html_static_path = []
