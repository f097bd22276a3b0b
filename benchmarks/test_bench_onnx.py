"""Predict with the model fastnn imports from a .onnx file against ONNX Runtime on that file.

onnx-predict-1 <network>: one MNIST test row (fastnn: a (784,) row; ONNX Runtime: (1, 784)).
onnx-predict-10k <network>: the 10000 test rows. ONNX Runtime runs on the CPU provider with
intra-op threads = the run's thread count. Run: python -m pytest benchmarks/test_bench_onnx.py
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks import interop as I
from fastnn.bench import config as B

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, fixed_threads):
    folder = str(tmp_path_factory.mktemp("onnx"))
    return {net: I.onnx_pair(net, folder, fixed_threads) for net in I.ONNX_NETWORKS}


def _callable(pairs, network, engine):
    model, sess = pairs[network]
    return model.predict if engine == "fastnn" else I.ort_runner(sess)


@pytest.mark.parametrize("engine", ["fastnn", "onnxruntime"])
@pytest.mark.parametrize("network", I.ONNX_NETWORKS)
def test_predict_one(benchmark, mnist, info, pairs, network, engine):
    _, (xt, _) = mnist
    row = np.ascontiguousarray(xt[0]) if engine == "fastnn" else np.ascontiguousarray(xt[:1])
    fn = _callable(pairs, network, engine)
    fn(row)                                       # workspace / session warm-up, untimed
    benchmark.group = f"onnx-predict-1 {network}"
    benchmark(fn, row)
    info("auto", engine=engine, network=network, rows=1)


@pytest.mark.parametrize("engine", ["fastnn", "onnxruntime"])
@pytest.mark.parametrize("network", I.ONNX_NETWORKS)
def test_predict_10k(benchmark, mnist, rounds, info, pairs, network, engine):
    _, (xt, _) = mnist
    cap = B.env_int("FASTNN_BENCH_SAMPLES", 0, lo=0) or len(xt)
    xs = np.ascontiguousarray(xt[:cap])
    fn = _callable(pairs, network, engine)
    benchmark.group = f"onnx-predict-10k {network}"
    times = []

    def run():
        t0 = time.perf_counter()
        fn(xs)
        times.append(time.perf_counter() - t0)

    benchmark.pedantic(run, rounds=max(rounds, 5), warmup_rounds=1, iterations=1)
    timed = times[1:] or times
    info("auto", engine=engine, network=network, rows=len(xs),
         samples_per_sec=len(xs) / float(np.median(timed)))
