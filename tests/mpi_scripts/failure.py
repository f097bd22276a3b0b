"""Run under `mpiexec -n 2 python failure.py CASE`: one rank fails, every rank must raise.

Each rank prints ``RESULT rank <r> <ExceptionType> <finite weights kept> <message>``.
"""

import os
import sys
import types

import numpy as np
from mpi4py import MPI

import fastnn
from fastnn.callbacks import LambdaCallback

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
case = sys.argv[1]
g = np.random.default_rng(rank)
x, y = g.normal(size=(64, 12)), g.integers(0, 5, size=64)
kw = dict(epochs=3, batch_size=8, shuffle=False, verbose=0, comm=comm)
lr, layers = 0.1, [fastnn.Dense(24, "relu"), fastnn.Dense(5, "softmax")]
if case == "bad_data" and rank == 1:
    x[10, 3] = np.nan
elif case == "mismatch_batch" and rank == 1:
    kw["batch_size"] = 16
elif case == "mismatch_layers" and rank == 1:
    layers = [fastnn.Dense(25, "relu"), fastnn.Dense(5, "softmax")]
elif case == "diverge":
    lr = 1e300
elif case == "diverge_local" and rank == 1:
    x[40:] *= 1e300                 # overflows on rank 1 only, in its 6th local step
    kw["sync_every"] = 4
elif case == "diverge_local":
    kw["sync_every"] = 4
elif case == "callback" and rank == 1:
    def boom(model, epoch, logs):
        if epoch == 1:
            raise OSError("disk full")
    kw["callbacks"] = [LambdaCallback(boom)]
model = fastnn.Sequential(layers, input_size=12, optimizer=fastnn.SGD(lr), seed=0,
                          dtype="float64")
if case == "midstep" and rank == 1:    # a backend failing mid-epoch, on one rank only
    real, calls = model.backend, [0]

    def grad_step(*args):
        calls[0] += 1
        if calls[0] == 13:
            raise MemoryError("out of memory in grad_step")
        return real.grad_step(*args)

    model.backend = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real)
                                             if not k.startswith("__")})
    model.backend.grad_step = grad_step
if case == "crash" and rank == 1:
    os._exit(3)                     # a rank dies without a word: mpiexec must end the job
try:
    model.fit(x, y, **kw)
    print(f"RESULT rank {rank} none {np.isfinite(model.params).all()} finished", flush=True)
except Exception as exc:  # noqa: BLE001 - the test reads what each rank raised
    msg = str(exc).replace("\n", " ")
    print(f"RESULT rank {rank} {type(exc).__name__} {np.isfinite(model.params).all()} {msg}",
          flush=True)
