/* fastnn C kernels: shared types and the dispatch API used by _kernels.pyx.
 *
 * The hot kernels live in fnn_impl.h, a template (split in parts, listed at its top) included
 * once per (dtype, ISA) by fnn_isa_{base,avx2,avx512}.c. fnn_dispatch.c picks the best ISA
 * variant at run time (__builtin_cpu_supports), so the default build is portable and still uses
 * AVX2/AVX-512.
 */
#ifndef FNN_H
#define FNN_H

#include <stddef.h>
#include <stdint.h>

#define FNN_MAXL 64
/* The per-sample path splits layer 0's inputs of steps worth sharing in this many fixed parts,
 * each summed on its own (fnn_narrow.h): a thread owns a part, and the bits do not depend on
 * the thread count (one thread sums the same parts). */
#define FNN_PARTS 2

/* GCC on x86: extra AVX2 / AVX-512 builds of the kernels, picked at run time. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_X86_MULTI 1
#else
#define FNN_X86_MULTI 0
#endif

/* The codes of fastnn/codes.py (their one home; tests/test_codes.py checks these against it). */
enum { FNN_IDENTITY, FNN_SIGMOID, FNN_RELU, FNN_TANH, FNN_LEAKY, FNN_SOFTMAX };
enum { FNN_MSE, FNN_CE, FNN_BCE };
enum { FNN_SGD, FNN_MOMENTUM, FNN_NESTEROV, FNN_ADAM };
enum { FNN_ACC_NONE, FNN_ACC_ARGMAX, FNN_ACC_BINARY };
#define FNN_LEAKY_SLOPE 0.01   /* codes.LEAKY_SLOPE */

/* The network layout (copied from fastnn.network.Network). */
typedef struct {
    int L;                      /* number of layers */
    int loss;
    int n[FNN_MAXL + 1];        /* widths, n[0] = inputs */
    int act[FNN_MAXL];
    int64_t woff[FNN_MAXL];     /* offset of W_l (n[l] x n[l+1], row-major) in params */
    int64_t boff[FNN_MAXL];     /* offset of b_l */
    int64_t n_params;
    int maxn;                   /* widest layer, inputs excluded */
} fnn_net;

/* Every buffer a step needs, allocated once (one aligned block). */
typedef struct {
    int B, T, elsize;           /* row capacity, thread capacity, sizeof(real) */
    int ld[FNN_MAXL + 1];       /* padded row strides of a[l] and d[l] */
    void *a[FNN_MAXL + 1];      /* activations (a[0]: gathered inputs for the gemm path) */
    void *d[FNN_MAXL + 1];      /* deltas dL/dz of layer l's outputs, l >= 1 */
    void *ones;                 /* B ones (bias gradients as a matrix-vector product) */
    void *g0;                   /* n[0] x ldg0 layer-0 gradient rows, kept all-zero between steps */
    int ldg0;                   /* row stride of g0: padded, and never a multiple of 256 bytes
                                   (rows 4 KiB apart would alias in the store buffer) */
    void *grad;                 /* n_params gradient (gemm path) */
    void *tmp;                  /* T x maxld per-thread scratch rows */
    void *apack;                /* T x apackld: the own sgemm's packed transposed A (fnn_gemm.h
                                   apack_alloc; made by the first training step, or NULL) */
    int64_t apackld;
    int32_t *nzi;               /* B x nzld nonzero input indices per sample */
    void *nzv;                  /* B x nzld their values (read back in order, not gathered
                                   from x again) */
    int32_t *nzs;               /* B x nzsld: where each 16-input block starts in nzi (the
                                   batch path's row ranges look up, not search) */
    int nzsld;
    uint64_t *nzg;              /* nzgw x B: bit g % 64 of word g / 64 of a sample set if any
                                   of its inputs 4g .. 4g+3 is nonzero (word-major, so a group's
                                   bits over the batch are contiguous: fnn_sparse0.h) */
    int nzgw;
    int32_t *nnz;               /* B counts (the per-sample path: FNN_PARTS rows of them,
                                   partld apart, one per part of layer 0's inputs) */
    int nzld;
    int nparts;                 /* the per-sample path's parts in this train call: FNN_PARTS
                                   for steps worth sharing, else 1 (the whole row) */
    int partld;                 /* B rounded up to 16: the stride of nnz's and xpkb's part rows
                                   (threads owning different parts write different lines) */
    int tmpld;                  /* row stride of tmp (>= every layer width) */
    int32_t *cscb;              /* B x nzld: batch nonzeros regrouped by input row (sample) */
    void *cscx;                 /* B x nzld: their values */
    int32_t *touched;           /* n[0] + T + 17: layer-0 rows touched in a step (narrow path;
                                   thread t's list starts at r0 + t), row starts (batch path) */
    uint32_t *stamp;            /* n[0]: step stamp of the last touch */
    void *w0pad;                /* n[0] x ldw0pad: layer 0 with rows on cache lines, for the
                                   per-sample SGD path (fnn_narrow.h train_narrow); NULL when
                                   its rows already are (n[1] a multiple of 64 bytes) or wide */
    int ldw0pad;
    uint32_t epoch;
    int narrow_T;               /* per-sample path: the thread count that won the last probe
                                   (0: none yet), against narrow_vs threads, at narrow_at s */
    int narrow_vs;
    double narrow_at;
    double *lossb;              /* B per-sample losses */
    double *xpkb;               /* B per-sample max |x| (training checks its inputs as it
                                   reads them: NaN or inf if some value is); FNN_PARTS rows,
                                   partld apart, like nnz */
    double xpeak;               /* max |x| over every row the last train call read */
    int64_t *corb;              /* B per-sample correct counts */
    void *block;
    size_t bytes;
} fnn_ws;

