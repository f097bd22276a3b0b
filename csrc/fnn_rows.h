/* fnn_rows.h: weighted sums of matrix rows, z[0:n] = sum_k coef(k) * M[row(k) * ldm + 0:n]
 * (a layer's forward pass for one sample, a gradient row over a batch), the backward dot
 * products and axpy. Part of fnn_impl.h.
 *
 * The sums accumulate in registers over blocks of up to eight vectors of output units; with
 * one or two vectors the k loop is unrolled into independent accumulators so that FMA latency
 * does not serialise it. The last vector of a row is masked.
 *
 * Glossary: mode, which rows and coefficients (ROWS_*); cnt, the number of terms k; cs, the
 * coefficients' stride; zfull, z is a padded row (whole vectors may be stored, fnn_vec.h
 * store_tail); Mj, M advanced to the block's first column j.
 */

#ifndef FNN_ROWS_MODES
#define FNN_ROWS_MODES
enum {
    ROWS_STRIDED,   /* rows 0..cnt-1, coefficients c[k * cs] */
    ROWS_SPARSE,    /* rows idx[k], coefficients x[idx[k]] (the nonzeros of an input row) */
    ROWS_LISTED,    /* rows idx[k], own coefficients c[k] (a column of the batch, CSC) */
};
#endif

FNN_ALWAYS_INLINE const REAL *NAME(row_at)(int mode, const REAL *Mj, int64_t ldm,
                                           const int32_t *idx, int k)
{
    return Mj + (int64_t)(mode == ROWS_STRIDED ? k : idx[k]) * ldm;
}

FNN_ALWAYS_INLINE REAL NAME(coef_at)(int mode, const REAL *c, int64_t cs, const int32_t *idx,
                                     int k)
{
    if (mode == ROWS_STRIDED) return c[(int64_t)k * cs];
    return mode == ROWS_SPARSE ? c[idx[k]] : c[k];
}

/* Eight whole vectors of z (8 chains, half the index work per term). */
FNN_ALWAYS_INLINE void NAME(rows_block8)(int mode, REAL *restrict z, const REAL *restrict Mj,
                                         int64_t ldm, const REAL *restrict c, int64_t cs,
                                         const int32_t *restrict idx, int cnt)
{
    VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (int k = 0; k < cnt; k++) {
        const REAL *w = NAME(row_at)(mode, Mj, ldm, idx, k);
        const REAL ck = NAME(coef_at)(mode, c, cs, idx, k);
        a0 += ck * NAME(ld)(w);
        a1 += ck * NAME(ld)(w + LANES);
        a2 += ck * NAME(ld)(w + 2 * LANES);
        a3 += ck * NAME(ld)(w + 3 * LANES);
        a4 += ck * NAME(ld)(w + 4 * LANES);
        a5 += ck * NAME(ld)(w + 5 * LANES);
        a6 += ck * NAME(ld)(w + 6 * LANES);
        a7 += ck * NAME(ld)(w + 7 * LANES);
    }
    NAME(st)(z, a0);
    NAME(st)(z + LANES, a1);
    NAME(st)(z + 2 * LANES, a2);
    NAME(st)(z + 3 * LANES, a3);
    NAME(st)(z + 4 * LANES, a4);
    NAME(st)(z + 5 * LANES, a5);
    NAME(st)(z + 6 * LANES, a6);
    NAME(st)(z + 7 * LANES, a7);
}

/* `whole` (2, 3 or 4) whole vectors of z, then (whole < 4) one vector of t lanes. */
FNN_ALWAYS_INLINE void NAME(rows_block4)(int mode, int whole, int t, int zfull,
                                         REAL *restrict z, const REAL *restrict Mj, int64_t ldm,
                                         const REAL *restrict c, int64_t cs,
                                         const int32_t *restrict idx, int cnt)
{
    VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int k = 0; k < cnt; k++) {
        const REAL *w = NAME(row_at)(mode, Mj, ldm, idx, k);
        const REAL ck = NAME(coef_at)(mode, c, cs, idx, k);
        a0 += ck * NAME(ld)(w);
        a1 += ck * NAME(ld)(w + LANES);
        if (whole >= 3) a2 += ck * NAME(ld)(w + 2 * LANES);
        else a2 += ck * NAME(ldn)(w + 2 * LANES, t);
        if (whole == 4) a3 += ck * NAME(ld)(w + 3 * LANES);
        else if (whole == 3) a3 += ck * NAME(ldn)(w + 3 * LANES, t);
    }
    NAME(st)(z, a0);
    NAME(st)(z + LANES, a1);
    if (whole >= 3) NAME(st)(z + 2 * LANES, a2);
    else NAME(store_tail)(z + 2 * LANES, a2, t, zfull);
    if (whole == 4) NAME(st)(z + 3 * LANES, a3);
    else if (whole == 3) NAME(store_tail)(z + 3 * LANES, a3, t, zfull);
}

