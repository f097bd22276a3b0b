/* fnn_impl.h: the kernels, written once and instantiated per (dtype, ISA).
 *
 * Include with REAL (float/double), IS_F32 (1/0) and SFX (a name suffix) defined; the
 * including file sets the ISA with #pragma GCC target, so __AVX512F__/__AVX2__ select the
 * vector width and the masked-tail helpers. Vectors are GCC generic vectors, so the same
 * source is 512-bit in the AVX-512 build, 256-bit in the AVX2 build and SSE2 otherwise.
 *
 * Maths: exactly fastnn/backends/numpy_backend.py (see that file); summation orders differ.
 */

#define FNN_CAT2(a, b) a##_##b
#define FNN_CAT(a, b) FNN_CAT2(a, b)
#define F(x) FNN_CAT(x, SFX)

#define V F(vec)
#define VU F(vecu)
typedef REAL V __attribute__((vector_size(VBYTES)));
typedef REAL VU __attribute__((vector_size(VBYTES), aligned(sizeof(REAL)), may_alias));
#define VW ((int)(VBYTES / sizeof(REAL)))

#if IS_F32
#define EXP expf
#define LOG logf
#define TANH tanhf
#define SQRT sqrtf
#define TINY FLT_MIN
#define GEMM fnn_sgemm
#else
#define EXP exp
#define LOG log
#define TANH tanh
#define SQRT sqrt
#define TINY DBL_MIN
#define GEMM fnn_dgemm
#endif

static inline V F(ld)(const REAL *p) { return *(const VU *)p; }
static inline void F(st)(REAL *p, V v) { *(VU *)p = v; }
static inline V F(splat)(REAL c) { V v = {0}; return v + c; }

#if VBYTES == 64 && defined(__AVX512F__)
#if IS_F32
static inline V F(ldn)(const REAL *p, int n)
{
    return (V)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
}
static inline void F(stn)(REAL *p, V v, int n)
{
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
}
static inline REAL F(hsum)(V v) { return _mm512_reduce_add_ps((__m512)v); }
#else
static inline V F(ldn)(const REAL *p, int n)
{
    return (V)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1u), p);
}
static inline void F(stn)(REAL *p, V v, int n)
{
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1u), (__m512d)v);
}
static inline REAL F(hsum)(V v) { return _mm512_reduce_add_pd((__m512d)v); }
#endif
#elif VBYTES == 32 && defined(__AVX2__)
#if IS_F32
static inline __m256i F(mask)(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline V F(ldn)(const REAL *p, int n) { return (V)_mm256_maskload_ps(p, F(mask)(n)); }
static inline void F(stn)(REAL *p, V v, int n) { _mm256_maskstore_ps(p, F(mask)(n), (__m256)v); }
#else
static inline __m256i F(mask)(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline V F(ldn)(const REAL *p, int n) { return (V)_mm256_maskload_pd(p, F(mask)(n)); }
static inline void F(stn)(REAL *p, V v, int n)
{
    _mm256_maskstore_pd(p, F(mask)(n), (__m256d)v);
}
#endif
static inline REAL F(hsum)(V v)
{
    REAL s = 0;
    for (int k = 0; k < VW; k++) s += v[k];
    return s;
}
#else
static inline V F(ldn)(const REAL *p, int n)
{
    if (n == VW) return F(ld)(p);
    V v = {0};
    for (int k = 0; k < n; k++) v[k] = p[k];
    return v;
}
static inline void F(stn)(REAL *p, V v, int n)
{
    if (n == VW) { F(st)(p, v); return; }
    for (int k = 0; k < n; k++) p[k] = v[k];
}
static inline REAL F(hsum)(V v)
{
    REAL s = 0;
    for (int k = 0; k < VW; k++) s += v[k];
    return s;
}
#endif

static inline V F(vsqrt)(V v)
{
#if VBYTES == 64 && defined(__AVX512F__)
#if IS_F32
    return (V)_mm512_sqrt_ps((__m512)v);
#else
    return (V)_mm512_sqrt_pd((__m512d)v);
#endif
#elif VBYTES == 32 && defined(__AVX__)
#if IS_F32
    return (V)_mm256_sqrt_ps((__m256)v);
#else
    return (V)_mm256_sqrt_pd((__m256d)v);
#endif
#elif defined(__SSE2__) && VBYTES == 16
#if IS_F32
    return (V)_mm_sqrt_ps((__m128)v);
#else
    return (V)_mm_sqrt_pd((__m128d)v);
#endif
#else
    for (int q = 0; q < VW; q++) v[q] = SQRT(v[q]);
    return v;
#endif
}

/* ---- matrix-vector kernels ------------------------------------------------------------------
 * z[0:n] = sum_k coef(k) * M[row(k) * ldm + 0:n], accumulating in registers over blocks of up to
 * four vectors of output units (one or two vectors: the k loop is unrolled into independent
 * accumulators so FMA latency does not serialise it). The last vector of a row is masked.
 */
#define FNN_MV_BODY(ROW, COEF)                                                                  \
    int j = 0;                                                                                  \
    for (; n - j >= 8 * VW; j += 8 * VW) {   /* 8 vectors: half the index work, 8 chains */     \
        const REAL *Mj = M + j;                                                                 \
        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};       \
        for (int k = 0; k < cnt; k++) {                                                         \
            const REAL *w = Mj + (int64_t)(ROW(k)) * ldm;                                       \
            const REAL cq_ = COEF(k);                                                           \
            a0 += cq_ * F(ld)(w);                                                               \
            a1 += cq_ * F(ld)(w + VW);                                                          \
            a2 += cq_ * F(ld)(w + 2 * VW);                                                      \
            a3 += cq_ * F(ld)(w + 3 * VW);                                                      \
            a4 += cq_ * F(ld)(w + 4 * VW);                                                      \
            a5 += cq_ * F(ld)(w + 5 * VW);                                                      \
            a6 += cq_ * F(ld)(w + 6 * VW);                                                      \
            a7 += cq_ * F(ld)(w + 7 * VW);                                                      \
        }                                                                                       \
        F(st)(z + j, a0);                                                                       \
        F(st)(z + j + VW, a1);                                                                  \
        F(st)(z + j + 2 * VW, a2);                                                              \
        F(st)(z + j + 3 * VW, a3);                                                              \
        F(st)(z + j + 4 * VW, a4);                                                              \
        F(st)(z + j + 5 * VW, a5);                                                              \
        F(st)(z + j + 6 * VW, a6);                                                              \
        F(st)(z + j + 7 * VW, a7);                                                              \
    }                                                                                           \
    for (; j < n; j += 4 * VW) {                                                                \
        const int rem = n - j;                                                                  \
        const REAL *Mj = M + j;                                                                 \
        if (rem >= 4 * VW) {                                                                    \
            V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                           \
            for (int k = 0; k < cnt; k++) {                                                     \
                const REAL *w = Mj + (int64_t)(ROW(k)) * ldm;                                   \
                const REAL cq_ = COEF(k);                                                         \
                a0 += cq_ * F(ld)(w);                                                             \
                a1 += cq_ * F(ld)(w + VW);                                                        \
                a2 += cq_ * F(ld)(w + 2 * VW);                                                    \
                a3 += cq_ * F(ld)(w + 3 * VW);                                                    \
            }                                                                                   \
            F(st)(z + j, a0);                                                                   \
            F(st)(z + j + VW, a1);                                                              \
            F(st)(z + j + 2 * VW, a2);                                                          \
            F(st)(z + j + 3 * VW, a3);                                                          \
        } else if (rem > 3 * VW) {                                                              \
            const int t = rem - 3 * VW;                                                         \
            V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                           \
            for (int k = 0; k < cnt; k++) {                                                     \
                const REAL *w = Mj + (int64_t)(ROW(k)) * ldm;                                   \
                const REAL cq_ = COEF(k);                                                       \
                a0 += cq_ * F(ld)(w);                                                           \
                a1 += cq_ * F(ld)(w + VW);                                                      \
                a2 += cq_ * F(ld)(w + 2 * VW);                                                  \
                a3 += cq_ * F(ldn)(w + 3 * VW, t);                                              \
            }                                                                                   \
            F(st)(z + j, a0);                                                                   \
            F(st)(z + j + VW, a1);                                                              \
            F(st)(z + j + 2 * VW, a2);                                                          \
            if (zfull) F(st)(z + j + 3 * VW, a3); else F(stn)(z + j + 3 * VW, a3, t);                                                      \
        } else if (rem > 2 * VW) {                                                              \
            const int t = rem - 2 * VW;                                                         \
            V a0 = {0}, a1 = {0}, a2 = {0};                                                     \
            for (int k = 0; k < cnt; k++) {                                                     \
                const REAL *w = Mj + (int64_t)(ROW(k)) * ldm;                                   \
                const REAL cq_ = COEF(k);                                                         \
                a0 += cq_ * F(ld)(w);                                                             \
                a1 += cq_ * F(ld)(w + VW);                                                        \
                a2 += cq_ * F(ldn)(w + 2 * VW, t);                                                \
            }                                                                                   \
            F(st)(z + j, a0);                                                                   \
            F(st)(z + j + VW, a1);                                                              \
            if (zfull) F(st)(z + j + 2 * VW, a2); else F(stn)(z + j + 2 * VW, a2, t);                                                      \
        } else if (rem > VW) {                                                                  \
            const int t = rem - VW;                                                             \
            V a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};                                           \
            int k = 0;                                                                          \
            for (; k + 2 <= cnt; k += 2) {                                                      \
                const REAL *w = Mj + (int64_t)(ROW(k)) * ldm;                                   \
                const REAL *u = Mj + (int64_t)(ROW(k + 1)) * ldm;                               \
                const REAL cq_ = COEF(k), eq_ = COEF(k + 1);                                        \
                a0 += cq_ * F(ld)(w);                                                             \
                a1 += cq_ * F(ldn)(w + VW, t);                                                    \
                b0 += eq_ * F(ld)(u);                                                             \
                b1 += eq_ * F(ldn)(u + VW, t);                                                    \
            }                                                                                   \
            for (; k < cnt; k++) {                                                              \
                const REAL *w = Mj + (int64_t)(ROW(k)) * ldm;                                   \
                const REAL cq_ = COEF(k);                                                         \
                a0 += cq_ * F(ld)(w);                                                             \
                a1 += cq_ * F(ldn)(w + VW, t);                                                    \
            }                                                                                   \
            F(st)(z + j, a0 + b0);                                                              \
            if (zfull) F(st)(z + j + VW, a1 + b1); else F(stn)(z + j + VW, a1 + b1, t);                                                     \
        } else {                                                                                \
            const int t = rem;                                                                  \
            V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                           \
            int k = 0;                                                                          \
            for (; k + 4 <= cnt; k += 4) {                                                      \
                a0 += COEF(k) * F(ldn)(Mj + (int64_t)(ROW(k)) * ldm, t);                        \
                a1 += COEF(k + 1) * F(ldn)(Mj + (int64_t)(ROW(k + 1)) * ldm, t);                \
                a2 += COEF(k + 2) * F(ldn)(Mj + (int64_t)(ROW(k + 2)) * ldm, t);                \
                a3 += COEF(k + 3) * F(ldn)(Mj + (int64_t)(ROW(k + 3)) * ldm, t);                \
            }                                                                                   \
            for (; k < cnt; k++) a0 += COEF(k) * F(ldn)(Mj + (int64_t)(ROW(k)) * ldm, t);       \
            if (zfull) F(st)(z + j, (a0 + a1) + (a2 + a3)); else F(stn)(z + j, (a0 + a1) + (a2 + a3), t);                                            \
        }                                                                                       \
    }

