/* fnn_gemm.h: matrix products for the batched path: BLAS (scipy's OpenBLAS, pointers set at
 * import), or on AVX-512 our own float32 kernel, and the choice between them and the per-row
 * kernels. Part of fnn_impl.h.
 *
 * Glossary: gemm, C = op(A) op(B) (BLAS name); ta/tb, A/B stored transposed; m x n the shape
 * of C, k the inner dimension; lda/ldb/ldc row strides; rm, row-major; colblock, columns of
 * layer 0 processed together (fnn_tuning.h FNN_TUNE_COLBLOCK_KB).
 */

static int NAME(use_gemm)(const fnn_net *net, int l, int B)
{
    const int a = net->n[l], b = net->n[l + 1];
    return GEMM != NULL && B >= fnn_tune.gemm_min_b && (a < b ? a : b) >= fnn_tune.gemm_min;
}

#if IS_F32 && VBYTES == 64 && defined(__AVX512F__)
/* Inner dimension per packed panel: KC x 32 floats (32 KB, on the stack) stay in L1 while
 * every 8-row block of A runs over them; the blocks' sums go on from C for the next KC (the
 * same sums in the same order, stored and reloaded exactly). A whole-k panel (k = 512: 64 KB,
 * out of L1) was streamed from L2 once per 8 rows: standalone, 128x512x512 hot 332 -> 310 us
 * (209 -> 224 GFLOP/s), with W transposed 340 -> 321 us; training (Intel Xeon VM, 2 threads,
 * builds taking turns) wide-512 b256 1.02x, width-1024 b128 1.045x (k = 1024 was one 128 KB
 * panel); 128 and 384 no better than 256. */
#define FNN_XGEMM_KC 256
/* AVX-512 sgemm for row-major C (m x n) = op(A) (m x k) op(B) (k x n), n a multiple of 32:
 * scipy's OpenBLAS runs its AVX2 (Haswell) kernel on AVX-512 machines. op(B) is packed in
 * KC x 32 panels; 8 x 32 blocks of C accumulate in 16 registers (each C element: one sum in k
 * order, whatever m, n or the caller's row split). ta: A stored transposed (element (i, p) at
 * A[p * lda + i]); tb: same for B. Any k: OpenBLAS on the 1024-wide layers' forward and
 * deltas re-packed the whole weight matrix for every 64-sample chunk (width-1024 b128
 * 1.25-1.32x slower than ours, Zen 4, 2 threads, both ways round). */
/* r[i] (row i of a 16 x 16 block) becomes column i, in registers: pairs of floats, pairs of
 * pairs, then 128-bit lanes, interleaved. */
static inline void NAME(transpose16)(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int h = 0; h < 2; h++) {
            const __m512d lo = _mm512_castps_pd(t[i + h]), hi = _mm512_castps_pd(t[i + h + 2]);
            r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
            r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
        }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

/* Pack op(B)'s columns [j0, j0 + 32) into the k x 32 panel pk. Reading an untransposed B
 * in place (stride ldb) saved nothing: standalone, wide-512's 128x512x512 and 256x512x256
 * took 580-630 us either way hot, and the unpacked one 3-10% longer with B out of cache. */
static inline void NAME(xgemm_pack)(int tb, int k, const float *restrict Bm, int ldb, int j0,
                                    float *restrict pk)
{
    if (!tb) {
        for (int p = 0; p < k; p++) {
            const float *b = Bm + (int64_t)p * ldb + j0;
            _mm512_store_ps(pk + p * 32, _mm512_loadu_ps(b));
            _mm512_store_ps(pk + p * 32 + 16, _mm512_loadu_ps(b + 16));
        }
        return;
    }
    /* op(B)(p, j) = Bm[j * ldb + p]: 16 x 16 blocks transposed in registers (the compiler's
     * scatter per 16 elements took ~14% of wide-512's gemm time) */
    int p = 0;
    for (; p + 16 <= k; p += 16)
        for (int h = 0; h < 32; h += 16) {
            __m512 r[16];
            for (int q = 0; q < 16; q++)
                r[q] = _mm512_loadu_ps(Bm + (int64_t)(j0 + h + q) * ldb + p);
            NAME(transpose16)(r);
            for (int q = 0; q < 16; q++) _mm512_store_ps(pk + (p + q) * 32 + h, r[q]);
        }
    for (; p < k; p++)
        for (int jj = 0; jj < 32; jj++) pk[p * 32 + jj] = Bm[(int64_t)(j0 + jj) * ldb + p];
}

