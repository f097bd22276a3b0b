"""Numba kernels of the fastnn training step and of prediction (maths: numpy_backend.py).

Everything works on the network's flat parameter buffer with the layout arrays ``sizes``,
``acts``, ``offsets`` and on flat workspace buffers: ``A`` holds every layer's outputs for a
batch (layer l >= 1 at ``aoff[l]``, row-major (B, sizes[l])), ``D`` the matching deltas.
Activations, losses and optimisers are integer codes branched on inside the kernels (no
jitted functions are passed around, which keeps the disk cache valid). Scalars in the
network's dtype come from the small array ``sc`` so float32 code never widens to float64.

The input layer is sparse-aware: each sample's nonzero input indices are listed once
(``nzi``/``nzc``, a vector compare + compress per 16 inputs) and the forward pass and the
layer-0 weight gradient touch only those rows of W0 (MNIST pixels are ~81% exact zeros).

Two paths (the algorithms of csrc/fnn_impl.h):
- narrow nets (``train_serial``): phase A per sample (forward, loss, deltas of every layer,
  next input row prefetched), then phase B: plain SGD updates the W0 rows of the nonzero
  inputs in place and each dense weight row with its batch gradient held in registers;
  other optimisers accumulate the same gradient into ``G`` (zero between steps; layer 0
  sparsely) and run one dense update that leaves ``G`` zero.
- wide nets (``train_batched``): gemm (np.dot on contiguous 2-D views) for layers with
  min(n_in, n_out) >= GEMM_MIN, the sparse input layer in column blocks, dense update.
The inner loops are the 16-lane vector blocks of vec.py (numba intrinsics).
"""

from __future__ import annotations

import math

import numpy as np

from .config import jit
from .vec import (
    VW,
    blk_adam,
    blk_axpy_rows,
    blk_axpy_rows2,
    blk_axpy_rows4,
    blk_dot,
    blk_momentum,
    blk_mvd,
    blk_mvd2,
    blk_mvd4,
    blk_mvs,
    blk_mvs2,
    blk_mvs4,
    blk_nesterov,
    blk_nz,
    blk_rank1_rows,
    blk_sgd,
    blk_sigmoid,
    blk_softmax,
    prefetch,
)

WB = 4 * VW   # widest block: four vectors per row

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
SC_PAD = 32   # in the workspace buffer F = [sc | A], A starts here (64-byte aligned)
# slots of the float64 hyperparameter array ``hp``
HP_LR, HP_MU, HP_B1, HP_B2, HP_EPS, HP_WD = range(6)
N_HP = 6


# The inner loops are the 16-lane blocks of vec.py (numba intrinsics: LLVM vector IR with
# masked tails, accumulators in registers); this file only walks rows, layers and samples.
# Offsets into the flat buffers are plain int64 element offsets.
@jit()
def view2(buf, off, rows, cols):
    return buf[off:off + rows * cols].reshape((rows, cols))


# ---------------------------------------------------------------- activations (one row)
@jit()
def bias_act(Z, zo, n, params, bo, code, sc):
    """Z[zo:zo+n] = f(Z[zo:zo+n] + params[bo:bo+n]) in place."""
    if code == SIGMOID:
        for j in range(0, n, VW):
            blk_sigmoid(Z, zo + j, min(VW, n - j), params, bo + j)
    elif code == SOFTMAX and n <= VW:
        blk_softmax(Z, zo, n, params, bo)
    elif code == RELU:
        zero = sc[SC_ZERO]
        z, bb = Z[zo:zo + n], params[bo:bo + n]      # views: unit-stride loops that vectorise
        for j in range(n):
            v = z[j] + bb[j]
            z[j] = zero if v < zero else v          # NaN stays NaN, like np.maximum
    elif code == TANH:
        for j in range(n):
            Z[zo + j] = math.tanh(Z[zo + j] + params[bo + j])
    elif code == LEAKY_RELU:
        zero, slope = sc[SC_ZERO], sc[SC_LEAKY]
        z, bb = Z[zo:zo + n], params[bo:bo + n]
        for j in range(n):
            v = z[j] + bb[j]
            z[j] = v * slope if v < zero else v
    elif code == SOFTMAX:
        for j in range(n):
            Z[zo + j] += params[bo + j]
        mx = Z[zo]
        for j in range(1, n):
            if Z[zo + j] > mx:
                mx = Z[zo + j]
        s = sc[SC_ZERO]
        for j in range(n):
            e = math.exp(Z[zo + j] - mx)
            Z[zo + j] = e
            s += e
        for j in range(n):
            Z[zo + j] = Z[zo + j] / s
    else:
        for j in range(n):
            Z[zo + j] += params[bo + j]


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


