# The backend contract (fastnn/backends/__init__.py): workspace, predict, predict_one,
# abs_peak, train_steps, loss_grad, each calling the float32 or float64 C kernels.
# Included by csrc/_kernels.pyx (one Cython module); moved here unchanged.

# ---- fused-type helpers: the float32 / float64 C kernels behind one Cython signature ------------

cdef inline void _predict_c(floating *dummy, const fnn_net *net, fnn_ws *ws, const void *P,
                            const void *x, void *out, int64_t N, int nthreads,
                            double *peak) noexcept nogil:
    if floating is float:
        fnn_get_kernels(0).predict(net, ws, P, x, out, N, nthreads, peak)
    else:
        fnn_get_kernels(1).predict(net, ws, P, x, out, N, nthreads, peak)


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


def predict(net, x, out, Workspace ws, bint check=False):
    """out[:] = network outputs for every row of x (chunks of ws.batch_size rows).

    check: also scan x for NaN/inf, block by block as the rows are fed to the network (one
    pass over memory instead of two); returns False if some value is not finite (out is then
    meaningless), else True.
    """
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
        return True
    nth = 1 if N < 64 else _nthreads()
    cdef double peak = 0
    cdef double *pk = &peak if check else NULL
    if ws.busy:
        raise RuntimeError("fastnn: a workspace cannot be used by two threads at once")
    ws.busy = 1
    try:
        with nogil:
            if ws.is_f64:
                _predict_c(<double *>NULL, &ws.desc, &ws.ws, pp, xp, op, N, nth, pk)
            else:
                _predict_c(<float *>NULL, &ws.desc, &ws.ws, pp, xp, op, N, nth, pk)
    finally:
        ws.busy = 0
    return isfinite(peak)


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
    cdef int nth = _nthreads()
    if cnp.PyArray_TYPE(arr) == _F32:
        with nogil:
            peak = fnn_abs_peak(0, data, n, nth)
        return peak
    if cnp.PyArray_TYPE(arr) == _F64:
        with nogil:
            peak = fnn_abs_peak(1, data, n, nth)
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
                _predict_c(<double *>NULL, &ws.desc, &ws.ws, pp, xp, op, 1, 1, NULL)
            elif ok:
                _predict_c(<float *>NULL, &ws.desc, &ws.ws, pp, xp, op, 1, 1, NULL)
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
