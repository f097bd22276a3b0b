/* fnn_narrow.h: the fused per-sample training step for narrow networks (every layer at most
 * fnn_tune.narrow_max units, fnn_tuning.h). Part of fnn_impl.h.
 *
 * In steps worth sharing, layer 0's inputs are cut in FNN_PARTS fixed parts (fnn.h) and its
 * sum for a sample is the sum of the parts' sums, each over that part's nonzero inputs (else
 * one part: the whole row), on any number of threads. With T threads (T = FNN_PARTS) a step has three phases, with a
 * barrier after each:
 *   parts (thread t owns part t): the part's nonzeros and sum for every sample of the step;
 *   forward-backward (samples split over threads): the rest of the forward, loss, deltas;
 *   update: layer 0's rows by their part's owner, other layers' rows split over threads;
 *   gradient row = sum over the batch in a fixed order, then the optimiser update.
 * One thread runs the same sums sample by sample. No sum depends on the thread count, so the
 * result is bit-identical for any; and a thread only ever reads and writes its own part of
 * layer 0 and of the input rows (on Intel, sharing samples instead moved layer 0's rows
 * between the cores every step: digits-16 b10 ran 0.75x one thread's speed on two).
 *
 * Glossary: arow/drow, sample b's row of a[l]/d[l]; [r0, r1), a thread's parameter rows;
 * [b0, b1), its samples; direct, plain SGD without decay (applied straight from the deltas,
 * no gradient row); epoch/stamp, which g0 rows this step touched (fnn.h fnn_ws).
 */

static inline REAL *NAME(arow)(fnn_ws *ws, int l, int b)
{
    return (REAL *)ws->a[l] + (int64_t)b * ws->ld[l];
}

static inline REAL *NAME(drow)(fnn_ws *ws, int l, int b)
{
    return (REAL *)ws->d[l] + (int64_t)b * ws->ld[l];
}

/* Part t of T of the range [0, n): [lo, hi). */
static inline void NAME(split)(int64_t n, int t, int T, int64_t *lo, int64_t *hi)
{
    *lo = n * t / T;
    *hi = n * (t + 1) / T;
}

/* Inputs [*i0, *i1) of part p of ws->nparts: the first part rounded to whole vectors of 16
 * values (one part: all of them). */
static inline void NAME(part_range)(const fnn_ws *ws, int n0, int p, int *i0, int *i1)
{
    int cut = ws->nparts == 1 ? n0 : (n0 / FNN_PARTS + 15) / 16 * 16;
    cut = cut < n0 ? cut : n0;
    *i0 = p ? cut : 0;
    *i1 = p ? n0 : cut;
}

/* Sample b's list of part p's nonzero inputs (indices from the part's start). */
static inline int32_t *NAME(part_nzi)(fnn_ws *ws, int n0, int b, int p)
{
    int i0, i1;
    NAME(part_range)(ws, n0, p, &i0, &i1);
    return ws->nzi + (int64_t)b * ws->nzld + (p ? i0 + 16 : 0);
}

/* Layers 1 .. L-1 of sample b from layer 0's pre-activation z = a[1] row b (bias and
 * activation applied here); returns the output row (a[L] row b). */
static REAL *NAME(forward_dense)(const fnn_net *net, fnn_ws *ws, const REAL *P, int b, REAL *z)
{
    NAME(bias_act)(net->act[0], z, P + net->boff[0], net->n[1]);
    for (int l = 1; l < net->L; l++) {
        const REAL *a = z;
        z = NAME(arow)(ws, l + 1, b);
        NAME(weighted_rows)(z, net->n[l + 1], P + net->woff[l], net->n[l + 1], a, 1, net->n[l],
                            1);
        NAME(bias_act)(net->act[l], z, P + net->boff[l], net->n[l + 1]);
    }
    return z;
}

/* Predict one sample with the per-sample kernels (layer 0 sparse), in workspace row b; the
 * output goes to `out` (any stride-1 row of n[L] values). peak (or NULL): max |x| merged in,
 * found by the nonzero scan itself (a separate pass over the rows cost a quarter of a
 * digits-16 predict). */
