/* fnn_batch_step.h: the batched training step (wide networks). Part of fnn_impl.h.
 *
 * A step has two phases: forward-backward on chunks of samples (fnn_batch.h), then update
 * tasks, each the gradient rows of one range of a layer's parameter rows over the whole batch
 * followed by the optimiser update of those rows. The plan (chunks and tasks) is fixed by the
 * network and the batch size, never by the thread count, and a task only reads the whole
 * batch's deltas and writes its own rows: any number of threads gives the same bits. Threads
 * (a fnn_team) take chunks and tasks dynamically, their own ones first (fnn.h fnn_team_take).
 *
 * Glossary: task (l, c, r0, r1): rows [r0, r1) of layer l's parameters, the c-th task of that
 * layer (rows < n[l]: weights of input unit i; row n[l]: the bias); w1, the end of its weight
 * rows; CSC, the batch's nonzeros of layer 0 regrouped by input row (compressed sparse
 * columns of x^T); nostate, plain SGD without decay (a zero gradient row changes nothing).
 */

/* Room for every layer's weight tasks (at most the largest FNN_TUNE_TASKS_*) and its bias. */
#define FNN_MAX_TASKS FNN_TEAM_ITEMS
/* layer 0's tasks keep B * S0_G values each in cscx, which holds B * nzld >= B * 32 */
#if FNN_TUNE_TASKS_SPARSE0 * S0_G > 32
#error "FNN_TUNE_TASKS_SPARSE0: the tasks' coefficients outgrow cscx"
#endif
#if FNN_TUNE_TASKS_SPARSE0 + 1 > 10 || FNN_TUNE_TASKS_ROWS + 1 > 10 || FNN_TUNE_TASKS_GEMM + 1 > 10
#error "FNN_MAX_TASKS: more than 9 weight tasks per layer"
#endif

typedef struct {
    int l, c;
    int64_t r0, r1;
} NAME(batch_task);

/* Regroup the batch's nonzero inputs of rows [r0, w1) by input row (counting sort, samples in
 * batch order): on return row i's entries are at [starts[i - r0], starts[i - r0 + 1]) of
 * *samples (their batch index) and *values (their x value). */
static void NAME(csc_regroup)(fnn_ws *ws, int B, int64_t r0, int64_t w1, int32_t *starts,
                              int32_t **samples, REAL **values)
{
    const int nr = (int)(w1 - r0);
    int64_t base = 0;
    for (int i = 0; i <= nr; i++) starts[i] = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
        const int k0 = NAME(nonzero_from)(ws, b, r0), k1 = NAME(nonzero_from)(ws, b, w1);
        base += k0;   /* the batch's nonzeros below r0 come first: tasks get disjoint slices */
        for (int k = k0; k < k1; k++) starts[nzi[k] - r0 + 1]++;
    }
    for (int i = 0; i < nr; i++) starts[i + 1] += starts[i];
    int32_t *smp = ws->cscb + base;
    REAL *val = (REAL *)ws->cscx + base;
    for (int b = 0; b < B; b++) {   /* starts[i] ends as the start of row i + 1 */
        const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
        const REAL *xv = (const REAL *)ws->nzv + (int64_t)b * ws->nzld;
        const int k0 = NAME(nonzero_from)(ws, b, r0), k1 = NAME(nonzero_from)(ws, b, w1);
        for (int k = k0; k < k1; k++) {
            const int i = nzi[k];
            const int q = starts[i - r0]++;
            smp[q] = b;
            val[q] = xv[k];
        }
    }
    for (int i = nr; i > 0; i--) starts[i] = starts[i - 1];
    starts[0] = 0;
    *samples = smp;
    *values = val;
}

/* Sparse layer 0, weight rows [r0, w1): each gradient row is a register-accumulated sum of
 * delta rows (no scatter into a gradient matrix), updated at once. */
static void NAME(task_sparse0)(const fnn_net *net, fnn_ws *ws, REAL *P, const REAL *x,
                               const int64_t *rows, int B, const NAME(opt_scalars) *o,
                               REAL *g, int64_t r0, int64_t w1, int c)
{
    const int nout = net->n[1], ldd = ws->ld[1];
    const REAL *D = (const REAL *)ws->d[1];
    const int nostate = o->kind == FNN_SGD && o->wd == 0;
    int32_t *starts = ws->touched + r0 + c;   /* w1 - r0 + 1 row starts */
    int32_t *samples;
    REAL *values;
    NAME(csc_regroup)(ws, B, r0, w1, starts, &samples, &values);
    const int stride = NAME(row_stride)(nout);
    FNN_FOR_ROWS(i, r0, w1, stride) {
        const int q0 = starts[i - r0], q1 = starts[i - r0 + 1];
        if (q0 == q1 && nostate) continue;
        NAME(weighted_rows_listed)(g, nout, D, ldd, values + q0, samples + q0, q1 - q0, 1);
        NAME(update_params)(P, net->woff[0] + i * nout, g, nout, o, 1);
    }
}

