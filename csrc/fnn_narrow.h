/* fnn_narrow.h: the fused per-sample training step for narrow networks (every layer at most
 * fnn_tune.narrow_max units, fnn_tuning.h). Part of fnn_impl.h.
 *
 * A step has two phases, with a barrier between them when threads share it:
 *   forward-backward (samples split over threads): forward, loss, deltas of every layer >= 1;
 *   update (parameter rows split over threads): gradient row = sum over the batch in a fixed
 *   order, then the optimiser update of that row.
 * No thread ever sums another thread's partial result, so the result is bit-identical for any
 * thread count.
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

/* A row wanted soon, into L2 (prefetcht1, fnn_tuning.h FNN_TUNE_PREFETCH_LOCALITY). */
static inline void NAME(prefetch_row)(const REAL *p, int n)
{
    const char *c = (const char *)p;
    for (size_t o = 0; o < (size_t)n * sizeof(REAL); o += 64)
        __builtin_prefetch(c + o, 0, FNN_TUNE_PREFETCH_LOCALITY);
}

static inline int NAME(lower_bound)(const int32_t *v, int n, int32_t key)
{
    /* branch-free halving (a conditional move per level): the position found varies from
     * sample to sample, so a compare-and-jump per level is hard to predict */
    const int32_t *base = v;
    while (n > 1) {
        const int half = n >> 1;
        base = base[half] < key ? base + half : base;
        n -= half;
    }
    return (int)(base - v) + (n == 1 && *base < key);
}

/* Forward one sample through all layers with the per-sample kernels (layer 0 sparse, its
 * rows W0, ldw0 apart: P's own or train_narrow's padded copy). The last layer's output goes
 * to `out` (any stride-1 row of n[L] values). */
static void NAME(forward_one)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *W0,
                              int64_t ldw0, const REAL *x, int b, REAL *out, int keep_nnz)
{
    const int L = net->L;
    int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
    /* training (keep_nnz) also checks the row; predict threads skip the per-sample slots:
     * adjacent ones share a cache line */
    const int nnz = keep_nnz ? NAME(nonzero_indices_peak)(x, net->n[0], nzi, &ws->xpkb[b])
                             : NAME(nonzero_indices)(x, net->n[0], nzi);
    if (keep_nnz) ws->nnz[b] = nnz;
    REAL *z = NAME(arow)(ws, 1, b);
    NAME(weighted_rows_sparse)(z, net->n[1], W0, ldw0, x, nzi, nnz, 1);
    NAME(bias_act_pad)(net->act[0], z, P + net->boff[0], net->n[1]);
    for (int l = 1; l < L; l++) {
        const REAL *a = z;
        z = NAME(arow)(ws, l + 1, b);
        NAME(weighted_rows)(z, net->n[l + 1], P + net->woff[l], net->n[l + 1], a, 1, net->n[l],
                            1);
        NAME(bias_act_pad)(net->act[l], z, P + net->boff[l], net->n[l + 1]);
    }
    if (out != z) memcpy(out, z, sizeof(REAL) * net->n[L]);
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

/* Phase 1 for samples [b0, b1): nnext bounds the samples worth prefetching. */
static void NAME(narrow_forward_backward)(const fnn_net *net, fnn_ws *ws, const REAL *P,
                                          const REAL *W0, int64_t ldw0, const REAL *x,
                                          const REAL *y, const int64_t *rows, int b0, int b1,
                                          int64_t nnext, REAL invB, int acc_mode)
{
    const int L = net->L, n0 = net->n[0], nL = net->n[L];
    for (int b = b0; b < b1; b++) {
        /* the next sample's input row is a random row of x: fetch it while this one runs
         * (nielsen-30 b10, Zen 4: 2 or 3 samples ahead 1-5% slower; every 2nd or 4th line
         * 4-15% slower; in two bursts, before and after forward_one, a tie) */
        if (b + 1 < nnext) {
            NAME(prefetch_row)(x + rows[b + 1] * n0, n0);
            __builtin_prefetch(y + rows[b + 1] * nL, 0, 3);
        }
        const REAL *xr = x + rows[b] * n0;
        REAL *out = NAME(arow)(ws, L, b);
        NAME(forward_one)(net, ws, P, W0, ldw0, xr, b, out, 1);
        ws->lossb[b] = NAME(loss_head)(net, out, y + rows[b] * nL, NAME(drow)(ws, L, b), invB,
                                       acc_mode, &ws->corb[b]);
        NAME(backward_one)(net, ws, P, b);
    }
}

/* Layer-0 weight rows [r0, r1), not direct: the g0 rows (zero between steps) accumulate
 * x_bi * d_b for the nonzero inputs, the touched rows are remembered, updated, then zeroed. */
static void NAME(narrow_update_input_rows)(const fnn_net *net, fnn_ws *ws, REAL *P,
                                           const REAL *x, const int64_t *rows, int B,
                                           const NAME(opt_scalars) *o, int t, int T,
                                           int64_t r0, int64_t r1)
{
    const int n0 = net->n[0], n1 = net->n[1], ldd = ws->ld[1];
    const REAL *d1 = (const REAL *)ws->d[1];
    REAL *G = (REAL *)ws->g0;
    const uint32_t epoch = ws->epoch;
    uint32_t *stamp = ws->stamp;
    /* r1 - r0 + 1 slots: the branchless append writes one past the end */
    int32_t *touched = ws->touched + r0 + t;
    int n_touched = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
        const int nnz = ws->nnz[b];
        const REAL *xr = x + rows[b] * n0;
        const REAL *db = d1 + (int64_t)b * ldd;
        const int k0 = T == 1 ? 0 : NAME(lower_bound)(nzi, nnz, (int32_t)r0);
        const int k1 = T == 1 ? nnz : NAME(lower_bound)(nzi, nnz, (int32_t)r1);
        for (int k = k0; k < k1; k++) {
            const int i = nzi[k];
            touched[n_touched] = i;
            n_touched += stamp[i] != epoch;
            stamp[i] = epoch;
            NAME(axpy)(G + (int64_t)i * ws->ldg0, xr[i], db, n1);
        }
    }
    const int stride = NAME(row_stride)(n1);
    FNN_FOR_ROWS(i, r0, r1, stride)
        NAME(update_params)(P, net->woff[0] + i * n1, G + i * ws->ldg0, n1, o, 1);
    for (int k = 0; k < n_touched; k++)
        memset(G + (int64_t)touched[k] * ws->ldg0, 0, sizeof(REAL) * n1);
}

