/* fnn_quad.h: the batched path's sparse layer-0 forward, 4 samples (a quad) at a time on
 * AVX-512: the quads' inputs (union of their nonzeros), their order, and the tile of sums.
 * fnn_batch.h batch_forward_sparse0 drives them. Part of fnn_impl.h.
 */

/* Layer 0 of 4 samples at a time (a quad, AVX-512 builds): each W row loaded from L2 feeds
 * all 4 samples' sums (4 x 4 accumulators). Why: one sample at a time, each nonzero input
 * loads its W row for one multiply-add per value, and the pass is bound by L2 bandwidth; 4 MNIST
 * rows have about 2x one row's nonzeros between them, so a quad loads about half the W rows
 * per sample. A sample's sum runs over the quad's inputs in ascending order, its own nonzeros
 * among them: the same sums as one at a time, plus zero terms. Pairs (4 or 8 vectors wide) and
 * triples were a tie with quads on wide-512 (Zen 4, 2 threads, both ways round; perf: the
 * quads' tile loop waits on W row loads about as much as on multiply-adds). So were groups of
 * 4 neighbouring inputs (fnn_sparse0.h's lists; 223 terms a sample instead of the quads'
 * 304), W's 4 rows x 4 vectors held in registers and each listed sample's sums loaded, updated
 * and stored: same bits, 0.98-1.02x, and 0.97x in a slow phase (4 or 2 vectors wide, with or
 * without the next group's rows prefetched); per 128-row chunk, ~460 us against ~285 us of
 * multiply-adds. So was regrouping the chunk by input (CSC) with every sample's sums in an
 * L1 tile (each W tile loaded once a chunk, no zero terms: ~150 terms a sample against the
 * quads' 268; same bits): 1 thread 16.3% of wide-512's step either way, 2 threads 0.98x
 * (Intel Xeon VM): each term loads, updates and stores its 4 sum vectors, and the 512-bit
 * stores bind at one a cycle. */
#define Q0_S 4
#if VBYTES == 64 && defined(__AVX512F__)
#define Q0_ON 1
#define Q0_V 4
#define Q0_W (Q0_V * LANES)
/* Inputs ahead of the one it sums from which a quad tile fetches W's row (its Q0_V lines):
 * rows a varying number of W rows apart, which the hardware prefetchers miss. Intel Xeon VM,
 * 2 threads, builds taking turns: wide-512 b256 1.02-1.04x with 16 (8: 1.01x, 32 like 16),
 * mlp-128 b64 1.02-1.05x, 784-256-10 b128 a tie. */
#define FNN_Q0_PF 16

/* The inputs where any of the 4 rows xq is nonzero (-0.0 counts as zero), ascending, into U
 * (count returned), and row s's values there into C + s * ld. U and each C row need n0 + 16
 * slots. */
static int NAME(quad_union)(const REAL *const *xq, int n0, int32_t *restrict U,
                            REAL *restrict C, int64_t ld)
{
    int cnt = 0, i = 0;
#if IS_F32
    const __m512i off = _mm512_set1_epi32(0x7fffffff), step = _mm512_set1_epi32(16);
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i + 16 <= n0; i += 16, iota = _mm512_add_epi32(iota, step)) {
        __m512 v[Q0_S];
        __m512i any = _mm512_setzero_si512();
        for (int s = 0; s < Q0_S; s++) {
            v[s] = _mm512_loadu_ps(xq[s] + i);
            any = _mm512_or_si512(any, _mm512_castps_si512(v[s]));
        }
        const __mmask16 m = _mm512_test_epi32_mask(any, off);
        if (!m) continue;
        _mm512_storeu_si512((void *)(U + cnt), _mm512_maskz_compress_epi32(m, iota));
        for (int s = 0; s < Q0_S; s++)
            _mm512_storeu_ps(C + s * ld + cnt, _mm512_maskz_compress_ps(m, v[s]));
        cnt += __builtin_popcount((unsigned)m);
    }
#else
    const __m512i off = _mm512_set1_epi64(0x7fffffffffffffffll);
    const __m256i step = _mm256_set1_epi32(8);
    __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (; i + 8 <= n0; i += 8, iota = _mm256_add_epi32(iota, step)) {
        __m512d v[Q0_S];
        __m512i any = _mm512_setzero_si512();
        for (int s = 0; s < Q0_S; s++) {
            v[s] = _mm512_loadu_pd(xq[s] + i);
            any = _mm512_or_si512(any, _mm512_castpd_si512(v[s]));
        }
        const __mmask8 m = _mm512_test_epi64_mask(any, off);
        if (!m) continue;
        _mm256_storeu_si256((__m256i *)(U + cnt), _mm256_maskz_compress_epi32(m, iota));
        for (int s = 0; s < Q0_S; s++)
            _mm512_storeu_pd(C + s * ld + cnt, _mm512_maskz_compress_pd(m, v[s]));
        cnt += __builtin_popcount((unsigned)m);
    }