@jit()
def deriv_rows(code, a, d, sc):
    """d *= f'(a) elementwise (1-D views; the activation branch is outside the loop)."""
    zero, one = sc[SC_ZERO], sc[SC_ONE]
    n = d.shape[0]
    if code == SIGMOID:
        for p in range(n):
            d[p] = d[p] * (a[p] * (one - a[p]))
    elif code == RELU:
        for p in range(n):
            d[p] = zero if a[p] <= zero else d[p]
    elif code == TANH:
        for p in range(n):
            d[p] = d[p] * (one - a[p] * a[p])
    elif code == LEAKY_RELU:
        slope = sc[SC_LEAKY]
        for p in range(n):
            d[p] = d[p] * slope if a[p] <= zero else d[p]


# ---------------------------------------------------------------- matrix-vector pieces
@jit()
def nonzeros(x, r, idx):
    """Indices of the nonzero entries of x[r] into idx (n_in + 16 slots); returns the count."""
    n = x.shape[1]
    k = 0
    for i0 in range(0, n, VW):
        k = blk_nz(x, r * n + i0, min(VW, n - i0), idx, k, i0)
    return k


@jit()
def prefetch_row(x, r):
    n = x.shape[1]
    step = max(1, 64 // x.itemsize)
    for i in range(0, n, step):
        prefetch(x, r * n + i)


@jit()
def mvs_w(Z, zo, t, W, wo, ldw, x, xo, idx, cnt, alpha, acc):
    """Z[zo:zo+t] = (acc ? Z : 0) + alpha * sum_k x[xo+i_k] W[wo+i_k*ldw : +t], t <= 64."""
    # several blocks per row pay only when all are full; a partial last block goes alone
    if t == 4 * VW:
        blk_mvs4(Z, zo, t, W, wo, ldw, x, xo, idx, cnt, alpha, acc)
    elif t == 2 * VW:
        blk_mvs2(Z, zo, t, W, wo, ldw, x, xo, idx, cnt, alpha, acc)
    else:
        for j in range(0, t, VW):
            blk_mvs(Z, zo + j, min(VW, t - j), W, wo + j, ldw, x, xo, idx, cnt, alpha, acc)


@jit()
def mvd_w(Z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc):
    """Z[zo:zo+t] = (acc ? Z : 0) + alpha * sum_k c[co+k*cs] M[mo+k*ldm : +t], t <= 64."""
    # several blocks per row pay only when all are full; a partial last block goes alone
    if t == 4 * VW:
        blk_mvd4(Z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc)
    elif t == 2 * VW:
        blk_mvd2(Z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc)
    else:
        for j in range(0, t, VW):
            blk_mvd(Z, zo + j, min(VW, t - j), M, mo + j, ldm, c, co, cs, cnt, alpha, acc)


@jit()
def axpy_rows_w(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do):
    """W[wo+i*ldw : +t] += (alpha x[xo+i]) d[do:do+t] for the listed rows i, t <= 64."""
    # several blocks per row pay only when all are full; a partial last block goes alone
    if t == 4 * VW:
        blk_axpy_rows4(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do)
    elif t == 2 * VW:
        blk_axpy_rows2(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do)
    else:
        for j in range(0, t, VW):
            blk_axpy_rows(W, wo + j, ldw, min(VW, t - j), x, xo, idx, k0, k1, alpha, d,
                          do + j)


@jit()
def mv_sparse(Z, zo, n, W, wo, x, xo, idx, cnt, sc):
    """Z[zo:zo+n] = sum_k x[xo+i_k] * W[wo + i_k*n : +n] (W row-major (n_in, n))."""
    one = sc[SC_ONE]
    for j in range(0, n, WB):
        mvs_w(Z, zo + j, min(WB, n - j), W, wo + j, n, x, xo, idx, cnt, one, False)


@jit()
def mv_dense(Z, zo, n, W, wo, a, ao, n_in, sc):
    """Z[zo:zo+n] = sum_i a[ao+i] * W[wo + i*n : +n]."""
    one = sc[SC_ONE]
    for j in range(0, n, WB):
        mvd_w(Z, zo + j, min(WB, n - j), W, wo + j, n, a, ao, 1, n_in, one, False)


@jit()
def back_row(params, wo, n_in, n, D, do, di, A, ai, code, sc):
    """D[di+i] = f'(A[ai+i]) * sum_j W[i, j] D[do+j]: the input deltas of one sample."""
    for i in range(n_in):
        s = sc[SC_ZERO]
        for j in range(0, n, VW):
            s += blk_dot(params, wo + i * n + j, D, do + j, min(VW, n - j))
        D[di + i] = act_deriv(code, A[ai + i], s, sc)


@jit()
def grad_rows(tgt, wo, n_in, n, A, ai, lda, D, do, ldd, B, alpha, sc):
    """tgt[W rows] += alpha * sum_b A[ai+b*lda+i] * D[do+b*ldd : +n]; then the bias row.

    A dense layer's weight gradient (or, with tgt = params and alpha = -lr, its plain SGD
    update), one weight row at a time with the row's gradient in registers.
    """
    if B == 1 and n <= VW:     # one sample: a rank-1 update, row after row
        blk_rank1_rows(tgt, wo, n, n, A, ai, D, 0, n_in, alpha, D, do)
    else:
        for i in range(n_in):
            for j in range(0, n, WB):
                mvd_w(tgt, wo + i * n + j, min(WB, n - j), D, do + j, ldd, A, ai + i, lda, B,
                      alpha, True)
    bo = wo + n_in * n
    for j in range(0, n, WB):
        mvd_w(tgt, bo + j, min(WB, n - j), D, do + j, ldd, sc, SC_ONE, 0, B, alpha, True)


# ---------------------------------------------------------------- forward of one sample
@jit()
def forward_one(params, sizes, acts, offsets, x, r, b, A, aoff, nzi, sc):
    """Forward pass of sample x[r] into row b of every layer block of A (layer 0 sparse);
    returns the number of nonzero inputs (listed in nzi[b])."""
    L = acts.shape[0]
    idx = nzi[b]
    nnz = nonzeros(x, r, idx)
    n0, n1 = sizes[0], sizes[1]
    o = offsets[0]
    zo = aoff[1] + b * n1
    if n1 <= VW:
        blk_mvs(A, zo, n1, params, o, n1, x, r * n0, idx, nnz, sc[SC_ONE], False)
    else:
        mv_sparse(A, zo, n1, params, o, x, r * n0, idx, nnz, sc)
    bias_act(A, zo, n1, params, o + n0 * n1, acts[0], sc)
    for l in range(1, L):
        ni, no = sizes[l], sizes[l + 1]
        o = offsets[l]
        ai = zo
        zo = aoff[l + 1] + b * no
        if no <= VW:
            blk_mvd(A, zo, no, params, o, no, A, ai, 1, ni, sc[SC_ONE], False)
        else:
            mv_dense(A, zo, no, params, o, A, ai, ni, sc)
        bias_act(A, zo, no, params, o + ni * no, acts[l], sc)
    return nnz


# ---------------------------------------------------------------- loss, accuracy, output delta
@jit()
def argmax(a, lo, n):
    """numpy's argmax of a[lo:lo+n]: the first maximum (the first NaN if there is one)."""
    best = lo
    for j in range(lo, lo + n):
        v = a[j]
        if v != v:
            return j - lo
        if v > a[best]:
            best = j
    return best - lo


@jit()
def head(loss, out_act, acc_mode, A, D, ao, y, r, n_out, sc):
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
            yj = y[r, j]
            a = A[ao + j]
            if yj != zero or a != a:     # y_j = 0 adds exactly 0 unless a is NaN: skip it
                s += yj * math.log(max(a, tiny))
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


# ---------------------------------------------------------------- optimiser update
@jit()
def update_seg(kind, p, g, m, v, lo, hi, sc, decay):
    """One optimiser step on p[lo:hi] with gradient g[lo:hi] (16-lane blocks); g is cleared."""
    if kind == SGD:
        for k in range(lo, hi, VW):
            blk_sgd(p, g, m, v, k, min(VW, hi - k), sc, decay)
    elif kind == MOMENTUM:
        for k in range(lo, hi, VW):
            blk_momentum(p, g, m, v, k, min(VW, hi - k), sc, decay)
    elif kind == NESTEROV:
        for k in range(lo, hi, VW):
            blk_nesterov(p, g, m, v, k, min(VW, hi - k), sc, decay)
    else:
        for k in range(lo, hi, VW):
            blk_adam(p, g, m, v, k, min(VW, hi - k), sc, decay)


@jit()
def update_all(kind, sizes, offsets, p, g, m, v, sc):
    """Optimiser step on every parameter (weight decay on weights only); g is left zero."""
    decay = sc[SC_WD] != sc[SC_ZERO]
    for l in range(offsets.shape[0]):
        w0 = offsets[l]
        w1 = w0 + sizes[l] * sizes[l + 1]
        update_seg(kind, p, g, m, v, w0, w1, sc, decay)
        update_seg(kind, p, g, m, v, w1, w1 + sizes[l + 1], sc, False)


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


# ---------------------------------------------------------------- fused per-sample step (narrow)
@jit()
def phase_a(params, sizes, acts, offsets, loss, acc_mode, x, y, order, lo, B, nnext, A, D, aoff,
            nzi, nzc, sc):
    """Per sample: forward (sparse layer 0), loss/accuracy, the deltas of every layer >= 1.

    The next sample's input row (a random row of x) is prefetched while this one runs.
    """
    L = acts.shape[0]
    n_out = sizes[L]
    lsum = 0.0
    correct = 0
    for b in range(B):
        if b + 1 < nnext:
            prefetch_row(x, order[lo + b + 1])
        r = order[lo + b]
        nzc[b] = forward_one(params, sizes, acts, offsets, x, r, b, A, aoff, nzi, sc)
        ao = aoff[L] + b * n_out
        lv, c = head(loss, acts[L - 1], acc_mode, A, D, ao, y, r, n_out, sc)
        lsum += lv
        correct += c
        for l in range(L - 1, 0, -1):
            ni, no = sizes[l], sizes[l + 1]
            back_row(params, offsets[l], ni, no, D, aoff[l + 1] + b * no, aoff[l] + b * ni, A,
                     aoff[l] + b * ni, acts[l - 1], sc)
    return lsum, correct


@jit()
def phase_b(sizes, offsets, x, order, lo, B, A, D, aoff, nzi, nzc, sc, tgt, alpha):
    """tgt[W, b] += alpha * (batch gradient); layer 0 only on the rows with x != 0.

    tgt = params, alpha = -lr: the plain SGD update applied in place (layer 0 sample by
    sample, in batch order); tgt = the gradient buffer (zero between steps), alpha = 1.
    """
    L = offsets.shape[0]
    n0, n1 = sizes[0], sizes[1]
    o = offsets[0]
    d1 = aoff[1]
    for b in range(B):
        r = order[lo + b]
        do = d1 + b * n1
        if n1 <= VW:
            blk_axpy_rows(tgt, o, n1, n1, x, r * n0, nzi[b], 0, nzc[b], alpha, D, do)
        else:
            for j in range(0, n1, WB):
                axpy_rows_w(tgt, o + j, n1, min(WB, n1 - j), x, r * n0, nzi[b], 0, nzc[b],
                            alpha, D, do + j)
    bo = o + n0 * n1
    for j in range(0, n1, WB):
        mvd_w(tgt, bo + j, min(WB, n1 - j), D, d1 + j, n1, sc, SC_ONE, 0, B, alpha, True)
    for l in range(1, L):
        ni, no = sizes[l], sizes[l + 1]
        grad_rows(tgt, offsets[l], ni, no, A, aoff[l], ni, D, aoff[l + 1], no, B, alpha, sc)


@jit()
def train_serial(params, sizes, acts, offsets, loss, acc_mode, x, y, order, start, nsteps, bs,
                 kind, t0, hp, sc, m, v, A, D, aoff, nzi, nzc, G):
    """nsteps minibatch steps of the per-sample path; returns (loss sum, correct count)."""
    load_hyper(sc, hp)
    n = order.shape[0]
    direct = kind == SGD and hp[HP_WD] == 0.0
    g = G[0]
    lsum = 0.0
    correct = 0
    for s in range(nsteps):
        lo = start + s * bs
        B = min(bs, n - lo)
        sc[SC_INVB] = 1.0 / B
        nnext = n - lo if s + 1 < nsteps else B      # prefetch into the next step too
        ls, c = phase_a(params, sizes, acts, offsets, loss, acc_mode, x, y, order, lo, B, nnext,
                        A, D, aoff, nzi, nzc, sc)
        if direct:
            phase_b(sizes, offsets, x, order, lo, B, A, D, aoff, nzi, nzc, sc, params,
                    sc[SC_NEGLR])
        else:
            phase_b(sizes, offsets, x, order, lo, B, A, D, aoff, nzi, nzc, sc, g, sc[SC_ONE])
            set_step_scalars(sc, hp, t0 + s + 1)
            update_all(kind, sizes, offsets, params, g, m, v, sc)
        lsum += ls
        correct += c
    return lsum, correct


# ---------------------------------------------------------------- batched path (wide layers)
# Layers with min(n_in, n_out) >= GEMM_MIN use BLAS gemm (np.dot on contiguous 2-D views); the
# input layer stays sparse (per-sample nonzero lists), worked in column blocks that keep the
# touched part of W0 / G0 in L2 across the batch.
GEMM_MIN = 32
COLBLOCK = 64


@jit()
def batch_forward(params, sizes, acts, offsets, x, order, lo, B, A, aoff, nzi, nzc, sc):
    """Forward rows order[lo:lo+B] into A (row b of every layer block)."""
    L = acts.shape[0]
    n0, n1 = sizes[0], sizes[1]
    o = offsets[0]
    one = sc[SC_ONE]
    for b in range(B):
        if b + 1 < B:
            prefetch_row(x, order[lo + b + 1])
        nzc[b] = nonzeros(x, order[lo + b], nzi[b])
    for j0 in range(0, n1, COLBLOCK):
        j1 = min(n1, j0 + COLBLOCK)
        for b in range(B):
            r = order[lo + b]
            idx = nzi[b]
            zo = aoff[1] + b * n1
            mvs_w(A, zo + j0, j1 - j0, params, o + j0, n1, x, r * n0, idx, nzc[b], one, False)
    for b in range(B):
        bias_act(A, aoff[1] + b * n1, n1, params, o + n0 * n1, acts[0], sc)
    for l in range(1, L):
        ni, no = sizes[l], sizes[l + 1]
        o = offsets[l]
        if B >= 8 and min(ni, no) >= GEMM_MIN:
            np.dot(view2(A, aoff[l], B, ni), view2(params, o, ni, no), view2(A, aoff[l + 1], B, no))
        else:
            for b in range(B):
                mv_dense(A, aoff[l + 1] + b * no, no, params, o, A, aoff[l] + b * ni, ni, sc)
        for b in range(B):
            bias_act(A, aoff[l + 1] + b * no, no, params, o + ni * no, acts[l], sc)


@jit()
def batch_grad(params, sizes, acts, offsets, loss, acc_mode, x, y, order, lo, B, A, D, aoff,
               nzi, nzc, sc, g):
    """Forward, loss and the gradient of the batch-mean loss into g (g zero on entry)."""
    L = acts.shape[0]
    n_out = sizes[L]
    sc[SC_INVB] = 1.0 / B
    batch_forward(params, sizes, acts, offsets, x, order, lo, B, A, aoff, nzi, nzc, sc)
    lsum = 0.0
    correct = 0
    for b in range(B):
        lv, c = head(loss, acts[L - 1], acc_mode, A, D, aoff[L] + b * n_out, y, order[lo + b],
                     n_out, sc)
        lsum += lv
        correct += c
    one = sc[SC_ONE]
    for l in range(L - 1, 0, -1):
        ni, no = sizes[l], sizes[l + 1]
        o = offsets[l]
        if B >= 8 and min(ni, no) >= GEMM_MIN:
            Al = view2(A, aoff[l], B, ni)
            Dn = view2(D, aoff[l + 1], B, no)
            np.dot(Al.T, Dn, view2(g, o, ni, no))
            bo = o + ni * no
            for j in range(0, no, WB):
                mvd_w(g, bo + j, min(WB, no - j), D, aoff[l + 1] + j, no, sc, SC_ONE, 0, B, one,
                      True)
            np.dot(Dn, view2(params, o, ni, no).T, view2(D, aoff[l], B, ni))
            deriv_rows(acts[l - 1], A[aoff[l]:aoff[l] + B * ni], D[aoff[l]:aoff[l] + B * ni], sc)
        else:
            grad_rows(g, o, ni, no, A, aoff[l], ni, D, aoff[l + 1], no, B, one, sc)
            for b in range(B):
                back_row(params, o, ni, no, D, aoff[l + 1] + b * no, aoff[l] + b * ni, A,
                         aoff[l] + b * ni, acts[l - 1], sc)
    n0, n1 = sizes[0], sizes[1]
    o = offsets[0]
    for j0 in range(0, n1, COLBLOCK):
        j1 = min(n1, j0 + COLBLOCK)
        for b in range(B):
            r = order[lo + b]
            axpy_rows_w(g, o + j0, n1, j1 - j0, x, r * n0, nzi[b], 0, nzc[b], one, D,
                        aoff[1] + b * n1 + j0)
    bo = o + n0 * n1
    for j in range(0, n1, WB):
        mvd_w(g, bo + j, min(WB, n1 - j), D, aoff[1] + j, n1, sc, SC_ONE, 0, B, one, True)
    return lsum, correct


@jit()
def train_batched(params, sizes, acts, offsets, loss, acc_mode, x, y, order, start, nsteps, bs,
                  kind, t0, hp, sc, m, v, A, D, aoff, nzi, nzc, G):
    """nsteps minibatch steps of the batched path; returns (loss sum, correct count)."""
    load_hyper(sc, hp)
    n = order.shape[0]
    g = G[0]
    lsum = 0.0
    correct = 0
    for s in range(nsteps):
        lo = start + s * bs
        B = min(bs, n - lo)
        ls, c = batch_grad(params, sizes, acts, offsets, loss, acc_mode, x, y, order, lo, B, A,
                           D, aoff, nzi, nzc, sc, g)
        set_step_scalars(sc, hp, t0 + s + 1)
        update_all(kind, sizes, offsets, params, g, m, v, sc)
        lsum += ls
        correct += c
    return lsum, correct


@jit()
def loss_grad_kernel(params, sizes, acts, offsets, loss, x, y, order, A, D, aoff, nzi, nzc, sc,
                     grad):
    """Mean loss over all rows of x and its gradient into grad."""
    grad[:] = sc[SC_ZERO]
    B = x.shape[0]
    ls, _ = batch_grad(params, sizes, acts, offsets, loss, ACC_NONE, x, y, order, 0, B, A, D,
                       aoff, nzi, nzc, sc, grad)
    return ls / B


# ---------------------------------------------------------------- prediction
@jit()
def predict_serial(params, sizes, acts, offsets, x, out, A, aoff, nzi, nzc, sc, batched):
    """out[r] = network(x[r]): per sample (narrow nets) or in chunks of the workspace (gemm)."""
    L = acts.shape[0]
    n_out = sizes[L]
    N = x.shape[0]
    bs = nzi.shape[0]
    ao = aoff[L]
    if batched and N > 1:
        order = np.arange(N)
        for lo in range(0, N, bs):
            B = min(bs, N - lo)
            batch_forward(params, sizes, acts, offsets, x, order, lo, B, A, aoff, nzi, nzc, sc)
            for b in range(B):
                for j in range(n_out):
                    out[lo + b, j] = A[ao + b * n_out + j]
        return
    for r in range(N):
        if r + 1 < N:
            prefetch_row(x, r + 1)
        forward_one(params, sizes, acts, offsets, x, r, 0, A, aoff, nzi, sc)
        for j in range(n_out):
            out[r, j] = A[ao + j]


@jit()
def predict_one(params, lay, x, out, F, nzi):
    """out = network(x) for one 1-D sample; returns False (out untouched) if x has NaN/inf.

    Few arguments on purpose (each array costs ~50 ns to unbox per call from Python):
    lay = [sizes, acts, offsets, aoff] (int64), F = [sc, A] (the workspace's scalars and
    activations, see numba_backend.Workspace).
    """
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return False
    L = (lay.shape[0] - 2) // 4
    sizes, acts = lay[0:L + 1], lay[L + 1:2 * L + 1]
    offsets, aoff = lay[2 * L + 1:3 * L + 1], lay[3 * L + 1:4 * L + 2]
    sc, A = F[:N_SC], F[SC_PAD:]
    n_out = sizes[L]
    forward_one(params, sizes, acts, offsets, x.reshape((1, x.shape[0])), 0, 0, A, aoff, nzi, sc)
    ao = aoff[L]
    for j in range(n_out):
        out[j] = A[ao + j]
    return True
