/* AVX-512 (F/VL/BW/DQ) build of the kernels, selected at run time when the CPU has it. */
#include "fnn.h"
#if FNN_X86_MULTI
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2,popcnt,prfchw")
#define VBYTES 64
#define FNN_ISA avx512
#define FNN_ISA_NAME "avx512"
#include "fnn_isa_common.h"
#endif
