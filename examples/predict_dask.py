"""Predictions over a data set too big for one machine's memory, on Dask.

    python examples/predict_dask.py                          # LocalCluster, 2 workers x 1 thread
    python examples/predict_dask.py --scheduler tcp://10.0.0.5:8786 --model model.safetensors
    python examples/predict_dask.py --quick                  # small, for CI

The input is a chunked Dask array: here MNIST's test set repeated --copies times, each block
read where it runs (as da.from_zarr or from_npy_stack would read files).
fastnn.dask.predict_classes maps the model over the row blocks; the model enters the graph once
and reaches each worker once (its pickle is the safetensors bytes of model.save). The answer
is checked against model.predict.
"""

from __future__ import annotations

import time

from _common import fastnn as fn
from _common import parser, run


def parse_args(argv=None):
    p = parser("fastnn predictions over a Dask array.")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler")
    p.add_argument("--model", metavar="PATH", help="a saved fastnn model (default: train one)")
    p.add_argument("--copies", type=int, default=20, help="test-set copies in the input")
    p.add_argument("--chunk", type=int, default=5000, help="rows per block")
    return p.parse_args(argv)


def _test_rows(lo, hi):
    """Rows lo:hi of MNIST's test images, read on the worker (cached after the first time)."""
    return fn.datasets.load_mnist(verbose=False)[1][0][lo:hi]


def main(argv=None):
    args = parse_args(argv)
    import dask
    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster

    import fastnn.dask
    import fastnn.presets

    (x, y), (xt, yt) = fn.datasets.load_mnist()
    if args.model:
        model = fn.load(args.model)
    else:
        model = fastnn.presets.build("mlp-128", seed=0)
        model.fit(x[:6000] if args.quick else x, y[:6000] if args.quick else y, epochs=1,
                  batch_size=64, seed=0, verbose=0)
    copies = 2 if args.quick else args.copies
    blocks = [da.from_delayed(dask.delayed(_test_rows)(lo, min(lo + args.chunk, len(xt))),
                              (min(args.chunk, len(xt) - lo), 784), dtype=xt.dtype)
              for lo in range(0, len(xt), args.chunk)]
    big = da.concatenate(blocks * copies)
    if args.scheduler:
        client, cluster = Client(args.scheduler), None
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    try:
        client.register_plugin(fastnn.dask.ThreadCap())
        print(f"{big.shape[0]:,} rows in {big.numblocks[0]} blocks; model {model!r}", flush=True)
        start = time.perf_counter()
        classes = fastnn.dask.predict_classes(model, big).compute()
        seconds = time.perf_counter() - start
        print(f"Dask: {len(classes) / seconds:,.0f} rows/s ({seconds:.2f}s)")
        expected = np.tile(model.predict_classes(xt), copies)
        same = np.array_equal(classes, expected)
        print(f"accuracy {np.mean(classes == np.tile(yt, copies)):.2%}; "
              f"equal to model.predict: {same}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0 if same else 1


if __name__ == "__main__":
    run(main)