/* C rows [i0, i0 + 8) x the panel's 32 columns: 16 accumulators over the panel's k (more:
 * going on from the sums in C). rs, ps: the strides of A(i, p) along i and along p. */
static inline void NAME(xgemm_block8)(int k, const float *restrict a, int64_t rs, int64_t ps,
                                      const float *restrict pk, float *restrict c, int ldc,
                                      int more)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
           c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00,
           c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    /* rows spelled out here and below: one macro applied to all eight rows in the three
     * places compiled 4% slower with A transposed (code layout; standalone 320 -> 333 us) */
    if (more) {
#define FNN_XGEMM_LOAD(r, x0, x1)                                                               \
        x0 = _mm512_loadu_ps(c + (r) * ldc);                                                    \
        x1 = _mm512_loadu_ps(c + (r) * ldc + 16);
        FNN_XGEMM_LOAD(0, c00, c01)
        FNN_XGEMM_LOAD(1, c10, c11)
        FNN_XGEMM_LOAD(2, c20, c21)
        FNN_XGEMM_LOAD(3, c30, c31)
        FNN_XGEMM_LOAD(4, c40, c41)
        FNN_XGEMM_LOAD(5, c50, c51)
        FNN_XGEMM_LOAD(6, c60, c61)
        FNN_XGEMM_LOAD(7, c70, c71)
#undef FNN_XGEMM_LOAD
    }
    for (int p = 0; p < k; p++, a += ps) {
        const __m512 b0 = _mm512_load_ps(pk + p * 32);
        const __m512 b1 = _mm512_load_ps(pk + p * 32 + 16);
        __m512 av;
#define FNN_XGEMM_ROW(r, x0, x1)                                                                \
        av = _mm512_set1_ps(a[(r) * rs]);                                                       \
        x0 = _mm512_fmadd_ps(av, b0, x0);                                                       \
        x1 = _mm512_fmadd_ps(av, b1, x1);
        FNN_XGEMM_ROW(0, c00, c01)
        FNN_XGEMM_ROW(1, c10, c11)
        FNN_XGEMM_ROW(2, c20, c21)
        FNN_XGEMM_ROW(3, c30, c31)
        FNN_XGEMM_ROW(4, c40, c41)
        FNN_XGEMM_ROW(5, c50, c51)
        FNN_XGEMM_ROW(6, c60, c61)
        FNN_XGEMM_ROW(7, c70, c71)
#undef FNN_XGEMM_ROW
    }
    _mm512_storeu_ps(c, c00); _mm512_storeu_ps(c + 16, c01); c += ldc;
    _mm512_storeu_ps(c, c10); _mm512_storeu_ps(c + 16, c11); c += ldc;
    _mm512_storeu_ps(c, c20); _mm512_storeu_ps(c + 16, c21); c += ldc;
    _mm512_storeu_ps(c, c30); _mm512_storeu_ps(c + 16, c31); c += ldc;
    _mm512_storeu_ps(c, c40); _mm512_storeu_ps(c + 16, c41); c += ldc;
    _mm512_storeu_ps(c, c50); _mm512_storeu_ps(c + 16, c51); c += ldc;
    _mm512_storeu_ps(c, c60); _mm512_storeu_ps(c + 16, c61); c += ldc;
    _mm512_storeu_ps(c, c70); _mm512_storeu_ps(c + 16, c71);
}

