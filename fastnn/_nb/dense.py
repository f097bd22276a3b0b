"""Row-level pieces of a dense layer, shared by every kernel (maths: numpy_backend.py).

A layer is one record of the layer table (see LAYER in numba_backend.py): sizes ``n_in``,
``n_out``, activation code ``act``, offsets ``w`` and ``b`` of its weights and biases in the
flat parameters, and ``a``: where its output rows start in the workspace buffers (A holds
outputs, D the matching deltas, rows of ``n_out``). W is a row-major (n_in, n_out) view, so
every inner loop runs over the contiguous output index j: plain counted loops that LLVM
vectorises (fastmath lets it reorder the sums). Sums over inputs take four rows of W per pass
so the output row is loaded and stored once per four inputs.
"""

from __future__ import annotations

import math

from ..codes import LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SOFTMAX, TANH
from .jit import kernel


# ---------------------------------------------------------------- views into flat buffers
# 1-D slices cost about a nanosecond; numba's reshape costs 50-150 ns, so the per-sample code
# takes rows, and only the batched path (once per layer and step) builds 2-D views.
@kernel
def weight_row(params, o, ld, i, n):
    """n weights of row i of a row-major matrix at offset o with ld columns (a 1-D view).

    Kernels read a layer record's fields into such ints once: numba cannot keep them in
    registers across the stores of a loop that might alias the record.
    """
    start = o + i * ld
    return params[start:start + n]


@kernel
def biases(params, lay):
    return params[lay["b"]:lay["b"] + lay["n_out"]]


@kernel
def row(buf, lay, b):
    """Row b of a layer's block in a workspace buffer (A: outputs, D: deltas)."""
    n = lay["n_out"]
    return buf[lay["a"] + b * n:lay["a"] + (b + 1) * n]


@kernel
def weights(params, lay):
    """The (n_in, n_out) weight matrix of a layer (a view of the flat parameters)."""
    n_in, n_out = lay["n_in"], lay["n_out"]
    return params[lay["w"]:lay["w"] + n_in * n_out].reshape((n_in, n_out))


@kernel
def rows(buf, lay, B):
    """Rows 0..B-1 of a layer's block in a workspace buffer: shape (B, n_out)."""
    n = lay["n_out"]
    return buf[lay["a"]:lay["a"] + B * n].reshape((B, n))


# ---------------------------------------------------------------- activations
@kernel
def add_bias_activate(z, bias, code):
    """z = f(z + bias) in place, for one row."""
    one = z.dtype.type(1)
    zero = z.dtype.type(0)
    n = z.shape[0]
    if code == SIGMOID:
        for j in range(n):
            z[j] = one / (one + math.exp(-(z[j] + bias[j])))
    elif code == RELU:
        for j in range(n):
            v = z[j] + bias[j]
            z[j] = zero if v < zero else v          # NaN stays NaN, like np.maximum
    elif code == TANH:
        for j in range(n):
            z[j] = math.tanh(z[j] + bias[j])
    elif code == LEAKY_RELU:
        slope = z.dtype.type(LEAKY_SLOPE)
        for j in range(n):
            v = z[j] + bias[j]
            z[j] = v * slope if v < zero else v
    elif code == SOFTMAX:
        for j in range(n):
            z[j] += bias[j]
        top = z[0]
        for j in range(1, n):
            top = max(top, z[j])
        total = zero
        for j in range(n):
            z[j] = math.exp(z[j] - top)
            total += z[j]
        for j in range(n):
            z[j] = z[j] / total
    else:                                           # identity
        for j in range(n):
            z[j] += bias[j]


@kernel
def times_derivative(d, a, code):
    """d *= f'(z), written with the layer's output a (as numpy_backend's act.backward)."""
    one = d.dtype.type(1)
    zero = d.dtype.type(0)
    n = d.shape[0]
    if code == SIGMOID:
        for j in range(n):
            d[j] = d[j] * (a[j] * (one - a[j]))
    elif code == RELU:
        for j in range(n):
            d[j] = zero if a[j] <= zero else d[j]
    elif code == TANH:
        for j in range(n):
            d[j] = d[j] * (one - a[j] * a[j])
    elif code == LEAKY_RELU:
        slope = d.dtype.type(LEAKY_SLOPE)
        for j in range(n):
            d[j] = d[j] * slope if a[j] <= zero else d[j]


# ---------------------------------------------------------------- matrix-vector pieces
@kernel
def list_nonzeros(xr, idx):
    """Indices of the nonzero entries of the row xr into idx; returns their count.

    Branch-free (always store, advance on nonzero): MNIST rows mix zeros and ink
    unpredictably. NaN counts as nonzero, so it reaches the output as in NumPy.
    """
    k = 0
    for i in range(xr.shape[0]):
        idx[k] = i
        k += xr[i] != 0
    return k


