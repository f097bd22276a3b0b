/* fnn_apply.h: a training step cut in two halves, for data-parallel training (an Allreduce of
 * the gradient goes between them): grad_step writes a batch's gradient into a flat buffer,
 * apply_update runs the optimiser update from a ready gradient. Part of fnn_impl.h (after
 * fnn_entry.h); the exported tables are declared in fnn_apply_api.h.
 *
 * grad_step is the batched training step of fnn_batch_step.h with its update tasks replaced by
 * gradient tasks: the same fixed plan (sample chunks, then parameter-row tasks), so any thread
 * count gives the same bits. Each gradient row is summed in registers and stored once (no
 * zeroed layer-0 scratch, no copy). The deltas are scaled by `scale` (1 / the rows of the whole
 * step over every rank), so the ranks' gradients only need adding.
 *
 * Glossary: G, the flat gradient (the parameters' layout); scale, the factor of the output
 * deltas (a single-process step uses 1 / B); piece, a fixed slice of the parameters that one
 * thread updates.
 */

#include "fnn_apply_api.h"

/* The gradient rows of one task (see fnn_batch_step.h batch_plan) into G. */
static void NAME(grad_task)(const fnn_net *net, fnn_ws *ws, const REAL *x, const int64_t *rows,
                            int B, REAL *G, int sparse0, const NAME(batch_task) *task, int tid)
{
    const int l = task->l, nin = net->n[l], nout = net->n[l + 1];
    const int64_t r0 = task->r0, r1 = task->r1;
    const int64_t w1 = r1 < nin ? r1 : nin;   /* weight rows [r0, w1), bias if r1 > nin */
    const REAL *D = (const REAL *)ws->d[l + 1];
    const int ldd = ws->ld[l + 1];
    REAL *GW = G + net->woff[l];
    if (l == 0 && sparse0 && w1 > r0) {
        int32_t *starts = ws->touched + r0 + task->c;   /* as task_sparse0 */
        int32_t *samples;
        REAL *values;
        NAME(csc_regroup)(ws, B, r0, w1, starts, &samples, &values);
        for (int64_t i = r0; i < w1; i++) {
            const int q0 = starts[i - r0], q1 = starts[i - r0 + 1];
            if (q0 == q1)
                memset(GW + i * nout, 0, sizeof(REAL) * (size_t)nout);
            else
                NAME(weighted_rows_listed)(GW + i * nout, nout, D, ldd, values + q0,
                                           samples + q0, q1 - q0, 0);
        }
    } else if (w1 > r0) {
        int lda;
        const REAL *A = NAME(layer_input)(net, ws, x, rows, l, 0, B, 0, &lda);
        if (NAME(use_gemm)(net, l, B)) {
            NAME(gemm_rm)('T', 'N', (int)(w1 - r0), nout, B, A + r0, lda, D, ldd,
                          GW + r0 * nout, nout, NAME(apack)(ws, tid));
        } else if (NAME(is_thin)(nout)) {
            NAME(thin_grad_rows)(A, lda, D, ldd, B, nout, r0, w1, NULL, NULL, 0, GW);
        } else {
            for (int64_t i = r0; i < w1; i++)
                NAME(weighted_rows)(GW + i * nout, nout, D, ldd, A + i, lda, B, 0);
        }
    }
    if (r1 > nin)
        NAME(weighted_rows)(G + net->boff[l], nout, D, ldd, (const REAL *)ws->ones, 1, B, 0);
}