/* dense rows, strided coefficients: z = sum_k c[k*cs] * M[k, :]. zfull: z is a padded row
 * (whole vectors may be stored; a masked store that a later load overlaps stalls the pipeline). */
static void F(mv)(REAL *restrict z, int n, const REAL *restrict M, int64_t ldm,
                  const REAL *restrict c, int64_t cs, int cnt, int zfull)
{
#define ROW_D(q) (q)
#define COEF_D(q) c[(int64_t)(q) * cs]
    FNN_MV_BODY(ROW_D, COEF_D)
#undef COEF_D
#undef ROW_D
}

/* sparse rows: z = sum_k x[idx[k]] * M[idx[k], :] */
static void F(mvs)(REAL *restrict z, int n, const REAL *restrict M, int64_t ldm,
                   const REAL *restrict x, const int32_t *restrict idx, int cnt, int zfull)
{
#define ROW_S(q) idx[q]
#define COEF_S(q) x[idx[q]]
    FNN_MV_BODY(ROW_S, COEF_S)
#undef COEF_S
#undef ROW_S
}

/* listed rows, own coefficients: z = sum_k c[k] * M[idx[k], :] (a CSC column of the batch) */
static void F(mvc)(REAL *restrict z, int n, const REAL *restrict M, int64_t ldm,
                   const REAL *restrict c, const int32_t *restrict idx, int cnt, int zfull)
{
#define ROW_C(q) idx[q]
#define COEF_C(q) c[q]
    FNN_MV_BODY(ROW_C, COEF_C)
#undef COEF_C
#undef ROW_C
}

/* out[i] = sum_j W[i*ldw + j] * d[j]  (i < rows, j < n): the backward matrix-vector product. */
static void F(dots)(REAL *restrict out, const REAL *restrict W, int rows, int64_t ldw,
                    const REAL *restrict d, int n)
{
    if (n <= VW) {
        const V dv = F(ldn)(d, n);
        for (int i = 0; i < rows; i++) out[i] = F(hsum)(F(ldn)(W + (int64_t)i * ldw, n) * dv);
        return;
    }
    for (int i = 0; i < rows; i++) {
        const REAL *w = W + (int64_t)i * ldw;
        V a0 = {0}, a1 = {0};
        int j = 0;
        for (; j + 2 * VW <= n; j += 2 * VW) {
            a0 += F(ld)(w + j) * F(ld)(d + j);
            a1 += F(ld)(w + j + VW) * F(ld)(d + j + VW);
        }
        for (; j < n; j += VW) {
            const int t = n - j < VW ? n - j : VW;
            a0 += F(ldn)(w + j, t) * F(ldn)(d + j, t);
        }
        out[i] = F(hsum)(a0 + a1);
    }
}

/* g[0:n] += c * d[0:n] */
static inline void F(axpy)(REAL *restrict g, REAL c, const REAL *restrict d, int n)
{
    int j = 0;
    for (; j + VW <= n; j += VW) F(st)(g + j, F(ld)(g + j) + c * F(ld)(d + j));
    if (j < n) F(stn)(g + j, F(ldn)(g + j, n - j) + c * F(ldn)(d + j, n - j), n - j);
}

/* g[0:n] = c * d[0:n] */
static inline void F(scal)(REAL *restrict g, REAL c, const REAL *restrict d, int n)
{
    int j = 0;
    for (; j + VW <= n; j += VW) F(st)(g + j, c * F(ld)(d + j));
    if (j < n) F(stn)(g + j, c * F(ldn)(d + j, n - j), n - j);
}

/* Indices of the nonzero entries of x[0:n] (idx needs n + 16 slots). */
static int F(nzbuild)(const REAL *restrict x, int n, int32_t *restrict idx)
{
    int cnt = 0, i = 0;
#if VBYTES == 64 && defined(__AVX512F__)
#if IS_F32
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (; i + 16 <= n; i += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_storeu_si512((void *)(idx + cnt), _mm512_maskz_compress_epi32(m, iota));
        cnt += __builtin_popcount((unsigned)m);
        iota = _mm512_add_epi32(iota, step);
    }
#else
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i step = _mm512_set1_epi32(8);
    for (; i + 8 <= n; i += 8) {
        __mmask8 m = _mm512_cmp_pd_mask(_mm512_loadu_pd(x + i), _mm512_setzero_pd(), _CMP_NEQ_UQ);
        _mm512_storeu_si512((void *)(idx + cnt), _mm512_maskz_compress_epi32((__mmask16)m, iota));
        cnt += __builtin_popcount((unsigned)m);
        iota = _mm512_add_epi32(iota, step);
    }
#endif
#endif
    for (; i < n; i++) {
        idx[cnt] = i;
        cnt += x[i] != 0;
    }
    return cnt;
}

#if IS_F32
/* exp on a vector of floats: Cody-Waite range reduction and the Cephes degree-6 polynomial
 * (max error ~1 ulp, same as glibc's expf to within rounding); overflow -> inf, x < -87.3 -> 0
 * (expf would return subnormals there), NaN -> NaN. float64 always uses libm's exp. */
typedef int32_t F(vint) __attribute__((vector_size(VBYTES)));
static inline V F(vexp)(V x)
{
    typedef F(vint) VI;
    const V hi = F(splat)(88.72283935546875f), lo = F(splat)(-87.33654022216797f);
    VI big = (VI)(x > hi), small = (VI)(x < lo), nan = (VI)(x != x);
    V xc = (V)(((VI)x & ~(big | small | nan)));          /* out-of-range lanes -> 0 */
    const V magic = F(splat)(12582912.0f);                 /* 1.5 * 2^23: round to nearest */
    V t = xc * 1.44269504088896341f + magic;
    VI n = (VI)t - (VI)magic;
    V fn = t - magic;
    V r = xc - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    V p = F(splat)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    V res = (V)((VI)p + (n << 23));
    const V inf = F(splat)(__builtin_inff());
    res = (V)(((VI)res & ~(big | small | nan)) | ((VI)inf & big) | ((VI)x & nan));
    return res;
}
#endif

/* ---- activations, losses ------------------------------------------------------------------- */

static void F(act_fwd)(int code, REAL *restrict z, int n)
{
    switch (code) {
    case FNN_SIGMOID:
        for (int j = 0; j < n; j++) z[j] = (REAL)1 / ((REAL)1 + EXP(-z[j]));
        break;
    case FNN_RELU:
        for (int j = 0; j < n; j++) z[j] = z[j] < 0 ? (REAL)0 : z[j];
        break;
    case FNN_TANH:
        for (int j = 0; j < n; j++) z[j] = TANH(z[j]);
        break;
    case FNN_LEAKY:
        for (int j = 0; j < n; j++) z[j] = z[j] < 0 ? z[j] * (REAL)FNN_LEAKY_SLOPE : z[j];
        break;
    case FNN_SOFTMAX: {
        REAL mx = z[0], s = 0;
        for (int j = 1; j < n; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < n; j++) {
            z[j] = EXP(z[j] - mx);
            s += z[j];
        }
        for (int j = 0; j < n; j++) z[j] /= s;
        break;
    }
    default:
        break;
    }
}