static void NAME(forward_one)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x,
                              int b, REAL *out, double *peak)
{
    int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
    double pk = 0;
    const int nnz = peak ? NAME(nonzero_indices_peak)(x, net->n[0], nzi, &pk)
                         : NAME(nonzero_indices)(x, net->n[0], nzi);
    if (peak) *peak = NAME(peak_merge)(*peak, pk);
    REAL *z = NAME(arow)(ws, 1, b);
    NAME(weighted_rows_sparse)(z, net->n[1], P + net->woff[0], net->n[1], x, nzi, nnz, 1);
    z = NAME(forward_dense)(net, ws, P, b, z);
    if (out != z) memcpy(out, z, sizeof(REAL) * net->n[net->L]);
}

/* Backward deltas of one sample, d[L] .. d[1] (d[L] already set by loss_head). */
static void NAME(backward_one)(const fnn_net *net, fnn_ws *ws, const REAL *P, int b)
{
    for (int l = net->L - 1; l >= 1; l--) {
        REAL *dl = NAME(drow)(ws, l, b);
        NAME(row_dots)(dl, P + net->woff[l], net->n[l], net->n[l + 1], NAME(drow)(ws, l + 1, b),
                       net->n[l + 1]);
        NAME(act_bwd)(net->act[l - 1], NAME(arow)(ws, l, b), dl, net->n[l]);
    }
}

/* Part p of layer 0 for sample b (input row xr): its nonzeros, their max |x| and its sum, part
 * 0's into a[1], part 1's into d[1] (narrow_rest adds them before d[1] is written). */
static void NAME(narrow_part_sum)(const fnn_net *net, fnn_ws *ws, const REAL *W0, int64_t ldw0,
                                  const REAL *xr, int b, int p)
{
    int i0, i1;
    NAME(part_range)(ws, net->n[0], p, &i0, &i1);
    int32_t *idx = NAME(part_nzi)(ws, net->n[0], b, p);
    const int slot = p * ws->partld + b;
    const int cnt = NAME(nonzero_indices_peak)(xr + i0, i1 - i0, idx, &ws->xpkb[slot]);
    ws->nnz[slot] = cnt;
    REAL *z = p ? NAME(drow)(ws, 1, b) : NAME(arow)(ws, 1, b);
    NAME(weighted_rows_sparse)(z, net->n[1], W0 + (int64_t)i0 * ldw0, ldw0, xr + i0, idx, cnt,
                               1);
}

/* Sample b after its part sums: layer 0's output, the dense layers, loss and deltas. */
static void NAME(narrow_rest)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *y,
                              int64_t row, int b, REAL invB, int acc_mode)
{
    const int L = net->L, n1 = net->n[1], nL = net->n[L];
    REAL *z = NAME(arow)(ws, 1, b);
    const REAL *z1 = NAME(drow)(ws, 1, b);
    if (ws->nparts > 1)
        for (int j = 0; j < n1; j++) z[j] += z1[j];
    z = NAME(forward_dense)(net, ws, P, b, z);
    ws->lossb[b] = NAME(loss_head)(net, z, y + row * nL, NAME(drow)(ws, L, b), invB, acc_mode,
                                   &ws->corb[b]);
    NAME(backward_one)(net, ws, P, b);
}

/* One thread, samples [0, B): every part and the rest, sample by sample; nnext bounds the
 * samples worth prefetching. */
static void NAME(narrow_forward_backward)(const fnn_net *net, fnn_ws *ws, const REAL *P,
                                          const REAL *W0, int64_t ldw0, const REAL *x,
                                          const REAL *y, const int64_t *rows, int B,
                                          int64_t nnext, REAL invB, int acc_mode)
{
    const int n0 = net->n[0], nL = net->n[net->L];
    for (int b = 0; b < B; b++) {
        /* the next sample's input row is a random row of x: fetch it while this one runs
         * (nielsen-30 b10, Zen 4: 2 or 3 samples ahead 1-5% slower; every 2nd or 4th line
         * 4-15% slower; in two bursts, before and after layer 0, a tie) */
        if (b + 1 < nnext) {
            NAME(prefetch_row)(x + rows[b + 1] * n0, n0);
            __builtin_prefetch(y + rows[b + 1] * nL, 0, 3);
        }
        const REAL *xr = x + rows[b] * n0;
        for (int p = 0; p < ws->nparts; p++) NAME(narrow_part_sum)(net, ws, W0, ldw0, xr, b, p);
        NAME(narrow_rest)(net, ws, P, y, rows[b], b, invB, acc_mode);
    }
}