/* One update task (see the top of this file), run by thread tid. */
FNN_NOINLINE void NAME(batch_update_task)(const fnn_net *net, fnn_ws *ws, REAL *P,
                                          const REAL *x, const int64_t *rows, int B,
                                          const NAME(opt_scalars) *o, int tid, int sparse0,
                                          const NAME(batch_task) *task)
{
    const int l = task->l, nin = net->n[l], nout = net->n[l + 1];
    const int64_t r0 = task->r0, r1 = task->r1;
    const int64_t w1 = r1 < nin ? r1 : nin;   /* weight rows [r0, w1), bias if r1 > nin */
    REAL *g = (REAL *)ws->tmp + (int64_t)tid * ws->tmpld;
    const REAL *D = (const REAL *)ws->d[l + 1];
    const int ldd = ws->ld[l + 1];
    if (l == 0 && sparse0 && nout >= fnn_tune.s0_group_min) {   /* fnn_sparse0.h */
        NAME(s0_update_rows)(net, ws, P, x, rows, B, o, r0, w1, ws->cscb + (int64_t)task->c * B,
                             (REAL *)ws->cscx + (int64_t)task->c * B * S0_G);
    } else if (l == 0 && sparse0) {
        NAME(task_sparse0)(net, ws, P, x, rows, B, o, g, r0, w1, task->c);
    } else if (w1 > r0) {
        int lda;
        const REAL *A = NAME(layer_input)(net, ws, x, rows, l, 0, B, 0, &lda);
        REAL *GW = (REAL *)ws->grad + net->woff[l];
        if (NAME(use_gemm)(net, l, B)) {
            /* applying the optimiser from xgemm's registers (no GW written and read back)
             * was a tie at best on wide-512 (Zen 4, 0.97-1.0x): W and its state are the traffic */
            NAME(gemm_rm)('T', 'N', (int)(w1 - r0), nout, B, A + r0, lda, D, ldd,
                          GW + r0 * nout, nout, NAME(apack)(ws, tid));
            NAME(update_params)(P, net->woff[l] + r0 * nout, GW + r0 * nout, (w1 - r0) * nout,
                                o, 1);
        } else if (NAME(is_thin)(nout)) {   /* fnn_thin.h */
            NAME(thin_grad_rows)(A, lda, D, ldd, B, nout, r0, w1, o, P, net->woff[l], NULL);
        } else {
            const int stride = NAME(row_stride)(nout);
            FNN_FOR_ROWS(i, r0, w1, stride) {
                NAME(weighted_rows)(g, nout, D, ldd, A + i, lda, B, 1);
                NAME(update_params)(P, net->woff[l] + i * nout, g, nout, o, 1);
            }
        }
    }
    if (r1 > nin) {
        NAME(weighted_rows)(g, nout, D, ldd, (const REAL *)ws->ones, 1, B, 1);
        NAME(update_params)(P, net->boff[l], g, nout, o, 0);
    }
}

/* The fixed work split of a batched step (independent of the thread count): *n_chunks sample
 * chunks for phase 1, and the update tasks (returns their number). */
static int NAME(batch_plan)(const fnn_net *net, int B, int chunked, int *n_chunks,
                            NAME(batch_task) *tasks, int max_tasks)
{
    int n = 0;
    int64_t macs = 0;
    *n_chunks = chunked ? FNN_TUNE_BATCH_CHUNKS : 1;
    if (*n_chunks > B) *n_chunks = B;
    for (int l = 0; l < net->L; l++) macs += (int64_t)net->n[l] * net->n[l + 1];
    for (int l = 0; l < net->L; l++) {
        const int nin = net->n[l];
        const int64_t layer = (int64_t)nin * net->n[l + 1];
        /* weight-row tasks of the costly layers, then the bias row alone */
        int k = 1;
        if (chunked) {
            const int kmax = l == 0 && fnn_tune.sparse ? FNN_TUNE_TASKS_SPARSE0
                             : (NAME(use_gemm)(net, l, B) ? FNN_TUNE_TASKS_GEMM
                                                           : FNN_TUNE_TASKS_ROWS);
            k = (int)(layer * B / fnn_tune.task_work);
            /* a layer with half the step's work or more is cut at least as many ways as the
             * samples are, or one core updates it while the other idles (784-32-32-10) */
            if (2 * layer >= macs && k < *n_chunks) k = *n_chunks;
            /* so is one with an eighth of a task's work or more: taken whole, it is often the
             * last task of the step, and the other core waits it out (FNN_TUNE_TASK_WORK) */
            if (8 * layer * B >= fnn_tune.task_work && k < *n_chunks) k = *n_chunks;
            k = k < 1 ? 1 : (k > kmax ? kmax : k);
            if (k > nin) k = nin;
        }
        for (int c = 0; c < k && n < max_tasks; c++) {
            int64_t r0, r1;
            NAME(split)(nin, c, k, &r0, &r1);
            tasks[n] = (NAME(batch_task)){l, c, r0, r1};
            n++;
        }
        if (n < max_tasks) {
            tasks[n] = (NAME(batch_task)){l, k, nin, nin + 1};
            n++;
        }
    }
    return n;
}