typedef struct {
    int kind;
    double lr, mom, b1, b2, eps, wd;
    int64_t t;                  /* step counter BEFORE this call */
    void *m, *v;
} fnn_opt;

typedef struct {
    /* returns the loss sum; -1 in *status on a bad order index */
    double (*train)(const fnn_net *, fnn_ws *, void *P, const fnn_opt *, const void *x,
                    const void *y, int64_t N, const int64_t *order, int64_t n_order,
                    int64_t start, int64_t nsteps, int64_t bs, int acc_mode, int nthreads,
                    int64_t *correct, int *status);
    /* peak: NULL, or where max |x| goes (NaN/inf when some input is), from the same pass that
     * feeds the rows to the network (each block checked while it is in cache) */
    void (*predict)(const fnn_net *, fnn_ws *, const void *P, const void *x, void *out,
                    int64_t N, int nthreads, double *peak);
    double (*loss_grad)(const fnn_net *, fnn_ws *, const void *P, const void *x, const void *y,
                        int64_t N, void *grad);
    /* max |x| over n values; NaN or inf exactly when some value is (the input check) */
    double (*abs_peak)(const void *x, int64_t n);
    const char *isa;
} fnn_kernels;

typedef void (*fnn_sgemm_t)(char *, char *, int *, int *, int *, float *, float *, int *,
                            float *, int *, float *, float *, int *);
typedef void (*fnn_dgemm_t)(char *, char *, int *, int *, int *, double *, double *, int *,
                            double *, int *, double *, double *, int *);

/* Tunables (read by the kernels; set once at import, or by benchmarks). Their defaults, and
 * the measurements that chose them: fnn_tuning.h. */
typedef struct {
    int narrow_max;     /* fused per-sample path when every layer has <= this many units */
    int gemm_min;       /* gemm for a layer when min(n_in, n_out) >= this and B >= gemm_min_b */
    int gemm_min_b;
    int par_min_work;   /* use threads when B * (work per sample) >= this (in MACs) */
    int sparse;         /* 1: skip zero inputs in layer 0 */
    int colblock_kb;    /* sparse layer-0 passes work on column blocks of about this size */
    int par_min_work_batch;  /* the same for the batched (gemm) path */
    int own_gemm;       /* 1: float32 gemm with n % 32 == 0 uses our AVX-512 kernel
                           (AVX-512 build) */
    int s0_group_min;   /* the batched step updates layer 0 in groups of input rows when it
                           has >= this many units (fnn_sparse0.h) */
    int task_work;      /* MACs per update task of a chunked step (fnn_batch_step.h plan) */
    int par_min_work_chunks;  /* ... and from this many when 2+ threads run (fnn_entry.h) */
    int quad0;          /* 1: the batched sparse layer-0 forward takes 4 samples at a time
                           (fnn_batch.h quad_tile) */
    int w0pad;          /* 1: the per-sample SGD path trains layer 0 in ws->w0pad (rows on
                           cache lines, fnn_tuning.h FNN_TUNE_W0PAD_MAX) when it has one */
    int fetch_ahead;    /* 1: a second thread reads rows ahead of a one-thread per-sample loop
                           (fnn_fetch.h) */
} fnn_tuning;

/* BLAS thread control (OpenBLAS set/get_num_threads of each loaded OpenBLAS, registered from
 * Python at import). The batched path holds BLAS at one thread while it runs: it splits the
 * batch over its own threads, and an idle OpenBLAS worker busy-waits on a core we need. */
#define FNN_MAXBLAS 4
typedef void (*fnn_blas_set_t)(int);
typedef int (*fnn_blas_get_t)(void);
int fnn_blas_register(fnn_blas_set_t set, fnn_blas_get_t get);
void fnn_blas_hold1(int *saved);
void fnn_blas_restore(const int *saved);