#endif
    for (; i < n0; i++) {
        int any = 0;
        U[cnt] = i;
        for (int s = 0; s < Q0_S; s++) {
            C[s * ld + cnt] = xq[s][i];
            any |= xq[s][i] != 0;
        }
        cnt += any;
    }
    return cnt;
}

/* The quad's 4 rows zq[s] + j, Q0_W columns: sum over its inputs k of C[s * ld + k] *
 * Wj[U[k], :]. */
FNN_ALWAYS_INLINE void NAME(quad_tile)(REAL *const *zq, int j, const REAL *restrict Wj,
                                       int64_t ldw, const int32_t *restrict U,
                                       const REAL *restrict C, int64_t ld, int cnt)
{
    VEC acc[Q0_S][Q0_V];
    for (int s = 0; s < Q0_S; s++)
        for (int v = 0; v < Q0_V; v++) acc[s][v] = NAME(splat)(0);
    for (int k = 0; k < cnt; k++) {
        const REAL *w = Wj + (int64_t)U[k] * ldw;
        if (k + FNN_Q0_PF < cnt) {
            const char *pw = (const char *)(Wj + (int64_t)U[k + FNN_Q0_PF] * ldw);
            for (int v = 0; v < Q0_V; v++) __builtin_prefetch(pw + v * VBYTES, 0, 3);
        }
        VEC wv[Q0_V];
        for (int v = 0; v < Q0_V; v++) wv[v] = NAME(ld)(w + v * LANES);
        for (int s = 0; s < Q0_S; s++) {
            const REAL c = C[s * ld + k];
            for (int v = 0; v < Q0_V; v++) acc[s][v] += c * wv[v];
        }
    }
    for (int s = 0; s < Q0_S; s++)
        for (int v = 0; v < Q0_V; v++) NAME(st)(zq[s] + j + v * LANES, acc[s][v]);
}

/* Sample b's class for grouping: the index of its target row's largest value (0 without
 * targets or with one output). */
static inline int NAME(quad_class)(const REAL *y, const int64_t *rows, int b, int nL)
{
    if (!y || nL < 2) return 0;
    const REAL *t = y + (rows ? rows[b] : b) * (int64_t)nL;
    int c = 0;
    for (int k = 1; k < nL; k++) c = t[k] > t[c] ? k : c;
    return c;
}

/* perm[0, n) := src[0, n) stably sorted by key (key[p] of src[p], clipped to [0, 255]). */
static void NAME(quad_sort)(int32_t *restrict perm, const int32_t *restrict src,
                            const int32_t *restrict key, int n)
{
    int start[257] = {0};
    for (int p = 0; p < n; p++) start[(key[p] < 255 ? key[p] : 255) + 1]++;
    for (int k = 0; k < 256; k++) start[k + 1] += start[k];
    for (int p = 0; p < n; p++) perm[start[key[p] < 255 ? key[p] : 255]++] = src[p];
}

/* The samples of rows [b0, b1) into perm by class (with targets y) and, within a class, by
 * ascending nonzero count (tmp: room for 2 (b1 - b0) more). Quads of similar samples share
 * more of their inputs: MNIST b128, 305 inputs a quad in batch order, 287 by count, 268 by
 * class and count. The order changes no sum (a sample's own terms keep their order). */
static void NAME(quad_order)(const fnn_ws *ws, const REAL *y, const int64_t *rows, int nL,
                             int b0, int b1, int32_t *restrict perm, int32_t *restrict tmp)
{
    const int n = b1 - b0;
    int32_t *restrict key = tmp + n;
    for (int p = 0; p < n; p++) {
        tmp[p] = b0 + p;
        key[p] = ws->nnz[b0 + p] >> 2;
    }
    NAME(quad_sort)(perm, tmp, key, n);
    if (!y || nL < 2) return;
    for (int p = 0; p < n; p++) key[p] = NAME(quad_class)(y, rows, perm[p], nL);
    NAME(quad_sort)(tmp, perm, key, n);
    memcpy(perm, tmp, sizeof(int32_t) * n);
}
#else
#define Q0_ON 0   /* no quads */
#endif
