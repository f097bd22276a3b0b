/* fnn_apply_api.h: the split training step of fnn_apply.h (gradient into a flat buffer, then
 * the update from it), one table per (dtype, ISA), and the table matching the kernel build in
 * use (fnn_dispatch.c's choice). Used by _kernels_apply.pxi and by fnn_apply.h.
 */
#ifndef FNN_APPLY_API_H
#define FNN_APPLY_API_H

#include "fnn.h"

typedef struct {
    /* G = scale * gradient of the summed loss of x rows rows[0..B); returns the loss sum and
     * the correct count; -1 in *status on a bad row index */
    double (*grad_step)(const fnn_net *, fnn_ws *, const void *P, const void *x, const void *y,
                        int64_t N, const int64_t *rows, int64_t B, double scale, void *G,
                        int acc_mode, int nthreads, int64_t *correct, int *status);
    /* one optimiser step of the parameters [lo, hi) from G[0] + ... + G[K-1] (summed in
     * that order); op->t is this step's number */
    void (*apply_update)(const fnn_net *, void *P, const fnn_opt *op, const void *const *G,
                         int K, int64_t lo, int64_t hi, int nthreads);
    const char *isa;
} fnn_apply_kernels;

extern const fnn_apply_kernels apply_kernels_f32_base, apply_kernels_f64_base;
extern const fnn_kernels kernels_f32_base, kernels_f64_base;
#if FNN_X86_MULTI
extern const fnn_apply_kernels apply_kernels_f32_avx2, apply_kernels_f64_avx2;
extern const fnn_apply_kernels apply_kernels_f32_avx512, apply_kernels_f64_avx512;
extern const fnn_kernels kernels_f32_avx2, kernels_f64_avx2;
extern const fnn_kernels kernels_f32_avx512, kernels_f64_avx512;
#endif

/* The table of the kernel build in use (fnn_select_isa may change it at any time). */
static inline const fnn_apply_kernels *fnn_apply_get(int is_f64)
{
    const fnn_kernels *k = fnn_get_kernels(is_f64);
#if FNN_X86_MULTI
    if (k == &kernels_f32_avx512 || k == &kernels_f64_avx512)
        return is_f64 ? &apply_kernels_f64_avx512 : &apply_kernels_f32_avx512;
    if (k == &kernels_f32_avx2 || k == &kernels_f64_avx2)
        return is_f64 ? &apply_kernels_f64_avx2 : &apply_kernels_f32_avx2;
#endif
    (void)k;
    return is_f64 ? &apply_kernels_f64_base : &apply_kernels_f32_base;
}

#endif
