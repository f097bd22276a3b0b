/* fnn_sparse0.h: the weight update of the sparse layer 0 of the batched path, a few input
 * rows at a time. Part of fnn_impl.h.
 *
 * Why: row by row (fnn_batch_step.h task_sparse0), each gradient row sums the delta rows of
 * the samples where its input is nonzero, and each delta vector loaded from L2 feeds one
 * multiply-add. Here S0_G consecutive input rows (neighbouring pixels, mostly nonzero in the
 * same samples) take their gradient together over the samples where any of them is nonzero,
 * so each delta vector loaded feeds S0_G accumulators, and the optimiser applies the gradient
 * straight from registers. Zero inputs add exact zeros. It paid at every width measured
 * (fnn_tuning.h FNN_TUNE_S0_GROUP_MIN).
 *
 * Glossary: group, S0_G consecutive input rows of W; list, the batch indices of the samples
 * with a nonzero input in the group; coef, their S0_G inputs each; nv vectors of LANES values
 * per column block, the last one t lanes wide; pr, the rows of the group inside the task (the
 * last group may be short).
 */

/* Each block fetches the P lines it will write with write intent before it sums
 * (fnn_isa_common.h FNN_PREFETCH_W; measured in fnn_tuning.h FNN_TUNE_PARAMS_AHEAD). Before
 * that, read prefetches (the build then had no PREFETCHW, so "write intent" compiled to
 * prefetcht0) of the next group's rows of W and the optimiser state were a tie on mlp-128 and
 * wide-512 (Zen 4, 2 threads, both ways round), and slower on the Intel Xeon VM (784-256-10
 * b128 epoch 0.175 -> 0.192 s, into L2 or L1).
 * Prefetching the listed samples' delta rows 8 or 16 samples ahead (as the quad tiles do W's
 * rows, fnn_quad.h FNN_Q0_PF): a tie there on wide-512 and 784-256-10. */
#define S0_G 4   /* = the group of ws->nzg bits (fnn_vec.h nonzeros_core) */
#if S0_G != 4
#error "S0_G: s0_list reads the groups of 4 inputs that nonzeros_core marks"
#endif
#if VBYTES == 64
#define S0_V 4   /* 16 accumulators + 4 loaded vectors of 32 registers */
#else
#define S0_V 2   /* 8 accumulators + 2 loaded vectors of 16 registers */
#endif

/* The gradient of input rows i .. i + pr - 1 (pr <= S0_G), columns [j, j + nv
 * vectors), over the listed samples, applied to P's rows by the optimiser from registers. */
FNN_ALWAYS_INLINE void NAME(s0_update_block)(int nv, int t, const NAME(opt_scalars) *o,
                                             REAL *P, int64_t woff, int nout, int i, int pr,
                                             int j, const REAL *D, int ldd,
                                             const REAL *restrict coef, const int32_t *list,
                                             int ns)
{
    VEC acc[S0_G][S0_V];
    for (int r = 0; r < S0_G; r++)
        for (int v = 0; v < S0_V; v++) acc[r][v] = NAME(splat)(0);
    for (int r = 0; r < pr; r++)   /* the rows it writes, owned by the time the sums end */
        for (int v = 0; v < nv; v++)
            FNN_PREFETCH_W(P + woff + (int64_t)(i + r) * nout + j + v * LANES);
    for (int q = 0; q < ns; q++) {
        const int b = list[q];
        const REAL *d = D + (int64_t)b * ldd + j;
        VEC dv[S0_V];
        for (int v = 0; v < nv; v++)
            dv[v] = v == nv - 1 && t < LANES ? NAME(ldn)(d + v * LANES, t)
                                             : NAME(ld)(d + v * LANES);
        for (int r = 0; r < S0_G; r++) {
            const REAL c = coef[q * S0_G + r];
            for (int v = 0; v < nv; v++) acc[r][v] += c * dv[v];
        }
    }
    REAL *restrict M = o->m ? o->m + woff : NULL;
    REAL *restrict V2 = o->v ? o->v + woff : NULL;
    const int use_wd = o->wd != 0;
    for (int r = 0; r < pr; r++) {
        const int64_t row = (int64_t)(i + r) * nout + j;
        for (int v = 0; v < nv; v++) {
            const int whole = !(v == nv - 1 && t < LANES);
            NAME(update_lanes)(whole, o, P + woff, M, V2, row + v * LANES, acc[r][v],
                               whole ? LANES : t, use_wd, o->wd);
        }
    }
}

/* The batch indices of the samples with a nonzero input in rows i .. i + pr - 1, into list
 * (returns their count), from the bits index_nonzeros set. Those come in groups of 4 from
 * input 0: a group of a task that starts off that grid lists the samples of both groups it
 * straddles (the others add zeros). */