/* C rows [0, m) x columns [j0, j0 + 32) over the inner panel [p0, p0 + kc) packed in pk;
 * 8-row blocks of A from a (strides rs, ps; packed A: 1, 8 and a block every 8 * kc). */
static inline void NAME(xgemm_panel)(int m, int kc, const float *restrict Ap, int64_t rs,
                                     int64_t ps, const float *restrict apk,
                                     const float *restrict pk, float *restrict C, int ldc,
                                     int j0, int more)
{
    int i0 = 0;
    if (apk)
        for (; i0 + 8 <= m; i0 += 8)
            NAME(xgemm_block8)(kc, apk + (int64_t)i0 * kc, 1, 8, pk,
                               C + (int64_t)i0 * ldc + j0, ldc, more);
    for (; i0 + 8 <= m; i0 += 8)
        NAME(xgemm_block8)(kc, Ap + (int64_t)i0 * rs, rs, ps, pk, C + (int64_t)i0 * ldc + j0,
                           ldc, more);
    for (; i0 < m; i0++) {   /* row tail: the same sums, one row at a time */
        float *c = C + (int64_t)i0 * ldc + j0;
        __m512 x0 = more ? _mm512_loadu_ps(c) : _mm512_setzero_ps();
        __m512 x1 = more ? _mm512_loadu_ps(c + 16) : _mm512_setzero_ps();
        for (int p = 0; p < kc; p++) {
            const __m512 av = _mm512_set1_ps(Ap[(int64_t)i0 * rs + (int64_t)p * ps]);
            x0 = _mm512_fmadd_ps(av, _mm512_load_ps(pk + p * 32), x0);
            x1 = _mm512_fmadd_ps(av, _mm512_load_ps(pk + p * 32 + 16), x1);
        }
        _mm512_storeu_ps(c, x0);
        _mm512_storeu_ps(c + 16, x1);
    }
}

/* apk (room for m x FNN_XGEMM_KC floats, or NULL): with A stored transposed (the weight
 * gradient, A^T D), each inner panel of A is packed there first, 8 rows x kc a block, and
 * the panels run outermost. Why: the blocks read A(i0..i0+7, p) down a column of the stored
 * A, one line per p at the layer's row stride, and the next block found those lines evicted
 * (a 2 KB stride fills 2 of L1's 64 sets). Standalone 256x512x256, A with 512-float rows:
 * 352 -> 308 us (B in L3: 381 -> 332). Training (Intel Xeon VM, 2 threads, builds taking
 * turns): wide-512 b256 1.04x (123k -> 128k samples/s), width-1024 b128 1.045x, mlp-128 a
 * tie; all of A packed first with the column panels kept outermost measured 1.01x. The same
 * sums in the same order (panels in k order for every C). */
static void NAME(xgemm)(int ta, int tb, int m, int n, int k, const float *restrict A, int lda,
                        const float *restrict Bm, int ldb, float *restrict C, int ldc,
                        float *restrict apk)
{
    float pk[FNN_XGEMM_KC * 32] __attribute__((aligned(64)));
    const int64_t rs = ta ? 1 : lda, ps = ta ? lda : 1;   /* A(i, p) strides */
    const int m8 = m / 8 * 8;
    if (!ta || m8 == 0) apk = NULL;
    if (apk) {
        for (int p0 = 0; p0 < k; p0 += FNN_XGEMM_KC) {
            const int kc = k - p0 < FNN_XGEMM_KC ? k - p0 : FNN_XGEMM_KC;
            for (int p = 0; p < kc; p++) {
                const float *row = A + (int64_t)(p0 + p) * lda;
                for (int i0 = 0; i0 < m8; i0 += 8)
                    _mm256_store_ps(apk + (int64_t)i0 * kc + p * 8, _mm256_loadu_ps(row + i0));
            }
            for (int j0 = 0; j0 < n; j0 += 32) {
                NAME(xgemm_pack)(tb, kc, Bm + (tb ? p0 : (int64_t)p0 * ldb), ldb, j0, pk);
                NAME(xgemm_panel)(m, kc, A + p0 * ps, rs, ps, apk, pk, C, ldc, j0, p0 > 0);
            }
        }
        return;
    }
    for (int j0 = 0; j0 < n; j0 += 32)
        for (int p0 = 0; p0 < k; p0 += FNN_XGEMM_KC) {
            const int kc = k - p0 < FNN_XGEMM_KC ? k - p0 : FNN_XGEMM_KC;
            NAME(xgemm_pack)(tb, kc, Bm + (tb ? p0 : (int64_t)p0 * ldb), ldb, j0, pk);
            NAME(xgemm_panel)(m, kc, A + p0 * ps, rs, ps, NULL, pk, C, ldc, j0, p0 > 0);
        }
}
#endif