/* One whole vector of z and one of t lanes; two chains per vector (terms k and k + 1). */
FNN_ALWAYS_INLINE void NAME(rows_block2)(int mode, int t, int zfull, REAL *restrict z,
                                         const REAL *restrict Mj, int64_t ldm,
                                         const REAL *restrict c, int64_t cs,
                                         const int32_t *restrict idx, int cnt)
{
    VEC a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    int k = 0;
    for (; k + 2 <= cnt; k += 2) {
        const REAL *w = NAME(row_at)(mode, Mj, ldm, idx, k);
        const REAL *u = NAME(row_at)(mode, Mj, ldm, idx, k + 1);
        const REAL ck = NAME(coef_at)(mode, c, cs, idx, k);
        const REAL ck1 = NAME(coef_at)(mode, c, cs, idx, k + 1);
        a0 += ck * NAME(ld)(w);
        a1 += ck * NAME(ldn)(w + LANES, t);
        b0 += ck1 * NAME(ld)(u);
        b1 += ck1 * NAME(ldn)(u + LANES, t);
    }
    for (; k < cnt; k++) {
        const REAL *w = NAME(row_at)(mode, Mj, ldm, idx, k);
        const REAL ck = NAME(coef_at)(mode, c, cs, idx, k);
        a0 += ck * NAME(ld)(w);
        a1 += ck * NAME(ldn)(w + LANES, t);
    }
    NAME(st)(z, a0 + b0);
    NAME(store_tail)(z + LANES, a1 + b1, t, zfull);
}

/* One vector of t lanes; four chains (terms k .. k + 3). */
FNN_ALWAYS_INLINE void NAME(rows_block1)(int mode, int t, int zfull, REAL *restrict z,
                                         const REAL *restrict Mj, int64_t ldm,
                                         const REAL *restrict c, int64_t cs,
                                         const int32_t *restrict idx, int cnt)
{
    VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int k = 0;
    for (; k + 4 <= cnt; k += 4) {
        a0 += NAME(coef_at)(mode, c, cs, idx, k) *
              NAME(ldn)(NAME(row_at)(mode, Mj, ldm, idx, k), t);
        a1 += NAME(coef_at)(mode, c, cs, idx, k + 1) *
              NAME(ldn)(NAME(row_at)(mode, Mj, ldm, idx, k + 1), t);
        a2 += NAME(coef_at)(mode, c, cs, idx, k + 2) *
              NAME(ldn)(NAME(row_at)(mode, Mj, ldm, idx, k + 2), t);
        a3 += NAME(coef_at)(mode, c, cs, idx, k + 3) *
              NAME(ldn)(NAME(row_at)(mode, Mj, ldm, idx, k + 3), t);
    }
    for (; k < cnt; k++)
        a0 += NAME(coef_at)(mode, c, cs, idx, k) *
              NAME(ldn)(NAME(row_at)(mode, Mj, ldm, idx, k), t);
    NAME(store_tail)(z, (a0 + a1) + (a2 + a3), t, zfull);
}

