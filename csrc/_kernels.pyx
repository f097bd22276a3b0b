# cython: language_level=3
"""fastnn._kernels: the Cython front of the C kernels in csrc/fnn_*.c.

Every def function here validates its arrays (type, dtype, shape, C-contiguity, sizes against the
network layout) before handing raw pointers to C with the GIL released, so a malformed array
raises a Python exception instead of letting a kernel read out of bounds.

The hot loops are C (csrc/fnn_impl.h), compiled three times (baseline, AVX2+FMA, AVX-512) and
picked at import by CPU detection, so the default build is portable and still uses the widest
vectors the machine has. Wide layers go through BLAS (scipy.linalg.cython_blas sgemm/dgemm).
"""

cimport numpy as cnp
from libc.stdint cimport int64_t, int32_t
from libc.string cimport memcpy
from libc.math cimport isfinite
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

import numpy as np

import importlib

_threads = importlib.import_module("fastnn.threads")
_get_num_threads = _threads.get_num_threads

cnp.import_array()

cdef extern from "fnn.h" nogil:
    enum: FNN_MAXL
    # the codes of fastnn/codes.py, as the C kernels see them
    enum: FNN_IDENTITY, FNN_SIGMOID, FNN_RELU, FNN_TANH, FNN_LEAKY, FNN_SOFTMAX
    enum: FNN_MSE, FNN_CE, FNN_BCE
    enum: FNN_SGD, FNN_MOMENTUM, FNN_NESTEROV, FNN_ADAM
    enum: FNN_ACC_NONE, FNN_ACC_ARGMAX, FNN_ACC_BINARY
    double FNN_LEAKY_SLOPE
    ctypedef struct fnn_net:
        int L
        int loss
        int n[FNN_MAXL + 1]
        int act[FNN_MAXL]
        int64_t woff[FNN_MAXL]
        int64_t boff[FNN_MAXL]
        int64_t n_params
        int maxn

    ctypedef struct fnn_ws:
        int B, T, elsize
        size_t bytes

    ctypedef struct fnn_opt:
        int kind
        double lr, mom, b1, b2, eps, wd
        int64_t t
        void *m
        void *v

    ctypedef double (*train_fn)(const fnn_net *, fnn_ws *, void *, const fnn_opt *, const void *,
                                const void *, int64_t, const int64_t *, int64_t, int64_t,
                                int64_t, int64_t, int, int, int64_t *, int *) noexcept nogil
    ctypedef void (*predict_fn)(const fnn_net *, fnn_ws *, const void *, const void *, void *,
                                int64_t, int) noexcept nogil
    ctypedef double (*loss_grad_fn)(const fnn_net *, fnn_ws *, const void *, const void *,
                                    const void *, int64_t, void *) noexcept nogil

    ctypedef struct fnn_kernels:
        train_fn train
        predict_fn predict
        loss_grad_fn loss_grad
        double (*abs_peak)(const void *, int64_t) noexcept nogil
        const char *isa

    ctypedef void (*fnn_sgemm_t)(char *, char *, int *, int *, int *, float *, float *, int *,
                                 float *, int *, float *, float *, int *) noexcept nogil
    ctypedef void (*fnn_dgemm_t)(char *, char *, int *, int *, int *, double *, double *, int *,
                                 double *, int *, double *, double *, int *) noexcept nogil

    ctypedef struct fnn_tuning:
        int narrow_max
        int gemm_min
        int gemm_min_b
        int par_min_work
        int sparse
        int colblock_kb
        int par_min_work_batch
        int own_gemm

    ctypedef void (*fnn_blas_set_t)(int) noexcept nogil
    ctypedef int (*fnn_blas_get_t)() noexcept nogil
    int fnn_blas_register(fnn_blas_set_t set, fnn_blas_get_t get)

    fnn_sgemm_t fnn_sgemm
    fnn_dgemm_t fnn_dgemm
    fnn_tuning fnn_tune

    const fnn_kernels *fnn_get_kernels(int is_f64)
    const char *fnn_isa_name()
    int fnn_select_isa(const char *name)
    int fnn_have_openmp()
    int fnn_max_threads()
    int fnn_ws_init(fnn_ws *ws, const fnn_net *net, int B, int T, int elsize)
    void fnn_ws_free(fnn_ws *ws)
    const char *fnn_compiler()
    const char *fnn_build_flags()