/* Thread p's first phase: part p of every sample of the step (prefetching its lines). */
static void NAME(narrow_parts)(const fnn_net *net, fnn_ws *ws, const REAL *W0, int64_t ldw0,
                               const REAL *x, const int64_t *rows, int B, int64_t nnext, int p)
{
    const int n0 = net->n[0];
    int i0, i1;
    NAME(part_range)(ws, n0, p, &i0, &i1);
    for (int b = 0; b < B; b++) {
        if (b + 1 < nnext) NAME(prefetch_row)(x + rows[b + 1] * n0 + i0, i1 - i0);
        NAME(narrow_part_sum)(net, ws, W0, ldw0, x + rows[b] * n0, b, p);
    }
}

/* Layer-0 weight rows of part p, not direct: the g0 rows (zero between steps) accumulate
 * x_bi * d_b for the part's nonzero inputs, the touched rows are remembered, updated, then
 * zeroed. t: the thread (its list of touched rows starts at row i0 + t). */
static void NAME(narrow_update_part_rows)(const fnn_net *net, fnn_ws *ws, REAL *P,
                                          const REAL *x, const int64_t *rows, int B,
                                          const NAME(opt_scalars) *o, int t, int p)
{
    const int n0 = net->n[0], n1 = net->n[1], ldd = ws->ld[1];
    const REAL *d1 = (const REAL *)ws->d[1];
    REAL *G = (REAL *)ws->g0;
    const uint32_t epoch = ws->epoch;
    uint32_t *stamp = ws->stamp;
    int i0, i1;
    NAME(part_range)(ws, n0, p, &i0, &i1);
    /* i1 - i0 + 1 slots: the branchless append writes one past the end */
    int32_t *touched = ws->touched + i0 + t;
    int n_touched = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *nzi = NAME(part_nzi)(ws, n0, b, p);
        const int nnz = ws->nnz[p * ws->partld + b];
        const REAL *xr = x + rows[b] * n0;
        const REAL *db = d1 + (int64_t)b * ldd;
        for (int k = 0; k < nnz; k++) {
            const int i = i0 + nzi[k];
            touched[n_touched] = i;
            n_touched += stamp[i] != epoch;
            stamp[i] = epoch;
            NAME(axpy)(G + (int64_t)i * ws->ldg0, xr[i], db, n1);
        }
    }
    const int stride = NAME(row_stride)(n1);
    FNN_FOR_ROWS(i, i0, i1, stride)
        NAME(update_params)(P, net->woff[0] + i * n1, G + i * ws->ldg0, n1, o, 1);
    for (int k = 0; k < n_touched; k++)
        memset(G + (int64_t)touched[k] * ws->ldg0, 0, sizeof(REAL) * n1);
}

/* Layer 0: the weight rows of thread t's parts (all of them when T == 1), the bias on the
 * last thread. */
static void NAME(narrow_update_input)(const fnn_net *net, fnn_ws *ws, REAL *P, REAL *W0,
                                      int64_t ldw0, const REAL *x, const int64_t *rows, int B,
                                      const NAME(opt_scalars) *o, int t, int T, int direct,
                                      REAL *g)
{
    const int n0 = net->n[0], n1 = net->n[1], ldd = ws->ld[1];
    const REAL *d1 = (const REAL *)ws->d[1];
    for (int p = T == 1 ? 0 : t; p < (T == 1 ? ws->nparts : t + 1); p++) {
        if (!direct) {
            NAME(narrow_update_part_rows)(net, ws, P, x, rows, B, o, t, p);
            continue;
        }
        /* W[i,:] -= lr * x_bi * delta_b, sample by sample (in batch order), only on rows
         * with x_bi != 0: the gradient is never materialised. Regrouped by row instead (each
         * row loaded and stored once, the same bits) it was 1.3x slower on nielsen-30 b10
         * and 1.6x on digits-16 b10 (Zen 4): the sort, and a mispredicted loop exit per row
         * (0 to B entries each), cost more than the loads and stores saved. */
        int i0, i1;
        NAME(part_range)(ws, n0, p, &i0, &i1);
        for (int b = 0; b < B; b++)
            NAME(sgd_sparse_sample)(W0 + (int64_t)i0 * ldw0, ldw0, n1, x + rows[b] * n0 + i0,
                                    NAME(part_nzi)(ws, n0, b, p), 0,
                                    ws->nnz[p * ws->partld + b], d1 + (int64_t)b * ldd,
                                    o->lr);
    }
    if (t == T - 1) {
        if (direct) {
            NAME(sgd_dense_rows)(NULL, P + net->boff[0], 0, n1, 0, 1, NULL, 0, d1, ldd, B, o->lr);
        } else {
            NAME(weighted_rows)(g, n1, d1, ldd, (const REAL *)ws->ones, 1, B, 1);
            NAME(update_params)(P, net->boff[0], g, n1, o, 0);
        }
    }
}