/* z = act(z + b) */
static inline void F(bias_act)(int code, REAL *restrict z, const REAL *restrict b, int n)
{
    for (int j = 0; j < n; j++) z[j] += b[j];
    F(act_fwd)(code, z, n);
}

/* The same on a row padded to whole vectors (padding lanes are scratch). */
static inline void F(bias_act_pad)(int code, REAL *restrict z, const REAL *restrict b, int n)
{
#if IS_F32
    if (code == FNN_SIGMOID) {
        for (int j = 0; j < n; j += VW) {
            const int t = n - j < VW ? n - j : VW;
            const V v = F(ld)(z + j) + F(ldn)(b + j, t);
            F(st)(z + j, (REAL)1 / ((REAL)1 + F(vexp)(-v)));
        }
        return;
    }
    if (code == FNN_SOFTMAX && n <= VW) {
        V v = F(ld)(z) + F(ldn)(b, n);
        REAL mx = v[0];
        for (int j = 1; j < n; j++) mx = v[j] > mx ? v[j] : mx;
        V e = F(vexp)(v - mx);
        REAL s = 0;
        for (int j = 0; j < n; j++) s += e[j];
        F(st)(z, e / s);
        return;
    }
#endif
    F(bias_act)(code, z, b, n);
}

/* d *= f'(a), in terms of the outputs a */
static void F(act_bwd)(int code, const REAL *restrict a, REAL *restrict d, int n)
{
    switch (code) {
    case FNN_SIGMOID:
        for (int j = 0; j < n; j++) d[j] *= a[j] * ((REAL)1 - a[j]);
        break;
    case FNN_RELU:
        for (int j = 0; j < n; j++) d[j] = a[j] <= 0 ? (REAL)0 : d[j];
        break;
    case FNN_TANH:
        for (int j = 0; j < n; j++) d[j] *= (REAL)1 - a[j] * a[j];
        break;
    case FNN_LEAKY:
        for (int j = 0; j < n; j++) d[j] = a[j] <= 0 ? d[j] * (REAL)FNN_LEAKY_SLOPE : d[j];
        break;
    default:
        break;
    }
}

static inline int F(argmax)(const REAL *v, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* Per-sample loss (returned), correct count and output delta (a - y) * invB [* f'(a) for mse]. */
static double F(head)(const fnn_net *net, const REAL *restrict a, const REAL *restrict y,
                      REAL *restrict d, REAL invB, int acc_mode, int64_t *correct)
{
    const int n = net->n[net->L];
    REAL s = 0;
    if (net->loss == FNN_MSE) {
        for (int j = 0; j < n; j++) s += (a[j] - y[j]) * (a[j] - y[j]);
        s = (REAL)0.5 * s;
    } else if (net->loss == FNN_CE) {
        for (int j = 0; j < n; j++)   /* y_j = 0 adds exactly 0 (the log is finite): skip it */
            if (y[j] != 0) s += y[j] * LOG(a[j] > TINY ? a[j] : TINY);
        s = -s;
    } else {
        REAL s2 = 0;
        for (int j = 0; j < n; j++) {
            const REAL q = (REAL)1 - a[j];
            s += y[j] * LOG(a[j] > TINY ? a[j] : TINY);
            s2 += ((REAL)1 - y[j]) * LOG(q > TINY ? q : TINY);
        }
        s = -s - s2;
    }
    if (acc_mode == FNN_ACC_ARGMAX) {
        *correct = F(argmax)(a, n) == F(argmax)(y, n);
    } else if (acc_mode == FNN_ACC_BINARY) {
        int64_t c = 0;
        for (int j = 0; j < n; j++) c += (a[j] > (REAL)0.5) == (y[j] > (REAL)0.5);
        *correct = c;
    } else {
        *correct = 0;
    }
    if (d) {
        for (int j = 0; j < n; j++) d[j] = (a[j] - y[j]) * invB;
        if (net->loss == FNN_MSE) F(act_bwd)(net->act[net->L - 1], a, d, n);
    }
    return (double)s;
}

/* ---- optimiser ----------------------------------------------------------------------------- */

typedef struct {
    int kind;
    REAL lr, mu, b1, b2, omb1, omb2, step, bc2, ibc2, eps, wd;
    REAL *m, *v;
} F(optc);

static void F(optc_init)(F(optc) *o, const fnn_opt *op, int64_t t)
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

/* One optimiser step on vector lanes: p, m, v at P+off+j (t lanes), gradient gv. */
#define FNN_UPD_LANES(LOAD, STORE)                                                              \
    {                                                                                           \
        V p = LOAD(P + j);                                                                      \
        const V gg = use_wd ? gv + wd * p : gv;                                                 \
        switch (o->kind) {                                                                      \
        case FNN_SGD:                                                                           \
            p -= o->lr * gg;                                                                    \
            break;                                                                              \
        case FNN_MOMENTUM: {                                                                    \
            V m = LOAD(M + j) * o->mu + gg;                                                     \
            STORE(M + j, m);                                                                    \
            p -= o->lr * m;                                                                     \
            break;                                                                              \
        }                                                                                       \
        case FNN_NESTEROV: {                                                                    \
            V m = LOAD(M + j) * o->mu + gg;                                                     \
            STORE(M + j, m);                                                                    \
            p -= o->lr * (gg + o->mu * m);                                                      \
            break;                                                                              \
        }                                                                                       \
        default: {                                                                              \
            V m = LOAD(M + j) * o->b1 + o->omb1 * gg;                                           \
            V v = LOAD(Vv + j) * o->b2 + (o->omb2 * gg) * gg;                                   \
            STORE(M + j, m);                                                                    \
            STORE(Vv + j, v);                                                                   \
            p -= o->step * m / (F(vsqrt)(v) * o->ibc2 + o->eps);                                \
            break;                                                                              \
        }                                                                                       \
        }                                                                                       \
        STORE(P + j, p);                                                                        \
    }

/* One optimiser step on params[off : off+n] with gradient g[0:n] (decay: add wd * p first). */
static void F(upd)(REAL *restrict Pb, int64_t off, const REAL *restrict g, int64_t n,
                   const F(optc) *o, int decay)
{
    REAL *restrict P = Pb + off;
    REAL *restrict M = o->m ? o->m + off : NULL;
    REAL *restrict Vv = o->v ? o->v + off : NULL;
    const REAL wd = decay ? o->wd : (REAL)0;
    const int use_wd = wd != 0;
    int64_t j = 0;
    for (; j + VW <= n; j += VW) {
        const V gv = F(ld)(g + j);
#define LDF(p) F(ld)(p)
#define STF(p, v) F(st)(p, v)
        FNN_UPD_LANES(LDF, STF)
#undef LDF
#undef STF
    }
    if (j < n) {
        const int t = (int)(n - j);
        const V gv = F(ldn)(g + j, t);
#define LDT(p) F(ldn)(p, t)
#define STT(p, v) F(stn)(p, v, t)
        FNN_UPD_LANES(LDT, STT)
#undef LDT
#undef STT
    }
}

/* Rows of n values updated with masked tail stores are visited with this stride (all residues
 * in turn), so the next row's loads never overlap a masked store still in flight. */
static inline int F(row_stride)(int n) { return n % VW == 0 ? 1 : (n > VW ? 2 : (VW + n - 1) / n + 1); }
#define FNN_FOR_ROWS(i, r0, r1, s)                                                              \
    for (int64_t c_ = 0; c_ < (s); c_++)                                                        \
        for (int64_t i = (r0) + c_; i < (r1); i += (s))

/* Plain SGD on rows of a dense layer: W[i,:] -= lr * sum_b coef(b, i) * D[b,:] for i in
 * [r0, r1) (row nin: the bias, coefficient 1). Gradient rows stay in registers. */
static void F(sgd_dense_rows)(REAL *restrict W, REAL *restrict bias, int nin, int n, int64_t r0,
                              int64_t r1, const REAL *restrict A, int lda,
                              const REAL *restrict D, int ldd, int B, REAL lr)
{
    const int rs = F(row_stride)(n);
    FNN_FOR_ROWS(i, r0, r1, rs) {
        REAL *w = i < nin ? W + i * n : bias;
        for (int j = 0; j < n; j += 2 * VW) {
            const int t0 = n - j < VW ? n - j : VW;
            const int t1 = n - j - VW < 0 ? 0 : (n - j - VW < VW ? n - j - VW : VW);
            V a0 = {0}, a1 = {0};
            if (i < nin) {
                for (int b = 0; b < B; b++) {
                    const REAL c = A[(int64_t)b * lda + i];
                    const REAL *d = D + (int64_t)b * ldd + j;
                    a0 += c * F(ldn)(d, t0);
                    if (t1) a1 += c * F(ldn)(d + VW, t1);
                }
            } else {
                for (int b = 0; b < B; b++) {
                    const REAL *d = D + (int64_t)b * ldd + j;
                    a0 += F(ldn)(d, t0);
                    if (t1) a1 += F(ldn)(d + VW, t1);
                }
            }
            F(stn)(w + j, F(ldn)(w + j, t0) - lr * a0, t0);
            if (t1) F(stn)(w + j + VW, F(ldn)(w + j + VW, t1) - lr * a1, t1);
        }
    }
}

/* Plain SGD, one sample, sparse rows: W[i,:] -= lr * (x_i * d) for the listed i. */
static void F(sgd_sparse1)(REAL *restrict W, int n, const REAL *restrict x,
                           const int32_t *restrict idx, int k0, int k1, const REAL *restrict d,
                           REAL lr)
{
    if (n <= 2 * VW) {
        const int t0 = n < VW ? n : VW, t1 = n - t0;
        const V d0 = F(ldn)(d, t0);
        const V d1 = t1 ? F(ldn)(d + VW, t1) : d0;
        if (t1 == 0) {
            for (int k = k0; k < k1; k++) {
                const int i = idx[k];
                REAL *w = W + (int64_t)i * n;
                F(stn)(w, F(ldn)(w, t0) - lr * (x[i] * d0), t0);
            }
        } else {
            /* two whole vectors [0, VW) and [n - VW, n): both loaded before either is stored,
             * so the shared lanes get the same single update; no masked store */
            const V d1o = F(ld)(d + n - VW);
            for (int k = k0; k < k1; k++) {
                const int i = idx[k];
                REAL *w = W + (int64_t)i * n;
                const V w0 = F(ld)(w), w1 = F(ld)(w + n - VW);
                F(st)(w, w0 - lr * (x[i] * d0));
                F(st)(w + n - VW, w1 - lr * (x[i] * d1o));
            }
            (void)d1;
        }
        return;
    }
    for (int k = k0; k < k1; k++) {
        const int i = idx[k];
        REAL *w = W + (int64_t)i * n;
        const REAL c = x[i];
        int j = 0;
        for (; j + VW <= n; j += VW) F(st)(w + j, F(ld)(w + j) - lr * (c * F(ld)(d + j)));
        if (j < n) F(stn)(w + j, F(ldn)(w + j, n - j) - lr * (c * F(ldn)(d + j, n - j)), n - j);
    }
}

/* ---- helpers on the layout ----------------------------------------------------------------- */

static inline REAL *F(arow)(fnn_ws *ws, int l, int b) { return (REAL *)ws->a[l] + (int64_t)b * ws->ld[l]; }
static inline REAL *F(drow)(fnn_ws *ws, int l, int b) { return (REAL *)ws->d[l] + (int64_t)b * ws->ld[l]; }

static inline void F(split)(int64_t n, int t, int T, int64_t *lo, int64_t *hi)
{
    *lo = n * t / T;
    *hi = n * (t + 1) / T;
}

/* Forward one sample through all layers with the per-sample kernels (layer 0 sparse).
 * The last layer's output goes to `out` (any stride-1 row of n[L] values). */
static void F(fwd1)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x, int b,
                    REAL *out, int keep_nnz)
{
    const int L = net->L;
    int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
    const int nnz = F(nzbuild)(x, net->n[0], nzi);
    if (keep_nnz) ws->nnz[b] = nnz;   /* predict threads skip it: adjacent counts share a line */
    REAL *z = F(arow)(ws, 1, b);
    F(mvs)(z, net->n[1], P + net->woff[0], net->n[1], x, nzi, nnz, 1);
    F(bias_act_pad)(net->act[0], z, P + net->boff[0], net->n[1]);
    for (int l = 1; l < L; l++) {
        const REAL *a = z;
        z = F(arow)(ws, l + 1, b);
        F(mv)(z, net->n[l + 1], P + net->woff[l], net->n[l + 1], a, 1, net->n[l], 1);
        F(bias_act_pad)(net->act[l], z, P + net->boff[l], net->n[l + 1]);
    }
    if (out != z) memcpy(out, z, sizeof(REAL) * net->n[L]);
}

/* Backward deltas of one sample, d[L] .. d[1] (d[L] already set by head). */
static void F(bwd1)(const fnn_net *net, fnn_ws *ws, const REAL *P, int b)
{
    for (int l = net->L - 1; l >= 1; l--) {
        REAL *dl = F(drow)(ws, l, b);
        F(dots)(dl, P + net->woff[l], net->n[l], net->n[l + 1], F(drow)(ws, l + 1, b), net->n[l + 1]);
        F(act_bwd)(net->act[l - 1], F(arow)(ws, l, b), dl, net->n[l]);
    }
}

/* ---- the fused per-sample training step (narrow networks) -----------------------------------
 * Phase A (samples split over threads): forward, loss, deltas of every layer >= 1.
 * Phase B (parameter rows split over threads): gradient row = sum over the batch (fixed order),
 * then the optimiser update of that row. No thread ever sums another thread's partial result,
 * so the result is bit-identical for any thread count.
 */
static inline void F(prefetch_row)(const REAL *p, int n)
{
    const char *c = (const char *)p;
    for (size_t o = 0; o < (size_t)n * sizeof(REAL); o += 64) __builtin_prefetch(c + o, 0, 3);
}

static void F(phaseA)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x, const REAL *y,
                      const int64_t *rows, int b0, int b1, int64_t nnext, REAL invB, int acc_mode)
{
    const int L = net->L, n0 = net->n[0], nL = net->n[L];
    for (int b = b0; b < b1; b++) {
        /* the next sample's input row is a random row of x: fetch it while this one runs */
        if (b + 1 < nnext) {
            F(prefetch_row)(x + rows[b + 1] * n0, n0);
            __builtin_prefetch(y + rows[b + 1] * nL, 0, 3);
        }
        const REAL *xr = x + rows[b] * n0;
        REAL *out = F(arow)(ws, L, b);
        F(fwd1)(net, ws, P, xr, b, out, 1);
        ws->lossb[b] = F(head)(net, out, y + rows[b] * nL, F(drow)(ws, L, b), invB, acc_mode,
                               &ws->corb[b]);
        F(bwd1)(net, ws, P, b);
    }
}

