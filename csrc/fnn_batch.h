/* fnn_batch.h: the batched path for wide networks: forward pass of a block of rows, the full
 * gradient of a batch (loss_grad), and the forward-backward phase of a batched training step.
 * Layers with min(n_in, n_out) >= gemm_min use gemm (fnn_gemm.h), the others the per-row
 * kernels; layer 0 skips zero inputs when fnn_tune.sparse is set. Part of fnn_impl.h.
 *
 * Glossary: rows, the batch's row indices into x (NULL: x rows in order); [b0, b1), the rows
 * computed here of a batch of B (the gemm-or-not choice depends on B only, so any row split
 * computes the same way); Z/ldz, a layer's output block and its row stride; sparse0, layer 0
 * skips zero inputs; cb, the column block (fnn_gemm.h colblock).
 */

static inline const REAL *NAME(x_row)(const REAL *x, const int64_t *rows, int b, int n0)
{
    return x + (rows ? rows[b] : b) * (int64_t)n0;
}

/* Sample b's nonzero inputs: their indices (nzi), values (nzv), for each block of 16 inputs
 * where its entries start (nzs), and the row's max |x| (xpkb), in the one pass over it. */
static void NAME(index_nonzeros)(fnn_ws *ws, int b, const REAL *xr, int n0)
{
    ws->nnz[b] = NAME(nonzero_entries)(xr, n0, ws->nzi + (int64_t)b * ws->nzld,
                                       (REAL *)ws->nzv + (int64_t)b * ws->nzld,
                                       ws->nzs + (int64_t)b * ws->nzsld,
                                       ws->nzg + b, ws->B, &ws->xpkb[b]);
}

/* The first of sample b's nonzeros with input index >= r (r <= n[0]): its 16-block's start,
 * then at most 15 inputs on. */
static inline int NAME(nonzero_from)(const fnn_ws *ws, int b, int64_t r)
{
    const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
    const int nnz = ws->nnz[b];
    int k = ws->nzs[(int64_t)b * ws->nzsld + (r >> 4)];
    while (k < nnz && nzi[k] < r) k++;
    return k;
}

/* Layer 0 on the nonzero inputs of rows [b0, b1), in column blocks of W small enough to stay
 * in L2 across the whole block of rows: quads on whole Q0_W-column tiles, the rest (the
 * columns past the last tile, the rows past the last quad) one sample at a time. The quads'
 * inputs live in the rows' own part of cscb/cscx, unused until the update phase. Scanning
 * each quad's rows just before its tiles, so the fetches ahead overlap multiply-adds, was a
 * tie on mlp-128 and wide-512 (Zen 4, 2 threads, both ways round). */
