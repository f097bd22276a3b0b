"""The per-sample training path for narrow networks: a fused loop over many steps per call.

Each step (a minibatch of B rows of x, in ``order``):
1. per sample: list the nonzero inputs, forward (layer 0 reads only those rows of W0), loss,
   accuracy, output delta, and the deltas of every layer >= 1 (layer 0 needs no input delta);
2. the weight step: with plain SGD (no weight decay) the gradient goes straight into the
   parameters (``alpha = -lr``), W0 only on the rows of nonzero inputs; other optimisers
   collect it in the workspace gradient (zero between steps, layer 0 sparsely) and run one
   optimiser update, which leaves the gradient zero again.
Nothing is allocated in the loop: every buffer comes from the workspace.
"""

from __future__ import annotations

from ..codes import SGD
from .dense import (
    add_bias_activate,
    add_outer,
    add_outer_sparse,
    add_scaled,
    backprop_row,
    biases,
    list_nonzeros,
    matvec,
    row,
    sparse_matvec,
    touch_row,
)
from .jit import kernel
from .loss import head
from .optim import SCRATCH, WEIGHT_DECAY, step_scalars, update_all


@kernel
def forward_sample(params, layers, xr, idx, A, b):
    """Forward pass of the input row xr into row b of every layer's block of A.

    Lists the nonzero inputs in idx (layer 0 reads only those) and returns their count.
    """
    nnz = list_nonzeros(xr, idx)
    lay = layers[0]
    z = row(A, lay, b)
    sparse_matvec(z, params, lay, 0, xr, idx, nnz)
    add_bias_activate(z, biases(params, lay), lay["act"])
    for l in range(1, layers.shape[0]):
        prev = z
        lay = layers[l]
        z = row(A, lay, b)
        matvec(z, params, lay, prev)
        add_bias_activate(z, biases(params, lay), lay["act"])
    return nnz


@kernel
def sample_pass(params, layers, x, y, order, lo, B, bufs, task):
    """Step part 1 for rows order[lo:lo+B]: forward, loss, deltas (layers >= 1) per sample.

    Returns (sum of the losses, correct count, sum of the touched values of the next rows).
    """
    A, D, nzi, nzc, grad = bufs
    loss, acc_mode = task
    L = layers.shape[0]
    out = layers[L - 1]
    inv_batch = A.dtype.type(1.0 / B)
    loss_sum = 0.0
    correct = 0
    warm = A.dtype.type(0)
    for b in range(B):
        if lo + b + 1 < order.shape[0]:     # the next sample's rows of x and y
            nxt = order[lo + b + 1]
            warm += touch_row(x[nxt]) + y[nxt, 0]
        r = order[lo + b]
        nzc[b] = forward_sample(params, layers, x[r], nzi[b], A, b)
        lv, c = head(loss, out["act"], acc_mode, row(A, out, b), y[r], inv_batch, row(D, out, b))
        loss_sum += lv
        correct += c
        for l in range(L - 1, 0, -1):
            lay, below = layers[l], layers[l - 1]
            backprop_row(row(D, below, b), params, lay, row(D, lay, b), row(A, below, b),
                         below["act"])
    return loss_sum, correct, warm


@kernel
def weight_pass(params, layers, x, order, lo, B, bufs, target, alpha):
    """Step part 2: target += alpha * (batch gradient); W0 only on the nonzero inputs' rows.

    target = params with alpha = -lr is the plain SGD step itself, sample by sample;
    target = the gradient buffer with alpha = 1 collects the gradient.
    """
    A, D, nzi, nzc, grad = bufs
    for b in range(B):
        lay = layers[0]
        d = row(D, lay, b)
        add_outer_sparse(target, lay, 0, alpha, x[order[lo + b]], nzi[b], nzc[b], d)
        add_scaled(biases(target, lay), alpha, d)
        for l in range(1, layers.shape[0]):
            below, lay = lay, layers[l]
            d = row(D, lay, b)
            add_outer(target, lay, alpha, row(A, below, b), d)
            add_scaled(biases(target, lay), alpha, d)


@kernel
def train_serial(params, layers, data, steps, opt, bufs, task):
    """``nsteps`` minibatch steps on the per-sample path; returns (loss sum, correct count).

    data = (x, y, order); steps = (start, nsteps, batch_size); opt = (kind, t, hyper, m, v)
    with t the optimiser's step count before this call; bufs = (A, D, nzi, nzc, grad);
    task = (loss code, accuracy mode).
    """
    x, y, order = data
    start, nsteps, bs = steps
    kind, t0, hyper, m, v = opt
    grad = bufs[4]
    n = order.shape[0]
    direct = kind == SGD and hyper[WEIGHT_DECAY] == 0.0
    minus_lr = -step_scalars(hyper, t0 + 1, params)[0]   # the same for every step
    one = params.dtype.type(1)
    loss_sum = 0.0
    correct = 0
    for s in range(nsteps):
        lo = start + s * bs
        B = min(bs, n - lo)
        ls, c, warm = sample_pass(params, layers, x, y, order, lo, B, bufs, task)
        hyper[SCRATCH] = warm        # a store keeps the prefetching loads alive
        if direct:
            weight_pass(params, layers, x, order, lo, B, bufs, params, minus_lr)
        else:
            weight_pass(params, layers, x, order, lo, B, bufs, grad, one)
            update_all(kind, layers, params, grad, m, v, step_scalars(hyper, t0 + s + 1, params))
        loss_sum += ls
        correct += c
    return loss_sum, correct
