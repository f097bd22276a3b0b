"""Run under `mpiexec -n 2`: data-parallel fit against single-process references.

Prints one line per check on rank 0: ``CHECK name rel_err`` (relative to parameter scale).
"""

import sys

import numpy as np
from mpi4py import MPI

import fastnn
from fastnn.backends import apply_update, available_backends, get_backend

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def build(dtype, optimizer, backend="auto", seed=3, wide=False):
    """12-24-5; wide: 12-64-48-5, whose 64x48 layer takes the kernels' gemm path."""
    hidden = [fastnn.Dense(64, "relu"), fastnn.Dense(48, "tanh")] if wide \
        else [fastnn.Dense(24, "tanh")]
    return fastnn.Sequential([*hidden, fastnn.Dense(5, "softmax")], input_size=12,
                             optimizer=optimizer, dtype=dtype, seed=seed, backend=backend)


def shards(n_rows, seed=7):
    """Every rank's shard (rank r gets rows of generator r); all ranks can rebuild them all."""
    out = []
    for r, n in enumerate(n_rows):
        g = np.random.default_rng(seed + r)
        out.append((g.normal(size=(n, 12)), g.integers(0, 5, size=n)))
    return out


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def report(name, err):
    if rank == 0:
        print(f"CHECK {name} {err:.3e}", flush=True)


def interleave(data, B, steps):
    """Single-process data: step s is rank 0's rows sB..(s+1)B, then rank 1's, ..."""
    xs, ys = [], []
    for s in range(steps):
        for x, y in data:
            xs.append(x[s * B:(s + 1) * B])
            ys.append(y[s * B:(s + 1) * B])
    return np.concatenate(xs), np.concatenate(ys)


def equal_shards(dtype, optimizer, backend, B=16, steps=6, epochs=2, wide=False):
    data = shards([B * steps] * size)
    model = build(dtype, optimizer(), backend, wide=wide)
    model.fit(*data[rank], epochs=epochs, batch_size=B, shuffle=False, verbose=0, comm=comm)
    ref = build(dtype, optimizer(), backend, wide=wide)
    ref.fit(*interleave(data, B, steps), epochs=epochs, batch_size=B * size, shuffle=False,
            verbose=0)
    same = comm.allgather(model.params.copy())
    assert all(np.array_equal(p, same[0]) for p in same), "ranks hold different weights"
    # the training accuracy (predictions before each update) over all ranks' rows
    acc_err = max(abs(a - b) for a, b in zip(model.history["accuracy"], ref.history["accuracy"],
                                             strict=True))
    return rel(model.params, ref.params), acc_err


def unequal_shards(dtype, B=16):
    """Rank r has 70 - 9r rows: steps = min ceil(n/B); partial batches weighted by rows."""
    n_rows = [70 - 9 * r for r in range(size)]
    data = shards(n_rows)
    model = build(dtype, fastnn.SGD(0.2, momentum=0.9))
    model.fit(*data[rank], epochs=1, batch_size=B, shuffle=False, verbose=0, comm=comm)
    ref = build(dtype, fastnn.SGD(0.2, momentum=0.9), backend="numpy")
    steps = min(-(-n // B) for n in n_rows)
    grad = np.empty_like(ref.params)
    be = get_backend("numpy")
    for s in range(steps):
        xb = np.concatenate([x[s * B:(s + 1) * B] for x, _ in data]).astype(dtype)
        yb = np.concatenate([y[s * B:(s + 1) * B] for _, y in data])
        be.loss_grad(ref.net, xb, np.eye(5, dtype=dtype)[yb], grad)
        apply_update(be, ref.net, ref.optimizer, grad)
    return rel(model.params, ref.params)


def local_sgd(K=4, B=8):
    """sync_every=K: K local steps per rank, then the average of the ranks' parameters."""
    data = shards([K * B] * size)
    model = build("float64", fastnn.SGD(0.1))
    model.fit(*data[rank], epochs=1, batch_size=B, shuffle=False, verbose=0, comm=comm,
              sync_every=K)
    runs = []
    for x, y in data:
        m = build("float64", fastnn.SGD(0.1))
        m.fit(x, y, epochs=1, batch_size=B, shuffle=False, verbose=0)
        runs.append(m.params)
    return rel(model.params, np.mean(runs, axis=0))


def shuffled_repeats():
    data = shards([64] * size)
    finals = []
    for _ in range(2):
        model = build("float64", fastnn.Adam(0.01))
        model.fit(*data[rank], epochs=2, batch_size=8, shuffle=True, seed=5, verbose=0,
                  comm=comm)
        finals.append(model.params.copy())
    return float(np.max(np.abs(finals[0] - finals[1])))


def validation_and_checkpoint(tmp):
    data = shards([48] * size)
    val = shards([20 + 10 * r for r in range(size)], seed=50)
    model = build("float64", fastnn.SGD(0.1))
    ckpt = fastnn.callbacks.ModelCheckpoint(f"{tmp}/ckpt_{{epoch}}.safetensors")
    hist = model.fit(*data[rank], epochs=2, batch_size=8, shuffle=False, verbose=0, comm=comm,
                     validation_data=val[rank], callbacks=[ckpt])
    xv = np.concatenate([x for x, _ in val])
    yv = np.concatenate([y for _, y in val])
    loss, acc = model.evaluate(xv, yv)
    logs = comm.allgather((hist["val_loss"], hist["val_accuracy"], hist["loss"]))
    assert all(lg == logs[0] for lg in logs), "history differs across ranks"
    saved = comm.allgather(len(ckpt.saved))
    assert saved[0] == 2 and all(s == 0 for s in saved[1:]), f"checkpoints per rank: {saved}"
    return max(abs(hist["val_loss"][-1] - loss), abs(hist["val_accuracy"][-1] - acc))


fastnn.set_num_threads(1)
BACKENDS = [b for b in ("numpy", "cython", "numba") if b in available_backends()]
n_checks = 0
for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
    for backend in BACKENDS:
        for opt in (lambda: fastnn.SGD(0.3), lambda: fastnn.SGD(0.1, momentum=0.9,
                                                                weight_decay=1e-3),
                    lambda: fastnn.Adam(0.01)):
            err, acc_err = equal_shards(dtype, opt, backend)
            name = f"{dtype}_{backend}_{opt().name}_{opt().kind}"
            report(f"equal_{name} tol={tol}", err)
            n_checks += 1
            if dtype == "float64":
                report(f"train_accuracy_{name} tol=1e-12", acc_err)
                n_checks += 1
    for backend in BACKENDS[1:]:
        err, _ = equal_shards(dtype, lambda: fastnn.SGD(0.1, momentum=0.9, weight_decay=1e-3),
                              backend, wide=True)
        report(f"wide_{dtype}_{backend} tol={tol}", err)
        n_checks += 1
    report(f"unequal_{dtype} tol={tol}", unequal_shards(dtype))
    n_checks += 1
report("local_sgd tol=1e-12", local_sgd())
report("shuffle_repeat tol=0", shuffled_repeats())
report("validation_avg tol=1e-12", validation_and_checkpoint(sys.argv[1]))
if rank == 0:
    print(f"DONE {n_checks + 3} checks, backends {' '.join(BACKENDS)}", flush=True)
