/* fnn_update.h: optimiser updates of parameter rows (SGD, momentum, Nesterov, Adam, weight
 * decay), and plain SGD applied straight from the deltas (no gradient row). Part of
 * fnn_impl.h.
 *
 * Glossary: P params, M first moment (momentum buffer), V2 second moment (Adam); lr learning
 * rate, mu momentum, b1/b2 Adam's betas, omb1/omb2 = 1 - b1 / 1 - b2, wd weight decay;
 * step = lr / (1 - b1^t), bc2 = sqrt(1 - b2^t), ibc2 = 1 / bc2 (Adam's bias corrections).
 */

typedef struct {
    int kind;
    REAL lr, mu, b1, b2, omb1, omb2, step, bc2, ibc2, eps, wd;
    REAL *m, *v;
} NAME(opt_scalars);

static void NAME(opt_scalars_init)(NAME(opt_scalars) *o, const fnn_opt *op, int64_t t)
{
    o->kind = op->kind;
    o->lr = (REAL)op->lr;
    o->mu = (REAL)op->mom;
    o->b1 = (REAL)op->b1;
    o->b2 = (REAL)op->b2;
    /* Every derived scalar in float64, rounded once (as fastnn.optimizers.step_scalars):
     * (REAL)1 - (REAL)0.999 in float32 is 1.3e-5 off 0.001, and float32 Adam then drifts. */
    o->omb1 = (REAL)(1.0 - op->b1);
    o->omb2 = (REAL)(1.0 - op->b2);
    o->step = o->bc2 = o->ibc2 = 0;
    if (op->kind == FNN_ADAM) {
        const double bc2 = sqrt(1.0 - pow(op->b2, (double)t));
        o->step = (REAL)(op->lr / (1.0 - pow(op->b1, (double)t)));
        o->bc2 = (REAL)bc2;
        o->ibc2 = (REAL)(1.0 / bc2);   /* one vector division per lane set, not two */
    }
    o->eps = (REAL)op->eps;
    o->wd = (REAL)op->wd;
    o->m = (REAL *)op->m;
    o->v = (REAL *)op->v;
}

/* Load / store a whole vector (whole: a constant) or its first t lanes. */
FNN_ALWAYS_INLINE VEC NAME(load_lanes)(int whole, const REAL *p, int t)
{
    return whole ? NAME(ld)(p) : NAME(ldn)(p, t);
}

FNN_ALWAYS_INLINE void NAME(store_lanes)(int whole, REAL *p, VEC v, int t)
{
    if (whole) NAME(st)(p, v);
    else NAME(stn)(p, v, t);
}

/* One optimiser step on one vector of lanes at offset j: params P, moments M and V2, gradient
 * gv (decay: plus wd * p). whole: a constant, 1 for a whole vector, 0 for the first t lanes. */
FNN_ALWAYS_INLINE void NAME(update_lanes)(int whole, const NAME(opt_scalars) *o,
                                          REAL *restrict P, REAL *restrict M,
                                          REAL *restrict V2, int64_t j, VEC gv, int t,
                                          int use_wd, REAL wd)
{
    VEC p = NAME(load_lanes)(whole, P + j, t);
    const VEC g = use_wd ? gv + wd * p : gv;
    switch (o->kind) {
    case FNN_SGD:
        p -= o->lr * g;
        break;
    case FNN_MOMENTUM: {
        VEC m = NAME(load_lanes)(whole, M + j, t) * o->mu + g;
        NAME(store_lanes)(whole, M + j, m, t);
        p -= o->lr * m;
        break;
    }
    case FNN_NESTEROV: {
        VEC m = NAME(load_lanes)(whole, M + j, t) * o->mu + g;
        NAME(store_lanes)(whole, M + j, m, t);
        p -= o->lr * (g + o->mu * m);
        break;
    }
    default: {
        VEC m = NAME(load_lanes)(whole, M + j, t) * o->b1 + o->omb1 * g;
        VEC v = NAME(load_lanes)(whole, V2 + j, t) * o->b2 + (o->omb2 * g) * g;
        NAME(store_lanes)(whole, M + j, m, t);
        NAME(store_lanes)(whole, V2 + j, v, t);
        p -= o->step * m / (NAME(vsqrt)(v) * o->ibc2 + o->eps);
        break;
    }
    }
    NAME(store_lanes)(whole, P + j, p, t);
}

/* One optimiser step on params[off : off+n] with gradient g[0:n] (decay: add wd * p first).
 * P's lines are fetched ahead with write intent (FNN_TUNE_PARAMS_AHEAD). Read prefetches of
 * P, M and g 1 KB ahead were a tie on wide-512 (Zen 4, 2 threads, both ways round): the
 * hardware prefetchers follow these streams; what they do not do is ask for ownership. */
static void NAME(update_params)(REAL *restrict params, int64_t off, const REAL *restrict g,
                                int64_t n, const NAME(opt_scalars) *o, int decay)
{
    REAL *restrict P = params + off;
    REAL *restrict M = o->m ? o->m + off : NULL;
    REAL *restrict V2 = o->v ? o->v + off : NULL;
    const REAL wd = decay ? o->wd : (REAL)0;
    const int use_wd = wd != 0;
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES) {
        if (j % (64 / sizeof(REAL)) == 0 && j + FNN_TUNE_PARAMS_AHEAD < n)
            FNN_PREFETCH_W(P + j + FNN_TUNE_PARAMS_AHEAD);
        NAME(update_lanes)(1, o, P, M, V2, j, NAME(ld)(g + j), LANES, use_wd, wd);
    }
    if (j < n) {
        const int t = (int)(n - j);
        NAME(update_lanes)(0, o, P, M, V2, j, NAME(ldn)(g + j, t), t, use_wd, wd);
    }
}