static int NAME(s0_list)(const fnn_ws *ws, int B, int64_t i, int pr, int32_t *restrict list)
{
    const int64_t g0 = i >> 2, g1 = (i + pr - 1) >> 2;
    const uint64_t *w0 = ws->nzg + (g0 >> 6) * ws->B, *wl = ws->nzg + (g1 >> 6) * ws->B;
    const int s0 = (int)(g0 & 63), s1 = (int)(g1 & 63);
    int ns = 0, b = 0;
#if VBYTES == 64 && defined(__AVX512F__)
    const __m512i one = _mm512_set1_epi64(1), sh0 = _mm512_set1_epi64(s0),
                  sh1 = _mm512_set1_epi64(s1), step = _mm512_set1_epi32(16);
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; b + 16 <= B; b += 16, iota = _mm512_add_epi32(iota, step)) {
        __m512i lo = _mm512_or_si512(_mm512_srlv_epi64(_mm512_loadu_si512(w0 + b), sh0),
                                     _mm512_srlv_epi64(_mm512_loadu_si512(wl + b), sh1));
        __m512i hi = _mm512_or_si512(_mm512_srlv_epi64(_mm512_loadu_si512(w0 + b + 8), sh0),
                                     _mm512_srlv_epi64(_mm512_loadu_si512(wl + b + 8), sh1));
        const __mmask16 m = (__mmask16)(_mm512_test_epi64_mask(lo, one) |
                                        (_mm512_test_epi64_mask(hi, one) << 8));
        /* a whole-vector store (compress to memory is slow on AMD): ns <= b, so it ends
         * inside list's B slots */
        _mm512_storeu_si512((void *)(list + ns), _mm512_maskz_compress_epi32(m, iota));
        ns += __builtin_popcount((unsigned)m);
    }
#endif
    for (; b < B; b++) {   /* branch-free */
        list[ns] = b;
        ns += (int)(((w0[b] >> s0) | (wl[b] >> s1)) & 1);
    }
    return ns;
}

/* The listed samples' inputs i .. i + pr - 1, S0_G per sample (zeros past pr), into coef:
 * gathered once per group, not once per column block (a cache line of each sample's row
 * each time, from L2 or further), fetching each sample's line of a later group on the way
 * (fnn_tuning.h FNN_TUNE_S0_COEF_AHEAD). */
static void NAME(s0_coefs)(const REAL *x, const int64_t *rows, int n0, int64_t i, int pr,
                           const int32_t *list, int ns, REAL *restrict coef)
{
    for (int q = 0; q < ns; q++) {
        const int b = list[q];
        const REAL *xb = x + (rows ? rows[b] : b) * (int64_t)n0 + i;
        __builtin_prefetch(xb + FNN_TUNE_S0_COEF_AHEAD * 64 / sizeof(REAL), 0, 3);
        if (pr == S0_G) {
            memcpy(coef + q * S0_G, xb, sizeof(REAL) * S0_G);
        } else {
            for (int r = 0; r < S0_G; r++) coef[q * S0_G + r] = r < pr ? xb[r] : (REAL)0;
        }
    }
}

/* Weight rows [r0, w1) of layer 0: gradient over the batch and optimiser update, S0_G rows at
 * a time. list: room for B sample indices, coef for B * S0_G values (this task's own).
 * nostate: plain SGD without decay, where a zero gradient changes nothing (rows no sample
 * touches are skipped). */
FNN_NOINLINE void NAME(s0_update_rows)(const fnn_net *net, fnn_ws *ws, REAL *P, const REAL *x,
                                       const int64_t *rows, int B, const NAME(opt_scalars) *o,
                                       int64_t r0, int64_t w1, int32_t *list, REAL *coef)
{
    const int n0 = net->n[0], nout = net->n[1], ldd = ws->ld[1];
    const REAL *D = (const REAL *)ws->d[1];
    const int nostate = o->kind == FNN_SGD && o->wd == 0;
    for (int64_t i = r0; i < w1; i += S0_G) {
        const int pr = w1 - i < S0_G ? (int)(w1 - i) : S0_G;
        const int ns = NAME(s0_list)(ws, B, i, pr, list);
        if (ns == 0 && nostate) continue;
        NAME(s0_coefs)(x, rows, n0, i, pr, list, ns, coef);
        int j = 0;
        for (; nout - j >= S0_V * LANES; j += S0_V * LANES)
            NAME(s0_update_block)(S0_V, LANES, o, P, net->woff[0], nout, (int)i, pr, j, D, ldd,
                                  coef, list, ns);
        if (j == nout) continue;
        const int nv = (nout - j + LANES - 1) / LANES, t = nout - j - (nv - 1) * LANES;
        switch (nv) {
        case 1:
            NAME(s0_update_block)(1, t, o, P, net->woff[0], nout, (int)i, pr, j, D, ldd, coef,
                                  list, ns);
            break;
#if S0_V > 2
        case 2:
            NAME(s0_update_block)(2, t, o, P, net->woff[0], nout, (int)i, pr, j, D, ldd, coef,
                                  list, ns);
            break;
        case 3:
            NAME(s0_update_block)(3, t, o, P, net->woff[0], nout, (int)i, pr, j, D, ldd, coef,
                                  list, ns);
            break;
#endif
        default:
            NAME(s0_update_block)(S0_V, t, o, P, net->woff[0], nout, (int)i, pr, j, D, ldd, coef,
                                  list, ns);
            break;
        }
    }
}
