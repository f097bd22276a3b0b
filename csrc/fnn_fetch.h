/* fnn_fetch.h: input rows fetched ahead: prefetches, and a second core reading ahead for a
 * one-thread per-sample loop. Part of fnn_impl.h.
 *
 * The helper, why: a batch-1 step of a narrow network runs on one thread (a step is too small to share),
 * and its input rows are random rows of x (3 KB of MNIST, 49 lines each). When x is not in
 * the caches (the first pass of a call after the machine ran something else) the loop waits
 * on those lines: perf put half of its time on its own one-row-ahead prefetch (digits-16 b1,
 * Intel Xeon VM, 0.3 s idle between fit calls: 1.0M samples/s against 1.23M without the
 * pauses). One core has few line-fill buffers; the idle second core has its own. So the
 * second thread reads the rows FNN_TUNE_FETCH_AHEAD samples ahead of the first, which
 * publishes where it is. It only reads: the arithmetic and its bits do not change.
 */

/* A row wanted soon, into L2 (prefetcht1, fnn_tuning.h FNN_TUNE_PREFETCH_LOCALITY). */
static inline void NAME(prefetch_row)(const REAL *p, int n)
{
    const char *c = (const char *)p;
    for (size_t o = 0; o < (size_t)n * sizeof(REAL); o += 64)
        __builtin_prefetch(c + o, 0, FNN_TUNE_PREFETCH_LOCALITY);
}

#ifdef _OPENMP   /* (the second thread) */
/* Read every line of rows order[from .. end) of x (and their target rows of y), staying at
 * most FNN_TUNE_FETCH_AHEAD rows ahead of st->at. */
static void NAME(fetch_ahead)(fnn_fetch_state *st, const REAL *x, int n0, const REAL *y,
                              int nL, const int64_t *order, int64_t from, int64_t end)
{
    const size_t row_bytes = (size_t)n0 * sizeof(REAL);
    unsigned sink = 0;
    int spins = 0;
    for (int64_t next = from; next < end;) {
        if (__atomic_load_n(&st->done, __ATOMIC_RELAXED)) break;
        const int64_t at = __atomic_load_n(&st->at, __ATOMIC_RELAXED);
        if (next < at) next = at;   /* fell behind: those rows are read already */
        if (next >= at + FNN_TUNE_FETCH_AHEAD) {
            fnn_spin(&spins);   /* far enough ahead: wait */
            continue;
        }
        const unsigned char *c = (const unsigned char *)(x + order[next] * (int64_t)n0);
        for (size_t o = 0; o < row_bytes; o += 64) sink += c[o];
        sink += c[row_bytes - 1];
        sink += *(const unsigned char *)(y + order[next] * (int64_t)nL);
        next++;
    }
    __asm__ volatile("" : : "r"(sink));   /* keep the loads */
}
#endif
