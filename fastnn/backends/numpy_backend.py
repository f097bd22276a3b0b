"""The NumPy reference backend: vectorised minibatch maths, readable as a textbook.

This module *defines* what fastnn computes; the compiled backends are tested against it.
Notation (Nielsen's): a[l] is the activation of layer l (a[0] is the input batch),
delta is dL/dz for the layer being processed, and the loss is averaged over the batch.
"""

from __future__ import annotations

import math

import numpy as np

from .. import activations as act
from .. import losses
from ..codes import ADAM, MOMENTUM, NESTEROV, SGD

name = "numpy"
SCAN_CHUNK = 1 << 16   # values per step of abs_peak: its buffer (256 KiB in float32) stays in L2


class Workspace:
    """Buffers for one batch size: a[l] for every layer, allocated once."""

    def __init__(self, net, batch_size):
        self.batch_size = int(batch_size)
        self.a = [np.empty((self.batch_size, int(n)), dtype=net.dtype) for n in net.sizes]
        self.grad = np.empty_like(net.params)


def workspace(net, batch_size):
    return Workspace(net, batch_size)


def forward(net, x, a):
    """Fill a[0..L] for the batch x (B rows); returns the output a[L]."""
    B = len(x)
    a[0][:B] = x
    for l in range(net.n_layers):
        z = a[l + 1][:B]
        np.matmul(a[l][:B], net.weights(l), out=z)      # z = a W + b
        z += net.biases(l)
        act.forward(int(net.acts[l]), z)                 # a = f(z), in place
    return a[-1][:B]


def backward(net, a, y, grad, scale=None):
    """Gradient of the batch-mean loss into the flat ``grad`` (a[] from ``forward``).

    ``scale`` replaces the mean's 1 / B: the gradient of scale * (sum of the losses).
    """
    B = len(y)
    L = net.n_layers
    delta = losses.output_delta(net.loss, int(net.acts[-1]), a[L][:B], y,
                                net.dtype.type(1.0 / B if scale is None else scale))
    for l in range(L - 1, -1, -1):
        np.matmul(a[l][:B].T, delta, out=net.weights(l, grad))   # dC/dW = a^T delta
        np.sum(delta, axis=0, out=net.biases(l, grad))          # dC/db = sum of delta
        if l > 0:  # the input layer needs no delta
            delta = delta @ net.weights(l).T
            act.backward(int(net.acts[l - 1]), a[l][:B], delta)


def update(net, opt, grad):
    """One optimiser step on net.params (opt.t is the step number, already incremented).

    Every scalar is derived in float64 (opt.step_scalars) and rounded once to the dtype.
    """
    p, dt = net.params, net.dtype.type
    sc = opt.step_scalars(opt.t)
    if sc.wd:
        for s in net.weight_slices():
            grad[s] += dt(sc.wd) * p[s]                  # L2: d/dW of wd/2 |W|^2
    lr = dt(sc.lr)
    if opt.kind == SGD:
        p -= lr * grad
    elif opt.kind in (MOMENTUM, NESTEROV):                # PyTorch's convention: v = mu v + g
        v, mu = opt.m, dt(sc.mu)
        v *= mu
        v += grad
        p -= lr * (grad + mu * v) if opt.kind == NESTEROV else lr * v
    elif opt.kind == ADAM:                                 # PyTorch's Adam, bias-corrected
        m, v = opt.m, opt.v
        m *= dt(opt.beta1)
        m += dt(sc.one_minus_b1) * grad
        v *= dt(opt.beta2)
        v += dt(sc.one_minus_b2) * grad * grad
        p -= dt(sc.step) * m / (np.sqrt(v) / dt(sc.bc2_sqrt) + dt(sc.eps))
    else:
        raise ValueError(f"unknown optimiser kind {opt.kind}")


def apply_update(net, opt, grad):
    """One optimiser step from a ready gradient (e.g. all-reduced across MPI ranks).

    Counts the step (opt.t += 1) then updates as ``train_steps`` does; ``grad`` may be changed
    (weight decay is added to it).
    """
    opt.t += 1
    with np.errstate(over="ignore", invalid="ignore"):
        update(net, opt, grad)


def predict(net, x, out, ws):
    """Outputs for every row of x, in chunks of the workspace's batch size."""
    for lo in range(0, len(x), ws.batch_size):
        hi = min(lo + ws.batch_size, len(x))
        out[lo:hi] = forward(net, x[lo:hi], ws.a)


def predict_one(net, x, out, ws):
    """One sample: out (n_out,) = network(x (n_in,)); returns False if x has NaN/inf."""
    if not np.isfinite(x).all():
        return False
    out[:] = forward(net, x[None], ws.a)[0]
    return True


def loss_grad(net, x, y, grad, ws=None):
    """Mean loss over all of x (one batch) and its gradient into ``grad``."""
    a = Workspace(net, len(x)).a
    out = forward(net, x, a)
    loss = float(losses.per_sample(net.loss, out, y).mean())
    backward(net, a, y, grad)
    return loss


def grad_step(net, x, y, order, start, batch_size, grad, ws, scale, acc_mode):
    """grad = scale * gradient of the summed loss of rows order[start : start+batch_size].

    Returns (that loss sum, correct count). The first half of a training step: data-parallel
    training adds the ranks' gradients (scale = 1 / the step's rows over every rank), then
    calls ``apply_update``.
    """
    idx = order[start:start + batch_size]
    xb, yb = x[idx], y[idx]
    with np.errstate(over="ignore", invalid="ignore"):
        out = forward(net, xb, ws.a)
        loss_sum = float(losses.per_sample(net.loss, out, yb).sum())
        correct = losses.n_correct(acc_mode, out, yb)
        backward(net, ws.a, yb, grad, scale)
    return loss_sum, correct


def train_steps(net, opt, x, y, order, start, nsteps, batch_size, ws, acc_mode):
    """Run ``nsteps`` minibatch steps; batch s is rows order[start + s*bs : ... + bs].

    Returns (sum of per-sample losses before each update, number of correct predictions).
    """
    loss_sum, correct = 0.0, 0
    with np.errstate(over="ignore", invalid="ignore"):  # the model reports divergence itself
        for s in range(nsteps):
            lo = start + s * batch_size
            idx = order[lo:min(lo + batch_size, len(order))]
            xb, yb = x[idx], y[idx]
            out = forward(net, xb, ws.a)
            loss_sum += float(losses.per_sample(net.loss, out, yb).sum())
            correct += losses.n_correct(acc_mode, out, yb)
            backward(net, ws.a, yb, ws.grad)
            opt.t += 1
            update(net, opt, ws.grad)
    return loss_sum, correct


def abs_peak(x):
    """max |x| of a C-contiguous float array, in chunks (no full-size temporary).

    The result is NaN or inf exactly when some value is (0.0 for an empty array).
    """
    flat = x.reshape(-1)
    buf = np.empty(min(SCAN_CHUNK, flat.size), dtype=flat.dtype)
    peak = 0.0
    for lo in range(0, flat.size, SCAN_CHUNK):
        chunk = flat[lo:lo + SCAN_CHUNK]
        m = float(np.abs(chunk, out=buf[:len(chunk)]).max())
        if not math.isfinite(m):
            return m
        peak = max(peak, m)
    return peak
