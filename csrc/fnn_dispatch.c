/* Run-time selection of the kernel build, workspace allocation, BLAS pointers, tunables. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <sched.h>
#include "fnn.h"
#include "fnn_tuning.h"   /* the defaults below and why */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FNN_PAUSE() _mm_pause()
#else
#define FNN_PAUSE() ((void)0)
#endif

fnn_sgemm_t fnn_sgemm = NULL;
fnn_dgemm_t fnn_dgemm = NULL;
fnn_tuning fnn_tune = {
    FNN_TUNE_NARROW_MAX,
    FNN_TUNE_GEMM_MIN,
    FNN_TUNE_GEMM_MIN_B,
    FNN_TUNE_PAR_MIN_WORK,
    FNN_TUNE_SPARSE,
    FNN_TUNE_COLBLOCK_KB,
    FNN_TUNE_PAR_MIN_WORK_BATCH,
    FNN_TUNE_OWN_GEMM,
    FNN_TUNE_S0_GROUP_MIN,
    FNN_TUNE_TASK_WORK,
    FNN_TUNE_PAR_MIN_WORK_CHUNKS,
    FNN_TUNE_QUAD0,
    1,   /* w0pad */
    FNN_TUNE_FETCH_AHEAD > 0,
};

void fnn_team_barrier(fnn_team *tm, int rewind)
{
    const int g = __atomic_load_n(&tm->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&tm->count, 1, __ATOMIC_ACQ_REL) == tm->T) {
        tm->count = 0;
        if (rewind >= 0) __atomic_store_n(&tm->next[rewind], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&tm->gen, g + 1, __ATOMIC_RELEASE);
        return;
    }
    /* spin through an ordinary imbalance, then yield (fnn_tuning.h) */
    for (int i = 0; __atomic_load_n(&tm->gen, __ATOMIC_ACQUIRE) == g; i++) {
        if (i < FNN_TUNE_BARRIER_SPINS) FNN_PAUSE();
        else sched_yield();
    }
}

void fnn_spin(int *spins)
{
    if (++*spins < FNN_TUNE_BARRIER_SPINS) {
        FNN_PAUSE();
    } else {
        *spins = 0;
        sched_yield();
    }
}

static fnn_blas_set_t blas_set[FNN_MAXBLAS];
static fnn_blas_get_t blas_get[FNN_MAXBLAS];
static int n_blas = 0;

int fnn_blas_register(fnn_blas_set_t set, fnn_blas_get_t get)
{
    if (!set || !get || n_blas >= FNN_MAXBLAS) return -1;
    for (int i = 0; i < n_blas; i++)
        if (blas_set[i] == set) return 0;
    blas_set[n_blas] = set;
    blas_get[n_blas] = get;
    n_blas++;
    return 0;
}

/* Set every registered BLAS to one thread; saved[i] = its previous count (0: untouched). Not
 * reentrant across Python threads by design: concurrent callers can only leave it at 1 or at
 * the count a caller saw, both valid settings. */
void fnn_blas_hold1(int *saved)
{
    for (int i = 0; i < FNN_MAXBLAS; i++) saved[i] = 0;
    for (int i = 0; i < n_blas; i++) {
        const int cur = blas_get[i]();
        if (cur != 1) {
            saved[i] = cur;
            blas_set[i](1);
        }
    }
}

void fnn_blas_restore(const int *saved)
{
    for (int i = 0; i < n_blas; i++)
        if (saved[i] > 1) blas_set[i](saved[i]);
}

extern const fnn_kernels kernels_f32_base, kernels_f64_base;
#if FNN_X86_MULTI
extern const fnn_kernels kernels_f32_avx2, kernels_f64_avx2;
extern const fnn_kernels kernels_f32_avx512, kernels_f64_avx512;
#endif

static const fnn_kernels *cur32 = NULL, *cur64 = NULL;

