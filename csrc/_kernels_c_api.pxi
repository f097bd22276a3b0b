# The C API of the kernels (csrc/fnn.h) as Cython sees it.
# Included by csrc/_kernels.pyx (one Cython module); moved here unchanged.

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
        double xpeak
        int narrow_T, narrow_vs
        size_t bytes
        void *apack
        int64_t apackld

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
                                int64_t, int, double *) noexcept nogil
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
        int s0_group_min
        int task_work
        int par_min_work_chunks
        int quad0
        int w0pad
        int fetch_ahead

    ctypedef void (*fnn_blas_set_t)(int) noexcept nogil
    ctypedef int (*fnn_blas_get_t)() noexcept nogil
    int fnn_blas_register(fnn_blas_set_t set, fnn_blas_get_t get)

    fnn_sgemm_t fnn_sgemm
    double fnn_abs_peak(int is_f64, const void *x, int64_t n, int T) nogil
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