static void NAME(batch_forward_sparse0)(const fnn_net *net, fnn_ws *ws, const REAL *P,
                                        const REAL *x, const REAL *y, const int64_t *rows,
                                        int b0, int b1, REAL *Z, int ldz, int z_padded)
{
    const int n0 = net->n[0], nout = net->n[1];
    const REAL *W = P + net->woff[0];
    for (int b = b0; b < b1 && b < b0 + FNN_TUNE_X_AHEAD; b++)
        NAME(prefetch_row)(NAME(x_row)(x, rows, b, n0), n0);
    for (int b = b0; b < b1; b++) {
        if (b + FNN_TUNE_X_AHEAD < b1)
            NAME(prefetch_row)(NAME(x_row)(x, rows, b + FNN_TUNE_X_AHEAD, n0), n0);
        NAME(index_nonzeros)(ws, b, NAME(x_row)(x, rows, b, n0), n0);
    }
#if Q0_ON
    const int nq = nout >= Q0_W && fnn_tune.quad0 ? (b1 - b0) / Q0_S : 0;
    const int64_t ld = ws->nzld;   /* quad q: U + q * ld, C + q * Q0_S * ld, count qn[q] */
    int32_t *U = ws->cscb + (int64_t)b0 * ld, *qn = U + (int64_t)nq * ld, *perm = qn + nq;
    REAL *C = (REAL *)ws->cscx + (int64_t)b0 * ld;
    if (nq)   /* quad q: samples perm[4q .. 4q + 3] */
        NAME(quad_order)(ws, y, rows, net->n[net->L], b0, b1, perm, perm + (b1 - b0));
    for (int q = 0; q < nq; q++) {
        const REAL *xq[Q0_S];
        for (int s = 0; s < Q0_S; s++) xq[s] = NAME(x_row)(x, rows, perm[Q0_S * q + s], n0);
        qn[q] = NAME(quad_union)(xq, n0, U + q * ld, C + q * Q0_S * ld, ld);
    }
#else
    const int nq = 0;
    const int32_t *perm = NULL;
#endif
    const int cb = NAME(colblock)(n0, nout);
    for (int j0 = 0; j0 < nout; j0 += cb) {
        const int nc = nout - j0 < cb ? nout - j0 : cb;
        const int zfull = z_padded || j0 + nc < nout;
#if Q0_ON
        const int tiled = nq ? nc / Q0_W * Q0_W : 0;
        for (int q = 0; q < nq; q++) {
            REAL *zq[Q0_S];
            for (int s = 0; s < Q0_S; s++) zq[s] = Z + (int64_t)perm[Q0_S * q + s] * ldz;
            for (int j = j0; j < j0 + tiled; j += Q0_W)
                NAME(quad_tile)(zq, j, W + j, nout, U + q * ld, C + q * Q0_S * ld, ld, qn[q]);
        }
#else
        const int tiled = 0;
#endif
        for (int p = 0; p < b1 - b0; p++) {   /* quads' columns past the tiles, other rows */
            const int b = nq ? perm[p] : b0 + p;
            const int j = p < Q0_S * nq ? j0 + tiled : j0;
            if (j < j0 + nc)
                NAME(weighted_rows_sparse)(Z + (int64_t)b * ldz + j, j0 + nc - j, W + j, nout,
                                           NAME(x_row)(x, rows, b, n0),
                                           ws->nzi + (int64_t)b * ws->nzld, ws->nnz[b], zfull);
        }
    }
}

/* The input block of layer l (dense): a[l], or for l = 0 x itself or its gathered rows
 * (gather: copy rows [b0, b1) of the batch into a[0] first). */
static const REAL *NAME(layer_input)(const fnn_net *net, fnn_ws *ws, const REAL *x,
                                     const int64_t *rows, int l, int b0, int b1, int gather,
                                     int *lda)
{
    const int n0 = net->n[0];
    if (l > 0) {
        *lda = ws->ld[l];
        return (const REAL *)ws->a[l];
    }
    if (!rows) {
        *lda = n0;
        return x;
    }
    REAL *A0 = (REAL *)ws->a[0];
    if (gather)
        for (int b = b0; b < b1; b++)
            memcpy(A0 + (int64_t)b * ws->ld[0], x + rows[b] * n0, sizeof(REAL) * n0);
    *lda = ws->ld[0];
    return A0;
}

/* Forward rows [b0, b1) of a batch of B. The output layer goes into out (row b at
 * out + b * n[L]) if given, else into a[L]. y: the targets, if known (they group the sparse
 * layer 0's quads), else NULL. */
