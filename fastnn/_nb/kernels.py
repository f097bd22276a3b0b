"""Numba kernels of the fastnn training step and of prediction (maths: numpy_backend.py).

Everything works on the network's flat parameter buffer with the layout arrays ``sizes``,
``acts``, ``offsets`` and on flat workspace buffers: ``A`` holds every layer's outputs for a
batch (layer l >= 1 at ``aoff[l]``, row-major (B, sizes[l])), ``D`` the matching deltas.
Activations, losses and optimisers are integer codes branched on inside the kernels (no
jitted functions are passed around, which keeps the disk cache valid). Scalars in the
network's dtype come from the small array ``sc`` so float32 code never widens to float64.

The input layer is sparse-aware: each sample's nonzero input indices are listed once
(``nzi``/``nzc``) and the forward pass and the layer-0 weight gradient touch only those rows
of W0 (MNIST pixels are ~81% exact zeros).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .config import jit

# codes shared with fastnn.activations / losses / numpy_backend (never renumbered)
IDENTITY, SIGMOID, RELU, TANH, LEAKY_RELU, SOFTMAX = range(6)
MSE, CROSS_ENTROPY, BINARY_CROSS_ENTROPY = range(3)
SGD, MOMENTUM, NESTEROV, ADAM = range(4)
ACC_NONE, ACC_ARGMAX, ACC_BINARY = range(3)

# slots of the dtype-typed scalar array ``sc``
SC_ZERO, SC_ONE, SC_HALF, SC_LEAKY, SC_TINY, SC_INVB = range(6)
SC_LR, SC_MU, SC_B1, SC_B2, SC_OMB1, SC_OMB2, SC_EPS, SC_WD, SC_STEP, SC_BC2, SC_NEGLR = range(
    6, 17)
N_SC = 17
# slots of the float64 hyperparameter array ``hp``
HP_LR, HP_MU, HP_B1, HP_B2, HP_EPS, HP_WD = range(6)
N_HP = 6


# ---------------------------------------------------------------- activations (per row / value)
@jit()
def act_forward(code, z, lo, n, sc):
    """z[lo:lo+n] = f(z[lo:lo+n]) in place (one sample's layer output)."""
    if code == SIGMOID:
        one = sc[SC_ONE]
        for j in range(lo, lo + n):
            z[j] = one / (one + math.exp(-z[j]))
    elif code == RELU:
        zero = sc[SC_ZERO]
        for j in range(lo, lo + n):
            v = z[j]
            z[j] = zero if v < zero else v          # NaN stays NaN, like np.maximum
    elif code == TANH:
        for j in range(lo, lo + n):
            z[j] = math.tanh(z[j])
    elif code == LEAKY_RELU:
        zero, slope = sc[SC_ZERO], sc[SC_LEAKY]
        for j in range(lo, lo + n):
            v = z[j]
            z[j] = v * slope if v < zero else v
    elif code == SOFTMAX:
        mx = z[lo]
        for j in range(lo + 1, lo + n):
            if z[j] > mx:
                mx = z[j]
        s = sc[SC_ZERO]
        for j in range(lo, lo + n):
            e = math.exp(z[j] - mx)
            z[j] = e
            s += e
        for j in range(lo, lo + n):
            z[j] = z[j] / s


@jit()
def act_deriv(code, a, d, sc):
    """delta * f'(z), written in terms of the output a (as numpy_backend's act.backward)."""
    if code == SIGMOID:
        return d * (a * (sc[SC_ONE] - a))
    if code == RELU:
        return sc[SC_ZERO] if a <= sc[SC_ZERO] else d
    if code == TANH:
        return d * (sc[SC_ONE] - a * a)
    if code == LEAKY_RELU:
        return d * sc[SC_LEAKY] if a <= sc[SC_ZERO] else d
    return d


# ---------------------------------------------------------------- forward pass of one sample
@jit()
def nonzeros(x, r, idx):
    """Indices of the nonzero entries of x[r] into idx; returns their count (branch-free)."""
    k = 0
    for i in range(x.shape[1]):
        idx[k] = i
        k += x[r, i] != 0
    return k


@jit()
def dense_in_sparse(params, o, n_out, x, r, idx, nnz, z, zo):
    """z[zo:zo+n_out] = b + sum over nonzero i of x[r, i] * W[i, :] (W at params[o:])."""
    ob = o + x.shape[1] * n_out
    for j in range(n_out):
        z[zo + j] = params[ob + j]
    k = 0
    while k + 4 <= nnz:
        i0, i1, i2, i3 = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
        x0, x1, x2, x3 = x[r, i0], x[r, i1], x[r, i2], x[r, i3]
        w0, w1, w2, w3 = o + i0 * n_out, o + i1 * n_out, o + i2 * n_out, o + i3 * n_out
        for j in range(n_out):
            z[zo + j] += ((x0 * params[w0 + j] + x1 * params[w1 + j])
                          + (x2 * params[w2 + j] + x3 * params[w3 + j]))
        k += 4
    while k < nnz:
        i0 = idx[k]
        x0 = x[r, i0]
        w0 = o + i0 * n_out
        for j in range(n_out):
            z[zo + j] += x0 * params[w0 + j]
        k += 1


@jit()
def dense_in_dense(params, o, n_in, n_out, a, ai, z, zo):
    """z[zo:zo+n_out] = b + a[ai:ai+n_in] @ W (W at params[o:], row-major (n_in, n_out))."""
    ob = o + n_in * n_out
    for j in range(n_out):
        z[zo + j] = params[ob + j]
    i = 0
    while i + 4 <= n_in:
        x0, x1, x2, x3 = a[ai + i], a[ai + i + 1], a[ai + i + 2], a[ai + i + 3]
        w0 = o + i * n_out
        w1, w2, w3 = w0 + n_out, w0 + 2 * n_out, w0 + 3 * n_out
        for j in range(n_out):
            z[zo + j] += ((x0 * params[w0 + j] + x1 * params[w1 + j])
                          + (x2 * params[w2 + j] + x3 * params[w3 + j]))
        i += 4
    while i < n_in:
        x0 = a[ai + i]
        w0 = o + i * n_out
        for j in range(n_out):
            z[zo + j] += x0 * params[w0 + j]
        i += 1


@jit()
def forward_row(params, sizes, acts, offsets, x, r, b, A, aoff, nzi, nzc, sc):
    """Forward pass of sample x[r] into row b of every layer block of A."""
    L = acts.shape[0]
    idx = nzi[b]
    nnz = nonzeros(x, r, idx)
    nzc[b] = nnz
    n1 = sizes[1]
    zo = aoff[1] + b * n1
    dense_in_sparse(params, offsets[0], n1, x, r, idx, nnz, A, zo)
    act_forward(acts[0], A, zo, n1, sc)
    for l in range(1, L):
        n_in, n_out = sizes[l], sizes[l + 1]
        zo = aoff[l + 1] + b * n_out
        dense_in_dense(params, offsets[l], n_in, n_out, A, aoff[l] + b * n_in, A, zo)
        act_forward(acts[l], A, zo, n_out, sc)


# ---------------------------------------------------------------- loss, accuracy, output delta
@jit()
def output_row(loss, out_act, acc_mode, A, ao, y, r, n_out, D, sc):
    """Loss of one sample (float64), its correct count, and its output delta into D[ao:]."""
    tiny, one, zero = sc[SC_TINY], sc[SC_ONE], sc[SC_ZERO]
    lval = 0.0
    if loss == MSE:
        s = zero
        for j in range(n_out):
            d = A[ao + j] - y[r, j]
            s += d * d
        lval = float(sc[SC_HALF] * s)
    elif loss == CROSS_ENTROPY:
        s = zero
        for j in range(n_out):
            s += y[r, j] * math.log(max(A[ao + j], tiny))
        lval = -float(s)
    else:
        s1 = zero
        s2 = zero
        for j in range(n_out):
            p = A[ao + j]
            s1 += y[r, j] * math.log(max(p, tiny))
            s2 += (one - y[r, j]) * math.log(max(one - p, tiny))
        lval = float(-s1 - s2)
    correct = 0
    if acc_mode == ACC_ARGMAX:
        correct = int(argmax(A, ao, n_out) == argmax(y[r], 0, n_out))
    elif acc_mode == ACC_BINARY:
        half = sc[SC_HALF]
        for j in range(n_out):
            correct += (A[ao + j] > half) == (y[r, j] > half)
    invb = sc[SC_INVB]
    for j in range(n_out):
        d = (A[ao + j] - y[r, j]) * invb
        if loss == MSE:
            d = act_deriv(out_act, A[ao + j], d, sc)
        D[ao + j] = d
    return lval, correct


@jit()
def argmax(a, lo, n):
    """numpy's argmax: the first maximum (the first NaN if there is one)."""
    best = lo
    for j in range(lo, lo + n):
        v = a[j]
        if v != v:
            return j - lo
        if v > a[best]:
            best = j
    return best - lo


# ---------------------------------------------------------------- backward pass of a batch
@jit()
def backward_layer(params, o, n_in, n_out, in_act, A, D, ai, ao, r0, r1, tgt, scale, sc):
    """Layer l >= 1 for batch rows r0..r1: input deltas into D[ai:], tgt[W, b] += scale * grad.

    A/D blocks: the layer's input at ``ai`` (rows of n_in), its output at ``ao`` (n_out).
    With tgt = params and scale = -lr this is the plain SGD update applied in place: each
    weight row gives the input deltas of every sample before it is updated.
    """
    for i in range(n_in):
        w = o + i * n_out
        for b in range(r0, r1):
            do = ao + b * n_out
            s = sc[SC_ZERO]
            for j in range(n_out):
                s += params[w + j] * D[do + j]
            p = ai + b * n_in + i
            D[p] = act_deriv(in_act, A[p], s, sc)
        for b in range(r0, r1):
            do = ao + b * n_out
            c = scale * A[ai + b * n_in + i]
            for j in range(n_out):
                tgt[w + j] += c * D[do + j]
    ob = o + n_in * n_out
    for b in range(r0, r1):
        do = ao + b * n_out
        for j in range(n_out):
            tgt[ob + j] += scale * D[do + j]


@jit()
def backward_input_layer(o, n_in, n_out, x, order, lo, D, ao, r0, r1, nzi, nzc, tgt, scale):
    """Layer 0: tgt[W0, b0] += scale * grad, touching only rows of W0 with x != 0."""
    ob = o + n_in * n_out
    for b in range(r0, r1):
        r = order[lo + b]
        do = ao + b * n_out
        idx = nzi[b]
        nnz = nzc[b]
        k = 0
        while k + 2 <= nnz:
            i0, i1 = idx[k], idx[k + 1]
            c0, c1 = scale * x[r, i0], scale * x[r, i1]
            w0, w1 = o + i0 * n_out, o + i1 * n_out
            for j in range(n_out):
                dj = D[do + j]
                tgt[w0 + j] += c0 * dj
                tgt[w1 + j] += c1 * dj
            k += 2
        if k < nnz:
            i0 = idx[k]
            c0 = scale * x[r, i0]
            w0 = o + i0 * n_out
            for j in range(n_out):
                tgt[w0 + j] += c0 * D[do + j]
        for j in range(n_out):
            tgt[ob + j] += scale * D[do + j]


@jit()
def batch_forward_backward(params, sizes, acts, offsets, loss, acc_mode, x, y, order, lo, B,
                           A, D, aoff, nzi, nzc, sc, tgt, scale):
    """One batch (rows order[lo:lo+B]): forward, loss/accuracy, backward into tgt * scale."""
    L = acts.shape[0]
    n_out = sizes[L]
    lsum = 0.0
    correct = 0
    sc[SC_INVB] = 1.0 / B
    for b in range(B):
        r = order[lo + b]
        forward_row(params, sizes, acts, offsets, x, r, b, A, aoff, nzi, nzc, sc)
        lv, c = output_row(loss, acts[L - 1], acc_mode, A, aoff[L] + b * n_out, y, r, n_out,
                           D, sc)
        lsum += lv
        correct += c
    for l in range(L - 1, 0, -1):
        backward_layer(params, offsets[l], sizes[l], sizes[l + 1], acts[l - 1], A, D, aoff[l],
                       aoff[l + 1], 0, B, tgt, scale, sc)
    backward_input_layer(offsets[0], sizes[0], sizes[1], x, order, lo, D, aoff[1], 0, B,
                         nzi, nzc, tgt, scale)
    return lsum, correct


# ---------------------------------------------------------------- optimiser update
@jit()
def update_segment(kind, p, g, m, v, sc, lo, hi, decay):
    """One optimiser step on p[lo:hi] with gradient g (then g is cleared for the next step)."""
    lr, wd = sc[SC_LR], sc[SC_WD]
    zero = sc[SC_ZERO]
    if decay:
        for k in range(lo, hi):
            g[k] += wd * p[k]
    if kind == SGD:
        for k in range(lo, hi):
            p[k] -= lr * g[k]
            g[k] = zero
    elif kind == MOMENTUM:
        mu = sc[SC_MU]
        for k in range(lo, hi):
            vk = mu * m[k] + g[k]
            m[k] = vk
            p[k] -= lr * vk
            g[k] = zero
    elif kind == NESTEROV:
        mu = sc[SC_MU]
        for k in range(lo, hi):
            gk = g[k]
            vk = mu * m[k] + gk
            m[k] = vk
            p[k] -= lr * (gk + mu * vk)
            g[k] = zero
    else:
        b1, b2, omb1, omb2 = sc[SC_B1], sc[SC_B2], sc[SC_OMB1], sc[SC_OMB2]
        step, bc2, eps = sc[SC_STEP], sc[SC_BC2], sc[SC_EPS]
        for k in range(lo, hi):
            gk = g[k]
            mk = b1 * m[k] + omb1 * gk
            vk = b2 * v[k] + omb2 * gk * gk
            m[k] = mk
            v[k] = vk
            p[k] -= step * mk / (math.sqrt(vk) / bc2 + eps)
            g[k] = zero


@jit()
def update_range(kind, sizes, offsets, p, g, m, v, sc, lo, hi):
    """Optimiser step on p[lo:hi]; weight decay only on the weight blocks."""
    decay = sc[SC_WD] != sc[SC_ZERO]
    for l in range(offsets.shape[0]):
        w0 = offsets[l]
        w1 = w0 + sizes[l] * sizes[l + 1]
        b1 = w1 + sizes[l + 1]
        a, e = max(lo, w0), min(hi, w1)
        if a < e:
            update_segment(kind, p, g, m, v, sc, a, e, decay)
        a, e = max(lo, w1), min(hi, b1)
        if a < e:
            update_segment(kind, p, g, m, v, sc, a, e, False)


@jit()
def set_step_scalars(sc, hp, t):
    """Adam's bias corrections for step t, computed in float64 and cast to the dtype."""
    sc[SC_STEP] = hp[HP_LR] / (1.0 - hp[HP_B1] ** t)
    sc[SC_BC2] = math.sqrt(1.0 - hp[HP_B2] ** t)


@jit()
def load_hyper(sc, hp):
    sc[SC_LR] = hp[HP_LR]
    sc[SC_NEGLR] = -hp[HP_LR]
    sc[SC_MU] = hp[HP_MU]
    sc[SC_B1] = hp[HP_B1]
    sc[SC_B2] = hp[HP_B2]
    sc[SC_OMB1] = sc[SC_ONE] - sc[SC_B1]    # numpy: dt(1.0) - b1, in the dtype
    sc[SC_OMB2] = sc[SC_ONE] - sc[SC_B2]
    sc[SC_EPS] = hp[HP_EPS]
    sc[SC_WD] = hp[HP_WD]


# ---------------------------------------------------------------- entry points
@jit()
def train_serial(params, sizes, acts, offsets, loss, acc_mode, x, y, order, start, nsteps, bs,
                 kind, t0, hp, sc, m, v, A, D, aoff, nzi, nzc, G):
    """nsteps minibatch steps on one thread; returns (loss sum, correct count)."""
    load_hyper(sc, hp)
    n = order.shape[0]
    direct = kind == SGD and hp[HP_WD] == 0.0
    g = G[0]
    P = params.shape[0]
    if not direct:
        g[:] = sc[SC_ZERO]
    lsum = 0.0
    correct = 0
    for s in range(nsteps):
        lo = start + s * bs
        B = min(bs, n - lo)
        if direct:
            ls, c = batch_forward_backward(params, sizes, acts, offsets, loss, acc_mode, x, y,
                                           order, lo, B, A, D, aoff, nzi, nzc, sc, params,
                                           sc[SC_NEGLR])
        else:
            ls, c = batch_forward_backward(params, sizes, acts, offsets, loss, acc_mode, x, y,
                                           order, lo, B, A, D, aoff, nzi, nzc, sc, g,
                                           sc[SC_ONE])
            set_step_scalars(sc, hp, t0 + s + 1)
            update_range(kind, sizes, offsets, params, g, m, v, sc, 0, P)
        lsum += ls
        correct += c
    return lsum, correct


@jit()
def loss_grad_kernel(params, sizes, acts, offsets, loss, x, y, order, A, D, aoff, nzi, nzc, sc,
                     grad):
    """Mean loss over all rows of x and its gradient into grad."""
    grad[:] = sc[SC_ZERO]
    B = x.shape[0]
    ls, _ = batch_forward_backward(params, sizes, acts, offsets, loss, ACC_NONE, x, y, order, 0,
                                   B, A, D, aoff, nzi, nzc, sc, grad, sc[SC_ONE])
    return ls / B


@jit()
def predict_serial(params, sizes, acts, offsets, x, out, A, aoff, nzi, nzc, sc):
    """out[r] = network(x[r]) for every row, one sample at a time (row 0 of the workspace)."""
    L = acts.shape[0]
    n_out = sizes[L]
    ao = aoff[L]
    for r in range(x.shape[0]):
        forward_row(params, sizes, acts, offsets, x, r, 0, A, aoff, nzi, nzc, sc)
        for j in range(n_out):
            out[r, j] = A[ao + j]


@jit()
def predict_one(params, sizes, acts, offsets, x, out, A, aoff, nzi, nzc, sc):
    """out = network(x) for one 1-D sample; returns False (out untouched) if x has NaN/inf."""
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return False
    predict_serial(params, sizes, acts, offsets, x.reshape((1, x.shape[0])),
                   out.reshape((1, out.shape[0])), A, aoff, nzi, nzc, sc)
    return True


# ---------------------------------------------------------------- batched path (wide layers)
# Layers l >= 1 use BLAS gemm (np.dot on contiguous 2-D views); the input layer stays sparse:
# its forward pass is per sample, its gradient per input feature from a per-step column index
# of the batch (which samples have x[:, i] != 0), fused with the optimiser update of row i.
@jit()
def view2(buf, off, rows, cols):
    return buf[off:off + rows * cols].reshape((rows, cols))


@jit()
def forward_rows_sparse(params, sizes, acts, offsets, x, order, lo, r0, r1, A, aoff, nzi, nzc,
                        sc):
    """Input layer (sparse) of batch rows r0..r1 into A's layer-1 block, activation included."""
    n1 = sizes[1]
    for b in range(r0, r1):
        r = order[lo + b]
        idx = nzi[b]
        nnz = nonzeros(x, r, idx)
        nzc[b] = nnz
        zo = aoff[1] + b * n1
        dense_in_sparse(params, offsets[0], n1, x, r, idx, nnz, A, zo)
        act_forward(acts[0], A, zo, n1, sc)


@jit()
def bias_act_rows(params, o, n_in, n_out, code, A, ao, r0, r1, sc):
    ob = o + n_in * n_out
    for b in range(r0, r1):
        zo = ao + b * n_out
        for j in range(n_out):
            A[zo + j] += params[ob + j]
        act_forward(code, A, zo, n_out, sc)


@jit()
def deriv_rows(code, A, D, ai, n, r0, r1, sc):
    for p in range(ai + r0 * n, ai + r1 * n):
        D[p] = act_deriv(code, A[p], D[p], sc)


@jit()
def column_index(nzi, nzc, B, n_in, cstart, cb):
    """cb[cstart[i]:cstart[i+1]] = the batch rows b (ascending) with x[b, i] != 0."""
    for i in range(n_in + 1):
        cstart[i] = 0
    for b in range(B):
        idx = nzi[b]
        for k in range(nzc[b]):
            cstart[idx[k] + 1] += 1
    for i in range(n_in):
        cstart[i + 1] += cstart[i]
    for b in range(B):
        idx = nzi[b]
        for k in range(nzc[b]):
            i = idx[k]
            cb[cstart[i]] = b
            cstart[i] += 1
    for i in range(n_in, 0, -1):
        cstart[i] = cstart[i - 1]
    cstart[0] = 0


@jit()
def update_row(kind, p, m, v, po, g, n, sc, decay):
    """Optimiser step on p[po:po+n] with gradient g[0:n]."""
    lr, wd = sc[SC_LR], sc[SC_WD]
    if decay:
        for j in range(n):
            g[j] += wd * p[po + j]
    if kind == SGD:
        for j in range(n):
            p[po + j] -= lr * g[j]
    elif kind == MOMENTUM:
        mu = sc[SC_MU]
        for j in range(n):
            vk = mu * m[po + j] + g[j]
            m[po + j] = vk
            p[po + j] -= lr * vk
    elif kind == NESTEROV:
        mu = sc[SC_MU]
        for j in range(n):
            vk = mu * m[po + j] + g[j]
            m[po + j] = vk
            p[po + j] -= lr * (g[j] + mu * vk)
    else:
        b1, b2, omb1, omb2 = sc[SC_B1], sc[SC_B2], sc[SC_OMB1], sc[SC_OMB2]
        step, bc2, eps = sc[SC_STEP], sc[SC_BC2], sc[SC_EPS]
        for j in range(n):
            gk = g[j]
            mk = b1 * m[po + j] + omb1 * gk
            vk = b2 * v[po + j] + omb2 * gk * gk
            m[po + j] = mk
            v[po + j] = vk
            p[po + j] -= step * mk / (math.sqrt(vk) / bc2 + eps)


@jit()
def input_layer_update(kind, direct, params, m, v, o, n_in, n1, x, order, lo, D, ao, cstart, cb,
                       grow, i0, i1, sc):
    """Rows i0..i1 of W0: gradient sum_b x[b,i] D1[b,:] (from the column index), then update."""
    zero = sc[SC_ZERO]
    decay = sc[SC_WD] != zero
    for i in range(i0, i1):
        c0, c1 = cstart[i], cstart[i + 1]
        if direct and c0 == c1:
            continue
        for j in range(n1):
            grow[j] = zero
        for c in range(c0, c1):
            b = cb[c]
            xv = x[order[lo + b], i]
            do = ao + b * n1
            for j in range(n1):
                grow[j] += xv * D[do + j]
        update_row(kind, params, m, v, o + i * n1, grow, n1, sc, decay)


@jit(parallel=True)
def train_batched(params, sizes, acts, offsets, loss, acc_mode, x, y, order, start, nsteps, bs,
                  kind, t0, hp, sc, m, v, A, D, aoff, nzi, nzc, G, cstart, cb, grow, nchunks):
    """nsteps minibatch steps; gemm for layers >= 1, sparse input layer, nchunks threads."""
    load_hyper(sc, hp)
    n = order.shape[0]
    L = acts.shape[0]
    n_out = sizes[L]
    n_in, n1 = sizes[0], sizes[1]
    direct = kind == SGD and hp[HP_WD] == 0.0
    lsum = 0.0
    correct = 0
    for s in range(nsteps):
        lo = start + s * bs
        B = min(bs, n - lo)
        sc[SC_INVB] = 1.0 / B
        if kind == ADAM:
            set_step_scalars(sc, hp, t0 + s + 1)
        # forward: sparse input layer per sample (rows split over threads), then gemm layers
        for c in numba.prange(nchunks):
            r0 = c * B // nchunks
            r1 = (c + 1) * B // nchunks
            forward_rows_sparse(params, sizes, acts, offsets, x, order, lo, r0, r1, A, aoff,
                                nzi, nzc, sc)
        for l in range(1, L):
            ni, no = sizes[l], sizes[l + 1]
            np.dot(view2(A, aoff[l], B, ni), view2(params, offsets[l], ni, no),
                   view2(A, aoff[l + 1], B, no))
            bias_act_rows(params, offsets[l], ni, no, acts[l], A, aoff[l + 1], 0, B, sc)
        for b in range(B):
            r = order[lo + b]
            lv, cc = output_row(loss, acts[L - 1], acc_mode, A, aoff[L] + b * n_out, y, r,
                                n_out, D, sc)
            lsum += lv
            correct += cc
        # backward through the gemm layers (gradient into G[0], then the update)
        g = G[0]
        for l in range(L - 1, 0, -1):
            ni, no = sizes[l], sizes[l + 1]
            o = offsets[l]
            Dout = view2(D, aoff[l + 1], B, no)
            np.dot(view2(A, aoff[l], B, ni).T, Dout, view2(g, o, ni, no))
            ob = o + ni * no
            for j in range(no):
                g[ob + j] = sc[SC_ZERO]
            for b in range(B):
                for j in range(no):
                    g[ob + j] += Dout[b, j]
            np.dot(Dout, view2(params, o, ni, no).T, view2(D, aoff[l], B, ni))
            deriv_rows(acts[l - 1], A, D, aoff[l], ni, 0, B, sc)
            decay = sc[SC_WD] != sc[SC_ZERO]
            update_row(kind, params, m, v, o, g[o:], ni * no, sc, decay)
            update_row(kind, params, m, v, ob, g[ob:], no, sc, False)
        # input layer: column index of the batch, then per-feature gradient + update
        column_index(nzi, nzc, B, n_in, cstart, cb)
        o = offsets[0]
        for c in numba.prange(nchunks):
            i0 = c * n_in // nchunks
            i1 = (c + 1) * n_in // nchunks
            input_layer_update(kind, direct, params, m, v, o, n_in, n1, x, order, lo, D,
                               aoff[1], cstart, cb, grow[c], i0, i1, sc)
        ob = o + n_in * n1
        gb = grow[0]
        for j in range(n1):
            gb[j] = sc[SC_ZERO]
        for b in range(B):
            do = aoff[1] + b * n1
            for j in range(n1):
                gb[j] += D[do + j]
        update_row(kind, params, m, v, ob, gb, n1, sc, False)
    return lsum, correct
