/* fnn_entry.h: the entry points of fnn_kernels (fnn.h): train (picks the narrow or the
 * batched path and the thread count), predict, loss_grad, abs_peak, and this instantiation's
 * kernel table. Part of fnn_impl.h.
 *
 * Glossary: T, threads used (at most the caller's nthreads and the workspace's capacity);
 * narrow, every layer at most fnn_tune.narrow_max units (fnn_narrow.h); chunked, a batched
 * step big enough to be cut in fixed pieces that threads share (fnn_batch_step.h).
 */

static int NAME(is_narrow)(const fnn_net *net) { return net->maxn <= fnn_tune.narrow_max; }

/* The training thread count: 1 unless the step is worth splitting (`worth`). */
static int NAME(train_threads)(const fnn_ws *ws, int nthreads, int worth)
{
    int T = nthreads < ws->T ? nthreads : ws->T;
    if (T < 1 || !worth) T = 1;
#ifndef _OPENMP
    T = 1;
#endif
    return T;
}

/* Steps [s0, s0 + n) of a train call on the per-sample path with T threads, merged into the
 * call's loss (returned sum), *corr and *peak (ws->xpeak holds the part's). Returns seconds. */
static double NAME(narrow_part)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                                const REAL *x, const REAL *y, const int64_t *order,
                                int64_t n_order, int64_t start, int64_t s0, int64_t n,
                                int64_t bs, int acc_mode, int T, int helper, double *loss,
                                int64_t *corr, double *peak)
{
    fnn_opt o = *op;
    int64_t c = 0;
    o.t += s0;   /* the optimiser's step count where the part starts */
    const double t0 = fnn_now();
    *loss += NAME(train_narrow)(net, ws, P, &o, x, y, order, n_order, start + s0 * bs, n, bs,
                                acc_mode, T, helper, &c);
    *corr += c;
    *peak = NAME(peak_merge)(*peak, ws->xpeak);
    return fnn_now() - t0;
}

/* The per-sample path with T threads or one, whichever is faster now (fnn_tuning.h
 * FNN_TUNE_NARROW_PROBE_STEPS): a probe times a few steps each way, then the call runs on. */
static double NAME(train_narrow_probed)(const fnn_net *net, fnn_ws *ws, REAL *P,
                                        const fnn_opt *op, const REAL *x, const REAL *y,
                                        const int64_t *order, int64_t n_order, int64_t start,
                                        int64_t nsteps, int64_t bs, int acc_mode, int T,
                                        int helper, int64_t *correct)
{
    const int64_t k = FNN_TUNE_NARROW_PROBE_STEPS;
    double loss = 0, peak = 0;
    int64_t s = 0;
    *correct = 0;
    if (T > 1) {
        const double now = fnn_now();
        if (nsteps >= 5 * k && (ws->narrow_vs != T || ws->narrow_T == 0
                                || now - ws->narrow_at >= FNN_TUNE_NARROW_PROBE_EVERY_S)) {
            /* untimed shared steps first: they wake the threads, paid once a call (timed,
             * the wake-up made one thread look faster: digits-16 b10 kept one thread where
             * two ran 1.33x faster, Intel VM) */
            const int64_t w = k / 2;
            NAME(narrow_part)(net, ws, P, op, x, y, order, n_order, start, 0, w, bs, acc_mode,
                              T, 0, &loss, correct, &peak);
            const double shared = NAME(narrow_part)(net, ws, P, op, x, y, order, n_order, start,
                                                    w, k, bs, acc_mode, T, 0, &loss,
                                                    correct, &peak);
            const double alone = NAME(narrow_part)(net, ws, P, op, x, y, order, n_order, start,
                                                   w + k, k, bs, acc_mode, 1, helper,
                                                   &loss, correct, &peak);
            ws->narrow_T = alone < shared ? 1 : T;
            ws->narrow_vs = T;
            ws->narrow_at = now;
            s = w + 2 * k;
        }
        if (ws->narrow_vs == T && ws->narrow_T == 1) T = 1;
    }
    NAME(narrow_part)(net, ws, P, op, x, y, order, n_order, start, s, nsteps - s, bs, acc_mode,
                      T, T == 1 && helper, &loss, correct, &peak);
    ws->xpeak = peak;
    return loss;
}

/* Whether a batched step of `work` MACs is cut in fixed chunks and tasks that threads share:
 * always from par_min_work_batch (the same bits for any thread count), and from
 * par_min_work_chunks when more than one thread will run (then the bits are those of every
 * thread count >= 2; one thread keeps the whole-step plan, which is faster alone). */
static int NAME(use_chunks)(const fnn_ws *ws, int nthreads, int64_t work)
{
    return work >= fnn_tune.par_min_work_batch
           || (work >= fnn_tune.par_min_work_chunks && NAME(train_threads)(ws, nthreads, 1) > 1);
}

