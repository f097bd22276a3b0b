"""Embedding a trained model in a latency-critical loop: one sample in, one answer out.

Trains the digits-16 network (784-16-16-10) or loads one you give, saves it, loads it back
(checking the loaded model predicts bit-identically), then times single-sample calls the way
a service or a game loop would make them: ``model.predict(x_row)`` and
``model.predict_classes(x_row)`` on one 784-pixel row at a time, after a warm-up. Prints the
median and 99th-percentile microseconds per call.

    python examples/embed_predict.py                       # train 3 epochs, save, time
    python examples/embed_predict.py --model digits.fnn    # time a model you saved
    python examples/embed_predict.py --quick               # a few seconds, for CI
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import fastnn as fn
from _common import parser, run

from fastnn.presets import build  # noqa: E402


def parse_args(argv=None):
    p = parser("Single-sample predict latency of a saved and reloaded digits-16 model.")
    p.add_argument("--model", metavar="PATH", help="load this model instead of training one")
    p.add_argument("--save", metavar="PATH",
                   help="where to save the trained model (default: a temporary file)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs if no --model")
    p.add_argument("--calls", type=int, default=10000, help="timed single-sample calls")
    p.add_argument("--warmup", type=int, default=1000, help="untimed calls first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="auto", help="auto, cython, numba or numpy")
    return p.parse_args(argv)


def time_calls(fn_call, rows, calls, warmup):
    """Per-call wall times in microseconds: one perf_counter_ns pair around every call."""
    n = len(rows)
    for i in range(warmup):
        fn_call(rows[i % n])
    out = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        row = rows[i % n]
        t0 = clock()
        fn_call(row)
        out[i] = clock() - t0
    return out / 1000.0


def main(argv=None):
    args = parse_args(argv)
    (x, y), (xt, yt) = fn.datasets.load_mnist()
    if args.quick:
        x, y = x[:5000], y[:5000]
        args.epochs = min(args.epochs, 1)
        args.calls, args.warmup = min(args.calls, 2000), min(args.warmup, 200)

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = Path(args.model)
            print(f"loading {path}")
        else:
            model = build("digits-16", seed=args.seed, backend=args.backend)
            t0 = time.perf_counter()
            model.fit(x, y, epochs=args.epochs, batch_size=10, seed=args.seed, verbose=0)
            print(f"trained digits-16 (784-16-16-10 sigmoid, SGD 0.1, batch 10) for "
                  f"{args.epochs} epochs on {len(x):,} images in {time.perf_counter() - t0:.1f}s")
            path = Path(args.save) if args.save else Path(tmp) / "digits16.fnn"
            model.save(path)
            print(f"saved {path} ({path.stat().st_size:,} bytes)")
        loaded = fn.load(path, backend=args.backend)
        if not args.model:
            same = np.array_equal(model.predict(xt), loaded.predict(xt))
            print(f"reloaded model predicts bit-identically: {same}")
            if not same:
                return 1
    print(f"{loaded!r}: test accuracy {loaded.evaluate(xt, yt).accuracy:.2%}")

    rows = [np.ascontiguousarray(r) for r in xt[:1000]]  # float32 rows, as a caller holds them
    single = loaded.predict(rows[0])
    print(f"one call: predict(x_row) -> shape {single.shape}, class "
          f"{loaded.predict_classes(rows[0])} (label {yt[0]})")
    print(f"{args.calls:,} timed single-sample calls after {args.warmup:,} warm-up calls, "
          f"backend {loaded.backend.name}:")
    for name, call in (("predict", loaded.predict), ("predict_classes", loaded.predict_classes)):
        us = time_calls(call, rows, args.calls, args.warmup)
        print(f"  {name + '(x_row)':<22} median {np.median(us):7.2f} us   "
              f"p99 {np.percentile(us, 99):7.2f} us   mean {us.mean():7.2f} us   "
              f"({1e6 / us.mean():,.0f} calls/s)")
    t0 = time.perf_counter()
    loaded.predict(xt)
    batch_us = (time.perf_counter() - t0) / len(xt) * 1e6
    print(f"  for comparison, one predict on all {len(xt):,} test rows: {batch_us:.3f} us per row")
    return 0


if __name__ == "__main__":
    run(main)
