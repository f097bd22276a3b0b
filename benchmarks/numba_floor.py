"""The Numba backend's speed floor (issue 11): engines side by side in ONE process.

    python -m benchmarks.numba_floor [--rows 20000] [--rounds 5] [--threads 2]
                                     [--backends numba,cython] [--json out.json]

Trains each reference network on real MNIST (float32) through each backend's ``train_steps``
in fit-sized chunks (the data validated once, as ``fit`` does before its first step; the
per-call validation is not what is measured here), and the idiomatic NumPy MLP below at
digits-16 batch 1. Reports samples/s (median of ``--rounds`` epochs after a warm-up epoch,
the backends' rounds interleaved), the ratio numba/cython per network and
numba/idiomatic-NumPy at digits-16 batch 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

NETWORKS = [("digits-16", 1), ("digits-16", 10), ("digits-16", 32), ("nielsen-30", 10),
            ("mlp-128", 64), ("wide-512", 256)]
CHUNK = 8192   # samples per train_steps call, as fastnn.model.SAMPLES_PER_CALL
STAT = "median"   # or "best" (--stat): the fastest round, the least disturbed by others


def numpy_mlp_epoch(W, b, x, y1h, order, bs, lr, hidden_act):
    """One epoch of minibatch SGD written as a NumPy user writes it (Nielsen-style, ``@``)."""
    n = len(order)
    for lo in range(0, n, bs):
        idx = order[lo:lo + bs]
        a = [x[idx]]
        for Wl, bl in zip(W[:-1], b[:-1], strict=True):
            a.append(hidden_act(a[-1] @ Wl + bl))
        z = a[-1] @ W[-1] + b[-1]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        p = z / z.sum(axis=1, keepdims=True)
        delta = (p - y1h[idx]) / len(idx)
        for l in range(len(W) - 1, -1, -1):
            gW = a[l].T @ delta
            gb = delta.sum(axis=0)
            if l:
                delta = (delta @ W[l].T) * a[l] * (1 - a[l])
            W[l] -= lr * gW
            b[l] -= lr * gb


def time_numpy_mlp(x, y, rounds):
    rng = np.random.default_rng(0)
    sizes = [784, 16, 16, 10]
    W = [rng.normal(0, 1 / np.sqrt(i), size=(i, o)).astype(np.float32)
         for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    b = [np.zeros(o, np.float32) for o in sizes[1:]]
    y1h = np.eye(10, dtype=np.float32)[y]
    lr = np.float32(0.1)

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    n = min(len(x), 5000)     # batch 1 in NumPy is slow: a slice is plenty for a rate
    rates = []
    for r in range(rounds + 1):
        order = rng.permutation(n)
        t0 = time.perf_counter()
        numpy_mlp_epoch(W, b, x, y1h, order, 1, lr, sigmoid)
        if r:
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates) if STAT == "median" else max(rates)


def prepare(backend, preset, bs, x, y):
    """A warmed model and a function that trains one epoch through ``train_steps``."""
    from fastnn.presets import build

    m = build(preset, dtype="float32", backend=backend, seed=0)
    m.fit(x[:2 * bs], y[:2 * bs], epochs=1, batch_size=bs, verbose=0)   # compile / warm
    xs = m._inputs("x", x)
    ts = m._targets("y", y, len(x))
    ws = m._train_workspace(bs)
    be, net, opt = m.backend, m.net, m.optimizer
    n = len(xs)
    steps = -(-n // bs)
    chunk = max(1, CHUNK // bs)

    def epoch(order):
        step = 0
        while step < steps:
            k = min(chunk, steps - step)
            be.train_steps(net, opt, xs, ts.y, order, step * bs, k, bs, ws, ts.acc_mode)
            step += k
        assert np.isfinite(m.params).all()

    return epoch


def time_backends(backends, preset, bs, x, y, rounds):
    """samples/s per backend: median of ``rounds`` epochs, the backends' rounds interleaved
    (a busy spell on the shared machine hits all of them), after one warm-up epoch each."""
    epochs = {be: prepare(be, preset, bs, x, y) for be in backends}
    rng = np.random.default_rng(1)
    rates = {be: [] for be in backends}
    for r in range(rounds + 1):
        order = rng.permutation(len(x)).astype(np.int64)
        for be, epoch in epochs.items():
            t0 = time.perf_counter()
            epoch(order)
            if r:
                rates[be].append(len(x) / (time.perf_counter() - t0))
    pick = statistics.median if STAT == "median" else max
    return {be: pick(v) for be, v in rates.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backends", default="numba,cython")
    ap.add_argument("--stat", choices=["median", "best"], default="median")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    global STAT
    STAT = args.stat
    import fastnn as fn

    fn.set_num_threads(args.threads)
    (x, y), _ = fn.datasets.load_mnist(verbose=False)
    x, y = x[:args.rows], y[:args.rows]
    backends = args.backends.split(",")
    res = {"numpy_mlp digits-16 b1": time_numpy_mlp(x, y, args.rounds)}
    print(f"idiomatic NumPy MLP, digits-16 b1: {res['numpy_mlp digits-16 b1']:,.0f} samples/s",
          flush=True)
    for preset, bs in NETWORKS:
        row = time_backends(backends, preset, bs, x, y, args.rounds)
        res[f"{preset} b{bs}"] = row
        line = "  ".join(f"{be} {v:>10,.0f}/s" for be, v in row.items())
        if "numba" in row and "cython" in row:
            line += f"  numba/cython {row['numba'] / row['cython']:.2f}x"
        if (preset, bs) == ("digits-16", 1) and "numba" in row:
            line += f"  numba/numpy-mlp {row['numba'] / res['numpy_mlp digits-16 b1']:.1f}x"
        print(f"{preset:>10} b{bs:<4} {line}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