BUILD_CFLAGS = fnn_build_flags().decode()

# The compiled values of fnn.h's codes (tests/test_codes.py compares them with fastnn.codes).
C_CODES = {
    "IDENTITY": FNN_IDENTITY, "SIGMOID": FNN_SIGMOID, "RELU": FNN_RELU, "TANH": FNN_TANH,
    "LEAKY_RELU": FNN_LEAKY, "SOFTMAX": FNN_SOFTMAX,
    "MSE": FNN_MSE, "CROSS_ENTROPY": FNN_CE, "BINARY_CROSS_ENTROPY": FNN_BCE,
    "SGD": FNN_SGD, "MOMENTUM": FNN_MOMENTUM, "NESTEROV": FNN_NESTEROV, "ADAM": FNN_ADAM,
    "ACC_NONE": FNN_ACC_NONE, "ACC_ARGMAX": FNN_ACC_ARGMAX, "ACC_BINARY": FNN_ACC_BINARY,
    "LEAKY_SLOPE": FNN_LEAKY_SLOPE,
}

fnn_sgemm = <fnn_sgemm_t>sgemm
fnn_dgemm = <fnn_dgemm_t>dgemm



def _register_blas():
    """Hand the set/get_num_threads of scipy's OpenBLAS to the kernels (see fnn.h); returns the
    registered library paths. Other BLAS (MKL, BLIS, ...) are left alone."""
    import ctypes
    import os
    import scipy
    try:
        from threadpoolctl import ThreadpoolController
        libs = [c for c in ThreadpoolController().lib_controllers
                if c.internal_api == "openblas"]
    except Exception:  # noqa: BLE001 - optional: without it BLAS keeps its own threads
        return []
    sdir = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    mine = [c for c in libs if os.path.abspath(c.filepath).startswith(
        os.path.join(sdir, "scipy"))]
    done = []
    for c in mine or libs:
        for pre, suf in (("scipy_openblas", ""), ("scipy_openblas", "64_"), ("openblas", ""),
                         ("openblas", "64_")):
            try:
                fs = getattr(c.dynlib, f"{pre}_set_num_threads{suf}")
                fg = getattr(c.dynlib, f"{pre}_get_num_threads{suf}")
            except AttributeError:
                continue
            a_set = ctypes.cast(fs, ctypes.c_void_p).value
            a_get = ctypes.cast(fg, ctypes.c_void_p).value
            if a_set and a_get and fnn_blas_register(<fnn_blas_set_t><size_t>a_set,
                                                     <fnn_blas_get_t><size_t>a_get) == 0:
                done.append(c.filepath)
            break
    return done


BLAS_CONTROLLED = _register_blas()

cdef int _MAX_THREADS = max(1, min(64, fnn_max_threads()))

# numpy's type numbers for the two dtypes we accept
cdef int _F32 = cnp.NPY_FLOAT32
cdef int _F64 = cnp.NPY_FLOAT64
cdef dict _TYPENAMES = {cnp.NPY_FLOAT32: "float32", cnp.NPY_FLOAT64: "float64",
                        cnp.NPY_INT64: "int64"}


cdef inline int _dtype_code(object dtype) except -1:
    if dtype == np.float32:
        return 0
    if dtype == np.float64:
        return 1
    raise ValueError(f"unsupported dtype {dtype!r}")


