/* fnn_thin.h: the batched step's thin layers, n[l + 1] <= 2 vectors wide (the output layer):
 * the weight gradient several rows at a time, and the deltas several inputs at a time. Part of
 * fnn_impl.h.
 *
 * Why: row by row (weighted_rows), row i's gradient sums A[b, i] * D[b, :] over the batch, and
 * A[b, i] is a column of A: one cache line per sample, lda apart, so a few L1 sets take every
 * line and each coefficient comes from L2 (wide-512's 512 x 10 output layer: 4% of the step
 * for 0.4% of its multiply-adds). Here TG_R rows take their gradient together: per sample one
 * delta vector and one run of TG_R coefficients. The deltas, row by row, end in a horizontal
 * sum per input (row_dots); here the W columns of LANES inputs are transposed once per chunk
 * and each sample's deltas of those inputs are one multiply-add chain over n[l + 1].
 *
 * Glossary: thin, at most 2 vectors of outputs; nv vectors of LANES values, the last one t
 * lanes; pr, the rows of a block inside the task (the last block may be short).
 */

#define TG_R 16   /* accumulators: TG_R rows x 1 vector or TG_R / 2 rows x 2 */
/* Samples ahead of the one it sums from which the gradient fetches its coefficients' line:
 * lines lda apart (2 KB and more), which the hardware prefetchers miss. Intel Xeon VM, 2
 * threads, builds taking turns: wide-512 b256 1.01x (8 and 24 alike; perf: the 512 x 10
 * layer's gradient 2.45% -> 1.81% of the step). */
#define TG_PF 16

static inline int NAME(is_thin)(int n)
{
    return n <= 2 * LANES;
}

/* Gradient rows i .. i + pr - 1 (pr <= TG_R / nv) of a thin dense layer, n columns, over the
 * B samples of the batch: applied by the optimiser o (P, the weights at woff), or stored into
 * G (o NULL). full: a constant, pr == TG_R / nv (coefficients read in place). */
FNN_ALWAYS_INLINE void NAME(thin_grad_block)(int nv, int full, int pr, int n, const REAL *A,
                                             int64_t lda, const REAL *D, int ldd, int B,
                                             int64_t i, const NAME(opt_scalars) *o, REAL *P,
                                             int64_t woff, REAL *G)
{
    const int R = TG_R / nv, t = n - (nv - 1) * LANES;
    VEC acc[TG_R];
    for (int q = 0; q < TG_R; q++) acc[q] = NAME(splat)(0);
    for (int b = 0; b < B; b++) {
        const REAL *d = D + (int64_t)b * ldd;
        const REAL *a = A + (int64_t)b * lda + i;
        __builtin_prefetch(a + TG_PF * lda, 0, 3);
        REAL part[TG_R] = {0};   /* a short block's coefficients (no read past row i + pr) */
        if (!full) memcpy(part, a, sizeof(REAL) * (size_t)pr);
        const REAL *c = full ? a : part;
        const VEC d0 = nv == 1 ? NAME(ldn)(d, t) : NAME(ld)(d);
        const VEC d1 = nv == 1 ? d0 : NAME(ldn)(d + LANES, t);
        for (int r = 0; r < R; r++) {
            acc[r * nv] += c[r] * d0;
            if (nv == 2) acc[r * nv + 1] += c[r] * d1;
        }
    }
    if (!o) {
        for (int r = 0; r < pr; r++)
            for (int v = 0; v < nv; v++)
                NAME(stn)(G + (i + r) * n + v * LANES, acc[r * nv + v], v == nv - 1 ? t : LANES);
        return;
    }
    REAL *M = o->m ? o->m + woff : NULL, *V2 = o->v ? o->v + woff : NULL;
    const int use_wd = o->wd != 0, stride = NAME(row_stride)(n);
    FNN_FOR_ROWS(r, 0, pr, stride) {   /* masked stores: no load right behind one */
        for (int v = 0; v < nv; v++) {
            const int64_t j = (i + r) * n + v * LANES;
            if (v == nv - 1 && t < LANES)
                NAME(update_lanes)(0, o, P + woff, M, V2, j, acc[r * nv + v], t, use_wd, o->wd);
            else
                NAME(update_lanes)(1, o, P + woff, M, V2, j, acc[r * nv + v], LANES, use_wd,
                                   o->wd);
        }
    }
}

/* Weight rows [r0, w1) of a thin dense layer (n columns, inputs A): gradient over the batch,
 * then the update o (or the store into G, o NULL). */
static void NAME(thin_grad_rows)(const REAL *A, int64_t lda, const REAL *D, int ldd, int B,
                                 int n, int64_t r0, int64_t w1, const NAME(opt_scalars) *o,
                                 REAL *P, int64_t woff, REAL *G)
{
    const int nv = n <= LANES ? 1 : 2, R = TG_R / nv;
    for (int64_t i = r0; i < w1; i += R) {
        const int pr = w1 - i < R ? (int)(w1 - i) : R;
        if (nv == 1 && pr == R)
            NAME(thin_grad_block)(1, 1, R, n, A, lda, D, ldd, B, i, o, P, woff, G);
        else if (nv == 1)
            NAME(thin_grad_block)(1, 0, pr, n, A, lda, D, ldd, B, i, o, P, woff, G);
        else if (pr == R)
            NAME(thin_grad_block)(2, 1, R, n, A, lda, D, ldd, B, i, o, P, woff, G);
        else
            NAME(thin_grad_block)(2, 0, pr, n, A, lda, D, ldd, B, i, o, P, woff, G);
    }
}

