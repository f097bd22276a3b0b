"""Sphinx configuration: the API reference, built from the docstrings.

    sphinx-build -W --keep-going -b html docs docs/_build     (CI: tests/test_docs.py)
"""

import fastnn

project = "fastnn"
release = version = fastnn.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
root_doc = "index"
exclude_patterns = ["_build", "img"]
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
html_theme = "alabaster"
