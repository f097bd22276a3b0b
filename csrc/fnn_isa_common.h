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
