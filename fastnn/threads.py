"""fastnn's own thread count, and a cap on BLAS/OpenMP pools so nothing oversubscribes.

Backends read ``get_num_threads()`` at each native call. ``set_num_threads(n)`` also limits the
BLAS and OpenMP pools (threadpoolctl) to ``n``; the ``threads(n)`` context manager restores all
of them on exit (exported as ``fastnn.num_threads(n)``; the module keeps the name ``threads``).
Default: FASTNN_NUM_THREADS, else the CPUs this process may use.
"""

from __future__ import annotations

import contextlib
import os

from ._validate import check_int


def _default():
    env = os.environ.get("FASTNN_NUM_THREADS")
    if env:
        return check_int("FASTNN_NUM_THREADS", int(env), 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_num_threads = _default()
_limiter = None


def get_num_threads() -> int:
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use at most ``n`` threads in fastnn's kernels and in BLAS/OpenMP from now on."""
    global _num_threads, _limiter
    _num_threads = check_int("n", n, 1)
    from threadpoolctl import threadpool_limits
    _limiter = threadpool_limits(limits=_num_threads)


@contextlib.contextmanager
def threads(n: int):
    """Temporarily cap fastnn's and BLAS/OpenMP threads at ``n``."""
    global _num_threads
    from threadpoolctl import threadpool_limits
    previous = _num_threads
    _num_threads = check_int("n", n, 1)
    try:
        with threadpool_limits(limits=_num_threads):
            yield
    finally:
        _num_threads = previous


num_threads = threads
