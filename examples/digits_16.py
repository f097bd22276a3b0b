"""The digit network of 3Blue1Brown's "But what is a neural network?": 784-16-16-10.

Trains two copies side by side on MNIST, one with sigmoid hidden layers (as in the video) and
one with ReLU, from the same seed and on exactly the same minibatches, and prints a per-epoch
table and the final test accuracy of each.

    python examples/digits_16.py                  # full run: 15 epochs, both reach >= 95%
    python examples/digits_16.py --quick          # a few seconds, for CI
    python examples/digits_16.py --plots docs/img/digits16   # also write PNG plots
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import fastnn as fn
from _common import parser, run


def parse_args(argv=None):
    p = parser("784-16-16-10 on MNIST: sigmoid vs ReLU hidden layers, side by side.")
    p.add_argument("--epochs", type=int, default=15, help="passes over the 60,000 images")
    p.add_argument("--lr", type=float, default=0.1,
                   help="SGD learning rate (cosine-decayed to 0 over the run)")
    p.add_argument("--batch-size", type=int, default=10, help="samples per SGD step")
    p.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    p.add_argument("--backend", default="auto", help="auto, cython, numba or numpy")
    p.add_argument("--plots", metavar="DIR",
                   help="write PNG plots of each model to DIR/sigmoid and DIR/relu")
    return p.parse_args(argv)


def build(activation, args):
    opt = fn.SGD(args.lr, schedule=fn.CosineDecay(max(args.epochs, 1)))
    return fn.Sequential([fn.Dense(16, activation), fn.Dense(16, activation),
                          fn.Dense(10, "softmax")],
                         input_size=784, optimizer=opt, seed=args.seed, backend=args.backend)


def main(argv=None):
    args = parse_args(argv)
    (x, y), (xt, yt) = fn.datasets.load_mnist()
    if args.quick:
        x, y, xt, yt = x[:6000], y[:6000], xt[:2000], yt[:2000]
        args.epochs = min(args.epochs, 2)

    models = {act: build(act, args) for act in ("sigmoid", "relu")}
    some = models["sigmoid"]
    print(f"784-16-16-10, {some.net.n_params:,} weights and biases; softmax output, "
          f"cross-entropy; SGD lr {args.lr} cosine, batch {args.batch_size}; "
          f"{len(x):,} training / {len(xt):,} test images; backend {some.backend.name}")
    logs = {act: [] for act in models}
    head = f"{'epoch':>5} | {'sigmoid: loss  train   test':>27} | {'relu: loss  train   test':>24}"
    print(head)
    print("-" * len(head))
    start = time.perf_counter()
    for epoch in range(args.epochs):
        for act, model in models.items():
            # One epoch at a time so the table fills in live. The seed fixes every epoch's
            # shuffle, and initial_epoch the schedule, so this is the same as one long fit.
            h = model.fit(x, y, epochs=epoch + 1, initial_epoch=epoch,
                          batch_size=args.batch_size, seed=args.seed,
                          validation_data=(xt, yt), verbose=0)
            logs[act].append({k: h[k][0] for k in h.history})
        s, r = logs["sigmoid"][-1], logs["relu"][-1]
        print(f"{epoch + 1:>5} | {s['loss']:>14.4f} {s['accuracy']:6.2%} {s['val_accuracy']:6.2%}"
              f" | {r['loss']:>11.4f} {r['accuracy']:6.2%} {r['val_accuracy']:6.2%}", flush=True)
    wall = time.perf_counter() - start
    speed = {act: sum(e["samples_per_sec"] for e in lg) / max(len(lg), 1)
             for act, lg in logs.items()}
    acc = {act: m.evaluate(xt, yt).accuracy for act, m in models.items()}
    print(f"training speed: sigmoid {speed['sigmoid']:,.0f} samples/s, "
          f"relu {speed['relu']:,.0f} samples/s; wall {wall:.1f}s for both")
    print(f"final test accuracy: sigmoid {acc['sigmoid']:.2%}  relu {acc['relu']:.2%}")

    if args.plots:
        from fastnn import plots
        for act, model in models.items():
            hist = fn.History()
            for i, e in enumerate(logs[act]):
                hist.append(i, e)
            for path in plots.save_all(model, hist, xt, yt, Path(args.plots) / act):
                print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run(main)
