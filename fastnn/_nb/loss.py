"""Loss, accuracy and output delta of one sample (maths: fastnn/losses.py).

The fused heads: cross-entropy after softmax and binary cross-entropy after sigmoid have
dL/dz = p - y; mse has (a - y) * f'(z). Deltas are scaled by 1/B for the batch mean.
"""

from __future__ import annotations

import math

import numpy as np

from ..codes import ACC_ARGMAX, ACC_BINARY, BINARY_CROSS_ENTROPY, CROSS_ENTROPY
from .dense import times_derivative
from .jit import kernel


@kernel
def safe_log(p, tiny):
    """log(max(p, tiny)) as NumPy computes it: NaN stays NaN."""
    return math.log(tiny) if p < tiny else math.log(p)


@kernel
def sample_loss(loss, a, y):
    """The loss of one sample (output row a, target row y), in the network's dtype."""
    tiny = a.dtype.type(np.finfo(a.dtype).tiny)
    one = a.dtype.type(1)
    s = a.dtype.type(0)
    if loss == CROSS_ENTROPY:
        for j in range(a.shape[0]):
            if y[j] != 0 or a[j] != a[j]:   # a zero target adds exactly 0 (unless a is NaN)
                s -= y[j] * safe_log(a[j], tiny)
    elif loss == BINARY_CROSS_ENTROPY:
        s2 = a.dtype.type(0)
        for j in range(a.shape[0]):
            s -= y[j] * safe_log(a[j], tiny)
            s2 -= (one - y[j]) * safe_log(one - a[j], tiny)
        s += s2
    else:                                   # mse
        for j in range(a.shape[0]):
            diff = a[j] - y[j]
            s += diff * diff
        s *= a.dtype.type(0.5)
    return s


@kernel
def argmax(a):
    """np.argmax of a row: the first maximum, or the first NaN if there is one."""
    best = 0
    for j in range(a.shape[0]):
        if a[j] != a[j]:
            return j
        if a[j] > a[best]:
            best = j
    return best


@kernel
def n_correct(acc_mode, a, y):
    if acc_mode == ACC_ARGMAX:
        return int(argmax(a) == argmax(y))
    count = 0
    if acc_mode == ACC_BINARY:
        half = a.dtype.type(0.5)
        for j in range(a.shape[0]):
            count += (a[j] > half) == (y[j] > half)
    return count


@kernel
def output_delta(loss, out_act, a, y, inv_batch, d):
    """d = dL/dz of the batch-mean loss at the output layer, for one sample."""
    for j in range(a.shape[0]):
        d[j] = (a[j] - y[j]) * inv_batch
    if loss != CROSS_ENTROPY and loss != BINARY_CROSS_ENTROPY:
        times_derivative(d, a, out_act)


@kernel
def head(loss, out_act, acc_mode, a, y, inv_batch, d):
    """Loss (float64) and correct count of one sample; its output delta into d."""
    lval = float(sample_loss(loss, a, y))
    correct = n_correct(acc_mode, a, y)
    output_delta(loss, out_act, a, y, inv_batch, d)
    return lval, correct