static inline int F(lower_bound)(const int32_t *v, int n, int32_t key)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (v[mid] < key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static void F(phaseB)(const fnn_net *net, fnn_ws *ws, REAL *P, const REAL *x, const int64_t *rows,
                      int B, const F(optc) *o, int t, int T)
{
    const int L = net->L, n0 = net->n[0], n1 = net->n[1];
    const int direct = o->kind == FNN_SGD && o->wd == 0;   /* p -= lr * g, no state */
    REAL *g = (REAL *)ws->tmp + (int64_t)t * ws->tmpld;
    /* layer 0 weights: rows [r0, r1) of the input dimension, sparse accumulation */
    {
        int64_t r0, r1;
        F(split)(n0, t, T, &r0, &r1);
        REAL *W = P + net->woff[0];
        const REAL *d1 = (const REAL *)ws->d[1];
        const int ldd = ws->ld[1];
        if (direct) {
            /* W[i,:] -= lr * x_bi * delta_b, sample by sample (in batch order), only on rows
             * with x_bi != 0: the gradient is never materialised. */
            for (int b = 0; b < B; b++) {
                const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
                const int nnz = ws->nnz[b];
                const int k0 = T == 1 ? 0 : F(lower_bound)(nzi, nnz, (int32_t)r0);
                const int k1 = T == 1 ? nnz : F(lower_bound)(nzi, nnz, (int32_t)r1);
                F(sgd_sparse1)(W, n1, x + rows[b] * n0, nzi, k0, k1, d1 + (int64_t)b * ldd, o->lr);
            }
        } else {
            /* G rows are zero between steps; accumulate x_bi * d_b, remember touched rows */
            REAL *G = (REAL *)ws->g0;
            const uint32_t ep = ws->epoch;
            uint32_t *stamp = ws->stamp;
            int32_t *touched = ws->touched + r0 + t;   /* r1 - r0 + 1 slots: the branchless
                                                          append writes one past the end */
            int nt = 0;
            for (int b = 0; b < B; b++) {
                const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
                const int nnz = ws->nnz[b];
                const REAL *xr = x + rows[b] * n0;
                const REAL *db = d1 + (int64_t)b * ldd;
                const int k0 = T == 1 ? 0 : F(lower_bound)(nzi, nnz, (int32_t)r0);
                const int k1 = T == 1 ? nnz : F(lower_bound)(nzi, nnz, (int32_t)r1);
                for (int k = k0; k < k1; k++) {
                    const int i = nzi[k];
                    touched[nt] = i;
                    nt += stamp[i] != ep;
                    stamp[i] = ep;
                    F(axpy)(G + (int64_t)i * ws->ldg0, xr[i], db, n1);
                }
            }
            const int rs = F(row_stride)(n1);
            FNN_FOR_ROWS(i, r0, r1, rs)
                F(upd)(P, net->woff[0] + i * n1, G + i * ws->ldg0, n1, o, 1);
            for (int k = 0; k < nt; k++) memset(G + (int64_t)touched[k] * ws->ldg0, 0, sizeof(REAL) * n1);
        }
        if (t == T - 1) {
            if (direct) {
                F(sgd_dense_rows)(NULL, P + net->boff[0], 0, n1, 0, 1, NULL, 0, d1, ldd, B, o->lr);
            } else {
                F(mv)(g, n1, d1, ldd, (const REAL *)ws->ones, 1, B, 1);
                F(upd)(P, net->boff[0], g, n1, o, 0);
            }
        }
    }
    /* dense layers: rows i < n[l] are weights (coefficient a[l][b][i]), row n[l] is the bias */
    for (int l = 1; l < L; l++) {
        const int nin = net->n[l], nout = net->n[l + 1];
        int64_t r0, r1;
        F(split)(nin + 1, t, T, &r0, &r1);
        const REAL *A = (const REAL *)ws->a[l];
        const REAL *D = (const REAL *)ws->d[l + 1];
        if (direct) {
            F(sgd_dense_rows)(P + net->woff[l], P + net->boff[l], nin, nout, r0, r1, A, ws->ld[l],
                              D, ws->ld[l + 1], B, o->lr);
            continue;
        }
        const int rs = F(row_stride)(nout);
        FNN_FOR_ROWS(i, r0, r1, rs) {
            if (i < nin) {
                F(mv)(g, nout, D, ws->ld[l + 1], A + i, ws->ld[l], B, 1);
                F(upd)(P, net->woff[l] + i * nout, g, nout, o, 1);
            } else {
                F(mv)(g, nout, D, ws->ld[l + 1], (const REAL *)ws->ones, 1, B, 1);
                F(upd)(P, net->boff[l], g, nout, o, 0);
            }
        }
    }
}

static int64_t F(work_per_sample)(const fnn_net *net)
{
    int64_t w = 0;
    for (int l = 0; l < net->L; l++) w += (int64_t)net->n[l] * net->n[l + 1];
    return w;
}

static void F(narrow_loop)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                           const REAL *x, const REAL *y, const int64_t *order, int64_t n_order,
                           int64_t start, int64_t nsteps, int64_t bs, int acc_mode, int t, int T,
                           fnn_team *tm, double *loss_out, int64_t *corr_out)
{
    double loss_sum = 0;
    int64_t corr = 0;
    F(optc) o;
    for (int64_t s = 0; s < nsteps; s++) {
        const int64_t lo = start + s * bs;
        const int64_t hi = lo + bs < n_order ? lo + bs : n_order;
        const int B = (int)(hi - lo);
        const int64_t *rows = order + lo;
        const REAL invB = (REAL)(1.0 / B);
        int64_t b0, b1;
        F(split)(B, t, T, &b0, &b1);
        /* prefetch reach: into the next step only when this thread continues there */
        const int64_t nnext = T == 1 ? (s + 1 < nsteps ? n_order - lo : B) : b1;
        F(phaseA)(net, ws, P, x, y, rows, (int)b0, (int)b1, nnext, invB, acc_mode);
        F(optc_init)(&o, op, op->t + s + 1);
        if (t == 0 && ++ws->epoch == 0) {
            memset(ws->stamp, 0, sizeof(uint32_t) * (size_t)net->n[0]);
            ws->epoch = 1;
        }
        if (T > 1) fnn_team_barrier(tm, -1);
        F(phaseB)(net, ws, P, x, rows, B, &o, t, T);
        if (t == 0) {
            for (int b = 0; b < B; b++) {
                loss_sum += ws->lossb[b];
                corr += ws->corb[b];
            }
        }
        if (T > 1) fnn_team_barrier(tm, -1);
    }
    if (t == 0) {
        *loss_out = loss_sum;
        *corr_out = corr;
    }
}

