"""Optimiser steps on the flat parameters (maths: numpy_backend.update).

``hyper`` is a float64 array (slots below). Every scalar derived from it (1 - beta, the
bias corrections, momentum and weight-decay factors) is computed in float64 and rounded once
to the parameter dtype (``step_scalars``), so float32 runs ask for the same numbers as float64.
"""

from __future__ import annotations

import math

from ..codes import ADAM, MOMENTUM, NESTEROV, SGD
from .jit import kernel

# slots of the float64 hyper-parameter array (SCRATCH: a value kernels store to keep loads)
LR, MOMENTUM_SLOT, BETA1, BETA2, EPS, WEIGHT_DECAY, SCRATCH = range(7)
N_HYPER = 7
KINDS = (SGD, MOMENTUM, NESTEROV, ADAM)


@kernel
def step_scalars(hyper, t, sample):
    """(lr, mu, beta1, 1-beta1, beta2, 1-beta2, eps, wd, lr/(1-beta1^t), sqrt(1-beta2^t)),
    computed in float64 for step t and rounded once to the dtype of ``sample``."""
    dt = sample.dtype.type
    lr, b1, b2 = hyper[LR], hyper[BETA1], hyper[BETA2]
    return (dt(lr), dt(hyper[MOMENTUM_SLOT]), dt(b1), dt(1.0 - b1), dt(b2), dt(1.0 - b2),
            dt(hyper[EPS]), dt(hyper[WEIGHT_DECAY]), dt(lr / (1.0 - b1 ** t)),
            dt(math.sqrt(1.0 - b2 ** t)))


@kernel
def update_segment(kind, p, g, m, v, s, decay):
    """One optimiser step on p with gradient g (same-length 1-D views); g is left zero.

    s: the scalars of ``step_scalars``; decay: add weight decay (weights, not biases).
    Each loop writes one array: LLVM vectorises a loop only after checking at run time that
    its arrays do not overlap, and gives up when a loop writes several.
    """
    lr, mu, b1, omb1, b2, omb2, eps, wd, step, bc2 = s
    n = p.shape[0]
    if decay:
        for k in range(n):
            g[k] += wd * p[k]
    if kind == MOMENTUM or kind == NESTEROV:        # PyTorch's convention: v = mu v + g
        for k in range(n):
            m[k] = mu * m[k] + g[k]
        if kind == NESTEROV:
            for k in range(n):
                p[k] -= lr * (g[k] + mu * m[k])
        else:
            for k in range(n):
                p[k] -= lr * m[k]
    elif kind == ADAM:                              # PyTorch's Adam, bias-corrected
        for k in range(n):
            m[k] = b1 * m[k] + omb1 * g[k]
        for k in range(n):
            v[k] = b2 * v[k] + omb2 * g[k] * g[k]
        for k in range(n):
            p[k] -= step * m[k] / (math.sqrt(v[k]) / bc2 + eps)
    elif kind == SGD:
        for k in range(n):
            p[k] -= lr * g[k]
    for k in range(n):
        g[k] = 0


@kernel
def update_all(kind, layers, params, grad, m, v, s):
    """Optimiser step on every parameter (weight decay on weights only); grad is left zero."""
    decay = s[7] != 0
    for l in range(layers.shape[0]):
        lay = layers[l]
        w0 = lay["w"]
        b0 = lay["b"]
        b1 = b0 + lay["n_out"]
        update_segment(kind, params[w0:b0], grad[w0:b0], opt_view(m, w0, b0),
                       opt_view(v, w0, b0), s, decay)
        update_segment(kind, params[b0:b1], grad[b0:b1], opt_view(m, b0, b1),
                       opt_view(v, b0, b1), s, False)


@kernel
def opt_view(state, lo, hi):
    """state[lo:hi], or the empty state itself (SGD keeps none)."""
    return state[lo:hi] if state.shape[0] else state


@kernel
def apply_update(kind, layers, params, grad, m, v, hyper, t):
    """One optimiser step from a ready gradient, for step number t (already counted); grad is
    left zero (weight decay is added to it first)."""
    update_all(kind, layers, params, grad, m, v, step_scalars(hyper, t, params))