static int cpu_has(const char *isa)
{
#if FNN_X86_MULTI
    __builtin_cpu_init();
    if (!strcmp(isa, "avx512"))
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    if (!strcmp(isa, "avx2"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi2");
#endif
    return !strcmp(isa, "base");
}

static int use_kernels(const fnn_kernels *k32, const fnn_kernels *k64)
{
    cur32 = k32;
    cur64 = k64;
    return 0;
}

int fnn_select_isa(const char *name)
{
    if (!name || !strcmp(name, "auto") || !name[0]) {
#if FNN_X86_MULTI
        if (cpu_has("avx512")) return fnn_select_isa("avx512");
        if (cpu_has("avx2")) return fnn_select_isa("avx2");
#endif
        return fnn_select_isa("base");
    }
    if (!cpu_has(name)) return -1;
#if FNN_X86_MULTI
    if (!strcmp(name, "avx512")) return use_kernels(&kernels_f32_avx512, &kernels_f64_avx512);
    if (!strcmp(name, "avx2")) return use_kernels(&kernels_f32_avx2, &kernels_f64_avx2);
#endif
    if (!strcmp(name, "base")) return use_kernels(&kernels_f32_base, &kernels_f64_base);
    return -1;
}

const fnn_kernels *fnn_get_kernels(int is_f64)
{
    if (!cur32) fnn_select_isa("auto");
    return is_f64 ? cur64 : cur32;
}

const char *fnn_isa_name(void) { return fnn_get_kernels(0)->isa; }

double fnn_abs_peak(int is_f64, const void *x, int64_t n, int T)
{
    const fnn_kernels *k = fnn_get_kernels(is_f64);
    const size_t es = is_f64 ? 8 : 4;
    if (T < 2 || n < FNN_TUNE_PEAK_PAR_MIN) return k->abs_peak(x, n);
    /* T pieces, each at memory speed: a max is order-free, so any split gives the same value
     * (a NaN piece makes the whole NaN, as one pass would) */
    double peak[64] = {0};
    if (T > 64) T = 64;
#ifdef _OPENMP
#pragma omp parallel for num_threads(T) schedule(static)
#endif
    for (int t = 0; t < T; t++) {
        const int64_t i0 = n * t / T, i1 = n * (t + 1) / T;
        peak[t] = k->abs_peak((const char *)x + i0 * es, i1 - i0);
    }
    double m = 0;
    for (int t = 0; t < T; t++) {
        if (isnan(peak[t])) return peak[t];
        if (peak[t] > m) m = peak[t];
    }
    return m;
}

int fnn_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fnn_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

#ifndef FNN_BUILD_FLAGS
#define FNN_BUILD_FLAGS ""
#endif
const char *fnn_build_flags(void) { return FNN_BUILD_FLAGS; }

const char *fnn_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

static size_t pad64(size_t n) { return (n + 63) & ~(size_t)63; }

int fnn_ws_init(fnn_ws *ws, const fnn_net *net, int B, int T, int es)
{
    memset(ws, 0, sizeof(*ws));
    if (B < 1 || T < 1 || net->L < 1 || net->L > FNN_MAXL) return -1;
    const int L = net->L, per = 64 / es;   /* pad rows to 64 bytes */
    ws->B = B;
    ws->T = T;
    ws->elsize = es;
    int maxld = 0;
    for (int l = 0; l <= L; l++) {
        ws->ld[l] = (net->n[l] + per - 1) / per * per;
        if (ws->ld[l] > maxld) maxld = ws->ld[l];
    }
    ws->tmpld = maxld;
    /* + 32: the per-sample path keeps the two parts' lists in one row, each followed by the
     * 16 slots a vector compress may write past its end (fnn_narrow.h part_nzi) */
    ws->nzld = (net->n[0] + 32 + 15) / 16 * 16;
    ws->partld = (B + 15) / 16 * 16;
    ws->nzsld = (net->n[0] / 16 + 1 + 15) / 16 * 16;
    ws->nzgw = ((net->n[0] + 3) / 4 + 63) / 64;
    const int n0 = net->n[0];
    /* sizes */
    size_t off = 0, o_a[FNN_MAXL + 1], o_d[FNN_MAXL + 1];
    for (int l = 0; l <= L; l++) {
        o_a[l] = off;
        off += pad64((size_t)B * ws->ld[l] * es);
    }
    for (int l = 1; l <= L; l++) {
        o_d[l] = off;
        off += pad64((size_t)B * ws->ld[l] * es);
    }
    size_t o_ones = off; off += pad64((size_t)B * es);
    ws->ldg0 = ws->ld[1];
    if ((ws->ldg0 * es) % 256 == 0) ws->ldg0 += per;
    size_t o_g0 = off; off += pad64((size_t)n0 * ws->ldg0 * es);
    size_t o_grad = off; off += pad64((size_t)net->n_params * es);
    size_t o_tmp = off; off += pad64((size_t)T * maxld * es);
    size_t o_nzi = off; off += pad64((size_t)B * ws->nzld * sizeof(int32_t));
    size_t o_nzv = off; off += pad64((size_t)B * ws->nzld * es);
    size_t o_nzs = off; off += pad64((size_t)B * ws->nzsld * sizeof(int32_t));
    size_t o_nzg = off; off += pad64((size_t)B * ws->nzgw * sizeof(uint64_t));
    size_t o_cscb = off; off += pad64((size_t)B * ws->nzld * sizeof(int32_t));
    size_t o_cscx = off; off += pad64((size_t)B * ws->nzld * es);
    size_t o_nnz = off; off += pad64((size_t)FNN_PARTS * ws->partld * sizeof(int32_t));
    size_t o_touched = off; off += pad64((size_t)(n0 + T + 1 + 16) * sizeof(int32_t));
    size_t o_stamp = off; off += pad64((size_t)n0 * sizeof(uint32_t));
    /* rows of layer 0 padded to whole cache lines, for narrow layers that are not already */
    const int n1 = net->n[1];
    ws->ldw0pad = n1 % per && n1 <= FNN_TUNE_W0PAD_MAX ? ws->ld[1] : 0;
    size_t o_w0pad = off; off += pad64((size_t)n0 * ws->ldw0pad * es);
    size_t o_loss = off; off += pad64((size_t)B * sizeof(double));
    size_t o_xpk = off; off += pad64((size_t)FNN_PARTS * ws->partld * sizeof(double));
    size_t o_cor = off; off += pad64((size_t)B * sizeof(int64_t));
    char *blk = NULL;
    if (posix_memalign((void **)&blk, 64, off ? off : 64)) return -2;
    memset(blk, 0, off);
    ws->block = blk;
    ws->bytes = off;
    for (int l = 0; l <= L; l++) ws->a[l] = blk + o_a[l];
    for (int l = 1; l <= L; l++) ws->d[l] = blk + o_d[l];
    ws->ones = blk + o_ones;
    if (es == 4) { for (int b = 0; b < B; b++) ((float *)ws->ones)[b] = 1.0f; }
    else { for (int b = 0; b < B; b++) ((double *)ws->ones)[b] = 1.0; }
    ws->g0 = blk + o_g0;
    ws->grad = blk + o_grad;
    ws->tmp = blk + o_tmp;
    ws->nzi = (int32_t *)(blk + o_nzi);
    ws->nzv = blk + o_nzv;
    ws->nzs = (int32_t *)(blk + o_nzs);
    ws->nzg = (uint64_t *)(blk + o_nzg);
    ws->nnz = (int32_t *)(blk + o_nnz);
    ws->cscb = (int32_t *)(blk + o_cscb);
    ws->cscx = blk + o_cscx;
    ws->touched = (int32_t *)(blk + o_touched);
    ws->stamp = (uint32_t *)(blk + o_stamp);
    ws->w0pad = ws->ldw0pad ? blk + o_w0pad : NULL;
    ws->lossb = (double *)(blk + o_loss);
    ws->xpkb = (double *)(blk + o_xpk);
    ws->corb = (int64_t *)(blk + o_cor);
    return 0;
}

void fnn_ws_free(fnn_ws *ws)
{
    free(ws->block);
    free(ws->apack);
    ws->block = NULL;
    ws->apack = NULL;
}
