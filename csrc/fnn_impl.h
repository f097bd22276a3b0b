/* fnn_impl.h: the kernels, written once and instantiated per (dtype, ISA).
 *
 * Include with REAL (float/double), IS_F32 (1/0) and SFX (a name suffix) defined; the
 * including file sets the ISA with #pragma GCC target, so __AVX512F__/__AVX2__ select the
 * vector width and the masked-tail helpers. Vectors are GCC generic vectors, so the same
 * source is 512-bit in the AVX-512 build, 256-bit in the AVX2 build and SSE2 otherwise.
 *
 * Maths: exactly fastnn/backends/numpy_backend.py (see that file); summation orders differ.
 *
 * The parts, in include order (each one only uses the ones before it):
 *   fnn_vec.h      vector type, loads/stores with masked tails, exp, nonzero indices
 *   fnn_rows.h     weighted sums of matrix rows (the forward and gradient kernels), row dots
 *   fnn_act.h      activations, their derivatives, the loss head
 *   fnn_update.h   optimiser updates of parameter rows
 *   fnn_thin.h     the batched step's thin (output) layers: gradient rows, deltas
 *   fnn_sparse0.h  the batched step's layer-0 update, 4 input rows at a time
 *   fnn_fetch.h    input rows fetched ahead: prefetches, a second core reading ahead
 *   fnn_narrow.h   the fused per-sample training step (narrow networks)
 *   fnn_gemm.h     matrix products (BLAS, or our AVX-512 sgemm)
 *   fnn_quad.h     the batched layer-0 forward's quads: 4 samples at a time on AVX-512
 *   fnn_batch.h    the batched forward pass (layer 0 on the nonzero inputs), deltas
 *                  and full gradient (wide networks)
 *   fnn_batch_step.h  the batched training step: work plan, update tasks, thread team
 *   fnn_entry.h    train / predict / loss_grad / abs_peak and the kernel table
 *   fnn_apply.h    the step cut in two for data-parallel training: grad_step, apply_update
 *
 * Glossary (every part):
 *   NAME(x)    x with this instantiation's suffix: NAME(train) is train_f32_avx2 etc.
 *   VEC        a vector of LANES REALs; VEC_UNALIGNED the same at any REAL-aligned address
 *   LANES      REALs per vector (VBYTES / sizeof(REAL))
 *   B          rows (samples) in a batch; T threads; t (or tid) a thread's index
 *   n[l]       width of layer l (n[0]: inputs); a[l] activations, d[l] deltas dLoss/dz
 *   ld         row stride ("leading dimension") of a row-major matrix
 *   nnz, nzi   count and indices of an input row's nonzero entries (layer 0 is sparse)
 *   g0         the zero-between-steps layer-0 gradient rows (fnn.h, fnn_ws)
 *   axpy       y += c * x (BLAS name)
 */

#define FNN_CAT2(a, b) a##_##b
#define FNN_CAT(a, b) FNN_CAT2(a, b)
#define NAME(x) FNN_CAT(x, SFX)

/* For the big per-task kernels: inlined into their callers, they were compiled worse (2-3%
 * on wide-512, each time the inliner's choices shifted). */
#define FNN_NOINLINE static __attribute__((noinline))

#ifndef FNN_ALWAYS_INLINE
/* For helpers taking a constant mode: inlined at every call, the mode folds away. */
#define FNN_ALWAYS_INLINE static inline __attribute__((always_inline))
#endif

#define VEC NAME(vec)
#define VEC_UNALIGNED NAME(vecu)
typedef REAL VEC __attribute__((vector_size(VBYTES)));
typedef REAL VEC_UNALIGNED __attribute__((vector_size(VBYTES), aligned(sizeof(REAL)), may_alias));
#define LANES ((int)(VBYTES / sizeof(REAL)))

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

#include "fnn_vec.h"
#include "fnn_rows.h"
#include "fnn_act.h"
#include "fnn_update.h"
#include "fnn_thin.h"
#include "fnn_sparse0.h"
#include "fnn_fetch.h"
#include "fnn_narrow.h"
#include "fnn_gemm.h"
#include "fnn_quad.h"
#include "fnn_batch.h"
#include "fnn_batch_step.h"
#include "fnn_entry.h"
#include "fnn_apply.h"

#undef NAME
#undef VEC
#undef VEC_UNALIGNED
#undef LANES
#undef EXP
#undef LOG
#undef TANH
#undef SQRT
#undef TINY
#undef GEMM
#undef FNN_CAT
#undef FNN_CAT2