/* Rows of n values updated with masked tail stores are visited with this stride (all residues
 * in turn), so the next row's loads never overlap a masked store still in flight. */
static inline int NAME(row_stride)(int n)
{
    return n % LANES == 0 ? 1 : (n > LANES ? 2 : (LANES + n - 1) / n + 1);
}

/* for i in [r0, r1), in the order of NAME(row_stride) s: r0, r0 + s, ..., r0 + 1, ... */
#define FNN_FOR_ROWS(i, r0, r1, s)                                                              \
    for (int64_t res_ = 0; res_ < (s); res_++)                                                  \
        for (int64_t i = (r0) + res_; i < (r1); i += (s))

/* Plain SGD on rows of a dense layer: W[i,:] -= lr * sum_b coef(b, i) * D[b,:] for i in
 * [r0, r1) (row nin: the bias, coefficient 1). Gradient rows stay in registers. */
static void NAME(sgd_dense_rows)(REAL *restrict W, REAL *restrict bias, int nin, int n,
                                 int64_t r0, int64_t r1, const REAL *restrict A, int lda,
                                 const REAL *restrict D, int ldd, int B, REAL lr)
{
    const int stride = NAME(row_stride)(n);
    FNN_FOR_ROWS(i, r0, r1, stride) {
        REAL *w = i < nin ? W + i * n : bias;
        for (int j = 0; j < n; j += 2 * LANES) {
            const int t0 = n - j < LANES ? n - j : LANES;
            const int rest = n - j - LANES;
            const int t1 = rest < 0 ? 0 : (rest < LANES ? rest : LANES);
            VEC a0 = {0}, a1 = {0};
            if (i < nin) {
                for (int b = 0; b < B; b++) {
                    const REAL c = A[(int64_t)b * lda + i];
                    const REAL *d = D + (int64_t)b * ldd + j;
                    a0 += c * NAME(ldn)(d, t0);
                    if (t1) a1 += c * NAME(ldn)(d + LANES, t1);
                }
            } else {
                for (int b = 0; b < B; b++) {
                    const REAL *d = D + (int64_t)b * ldd + j;
                    a0 += NAME(ldn)(d, t0);
                    if (t1) a1 += NAME(ldn)(d + LANES, t1);
                }
            }
            NAME(stn)(w + j, NAME(ldn)(w + j, t0) - lr * a0, t0);
            if (t1) NAME(stn)(w + j + LANES, NAME(ldn)(w + j + LANES, t1) - lr * a1, t1);
        }
    }
}

/* Plain SGD, one sample, sparse rows: W[i,:] -= lr * (x_i * d) for i = idx[k0 .. k1-1]
 * (rows of n values, ldw apart). */
static void NAME(sgd_sparse_sample)(REAL *restrict W, int64_t ldw, int n,
                                    const REAL *restrict x, const int32_t *restrict idx,
                                    int k0, int k1, const REAL *restrict d, REAL lr)
{
    if (n <= LANES) {
        const VEC d0 = NAME(ldn)(d, n);
        for (int k = k0; k < k1; k++) {
            REAL *w = W + (int64_t)idx[k] * ldw;
            NAME(stn)(w, NAME(ldn)(w, n) - lr * (x[idx[k]] * d0), n);
        }
        return;
    }
    if (n <= 2 * LANES && n % LANES && ldw % LANES == 0) {
        /* rows on whole vectors: the first, then the rest masked, each inside its lines */
        const int t = n - LANES;
        const VEC d0 = NAME(ld)(d), d1 = NAME(ldn)(d + LANES, t);
        for (int k = k0; k < k1; k++) {
            REAL *w = W + (int64_t)idx[k] * ldw;
            const VEC w0 = NAME(ld)(w), w1 = NAME(ldn)(w + LANES, t);
            NAME(st)(w, w0 - lr * (x[idx[k]] * d0));
            NAME(stn)(w + LANES, w1 - lr * (x[idx[k]] * d1), t);
        }
        return;
    }
    if (n <= 2 * LANES) {
        /* two whole vectors [0, LANES) and [n - LANES, n): both loaded before either is
         * stored, so the shared lanes get the same single update; no masked store */
        const VEC d0 = NAME(ld)(d), d1 = NAME(ld)(d + n - LANES);
        for (int k = k0; k < k1; k++) {
            REAL *w = W + (int64_t)idx[k] * ldw;
            const VEC w0 = NAME(ld)(w), w1 = NAME(ld)(w + n - LANES);
            NAME(st)(w, w0 - lr * (x[idx[k]] * d0));
            NAME(st)(w + n - LANES, w1 - lr * (x[idx[k]] * d1));
        }
        return;
    }
    for (int k = k0; k < k1; k++) {
        REAL *w = W + (int64_t)idx[k] * ldw;
        const REAL c = x[idx[k]];
        int j = 0;
        for (; j + LANES <= n; j += LANES)
            NAME(st)(w + j, NAME(ld)(w + j) - lr * (c * NAME(ld)(d + j)));
        if (j < n)
            NAME(stn)(w + j, NAME(ldn)(w + j, n - j) - lr * (c * NAME(ldn)(d + j, n - j)),
                      n - j);
    }
}
