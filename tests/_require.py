"""Optional dependencies in tests: skip when absent locally, fail when absent in CI.

    from tests._require import require
    onnx = require("onnx")

Outside CI a missing module skips the calling test module (as ``pytest.importorskip``). With the
environment variable CI set to a true value (GitHub Actions and most CI systems set CI=true),
a missing module is an error: CI installs every extra, so a skip there would hide a broken
install.
"""

from __future__ import annotations

import importlib
import os

import pytest

_FALSE = ("", "0", "false", "no", "off")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in _FALSE


def require(module_name: str, minversion: str | None = None):
    """Import and return ``module_name``; skip (locally) or fail (in CI) if it is missing."""
    if not in_ci():
        return pytest.importorskip(module_name, minversion=minversion)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pytest.fail(f"CI is set but {module_name!r} cannot be imported ({exc}); install the "
                    "extra that provides it", pytrace=False)
    if minversion is not None:
        from packaging.version import Version
        have = getattr(module, "__version__", "0")
        if Version(have) < Version(minversion):
            pytest.fail(f"CI is set but {module_name} {have} is older than {minversion}",
                        pytrace=False)
    return module
