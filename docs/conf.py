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


def _skip_sklearn_routing(app, what, name, obj, skip, options):
    """scikit-learn generates set_*_request methods on every estimator; they are its API."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_routing)
