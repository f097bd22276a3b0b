"""Finite-difference gradient check over the flat parameter vector, in float64."""

from __future__ import annotations

import numpy as np


def gradcheck(model, x, y, eps=1e-4, max_params=None, seed=0):
    """Max relative error between the backend's gradient and central differences.

    Uses the fourth-order central stencil (-f(+2h) + 8f(+h) - 8f(-h) + f(-2h)) / 12h, whose
    truncation error O(h^4) lets h be large enough that rounding stays near 1e-12.

    The model is copied to float64 (same backend). For each checked parameter i,
    ``err_i = |g_i - n_i| / max(|g_i|, |n_i|, floor)`` with ``floor = 1e-4 * max|g|`` so
    parameters whose gradient is ~0 are judged on the gradient's overall scale.
    ``max_params`` checks a random subset (seeded) for large networks.
    """
    m64 = _as_float64(model)
    x64 = m64._inputs("x", x)
    y64 = m64._targets("y", y, len(x64)).y
    net, be = m64.net, m64.backend
    grad = np.zeros_like(net.params)
    be.loss_grad(net, x64, y64, grad)
    idx = np.arange(net.n_params)
    if max_params is not None and max_params < net.n_params:
        idx = np.sort(np.random.default_rng(seed).choice(net.n_params, max_params, False))
    numeric = np.empty(len(idx))
    scratch = np.empty_like(net.params)
    for k, i in enumerate(idx):
        old = net.params[i]
        f = {}
        for step in (-2, -1, 1, 2):
            net.params[i] = old + step * eps
            f[step] = be.loss_grad(net, x64, y64, scratch)
        net.params[i] = old
        numeric[k] = (f[-2] - 8 * f[-1] + 8 * f[1] - f[2]) / (12 * eps)
    g = grad[idx]
    floor = max(1e-4 * np.abs(grad).max(), np.finfo(np.float64).tiny)
    return float((np.abs(g - numeric) / np.maximum.reduce([np.abs(g), np.abs(numeric),
                                                            np.full_like(g, floor)])).max())


def _as_float64(model):
    from .layers import Dense
    from .model import Sequential

    layers = [Dense(lay.units, lay.activation, lay.init) for lay in model.layers]
    m = Sequential(layers, model.input_size, loss=model.loss, optimizer="sgd",
                   dtype="float64", backend=model.backend)
    m.params[...] = model.params
    return m