static void NAME(batch_forward_rows)(const fnn_net *net, fnn_ws *ws, const REAL *P,
                                     const REAL *x, const REAL *y, const int64_t *rows, int b0,
                                     int b1, int B, REAL *out, int sparse0)
{
    const int L = net->L, nb = b1 - b0;
    if (nb <= 0) return;
    for (int l = 0; l < L; l++) {
        const int nin = net->n[l], nout = net->n[l + 1];
        const int to_out = l == L - 1 && out;
        REAL *Z = to_out ? out : (REAL *)ws->a[l + 1];
        const int ldz = to_out ? nout : ws->ld[l + 1];
        const REAL *W = P + net->woff[l];
        if (l == 0 && sparse0) {
            NAME(batch_forward_sparse0)(net, ws, P, x, y, rows, b0, b1, Z, ldz, !to_out);
        } else {
            int lda;
            const REAL *A = NAME(layer_input)(net, ws, x, rows, l, b0, b1, 1, &lda);
            if (NAME(use_gemm)(net, l, B)) {
                NAME(gemm_rm)('N', 'N', nb, nout, nin, A + (int64_t)b0 * lda, lda, W, nout,
                              Z + (int64_t)b0 * ldz, ldz, NULL);
            } else if (NAME(is_thin)(nout)) {   /* fnn_thin.h */
                NAME(thin_forward)(Z, ldz, W, nin, nout, A, lda, b0, b1, !to_out);
            } else {
                for (int b = b0; b < b1; b++)
                    NAME(weighted_rows)(Z + (int64_t)b * ldz, nout, W, nout,
                                        A + (int64_t)b * lda, 1, nin, !to_out);
            }
        }
        for (int b = b0; b < b1; b++)
            NAME(bias_act)(net->act[l], Z + (int64_t)b * ldz, P + net->boff[l], nout);
    }
}

/* The layer-0 weight gradient GW (n[0] x n[1]) from the nonzero inputs: accumulated in the
 * padded g0 rows (no store-buffer aliasing), then copied out. */
static void NAME(batch_grad_sparse0)(const fnn_net *net, fnn_ws *ws, const REAL *x,
                                     const int64_t *rows, int B, REAL *GW)
{
    const int n0 = net->n[0], nout = net->n[1], ldd = ws->ld[1], ldg = ws->ldg0;
    const REAL *D = (const REAL *)ws->d[1];
    REAL *G0 = (REAL *)ws->g0;
    memset(G0, 0, sizeof(REAL) * (size_t)n0 * ldg);
    const int cb = NAME(colblock)(n0, nout);
    for (int j0 = 0; j0 < nout; j0 += cb) {
        const int nc = nout - j0 < cb ? nout - j0 : cb;
        for (int b = 0; b < B; b++) {
            const REAL *xr = NAME(x_row)(x, rows, b, n0);
            const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
            const REAL *db = D + (int64_t)b * ldd + j0;
            for (int k = 0; k < ws->nnz[b]; k++)
                NAME(axpy)(G0 + j0 + (int64_t)nzi[k] * ldg, xr[nzi[k]], db, nc);
        }
    }
    if (GW != G0)
        for (int i = 0; i < n0; i++)
            memcpy(GW + (int64_t)i * nout, G0 + (int64_t)i * ldg, sizeof(REAL) * nout);
}

/* Deltas of layer l (l >= 1) for rows [b0, b1) from those of layer l + 1. */
static void NAME(batch_deltas)(const fnn_net *net, fnn_ws *ws, const REAL *P, int l, int b0,
                               int b1, int B)
{
    const int nin = net->n[l], nout = net->n[l + 1];
    const REAL *D = (const REAL *)ws->d[l + 1];
    const int ldd = ws->ld[l + 1];
    REAL *Dl = (REAL *)ws->d[l];
    const int ldl = ws->ld[l];
    const REAL *W = P + net->woff[l];
    if (NAME(use_gemm)(net, l, B)) {
        NAME(gemm_rm)('N', 'T', b1 - b0, nin, nout, D + (int64_t)b0 * ldd, ldd, W, nout,
                      Dl + (int64_t)b0 * ldl, ldl, NULL);
    } else if (NAME(is_thin)(nout)) {
        NAME(thin_deltas)(Dl, ldl, W, nin, nout, D, ldd, b0, b1);
    } else {
        for (int b = b0; b < b1; b++)
            NAME(row_dots)(Dl + (int64_t)b * ldl, W, nin, nout, D + (int64_t)b * ldd, nout);
    }
    for (int b = b0; b < b1; b++)
        NAME(act_bwd)(net->act[l - 1], NAME(arow)(ws, l, b), Dl + (int64_t)b * ldl, nin);
}

