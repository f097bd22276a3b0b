"""Data-parallel MNIST training: samples/s and test accuracy, one process or under mpiexec.

    python -m benchmarks.distributed --preset wide-512 --batch-size 512          # 1 process
    mpiexec -n 2 python -m benchmarks.distributed --preset wide-512 --batch-size 256
    mpiexec -n 2 python -m benchmarks.distributed --preset digits-16 --sync-every 200

Each rank trains on a contiguous 1/size of the 60000 training rows with ``--threads`` fastnn
threads (default 1), ``--batch-size`` rows per rank per step (global batch = size x that).
Rank 0 prints one JSON line: training samples/s over all ranks (sum of epoch times, so the
start-up broadcast and check are left out), test accuracy after the last epoch, the settings.

    mpiexec -n 2 python -m benchmarks.distributed --phases 32    # where a step's time goes

``--phases N`` times N steps of ``--preset`` (batch 256 per rank, MNIST rows) three ways: the
fused single-process step, the split step (gradient, update) with no communication (the
ceiling the machine allows two ranks, whatever the communication costs), and the split step
with the Allreduce between its halves, and (ranks on one machine) with the shared-memory sum
that fit(comm=...) uses there (its barrier counts as update); wall and CPU ms per phase.
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


def _phase_data(bs, steps, rank, dtype):
    """MNIST rows for ``steps`` batches (rank r takes its own block); random if unavailable."""
    from fastnn.datasets import load_mnist

    n = bs * steps
    try:
        (x, y), _ = load_mnist(verbose=False)
        lo = (rank * n) % (len(x) - n)
        x, labels = x[lo:lo + n], np.asarray(y[lo:lo + n]).astype(np.int64)
    except Exception:  # noqa: BLE001 - no MNIST here: dense random rows (no zero inputs)
        g = np.random.default_rng(rank)
        x, labels = g.random((n, 784)), g.integers(0, 10, n)
    return (np.ascontiguousarray(x, dtype=dtype),
            np.eye(10, dtype=dtype)[labels])


def phases(a, comm, rank):
    """ms per step (wall and CPU) of one rank's step, split in gradient, Allreduce and update.

    Modes, each over the same N batches of MNIST: ``alone`` is rank 0's single-process step
    (train_steps, N steps in one call) while the other ranks sleep; ``fused`` the same on every
    rank at once (independent processes: the machine's ceiling); ``split`` the gradient and
    update halves with no communication; ``allreduce`` and ``shared`` the data-parallel step
    (fit(comm=...) with sync_every=1) summing by Allreduce or through shared memory. The
    speed-ups are size x alone / (the slowest rank's step).
    """
    import time

    import fastnn.presets
    from fastnn.backends import grad_step_fn, update_fn

    bs, steps = a.batch_size or 256, a.phases
    model = fastnn.presets.build(a.preset, seed=0, dtype=a.dtype)
    x, y = _phase_data(bs, steps, rank, model.dtype)
    net, opt, be = model.net, model.optimizer, model.backend
    grad, ws = np.empty_like(model.params), model._train_workspace(bs)
    order = np.arange(len(x), dtype=np.int64)
    grad_step, update = grad_step_fn(be), update_fn(be)
    size = 1 if comm is None else comm.Get_size()
    clocks = (time.perf_counter, time.process_time)
    out = {}
    shared = None
    modes = ["fused", "split", "fused"]
    if comm is not None:
        from mpi4py import MPI

        from fastnn._shared_step import SharedGrads
        modes = ["alone", "fused", "split", "allreduce", "shared", "alone", "fused"]
    for mode in modes:
        if comm is not None:
            comm.Barrier()
        if mode == "shared":   # the parameters move to shared memory for this mode only
            shared = SharedGrads.create(comm, MPI, model)
            if shared is None:
                continue
        t = np.zeros((2, 3))   # (wall, cpu) x (gradient, allreduce, update)
        if mode == "alone" and rank > 0:   # rank 0 alone: the others sleep till it is done
            req = comm.Ibarrier()
            while not req.Test():
                time.sleep(0.002)
            continue
        if mode in ("fused", "alone"):
            t0 = [c() for c in clocks]
            be.train_steps(net, opt, x, y, order, 0, steps, bs, ws, 1)
            t[:, 0] = [c() - s for c, s in zip(clocks, t0, strict=True)]
        else:
            for s in range(steps):
                g = shared.mine() if mode == "shared" else grad
                t0 = [c() for c in clocks]
                grad_step(net, x, y, order, s * bs, bs, g, ws, 1.0 / (bs * size), 1)
                t1 = [c() for c in clocks]
                if mode == "allreduce":
                    comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
                t2 = [c() for c in clocks]
                if mode == "shared":   # barriers and this rank's slice of the update
                    shared.sum_and_update(net, opt)
                else:
                    update(net, opt, grad)
                t3 = [c() for c in clocks]
                t += np.subtract([t1, t2, t3], [t0, t1, t2]).T
        if mode == "alone":
            comm.Ibarrier().Wait()
        if mode == "shared":
            shared.close()
        ms = t / steps * 1e3
        key = mode if mode not in out else mode + "_again"
        out[key] = {f"{clock}_{part}_ms": round(float(ms[i, j]), 3)
                    for i, clock in enumerate(("wall", "cpu"))
                    for j, part in enumerate(("grad", "allreduce", "update"))
                    if mode not in ("fused", "alone") or part == "grad"}
        out[key]["wall_step_ms"] = round(float(ms[0].sum()), 3)
    rows = [out] if comm is None else comm.gather(out)
    if rank == 0:
        res = {"phases": steps, "preset": a.preset, "batch_per_rank": bs, "dtype": a.dtype,
               "per_rank": rows}
        if "alone" in out:   # speed-ups over rank 0 alone, from the slowest rank's step
            alone = min(out["alone"]["wall_step_ms"], out["alone_again"]["wall_step_ms"])
            for mode in ("fused", "allreduce", "shared"):
                if mode in out:
                    step = max(r[mode]["wall_step_ms"] for r in rows)
                    res[f"speedup_{mode}"] = round(size * alone / step, 3)
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