static double F(train_narrow)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                              const REAL *x, const REAL *y, const int64_t *order, int64_t n_order,
                              int64_t start, int64_t nsteps, int64_t bs, int acc_mode, int T,
                              int64_t *correct)
{
    double loss_sum = 0;
    int64_t corr = 0;
    if (T <= 1) {
        F(narrow_loop)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode, 0, 1,
                       NULL, &loss_sum, &corr);
    } else {
#ifdef _OPENMP
        fnn_team tm = {0};
        tm.T = T;
#pragma omp parallel num_threads(T)
        {
            const int nt = omp_get_num_threads();
            if (nt == T) {
                F(narrow_loop)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                               omp_get_thread_num(), T, &tm, &loss_sum, &corr);
            } else if (omp_get_thread_num() == 0) {   /* got fewer threads than asked */
                F(narrow_loop)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                               0, 1, NULL, &loss_sum, &corr);
            }
        }
#endif
    }
    *correct = corr;
    return loss_sum;
}

/* ---- the batched path (wide layers: BLAS gemm) --------------------------------------------- */

static int F(use_gemm)(const fnn_net *net, int l, int B)
{
    const int a = net->n[l], b = net->n[l + 1];
    return GEMM != NULL && B >= fnn_tune.gemm_min_b && (a < b ? a : b) >= fnn_tune.gemm_min;
}

#if IS_F32 && VBYTES == 64 && defined(__AVX512F__)
#define FNN_XGEMM_KMAX 512   /* 64 KB of stack for the packed panel */
/* AVX-512 sgemm for row-major C (m x n) = op(A) (m x k) op(B) (k x n), n a multiple of 32:
 * scipy's OpenBLAS runs its AVX2 (Haswell) kernel on AVX-512 machines. op(B) is packed in
 * k x 32 panels (on the stack: k <= FNN_XGEMM_KMAX); 8 x 32 blocks of C accumulate in 16
 * registers over the whole k (each C element: one sum in k order, whatever m, n or the
 * caller's row split). ta: A stored transposed (element (i, p) at A[p * lda + i]); tb: same
 * for B. */
static void F(xgemm)(int ta, int tb, int m, int n, int k, const float *restrict A, int lda,
                     const float *restrict Bm, int ldb, float *restrict C, int ldc)
{
    float pk[FNN_XGEMM_KMAX * 32] __attribute__((aligned(64)));
    for (int j0 = 0; j0 < n; j0 += 32) {
        if (!tb) {
            for (int p = 0; p < k; p++) {
                const float *b = Bm + (int64_t)p * ldb + j0;
                _mm512_store_ps(pk + p * 32, _mm512_loadu_ps(b));
                _mm512_store_ps(pk + p * 32 + 16, _mm512_loadu_ps(b + 16));
            }
        } else {
            for (int jj = 0; jj < 32; jj++) {
                const float *b = Bm + (int64_t)(j0 + jj) * ldb;
                for (int p = 0; p < k; p++) pk[p * 32 + jj] = b[p];
            }
        }
        int i0 = 0;
        for (; i0 + 8 <= m; i0 += 8) {
            __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
                   c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00,
                   c60 = c00, c61 = c00, c70 = c00, c71 = c00;
            const int64_t rs = ta ? 1 : lda, ps = ta ? lda : 1;   /* A(i, p) strides */
            const float *a = A + (int64_t)i0 * rs;
            for (int p = 0; p < k; p++, a += ps) {
                const __m512 b0 = _mm512_load_ps(pk + p * 32), b1 = _mm512_load_ps(pk + p * 32 + 16);
                __m512 av;
#define FNN_XG_ROW(r, x0, x1)                                                                   \
                av = _mm512_set1_ps(a[(r) * rs]);                                               \
                x0 = _mm512_fmadd_ps(av, b0, x0);                                               \
                x1 = _mm512_fmadd_ps(av, b1, x1);
                FNN_XG_ROW(0, c00, c01)
                FNN_XG_ROW(1, c10, c11)
                FNN_XG_ROW(2, c20, c21)
                FNN_XG_ROW(3, c30, c31)
                FNN_XG_ROW(4, c40, c41)
                FNN_XG_ROW(5, c50, c51)
                FNN_XG_ROW(6, c60, c61)
                FNN_XG_ROW(7, c70, c71)
#undef FNN_XG_ROW
            }
            float *c = C + (int64_t)i0 * ldc + j0;
            _mm512_storeu_ps(c, c00); _mm512_storeu_ps(c + 16, c01); c += ldc;
            _mm512_storeu_ps(c, c10); _mm512_storeu_ps(c + 16, c11); c += ldc;
            _mm512_storeu_ps(c, c20); _mm512_storeu_ps(c + 16, c21); c += ldc;
            _mm512_storeu_ps(c, c30); _mm512_storeu_ps(c + 16, c31); c += ldc;
            _mm512_storeu_ps(c, c40); _mm512_storeu_ps(c + 16, c41); c += ldc;
            _mm512_storeu_ps(c, c50); _mm512_storeu_ps(c + 16, c51); c += ldc;
            _mm512_storeu_ps(c, c60); _mm512_storeu_ps(c + 16, c61); c += ldc;
            _mm512_storeu_ps(c, c70); _mm512_storeu_ps(c + 16, c71);
        }
        for (; i0 < m; i0++) {   /* row tail: the same sums, one row at a time */
            __m512 x0 = _mm512_setzero_ps(), x1 = x0;
            for (int p = 0; p < k; p++) {
                const __m512 av = _mm512_set1_ps(ta ? A[(int64_t)p * lda + i0] : A[(int64_t)i0 * lda + p]);
                x0 = _mm512_fmadd_ps(av, _mm512_load_ps(pk + p * 32), x0);
                x1 = _mm512_fmadd_ps(av, _mm512_load_ps(pk + p * 32 + 16), x1);
            }
            _mm512_storeu_ps(C + (int64_t)i0 * ldc + j0, x0);
            _mm512_storeu_ps(C + (int64_t)i0 * ldc + j0 + 16, x1);
        }
    }
}
#endif

