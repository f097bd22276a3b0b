"""Targets for training and evaluation: checked once, dense rows of the model dtype."""

from __future__ import annotations

import numpy as np

from . import _validate as V
from . import losses
from .codes import ACC_ARGMAX, ACC_BINARY, ACC_NONE
from .datasets.preprocessing import one_hot


class Targets:
    """Targets prepared once: dense (N, n_out) array in the model dtype plus accuracy mode."""

    def __init__(self, y, acc_mode):
        self.y, self.acc_mode = y, acc_mode


def prepare_targets(name, y, n, n_out, loss, dtype):
    """Dense targets (n, n_out) of ``dtype``, and how to count correct answers.

    ``y`` holds class ids (n,) or target rows (n, n_out); ``loss`` is a loss code.
    """
    arr = V.as_numeric(name, y)
    if len(arr) != n:
        raise ValueError(f"{name}: expected {n} rows to match x, got {len(arr)}")
    if arr.ndim == 2 and arr.shape[1] == 1 and n_out > 1:
        arr = arr[:, 0]
    if arr.ndim == 1 and n_out > 1:               # class ids
        ids = V.class_ids(name, arr, n_out)
        return Targets(one_hot(ids, n_out, dtype), ACC_ARGMAX)
    if arr.ndim == 1:
        arr = arr.reshape(n, 1)
    if arr.ndim != 2 or arr.shape[1] != n_out:
        raise ValueError(f"{name}: expected class ids of shape ({n},) or targets of shape "
                         f"({n}, {n_out}), got {arr.shape}")
    dense = np.ascontiguousarray(arr, dtype=dtype)
    V.check_finite(name, dense)
    if loss == losses.BINARY_CROSS_ENTROPY and (dense.min() < 0 or dense.max() > 1):
        raise ValueError(f"{name}: binary_cross_entropy targets must be in [0, 1], got "
                         f"values in [{dense.min()}, {dense.max()}]")
    is_one_hot = np.isin(dense, (0, 1)).all() and (dense.sum(axis=1) == 1).all()
    if loss == losses.CROSS_ENTROPY:
        if dense.min() < 0 or not np.allclose(dense.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(f"{name}: cross_entropy targets must be one-hot rows or "
                             "probability rows that sum to 1")
        return Targets(dense, ACC_ARGMAX)
    if loss == losses.BINARY_CROSS_ENTROPY and n_out == 1:
        return Targets(dense, ACC_BINARY)
    return Targets(dense, ACC_ARGMAX if is_one_hot and n_out > 1 else ACC_NONE)
