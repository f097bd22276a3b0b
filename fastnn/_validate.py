"""Input checks at the API boundary: nothing malformed ever reaches a kernel.

Each error names the argument, what was expected and what was received.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .backends import abs_peak

UNSCALED_WARN = 20.0      # |x| above this suggests pixels 0..255 or raw features


def _kind_error(name, arr):
    return TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype} "
                     f"(object, string, complex and structured arrays are not accepted)")


def as_numeric(name, x) -> np.ndarray:
    """np.asarray(x) restricted to bool/int/float dtypes."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name}: could not make an array of it ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise _kind_error(name, arr)
    return arr


def _one_pass(arr) -> bool:
    return arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous


def nonfinite_error(name, arr):
    bad = np.argwhere(~np.isfinite(arr))[0]   # only on the error path: a full-size mask is fine
    where = tuple(int(i) for i in bad)
    return ValueError(f"{name}: contains NaN or inf (first at index {where})")


def warn_unscaled(name, peak, stacklevel):
    """The warning for inputs far from unit scale (``stacklevel``: as seen by the caller)."""
    if peak > UNSCALED_WARN:
        warnings.warn(f"{name}: values reach {peak:.4g}; networks train badly on unscaled "
                      "inputs: divide pixels by 255 or use fastnn.datasets.StandardScaler",
                      UserWarning, stacklevel=stacklevel + 1)


def check_finite(name, arr):
    """A precise error if a float array holds NaN or inf (one native pass when it can)."""
    if arr.dtype.kind != "f":
        return
    ok = math.isfinite(abs_peak(arr)) if _one_pass(arr) else bool(np.isfinite(arr).all())
    if not ok:
        raise nonfinite_error(name, arr)


def as_inputs(name, x, n_features, dtype) -> np.ndarray:
    """A C-contiguous (N, n_features) array of the model dtype, checked finite."""
    return inputs_and_peak(name, x, n_features, dtype)[0]


def inputs_and_peak(name, x, n_features, dtype):
    """``as_inputs`` and max |x|, from one pass over the data with no full-size temporary."""
    out = as_array(name, x, n_features, dtype)
    peak = abs_peak(out)
    if not math.isfinite(peak):
        raise nonfinite_error(name, out)
    return out, peak


def as_array(name, x, n_features, dtype):
    """A C-contiguous (N, n_features) array of the model dtype, not yet checked finite."""
    arr = as_numeric(name, x)
    if arr.ndim == 1 and arr.size == n_features:
        arr = arr.reshape(1, n_features)
    elif arr.ndim > 2 and int(np.prod(arr.shape[1:])) == n_features:
        arr = arr.reshape(len(arr), n_features)  # e.g. (N, 28, 28) images
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"{name}: expected shape (n_samples, {n_features}), got {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name}: expected at least one sample, got an empty array")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo \
            or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}: expected an integer {rng}, got {value!r}")
    return int(value)


def whole_ids(name, arr) -> np.ndarray:
    """int64 ids from an integer or whole-number float array; ValueError for a fractional,
    NaN/inf or negative value (the caller checks the dtype kind)."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            first = float(arr[bad].flat[0])
            raise ValueError(f"{name}: labels must be whole numbers, found {first}")
    ids = arr.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0, found {int(ids.min())}")
    return ids


def class_ids(name, y, n_classes) -> np.ndarray:
    """Integer class ids in [0, n_classes) from an int array or integral floats."""
    if y.dtype.kind == "f":
        check_finite(name, y)
        if not np.array_equal(y, np.round(y)):
            raise ValueError(f"{name}: class labels must be integers, got non-integer values "
                             f"such as {float(y[y != np.round(y)][0])!r}")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    ids = y.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n_classes):
        raise ValueError(f"{name}: class labels must be in [0, {n_classes - 1}] for "
                         f"{n_classes} outputs, got values in [{ids.min()}, {ids.max()}]")
    return ids