/* Next work item of a phase: from the team when threads share the step, else item + 1. */
static inline int NAME(next_item)(fnn_team *tm, int phase, int item)
{
    return tm ? fnn_team_next(tm, phase) : item + 1;
}

/* Step s's next item of a phase of n for thread tid: its own first (fnn.h fnn_team_take), or
 * in order on one thread (*pos counts). */
static inline int NAME(take_item)(fnn_team *tm, int phase, int n, int64_t s, int tid, int *pos)
{
    return tm ? fnn_team_take(tm, phase, n, (int)(s + 1), tid, pos) : (*pos)++;
}

static void NAME(batch_loop)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                             const REAL *x, const REAL *y, const int64_t *order, int64_t n_order,
                             int64_t start, int64_t nsteps, int64_t bs, int acc_mode,
                             int chunked, fnn_team *tm, int tid, double *loss_out,
                             int64_t *corr_out)
{
    double loss_sum = 0, peak = 0;
    int64_t corr = 0;
    NAME(opt_scalars) o;
    const int sparse0 = fnn_tune.sparse;
    NAME(batch_task) tasks[FNN_MAX_TASKS];
    int n_chunks = 1, n_tasks = 0, B_planned = -1;
    for (int64_t s = 0; s < nsteps; s++) {
        const int64_t lo = start + s * bs;
        const int64_t hi = lo + bs < n_order ? lo + bs : n_order;
        const int B = (int)(hi - lo);
        const int64_t *rows = order + lo;
        if (B != B_planned) {
            n_tasks = NAME(batch_plan)(net, B, chunked, &n_chunks, tasks, FNN_MAX_TASKS);
            B_planned = B;
        }
        int pos = 0;
        for (int c = NAME(take_item)(tm, 0, n_chunks, s, tid, &pos); c < n_chunks;
             c = NAME(take_item)(tm, 0, n_chunks, s, tid, &pos)) {
            int64_t b0, b1;
            NAME(split)(B, c, n_chunks, &b0, &b1);
            NAME(batch_forward_backward)(net, ws, P, x, y, rows, (int)b0, (int)b1, B,
                                         (REAL)(1.0 / B), acc_mode, sparse0);
        }
        if (tm) fnn_team_barrier(tm, -1);
        NAME(opt_scalars_init)(&o, op, op->t + s + 1);
        if (tid == 0) {
            for (int b = 0; b < B; b++) {
                loss_sum += ws->lossb[b];
                corr += ws->corb[b];
                peak = NAME(peak_merge)(peak, ws->xpkb[b]);
            }
        }
        pos = 0;
        for (int k = NAME(take_item)(tm, 1, n_tasks, s, tid, &pos); k < n_tasks;
             k = NAME(take_item)(tm, 1, n_tasks, s, tid, &pos))
            NAME(batch_update_task)(net, ws, P, x, rows, B, &o, tid, sparse0, &tasks[k]);
        if (tm) fnn_team_barrier(tm, -1);
    }
    if (tid == 0) {
        *loss_out = loss_sum;
        *corr_out = corr;
        ws->xpeak = peak;
    }
}

static double NAME(train_batch)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                                const REAL *x, const REAL *y, const int64_t *order,
                                int64_t n_order, int64_t start, int64_t nsteps, int64_t bs,
                                int acc_mode, int T, int chunked, int64_t *correct)
{
    double loss_sum = 0;
    int64_t corr = 0;
    int saved[FNN_MAXBLAS];
    fnn_blas_hold1(saved);   /* our threads, each with a one-thread BLAS */
    NAME(apack_alloc)(net, ws);
    if (T <= 1) {
        NAME(batch_loop)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                         chunked, NULL, 0, &loss_sum, &corr);
    } else {
#ifdef _OPENMP
        fnn_team tm = {0};
#pragma omp parallel num_threads(T)
        {
#pragma omp single
            tm.T = omp_get_num_threads();   /* implicit barrier: everyone sees the team size */
            const unsigned fp = fnn_ftz_begin();
            NAME(batch_loop)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                             chunked, &tm, omp_get_thread_num(), &loss_sum, &corr);
            fnn_ftz_end(fp);
        }
#endif
    }
    fnn_blas_restore(saved);
    *correct = corr;
    return loss_sum;
}
