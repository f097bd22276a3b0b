"""The input check at memory speed: one pass for finiteness and range, no full-size temporary."""

import tracemalloc

import numpy as np
import pytest

import fastnn as fn
from fastnn import _validate as V
from fastnn import backends
from fastnn.backends import numpy_backend

C = numpy_backend.SCAN_CHUNK
SIZES = [0, 1, 7, C - 1, C, C + 1, 3 * C + 5]


def peak_functions():
    fns = {"numpy": numpy_backend.abs_peak, "registry": backends.abs_peak}
    if "cython" in fn.available_backends():
        from fastnn import _kernels
        fns["cython"] = _kernels.abs_peak
    return fns


@pytest.mark.parametrize("impl", list(peak_functions()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_abs_peak_is_max_abs(impl, dtype, n):
    f = peak_functions()[impl]
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    want = float(np.abs(x).max()) if n else 0.0
    assert f(x) == want
    if n:
        x[rng.integers(n)] = -1e30 if dtype == np.float64 else -3e38   # the largest is negative
        assert f(x) == float(np.abs(x).max())


@pytest.mark.parametrize("impl", list(peak_functions()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_abs_peak_is_not_finite_exactly_when_a_value_is_not(impl, dtype, bad):
    f = peak_functions()[impl]
    n = 2 * C + 3
    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    assert np.isfinite(f(x))
    for where in (0, C - 1, C, n - 1):           # chunk edges and the tail
        y = x.copy()
        y[where] = bad
        assert not np.isfinite(f(y)), where


def test_abs_peak_shapes_and_rejections():
    x = np.arange(-6.0, 6.0, dtype=np.float32).reshape(3, 4)
    assert backends.abs_peak(x) == 6.0
    if "cython" in fn.available_backends():
        from fastnn import _kernels
        with pytest.raises(ValueError, match="C-contiguous"):
            _kernels.abs_peak(np.asfortranarray(x))
        with pytest.raises(TypeError, match="float32 or float64"):
            _kernels.abs_peak(np.zeros(3, np.int32))


def test_nonfinite_inputs_are_located():
    x = np.zeros((20, 5), np.float32)
    x[7, 3] = np.inf
    with pytest.raises(ValueError, match=r"x: contains NaN or inf \(first at index \(7, 3\)\)"):
        V.as_inputs("x", x, 5, np.float32)
    with pytest.raises(ValueError, match=r"y: contains NaN or inf \(first at index \(1,\)\)"):
        V.check_finite("y", np.array([0.0, np.nan, 1.0])[::1])
    with pytest.raises(ValueError, match=r"\(first at index \(1,\)\)"):   # strided: NumPy path
        V.check_finite("y", np.array([0.0, 1.0, np.nan, 1.0])[::2])


def test_inputs_and_peak_converts_and_measures():
    x = np.arange(12, dtype=np.int16).reshape(3, 4) - 7
    arr, peak = V.inputs_and_peak("x", x, 4, np.float32)
    assert arr.dtype == np.float32 and arr.flags.c_contiguous and peak == 7.0


def _traced_peak(f, *args):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        f(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("f", [numpy_backend.abs_peak, backends.abs_peak,
                               lambda x: V.inputs_and_peak("x", x, 784, np.float32)])
def test_check_allocates_no_full_size_temporary(f):
    """NumPy reports its buffers to tracemalloc: a np.isfinite mask of x would be x.nbytes / 4."""
    x = np.random.default_rng(0).random((4000, 784), dtype=np.float32)   # 12.5 MB
    assert _traced_peak(f, x) < x.nbytes / 16


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_abs_peak_same_on_any_thread_count(dtype):
    """Past 2**20 values the native check splits the array over the threads: the peak, and
    NaN/inf anywhere (each piece's first and last value), come out as on one thread."""
    if "cython" not in fn.available_backends():
        pytest.skip("no C kernels in this build")
    from fastnn import _kernels
    from fastnn.threads import threads
    n = (1 << 20) + 12345
    x = np.random.default_rng(1).standard_normal(n).astype(dtype)
    x[n // 3] = -123.0                                   # the peak, inside the second piece
    with threads(1):
        one = _kernels.abs_peak(x)
    for t in (2, 3):
        with threads(t):
            assert _kernels.abs_peak(x) == one == 123.0
            for where in (0, n // t - 1, n // t, n - 1):
                for bad in (np.nan, np.inf):
                    y = x.copy()
                    y[where] = bad
                    got = _kernels.abs_peak(y)
                    assert (np.isnan(got) if np.isnan(bad) else got == np.inf), (t, where, bad)