/* Phase 2, thread t of T: layer 0, then the dense layers (rows i < n[l] are weights with
 * coefficient a[l][b][i], row n[l] is the bias). */
static void NAME(narrow_update)(const fnn_net *net, fnn_ws *ws, REAL *P, REAL *W0,
                                int64_t ldw0, const REAL *x, const int64_t *rows, int B,
                                const NAME(opt_scalars) *o, int t, int T)
{
    const int direct = o->kind == FNN_SGD && o->wd == 0;   /* p -= lr * g, no state */
    REAL *g = (REAL *)ws->tmp + (int64_t)t * ws->tmpld;
    NAME(narrow_update_input)(net, ws, P, W0, ldw0, x, rows, B, o, t, T, direct, g);
    for (int l = 1; l < net->L; l++) {
        const int nin = net->n[l], nout = net->n[l + 1];
        int64_t r0, r1;
        NAME(split)(nin + 1, t, T, &r0, &r1);
        const REAL *A = (const REAL *)ws->a[l];
        const REAL *D = (const REAL *)ws->d[l + 1];
        if (direct) {
            NAME(sgd_dense_rows)(P + net->woff[l], P + net->boff[l], nin, nout, r0, r1, A,
                                 ws->ld[l], D, ws->ld[l + 1], B, o->lr);
            continue;
        }
        const int stride = NAME(row_stride)(nout);
        FNN_FOR_ROWS(i, r0, r1, stride) {
            if (i < nin) {
                NAME(weighted_rows)(g, nout, D, ws->ld[l + 1], A + i, ws->ld[l], B, 1);
                NAME(update_params)(P, net->woff[l] + i * nout, g, nout, o, 1);
            } else {
                NAME(weighted_rows)(g, nout, D, ws->ld[l + 1], (const REAL *)ws->ones, 1, B, 1);
                NAME(update_params)(P, net->boff[l], g, nout, o, 0);
            }
        }
    }
}

static int64_t NAME(work_per_sample)(const fnn_net *net)
{
    int64_t w = 0;
    for (int l = 0; l < net->L; l++) w += (int64_t)net->n[l] * net->n[l + 1];
    return w;
}

/* nsteps steps as thread t of T (team tm when T > 1); thread 0 reports loss and accuracy.
 * fs (or NULL): where a helper reading rows ahead learns where the loop is (fnn_fetch.h). */
static void NAME(narrow_loop)(const fnn_net *net, fnn_ws *ws, REAL *P, REAL *W0,
                              int64_t ldw0, const fnn_opt *op,
                              const REAL *x, const REAL *y, const int64_t *order,
                              int64_t n_order, int64_t start, int64_t nsteps, int64_t bs,
                              int acc_mode, int t, int T, fnn_team *tm, fnn_fetch_state *fs,
                              double *loss_out, int64_t *corr_out)
{
    double loss_sum = 0, peak = 0;
    int64_t corr = 0;
    NAME(opt_scalars) o;
    for (int64_t s = 0; s < nsteps; s++) {
        const int64_t lo = start + s * bs;
        const int64_t hi = lo + bs < n_order ? lo + bs : n_order;
        const int B = (int)(hi - lo);
        const int64_t *rows = order + lo;
        const REAL invB = (REAL)(1.0 / B);
        /* prefetch reach: into the next step's first sample when there is one */
        const int64_t nnext = s + 1 < nsteps ? n_order - lo : B;
        if (fs) __atomic_store_n(&fs->at, lo, __ATOMIC_RELAXED);
        if (T == 1) {
            NAME(narrow_forward_backward)(net, ws, P, W0, ldw0, x, y, rows, B, nnext, invB,
                                          acc_mode);
        } else {
            NAME(narrow_parts)(net, ws, W0, ldw0, x, rows, B, nnext, t);
            fnn_team_barrier(tm, -1);
            int64_t b0, b1;
            NAME(split)(B, t, T, &b0, &b1);
            /* the next step's rows of this thread's part, fetched while these samples run:
             * the parts phase alone is too short to hide the memory behind its one-ahead
             * prefetch (digits-16 b10: over half its time waiting on it) */
            int i0, i1;
            NAME(part_range)(ws, net->n[0], t, &i0, &i1);
            const int64_t nb = nnext - B < B ? nnext - B : B, spread = b1 - b0;
            for (int64_t b = b0; b < b1; b++) {
                for (int64_t k = nb * (b - b0) / spread; k < nb * (b - b0 + 1) / spread; k++)
                    NAME(prefetch_row)(x + rows[B + k] * net->n[0] + i0, i1 - i0);
                NAME(narrow_rest)(net, ws, P, y, rows[b], (int)b, invB, acc_mode);
            }
        }
        NAME(opt_scalars_init)(&o, op, op->t + s + 1);
        if (t == 0 && ++ws->epoch == 0) {
            memset(ws->stamp, 0, sizeof(uint32_t) * (size_t)net->n[0]);
            ws->epoch = 1;
        }
        if (T > 1) fnn_team_barrier(tm, -1);
        NAME(narrow_update)(net, ws, P, W0, ldw0, x, rows, B, &o, t, T);
        if (t == 0) {
            for (int b = 0; b < B; b++) {
                loss_sum += ws->lossb[b];
                corr += ws->corb[b];
                for (int p = 0; p < ws->nparts; p++)
                    peak = NAME(peak_merge)(peak, ws->xpkb[p * ws->partld + b]);
            }
        }
        if (T > 1) fnn_team_barrier(tm, -1);
    }
    if (t == 0) {
        *loss_out = loss_sum;
        *corr_out = corr;
        ws->xpeak = peak;
    }
}

