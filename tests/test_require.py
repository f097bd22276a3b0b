"""tests/_require.py: a missing optional module skips locally and fails in CI."""

from __future__ import annotations

import pytest

from tests._require import in_ci, require


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("", False),
                                             ("false", False), ("0", False)])
def test_in_ci_reads_the_ci_variable(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_missing_module_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require("fastnn_no_such_module")


def test_missing_or_old_module_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="fastnn_no_such_module"):
        require("fastnn_no_such_module")
    with pytest.raises(pytest.fail.Exception, match="older than 999"):
        require("numpy", "999")
    assert require("numpy", "1.0").__name__ == "numpy"
