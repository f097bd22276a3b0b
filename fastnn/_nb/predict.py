"""Prediction kernels: many rows (per sample, or in gemm chunks for wide networks) and the
single-sample fast path."""

from __future__ import annotations

import numpy as np

from .batched import batch_forward
from .dense import row, rows
from .jit import kernel
from .serial import forward_sample


@kernel
def predict(params, layers, x, out, A, nzi, nzc, batched):
    """out[r] = network(x[r]) for every row: per sample, or in chunks of the workspace's
    batch size through the batched path (gemm) when ``batched``."""
    out_layer = layers[layers.shape[0] - 1]
    N = x.shape[0]
    if batched and N > 1:
        bs = nzi.shape[0]
        order = np.arange(N)
        for lo in range(0, N, bs):
            B = min(bs, N - lo)
            batch_forward(params, layers, x, order, lo, B, A, nzi, nzc)
            out[lo:lo + B] = rows(A, out_layer, B)
        return
    for r in range(N):
        forward_sample(params, layers, x[r], nzi[0], A, 0)
        out[r] = row(A, out_layer, 0)


@kernel
def predict_one(params, layers, x, out, A, nzi):
    """out = network(x) for one 1-D sample; returns False (out untouched) if x has NaN/inf.

    Few arguments on purpose: unboxing each costs ~50 ns per call from Python.
    """
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return False
    forward_sample(params, layers, x, nzi[0], A, 0)
    out[:] = row(A, layers[layers.shape[0] - 1], 0)
    return True