/* Layer 0: weight rows [r0, r1) of thread t (sparse accumulation), the bias on the last. */
static void NAME(narrow_update_input)(const fnn_net *net, fnn_ws *ws, REAL *P, REAL *W0,
                                      int64_t ldw0, const REAL *x, const int64_t *rows, int B,
                                      const NAME(opt_scalars) *o, int t, int T, int direct,
                                      REAL *g)
{
    const int n0 = net->n[0], n1 = net->n[1], ldd = ws->ld[1];
    const REAL *d1 = (const REAL *)ws->d[1];
    int64_t r0, r1;
    NAME(split)(n0, t, T, &r0, &r1);
    if (direct) {
        /* W[i,:] -= lr * x_bi * delta_b, sample by sample (in batch order), only on rows
         * with x_bi != 0: the gradient is never materialised. Regrouped by row instead (each
         * row loaded and stored once, the same bits) it was 1.3x slower on nielsen-30 b10
         * and 1.6x on digits-16 b10 (Zen 4): the sort, and a mispredicted loop exit per row
         * (0 to B entries each), cost more than the loads and stores saved. */
        for (int b = 0; b < B; b++) {
            const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
            const int nnz = ws->nnz[b];
            const int k0 = T == 1 ? 0 : NAME(lower_bound)(nzi, nnz, (int32_t)r0);
            const int k1 = T == 1 ? nnz : NAME(lower_bound)(nzi, nnz, (int32_t)r1);
            NAME(sgd_sparse_sample)(W0, ldw0, n1, x + rows[b] * n0, nzi, k0, k1,
                                    d1 + (int64_t)b * ldd, o->lr);
        }
    } else {
        NAME(narrow_update_input_rows)(net, ws, P, x, rows, B, o, t, T, r0, r1);
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

/* nsteps steps as thread t of T (team tm when T > 1); thread 0 reports loss and accuracy. */
static void NAME(narrow_loop)(const fnn_net *net, fnn_ws *ws, REAL *P, REAL *W0,
                              int64_t ldw0, const fnn_opt *op,
                              const REAL *x, const REAL *y, const int64_t *order,
                              int64_t n_order, int64_t start, int64_t nsteps, int64_t bs,
                              int acc_mode, int t, int T, fnn_team *tm, double *loss_out,
                              int64_t *corr_out)
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
        int64_t b0, b1;
        NAME(split)(B, t, T, &b0, &b1);
        /* prefetch reach: into the next step only when this thread continues there */
        const int64_t nnext = T == 1 ? (s + 1 < nsteps ? n_order - lo : B) : b1;
        NAME(narrow_forward_backward)(net, ws, P, W0, ldw0, x, y, rows, (int)b0, (int)b1,
                                      nnext, invB, acc_mode);
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
                peak = NAME(peak_merge)(peak, ws->xpkb[b]);
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
                                 int acc_mode, int T, int64_t *correct)
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
    if (T <= 1) {
        NAME(narrow_loop)(net, ws, P, W0, ldw0, op, x, y, order, n_order, start, nsteps, bs,
                          acc_mode, 0, 1, NULL, &loss_sum, &corr);
    } else {
#ifdef _OPENMP
        fnn_team tm = {0};
        tm.T = T;
#pragma omp parallel num_threads(T)
        {
            const int nt = omp_get_num_threads();
            const unsigned fp = fnn_ftz_begin();
            if (nt == T) {
                NAME(narrow_loop)(net, ws, P, W0, ldw0, op, x, y, order, n_order, start,
                                  nsteps, bs, acc_mode, omp_get_thread_num(), T, &tm,
                                  &loss_sum, &corr);
            } else if (omp_get_thread_num() == 0) {   /* got fewer threads than asked */
                NAME(narrow_loop)(net, ws, P, W0, ldw0, op, x, y, order, n_order, start,
                                  nsteps, bs, acc_mode, 0, 1, NULL, &loss_sum, &corr);
            }
            fnn_ftz_end(fp);
        }
#endif
    }
    if (pad) {
        for (int i = 0; i < n0; i++)
            memcpy(P + net->woff[0] + (int64_t)i * n1, W0 + i * ldw0, sizeof(REAL) * n1);
    }
    *correct = corr;
    return loss_sum;
}
