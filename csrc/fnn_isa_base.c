/* Baseline build of the kernels (whatever the compiler flags allow: SSE2 on x86-64). */
#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX2__)
#define VBYTES 32
#else
#define VBYTES 16
#endif
#define FNN_ISA base
#if defined(__AVX512F__)
#define FNN_ISA_NAME "base (compiled for avx512)"
#elif defined(__AVX2__)
#define FNN_ISA_NAME "base (compiled for avx2)"
#else
#define FNN_ISA_NAME "base"
#endif
#include "fnn_isa_common.h"
