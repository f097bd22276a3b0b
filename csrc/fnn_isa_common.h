/* Instantiates fnn_impl.h for float and double; the includer has set the ISA. */
#include <float.h>
#include <math.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fnn.h"
#include "fnn_tuning.h"

/* Fetch a line this core is about to write (PREFETCHW where the ISA has it, else nothing).
 * Why: a parameter row, activation or delta the other core read since this one last wrote
 * it is shared; the store must first invalidate the other copy, and the core's stores queue
 * behind that round trip. Fetched ahead with write intent, the invalidation overlaps work. A
 * read prefetch does not do it (fnn_sparse0.h). */
#if defined(__PRFCHW__)
#define FNN_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#else
#define FNN_PREFETCH_W(p) ((void)(p))
#endif

/* Wall seconds (the per-sample path's thread probe; it only runs with OpenMP threads). */
static inline double fnn_now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0.0;
#endif
}

#define FNN_SFX2(a, b) a##_##b
#define FNN_SFX(a, b) FNN_SFX2(a, b)

#define REAL float
#define IS_F32 1
#define SFX FNN_SFX(f32, FNN_ISA)
#include "fnn_impl.h"
#undef SFX
#undef IS_F32
#undef REAL

#define REAL double
#define IS_F32 0
#define SFX FNN_SFX(f64, FNN_ISA)
#include "fnn_impl.h"
#undef SFX
#undef IS_F32
#undef REAL
