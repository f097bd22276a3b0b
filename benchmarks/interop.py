"""fastnn in the user's stack, measured in one run: the scikit-learn estimator and ONNX import.

    python -m benchmarks.interop [--threads N] [--seeds 3] [--rounds 5]

1. Fit time of ``fastnn.sklearn.MLPClassifier`` against ``sklearn.neural_network.MLPClassifier``
   on the first 10k MNIST training images (float32 pixels in [0, 1]), 5 epochs
   (``max_iter=5``), the same hyper-parameters: scikit-learn's defaults (hidden (100,), relu,
   adam 1e-3, batch 200) and (16, 16) at batch 10. Median over the seeds; test accuracy on the
   10k MNIST test images (median over the seeds).
2. Predict with the model ``fastnn.onnx.from_onnx`` imports against
   ``onnxruntime.InferenceSession.run`` on the same .onnx file (CPU provider, intra-op threads =
   N, the options a user sets): one sample (fastnn gets a (784,) row, ONNX Runtime a (1, 784)
   array) and the 10k test rows. Median over rounds.

Both engines are capped at the same thread count (fastnn's kernels and every BLAS/OpenMP pool,
via ``fastnn.num_threads``). The pytest-benchmark files test_bench_sklearn.py and
test_bench_onnx.py time the same functions.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np

from fastnn.bench import config as B
from fastnn.bench import machine as M

N_TRAIN = 10_000
EPOCHS = 5
SEEDS = (0, 1, 2)
SKLEARN_CONFIGS = {
    "defaults": dict(hidden_layer_sizes=(100,), batch_size=200),
    "(16, 16) batch 10": dict(hidden_layer_sizes=(16, 16), batch_size=10),
}
ONNX_NETWORKS = ("digits-16", "mlp-128")
ONE_CALLS = 2_000        # single-sample calls per timed round


def sklearn_data():
    """The first 10k MNIST training images (FASTNN_BENCH_SAMPLES caps it) and the test set."""
    (x, y), (xt, yt) = B.load_data()
    n = min(N_TRAIN, B.env_int("FASTNN_BENCH_SAMPLES", 0, lo=0) or N_TRAIN)
    return x[:n], y[:n], xt, yt


def make_estimator(engine, config, seed):
    """An unfitted MLPClassifier of ``engine`` ('fastnn' or 'sklearn') for a config name."""
    if engine == "fastnn":
        from fastnn.sklearn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    return MLPClassifier(max_iter=EPOCHS, random_state=seed, **SKLEARN_CONFIGS[config])


def fit_seconds(estimator, x, y):
    """Seconds one ``fit`` takes (its ConvergenceWarning at max_iter is expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        estimator.fit(x, y)
        return time.perf_counter() - t0


def warm_up(x, y):
    """Load/compile fastnn's kernels once, outside any timing."""
    for config in SKLEARN_CONFIGS:
        est = make_estimator("fastnn", config, 0).set_params(max_iter=1)
        fit_seconds(est, x[:2_000], y[:2_000])


def onnx_pair(network, folder, threads, seed=B.SEED):
    """(fastnn model imported from the file, ONNX Runtime session on the same file)."""
    import onnxruntime as ort

    from fastnn import presets
    from fastnn.onnx import from_onnx

    path = os.path.join(folder, f"{network}.onnx")
    presets.build(network, dtype=B.DTYPE, seed=seed).save_onnx(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return from_onnx(path), sess


def time_calls(fn, arg, calls, rounds):
    """Median over rounds of the mean seconds per call."""
    fn(arg)
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(arg)
        per.append((time.perf_counter() - t0) / calls)
    return float(np.median(per))


def ort_runner(sess):
    run, name = sess.run, sess.get_inputs()[0].name
    return lambda x: run(None, {name: x})


def sklearn_rows(seeds, log):
    x, y, xt, yt = sklearn_data()
    warm_up(x, y)
    rows = []
    for config in SKLEARN_CONFIGS:
        res = {}
        for engine in ("fastnn", "sklearn"):
            secs, accs = [], []
            for seed in seeds:
                est = make_estimator(engine, config, seed)
                secs.append(fit_seconds(est, x, y))
                accs.append(est.score(xt, yt))
                log(f"  {config:<18} {engine:<8} seed {seed}: {secs[-1]:.3f} s  "
                    f"accuracy {accs[-1]:.4f}")
            res[engine] = (float(np.median(secs)), float(np.median(accs)))
        (tf, af), (ts, as_) = res["fastnn"], res["sklearn"]
        n = len(x) * EPOCHS
        rows.append(f"| {config} | {tf:.3f} s ({n / tf / 1e3:,.0f}k/s) | "
                    f"{ts:.3f} s ({n / ts / 1e3:,.0f}k/s) | {ts / tf:.1f}x | "
                    f"{af:.2%} | {as_:.2%} | {100 * (af - as_):+.2f} |")
    return rows


def onnx_rows(threads, rounds, log):
    _, (xt, _) = B.load_data()
    xt = np.ascontiguousarray(xt)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for network in ONNX_NETWORKS:
            model, sess = onnx_pair(network, folder, threads)
            ort_run = ort_runner(sess)
            one_fn = time_calls(model.predict, np.ascontiguousarray(xt[0]), ONE_CALLS, rounds)
            one_ort = time_calls(ort_run, xt[:1], ONE_CALLS, rounds)
            big_fn = time_calls(model.predict, xt, 1, rounds)
            big_ort = time_calls(ort_run, xt, 1, rounds)
            log(f"  {network}: 1 row {one_fn * 1e6:.2f} / {one_ort * 1e6:.2f} us, 10k rows "
                f"{big_fn * 1e3:.2f} / {big_ort * 1e3:.2f} ms (fastnn / onnxruntime)")
            rows.append(f"| {network} | {one_fn * 1e6:.2f} us | {one_ort * 1e6:.2f} us | "
                        f"{one_ort / one_fn:.1f}x | {len(xt) / big_fn / 1e6:.2f}M rows/s | "
                        f"{len(xt) / big_ort / 1e6:.2f}M rows/s | {big_ort / big_fn:.2f}x |")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.interop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=B.bench_threads(),
                   help="threads for both engines (default FASTNN_BENCH_THREADS or 2)")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per sklearn config")
    p.add_argument("--rounds", type=int, default=B.bench_rounds(), help="rounds per predict")
    p.add_argument("--only", choices=["sklearn", "onnx"], help="run one half")
    a = p.parse_args(argv)
    import fastnn

    def log(msg):
        print(msg, flush=True)

    out = []
    with warnings.catch_warnings(), fastnn.num_threads(a.threads):
        warnings.filterwarnings("ignore", message="fastnn: using the", category=RuntimeWarning)
        log(f"threads {a.threads}, float32, fastnn backend {B.resolved('auto')}, "
            f"cpu {M.cpu_name()}")
        if a.only != "onnx":
            n_train = len(sklearn_data()[0])
            out += ["", f"MNIST, first {n_train:,} training images, {EPOCHS} epochs, same "
                    f"hyper-parameters, median of {a.seeds} seeds; accuracy on the 10k test "
                    "images", "",
                    "| config | fastnn.sklearn fit | sklearn fit | speed-up | fastnn acc | "
                    "sklearn acc | diff (points) |", "|---|---|---|---|---|---|---|"]
            out += sklearn_rows(range(a.seeds), log)
        if a.only != "sklearn":
            out += ["", f"Predict: fastnn's import of the .onnx file vs ONNX Runtime on it, "
                    f"median of {a.rounds} rounds", "",
                    "| network | fastnn 1 row | onnxruntime 1 row | speed-up | fastnn 10k | "
                    "onnxruntime 10k | speed-up |", "|---|---|---|---|---|---|---|"]
            out += onnx_rows(a.threads, a.rounds, log)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
