# cython: language_level=3
"""fastnn._kernels: the Cython front of the C kernels in csrc/fnn_*.c.

Every def function here validates its arrays (type, dtype, shape, C-contiguity, sizes against the
network layout) before handing raw pointers to C with the GIL released, so a malformed array
raises a Python exception instead of letting a kernel read out of bounds.

The hot loops are C (csrc/fnn_impl.h), compiled three times (baseline, AVX2+FMA, AVX-512) and
picked at import by CPU detection, so the default build is portable and still uses the widest
vectors the machine has. Wide layers go through BLAS (scipy.linalg.cython_blas sgemm/dgemm).

One module in four files: the C declarations (_kernels_c_api.pxi), the checks and the
Workspace (_kernels_workspace.pxi), the backend contract (_kernels_contract.pxi), and here
the BLAS hookup, introspection and tuning.
"""

cimport numpy as cnp
from libc.stdint cimport int64_t, int32_t
from libc.string cimport memcpy
from libc.math cimport isfinite
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

import numpy as np

import importlib

_threads = importlib.import_module("fastnn.threads")
_get_num_threads = _threads.get_num_threads

cnp.import_array()

include "_kernels_c_api.pxi"


BUILD_CFLAGS = fnn_build_flags().decode()

# The compiled values of fnn.h's codes (tests/test_codes.py compares them with fastnn.codes).
C_CODES = {
    "IDENTITY": FNN_IDENTITY, "SIGMOID": FNN_SIGMOID, "RELU": FNN_RELU, "TANH": FNN_TANH,
    "LEAKY_RELU": FNN_LEAKY, "SOFTMAX": FNN_SOFTMAX,
    "MSE": FNN_MSE, "CROSS_ENTROPY": FNN_CE, "BINARY_CROSS_ENTROPY": FNN_BCE,
    "SGD": FNN_SGD, "MOMENTUM": FNN_MOMENTUM, "NESTEROV": FNN_NESTEROV, "ADAM": FNN_ADAM,
    "ACC_NONE": FNN_ACC_NONE, "ACC_ARGMAX": FNN_ACC_ARGMAX, "ACC_BINARY": FNN_ACC_BINARY,
    "LEAKY_SLOPE": FNN_LEAKY_SLOPE,
}

fnn_sgemm = <fnn_sgemm_t>sgemm
fnn_dgemm = <fnn_dgemm_t>dgemm



def _register_blas():
    """Hand the set/get_num_threads of scipy's OpenBLAS to the kernels (see fnn.h); returns the
    registered library paths. Other BLAS (MKL, BLIS, ...) are left alone."""
    import ctypes
    import os
    import scipy
    try:
        from threadpoolctl import ThreadpoolController
        libs = [c for c in ThreadpoolController().lib_controllers
                if c.internal_api == "openblas"]
    except Exception:  # noqa: BLE001 - optional: without it BLAS keeps its own threads
        return []
    sdir = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    mine = [c for c in libs if os.path.abspath(c.filepath).startswith(
        os.path.join(sdir, "scipy"))]
    done = []
    for c in mine or libs:
        for pre, suf in (("scipy_openblas", ""), ("scipy_openblas", "64_"), ("openblas", ""),
                         ("openblas", "64_")):
            try:
                fs = getattr(c.dynlib, f"{pre}_set_num_threads{suf}")
                fg = getattr(c.dynlib, f"{pre}_get_num_threads{suf}")
            except AttributeError:
                continue
            a_set = ctypes.cast(fs, ctypes.c_void_p).value
            a_get = ctypes.cast(fg, ctypes.c_void_p).value
            if a_set and a_get and fnn_blas_register(<fnn_blas_set_t><size_t>a_set,
                                                     <fnn_blas_get_t><size_t>a_get) == 0:
                done.append(c.filepath)
            break
    return done


BLAS_CONTROLLED = _register_blas()

cdef int _MAX_THREADS = max(1, min(64, fnn_max_threads()))

include "_kernels_workspace.pxi"
include "_kernels_contract.pxi"


# ---- introspection and tuning -------------------------------------------------------------------

def isa():
    """The kernel build in use: 'avx512', 'avx2' or 'base'."""
    return fnn_isa_name().decode()


def select_isa(name="auto"):
    """Force a kernel build ('auto', 'base', 'avx2', 'avx512'); for benchmarks and tests."""
    if fnn_select_isa(name.encode()) != 0:
        raise ValueError(f"ISA {name!r} is not available on this CPU/build")
    return isa()


def have_openmp():
    return bool(fnn_have_openmp())


def compiler():
    return fnn_compiler().decode()


def get_tuning():
    return dict(fnn_tune)


def set_tuning(**kw):
    """Change kernel thresholds (narrow_max, gemm_min, gemm_min_b, par_min_work, sparse)."""
    cdef dict cur = dict(fnn_tune)
    for k, v in kw.items():
        if k not in cur:
            raise KeyError(k)
        cur[k] = int(v)
    fnn_tune.narrow_max = cur["narrow_max"]
    fnn_tune.gemm_min = cur["gemm_min"]
    fnn_tune.gemm_min_b = cur["gemm_min_b"]
    fnn_tune.par_min_work = cur["par_min_work"]
    fnn_tune.sparse = cur["sparse"]
    fnn_tune.colblock_kb = cur["colblock_kb"]
    fnn_tune.par_min_work_batch = cur["par_min_work_batch"]
    fnn_tune.own_gemm = cur["own_gemm"]
    fnn_tune.s0_group_min = cur["s0_group_min"]
    fnn_tune.task_work = max(1, cur["task_work"])
    fnn_tune.par_min_work_chunks = cur["par_min_work_chunks"]
    fnn_tune.quad0 = cur["quad0"]
    fnn_tune.w0pad = cur["w0pad"]
    fnn_tune.fetch_ahead = cur["fetch_ahead"]
    return dict(fnn_tune)

include "_kernels_apply.pxi"
