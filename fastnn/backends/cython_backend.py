"""The Cython backend: C kernels (csrc/) behind the fastnn._kernels extension.

Same maths as numpy_backend (the specification). Narrow networks run a fused per-sample step
(sparse first layer: zero inputs are skipped; optimiser update fused with the gradient rows);
wide layers use gemm: our AVX-512 sgemm for float32 widths that are multiples of 32 (scipy's
OpenBLAS only runs its AVX2 kernel on AVX-512 CPUs), else BLAS (scipy.linalg.cython_blas),
held at one thread while our own threads split the batch (fixed pieces: the same bits for any
thread count). The kernels exist in baseline, AVX2 and AVX-512 builds chosen at import from the
CPU, so the default build is portable.
"""

from __future__ import annotations

import os
import sysconfig
import time
from pathlib import Path

import numpy as np

from .. import codes

try:
    from .. import _kernels
except ImportError as exc:   # say why: the install may have built without a C compiler
    _marker = Path(__file__).resolve().parent.parent / "_kernels_build_error.txt"
    if _marker.is_file():
        raise ImportError(_marker.read_text().strip() + "; reinstall fastnn with a C compiler "
                          "(gcc or clang) to get this backend") from exc
    raise

name = "cython"

# The contract functions are the extension's own def functions: no Python layer per call.
workspace = _kernels.workspace
predict = _kernels.predict
predict_one = _kernels.predict_one
train_steps = _kernels.train_steps
loss_grad = _kernels.loss_grad
# data-parallel training's split step (csrc/fnn_apply.h): gradient, then the update
grad_step = _kernels.grad_step
apply_update = _kernels.apply_update
apply_update_sum = _kernels.apply_update_sum
Workspace = _kernels.Workspace
abs_peak = _kernels.abs_peak   # one-pass input check for the Model API (via the registry)
# train_steps leaves max |x| of the rows it read in ws.input_peak (each row checked as the
# kernel reads it), so fit needs no separate pass over x (training.InputWatch)
checks_inputs_in_training = True


def predict_checked(net, x, out, ws):
    """predict, checking x for NaN/inf in the same pass; False if some value is not finite."""
    return _kernels.predict(net, x, out, ws, True)

if os.environ.get("FASTNN_ISA"):
    _kernels.select_isa(os.environ["FASTNN_ISA"])


def warmup(dtypes=("float32", "float64")):
    """Touch every kernel once (nothing compiles at run time here); returns seconds spent."""
    from ..network import Network

    t0 = time.perf_counter()
    for dt in dtypes:
        for sizes, acts in (((20, 8, 3), ("sigmoid", "softmax")),
                            ((20, 80, 3), ("relu", "softmax"))):
            net = Network(sizes, acts, "cross_entropy", dt)
            net.params[...] = 0.01
            x = np.zeros((16, sizes[0]), dtype=net.dtype)
            x[:, ::3] = 0.5
            y = np.zeros((16, sizes[-1]), dtype=net.dtype)
            y[:, 0] = 1
            ws = workspace(net, 16)
            out = np.empty_like(y)
            predict(net, x, out, ws)
            predict(net, x[:1], out[:1], ws)
            predict_one(net, x[0], out[0], ws)
            loss_grad(net, x, y, np.empty_like(net.params))

            class _Opt:
                kind, lr, momentum, weight_decay, t = codes.SGD, 0.0, 0.0, 0.0, 0
                beta1, beta2, eps = 0.9, 0.999, 1e-8
                m = v = np.zeros(0, dtype=net.dtype)

            train_steps(net, _Opt(), x, y, np.arange(16, dtype=np.int64), 0, 2, 8, ws,
                        codes.ACC_ARGMAX)
    return time.perf_counter() - t0


def build_info():
    """How the extension was built and what it runs: flags, OpenMP, SIMD build, BLAS."""
    blas = "scipy.linalg.cython_blas"
    try:
        import scipy

        cfg = scipy.show_config(mode="dicts")
        blas_name = cfg.get("Build Dependencies", {}).get("blas", {}).get("name")
        blas = f"{blas} ({blas_name}, scipy {scipy.__version__})"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return {
        "backend": name,
        "compiler": _kernels.compiler(),
        "cflags": _kernels.BUILD_CFLAGS,
        "python_cflags": sysconfig.get_config_var("CFLAGS"),
        "openmp": _kernels.have_openmp(),
        "simd": _kernels.isa(),
        "simd_builds": ["base", "avx2", "avx512"],
        "blas": blas,
        "blas_thread_control": list(_kernels.BLAS_CONTROLLED),
        "tuning": _kernels.get_tuning(),
    }