/* row-major C (m x n, ldc) = op(A) op(B) through column-major BLAS: C^T = op(B)^T op(A)^T */
static void F(gemm_rm)(char ta, char tb, int m, int n, int k, const REAL *A, int lda,
                       const REAL *Bm, int ldb, REAL *C, int ldc)
{
#if IS_F32 && VBYTES == 64 && defined(__AVX512F__)
    if (fnn_tune.own_gemm && n % 32 == 0 && k <= FNN_XGEMM_KMAX) {
        F(xgemm)(ta == 'T', tb == 'T', m, n, k, A, lda, Bm, ldb, C, ldc);
        return;
    }
#endif
    REAL one = 1, zero = 0;
    GEMM(&tb, &ta, &n, &m, &k, &one, (REAL *)Bm, &ldb, (REAL *)A, &lda, &zero, C, &ldc);
}

/* Columns per block for the sparse layer-0 passes: n_rows x block stays within ~192 KB (L2). */
static inline int F(colblock)(int n_rows, int n_cols)
{
    if (fnn_tune.colblock_kb <= 0) return n_cols;
    int cb = (int)((fnn_tune.colblock_kb * 1024LL) / ((int64_t)n_rows * (int64_t)sizeof(REAL)));
    cb = cb / (4 * VW) * (4 * VW);
    if (cb < 4 * VW) cb = 4 * VW;
    return cb >= n_cols ? n_cols : cb;
}

/* Forward rows [b0, b1) of a batch of B (rows == NULL: x rows b0..b1-1; the gemm-or-not choice
 * depends on B only, so any row split computes the same way). Output layer into out (row b at
 * out + b * n[L]) if given. */
static void F(bfwd_rows)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x,
                         const int64_t *rows, int b0, int b1, int B, REAL *out, int sparse0)
{
    const int L = net->L, n0 = net->n[0], nb = b1 - b0;
    if (nb <= 0) return;
    for (int l = 0; l < L; l++) {
        const int nin = net->n[l], nout = net->n[l + 1];
        REAL *Z = (l == L - 1 && out) ? out : (REAL *)ws->a[l + 1];
        const int ldz = (l == L - 1 && out) ? nout : ws->ld[l + 1];
        const REAL *W = P + net->woff[l];
        if (l == 0 && sparse0) {
            for (int b = b0; b < b1; b++) {
                const REAL *xr = x + (rows ? rows[b] : b) * (int64_t)n0;
                ws->nnz[b] = F(nzbuild)(xr, n0, ws->nzi + (int64_t)b * ws->nzld);
            }
            /* column blocks of W small enough to stay in L2 across the whole batch */
            const int cb = F(colblock)(n0, nout);
            for (int j0 = 0; j0 < nout; j0 += cb) {
                const int nc = nout - j0 < cb ? nout - j0 : cb;
                for (int b = b0; b < b1; b++) {
                    const REAL *xr = x + (rows ? rows[b] : b) * (int64_t)n0;
                    F(mvs)(Z + (int64_t)b * ldz + j0, nc, W + j0, nout, xr,
                           ws->nzi + (int64_t)b * ws->nzld, ws->nnz[b], Z != out || j0 + nc < nout);
                }
            }
        } else {
            const REAL *A;
            int lda;
            if (l == 0) {
                if (rows) {
                    REAL *A0 = (REAL *)ws->a[0];
                    for (int b = b0; b < b1; b++)
                        memcpy(A0 + (int64_t)b * ws->ld[0], x + rows[b] * n0, sizeof(REAL) * n0);
                    A = A0;
                    lda = ws->ld[0];
                } else {
                    A = x;
                    lda = n0;
                }
            } else {
                A = (const REAL *)ws->a[l];
                lda = ws->ld[l];
            }
            if (F(use_gemm)(net, l, B)) {
                F(gemm_rm)('N', 'N', nb, nout, nin, A + (int64_t)b0 * lda, lda, W, nout,
                           Z + (int64_t)b0 * ldz, ldz);
            } else {
                for (int b = b0; b < b1; b++)
                    F(mv)(Z + (int64_t)b * ldz, nout, W, nout, A + (int64_t)b * lda, 1, nin, Z != out);
            }
        }
        for (int b = b0; b < b1; b++)
            F(bias_act)(net->act[l], Z + (int64_t)b * ldz, P + net->boff[l], nout);
    }
}

static void F(bfwd)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x,
                    const int64_t *rows, int B, REAL *out, int sparse0)
{
    F(bfwd_rows)(net, ws, P, x, rows, 0, B, B, out, sparse0);
}

/* Loss, accuracy and the full gradient G of the batch-mean loss (after bfwd with out == NULL). */
static double F(bbwd)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x,
                      const REAL *y, const int64_t *rows, int B, REAL *G, int sparse0,
                      int acc_mode, int64_t *correct)
{
    const int L = net->L, n0 = net->n[0], nL = net->n[L];
    const REAL invB = (REAL)(1.0 / B);
    double loss = 0;
    int64_t corr = 0;
    for (int b = 0; b < B; b++) {
        int64_t c;
        loss += F(head)(net, F(arow)(ws, L, b), y + (rows ? rows[b] : b) * (int64_t)nL,
                        F(drow)(ws, L, b), invB, acc_mode, &c);
        corr += c;
    }
    for (int l = L - 1; l >= 0; l--) {
        const int nin = net->n[l], nout = net->n[l + 1];
        const REAL *D = (const REAL *)ws->d[l + 1];
        const int ldd = ws->ld[l + 1];
        REAL *GW = G + net->woff[l];
        const REAL *W = P + net->woff[l];
        if (l == 0 && sparse0) {
            /* accumulate in the padded g0 rows, then copy out (no store-buffer aliasing) */
            REAL *G0 = (REAL *)ws->g0;
            const int ldg = ws->ldg0;
            memset(G0, 0, sizeof(REAL) * (size_t)nin * ldg);
            const int cb = F(colblock)(n0, nout);
            for (int j0 = 0; j0 < nout; j0 += cb) {
                const int nc = nout - j0 < cb ? nout - j0 : cb;
                for (int b = 0; b < B; b++) {
                    const REAL *xr = x + (rows ? rows[b] : b) * (int64_t)n0;
                    const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
                    const REAL *db = D + (int64_t)b * ldd + j0;
                    REAL *Gj = G0 + j0;
                    for (int k = 0; k < ws->nnz[b]; k++)
                        F(axpy)(Gj + (int64_t)nzi[k] * ldg, xr[nzi[k]], db, nc);
                }
            }
            if (GW != G0)
                for (int i = 0; i < nin; i++)
                    memcpy(GW + (int64_t)i * nout, G0 + (int64_t)i * ldg, sizeof(REAL) * nout);
        } else {
            const REAL *A;
            int lda;
            if (l == 0) {
                A = rows ? (const REAL *)ws->a[0] : x;
                lda = rows ? ws->ld[0] : n0;
            } else {
                A = (const REAL *)ws->a[l];
                lda = ws->ld[l];
            }
            if (F(use_gemm)(net, l, B)) {
                F(gemm_rm)('T', 'N', nin, nout, B, A, lda, D, ldd, GW, nout);
            } else {
                for (int i = 0; i < nin; i++) F(mv)(GW + (int64_t)i * nout, nout, D, ldd, A + i, lda, B, 0);
            }
        }
        F(mv)(G + net->boff[l], nout, D, ldd, (const REAL *)ws->ones, 1, B, 0);
        if (l > 0) {
            REAL *Dl = (REAL *)ws->d[l];
            const int ldl = ws->ld[l];
            if (F(use_gemm)(net, l, B)) {
                F(gemm_rm)('N', 'T', B, nin, nout, D, ldd, W, nout, Dl, ldl);
            } else {
                for (int b = 0; b < B; b++)
                    F(dots)(Dl + (int64_t)b * ldl, W, nin, nout, D + (int64_t)b * ldd, nout);
            }
            for (int b = 0; b < B; b++)
                F(act_bwd)(net->act[l - 1], F(arow)(ws, l, b), Dl + (int64_t)b * ldl, nin);
        }
    }
    *correct = corr;
    return loss;
}

/* Batched step, phase A (rows [b0, b1) of the batch; threads split the samples): forward,
 * per-sample loss/accuracy, output delta, deltas of every layer >= 1. Row-local throughout. */
