/* fnn_vec.h: vector loads and stores (masked for a row's last, partial vector), horizontal
 * sum, square root, float32 exp, and the nonzero indices of an input row. Part of fnn_impl.h.
 *
 * Glossary: ld/st load/store a whole vector; ldn/stn the first n lanes only (the others read
 * as 0, are left alone); hsum the sum of a vector's lanes; splat a vector of one value.
 */

static inline VEC NAME(ld)(const REAL *p) { return *(const VEC_UNALIGNED *)p; }
static inline void NAME(st)(REAL *p, VEC v) { *(VEC_UNALIGNED *)p = v; }
static inline VEC NAME(splat)(REAL c) { VEC v = {0}; return v + c; }

#if VBYTES == 64 && defined(__AVX512F__)
#if IS_F32
static inline VEC NAME(ldn)(const REAL *p, int n)
{
    return (VEC)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
}
static inline void NAME(stn)(REAL *p, VEC v, int n)
{
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
}
static inline REAL NAME(hsum)(VEC v) { return _mm512_reduce_add_ps((__m512)v); }
#else
static inline VEC NAME(ldn)(const REAL *p, int n)
{
    return (VEC)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1u), p);
}
static inline void NAME(stn)(REAL *p, VEC v, int n)
{
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1u), (__m512d)v);
}
static inline REAL NAME(hsum)(VEC v) { return _mm512_reduce_add_pd((__m512d)v); }
#endif
#elif VBYTES == 32 && defined(__AVX2__)
#if IS_F32
static inline __m256i NAME(mask)(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline VEC NAME(ldn)(const REAL *p, int n)
{
    return (VEC)_mm256_maskload_ps(p, NAME(mask)(n));
}
static inline void NAME(stn)(REAL *p, VEC v, int n)
{
    _mm256_maskstore_ps(p, NAME(mask)(n), (__m256)v);
}
#else
static inline __m256i NAME(mask)(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline VEC NAME(ldn)(const REAL *p, int n)
{
    return (VEC)_mm256_maskload_pd(p, NAME(mask)(n));
}
static inline void NAME(stn)(REAL *p, VEC v, int n)
{
    _mm256_maskstore_pd(p, NAME(mask)(n), (__m256d)v);
}
#endif
static inline REAL NAME(hsum)(VEC v)
{
    REAL s = 0;
    for (int k = 0; k < LANES; k++) s += v[k];
    return s;
}
#else
static inline VEC NAME(ldn)(const REAL *p, int n)
{
    if (n == LANES) return NAME(ld)(p);
    VEC v = {0};
    for (int k = 0; k < n; k++) v[k] = p[k];
    return v;
}
static inline void NAME(stn)(REAL *p, VEC v, int n)
{
    if (n == LANES) {
        NAME(st)(p, v);
        return;
    }
    for (int k = 0; k < n; k++) p[k] = v[k];
}
static inline REAL NAME(hsum)(VEC v)
{
    REAL s = 0;
    for (int k = 0; k < LANES; k++) s += v[k];
    return s;
}
#endif

/* The last vector of a row: a whole store when the row is padded to whole vectors (a masked
 * store that a later load overlaps stalls the pipeline), else only its n lanes. */
static inline void NAME(store_tail)(REAL *p, VEC v, int n, int padded)
{
    if (padded) NAME(st)(p, v);
    else NAME(stn)(p, v, n);
}

static inline VEC NAME(vsqrt)(VEC v)
{
#if VBYTES == 64 && defined(__AVX512F__)
#if IS_F32
    return (VEC)_mm512_sqrt_ps((__m512)v);
#else
    return (VEC)_mm512_sqrt_pd((__m512d)v);
#endif
#elif VBYTES == 32 && defined(__AVX__)
#if IS_F32
    return (VEC)_mm256_sqrt_ps((__m256)v);
#else
    return (VEC)_mm256_sqrt_pd((__m256d)v);
#endif
#elif defined(__SSE2__) && VBYTES == 16
#if IS_F32
    return (VEC)_mm_sqrt_ps((__m128)v);
#else
    return (VEC)_mm_sqrt_pd((__m128d)v);
#endif
#else
    for (int q = 0; q < LANES; q++) v[q] = SQRT(v[q]);
    return v;
#endif
}

/* max |x| over n values in one pass (the Model API's input check, ~memory speed). It compares
 * the bits with the sign cleared as unsigned integers: for non-negative floats that is the value
 * order, and inf and NaN sort above every finite value, so the result is NaN or inf exactly when
 * some value is. An integer max is exact and order-free, so it vectorises; 4 vector accumulators
 * hide the compare-select latency. */
static double NAME(abs_peak)(const void *xv, int64_t n)
{
#if IS_F32
    typedef uint32_t bits;
    const bits mask = 0x7fffffffu;
#else
    typedef uint64_t bits;
    const bits mask = 0x7fffffffffffffffull;
#endif
    enum { ACCUMULATORS = 4 * LANES };
    const bits *b = (const bits *)xv;
    bits m[ACCUMULATORS] = {0};
    int64_t i = 0;
    for (; i + ACCUMULATORS <= n; i += ACCUMULATORS)
        for (int k = 0; k < ACCUMULATORS; k++) {
            const bits v = b[i + k] & mask;
            m[k] = v > m[k] ? v : m[k];
        }
    for (; i < n; i++) {
        const bits v = b[i] & mask;
        m[0] = v > m[0] ? v : m[0];
    }
    for (int k = 1; k < ACCUMULATORS; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
    REAL r;
    memcpy(&r, &m[0], sizeof r);
    return (double)r;
}

/* The larger of two abs_peak results; NaN if either is. */
static inline double NAME(peak_merge)(double a, double b)
{
    return a != a || b != b ? NAN : (a > b ? a : b);
}

/* The nonzero entries of x[0:n]: their indices (idx, n + 16 slots), values (val, n + 16
 * slots, or NULL), where each block of 16 inputs starts in idx (blk, n / 16 + 1 slots, or
 * NULL), which groups of 4 inputs have one (grp: bit g % 64 of grp[g / 64 * gld] for inputs
 * 4g .. 4g+3, or NULL) and max |x| (*peak, as abs_peak, or NULL), in one pass. Returns their
 * count. */
FNN_ALWAYS_INLINE int NAME(nonzeros_core)(const REAL *restrict x, int n, int32_t *restrict idx,
                                          REAL *restrict val, int32_t *restrict blk,
                                          uint64_t *restrict grp, int64_t gld, double *peak)
{
    int cnt = 0, i = 0;
    uint64_t gw = 0;   /* grp's word in progress (stored after every block: no flush logic) */
#if IS_F32
    uint32_t top = 0;
    const uint32_t sign_off = 0x7fffffffu;
#else
    uint64_t top = 0;
    const uint64_t sign_off = 0x7fffffffffffffffull;
#endif
#if VBYTES == 64 && defined(__AVX512F__)
#if IS_F32
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i vtop = _mm512_setzero_si512();
    for (; i + 16 <= n; i += 16) {
        const __m512 xv = _mm512_loadu_ps(x + i);
        __mmask16 m = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        if (peak)
            vtop = _mm512_max_epu32(vtop, _mm512_and_si512(_mm512_castps_si512(xv),
                                                           _mm512_set1_epi32(0x7fffffff)));
        if (blk) blk[i >> 4] = cnt;
        if (grp) {   /* bit 4k of t: any of bits 4k .. 4k+3 of m */
            unsigned t = m | (m >> 1);
            t |= t >> 2;
            const uint64_t nib = (t & 1) | ((t >> 3) & 2) | ((t >> 6) & 4) | ((t >> 9) & 8);
            gw = ((i & 255) ? gw : 0) | nib << ((i >> 2) & 63);
            grp[(i >> 8) * gld] = gw;
        }
        _mm512_storeu_si512((void *)(idx + cnt), _mm512_maskz_compress_epi32(m, iota));
        if (val) _mm512_storeu_ps(val + cnt, _mm512_maskz_compress_ps(m, xv));
        cnt += __builtin_popcount((unsigned)m);
        iota = _mm512_add_epi32(iota, step);
    }
    if (peak) top = _mm512_reduce_max_epu32(vtop);
#else
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i step = _mm512_set1_epi32(8);
    __m512i vtop = _mm512_setzero_si512();
    for (; i + 8 <= n; i += 8) {
        const __m512d xv = _mm512_loadu_pd(x + i);
        __mmask8 m = _mm512_cmp_pd_mask(xv, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        if (peak)
            vtop = _mm512_max_epu64(vtop, _mm512_and_si512(_mm512_castpd_si512(xv),
                                                           _mm512_set1_epi64(sign_off)));
        if (blk && (i & 15) == 0) blk[i >> 4] = cnt;
        if (grp) {   /* 8 inputs: 2 groups */
            unsigned t = m | (m >> 1);
            t |= t >> 2;
            const uint64_t nib = (t & 1) | ((t >> 3) & 2);
            gw = ((i & 255) ? gw : 0) | nib << ((i >> 2) & 63);
            grp[(i >> 8) * gld] = gw;
        }
        _mm512_storeu_si512((void *)(idx + cnt),
                            _mm512_maskz_compress_epi32((__mmask16)m, iota));
        if (val) _mm512_storeu_pd(val + cnt, _mm512_maskz_compress_pd(m, xv));
        cnt += __builtin_popcount((unsigned)m);
        iota = _mm512_add_epi32(iota, step);
    }
    if (peak) top = _mm512_reduce_max_epu64(vtop);
#endif
#endif
    for (; i < n; i++) {
        if (blk && (i & 15) == 0) blk[i >> 4] = cnt;
        if (grp) {
            gw = ((i & 255) ? gw : 0) | (uint64_t)(x[i] != 0) << ((i >> 2) & 63);
            grp[(i >> 8) * gld] = gw;
        }
        idx[cnt] = i;
        if (val) val[cnt] = x[i];
        if (peak) {
            __typeof__(top) v;
            memcpy(&v, x + i, sizeof v);
            v &= sign_off;
            top = v > top ? v : top;
        }
        cnt += x[i] != 0;
    }
    if (blk && (n & 15) == 0) blk[n >> 4] = cnt;
    if (peak) {
        REAL r;
        memcpy(&r, &top, sizeof r);
        *peak = (double)r;
    }
    return cnt;
}

/* Indices of the nonzero entries of x[0:n] (idx needs n + 16 slots). */
static int NAME(nonzero_indices)(const REAL *restrict x, int n, int32_t *restrict idx)
{
    return NAME(nonzeros_core)(x, n, idx, NULL, NULL, NULL, 0, NULL);
}

/* nonzero_indices and max |x| (*peak) in the same pass. */
static int NAME(nonzero_indices_peak)(const REAL *restrict x, int n, int32_t *restrict idx,
                                      double *peak)
{
    return NAME(nonzeros_core)(x, n, idx, NULL, NULL, NULL, 0, peak);
}

/* Indices, values, 16-block starts, groups of 4 and max |x| of the nonzero entries
 * (nonzeros_core). */
static int NAME(nonzero_entries)(const REAL *restrict x, int n, int32_t *restrict idx,
                                 REAL *restrict val, int32_t *restrict blk,
                                 uint64_t *restrict grp, int64_t gld, double *peak)
{
    return NAME(nonzeros_core)(x, n, idx, val, blk, grp, gld, peak);
}

#if IS_F32
/* exp on a vector of floats: Cody-Waite range reduction and the Cephes degree-6 polynomial
 * (max error ~1 ulp, same as glibc's expf to within rounding); overflow -> inf, x < -87.3 -> 0
 * (expf would return subnormals there), NaN -> NaN. float64 always uses libm's exp. */
typedef int32_t NAME(vint) __attribute__((vector_size(VBYTES)));
static inline VEC NAME(vexp)(VEC x)
{
    typedef NAME(vint) VI;
    const VEC hi = NAME(splat)(88.72283935546875f), lo = NAME(splat)(-87.33654022216797f);
    VI big = (VI)(x > hi), small = (VI)(x < lo), nan = (VI)(x != x);
    VEC xc = (VEC)(((VI)x & ~(big | small | nan)));        /* out-of-range lanes -> 0 */
    const VEC magic = NAME(splat)(12582912.0f);            /* 1.5 * 2^23: round to nearest */
    VEC t = xc * 1.44269504088896341f + magic;
    VI n = (VI)t - (VI)magic;
    VEC fn = t - magic;
    VEC r = xc - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    VEC p = NAME(splat)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    VEC res = (VEC)((VI)p + (n << 23));
    const VEC inf = NAME(splat)(__builtin_inff());
    res = (VEC)(((VI)res & ~(big | small | nan)) | ((VI)inf & big) | ((VI)x & nan));
    return res;
}
#endif
