"""The API reference builds from the docstrings with warnings as errors and covers every
public name (fastnn.__all__ and the public subpackages' __all__)."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import fastnn
from tests._require import require

DOCS = Path(__file__).resolve().parent.parent / "docs"
pytestmark = pytest.mark.checkout   # builds docs/ of this repository


def documented_names(inventory: Path) -> set[str]:
    """Object names in a Sphinx objects.inv (version 2: four header lines, then zlib text)."""
    data = inventory.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    text = zlib.decompress(data[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in text.splitlines() if line.strip()}


def public_names() -> set[str]:
    names = {f"fastnn.{n}" for n in fastnn.__all__ if n not in ("__version__", "datasets")}
    names |= {f"fastnn.datasets.{n}" for n in fastnn.datasets.__all__}
    for extra in ("sklearn", "onnx", "dask"):   # optional modules (their extras: test deps)
        module = require(f"fastnn.{extra}")
        names |= {f"fastnn.{extra}.{n}" for n in module.__all__}
    return names


def test_api_reference_builds_and_covers_every_public_name(tmp_path):
    require("sphinx")
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           "html", str(DOCS), str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    missing = public_names() - documented_names(out / "objects.inv")
    assert not missing, f"public names without an API entry: {sorted(missing)}"