/* One thread's share of a gradient step (tm NULL: the whole step on this thread). */
static void NAME(grad_loop)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x,
                            const REAL *y, const int64_t *rows, int B, REAL scale, REAL *G,
                            int acc_mode, int chunked, fnn_team *tm, int tid, double *loss_out,
                            int64_t *corr_out)
{
    const int sparse0 = fnn_tune.sparse;
    NAME(batch_task) tasks[FNN_MAX_TASKS];
    int n_chunks = 1;
    const int n_tasks = NAME(batch_plan)(net, B, chunked, &n_chunks, tasks, FNN_MAX_TASKS);
    for (int c = NAME(next_item)(tm, 0, -1); c < n_chunks; c = NAME(next_item)(tm, 0, c)) {
        int64_t b0, b1;
        NAME(split)(B, c, n_chunks, &b0, &b1);
        /* batch_forward_backward only reads P: the cast keeps its signature */
        NAME(batch_forward_backward)(net, ws, (REAL *)P, x, y, rows, (int)b0, (int)b1, B,
                                     scale, acc_mode, sparse0);
    }
    if (tm) fnn_team_barrier(tm, 0);
    if (tid == 0) {
        double loss = 0;
        int64_t corr = 0;
        for (int b = 0; b < B; b++) {
            loss += ws->lossb[b];
            corr += ws->corb[b];
        }
        *loss_out = loss;
        *corr_out = corr;
    }
    for (int k = NAME(next_item)(tm, 1, -1); k < n_tasks; k = NAME(next_item)(tm, 1, k))
        NAME(grad_task)(net, ws, x, rows, B, G, sparse0, &tasks[k], tid);
    if (tm) fnn_team_barrier(tm, 1);
}

/* G = scale * (gradient of the summed loss of rows[0..B) of x); returns that loss sum and
 * the correct count in *correct; -1 in *status on a bad row index. */
static double NAME(grad_step_run)(const fnn_net *net, fnn_ws *ws, const void *Pv, const void *xv,
                                  const void *yv, int64_t N, const int64_t *rows, int64_t B,
                                  double scale, void *Gv, int acc_mode, int nthreads,
                                  int64_t *correct, int *status)
{
    const REAL *P = (const REAL *)Pv, *x = (const REAL *)xv, *y = (const REAL *)yv;
    REAL *G = (REAL *)Gv;
    double loss = 0;
    int64_t corr = 0;
    *status = 0;
    *correct = 0;
    for (int64_t i = 0; i < B; i++)
        if (rows[i] < 0 || rows[i] >= N) {
            *status = -1;
            return 0.0;
        }
    const int chunked = NAME(use_chunks)(ws, nthreads, B * NAME(work_per_sample)(net));
    const int T = NAME(train_threads)(ws, nthreads, chunked);
    int saved[FNN_MAXBLAS];
    fnn_blas_hold1(saved);
    NAME(apack_alloc)(net, ws);
    if (T <= 1) {
        NAME(grad_loop)(net, ws, P, x, y, rows, (int)B, (REAL)scale, G, acc_mode, chunked, NULL,
                        0, &loss, &corr);
    } else {
#ifdef _OPENMP
        fnn_team tm = {0};
#pragma omp parallel num_threads(T)
        {
#pragma omp single
            tm.T = omp_get_num_threads();
            const unsigned fp = fnn_ftz_begin();
            NAME(grad_loop)(net, ws, P, x, y, rows, (int)B, (REAL)scale, G, acc_mode, chunked,
                            &tm, omp_get_thread_num(), &loss, &corr);
            fnn_ftz_end(fp);
        }
#endif
    }
    fnn_blas_restore(saved);
    *correct = corr;
    return loss;
}

/* Parameters per piece of the threaded update (a multiple of every LANES), and per block of
 * a summed gradient (stays in L1). */
#define FNN_APPLY_PIECE 32768
#define FNN_APPLY_SUM_BLOCK 1024

/* The update of params[off : off+n] from the sum of K gradients, G[0] + G[1] + ... in that
 * order (every rank sums in the same order, so every rank computes the same bits). */
