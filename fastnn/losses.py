"""Losses: names and the NumPy reference for the loss value and the output delta.

All losses are summed over a sample's outputs and averaged over the samples of a batch:
  mse                   L = 1/2 sum_j (a_j - y_j)^2            (Nielsen's quadratic cost)
  cross_entropy         L = -sum_j y_j log p_j,  p = softmax(z) (fused: dL/dz = p - y)
  binary_cross_entropy  L = -sum_j [y log p + (1-y) log(1-p)], p = sigmoid(z) (fused: p - y)
Logs are taken of max(p, tiny) so a confidently wrong prediction gives a large, finite loss.
"""

from __future__ import annotations

import numpy as np

from . import activations as act
from .codes import ACC_ARGMAX, ACC_BINARY, BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE, names_of
from .codes import LOSSES as CODES

NAMES = names_of(CODES)
# The output activation each fused loss needs; mse works with any output except softmax.
REQUIRED_OUTPUT = {CROSS_ENTROPY: act.SOFTMAX, BINARY_CROSS_ENTROPY: act.SIGMOID}


def code_of(name: str) -> int:
    if not isinstance(name, str) or name not in CODES:
        raise ValueError(f"loss: expected one of {sorted(CODES)}, got {name!r}")
    return CODES[name]


def check_pairing(loss: int, out_act: int) -> None:
    """Refuse loss/output pairs whose gradient we do not fuse (e.g. softmax + mse)."""
    need = REQUIRED_OUTPUT.get(loss)
    if need is not None and out_act != need:
        raise ValueError(
            f"loss {NAMES[loss]!r} needs a {act.NAMES[need]!r} output layer, "
            f"got {act.NAMES[out_act]!r}"
        )
    if loss == MSE and out_act == act.SOFTMAX:
        raise ValueError("loss 'mse' with a 'softmax' output is not supported: use 'cross_entropy'")


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, np.finfo(p.dtype).tiny))


def per_sample(loss: int, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Loss of each sample (row), in the dtype of ``a``."""
    if loss == MSE:
        d = a - y
        return 0.5 * np.einsum("ij,ij->i", d, d)
    if loss == CROSS_ENTROPY:
        return -np.einsum("ij,ij->i", y, _log(a))
    if loss == BINARY_CROSS_ENTROPY:
        return -np.einsum("ij,ij->i", y, _log(a)) - np.einsum("ij,ij->i", 1.0 - y, _log(1.0 - a))
    raise ValueError(f"unknown loss code {loss}")


def output_delta(loss: int, out_act: int, a: np.ndarray, y: np.ndarray, inv_batch) -> np.ndarray:
    """dL/dz at the output layer for the batch mean loss: (a - y) / B, times f'(z) for mse."""
    delta = (a - y) * inv_batch
    if loss == MSE:
        act.backward(out_act, a, delta)
    return delta


def n_correct(acc_mode: int, out: np.ndarray, y: np.ndarray) -> int:
    """Correct predictions in a batch, counted as ``acc_mode`` (fastnn.codes.ACC_*) says."""
    if acc_mode == ACC_ARGMAX:
        return int(np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1)))
    if acc_mode == ACC_BINARY:
        return int(np.count_nonzero((out > 0.5) == (y > 0.5)))
    return 0