/* Dl[b, i] = sum_j D[b, j] * W[i, j] for rows [b0, b1) (W: nin x nout, nout thin): a tile of
 * TD_V vectors of inputs of W transposed once, then per sample the tile's TD_V sums at once
 * (TD_V accumulators, each a chain of nout multiply-adds, j ascending; one broadcast of D[b, j]
 * per j feeds all of them). */
#define TD_V 16
#define TD_TILE (TD_V * LANES)
static void NAME(thin_deltas)(REAL *Dl, int ldl, const REAL *W, int nin, int nout,
                              const REAL *D, int ldd, int b0, int b1)
{
    REAL wt[2 * LANES][TD_TILE] __attribute__((aligned(64)));   /* wt[j][r] = W[i0 + r, j] */
    for (int i0 = 0; i0 < nin; i0 += TD_TILE) {
        const int ni = nin - i0 < TD_TILE ? nin - i0 : TD_TILE;
        for (int r = 0; r < TD_TILE; r++)
            for (int j = 0; j < nout; j++)
                wt[j][r] = r < ni ? W[(int64_t)(i0 + r) * nout + j] : (REAL)0;
        for (int b = b0; b < b1; b++) {
            const REAL *d = D + (int64_t)b * ldd;
            REAL *out = Dl + (int64_t)b * ldl + i0;
            VEC acc[TD_V];
            for (int k = 0; k < TD_V; k++) acc[k] = NAME(splat)(0);
            for (int j = 0; j < nout; j++) {
                const REAL dj = d[j];
                for (int k = 0; k < TD_V; k++) acc[k] += dj * NAME(ld)(&wt[j][k * LANES]);
            }
            for (int k = 0; k * LANES < ni; k++) {
                const int t = ni - k * LANES < LANES ? ni - k * LANES : LANES;
                NAME(stn)(out + k * LANES, acc[k], t);
            }
        }
    }
}

/* Z[b, 0:nout] = sum_i A[b, i] * W[i, :] for rows [b0, b1) (nout thin): TF_S samples at a
 * time, each W row loaded once for all of them. Each sample's sums are weighted_rows' own
 * (fnn_rows.h rows_block1 and rows_block2: the same chains, terms and order), so a row's
 * outputs are the same bits whichever path or batch computes them. Why: row by row, each
 * input loads its W row (often across two lines) and broadcasts one coefficient for one
 * multiply-add; here one W row feeds TF_S. */
#define TF_S 4
FNN_ALWAYS_INLINE void NAME(thin_forward_rows)(int s, REAL *Z, int64_t ldz, const REAL *W,
                                               int nin, int nout, const REAL *A, int64_t lda,
                                               int zfull)
{
    if (nout <= LANES) {   /* rows_block1: chains k mod 4, the rest into chain 0 */
        VEC a[TF_S][4];
        for (int r = 0; r < s; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = NAME(splat)(0);
        int k = 0;
        for (; k + 4 <= nin; k += 4)
            for (int q = 0; q < 4; q++) {
                const VEC w = NAME(ldn)(W + (int64_t)(k + q) * nout, nout);
                for (int r = 0; r < s; r++) a[r][q] += A[r * lda + k + q] * w;
            }
        for (; k < nin; k++) {
            const VEC w = NAME(ldn)(W + (int64_t)k * nout, nout);
            for (int r = 0; r < s; r++) a[r][0] += A[r * lda + k] * w;
        }
        for (int r = 0; r < s; r++)
            NAME(store_tail)(Z + r * ldz, (a[r][0] + a[r][1]) + (a[r][2] + a[r][3]), nout,
                             zfull);
        return;
    }
    const int t = nout - LANES;   /* rows_block2: chains k mod 2, the rest into chain 0 */
    VEC a[TF_S][2], b[TF_S][2];
    for (int r = 0; r < s; r++) a[r][0] = a[r][1] = b[r][0] = b[r][1] = NAME(splat)(0);
    int k = 0;
    for (; k + 2 <= nin; k += 2) {
        const REAL *w = W + (int64_t)k * nout, *u = w + nout;
        const VEC w0 = NAME(ld)(w), w1 = NAME(ldn)(w + LANES, t);
        const VEC u0 = NAME(ld)(u), u1 = NAME(ldn)(u + LANES, t);
        for (int r = 0; r < s; r++) {
            const REAL ck = A[r * lda + k], ck1 = A[r * lda + k + 1];
            a[r][0] += ck * w0;
            a[r][1] += ck * w1;
            b[r][0] += ck1 * u0;
            b[r][1] += ck1 * u1;
        }
    }
    for (; k < nin; k++) {
        const REAL *w = W + (int64_t)k * nout;
        const VEC w0 = NAME(ld)(w), w1 = NAME(ldn)(w + LANES, t);
        for (int r = 0; r < s; r++) {
            a[r][0] += A[r * lda + k] * w0;
            a[r][1] += A[r * lda + k] * w1;
        }
    }
    for (int r = 0; r < s; r++) {
        NAME(st)(Z + r * ldz, a[r][0] + b[r][0]);
        NAME(store_tail)(Z + r * ldz + LANES, a[r][1] + b[r][1], t, zfull);
    }
}

static void NAME(thin_forward)(REAL *Z, int64_t ldz, const REAL *W, int nin, int nout,
                               const REAL *A, int64_t lda, int b0, int b1, int zfull)
{
    int b = b0;
    for (; b + TF_S <= b1; b += TF_S)
        NAME(thin_forward_rows)(TF_S, Z + (int64_t)b * ldz, ldz, W, nin, nout,
                                A + (int64_t)b * lda, lda, zfull);
    for (; b < b1; b++)
        NAME(thin_forward_rows)(1, Z + (int64_t)b * ldz, ldz, W, nin, nout,
                                A + (int64_t)b * lda, lda, zfull);
}
