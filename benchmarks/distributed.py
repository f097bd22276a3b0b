"""Data-parallel MNIST training: samples/s and test accuracy, one process or under mpiexec.

    python -m benchmarks.distributed --preset wide-512 --batch-size 512          # 1 process
    mpiexec -n 2 python -m benchmarks.distributed --preset wide-512 --batch-size 256
    mpiexec -n 2 python -m benchmarks.distributed --preset digits-16 --sync-every 200

Each rank trains on a contiguous 1/size of the 60000 training rows with ``--threads`` fastnn
threads (default 1), ``--batch-size`` rows per rank per step (global batch = size x that).
Rank 0 prints one JSON line: training samples/s over all ranks (sum of epoch times, so the
start-up broadcast and check are left out), test accuracy after the last epoch, the settings.

    mpiexec -n 2 python -m benchmarks.distributed --phases 32    # where a step's time goes

``--phases N`` times N wide-512 steps (batch 256 per rank, random data) split into gradient,
Allreduce and update, then the same N steps with no communication at all: the ceiling that
the machine allows two ranks, whatever the communication costs.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="wide-512")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=None, help="rows per rank per step")
    p.add_argument("--sync-every", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-mpi", action="store_true", help="plain fit, no communicator")
    p.add_argument("--phases", type=int, default=0, metavar="N",
                   help="time N steps by phase instead of training on MNIST")
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import fastnn
    import fastnn.presets
    from fastnn.datasets import load_mnist

    fastnn.set_num_threads(a.threads)
    comm, rank, size = None, 0, 1
    if not a.no_mpi:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
    if a.phases:
        return phases(a, comm, rank)
    (x, y), (xt, yt) = load_mnist(verbose=False)
    lo, hi = rank * len(x) // size, (rank + 1) * len(x) // size
    model = fastnn.presets.build(a.preset, seed=a.seed, dtype=a.dtype)
    bs = a.batch_size or fastnn.presets.PRESETS[a.preset]["batch_size"]
    kw = {} if comm is None else {"comm": comm, "sync_every": a.sync_every}
    hist = model.fit(x[lo:hi], y[lo:hi], epochs=a.epochs, batch_size=bs, seed=a.seed,
                     verbose=0, **kw)
    if rank == 0:
        seconds = sum(hist["seconds"])
        rows = sum(sps * s for sps, s in zip(hist["samples_per_sec"], hist["seconds"],
                                             strict=True))
        _, acc = model.evaluate(xt, yt)
        print(json.dumps({"preset": a.preset, "ranks": size, "threads_per_rank": a.threads,
                          "batch_per_rank": bs, "global_batch": bs * size,
                          "sync_every": a.sync_every if comm is not None else None,
                          "dtype": a.dtype, "backend": model.backend.name,
                          "epochs": a.epochs, "samples_per_sec": round(rows / seconds),
                          "epoch_seconds": [round(s, 2) for s in hist["seconds"]],
                          "test_accuracy": round(float(acc), 4),
                          "final_loss": round(float(hist["loss"][-1]), 4)}), flush=True)
    return 0


def phases(a, comm, rank):
    """ms per step in gradient, Allreduce and update; then the steps with no communication."""
    import time

    import fastnn.presets
    from fastnn.backends import apply_update

    g = np.random.default_rng(rank)
    bs = a.batch_size or 256
    x = g.random((bs * a.phases, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[g.integers(0, 10, len(x))]
    model = fastnn.presets.build("wide-512", seed=0)
    be, grad = model.backend, np.empty_like(model.params)
    ws = model._train_workspace(bs)
    out = {}
    for mode in ("allreduce", "no-communication"):
        t = np.zeros(3)
        for s in range(a.phases):
            t0 = time.perf_counter()
            be.loss_grad(model.net, x[s * bs:(s + 1) * bs], y[s * bs:(s + 1) * bs], grad, ws)
            t1 = time.perf_counter()
            if comm is not None and mode == "allreduce":
                from mpi4py import MPI
                comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
            t2 = time.perf_counter()
            apply_update(be, model.net, model.optimizer, grad)
            t += [t1 - t0, t2 - t1, time.perf_counter() - t2]
        ms = t / a.phases * 1e3
        out[mode] = {"grad_ms": round(ms[0], 2), "allreduce_ms": round(ms[1], 2),
                     "update_ms": round(ms[2], 2), "step_ms": round(ms.sum(), 2)}
    rows = [out] if comm is None else comm.gather(out)
    if rank == 0:
        print(json.dumps({"phases": a.phases, "batch_per_rank": bs, "per_rank": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