static void F(bphaseA)(const fnn_net *net, fnn_ws *ws, const REAL *P, const REAL *x,
                       const REAL *y, const int64_t *rows, int b0, int b1, int B, REAL invB,
                       int acc_mode, int sparse0)
{
    const int L = net->L, nL = net->n[L], nb = b1 - b0;
    if (nb <= 0) return;
    F(bfwd_rows)(net, ws, P, x, rows, b0, b1, B, NULL, sparse0);
    for (int b = b0; b < b1; b++)
        ws->lossb[b] = F(head)(net, F(arow)(ws, L, b), y + rows[b] * (int64_t)nL,
                               F(drow)(ws, L, b), invB, acc_mode, &ws->corb[b]);
    for (int l = L - 1; l >= 1; l--) {
        const int nin = net->n[l], nout = net->n[l + 1];
        const REAL *D = (const REAL *)ws->d[l + 1];
        const int ldd = ws->ld[l + 1];
        REAL *Dl = (REAL *)ws->d[l];
        const int ldl = ws->ld[l];
        const REAL *W = P + net->woff[l];
        if (F(use_gemm)(net, l, B)) {
            F(gemm_rm)('N', 'T', nb, nin, nout, D + (int64_t)b0 * ldd, ldd, W, nout,
                       Dl + (int64_t)b0 * ldl, ldl);
        } else {
            for (int b = b0; b < b1; b++)
                F(dots)(Dl + (int64_t)b * ldl, W, nin, nout, D + (int64_t)b * ldd, nout);
        }
        for (int b = b0; b < b1; b++)
            F(act_bwd)(net->act[l - 1], F(arow)(ws, l, b), Dl + (int64_t)b * ldl, nin);
    }
}

/* Batched step, phase B task: rows [r0, r1) of layer l's parameters (rows < n[l] are weights
 * of input unit i, row n[l] is the bias): gradient rows over the whole batch, then the
 * optimiser update of those rows. The task list is fixed by the network and the batch, never
 * by the thread count, and a task only reads the whole batch's deltas and writes its own rows:
 * any number of threads gives the same bits. c: the task's index among layer l's chunks. */
static void F(btask)(const fnn_net *net, fnn_ws *ws, REAL *P, const REAL *x,
                     const int64_t *rows, int B, const F(optc) *o, int tid, int sparse0,
                     int l, int64_t r0, int64_t r1, int c)
{
    const int n0 = net->n[0];
    const int nostate = o->kind == FNN_SGD && o->wd == 0;   /* zero gradient rows don't move */
    REAL *g = (REAL *)ws->tmp + (int64_t)tid * ws->tmpld;
    REAL *G = (REAL *)ws->grad;
    const int T = 2;   /* row ranges are partial: always locate them */
    {
        const int nin = net->n[l], nout = net->n[l + 1];
        const int64_t w1 = r1 < nin ? r1 : nin;   /* weight rows [r0, w1), bias if r1 > nin */
        const REAL *D = (const REAL *)ws->d[l + 1];
        const int ldd = ws->ld[l + 1];
        if (l == 0 && sparse0) {
            /* the batch's nonzeros of input rows [r0, w1) regrouped by input row (counting
             * sort, samples in batch order); each gradient row is then a register-accumulated
             * sum of delta rows (no scatter into a gradient matrix), updated at once */
            int32_t *st = ws->touched + r0 + c;        /* w1 - r0 + 1 row starts */
            const int nr = (int)(w1 - r0);
            int64_t base = 0;
            for (int i = 0; i <= nr; i++) st[i] = 0;
            for (int b = 0; b < B; b++) {
                const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
                const int nnz = ws->nnz[b];
                const int k0 = T == 1 ? 0 : F(lower_bound)(nzi, nnz, (int32_t)r0);
                const int k1 = T == 1 ? nnz : F(lower_bound)(nzi, nnz, (int32_t)w1);
                base += k0;
                for (int k = k0; k < k1; k++) st[nzi[k] - r0 + 1]++;
            }
            for (int i = 0; i < nr; i++) st[i + 1] += st[i];
            int32_t *cb_ = ws->cscb + base;
            REAL *cx = (REAL *)ws->cscx + base;
            for (int b = 0; b < B; b++) {   /* st[i] ends as the start of row i + 1 */
                const int32_t *nzi = ws->nzi + (int64_t)b * ws->nzld;
                const int nnz = ws->nnz[b];
                const REAL *xr = x + rows[b] * n0;
                const int k0 = T == 1 ? 0 : F(lower_bound)(nzi, nnz, (int32_t)r0);
                const int k1 = T == 1 ? nnz : F(lower_bound)(nzi, nnz, (int32_t)w1);
                for (int k = k0; k < k1; k++) {
                    const int i = nzi[k];
                    const int q = st[i - r0]++;
                    cb_[q] = b;
                    cx[q] = xr[i];
                }
            }
            for (int i = nr; i > 0; i--) st[i] = st[i - 1];
            st[0] = 0;
            const int rs = F(row_stride)(nout);
            FNN_FOR_ROWS(i, r0, w1, rs) {
                const int q0 = st[i - r0], q1 = st[i - r0 + 1];
                if (q0 == q1 && nostate) continue;
                F(mvc)(g, nout, D, ldd, cx + q0, cb_ + q0, q1 - q0, 1);
                F(upd)(P, net->woff[0] + i * nout, g, nout, o, 1);
            }
        } else if (w1 > r0) {
            const REAL *A;
            int lda;
            if (l == 0) {
                A = (const REAL *)ws->a[0];
                lda = ws->ld[0];
            } else {
                A = (const REAL *)ws->a[l];
                lda = ws->ld[l];
            }
            REAL *GW = G + net->woff[l];
            if (F(use_gemm)(net, l, B)) {
                F(gemm_rm)('T', 'N', (int)(w1 - r0), nout, B, A + r0, lda, D, ldd,
                           GW + r0 * nout, nout);
                F(upd)(P, net->woff[l] + r0 * nout, GW + r0 * nout, (w1 - r0) * nout, o, 1);
            } else {
                const int rs = F(row_stride)(nout);
                FNN_FOR_ROWS(i, r0, w1, rs) {
                    F(mv)(g, nout, D, ldd, A + i, lda, B, 1);
                    F(upd)(P, net->woff[l] + i * nout, g, nout, o, 1);
                }
            }
        }
        if (r1 > nin) {
            F(mv)(g, nout, D, ldd, (const REAL *)ws->ones, 1, B, 1);
            F(upd)(P, net->boff[l], g, nout, o, 0);
        }
    }
}

typedef struct { int l, c; int64_t r0, r1; } F(btask_t);

/* The fixed work split of a batched step (independent of the thread count). */
static int F(bplan)(const fnn_net *net, int B, int chunked, int *nA, F(btask_t) *tk, int maxtk)
{
    int n = 0;
    /* gemm work in 2 pieces only: each piece packs the whole other operand again (4 pieces
     * cost 10% on one thread for wide-512, 2 about half that); 2 is what this 2-core target
     * needs, and the plan must not depend on the thread count */
    *nA = chunked ? FNN_TUNE_BATCH_CHUNKS : 1;
    if (*nA > B) *nA = B;
    for (int l = 0; l < net->L; l++) {
        const int nin = net->n[l];
        /* weight-row chunks of the costly layers (sparse layer 0: up to 8, per-row kernels: 4,
         * gemm: 2), the bias row alone */
        int k = 1;
        if (chunked) {
            const int kmax = l == 0 && fnn_tune.sparse ? FNN_TUNE_TASKS_SPARSE0
                             : (F(use_gemm)(net, l, B) ? FNN_TUNE_TASKS_GEMM : FNN_TUNE_TASKS_ROWS);
            k = (int)(((int64_t)nin * net->n[l + 1] * B) / FNN_TUNE_TASK_WORK);
            k = k < 1 ? 1 : (k > kmax ? kmax : k);
            if (k > nin) k = nin;
        }
        for (int c = 0; c < k && n < maxtk; c++) {
            int64_t r0, r1;
            F(split)(nin, c, k, &r0, &r1);
            tk[n].l = l; tk[n].c = c; tk[n].r0 = r0; tk[n].r1 = r1;
            n++;
        }
        if (n < maxtk) {
            tk[n].l = l; tk[n].c = k; tk[n].r0 = nin; tk[n].r1 = nin + 1;
            n++;
        }
    }
    return n;
}