/* z[0:n] = sum_k coef(k) * M[row(k), 0:n] in blocks of output columns (mode: ROWS_*). */
FNN_ALWAYS_INLINE void NAME(weighted_rows_mode)(int mode, REAL *restrict z, int n,
                                                const REAL *restrict M, int64_t ldm,
                                                const REAL *restrict c, int64_t cs,
                                                const int32_t *restrict idx, int cnt, int zfull)
{
    int j = 0;
    for (; n - j >= 8 * LANES; j += 8 * LANES)
        NAME(rows_block8)(mode, z + j, M + j, ldm, c, cs, idx, cnt);
    for (; j < n; j += 4 * LANES) {
        const int rem = n - j;
        REAL *zj = z + j;
        const REAL *Mj = M + j;
        if (rem >= 4 * LANES)
            NAME(rows_block4)(mode, 4, 0, zfull, zj, Mj, ldm, c, cs, idx, cnt);
        else if (rem > 3 * LANES)
            NAME(rows_block4)(mode, 3, rem - 3 * LANES, zfull, zj, Mj, ldm, c, cs, idx, cnt);
        else if (rem > 2 * LANES)
            NAME(rows_block4)(mode, 2, rem - 2 * LANES, zfull, zj, Mj, ldm, c, cs, idx, cnt);
        else if (rem > LANES)
            NAME(rows_block2)(mode, rem - LANES, zfull, zj, Mj, ldm, c, cs, idx, cnt);
        else
            NAME(rows_block1)(mode, rem, zfull, zj, Mj, ldm, c, cs, idx, cnt);
    }
}

/* dense rows, strided coefficients: z = sum_k c[k*cs] * M[k, :] */
static void NAME(weighted_rows)(REAL *restrict z, int n, const REAL *restrict M, int64_t ldm,
                                const REAL *restrict c, int64_t cs, int cnt, int zfull)
{
    NAME(weighted_rows_mode)(ROWS_STRIDED, z, n, M, ldm, c, cs, NULL, cnt, zfull);
}

/* sparse rows: z = sum_k x[idx[k]] * M[idx[k], :] */
static void NAME(weighted_rows_sparse)(REAL *restrict z, int n, const REAL *restrict M,
                                       int64_t ldm, const REAL *restrict x,
                                       const int32_t *restrict idx, int cnt, int zfull)
{
    NAME(weighted_rows_mode)(ROWS_SPARSE, z, n, M, ldm, x, 1, idx, cnt, zfull);
}

/* listed rows, own coefficients: z = sum_k c[k] * M[idx[k], :] (a CSC column of the batch) */
static void NAME(weighted_rows_listed)(REAL *restrict z, int n, const REAL *restrict M,
                                       int64_t ldm, const REAL *restrict c,
                                       const int32_t *restrict idx, int cnt, int zfull)
{
    NAME(weighted_rows_mode)(ROWS_LISTED, z, n, M, ldm, c, 1, idx, cnt, zfull);
}

/* out[i] = sum_j W[i*ldw + j] * d[j]  (i < rows, j < n): the backward matrix-vector product. */
static void NAME(row_dots)(REAL *restrict out, const REAL *restrict W, int rows, int64_t ldw,
                           const REAL *restrict d, int n)
{
    if (n <= LANES) {
        const VEC dv = NAME(ldn)(d, n);
        for (int i = 0; i < rows; i++)
            out[i] = NAME(hsum)(NAME(ldn)(W + (int64_t)i * ldw, n) * dv);
        return;
    }
    for (int i = 0; i < rows; i++) {
        const REAL *w = W + (int64_t)i * ldw;
        VEC a0 = {0}, a1 = {0};
        int j = 0;
        for (; j + 2 * LANES <= n; j += 2 * LANES) {
            a0 += NAME(ld)(w + j) * NAME(ld)(d + j);
            a1 += NAME(ld)(w + j + LANES) * NAME(ld)(d + j + LANES);
        }
        for (; j < n; j += LANES) {
            const int t = n - j < LANES ? n - j : LANES;
            a0 += NAME(ldn)(w + j, t) * NAME(ldn)(d + j, t);
        }
        out[i] = NAME(hsum)(a0 + a1);
    }
}

/* g[0:n] += c * d[0:n] */
static inline void NAME(axpy)(REAL *restrict g, REAL c, const REAL *restrict d, int n)
{
    int j = 0;
    for (; j + LANES <= n; j += LANES) NAME(st)(g + j, NAME(ld)(g + j) + c * NAME(ld)(d + j));
    if (j < n)
        NAME(stn)(g + j, NAME(ldn)(g + j, n - j) + c * NAME(ldn)(d + j, n - j), n - j);
}
