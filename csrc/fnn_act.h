/* fnn_act.h: activations (forward, and the derivative in terms of the outputs), argmax and
 * the loss head (per-sample loss, correct count, output delta). Part of fnn_impl.h.
 *
 * Glossary: code, an activation code of fnn.h (FNN_SIGMOID ...); pad, a row padded to whole
 * vectors; invB, 1 / batch size (the loss is the batch mean).
 */

static void NAME(act_fwd)(int code, REAL *restrict z, int n)
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

/* z = act(z + b). float32 sigmoid and softmax (up to one vector) use the vector exp, the
 * row's last vector masked: the same values for a row whatever its padding, so a sample
 * predicted alone (per-sample kernels, padded rows) and in a batch (rows of the output
 * array) get the same bits; libm's expf on one path and the vector exp on the other differed
 * by up to 6e-8. */
static inline void NAME(bias_act)(int code, REAL *restrict z, const REAL *restrict b, int n)
{
#if IS_F32
    if (code == FNN_SIGMOID) {
        int j = 0;
        for (; j + LANES <= n; j += LANES) {
            const VEC v = NAME(ld)(z + j) + NAME(ld)(b + j);
            NAME(st)(z + j, (REAL)1 / ((REAL)1 + NAME(vexp)(-v)));
        }
        if (j < n) {
            const VEC v = NAME(ldn)(z + j, n - j) + NAME(ldn)(b + j, n - j);
            NAME(stn)(z + j, (REAL)1 / ((REAL)1 + NAME(vexp)(-v)), n - j);
        }
        return;
    }
    if (code == FNN_SOFTMAX && n <= LANES) {
        VEC v = NAME(ldn)(z, n) + NAME(ldn)(b, n);
        REAL mx = v[0];
        for (int j = 1; j < n; j++) mx = v[j] > mx ? v[j] : mx;
        VEC e = NAME(vexp)(v - mx);
        REAL s = 0;
        for (int j = 0; j < n; j++) s += e[j];
        NAME(stn)(z, e / s, n);
        return;
    }
#endif
    for (int j = 0; j < n; j++) z[j] += b[j];
    NAME(act_fwd)(code, z, n);
}

/* d *= f'(a), in terms of the outputs a */
static void NAME(act_bwd)(int code, const REAL *restrict a, REAL *restrict d, int n)
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

static inline int NAME(argmax)(const REAL *v, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* Per-sample loss (returned), correct count and output delta (a - y) * invB [* f'(a) for mse]. */
static double NAME(loss_head)(const fnn_net *net, const REAL *restrict a, const REAL *restrict y,
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
        *correct = NAME(argmax)(a, n) == NAME(argmax)(y, n);
    } else if (acc_mode == FNN_ACC_BINARY) {
        int64_t c = 0;
        for (int j = 0; j < n; j++) c += (a[j] > (REAL)0.5) == (y[j] > (REAL)0.5);
        *correct = c;
    } else {
        *correct = 0;
    }
    if (d) {
        for (int j = 0; j < n; j++) d[j] = (a[j] - y[j]) * invB;
        if (net->loss == FNN_MSE) NAME(act_bwd)(net->act[net->L - 1], a, d, n);
    }
    return (double)s;
}
