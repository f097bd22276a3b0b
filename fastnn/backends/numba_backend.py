"""The Numba backend: fused, GIL-free kernels for the training loop and for prediction.

The maths is numpy_backend.py's; the kernels live in fastnn/_nb/kernels.py. Importing this
module compiles nothing: each kernel compiles (or loads from fastnn's disk cache, see
fastnn/_nb/config.py) on its first call, or ahead of time with ``warmup()``.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from .._nb import kernels as K
from ..threads import get_num_threads as _get_num_threads

name = "numba"


class Workspace:
    """Every buffer a step needs, allocated once for one batch size."""

    def __init__(self, net, batch_size):
        self.batch_size = bs = int(batch_size)
        sizes = net.sizes
        dt = net.dtype
        L = len(net.acts)
        aoff = np.zeros(L + 1, dtype=np.int64)
        tot = 0
        for l in range(1, L + 1):
            aoff[l] = tot
            tot += bs * int(sizes[l])
        self.aoff = aoff
        self.A = np.zeros(max(tot, 1), dtype=dt)        # layer outputs, rows of the batch
        self.D = np.zeros(max(tot, 1), dtype=dt)        # matching deltas
        self.nzi = np.zeros((bs, int(sizes[0])), dtype=np.int32)   # nonzero inputs per row
        self.nzc = np.zeros(bs, dtype=np.int64)
        self.n_threads = max(1, int(numba.config.NUMBA_NUM_THREADS))
        self.G = np.zeros((1, net.n_params), dtype=dt)                # gradient
        # batched path: column index of the batch's nonzero inputs, per-thread row scratch
        self.batched = use_batched(net, bs)
        nb_in = int(sizes[0]) if self.batched else 0
        self.cstart = np.zeros(nb_in + 1, dtype=np.int64)
        self.cb = np.zeros(bs * nb_in, dtype=np.int32)
        self.grow = np.zeros((self.n_threads, int(sizes[1])), dtype=dt)
        self.sc = make_scalars(dt)
        self.hp = np.zeros(K.N_HP, dtype=np.float64)


# The batched (gemm) path pays once some layer is this wide; narrow nets use per-sample loops.
BATCHED_MIN_WIDTH = 64
BATCHED_MIN_BATCH = 8


def use_batched(net, batch_size):
    return (batch_size >= BATCHED_MIN_BATCH
            and int(np.max(net.sizes[1:])) >= BATCHED_MIN_WIDTH)


def _chunks(ws):
    n = max(1, min(_get_num_threads(), ws.n_threads))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


_blas = {"ctl": None}


def _blas_threads(n):
    """Cap the BLAS that numba's np.dot calls (scipy's OpenBLAS) at fastnn's thread count.

    numba binds scipy.linalg.cython_blas, which may be loaded only when the gemm path first
    compiles, i.e. after a ``fastnn.threads.threads(n)`` block took its snapshot; so the cap is
    checked here on every call (a few ctypes calls). Uncapped OpenBLAS threads on a busy
    machine cost up to 50x on small gemms.
    """
    try:
        if _blas["ctl"] is None:
            import scipy.linalg.cython_blas  # noqa: F401 - load the library numba uses
            from threadpoolctl import ThreadpoolController
            _blas["ctl"] = ThreadpoolController().select(user_api="blas").lib_controllers
        for lib in _blas["ctl"]:
            if lib.num_threads != n:
                lib.set_num_threads(n)
    except Exception:  # noqa: BLE001 - no threadpoolctl / scipy: leave BLAS as it is
        _blas["ctl"] = []


def make_scalars(dt):
    sc = np.zeros(K.N_SC, dtype=dt)
    sc[K.SC_ONE] = 1.0
    sc[K.SC_HALF] = 0.5
    sc[K.SC_LEAKY] = 0.01
    sc[K.SC_TINY] = np.finfo(dt).tiny
    return sc


def workspace(net, batch_size):
    return Workspace(net, batch_size)


def predict(net, x, out, ws):
    K.predict_serial(net.params, net.sizes, net.acts, net.offsets, x, out, ws.A, ws.aoff,
                     ws.nzi, ws.nzc, ws.sc)


def predict_one(net, x, out, ws):
    """Single-sample fast path: out (n_out,) = network(x (n_in,)); False if x has NaN/inf."""
    return K.predict_one(net.params, net.sizes, net.acts, net.offsets, x, out, ws.A, ws.aoff,
                         ws.nzi, ws.nzc, ws.sc)


def loss_grad(net, x, y, grad, ws=None):
    n = len(x)
    if ws is None or ws.batch_size < n:
        ws = Workspace(net, n)
    order = np.arange(n, dtype=np.int64)
    g = np.zeros(net.n_params, dtype=net.dtype)
    loss = K.loss_grad_kernel(net.params, net.sizes, net.acts, net.offsets, net.loss, x, y,
                              order, ws.A, ws.D, ws.aoff, ws.nzi, ws.nzc, ws.sc, g)
    grad[...] = g
    return float(loss)


def _hyper(opt, hp):
    hp[K.HP_LR] = opt.lr
    hp[K.HP_MU] = opt.momentum
    hp[K.HP_B1] = opt.beta1
    hp[K.HP_B2] = opt.beta2
    hp[K.HP_EPS] = opt.eps
    hp[K.HP_WD] = opt.weight_decay


def train_steps(net, opt, x, y, order, start, nsteps, batch_size, ws, acc_mode):
    _hyper(opt, ws.hp)
    m, v = opt.m, opt.v
    if m is None or m.size == 0:
        m = ws.sc[:0]
    if v is None or v.size == 0:
        v = ws.sc[:0]
    if ws.batched:
        nch = _chunks(ws)
        _blas_threads(nch)
        ls, c = K.train_batched(net.params, net.sizes, net.acts, net.offsets, net.loss, acc_mode,
                                x, y, order, start, nsteps, batch_size, opt.kind, opt.t, ws.hp,
                                ws.sc, m, v, ws.A, ws.D, ws.aoff, ws.nzi, ws.nzc, ws.G,
                                ws.cstart, ws.cb, ws.grow, nch)
        opt.t += nsteps
        return float(ls), int(c)
    ls, c = K.train_serial(net.params, net.sizes, net.acts, net.offsets, net.loss, acc_mode, x,
                           y, order, start, nsteps, batch_size, opt.kind, opt.t, ws.hp, ws.sc,
                           m, v, ws.A, ws.D, ws.aoff, ws.nzi, ws.nzc, ws.G)
    opt.t += nsteps
    return float(ls), int(c)


def warmup(dtypes=("float32", "float64")):
    """Compile (or load from the disk cache) every kernel by running tiny calls; seconds taken."""
    from ..network import Network
    from ..optimizers import SGD, Adam

    t0 = time.perf_counter()
    for dt in dtypes:
        # (sizes, batch): the per-sample path, then the gemm path (a layer >= 64 wide)
        for sizes, bs in (([3, 4, 2], 2), ([3, BATCHED_MIN_WIDTH, 2], BATCHED_MIN_BATCH)):
            net = Network(sizes, ["sigmoid", "softmax"], "cross_entropy", dt)
            net.initialize(["glorot_uniform", "glorot_uniform"], 0)
            n = 2 * bs
            x = np.ones((n, 3), dtype=net.dtype)
            y = np.zeros((n, 2), dtype=net.dtype)
            y[:, 0] = 1
            order = np.arange(n, dtype=np.int64)
            for opt in (SGD(0.1), Adam()):
                opt.bind(net.n_params, net.dtype)
                ws = workspace(net, bs)
                train_steps(net, opt, x, y, order, 0, 2, bs, ws, 1)
            out = np.empty((n, 2), dtype=net.dtype)
            predict(net, x, out, ws)
            predict(net, x[:1], out[:1], ws)
        loss_grad(net, x, y, np.empty_like(net.params))
    return time.perf_counter() - t0
