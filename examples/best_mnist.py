"""Getting a plain fully connected network (no convolution) to 98% on MNIST, and timing it.

Recipe: 784-512-512-10, ReLU hidden layers (He init), softmax + cross-entropy, SGD with
Nesterov momentum 0.9, learning rate 0.05 decayed to 0 by a cosine schedule over 15 epochs,
L2 weight decay 5e-4, minibatches of 128. For each of three seeds the run stops at the first
epoch whose test accuracy reaches 98% and prints the wall time it took; the median accuracy
over the seeds is printed at the end.

    python examples/best_mnist.py                  # 3 seeds, stop at 98%
    python examples/best_mnist.py --no-stop        # always train all epochs
    python examples/best_mnist.py --plots docs/img/best_mnist   # plots of the best seed
    python examples/best_mnist.py --quick          # a few seconds, for CI
"""

from __future__ import annotations

import statistics
import time

from _common import fastnn as fn
from _common import parser, run


def parse_args(argv=None):
    p = parser("A 784-512-512-10 ReLU network to 98%% MNIST test accuracy, over 3 seeds.")
    p.add_argument("--hidden", default="512,512", help="hidden layer sizes, comma separated")
    p.add_argument("--epochs", type=int, default=15, help="at most this many epochs")
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate (cosine decay)")
    p.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--target", type=float, default=0.98, help="test accuracy to reach")
    p.add_argument("--seeds", default="0,1,2", help="seeds, comma separated")
    p.add_argument("--no-stop", action="store_true",
                   help="train all epochs instead of stopping at the target")
    p.add_argument("--save", metavar="PATH", help="save the best model here")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots of the best model to DIR")
    p.add_argument("--backend", default="auto", help="auto, cython, numba or numpy")
    return p.parse_args(argv)


class StopAtTarget(fn.Callback):
    """Record when the test accuracy first reaches the target; optionally stop there."""

    def __init__(self, target, stop, t0):
        self.target, self.stop, self.t0 = target, stop, t0
        self.epoch = self.seconds = None

    def on_epoch_end(self, model, epoch, logs):
        print(f"    epoch {epoch + 1:>2}  lr {logs['lr']:.4f}  loss {logs['loss']:.4f}  "
              f"test {logs['val_accuracy']:.2%}  {logs['samples_per_sec']:,.0f} samples/s  "
              f"t={time.perf_counter() - self.t0:.1f}s", flush=True)
        if self.epoch is None and logs["val_accuracy"] >= self.target:
            self.epoch, self.seconds = epoch + 1, time.perf_counter() - self.t0
            if self.stop:
                model.stop_training = True


def build(args, seed):
    hidden = [int(h) for h in args.hidden.split(",")]
    opt = fn.SGD(args.lr, momentum=args.momentum, nesterov=True,
                 weight_decay=args.weight_decay, schedule=fn.CosineDecay(args.epochs))
    layers = [fn.Dense(h, "relu") for h in hidden] + [fn.Dense(10, "softmax")]
    return fn.Sequential(layers, input_size=784, optimizer=opt, seed=seed, backend=args.backend)


def main(argv=None):
    args = parse_args(argv)
    (x, y), (xt, yt) = fn.datasets.load_mnist()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        x, y, xt, yt = x[:4000], y[:4000], xt[:1000], yt[:1000]
        args.hidden, args.epochs, seeds = "64", min(args.epochs, 2), seeds[:2]
    sizes = f"784-{args.hidden.replace(',', '-')}-10"
    results = []
    best = None
    for seed in seeds:
        model = build(args, seed)
        if seed == seeds[0]:
            print(f"{sizes} relu/softmax, {model.net.n_params:,} parameters; SGD Nesterov "
                  f"{args.momentum} lr {args.lr} cosine over {args.epochs} epochs, weight decay "
                  f"{args.weight_decay}, batch {args.batch_size}; backend {model.backend.name}, "
                  f"{fn.get_num_threads()} threads; target {args.target:.1%}")
        print(f"seed {seed}:")
        t0 = time.perf_counter()
        cb = StopAtTarget(args.target, not args.no_stop, t0)
        hist = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                         validation_data=(xt, yt), verbose=0, callbacks=[cb])
        wall = time.perf_counter() - t0
        acc = hist["val_accuracy"][-1]
        results.append((seed, acc, cb.epoch, cb.seconds, wall))
        if best is None or acc > best[0]:
            best = (acc, model, hist)
    print("summary:")
    for seed, acc, epoch, seconds, wall in results:
        reached = (f"reached {args.target:.0%} after {epoch} epochs in {seconds:.1f}s"
                   if epoch else f"did not reach {args.target:.0%} in {args.epochs} epochs")
        print(f"  seed {seed}: test accuracy {acc:.2%}, {reached} (wall {wall:.1f}s)")
    accs = [r[1] for r in results]
    times = [r[3] for r in results if r[3] is not None]
    line = f"median test accuracy over {len(accs)} seeds: {statistics.median(accs):.2%}"
    if len(times) == len(results):
        line += f"; median time to {args.target:.0%}: {statistics.median(times):.1f}s"
    print(line)
    if args.save:
        best[1].save(args.save)
        print(f"saved the best model ({best[0]:.2%}) to {args.save}")
    if args.plots:
        from fastnn import plots
        for path in plots.save_all(best[1], best[2], xt, yt, args.plots):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run(main)