static double NAME(train_run)(const fnn_net *net, fnn_ws *ws, void *Pv, const fnn_opt *op,
                              const void *xv, const void *yv, int64_t N, const int64_t *order,
                              int64_t n_order, int64_t start, int64_t nsteps, int64_t bs,
                              int acc_mode, int nthreads, int64_t *correct, int *status)
{
    REAL *P = (REAL *)Pv;
    const REAL *x = (const REAL *)xv, *y = (const REAL *)yv;
    *status = 0;
    *correct = 0;
    ws->xpeak = 0;
    if (nsteps <= 0) return 0.0;
    int64_t end = start + nsteps * bs;
    if (end > n_order) end = n_order;
    for (int64_t i = start; i < end; i++)
        if (order[i] < 0 || order[i] >= N) {
            *status = -1;
            return 0.0;
        }
    const int64_t work = bs * NAME(work_per_sample)(net);
    const int T0 = NAME(train_threads)(ws, nthreads, 1);
    /* narrow networks take the per-sample path, unless 2+ threads can share a big enough
     * step's pieces (fnn_tuning.h FNN_TUNE_NARROW_PIECES_MIN) */
    if (NAME(is_narrow)(net) && !(T0 > 1 && work >= FNN_TUNE_NARROW_PIECES_MIN)) {
        /* steps worth sharing sum layer 0 in parts, one thread per part at most, whatever
         * the thread count (the same bits for any); smaller ones in one whole-row sum (5%
         * faster on one thread: one pass and one sum per sample) (fnn_narrow.h) */
        const int worth = work >= fnn_tune.par_min_work;
        ws->nparts = worth ? FNN_PARTS : 1;
        int T = NAME(train_threads)(ws, nthreads, worth);
        T = T < FNN_PARTS ? T : FNN_PARTS;
        /* one thread on the steps: a second one reads its rows ahead (fnn_fetch.h) */
        const int helper = fnn_tune.fetch_ahead && T0 > 1;
        return NAME(train_narrow_probed)(net, ws, P, op, x, y, order, n_order, start, nsteps,
                                         bs, acc_mode, T, helper, correct);
    }
    /* big enough steps are cut in fixed chunks (same bits for any thread count) that threads
     * take dynamically; smaller ones run whole on one thread */
    const int chunked = NAME(use_chunks)(ws, nthreads, work);
    const int T = NAME(train_threads)(ws, nthreads, chunked);
    return NAME(train_batch)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                             T, chunked, correct);
}

/* abs_peak of rows [i0, i1) merged into *mine (peak requested), else nothing. */
static inline void NAME(peak_rows)(const double *peak, double *mine, const REAL *x, int n0,
                                   int64_t i0, int64_t i1)
{
    if (peak) *mine = NAME(peak_merge)(*mine, NAME(abs_peak)(x + i0 * n0, (i1 - i0) * n0));
}

/* predict through the batched kernels: thread t owns workspace rows [w0, w1) and x rows
 * [i0, i1), and runs them through in pieces of w1 - w0 rows, each with a one-thread BLAS. */
static void NAME(predict_batched)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x,
                                  REAL *out, int64_t N, int T, double *peak)
{
    const int n0 = net->n[0], nL = net->n[net->L], sparse = fnn_tune.sparse;
    int saved[FNN_MAXBLAS];
    fnn_blas_hold1(saved);
#ifdef _OPENMP
#pragma omp parallel num_threads(T) if (T > 1)
#endif
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int t = 0, nt = 1;
        (void)T;
#endif
        const unsigned fp = fnn_ftz_begin();
        int64_t w0, w1, i0, i1;
        NAME(split)(ws->B, t, nt, &w0, &w1);
        NAME(split)(N, t, nt, &i0, &i1);
        const int cap = (int)(w1 - w0);
        double mine = 0;
        for (int64_t lo = i0; lo < i1 && cap > 0; lo += cap) {
            const int nb = (int)(i1 - lo < cap ? i1 - lo : cap);
            if (!sparse) NAME(peak_rows)(peak, &mine, x, n0, lo, lo + nb);
            /* workspace row w0 + k holds x row lo + k */
            NAME(batch_forward_rows)(net, ws, P, x + (lo - w0) * n0, NULL, NULL, (int)w0,
                                     (int)w0 + nb, nb, out + (lo - w0) * nL, sparse);
            if (sparse && peak)   /* the sparse layer 0 found each row's peak as it indexed it */
                for (int64_t b = w0; b < w0 + nb; b++)
                    mine = NAME(peak_merge)(mine, ws->xpkb[b]);
        }
        if (peak) {
#ifdef _OPENMP
#pragma omp critical(fnn_peak)
#endif
            *peak = NAME(peak_merge)(*peak, mine);
        }
        fnn_ftz_end(fp);
    }
    fnn_blas_restore(saved);
}

