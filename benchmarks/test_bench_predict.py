"""Inference on real MNIST test rows through the public API, float32:

- predict-1:   latency of ``model.predict(x_row)`` for one (784,) row
- predict-10k: throughput of ``model.predict(x_test)`` for the 10000 test rows
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from fastnn.bench import config as B

NETWORKS = ["digits-16", "nielsen-30", "mlp-128", "wide-512"]


@pytest.mark.parametrize("backend", B.engines())
@pytest.mark.parametrize("network", NETWORKS)
def test_predict_one(benchmark, mnist, info, network, backend):
    _, (xt, _) = mnist
    model = B.build(network, backend)
    row = np.ascontiguousarray(xt[0])
    model.predict(row)                            # compile + per-thread workspace, untimed
    benchmark.group = f"predict-1 {network}"
    benchmark(model.predict, row)
    info(backend, network=network, rows=1)


@pytest.mark.parametrize("backend", B.engines())
@pytest.mark.parametrize("network", NETWORKS)
def test_predict_10k(benchmark, mnist, rounds, info, network, backend):
    _, (xt, _) = mnist
    cap = B.env_int("FASTNN_BENCH_SAMPLES", 0, lo=0) or len(xt)
    xs = np.ascontiguousarray(xt[:min(len(xt), cap)])
    model = B.build(network, backend)
    model.predict(xs[:64])                        # compile, untimed
    benchmark.group = f"predict-10k {network}"
    times = []

    def run():
        t0 = time.perf_counter()
        model.predict(xs)
        times.append(time.perf_counter() - t0)

    benchmark.pedantic(run, rounds=max(rounds, 5), warmup_rounds=1, iterations=1)
    timed = times[1:] or times
    info(backend, network=network, rows=len(xs),
         samples_per_sec=len(xs) / float(np.median(timed)))