cdef int _fill_net(fnn_net *d, object net) except -1:
    """Copy a fastnn Network's layout into the C descriptor (validated)."""
    cdef cnp.ndarray sizes = np.ascontiguousarray(net.sizes, dtype=np.int64)
    cdef cnp.ndarray acts = np.ascontiguousarray(net.acts, dtype=np.int64)
    cdef cnp.ndarray offs = np.ascontiguousarray(net.offsets, dtype=np.int64)
    cdef Py_ssize_t L = acts.shape[0], l
    cdef int64_t total = 0, blk
    if L < 1 or L > FNN_MAXL or sizes.shape[0] != L + 1 or offs.shape[0] != L:
        raise ValueError(f"network with {L} layers: expected 1..{FNN_MAXL} and matching sizes")
    d.L = <int>L
    d.loss = int(net.loss)
    if d.loss < FNN_MSE or d.loss > FNN_BCE:
        raise ValueError(f"unknown loss code {d.loss}")
    d.maxn = 0
    for l in range(L + 1):
        if sizes[l] < 1 or sizes[l] > 1 << 24:
            raise ValueError(f"layer width {sizes[l]} out of range")
        d.n[l] = <int>sizes[l]
        if l > 0 and d.n[l] > d.maxn:
            d.maxn = d.n[l]
    for l in range(L):
        d.act[l] = <int>acts[l]
        if d.act[l] < FNN_IDENTITY or d.act[l] > FNN_SOFTMAX or \
                (d.act[l] == FNN_SOFTMAX and l != L - 1):
            raise ValueError(f"bad activation code {d.act[l]} for layer {l}")
        blk = <int64_t>d.n[l] * d.n[l + 1]
        if offs[l] != total:
            raise ValueError("network offsets do not match the flat parameter layout")
        d.woff[l] = total
        d.boff[l] = total + blk
        total += blk + d.n[l + 1]
    d.n_params = total
    return 0


cdef class Workspace:
    """Every buffer a training step or a predict chunk needs, allocated once (C memory)."""

    cdef fnn_ws ws
    cdef fnn_net desc
    cdef readonly int batch_size
    cdef readonly int is_f64
    cdef readonly object dtype
    cdef object net_ref
    cdef int busy

    def __cinit__(self, net, int batch_size, int threads=0):
        cdef int rc
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        _fill_net(&self.desc, net)
        self.is_f64 = _dtype_code(net.dtype)
        self.dtype = np.dtype(np.float64 if self.is_f64 else np.float32)
        self.batch_size = batch_size
        self.net_ref = net
        if threads <= 0:
            threads = _MAX_THREADS
        rc = fnn_ws_init(&self.ws, &self.desc, batch_size, threads, 8 if self.is_f64 else 4)
        if rc == -2:
            raise MemoryError("fastnn: workspace allocation failed")
        if rc != 0:
            raise ValueError("fastnn: bad workspace request")

    def __dealloc__(self):
        fnn_ws_free(&self.ws)

    @property
    def nbytes(self):
        return self.ws.bytes

    def __repr__(self):
        return (f"<fastnn._kernels.Workspace batch_size={self.batch_size} "
                f"dtype={self.dtype.name} {self.ws.bytes} bytes>")


cdef inline int _check_net(Workspace ws, object net) except -1:
    """The workspace must have been built for this network's layout (cheap when it is `net`)."""
    cdef fnn_net d
    cdef int l
    if net is ws.net_ref:
        ws.desc.loss = net.loss
        return 0
    _fill_net(&d, net)
    if d.L != ws.desc.L or _dtype_code(net.dtype) != ws.is_f64:
        raise ValueError("workspace was built for a different network")
    for l in range(d.L + 1):
        if d.n[l] != ws.desc.n[l]:
            raise ValueError("workspace was built for a different network")
    ws.desc = d
    ws.net_ref = net
    return 0