static double NAME(train_narrow)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                                 const REAL *x, const REAL *y, const int64_t *order,
                                 int64_t n_order, int64_t start, int64_t nsteps, int64_t bs,
                                 int acc_mode, int T, int helper, int64_t *correct)
{
    double loss_sum = 0;
    int64_t corr = 0;
    /* plain SGD trains layer 0 in ws->w0pad (rows on cache lines) when there is one: the
     * same arithmetic, copied in and back here */
    const int n0 = net->n[0], n1 = net->n[1];
    const int pad = fnn_tune.w0pad && ws->w0pad && op->kind == FNN_SGD && op->wd == 0;
    REAL *W0 = pad ? (REAL *)ws->w0pad : P + net->woff[0];
    const int64_t ldw0 = pad ? ws->ldw0pad : n1;
    if (pad) {
        for (int i = 0; i < n0; i++) {
            memcpy(W0 + i * ldw0, P + net->woff[0] + (int64_t)i * n1, sizeof(REAL) * n1);
            memset(W0 + i * ldw0 + n1, 0, sizeof(REAL) * (size_t)(ldw0 - n1));
        }
    }
#ifdef _OPENMP
    if (T > 1 || helper) {
        fnn_team tm = {0};
        fnn_fetch_state fs = {start, 0};
        const int64_t end = start + nsteps * bs < n_order ? start + nsteps * bs : n_order;
        tm.T = T = T > 1 ? T : 2;   /* one thread and its helper: 2 */
#pragma omp parallel num_threads(T)
        {
            const int nt = omp_get_num_threads(), t = omp_get_thread_num();
            const unsigned fp = fnn_ftz_begin();
            if (helper && t == 1) {
                NAME(fetch_ahead)(&fs, x, n0, y, net->n[net->L], order, start, end);
            } else if (nt == T && !helper) {
                NAME(narrow_loop)(net, ws, P, W0, ldw0, op, x, y, order, n_order, start,
                                  nsteps, bs, acc_mode, t, T, &tm, NULL, &loss_sum, &corr);
            } else if (t == 0) {   /* with a helper, or fewer threads than asked */
                NAME(narrow_loop)(net, ws, P, W0, ldw0, op, x, y, order, n_order, start,
                                  nsteps, bs, acc_mode, 0, 1, NULL, helper ? &fs : NULL,
                                  &loss_sum, &corr);
                __atomic_store_n(&fs.done, 1, __ATOMIC_RELAXED);
            }
            fnn_ftz_end(fp);
        }
    } else
#endif
    {
        NAME(narrow_loop)(net, ws, P, W0, ldw0, op, x, y, order, n_order, start, nsteps, bs,
                          acc_mode, 0, 1, NULL, NULL, &loss_sum, &corr);
    }
    if (pad) {
        for (int i = 0; i < n0; i++)
            memcpy(P + net->woff[0] + (int64_t)i * n1, W0 + i * ldw0, sizeof(REAL) * n1);
    }
    *correct = corr;
    return loss_sum;
}
