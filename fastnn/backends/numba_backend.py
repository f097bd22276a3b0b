"""The Numba backend: fused, GIL-free kernels for the training loop and for prediction.

The maths is numpy_backend.py's; the kernels live in fastnn/_nb/kernels.py. Importing this
module compiles nothing: each kernel compiles (or loads from fastnn's disk cache, see
fastnn/_nb/config.py) on its first call, or ahead of time with ``warmup()``.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .._nb import kernels as K
from ..threads import get_num_threads as _get_num_threads

name = "numba"


def _zeros(n, dt):
    """Zeroed 1-D array of n elements whose data starts on a 64-byte boundary (vector rows
    that straddle cache lines cost split loads/stores)."""
    dt = np.dtype(dt)
    raw = np.zeros(n + 64 // dt.itemsize, dtype=dt)
    skip = (-raw.ctypes.data % 64) // dt.itemsize
    return raw[skip:skip + n]


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
        # scalars (sc) and layer outputs (A) share one buffer, and the layout arrays one int64
        # array (lay), so the single-sample predict call unboxes few arguments
        self.F = _zeros(K.SC_PAD + max(tot, 1), dt)
        self.sc = self.F[:K.N_SC]
        init_scalars(self.sc)
        self.A = self.F[K.SC_PAD:]                      # layer outputs, rows of the batch
        self.lay = np.concatenate([np.asarray(a, dtype=np.int64) for a in
                                   (sizes, net.acts, net.offsets, aoff)])
        self.D = _zeros(max(tot, 1), dt)                # matching deltas
        # nonzero inputs per row (+16 slots: the compress writes whole vectors)
        self.nzi = np.zeros((bs, int(sizes[0]) + 16), dtype=np.int32)
        self.nzc = np.zeros(bs, dtype=np.int64)
        self.G = _zeros(net.n_params, dt).reshape(1, -1)              # gradient, kept zero
        self.batched = use_batched(net, bs)
        # BLAS threads only for big gemms: waking OpenBLAS threads costs more than a small
        # gemm saves (and collapses on a loaded machine)
        work = max([bs * int(sizes[l]) * int(sizes[l + 1]) for l in range(1, L)
                    if min(sizes[l], sizes[l + 1]) >= K.GEMM_MIN] or [0])
        self.blas_parallel = work >= BLAS_PARALLEL_MIN_WORK
        self.hp = np.zeros(K.N_HP, dtype=np.float64)


# The batched (gemm) path pays once some layer is this wide; narrow nets use per-sample loops.
BATCHED_MIN_WIDTH = 64
BATCHED_MIN_BATCH = 8
# multiply-adds of a step's largest gemm before BLAS may use more than one thread. Measured
# on the shared 2-core box: wide-512 b256 (6.7e7) ran at 13k samples/s with 2 BLAS threads
# against 39k/s with 1, so only much bigger gemms get BLAS threads.
BLAS_PARALLEL_MIN_WORK = 1 << 30


def use_batched(net, batch_size):
    return (batch_size >= BATCHED_MIN_BATCH
            and int(np.max(net.sizes[1:])) >= BATCHED_MIN_WIDTH)


_blas = {"ctl": None}


def _blas_threads(n):
    """Set the BLAS that numba's np.dot calls (scipy's OpenBLAS) to n threads for one kernel
    call; returns what ``_blas_restore`` needs to put the previous counts back.

    numba binds scipy.linalg.cython_blas, which may be loaded only when the gemm path first
    compiles, i.e. after a ``fastnn.threads.threads(n)`` block took its snapshot; so the count
    is checked here on every call (a few ctypes calls). Uncapped OpenBLAS threads on a busy
    machine cost up to 50x on small gemms.
    """
    saved = []
    try:
        if _blas["ctl"] is None:
            import scipy.linalg.cython_blas  # noqa: F401 - load the library numba uses
            from threadpoolctl import ThreadpoolController
            libs = ThreadpoolController().select(user_api="blas").lib_controllers
            scipy_libs = [lib for lib in libs      # scipy's own copy, not numpy's
                          if "scipy" in os.path.basename(os.path.dirname(str(lib.filepath)))]
            _blas["ctl"] = scipy_libs or libs
        for lib in _blas["ctl"]:
            old = lib.num_threads
            if old != n:
                lib.set_num_threads(n)
                saved.append((lib, old))
    except Exception:  # noqa: BLE001 - no threadpoolctl / scipy: leave BLAS as it is
        _blas["ctl"] = []
    return saved


def _blas_restore(saved):
    for lib, old in saved:
        try:
            lib.set_num_threads(old)
        except Exception:  # noqa: BLE001
            pass


def init_scalars(sc):
    sc[K.SC_ONE] = 1.0
    sc[K.SC_HALF] = 0.5
    sc[K.SC_LEAKY] = 0.01
    sc[K.SC_TINY] = np.finfo(sc.dtype).tiny


def workspace(net, batch_size):
    return Workspace(net, batch_size)


def predict(net, x, out, ws):
    saved = []
    if ws.batched and len(x) > 1:
        saved = _blas_threads(_get_num_threads() if ws.blas_parallel else 1)
    try:
        K.predict_serial(net.params, net.sizes, net.acts, net.offsets, x, out, ws.A, ws.aoff,
                         ws.nzi, ws.nzc, ws.sc, ws.batched)
    finally:
        _blas_restore(saved)


def predict_one(net, x, out, ws):
    """Single-sample fast path: out (n_out,) = network(x (n_in,)); False if x has NaN/inf."""
    return K.predict_one(net.params, ws.lay, x, out, ws.F, ws.nzi)


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
    kern = K.train_serial
    saved = []
    if ws.batched:
        saved = _blas_threads(_get_num_threads() if ws.blas_parallel else 1)
        kern = K.train_batched
    try:
        ls, c = kern(net.params, net.sizes, net.acts, net.offsets, net.loss, acc_mode, x, y,
                     order, start, nsteps, batch_size, opt.kind, opt.t, ws.hp, ws.sc, m, v, ws.A,
                     ws.D, ws.aoff, ws.nzi, ws.nzc, ws.G)
    finally:
        _blas_restore(saved)
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