static void F(batch_loop)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                          const REAL *x, const REAL *y, const int64_t *order, int64_t n_order,
                          int64_t start, int64_t nsteps, int64_t bs, int acc_mode, int chunked,
                          fnn_team *tm, int tid, double *loss_out, int64_t *corr_out)
{
    double loss_sum = 0;
    int64_t corr = 0;
    F(optc) o;
    const int sparse0 = fnn_tune.sparse;
    F(btask_t) tk[FNN_MAXL * 10];
    int nA = 1, ntk = 0, Bplan = -1;
    for (int64_t s = 0; s < nsteps; s++) {
        const int64_t lo = start + s * bs;
        const int64_t hi = lo + bs < n_order ? lo + bs : n_order;
        const int B = (int)(hi - lo);
        const int64_t *rows = order + lo;
        if (B != Bplan) {
            ntk = F(bplan)(net, B, chunked, &nA, tk, FNN_MAXL * 10);
            Bplan = B;
        }
        /* phase A: sample chunks; phase B: parameter-row tasks (taken dynamically) */
        for (int c = tm ? fnn_team_next(tm, 0) : 0; c < nA; c = tm ? fnn_team_next(tm, 0) : c + 1) {
            int64_t b0, b1;
            F(split)(B, c, nA, &b0, &b1);
            F(bphaseA)(net, ws, P, x, y, rows, (int)b0, (int)b1, B, (REAL)(1.0 / B), acc_mode,
                       sparse0);
        }
        if (tm) fnn_team_barrier(tm, 0);
        F(optc_init)(&o, op, op->t + s + 1);
        if (tid == 0) {
            for (int b = 0; b < B; b++) {
                loss_sum += ws->lossb[b];
                corr += ws->corb[b];
            }
        }
        for (int k = tm ? fnn_team_next(tm, 1) : 0; k < ntk; k = tm ? fnn_team_next(tm, 1) : k + 1)
            F(btask)(net, ws, P, x, rows, B, &o, tid, sparse0, tk[k].l, tk[k].r0, tk[k].r1,
                     tk[k].c);
        if (tm) fnn_team_barrier(tm, 1);
    }
    if (tid == 0) {
        *loss_out = loss_sum;
        *corr_out = corr;
    }
}

static double F(train_batch)(const fnn_net *net, fnn_ws *ws, REAL *P, const fnn_opt *op,
                             const REAL *x, const REAL *y, const int64_t *order, int64_t n_order,
                             int64_t start, int64_t nsteps, int64_t bs, int acc_mode, int T,
                             int chunked, int64_t *correct)
{
    double loss_sum = 0;
    int64_t corr = 0;
    int saved[FNN_MAXBLAS];
    fnn_blas_hold1(saved);   /* our threads, each with a one-thread BLAS */
    if (T <= 1) {
        F(batch_loop)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                      chunked, NULL, 0, &loss_sum, &corr);
    } else {
#ifdef _OPENMP
        fnn_team tm = {0};
#pragma omp parallel num_threads(T)
        {
#pragma omp single
            tm.T = omp_get_num_threads();   /* implicit barrier: everyone sees the team size */
            F(batch_loop)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                          chunked, &tm, omp_get_thread_num(), &loss_sum, &corr);
        }
#endif
    }
    fnn_blas_restore(saved);
    *correct = corr;
    return loss_sum;
}

/* ---- entry points -------------------------------------------------------------------------- */

static int F(is_narrow)(const fnn_net *net) { return net->maxn <= fnn_tune.narrow_max; }

static double F(train)(const fnn_net *net, fnn_ws *ws, void *Pv, const fnn_opt *op,
                       const void *xv, const void *yv, int64_t N, const int64_t *order,
                       int64_t n_order, int64_t start, int64_t nsteps, int64_t bs, int acc_mode,
                       int nthreads, int64_t *correct, int *status)
{
    REAL *P = (REAL *)Pv;
    const REAL *x = (const REAL *)xv, *y = (const REAL *)yv;
    *status = 0;
    *correct = 0;
    if (nsteps <= 0) return 0.0;
    int64_t end = start + nsteps * bs;
    if (end > n_order) end = n_order;
    for (int64_t i = start; i < end; i++)
        if (order[i] < 0 || order[i] >= N) {
            *status = -1;
            return 0.0;
        }
    if (F(is_narrow)(net)) {
        int T = nthreads < ws->T ? nthreads : ws->T;
        if (T < 1) T = 1;
        if (bs * F(work_per_sample)(net) < fnn_tune.par_min_work || bs < 2 * T) T = 1;
#ifndef _OPENMP
        T = 1;
#endif
        return F(train_narrow)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode,
                               T, correct);
    }
    /* big enough steps are cut in fixed chunks (same bits for any thread count) that threads
     * take dynamically; smaller ones run whole on one thread */
    const int chunked = bs * F(work_per_sample)(net) >= fnn_tune.par_min_work_batch;
    int T = nthreads < ws->T ? nthreads : ws->T;
    if (T < 1 || !chunked) T = 1;
#ifndef _OPENMP
    T = 1;
#endif
    return F(train_batch)(net, ws, P, op, x, y, order, n_order, start, nsteps, bs, acc_mode, T,
                          chunked, correct);
}

static void F(predict)(const fnn_net *net, fnn_ws *ws, const void *Pv, const void *xv, void *outv,
                       int64_t N, int nthreads)
{
    const REAL *P = (const REAL *)Pv, *x = (const REAL *)xv;
    REAL *out = (REAL *)outv;
    const int n0 = net->n[0], nL = net->n[net->L];
    if (N == 1) {
        F(fwd1)(net, ws, P, x, 0, out, 0);
        return;
    }
    int T = nthreads < ws->T ? nthreads : ws->T;
    if (T > ws->B) T = ws->B;
    /* rows are independent and handed out dynamically (no per-step barriers as in training),
     * so a few million MACs already pay for the second thread */
    if (T < 1 || N * F(work_per_sample)(net) < (int64_t)fnn_tune.par_min_work / FNN_TUNE_PREDICT_PAR_DIVISOR) T = 1;
#ifndef _OPENMP
    T = 1;
#endif
    if (F(is_narrow)(net) || N < fnn_tune.gemm_min_b) {
        /* per-sample kernels; one parallel region for the whole call, rows handed out in
         * blocks (dynamic: a thread that starts late just takes fewer blocks). Each thread
         * uses workspace row t as its scratch. */
        if (T == 1) {
            for (int64_t i = 0; i < N; i++) {
                if (i + 1 < N) F(prefetch_row)(x + (i + 1) * n0, n0);
                F(fwd1)(net, ws, P, x + i * n0, 0, out + i * nL, 0);
            }
            return;
        }
#ifdef _OPENMP
#pragma omp parallel for num_threads(T) schedule(dynamic, FNN_TUNE_PREDICT_ROWS_PER_TAKE)
        for (int64_t i = 0; i < N; i++)
            F(fwd1)(net, ws, P, x + i * n0, omp_get_thread_num(), out + i * nL, 0);
#endif
        return;
    }
    /* gemm path: thread t owns workspace rows [w0, w1) and x rows [i0, i1), and runs them
     * through in pieces of w1 - w0 rows, each with a one-thread BLAS */
    int saved[FNN_MAXBLAS];
    fnn_blas_hold1(saved);
#ifdef _OPENMP
#pragma omp parallel num_threads(T) if (T > 1)
#endif
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int t = 0, nt = 1;
#endif
        int64_t w0, w1, i0, i1;
        F(split)(ws->B, t, nt, &w0, &w1);
        F(split)(N, t, nt, &i0, &i1);
        const int cap = (int)(w1 - w0);
        for (int64_t lo = i0; lo < i1 && cap > 0; lo += cap) {
            const int nb = (int)(i1 - lo < cap ? i1 - lo : cap);
            /* workspace row w0 + k holds x row lo + k */
            F(bfwd_rows)(net, ws, P, x + (lo - w0) * n0, NULL, (int)w0, (int)w0 + nb, nb,
                         out + (lo - w0) * nL, fnn_tune.sparse);
        }
    }
    fnn_blas_restore(saved);
}

static double F(loss_grad)(const fnn_net *net, fnn_ws *ws, const void *Pv, const void *xv,
                           const void *yv, int64_t N, void *gradv)
{
    const REAL *P = (const REAL *)Pv, *x = (const REAL *)xv, *y = (const REAL *)yv;
    int64_t c;
    F(bfwd)(net, ws, P, x, NULL, (int)N, NULL, fnn_tune.sparse);
    return F(bbwd)(net, ws, P, x, y, NULL, (int)N, (REAL *)gradv, fnn_tune.sparse, FNN_ACC_NONE, &c) / (double)N;
}

/* max |x| over n values in one pass (the Model API's input check, ~memory speed). It compares
 * the bits with the sign cleared as unsigned integers: for non-negative floats that is the value
 * order, and inf and NaN sort above every finite value, so the result is NaN or inf exactly when
 * some value is. An integer max is exact and order-free, so it vectorises; 4 vector accumulators
 * hide the compare-select latency. */
static double F(abs_peak)(const void *xv, int64_t n)
{
#if IS_F32
    typedef uint32_t bits;
    const bits mask = 0x7fffffffu;
#else
    typedef uint64_t bits;
    const bits mask = 0x7fffffffffffffffull;
#endif
    enum { LANES = 4 * VW };
    const bits *b = (const bits *)xv;
    bits m[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            const bits v = b[i + k] & mask;
            m[k] = v > m[k] ? v : m[k];
        }
    for (; i < n; i++) {
        const bits v = b[i] & mask;
        m[0] = v > m[0] ? v : m[0];
    }
    for (int k = 1; k < LANES; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
    REAL r;
    memcpy(&r, &m[0], sizeof r);
    return (double)r;
}

const fnn_kernels F(kernels) = {F(train), F(predict), F(loss_grad), F(abs_peak), FNN_ISA_NAME};

#undef F
#undef V
#undef VU
#undef VW
#undef EXP
#undef LOG
#undef TANH
#undef SQRT
#undef TINY
#undef GEMM
#undef FNN_MV_BODY
#undef FNN_CAT
#undef FNN_CAT2
