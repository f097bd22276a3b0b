"""Numba settings shared by every fastnn kernel: the ONE fastmath flag set and the disk cache.

``FASTMATH`` allows reassociation, contraction (FMA), reciprocal-multiply and fast function
lowering, but NOT ``nnan``/``ninf``: NaN and inf keep their IEEE meaning, so a diverging run
still produces NaN/inf that the model detects (stumpy makes the same choice).

The on-disk cache lives in a user cache directory, never inside site-packages:
``$NUMBA_CACHE_DIR`` if the user set it, else ``$FASTNN_CACHE``, else
``$XDG_CACHE_HOME/fastnn/numba``, else ``~/.cache/fastnn/numba``. Only fastnn's kernels use
this (through fastnn's own cache class, attached to each kernel by ``jit``); numba's global
configuration and other libraries' caches are left alone. If that directory cannot be
written, a per-user directory under the system temp dir is used; if nothing can be written,
or the cache files are stale, truncated or garbage, the kernel is silently (re)compiled and
run without caching: a cache problem is never an error.
"""

from __future__ import annotations

import os
import tempfile

import numba
from numba.core import caching
from numba.core import config as _nbconfig

# The one place a fastmath flag set is written down (no nnan / ninf: NaN and inf survive).
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

JIT_DISABLED = bool(_nbconfig.DISABLE_JIT)


def cache_dir() -> str:
    """The root directory for fastnn's compiled kernels (see the module docstring)."""
    for var in ("NUMBA_CACHE_DIR", "FASTNN_CACHE"):
        val = os.environ.get(var)
        if val:
            return os.path.abspath(os.path.expanduser(val))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastnn", "numba")


def _fallback_dir() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"fastnn-numba-{uid}")


class _FastnnLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Cache files of fastnn kernels under ``cache_dir()`` (one subdirectory per source dir)."""

    _root = staticmethod(cache_dir)

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(self._root(), self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        # The kernels inline numba intrinsics from vec.py: a change there must invalidate
        # kernels.py's cached code too, so the stamp covers every module of this package.
        stamps = [super().get_source_stamp()]
        here = os.path.dirname(os.path.abspath(__file__))
        for name in sorted(os.listdir(here)):
            if name.endswith(".py"):
                st = os.stat(os.path.join(here, name))
                stamps.append((name, st.st_mtime, st.st_size))
        return tuple(stamps)


class _FallbackLocator(_FastnnLocator):
    """Used when the preferred directory is read-only: a private temp directory."""

    _root = staticmethod(_fallback_dir)


class _NoCacheLocator(_FastnnLocator):
    """Last resort: nothing is writable; loads find nothing and saves are skipped."""

    _root = staticmethod(_fallback_dir)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)

    def ensure_cache_path(self):
        raise OSError("no writable cache directory")


class _CacheImpl(caching.CompileResultCacheImpl):
    # Only fastnn's kernels use this list; numba's CacheImpl._locator_classes is untouched.
    _locator_classes = [_FastnnLocator, _FallbackLocator, _NoCacheLocator]


class KernelCache(caching.FunctionCache):
    """numba's function cache with fastnn's locators; any cache failure means 'recompile'."""

    _impl_class = _CacheImpl

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - garbage/stale/unreadable cache: compile instead
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception:  # noqa: BLE001 - read-only or full disk: keep the compiled code only
            pass


def jit(parallel=False):
    """``numba.njit(nogil=True, cache=True, fastmath=FASTMATH)`` with fastnn's cache class.

    ``cache=True`` in numba does exactly one thing: ``dispatcher.enable_caching()``, which
    installs a ``FunctionCache`` using numba's global locator list (in-tree ``__pycache__``
    first, i.e. site-packages). We do the same with ``KernelCache`` instead, so numba never
    probes the package directory and nothing global is modified.

    Lazy: nothing is compiled until the first call (or ``warmup``). Under NUMBA_DISABLE_JIT=1
    the plain Python function is returned.
    """
    def deco(func):
        disp = numba.njit(nogil=True, cache=False, fastmath=FASTMATH, parallel=parallel)(func)
        if isinstance(disp, numba.core.dispatcher.Dispatcher):
            disp._cache = KernelCache(disp.py_func)   # == cache=True, with fastnn's locators
        return disp
    return deco
