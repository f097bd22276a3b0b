# The split training step for data-parallel training (csrc/fnn_apply.h): grad_step writes a
# batch's gradient into a flat buffer, apply_update runs the optimiser update from a ready
# gradient; an Allreduce goes between them. Included at the end of _kernels.pyx.

cdef extern from "fnn_apply_api.h" nogil:
    ctypedef double (*grad_step_fn)(const fnn_net *, fnn_ws *, const void *, const void *,
                                    const void *, int64_t, const int64_t *, int64_t, double,
                                    void *, int, int, int64_t *, int *) noexcept nogil
    ctypedef void (*apply_update_fn)(const fnn_net *, void *, const fnn_opt *,
                                     const void *const *, int, int64_t, int64_t,
                                     int) noexcept nogil

    ctypedef struct fnn_apply_kernels:
        grad_step_fn grad_step
        apply_update_fn apply_update
        const char *isa

    const fnn_apply_kernels *fnn_apply_get(int is_f64)


cdef int _fill_opt(fnn_opt *o, object opt, int typenum, int64_t n_params) except -1:
    """The optimiser's kind, hyper-parameters and state buffers (validated) for the kernels."""
    cdef int need
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
    o.m = _arr(opt.m, "opt.m", typenum, n_params, -1) if need >= 1 else NULL
    o.v = _arr(opt.v, "opt.v", typenum, n_params, -1) if need >= 2 else NULL
    if need >= 1:
        _writable(opt.m, "opt.m")
    if need >= 2:
        _writable(opt.v, "opt.v")
    return 0


def grad_step(net, x, y, order, Py_ssize_t start, Py_ssize_t batch_size, grad, Workspace ws,
              double scale, int acc_mode):
    """grad[:] = scale * gradient of the summed loss of rows order[start : start+batch_size];
    returns (that loss sum, correct count). scale = 1 / batch_size gives the mean's gradient;
    data-parallel training passes 1 / (the step's rows over every rank)."""
    cdef int typenum = _F64 if ws.is_f64 else _F32
    cdef Py_ssize_t N, n_order
    cdef void *pp
    cdef void *gp
    cdef const void *xp
    cdef const void *yp
    cdef const int64_t *ordp
    cdef int64_t correct = 0
    cdef int status = 0, nth
    cdef double loss
    cdef const fnn_apply_kernels *k
    _check_net(ws, net)
    pp = _arr(net.params, "params", typenum, ws.desc.n_params, -1)
    gp = _arr(grad, "grad", typenum, ws.desc.n_params, -1)
    _writable(grad, "grad")
    xp = _arr(x, "x", typenum, -1, ws.desc.n[0])
    N = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    yp = _arr(y, "y", typenum, N, ws.desc.n[ws.desc.L])
    ordp = <const int64_t *>_arr(order, "order", cnp.NPY_INT64, -1, -1)
    n_order = cnp.PyArray_DIM(<cnp.ndarray>order, 0)
    if batch_size < 1 or batch_size > ws.batch_size:
        raise ValueError(f"batch_size {batch_size} does not fit the workspace "
                         f"({ws.batch_size} rows)")
    if start < 0 or start + batch_size > n_order:
        raise ValueError(f"rows [{start}, {start + batch_size}) run past the order "
                         f"({n_order} rows)")
    if acc_mode < FNN_ACC_NONE or acc_mode > FNN_ACC_BINARY:
        raise ValueError(f"acc_mode: expected 0, 1 or 2, got {acc_mode}")
    if not (scale > 0 and scale < float("inf")):
        raise ValueError(f"scale: expected a finite positive number, got {scale!r}")
    nth = _nthreads()
    k = fnn_apply_get(ws.is_f64)
    if ws.busy:
        raise RuntimeError("fastnn: a workspace cannot be used by two threads at once")
    ws.busy = 1
    try:
        with nogil:
            loss = k.grad_step(&ws.desc, &ws.ws, pp, xp, yp, N, ordp + start, batch_size, scale,
                               gp, acc_mode, nth, &correct, &status)
    finally:
        ws.busy = 0
    if status != 0:
        raise IndexError(f"order: indices must be in [0, {N})")
    return loss, correct


# the most gradients apply_update_sum adds (ranks sharing one machine)
MAX_SUMMED = 64


def apply_update(net, opt, grad):
    """One optimiser step on net.params from the ready gradient ``grad`` (the NumPy backend's
    apply_update in one native pass): counts the step (opt.t += 1), then updates; weight decay
    on weights only; ``grad`` is left unchanged."""
    apply_update_sum(net, opt, (grad,))


def apply_update_sum(net, opt, grads, Py_ssize_t lo=0, Py_ssize_t hi=-1):
    """apply_update from the sum of the gradients ``grads`` (a sequence of arrays), added in
    their order while updating, with no summed copy; only parameters [lo, hi) (hi < 0: to the
    end) and their optimiser state change, but the step is counted. Ranks that share one
    machine read each other's gradients from shared memory, each updating its own part of
    shared parameters."""
    cdef fnn_net d
    cdef fnn_opt o
    cdef int is_f64, typenum, nth, K, i
    cdef void *pp
    cdef const void *gps[64]
    cdef const fnn_apply_kernels *k
    _fill_net(&d, net)
    is_f64 = _dtype_code(net.dtype)
    typenum = _F64 if is_f64 else _F32
    pp = _arr(net.params, "params", typenum, d.n_params, -1)
    _writable(net.params, "params")
    K = len(grads)
    if K < 1 or K > MAX_SUMMED:
        raise ValueError(f"grads: expected 1 to {MAX_SUMMED} gradients, got {K}")
    for i in range(K):
        gps[i] = _arr(grads[i], "grad", typenum, d.n_params, -1)
    if hi < 0:
        hi = d.n_params
    if lo < 0 or lo > hi or hi > d.n_params:
        raise ValueError(f"parameter range [{lo}, {hi}) is not within [0, {d.n_params})")
    _fill_opt(&o, opt, typenum, d.n_params)
    o.t += 1
    nth = _nthreads()
    k = fnn_apply_get(is_f64)
    with nogil:
        k.apply_update(&d, pp, &o, gps, K, lo, hi, nth)
    opt.t += 1