cdef inline void* _arr(object a, str name, int typenum, Py_ssize_t rows,
                       Py_ssize_t cols) except NULL:
    """Pointer to a C-contiguous array of the given type and shape (cols < 0: 1-D of `rows`)."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{name}: expected dtype {_TYPENAMES.get(typenum, typenum)}, "
                        f"got {arr.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name}: expected a C-contiguous array")
    if cols < 0:
        if cnp.PyArray_NDIM(arr) != 1 or (rows >= 0 and cnp.PyArray_DIM(arr, 0) != rows):
            raise ValueError(f"{name}: expected shape ({rows},), got {a.shape}")
    else:
        if cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_DIM(arr, 1) != cols or \
                (rows >= 0 and cnp.PyArray_DIM(arr, 0) != rows):
            raise ValueError(f"{name}: expected shape ({rows if rows >= 0 else 'N'}, {cols}), "
                             f"got {a.shape}")
    return cnp.PyArray_DATA(arr)


cdef inline void* _writable(object a, str name) except NULL:
    if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
        raise ValueError(f"{name}: array is read-only")
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline int _nthreads():
    cdef int n = _get_num_threads()
    return n if n >= 1 else 1


# ---- fused-type helpers: the float32 / float64 C kernels behind one Cython signature ------------

cdef inline void _predict_c(floating *dummy, const fnn_net *net, fnn_ws *ws, const void *P,
                            const void *x, void *out, int64_t N, int nthreads) noexcept nogil:
    if floating is float:
        fnn_get_kernels(0).predict(net, ws, P, x, out, N, nthreads)
    else:
        fnn_get_kernels(1).predict(net, ws, P, x, out, N, nthreads)


cdef inline double _train_c(floating *dummy, const fnn_net *net, fnn_ws *ws, void *P,
                            const fnn_opt *op, const void *x, const void *y, int64_t N,
                            const int64_t *order, int64_t n_order, int64_t start, int64_t nsteps,
                            int64_t bs, int acc, int nthreads, int64_t *correct,
                            int *status) noexcept nogil:
    if floating is float:
        return fnn_get_kernels(0).train(net, ws, P, op, x, y, N, order, n_order, start, nsteps,
                                        bs, acc, nthreads, correct, status)
    else:
        return fnn_get_kernels(1).train(net, ws, P, op, x, y, N, order, n_order, start, nsteps,
                                        bs, acc, nthreads, correct, status)


cdef inline double _loss_grad_c(floating *dummy, const fnn_net *net, fnn_ws *ws, const void *P,
                                const void *x, const void *y, int64_t N, void *g) noexcept nogil:
    if floating is float:
        return fnn_get_kernels(0).loss_grad(net, ws, P, x, y, N, g)
    else:
        return fnn_get_kernels(1).loss_grad(net, ws, P, x, y, N, g)


# ---- the contract -----------------------------------------------------------------------------

def workspace(net, batch_size):
    """Buffers for batches of up to ``batch_size`` rows (attribute ``batch_size``)."""
    return Workspace(net, int(batch_size))


def predict(net, x, out, Workspace ws):
    """out[:] = network outputs for every row of x (chunks of ws.batch_size rows)."""
    cdef int typenum = _F64 if ws.is_f64 else _F32
    cdef Py_ssize_t N
    cdef const void *xp
    cdef void *op
    cdef void *pp
    cdef int nth
    _check_net(ws, net)
    pp = _arr(net.params, "params", typenum, ws.desc.n_params, -1)
    xp = _arr(x, "x", typenum, -1, ws.desc.n[0])
    N = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    op = _arr(out, "out", typenum, N, ws.desc.n[ws.desc.L])
    _writable(out, "out")
    if N == 0:
        return
    nth = 1 if N < 64 else _nthreads()
    if ws.busy:
        raise RuntimeError("fastnn: a workspace cannot be used by two threads at once")
    ws.busy = 1
    try:
        with nogil:
            if ws.is_f64:
                _predict_c(<double *>NULL, &ws.desc, &ws.ws, pp, xp, op, N, nth)
            else:
                _predict_c(<float *>NULL, &ws.desc, &ws.ws, pp, xp, op, N, nth)
    finally:
        ws.busy = 0


cdef inline bint _finite(const void *x, Py_ssize_t n, int is_f64) noexcept nogil:
    """All n values finite? (the abs_peak kernel: one integer max, ~50 ns for 784 values)"""
    return isfinite(fnn_get_kernels(is_f64).abs_peak(x, n))


def abs_peak(x):
    """max |x| of a C-contiguous float32/float64 array in one pass, no temporary.

    The result is NaN or inf exactly when some value is NaN or inf (0.0 for an empty array).
    """
    cdef cnp.ndarray arr
    cdef Py_ssize_t n
    cdef const void *data
    cdef double peak
    if not isinstance(x, np.ndarray):
        raise TypeError(f"abs_peak: expected a numpy array, got {type(x).__name__}")
    arr = <cnp.ndarray>x
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError("abs_peak: expected a C-contiguous array")
    n = cnp.PyArray_SIZE(arr)
    data = cnp.PyArray_DATA(arr)
    if cnp.PyArray_TYPE(arr) == _F32:
        with nogil:
            peak = fnn_get_kernels(0).abs_peak(data, n)
        return peak
    if cnp.PyArray_TYPE(arr) == _F64:
        with nogil:
            peak = fnn_get_kernels(1).abs_peak(data, n)
        return peak
    raise TypeError(f"abs_peak: expected float32 or float64, got {arr.dtype}")


def predict_one(net, x, out, Workspace ws):
    """out (n_out,) = network(x (n_in,)); returns False (out untouched) if x has NaN/inf.

    The single-sample fast path: the finiteness scan costs ~50 ns here, ~1.5 us via numpy.
    """
    cdef int typenum = _F64 if ws.is_f64 else _F32
    cdef const void *xp
    cdef void *op
    cdef void *pp
    cdef bint ok
    _check_net(ws, net)
    pp = _arr(net.params, "params", typenum, ws.desc.n_params, -1)
    xp = _arr(x, "x", typenum, ws.desc.n[0], -1)
    op = _arr(out, "out", typenum, ws.desc.n[ws.desc.L], -1)
    _writable(out, "out")
    if ws.busy:
        raise RuntimeError("fastnn: a workspace cannot be used by two threads at once")
    ws.busy = 1
    try:
        with nogil:
            ok = _finite(xp, ws.desc.n[0], ws.is_f64)
            if ok and ws.is_f64:
                _predict_c(<double *>NULL, &ws.desc, &ws.ws, pp, xp, op, 1, 1)
            elif ok:
                _predict_c(<float *>NULL, &ws.desc, &ws.ws, pp, xp, op, 1, 1)
    finally:
        ws.busy = 0
    return ok


def train_steps(net, opt, x, y, order, Py_ssize_t start, Py_ssize_t nsteps,
                Py_ssize_t batch_size, Workspace ws, int acc_mode):
    """``nsteps`` fused minibatch steps in one native call; returns (loss_sum, n_correct)."""
    cdef int typenum = _F64 if ws.is_f64 else _F32
    cdef Py_ssize_t N, n_order
    cdef fnn_opt o
    cdef void *pp
    cdef const void *xp
    cdef const void *yp
    cdef const int64_t *ordp
    cdef int64_t correct = 0
    cdef int status = 0, nth
    cdef double loss
    cdef int need
    _check_net(ws, net)
    pp = _arr(net.params, "params", typenum, ws.desc.n_params, -1)
    _writable(net.params, "params")
    xp = _arr(x, "x", typenum, -1, ws.desc.n[0])
    N = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    yp = _arr(y, "y", typenum, N, ws.desc.n[ws.desc.L])
    ordp = <const int64_t *>_arr(order, "order", cnp.NPY_INT64, -1, -1)
    n_order = cnp.PyArray_DIM(<cnp.ndarray>order, 0)
    if batch_size < 1 or batch_size > ws.batch_size:
        raise ValueError(f"batch_size {batch_size} does not fit the workspace "
                         f"({ws.batch_size} rows)")
    if nsteps < 0 or start < 0 or (nsteps > 0 and start + (nsteps - 1) * batch_size >= n_order):
        raise ValueError(f"steps [{start}, +{nsteps} x {batch_size}) run past the order "
                         f"({n_order} rows)")
    if acc_mode < FNN_ACC_NONE or acc_mode > FNN_ACC_BINARY:
        raise ValueError(f"acc_mode: expected 0, 1 or 2, got {acc_mode}")
    o.kind = opt.kind
    if o.kind < FNN_SGD or o.kind > FNN_ADAM:
        raise ValueError(f"unknown optimiser kind {o.kind}")
    o.lr = opt.lr
    o.mom = opt.momentum
    o.b1 = opt.beta1
    o.b2 = opt.beta2
    o.eps = opt.eps
    o.wd = opt.weight_decay
    o.t = opt.t
    need = 2 if o.kind == FNN_ADAM else (1 if o.kind in (FNN_MOMENTUM, FNN_NESTEROV) else 0)
    o.m = _arr(opt.m, "opt.m", typenum, ws.desc.n_params, -1) if need >= 1 else NULL
    o.v = _arr(opt.v, "opt.v", typenum, ws.desc.n_params, -1) if need >= 2 else NULL
    if need >= 1:
        _writable(opt.m, "opt.m")
    if need >= 2:
        _writable(opt.v, "opt.v")
    if nsteps == 0:
        return 0.0, 0
    nth = _nthreads()
    if ws.busy:
        raise RuntimeError("fastnn: a workspace cannot be used by two threads at once")
    ws.busy = 1
    try:
        with nogil:
            if ws.is_f64:
                loss = _train_c(<double *>NULL, &ws.desc, &ws.ws, pp, &o, xp, yp, N, ordp,
                                n_order, start, nsteps, batch_size, acc_mode, nth, &correct,
                                &status)
            else:
                loss = _train_c(<float *>NULL, &ws.desc, &ws.ws, pp, &o, xp, yp, N, ordp,
                                n_order, start, nsteps, batch_size, acc_mode, nth, &correct,
                                &status)
    finally:
        ws.busy = 0
    if status != 0:
        raise IndexError(f"order: indices must be in [0, {N})")
    opt.t += nsteps
    return loss, correct


def loss_grad(net, x, y, grad, ws=None):
    """Mean loss over all rows of x (one batch); its gradient into the flat ``grad``."""
    cdef Workspace w = Workspace(net, max(1, len(x)), 1)
    cdef int typenum = _F64 if w.is_f64 else _F32
    cdef void *pp = _arr(net.params, "params", typenum, w.desc.n_params, -1)
    cdef const void *xp = _arr(x, "x", typenum, -1, w.desc.n[0])
    cdef Py_ssize_t N = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    cdef const void *yp = _arr(y, "y", typenum, N, w.desc.n[w.desc.L])
    cdef void *gp = _arr(grad, "grad", typenum, w.desc.n_params, -1)
    cdef double loss
    _writable(grad, "grad")
    if N == 0:
        raise ValueError("loss_grad: empty batch")
    with nogil:
        if w.is_f64:
            loss = _loss_grad_c(<double *>NULL, &w.desc, &w.ws, pp, xp, yp, N, gp)
        else:
            loss = _loss_grad_c(<float *>NULL, &w.desc, &w.ws, pp, xp, yp, N, gp)
    return loss


# ---- introspection and tuning -------------------------------------------------------------------

def isa():
    """The kernel build in use: 'avx512', 'avx2' or 'base'."""
    return fnn_isa_name().decode()


def select_isa(name="auto"):
    """Force a kernel build ('auto', 'base', 'avx2', 'avx512'); for benchmarks and tests."""
    if fnn_select_isa(name.encode()) != 0:
        raise ValueError(f"ISA {name!r} is not available on this CPU/build")
    return isa()


def have_openmp():
    return bool(fnn_have_openmp())


def compiler():
    return fnn_compiler().decode()


def get_tuning():
    return dict(fnn_tune)


def set_tuning(**kw):
    """Change kernel thresholds (narrow_max, gemm_min, gemm_min_b, par_min_work, sparse)."""
    cdef dict cur = dict(fnn_tune)
    for k, v in kw.items():
        if k not in cur:
            raise KeyError(k)
        cur[k] = int(v)
    fnn_tune.narrow_max = cur["narrow_max"]
    fnn_tune.gemm_min = cur["gemm_min"]
    fnn_tune.gemm_min_b = cur["gemm_min_b"]
    fnn_tune.par_min_work = cur["par_min_work"]
    fnn_tune.sparse = cur["sparse"]
    fnn_tune.colblock_kb = cur["colblock_kb"]
    fnn_tune.par_min_work_batch = cur["par_min_work_batch"]
    fnn_tune.own_gemm = cur["own_gemm"]
    return dict(fnn_tune)

include "_kernels_apply.pxi"
