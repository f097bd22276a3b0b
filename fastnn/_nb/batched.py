"""The batched training path for wide networks, and the full-batch ``loss_grad``.

Layers >= 1 at least ``GEMM_MIN`` wide on both sides use BLAS gemm (``np.dot`` on contiguous
2-D views of the workspace); narrower ones use the row loops of dense.py. The input layer
stays sparse (each sample's nonzero inputs listed once), worked in column blocks of
``COLUMN_BLOCK`` so the touched part of W0 (and of its gradient) stays in cache across the
batch.
"""

from __future__ import annotations

import numpy as np

from ..codes import ACC_NONE
from .dense import (
    add_bias_activate,
    add_outer,
    add_outer_sparse,
    add_scaled,
    backprop_row,
    biases,
    list_nonzeros,
    matvec,
    rows,
    sparse_matvec,
    times_derivative,
    touch_row,
    weights,
)
from .jit import kernel
from .loss import head
from .optim import SCRATCH, step_scalars, update_all

GEMM_MIN = 32        # a layer uses gemm when min(n_in, n_out) >= this and the batch >= 8
GEMM_MIN_BATCH = 8
COLUMN_BLOCK = 128   # W0 columns per block: 784 x 128 float32 = 400 KB, in L2


@kernel
def use_gemm(lay, B):
    return B >= GEMM_MIN_BATCH and min(lay["n_in"], lay["n_out"]) >= GEMM_MIN


@kernel
def batch_forward(params, layers, x, order, lo, B, A, nzi, nzc):
    """Forward rows order[lo:lo+B] of x into rows 0..B-1 of every layer's block of A.

    Returns the sum of the touched values of the rows that follow (see dense.touch_row).
    """
    lay = layers[0]
    n1 = lay["n_out"]
    warm = A.dtype.type(0)
    for b in range(B):
        if lo + b + 1 < order.shape[0]:
            warm += touch_row(x[order[lo + b + 1]])
        nzc[b] = list_nonzeros(x[order[lo + b]], nzi[b])
    Z = rows(A, lay, B)
    for j0 in range(0, n1, COLUMN_BLOCK):
        j1 = min(n1, j0 + COLUMN_BLOCK)
        for b in range(B):
            sparse_matvec(Z[b, j0:j1], params, lay, j0, x[order[lo + b]], nzi[b], nzc[b])
    for b in range(B):
        add_bias_activate(Z[b], biases(params, lay), lay["act"])
    for l in range(1, layers.shape[0]):
        lay = layers[l]
        prev, Z = Z, rows(A, lay, B)
        if use_gemm(lay, B):
            np.dot(prev, weights(params, lay), Z)
        else:
            for b in range(B):
                matvec(Z[b], params, lay, prev[b])
        for b in range(B):
            add_bias_activate(Z[b], biases(params, lay), lay["act"])
    return warm


@kernel
def batch_gradient(params, layers, x, y, order, lo, B, bufs, task, grad):
    """Forward, loss and the gradient of the batch-mean loss added into grad (zero on entry).

    Returns (sum of the losses, correct count, the touched values of batch_forward).
    """
    A, D, nzi, nzc, _ = bufs
    loss, acc_mode = task
    L = layers.shape[0]
    out = layers[L - 1]
    warm = batch_forward(params, layers, x, order, lo, B, A, nzi, nzc)
    inv_batch = A.dtype.type(1.0 / B)
    Aout, Dout = rows(A, out, B), rows(D, out, B)
    loss_sum = 0.0
    correct = 0
    for b in range(B):
        lv, c = head(loss, out["act"], acc_mode, Aout[b], y[order[lo + b]], inv_batch, Dout[b])
        loss_sum += lv
        correct += c
    one = A.dtype.type(1)
    for l in range(L - 1, 0, -1):
        lay, below = layers[l], layers[l - 1]
        Ain, Dl, Din = rows(A, below, B), rows(D, lay, B), rows(D, below, B)
        if use_gemm(lay, B):
            np.dot(Ain.T, Dl, weights(grad, lay))   # grad is zero here: = is +=
            np.dot(Dl, weights(params, lay).T, Din)
            for b in range(B):
                times_derivative(Din[b], Ain[b], below["act"])
        else:
            for b in range(B):
                add_outer(grad, lay, one, Ain[b], Dl[b])
                backprop_row(Din[b], params, lay, Dl[b], Ain[b], below["act"])
        for b in range(B):
            add_scaled(biases(grad, lay), one, Dl[b])
    lay = layers[0]
    D1 = rows(D, lay, B)
    n1 = lay["n_out"]
    for j0 in range(0, n1, COLUMN_BLOCK):
        j1 = min(n1, j0 + COLUMN_BLOCK)
        for b in range(B):
            add_outer_sparse(grad, lay, j0, one, x[order[lo + b]], nzi[b], nzc[b], D1[b, j0:j1])
    for b in range(B):
        add_scaled(biases(grad, lay), one, D1[b])
    return loss_sum, correct, warm


@kernel
def train_batched(params, layers, data, steps, opt, bufs, task):
    """``nsteps`` minibatch steps on the batched path (arguments as serial.train_serial)."""
    x, y, order = data
    start, nsteps, bs = steps
    kind, t0, hyper, m, v = opt
    grad = bufs[4]
    n = order.shape[0]
    loss_sum = 0.0
    correct = 0
    for s in range(nsteps):
        lo = start + s * bs
        B = min(bs, n - lo)
        ls, c, warm = batch_gradient(params, layers, x, y, order, lo, B, bufs, task, grad)
        hyper[SCRATCH] = warm        # a store keeps the prefetching loads alive
        update_all(kind, layers, params, grad, m, v, step_scalars(hyper, t0 + s + 1, params))
        loss_sum += ls
        correct += c
    return loss_sum, correct


@kernel
def loss_grad(params, layers, x, y, bufs, loss, grad):
    """Mean loss over all rows of x (one batch) and its gradient into grad."""
    for k in range(grad.shape[0]):
        grad[k] = 0
    B = x.shape[0]
    order = np.arange(B)
    ls, _, _ = batch_gradient(params, layers, x, y, order, 0, B, bufs, (loss, ACC_NONE), grad)
    return ls / B


@kernel
def grad_step(params, layers, x, y, order, lo, B, bufs, task, grad, factor):
    """grad = factor * gradient of the batch-mean loss of rows order[lo:lo+B] (factor = B *
    the caller's scale); returns (sum of the losses, correct count)."""
    for k in range(grad.shape[0]):
        grad[k] = 0
    loss_sum, correct, _ = batch_gradient(params, layers, x, y, order, lo, B, bufs, task, grad)
    if factor != 1:
        for k in range(grad.shape[0]):
            grad[k] *= factor
    return loss_sum, correct
