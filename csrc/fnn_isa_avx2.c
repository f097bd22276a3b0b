/* AVX2+FMA build of the kernels, selected at run time when the CPU has it. */
#include "fnn.h"
#if FNN_X86_MULTI
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,prfchw")
#define VBYTES 32
#define FNN_ISA avx2
#define FNN_ISA_NAME "avx2"
#include "fnn_isa_common.h"
#endif
