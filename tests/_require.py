"""Optional components in tests: skipped on a developer's machine, required in CI.

CI sets CI=true; there a missing component (an extra, a browser, mpiexec) is a failure, not a
skip, so a broken install step cannot hide behind a green run.
"""

from __future__ import annotations

import importlib
import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, why: str):
    """Skip (developer machine) or fail (CI) because ``what`` is not available."""
    message = f"{what} is not available: {why}"
    if in_ci():
        pytest.fail(message + " (required in CI)", pytrace=False)
    pytest.skip(message)


def require(module: str, extra: str | None = None):
    """Import ``module`` or skip/fail; ``extra`` names the fastnn extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'fastnn[{extra}]'" if extra else f"pip install {module}"
        missing(module, f"{exc} ({hint})")
