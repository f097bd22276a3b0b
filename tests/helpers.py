"""Helpers shared by the tests: data, models, tolerances, a numpy-vs-backend run, threads and
the missing-extra check."""

import subprocess
import sys
import threading

import numpy as np

import fastnn as fn

# float64: rounding differences (summation order, BLAS vs loops) stay ~1e-15 per operation and
# 50 steps amplify them by far less than 1e5, so 1e-10 is tight yet safe. float32 rounds at
# 6e-8 per operation; 50 steps of training stay well inside 1e-4 of the parameter scale.
TOL = {"float64": 1e-10, "float32": 1e-4}

ACTIVATIONS = ["sigmoid", "relu", "tanh", "leaky_relu", "identity"]
HEADS = [("cross_entropy", "softmax", 4), ("mse", "sigmoid", 4), ("mse", "identity", 2),
         ("binary_cross_entropy", "sigmoid", 1)]
OPTIMIZERS = {
    "sgd": lambda: fn.SGD(0.05),
    "sgd_wd": lambda: fn.SGD(0.05, weight_decay=1e-3),
    "momentum": lambda: fn.SGD(0.05, momentum=0.9),
    "nesterov": lambda: fn.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "adam": lambda: fn.Adam(1e-2),
    "adam_wd": lambda: fn.Adam(1e-2, weight_decay=1e-3),
}


def make_data(n, n_in, n_out, loss, seed=0, sparse=True):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, n_in))
    if sparse:  # MNIST-like: most inputs exactly zero (kernels may skip them)
        x[rng.uniform(size=x.shape) < 0.7] = 0.0
    if loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, 1)).astype(float)
    elif loss == "cross_entropy" or n_out > 2:
        y = rng.integers(0, n_out, size=n)
    else:
        y = rng.normal(size=(n, n_out))
    return x, y


def build(sizes, hidden, out, loss, opt, dtype, backend, seed=7):
    layers = [fn.Dense(s, hidden) for s in sizes[1:-1]] + [fn.Dense(sizes[-1], out)]
    return fn.Sequential(layers, input_size=sizes[0], loss=loss, optimizer=opt, dtype=dtype,
                         backend=backend, seed=seed)


def assert_close(a, b, dtype, what):
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    if a.size == 0:   # e.g. plain SGD keeps no optimiser state
        return
    tol = TOL[dtype]
    scale = max(np.abs(b).max(), 1.0)
    err = np.abs(a.astype(np.float64) - b.astype(np.float64)).max() / scale
    assert err <= tol, f"{what}: max error {err:.3g} relative to scale {scale:.3g} > {tol}"


def train_pair(backend, sizes, hidden, out, loss, opt_name, dtype, n, batch, epochs, seed=0):
    x, y = make_data(n, sizes[0], sizes[-1], loss, seed)
    models = []
    for be in ("numpy", backend):
        m = build(sizes, hidden, out, loss, OPTIMIZERS[opt_name](), dtype, be)
        h = m.fit(x, y, epochs=epochs, batch_size=batch, seed=seed + 1, verbose=0)
        models.append((m, h))
    return x, y, models


def run_threads(work, n):
    """Run ``work`` in ``n`` threads at once and wait for all of them."""
    ts = [threading.Thread(target=work) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def assert_missing_module_names_extra(module, extra):
    """Without ``module``, ``import fastnn`` works and ``import fastnn.<extra>`` fails with an
    ImportError that names the ``fastnn[<extra>]`` extra."""
    code = (f"import sys; sys.modules[{module!r}] = None; import fastnn; "
            f"print('core ok', flush=True); import fastnn.{extra}")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0 and run.stdout == "core ok\n"
    assert "ImportError" in run.stderr and f"fastnn[{extra}]" in run.stderr


def available_isas(kernels):
    """The SIMD builds of fastnn._kernels this CPU runs (selecting each in turn; auto after)."""
    out = []
    for name in ("base", "avx2", "avx512"):
        try:
            kernels.select_isa(name)
            out.append(name)
        except ValueError:
            pass
    kernels.select_isa("auto")
    return out
