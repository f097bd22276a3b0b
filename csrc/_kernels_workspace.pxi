# Validation before any pointer reaches C: dtypes, the network layout (fnn_net), the
# Workspace that owns the C buffers, and array shape/contiguity checks.
# Included by csrc/_kernels.pyx (one Cython module); moved here unchanged.

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
        """Bytes held, the gemm's packing room (made by the first training step) included."""
        cdef size_t pack = 0
        if self.ws.apack != NULL:
            pack = <size_t>(self.ws.T * self.ws.apackld * self.ws.elsize)
        return self.ws.bytes + pack

    @property
    def input_peak(self):
        """max |x| over every input row the last ``train_steps`` call trained on (the kernels
        check each row as they read it): NaN or inf if some value was."""
        return self.ws.xpeak

    @property
    def per_sample_threads(self):
        """(threads the per-sample path runs on, threads it was compared against) from its
        last probe (it times a few steps each way and keeps the faster), or None before any."""
        if self.ws.narrow_T == 0:
            return None
        return (self.ws.narrow_T, self.ws.narrow_vs)

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