static void NAME(predict_run)(const fnn_net *net, fnn_ws *ws, const void *Pv, const void *xv,
                              void *outv, int64_t N, int nthreads, double *peak)
{
    const REAL *P = (const REAL *)Pv, *x = (const REAL *)xv;
    REAL *out = (REAL *)outv;
    const int n0 = net->n[0], nL = net->n[net->L];
    if (peak) *peak = 0;
    if (N == 1) {
        NAME(forward_one)(net, ws, P, x, 0, out, peak);
        return;
    }
    int T = nthreads < ws->T ? nthreads : ws->T;
    if (T > ws->B) T = ws->B;
    /* rows are independent and handed out dynamically; the threshold: fnn_tuning.h */
    const int64_t par_min = (int64_t)fnn_tune.par_min_work * FNN_TUNE_PREDICT_PAR_FACTOR;
    if (T < 1 || N * NAME(work_per_sample)(net) < par_min) T = 1;
#ifndef _OPENMP
    T = 1;
#endif
    if (!NAME(is_narrow)(net) && N >= fnn_tune.gemm_min_b) {
        NAME(predict_batched)(net, ws, P, x, out, N, T, peak);
        return;
    }
    /* per-sample kernels; one parallel region for the whole call, rows handed out in blocks
     * (dynamic: a thread that starts late just takes fewer blocks); each row's nonzero scan
     * also checks it. Each thread uses workspace row t. */
    if (T == 1) {
        for (int64_t i = 0; i < N; i++) {
            if (i + 1 < N) NAME(prefetch_row)(x + (i + 1) * n0, n0);
            NAME(forward_one)(net, ws, P, x + i * n0, 0, out + i * nL, peak);
        }
        return;
    }
#ifdef _OPENMP
    const int64_t take = FNN_TUNE_PREDICT_ROWS_PER_TAKE, blocks = (N + take - 1) / take;
#pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        const unsigned fp = fnn_ftz_begin();
        double mine = 0;
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 0; k < blocks; k++) {
            const int64_t i1 = (k + 1) * take < N ? (k + 1) * take : N;
            for (int64_t i = k * take; i < i1; i++) {
                if (i + 1 < i1) NAME(prefetch_row)(x + (i + 1) * n0, n0);
                NAME(forward_one)(net, ws, P, x + i * n0, t, out + i * nL, peak ? &mine : NULL);
            }
        }
        if (peak) {
#pragma omp critical(fnn_peak)
            *peak = NAME(peak_merge)(*peak, mine);
        }
        fnn_ftz_end(fp);
    }
#endif
}

static double NAME(loss_grad_run)(const fnn_net *net, fnn_ws *ws, const void *Pv, const void *xv,
                                  const void *yv, int64_t N, void *gradv)
{
    const REAL *P = (const REAL *)Pv, *x = (const REAL *)xv, *y = (const REAL *)yv;
    int64_t c;
    NAME(batch_forward_rows)(net, ws, P, x, y, NULL, 0, (int)N, (int)N, NULL, fnn_tune.sparse);
    return NAME(batch_loss_grad)(net, ws, P, x, y, NULL, (int)N, (REAL *)gradv, fnn_tune.sparse,
                                 FNN_ACC_NONE, &c) / (double)N;
}

/* The entry points: the *_run functions with subnormals flushed on the calling thread (fnn.h
 * fnn_ftz_begin; each parallel region flushes on its own threads). */
static double NAME(train)(const fnn_net *net, fnn_ws *ws, void *P, const fnn_opt *op,
                          const void *x, const void *y, int64_t N, const int64_t *order,
                          int64_t n_order, int64_t start, int64_t nsteps, int64_t bs,
                          int acc_mode, int nthreads, int64_t *correct, int *status)
{
    const unsigned fp = fnn_ftz_begin();
    const double r = NAME(train_run)(net, ws, P, op, x, y, N, order, n_order, start, nsteps, bs,
                                     acc_mode, nthreads, correct, status);
    fnn_ftz_end(fp);
    return r;
}

static void NAME(predict)(const fnn_net *net, fnn_ws *ws, const void *P, const void *x,
                          void *out, int64_t N, int nthreads, double *peak)
{
    const unsigned fp = fnn_ftz_begin();
    NAME(predict_run)(net, ws, P, x, out, N, nthreads, peak);
    fnn_ftz_end(fp);
}

static double NAME(loss_grad)(const fnn_net *net, fnn_ws *ws, const void *P, const void *x,
                              const void *y, int64_t N, void *grad)
{
    const unsigned fp = fnn_ftz_begin();
    const double r = NAME(loss_grad_run)(net, ws, P, x, y, N, grad);
    fnn_ftz_end(fp);
    return r;
}

const fnn_kernels NAME(kernels) = {NAME(train), NAME(predict), NAME(loss_grad), NAME(abs_peak),
                                   FNN_ISA_NAME};
