"""Kernel-level timings on real MNIST rows: one dense layer, narrow (784->16, sigmoid) and wide
(784->512, relu), batch 256, float32:

- forward:      backend.predict(net, x, out, ws)          (a = f(x W + b))
- loss_grad:    backend.loss_grad(net, x, y, grad, ws)    (forward + backward, MSE)
- update(adam): backend.update(net, opt, grad)            (skipped if the backend has none)

Kernels are called once before timing (JIT compilation), then timed with pytest-benchmark's
calibration (many iterations per round; medians reported).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from fastnn.bench import config as B

SHAPES = {"784x16": (16, "sigmoid"), "784x512": (512, "relu")}
BATCH = 256


def _layer(backend, shape):
    import fastnn
    units, act = SHAPES[shape]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fastnn.Sequential([fastnn.Dense(units, act)], input_size=784, loss="mse",
                                 optimizer=fastnn.Adam(1e-3), dtype=B.DTYPE, backend=backend,
                                 seed=B.SEED)


def _setup(mnist, backend, shape):
    (x, _), _ = mnist
    model = _layer(backend, shape)
    xb = np.ascontiguousarray(x[:BATCH])
    rng = np.random.default_rng(0)
    yb = rng.random((BATCH, model.output_size), dtype=np.float32)  # regression targets
    ws = model.backend.workspace(model.net, BATCH)
    return model, xb, yb, ws


def _run(benchmark, fn, rounds):
    fn()                                           # compile / warm caches, untimed
    benchmark.pedantic(fn, rounds=max(rounds, 5) * 4, iterations=_iterations(fn),
                       warmup_rounds=2)


def _iterations(fn, target=0.02):
    """Iterations per round so that one round lasts about ``target`` seconds."""
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-7)
    return int(min(10_000, max(1, target / dt)))


@pytest.mark.parametrize("backend", B.engines())
@pytest.mark.parametrize("shape", list(SHAPES))
def test_forward(benchmark, mnist, rounds, info, shape, backend):
    model, xb, _, ws = _setup(mnist, backend, shape)
    out = np.empty((BATCH, model.output_size), dtype=model.dtype)
    be, net = model.backend, model.net
    benchmark.group = f"kernel forward {shape} b{BATCH}"
    _run(benchmark, lambda: be.predict(net, xb, out, ws), rounds)
    info(backend, kernel="predict", shape=shape, batch_size=BATCH)


@pytest.mark.parametrize("backend", B.engines())
@pytest.mark.parametrize("shape", list(SHAPES))
def test_loss_grad(benchmark, mnist, rounds, info, shape, backend):
    model, xb, yb, ws = _setup(mnist, backend, shape)
    grad = np.empty_like(model.params)
    be, net = model.backend, model.net
    benchmark.group = f"kernel loss_grad {shape} b{BATCH}"
    _run(benchmark, lambda: be.loss_grad(net, xb, yb, grad, ws), rounds)
    info(backend, kernel="loss_grad", shape=shape, batch_size=BATCH)


@pytest.mark.parametrize("backend", B.engines())
@pytest.mark.parametrize("shape", list(SHAPES))
def test_update(benchmark, mnist, rounds, info, shape, backend):
    model, xb, yb, ws = _setup(mnist, backend, shape)
    update = getattr(model.backend, "update", None)
    if update is None:
        pytest.skip(f"backend {backend!r} has no separate update kernel (fused in train_steps)")
    grad = np.empty_like(model.params)
    model.backend.loss_grad(model.net, xb, yb, grad, ws)
    grad *= 1e-3                      # keep many Adam steps from moving the weights far
    net, opt = model.net, model.optimizer
    opt.set_epoch(0)

    def step():
        opt.t += 1
        update(net, opt, grad)

    benchmark.group = f"kernel update(adam) {shape}"
    _run(benchmark, step, rounds)
    info(backend, kernel="update", optimizer="adam", shape=shape,
         n_params=int(model.net.n_params))