extern fnn_sgemm_t fnn_sgemm;
extern fnn_dgemm_t fnn_dgemm;
extern fnn_tuning fnn_tune;

/* Work items of one phase of a step, at most (the batched step's tasks). */
#define FNN_TEAM_ITEMS (FNN_MAXL * 10)

/* A team of threads working through fixed lists of work items (the batched path): a barrier
 * that spins briefly then yields the CPU (on an oversubscribed machine a spinning waiter would
 * keep its partner off the core), and per phase either a work counter the barrier rewinds or
 * each item's claim (the last step that claimed it). */
typedef struct {
    int T;
    int count, gen;      /* barrier state (atomics) */
    int next[2];         /* next work item of each phase (atomics) */
    int claim[2][FNN_TEAM_ITEMS];   /* (atomics) */
} fnn_team;
void fnn_team_barrier(fnn_team *tm, int rewind);   /* the last arriver zeroes next[rewind] */
void fnn_spin(int *spins);   /* one round of a wait: pause, and yield every so often */
static inline int fnn_team_next(fnn_team *tm, int phase)
{
    return __atomic_fetch_add(&tm->next[phase], 1, __ATOMIC_RELAXED);
}

/* Thread tid's next item of a phase of n items in step `step` (>= 1, rising), or n: first its
 * own ones (tid, tid + T, ...), then any the others have not claimed, from the last back.
 * Each item is claimed once a step. Why: the same thread then updates the same parameter rows
 * step after step, and their optimiser state stays in its cache (fnn_tuning.h, after the
 * task counts). *pos: the thread's place in that sequence, 0 at the start of the phase. */
static inline int fnn_team_take(fnn_team *tm, int phase, int n, int step, int tid, int *pos)
{
    const int T = tm->T, own = (n - tid + T - 1) / T;
    int *claim = tm->claim[phase];
    while (*pos < own + n) {
        const int p = (*pos)++;
        const int k = p < own ? tid + p * T : n - 1 - (p - own);
        int v = __atomic_load_n(&claim[k], __ATOMIC_RELAXED);
        while (v < step)
            if (__atomic_compare_exchange_n(&claim[k], &v, step, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED))
                return k;
    }
    return n;
}

/* A helper thread reading rows ahead of a one-thread loop (fnn_fetch.h): where the loop is
 * (its order index) and whether it has finished. */
typedef struct {
    int64_t at;   /* atomic */
    int done;     /* atomic */
} fnn_fetch_state;

/* Subnormal floats are flushed to zero (FTZ) and read as zero (DAZ) while the kernels run, on
 * every thread that runs them, which saves and restores its own control register. Optimiser
 * state that decays toward zero (momentum, Adam's moments of weights fed by rarely-lit pixels)
 * turns subnormal within a few epochs, and an operation on a subnormal costs ~100 cycles on
 * Intel cores: mlp-128 Adam on one thread fell from 283k to 158k samples/s by its fifth epoch
 * and stays at 283k flushed. XLA's CPU runtime (JAX) flushes too. Values below 1.2e-38 (float)
 * or 2.2e-308 (double) become 0; results otherwise are unchanged. x86 only (elsewhere a no-op).
 */
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define FNN_MXCSR_FTZ_DAZ 0x8040u   /* MXCSR bit 15 (flush to zero) | bit 6 (denormals are zero) */
static inline unsigned fnn_ftz_begin(void)
{
    const unsigned saved = _mm_getcsr();
    if ((saved & FNN_MXCSR_FTZ_DAZ) != FNN_MXCSR_FTZ_DAZ) _mm_setcsr(saved | FNN_MXCSR_FTZ_DAZ);
    return saved;
}
static inline void fnn_ftz_end(unsigned saved)
{
    if ((saved & FNN_MXCSR_FTZ_DAZ) != FNN_MXCSR_FTZ_DAZ) _mm_setcsr(saved);
}
#else
static inline unsigned fnn_ftz_begin(void) { return 0; }
static inline void fnn_ftz_end(unsigned saved) { (void)saved; }
#endif

const fnn_kernels *fnn_get_kernels(int is_f64);
const char *fnn_isa_name(void);
double fnn_abs_peak(int is_f64, const void *x, int64_t n, int T);   /* abs_peak on T threads */
int fnn_select_isa(const char *name);   /* "auto", "base", "avx2", "avx512"; 0 on success */
int fnn_have_openmp(void);
int fnn_max_threads(void);
int fnn_ws_init(fnn_ws *ws, const fnn_net *net, int B, int T, int elsize);
void fnn_ws_free(fnn_ws *ws);
const char *fnn_compiler(void);
const char *fnn_build_flags(void);

#endif
