"""The one decorator of fastnn's Numba kernels: flags, fastmath set and disk cache.

``FASTMATH`` allows reassociation, contraction (FMA), reciprocal-multiply and fast function
lowering, but NOT ``nnan``/``ninf``: NaN and inf keep their IEEE meaning, so a diverging run
still produces NaN/inf that the model detects. ``error_model="numpy"``: division follows IEEE
like NumPy (no Python ZeroDivisionError checks in the loops).

Caching is numba's own ``cache=True``. Numba puts the files in ``numba.config.CACHE_DIR``
(the ``NUMBA_CACHE_DIR`` variable) when that is set, else next to the source, which for an
installed fastnn is site-packages. So while fastnn's kernels are decorated, ``kernel`` points
``numba.config.CACHE_DIR`` (numba's documented setting) at fastnn's directory and then puts
the previous value back; numba's handling of other libraries is unchanged. The directory:
``$NUMBA_CACHE_DIR`` if set, else ``$FASTNN_CACHE``, else ``$XDG_CACHE_HOME/fastnn/numba``,
else ``~/.cache/fastnn/numba``; inside it, one subdirectory per version of the kernel sources
(numba checks only the stamp of the file a kernel is defined in, and our kernels call each
other across files). Stale files (another source) are recompiled and overwritten by numba. If
the directory cannot be written, the kernels compile in every process, silently. Numba raises
on a cache file that does not unpickle, so before it reads any, index files (``*.nbi``, small)
that do not unpickle and data files (``*.nbc``) that are not a whole pickle (first and last
byte) are removed; numba then recompiles those kernels and writes the files again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile

import numba

# The one place a fastmath flag set is written down (no nnan / ninf: NaN and inf survive).
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

JIT_DISABLED = bool(numba.config.DISABLE_JIT)

_HERE = os.path.dirname(os.path.abspath(__file__))


def cache_dir() -> str:
    """The root directory for fastnn's compiled kernels (see the module docstring)."""
    for var in ("NUMBA_CACHE_DIR", "FASTNN_CACHE"):
        val = os.environ.get(var)
        if val:
            return os.path.abspath(os.path.expanduser(val))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastnn", "numba")


def source_tag() -> str:
    """Short hash of every kernel source file and of fastnn/codes.py (whose ints the kernels
    freeze as constants): a new version gets a fresh cache directory."""
    h = hashlib.sha1()
    files = [os.path.join(_HERE, n) for n in sorted(os.listdir(_HERE)) if n.endswith(".py")]
    for path in [*files, os.path.join(os.path.dirname(_HERE), "codes.py")]:
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + f.read())
    return h.hexdigest()[:12]


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError:
        return False
    return True


def _readable(path):
    """Whether numba can read this cache file: an index unpickles; a data file (large, so not
    unpickled here) starts with pickle's PROTO opcode and ends with its STOP opcode."""
    try:
        with open(path, "rb") as f:
            if path.endswith(".nbi"):
                pickle.load(f)                      # numba's format version
                pickle.loads(f.read())              # the index itself
                return True
            head = f.read(1)
            f.seek(-1, os.SEEK_END)
            return head == b"\x80" and f.read(1) == b"."
    except Exception:  # noqa: BLE001 - unreadable in any way: numba recompiles
        return False


def _drop_broken_files(path):
    for dirpath, _, names in os.walk(path):
        for name in names:
            full = os.path.join(dirpath, name)
            if name.endswith((".nbi", ".nbc")) and not _readable(full):
                with contextlib.suppress(OSError):
                    os.remove(full)


def _kernel_cache_dir():
    """fastnn's cache directory for this source version, or None if it cannot be written."""
    path = os.path.join(cache_dir(), source_tag())
    if not _writable(path):
        return None
    _drop_broken_files(path)
    return path


CACHE_DIR = None if JIT_DISABLED else _kernel_cache_dir()


@contextlib.contextmanager
def _numba_cache_dir(path):
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = path
    try:
        yield
    finally:
        numba.config.CACHE_DIR = saved


def kernel(func):
    """``numba.njit`` with fastnn's flags; cached in ``CACHE_DIR`` when that is writable.

    Lazy: nothing compiles until the first call (or ``warmup``). Under NUMBA_DISABLE_JIT=1
    numba returns the plain Python function, which runs the same source on NumPy arrays.
    """
    flags = dict(nogil=True, fastmath=set(FASTMATH), error_model="numpy")
    if CACHE_DIR is None:
        return numba.njit(**flags)(func)
    with _numba_cache_dir(CACHE_DIR):
        return numba.njit(cache=True, **flags)(func)