@kernel
def touch_row(xr):
    """Read one value per 64-byte line of xr, so the cache misses of the next sample's input
    row (a random row of x) overlap this sample's work; numba offers no prefetch. The caller
    keeps the sum (see ``serial.sample_pass``) so the loads are not optimised away."""
    s = xr.dtype.type(0)
    for i in range(0, xr.shape[0], 64 // xr.itemsize):
        s += xr[i]
    return s


@kernel
def sparse_matvec(z, params, lay, j0, xr, idx, nnz):
    """z = sum of xr[i] * W[i, j0:j0+len(z)] over the listed inputs i = idx[:nnz].

    Eight rows per pass: z is loaded and stored once per eight inputs, and the loop body is
    big enough that LLVM vectorises it without interleaving (which would need >= 32 lanes).
    """
    n = z.shape[0]
    o, ld = lay["w"] + j0, lay["n_out"]
    for j in range(n):
        z[j] = 0
    k = 0
    while k + 8 <= nnz:
        i0, i1, i2, i3 = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
        i4, i5, i6, i7 = idx[k + 4], idx[k + 5], idx[k + 6], idx[k + 7]
        c0, c1, c2, c3 = xr[i0], xr[i1], xr[i2], xr[i3]
        c4, c5, c6, c7 = xr[i4], xr[i5], xr[i6], xr[i7]
        w0, w1 = weight_row(params, o, ld, i0, n), weight_row(params, o, ld, i1, n)
        w2, w3 = weight_row(params, o, ld, i2, n), weight_row(params, o, ld, i3, n)
        w4, w5 = weight_row(params, o, ld, i4, n), weight_row(params, o, ld, i5, n)
        w6, w7 = weight_row(params, o, ld, i6, n), weight_row(params, o, ld, i7, n)
        for j in range(n):
            z[j] += (((c0 * w0[j] + c1 * w1[j]) + (c2 * w2[j] + c3 * w3[j]))
                     + ((c4 * w4[j] + c5 * w5[j]) + (c6 * w6[j] + c7 * w7[j])))
        k += 8
    while k < nnz:
        c = xr[idx[k]]
        w = weight_row(params, o, ld, idx[k], n)
        for j in range(n):
            z[j] += c * w[j]
        k += 1


@kernel
def matvec(z, params, lay, a):
    """z = a @ W for one input row a (n_in) of a layer; eight rows of W per pass."""
    n = z.shape[0]
    n_in = a.shape[0]
    o = lay["w"]
    for j in range(n):
        z[j] = 0
    i = 0
    while i + 8 <= n_in:
        c0, c1, c2, c3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        c4, c5, c6, c7 = a[i + 4], a[i + 5], a[i + 6], a[i + 7]
        w0, w1 = weight_row(params, o, n, i, n), weight_row(params, o, n, i + 1, n)
        w2, w3 = weight_row(params, o, n, i + 2, n), weight_row(params, o, n, i + 3, n)
        w4, w5 = weight_row(params, o, n, i + 4, n), weight_row(params, o, n, i + 5, n)
        w6, w7 = weight_row(params, o, n, i + 6, n), weight_row(params, o, n, i + 7, n)
        for j in range(n):
            z[j] += (((c0 * w0[j] + c1 * w1[j]) + (c2 * w2[j] + c3 * w3[j]))
                     + ((c4 * w4[j] + c5 * w5[j]) + (c6 * w6[j] + c7 * w7[j])))
        i += 8
    while i < n_in:
        c = a[i]
        w = weight_row(params, o, n, i, n)
        for j in range(n):
            z[j] += c * w[j]
        i += 1


@kernel
def backprop_row(dprev, params, lay, d, aprev, code):
    """dprev = (W @ d) * f'(aprev): the deltas of a layer's inputs for one sample."""
    n = d.shape[0]
    o = lay["w"]
    for i in range(dprev.shape[0]):
        w = weight_row(params, o, n, i, n)
        s = d.dtype.type(0)
        for j in range(n):
            s += w[j] * d[j]
        dprev[i] = s
    times_derivative(dprev, aprev, code)


# ---------------------------------------------------------------- gradient pieces
@kernel
def add_outer_sparse(target, lay, j0, alpha, xr, idx, nnz, d):
    """W[i, j0:j0+len(d)] += (alpha * xr[i]) * d for the listed inputs i, W a layer's block
    of ``target`` (the parameters for a direct SGD step, or the gradient)."""
    n = d.shape[0]
    o, ld = lay["w"] + j0, lay["n_out"]
    for k in range(nnz):
        i = idx[k]
        c = alpha * xr[i]
        w = weight_row(target, o, ld, i, n)
        for j in range(n):
            w[j] += c * d[j]


@kernel
def add_outer(target, lay, alpha, a, d):
    """W += alpha * outer(a, d) for one sample: a the layer's input row, d its delta row."""
    n = d.shape[0]
    o = lay["w"]
    for i in range(a.shape[0]):
        c = alpha * a[i]
        w = weight_row(target, o, n, i, n)
        for j in range(n):
            w[j] += c * d[j]


@kernel
def add_scaled(out, alpha, d):
    """out += alpha * d (one row: a bias gradient, or its SGD step)."""
    for j in range(d.shape[0]):
        out[j] += alpha * d[j]