/* Loss, accuracy and the full gradient G of the batch-mean loss (after batch_forward_rows
 * over the whole batch with out == NULL). */
static double NAME(batch_loss_grad)(const fnn_net *net, fnn_ws *ws, const REAL *P,
                                    const REAL *x, const REAL *y, const int64_t *rows, int B,
                                    REAL *G, int sparse0, int acc_mode, int64_t *correct)
{
    const int L = net->L, nL = net->n[L];
    const REAL invB = (REAL)(1.0 / B);
    double loss = 0;
    int64_t corr = 0;
    for (int b = 0; b < B; b++) {
        int64_t c;
        loss += NAME(loss_head)(net, NAME(arow)(ws, L, b), NAME(x_row)(y, rows, b, nL),
                                NAME(drow)(ws, L, b), invB, acc_mode, &c);
        corr += c;
    }
    for (int l = L - 1; l >= 0; l--) {
        const int nin = net->n[l], nout = net->n[l + 1];
        const REAL *D = (const REAL *)ws->d[l + 1];
        const int ldd = ws->ld[l + 1];
        REAL *GW = G + net->woff[l];
        if (l == 0 && sparse0) {
            NAME(batch_grad_sparse0)(net, ws, x, rows, B, GW);
        } else {
            int lda;
            const REAL *A = NAME(layer_input)(net, ws, x, rows, l, 0, B, 0, &lda);
            if (NAME(use_gemm)(net, l, B)) {
                NAME(gemm_rm)('T', 'N', nin, nout, B, A, lda, D, ldd, GW, nout,
                              NAME(apack)(ws, 0));
            } else {
                for (int i = 0; i < nin; i++)
                    NAME(weighted_rows)(GW + (int64_t)i * nout, nout, D, ldd, A + i, lda, B, 0);
            }
        }
        NAME(weighted_rows)(G + net->boff[l], nout, D, ldd, (const REAL *)ws->ones, 1, B, 0);
        if (l > 0) NAME(batch_deltas)(net, ws, P, l, 0, B, B);
    }
    *correct = corr;
    return loss;
}

/* Batched step, phase 1 (rows [b0, b1) of the batch; threads split the samples): forward,
 * per-sample loss/accuracy, output delta, deltas of every layer >= 1. Row-local throughout. */
static void NAME(batch_forward_backward)(const fnn_net *net, fnn_ws *ws, const REAL *P,
                                         const REAL *x, const REAL *y, const int64_t *rows,
                                         int b0, int b1, int B, REAL invB, int acc_mode,
                                         int sparse0)
{
    const int L = net->L, nL = net->n[L];
    if (b1 - b0 <= 0) return;
    for (int b = b0; b < b1; b++) {   /* the target rows, scattered in y, for the loss head */
        const REAL *yr = y + rows[b] * (int64_t)nL;
        __builtin_prefetch(yr, 0, 3);
        __builtin_prefetch(yr + nL - 1, 0, 3);
    }
    if (!sparse0)   /* the sparse layer 0 checks each row as it indexes it */
        for (int b = b0; b < b1; b++)
            ws->xpkb[b] = NAME(abs_peak)(NAME(x_row)(x, rows, b, net->n[0]), net->n[0]);
    NAME(batch_forward_rows)(net, ws, P, x, y, rows, b0, b1, B, NULL, sparse0);
    for (int b = b0; b < b1; b++)
        ws->lossb[b] = NAME(loss_head)(net, NAME(arow)(ws, L, b), y + rows[b] * (int64_t)nL,
                                       NAME(drow)(ws, L, b), invB, acc_mode, &ws->corb[b]);
    for (int l = L - 1; l >= 1; l--) NAME(batch_deltas)(net, ws, P, l, b0, b1, B);
}