static void NAME(update_summed)(REAL *P, int64_t off, const REAL *const *G, int K, int64_t n,
                                const NAME(opt_scalars) *o, int decay)
{
    if (K == 1) {
        NAME(update_params)(P, off, G[0] + off, n, o, decay);
        return;
    }
    REAL sum[FNN_APPLY_SUM_BLOCK] __attribute__((aligned(64)));
    for (int64_t lo = 0; lo < n; lo += FNN_APPLY_SUM_BLOCK) {
        const int64_t m = n - lo < FNN_APPLY_SUM_BLOCK ? n - lo : FNN_APPLY_SUM_BLOCK;
        const REAL *g0 = G[0] + off + lo;
        const REAL *g1 = G[1] + off + lo;
        for (int64_t j = 0; j < m; j++) sum[j] = g0[j] + g1[j];
        for (int k = 2; k < K; k++) {
            const REAL *gk = G[k] + off + lo;
            for (int64_t j = 0; j < m; j++) sum[j] += gk[j];
        }
        NAME(update_params)(P, off + lo, sum, m, o, decay);
    }
}

/* The update of parameters [lo, hi), segment by segment (weights, then biases, of each layer),
 * its pieces shared among the threads of the enclosing parallel region (orphaned omp for). */
static void NAME(apply_segments)(const fnn_net *net, REAL *P, const REAL *const *G, int K,
                                 int64_t lo, int64_t hi, const NAME(opt_scalars) *o)
{
    for (int s = 0; s < 2 * net->L; s++) {
        const int l = s / 2, bias = s % 2;
        int64_t a = bias ? net->boff[l] : net->woff[l];
        int64_t b = a + (bias ? net->n[l + 1] : (int64_t)net->n[l] * net->n[l + 1]);
        a = a > lo ? a : lo;   /* this segment's part of [lo, hi) */
        b = b < hi ? b : hi;
        const int64_t np = b > a ? (b - a + FNN_APPLY_PIECE - 1) / FNN_APPLY_PIECE : 0;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
        for (int64_t k = 0; k < np; k++) {
            const int64_t p0 = a + k * FNN_APPLY_PIECE;
            const int64_t n = b - p0 < FNN_APPLY_PIECE ? b - p0 : FNN_APPLY_PIECE;
            NAME(update_summed)(P, p0, G, K, n, o, !bias);
        }
    }
}

/* One optimiser step of the parameters [lo, hi) from the ready gradient G[0] (K = 1) or the
 * sum of K gradients (the ranks' own, read from shared memory); op->t is this step's number
 * (already counted). Weight decay applies to weights, not biases; G is left unchanged. */
static void NAME(apply_update)(const fnn_net *net, void *Pv, const fnn_opt *op,
                               const void *const *Gv, int K, int64_t lo, int64_t hi,
                               int nthreads)
{
    REAL *P = (REAL *)Pv;
    const REAL *const *G = (const REAL *const *)Gv;
    NAME(opt_scalars) o;
    NAME(opt_scalars_init)(&o, op, op->t);
#ifdef _OPENMP
    int T = nthreads < 1 ? 1 : nthreads;
    if (hi - lo < 4 * FNN_APPLY_PIECE) T = 1;
#pragma omp parallel num_threads(T) if (T > 1)
#else
    (void)nthreads;
#endif
    {
        const unsigned fp = fnn_ftz_begin();   /* fnn.h: on every thread of the region */
        NAME(apply_segments)(net, P, G, K, lo, hi, &o);
        fnn_ftz_end(fp);
    }
}

static double NAME(grad_step)(const fnn_net *net, fnn_ws *ws, const void *P, const void *x,
                              const void *y, int64_t N, const int64_t *rows, int64_t B,
                              double scale, void *G, int acc_mode, int nthreads,
                              int64_t *correct, int *status)
{
    const unsigned fp = fnn_ftz_begin();   /* fnn.h; the region above flushes on its threads */
    const double r = NAME(grad_step_run)(net, ws, P, x, y, N, rows, B, scale, G, acc_mode,
                                         nthreads, correct, status);
    fnn_ftz_end(fp);
    return r;
}

const fnn_apply_kernels NAME(apply_kernels) = {NAME(grad_step), NAME(apply_update),
                                               FNN_ISA_NAME};
