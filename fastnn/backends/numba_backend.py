"""The Numba backend: fused, GIL-free kernels for the training loop and for prediction.

The maths is numpy_backend.py's; the kernels are plain ``@njit`` code in fastnn/_nb (see
fastnn/_nb/jit.py for the flags and the disk cache). Importing this module compiles nothing:
each kernel compiles (or loads from the cache) on its first call, or ahead of time with
``warmup()``. Under NUMBA_DISABLE_JIT=1 the same kernel source runs as plain Python.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .._nb import batched, optim, serial
from .._nb import predict as _predict
from .._nb.jit import CACHE_DIR, FASTMATH, JIT_DISABLED
from ..threads import get_num_threads as _get_num_threads

name = "numba"

# One record per layer: sizes, activation code, offsets of W and b in the flat parameters,
# and where the layer's output rows start in the workspace buffers A (outputs) / D (deltas).
LAYER = np.dtype([("n_in", np.int64), ("n_out", np.int64), ("act", np.int64),
                  ("w", np.int64), ("b", np.int64), ("a", np.int64)])

# The batched (gemm) path pays once some layer is this wide; narrow nets use per-sample loops.
BATCHED_MIN_WIDTH = 64
BATCHED_MIN_BATCH = 8
# multiply-adds of a step's largest gemm before BLAS may use more than one thread. Measured
# on the shared 2-core box: wide-512 b256 (6.7e7) ran at 13k samples/s with 2 BLAS threads
# against 39k/s with 1, so only much bigger gemms get BLAS threads.
BLAS_PARALLEL_MIN_WORK = 1 << 30


def _zeros(n, dt):
    """Zeroed 1-D array of n elements whose data starts on a 64-byte boundary (vector rows
    that straddle cache lines cost split loads/stores)."""
    dt = np.dtype(dt)
    raw = np.zeros(n + 64 // dt.itemsize, dtype=dt)
    skip = (-raw.ctypes.data % 64) // dt.itemsize
    return raw[skip:skip + n]


def layer_table(net, batch_size):
    """The LAYER records of a network for workspace buffers of ``batch_size`` rows."""
    L = net.n_layers
    lay = np.zeros(L, dtype=LAYER)
    lay["n_in"], lay["n_out"] = net.sizes[:-1], net.sizes[1:]
    lay["act"] = net.acts
    lay["w"] = net.offsets
    lay["b"] = net.offsets + net.sizes[:-1] * net.sizes[1:]
    lay["a"] = np.concatenate([[0], np.cumsum(batch_size * net.sizes[1:-1])])
    return lay


def use_batched(net, batch_size):
    return (batch_size >= BATCHED_MIN_BATCH
            and int(np.max(net.sizes[1:])) >= BATCHED_MIN_WIDTH)


class Workspace:
    """Every buffer a step needs, allocated once for one batch size."""

    def __init__(self, net, batch_size):
        self.batch_size = bs = int(batch_size)
        self.layers = layer_table(net, bs)
        total = max(1, bs * int(np.sum(net.sizes[1:])))
        self.A = _zeros(total, net.dtype)               # every layer's outputs, by rows
        self.D = _zeros(total, net.dtype)               # the matching deltas
        self.nzi = np.zeros((bs, int(net.sizes[0])), dtype=np.int32)   # nonzero inputs
        self.nzc = np.zeros(bs, dtype=np.int64)                         # and their count
        self.grad = _zeros(net.n_params, net.dtype)     # gradient, zero between steps
        self.bufs = (self.A, self.D, self.nzi, self.nzc, self.grad)
        self.batched = use_batched(net, bs)
        # BLAS threads only for big gemms: waking OpenBLAS threads costs more than a small
        # gemm saves (and collapses on a loaded machine)
        pairs = zip(net.sizes[1:-1], net.sizes[2:], strict=True)
        work = max([bs * int(i) * int(o) for i, o in pairs if min(i, o) >= batched.GEMM_MIN]
                   or [0])
        self.blas_parallel = work >= BLAS_PARALLEL_MIN_WORK
        self.hyper = np.zeros(optim.N_HYPER, dtype=np.float64)


def workspace(net, batch_size):
    return Workspace(net, batch_size)


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


def _blas_for(ws, rows):
    if ws.batched and rows > 1:
        return _blas_threads(_get_num_threads() if ws.blas_parallel else 1)
    return []


def predict(net, x, out, ws):
    saved = _blas_for(ws, len(x))
    try:
        _predict.predict(net.params, ws.layers, x, out, ws.A, ws.nzi, ws.nzc, ws.batched)
    finally:
        _blas_restore(saved)


def predict_one(net, x, out, ws):
    """Single-sample fast path: out (n_out,) = network(x (n_in,)); False if x has NaN/inf."""
    return _predict.predict_one(net.params, ws.layers, x, out, ws.A, ws.nzi)


def loss_grad(net, x, y, grad, ws=None):
    n = len(x)
    if ws is None or ws.batch_size < n:
        ws = Workspace(net, n)
    saved = _blas_for(ws, n)
    try:
        return float(batched.loss_grad(net.params, ws.layers, x, y, ws.bufs, net.loss, grad))
    finally:
        _blas_restore(saved)


def grad_step(net, x, y, order, start, batch_size, grad, ws, scale, acc_mode):
    """grad = scale * gradient of the summed loss of rows order[start : start+batch_size];
    returns (that loss sum, correct count). See numpy_backend.grad_step."""
    B, start = int(batch_size), int(start)
    if not 1 <= B <= ws.batch_size:
        raise ValueError(f"batch_size {B} does not fit the workspace ({ws.batch_size} rows)")
    if start < 0 or start + B > len(order):
        raise ValueError(f"rows [{start}, {start + B}) run past the order ({len(order)} rows)")
    rows = order[start:start + B]
    if rows.min() < 0 or rows.max() >= len(x):
        raise IndexError(f"order: indices must be in [0, {len(x)})")
    _check_grad(net, grad)
    saved = _blas_for(ws, B)
    try:
        loss_sum, correct = batched.grad_step(net.params, ws.layers, x, y, order, start, B,
                                              ws.bufs, (int(net.loss), int(acc_mode)), grad,
                                              net.dtype.type(scale * B))
    finally:
        _blas_restore(saved)
    return float(loss_sum), int(correct)


def apply_update(net, opt, grad):
    """One optimiser step from a ready gradient: counts the step (opt.t += 1), then updates as
    ``train_steps`` does. ``grad`` is left zero."""
    _check_grad(net, grad)
    if int(opt.kind) not in optim.KINDS:
        raise ValueError(f"unknown optimiser kind {opt.kind}")
    empty = grad[:0]
    need = 2 if opt.kind == optim.ADAM else (1 if opt.kind in (optim.MOMENTUM, optim.NESTEROV)
                                             else 0)
    for i, buf in enumerate((opt.m, opt.v)[:need]):
        _check_grad(net, buf, "opt.v" if i else "opt.m")
    m = opt.m if need >= 1 else empty
    v = opt.v if need >= 2 else empty
    hyper = _hyper(opt, np.zeros(optim.N_HYPER, dtype=np.float64))
    opt.t += 1
    optim.apply_update(int(opt.kind), layer_table(net, 1), net.params, grad, m, v, hyper,
                       int(opt.t))


def _check_grad(net, grad, name="grad"):
    """A flat array like net.params (a numba kernel would read or write out of bounds)."""
    if not (isinstance(grad, np.ndarray) and grad.dtype == net.dtype
            and grad.shape == net.params.shape and grad.flags.c_contiguous):
        raise ValueError(f"{name}: expected a C-contiguous {net.dtype} array of shape "
                         f"{net.params.shape}")


def _hyper(opt, hyper):
    hyper[optim.LR] = opt.lr
    hyper[optim.MOMENTUM_SLOT] = opt.momentum
    hyper[optim.BETA1] = opt.beta1
    hyper[optim.BETA2] = opt.beta2
    hyper[optim.EPS] = opt.eps
    hyper[optim.WEIGHT_DECAY] = opt.weight_decay
    return hyper


def train_steps(net, opt, x, y, order, start, nsteps, batch_size, ws, acc_mode):
    empty = ws.grad[:0]
    m = opt.m if opt.m is not None and opt.m.size else empty
    v = opt.v if opt.v is not None and opt.v.size else empty
    args = (net.params, ws.layers, (x, y, order), (int(start), int(nsteps), int(batch_size)),
            (int(opt.kind), int(opt.t), _hyper(opt, ws.hyper), m, v), ws.bufs,
            (int(net.loss), int(acc_mode)))
    saved = _blas_for(ws, batch_size)
    try:
        kern = batched.train_batched if ws.batched else serial.train_serial
        loss_sum, correct = kern(*args)
    finally:
        _blas_restore(saved)
    opt.t += nsteps
    return float(loss_sum), int(correct)


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
            predict_one(net, x[0], out[0], ws)
        loss_grad(net, x, y, np.empty_like(net.params))
    return time.perf_counter() - t0


def build_info():
    """How the kernels are compiled: numba version, flags, cache directory, BLAS."""
    import numba

    return {
        "backend": name,
        "numba": numba.__version__,
        "jit": "disabled (NUMBA_DISABLE_JIT=1)" if JIT_DISABLED else "njit",
        "fastmath": sorted(FASTMATH),
        "cache_dir": CACHE_DIR or "none (not writable: compiled in every process)",
        "blas": "scipy.linalg.cython_blas (numba np.dot)",
        "batched_min_width": BATCHED_MIN_WIDTH,
    }