/* row-major C (m x n, ldc) = op(A) op(B) through column-major BLAS: C^T = op(B)^T op(A)^T.
 * apk: room for m x FNN_XGEMM_KC values, where our kernel packs a transposed A (or NULL). */
static void NAME(gemm_rm)(char ta, char tb, int m, int n, int k, const REAL *A, int lda,
                          const REAL *Bm, int ldb, REAL *C, int ldc, REAL *apk)
{
#if IS_F32 && VBYTES == 64 && defined(__AVX512F__)
    if (fnn_tune.own_gemm && n % 32 == 0) {
        NAME(xgemm)(ta == 'T', tb == 'T', m, n, k, A, lda, Bm, ldb, C, ldc, apk);
        return;
    }
#else
    (void)apk;
#endif
    REAL one = 1, zero = 0;
    GEMM(&tb, &ta, &n, &m, &k, &one, (REAL *)Bm, &ldb, (REAL *)A, &lda, &zero, C, &ldc);
}

/* Training workspaces' room for xgemm's packed transposed A: m x FNN_XGEMM_KC floats a
 * thread, m up to the widest layer or the inputs. Made by the first step that needs it (not
 * by every workspace: predict never packs A); left NULL if memory is short (the unpacked
 * path computes the same sums). */
static void NAME(apack_alloc)(const fnn_net *net, fnn_ws *ws)
{
#if IS_F32 && VBYTES == 64 && defined(__AVX512F__)
    if (ws->apack || !fnn_tune.own_gemm) return;
    int gemm = 0;
    for (int l = 0; l < net->L; l++) gemm |= NAME(use_gemm)(net, l, ws->B);
    if (!gemm) return;
    const int64_t ld = (int64_t)(net->n[0] > net->maxn ? net->n[0] : net->maxn) * FNN_XGEMM_KC;
    void *p = NULL;
    if (posix_memalign(&p, 64, sizeof(float) * (size_t)(ld * ws->T)) == 0) {
        ws->apack = p;
        ws->apackld = ld;
    }
#else
    (void)net;
    (void)ws;
#endif
}

/* Thread tid's part of the workspace's apack, or NULL. */
static inline REAL *NAME(apack)(const fnn_ws *ws, int tid)
{
    return ws->apack ? (REAL *)ws->apack + (int64_t)tid * ws->apackld : NULL;
}

/* Columns per block for the sparse layer-0 passes: n_rows x block within colblock_kb (L2). */
static inline int NAME(colblock)(int n_rows, int n_cols)
{
    if (fnn_tune.colblock_kb <= 0) return n_cols;
    const int64_t row_bytes = (int64_t)n_rows * (int64_t)sizeof(REAL);
    int cb = (int)((fnn_tune.colblock_kb * 1024LL) / row_bytes);
    cb = cb / (4 * LANES) * (4 * LANES);
    if (cb < 4 * LANES) cb = 4 * LANES;
    return cb >= n_cols ? n_cols : cb;
}

