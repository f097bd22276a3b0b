"""The ``fastnn`` command line: train, evaluate, predict, info.

Exit codes: 0 ok, 2 usage error, 1 runtime error (one readable line; --debug for a traceback).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

EPILOG = """examples:
  fastnn train                                  # 784-16-16-10 sigmoid net on MNIST, 3 epochs
  fastnn train --preset mlp-128 --epochs 5 --save mlp.fnn
  fastnn train --layers 100 --activation relu --optimizer adam --lr 1e-3 --epochs 10
  fastnn evaluate mlp.fnn
  fastnn predict mlp.fnn digits.npz
  fastnn info
  fastnn export mlp.fnn mlp.onnx                # ONNX file for ONNX Runtime etc.
  fastnn serve                                  # draw a digit at http://127.0.0.1:8000/
  fastnn bench --quick                          # a one-minute benchmark smoke run
  fastnn bench --networks digits-16 --peers torch
"""


def _parser():
    from . import __version__
    from .presets import PRESETS

    p = argparse.ArgumentParser(
        prog="fastnn", description="Train and use small, fast neural networks.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"fastnn {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a network on MNIST (or your .npz data)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", default="mnist",
                   help="'mnist' (downloaded and cached), a folder of MNIST IDX files, or an "
                        ".npz with x_train, y_train, x_test, y_test")
    t.add_argument("--preset", default="digits-16", choices=sorted(PRESETS),
                   help="a reference network; the options below override its settings")
    t.add_argument("--layers", help="hidden layer sizes, comma separated, e.g. 128,64")
    t.add_argument("--activation", help="hidden activation: sigmoid, relu, tanh, leaky_relu, "
                                        "identity (several: comma separated, one per layer)")
    t.add_argument("--output", help="output activation: softmax, sigmoid or identity")
    t.add_argument("--loss", help="cross_entropy, mse or binary_cross_entropy")
    t.add_argument("--optimizer", choices=["sgd", "momentum", "nesterov", "adam"])
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--momentum", type=float, default=0.9, help="for momentum/nesterov")
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    t.add_argument("--schedule", default="none",
                   help="learning-rate schedule: none, cosine, or step:EPOCHS:GAMMA")
    t.add_argument("--epochs", type=int, help="passes over the training set")
    t.add_argument("--batch-size", type=int, help="samples per step")
    t.add_argument("--backend", default="auto", help="auto, cython, numba or numpy")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--threads", type=int, help="threads for fastnn and BLAS (default: all)")
    t.add_argument("--seed", type=int, default=0, help="seed for initialisation and shuffling")
    t.add_argument("--limit", type=int, help="use only the first N training samples")
    t.add_argument("--save", metavar="PATH", help="save the trained model here")
    t.add_argument("--plots", metavar="DIR", help="write PNG plots here (needs matplotlib)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch output")

    e = sub.add_parser("evaluate", help="loss and accuracy of a saved model on test data")
    e.add_argument("model", help="a model file written by --save or model.save()")
    e.add_argument("--data", default="mnist", help="as for train; the test part is used")

    pr = sub.add_parser("predict", help="predict digits for images with a saved model")
    pr.add_argument("model")
    pr.add_argument("file", help="an IDX or .npz file of images (N,28,28)/(N,784), or a PNG")
    pr.add_argument("--backend", default="auto")

    sub.add_parser("info", help="version, backends, threads, BLAS and CPU")

    ex = sub.add_parser("export", help="convert a saved model to ONNX (needs fastnn[onnx])")
    ex.add_argument("model", help="a model file written by --save or model.save()")
    ex.add_argument("output", help="the .onnx file to write")
    ex.add_argument("--opset", type=int, help="ONNX opset (default: fastnn.onnx.DEFAULT_OPSET)")

    sv = sub.add_parser("serve", help="draw-a-digit page and inference API (needs fastnn[serve])")
    sv.add_argument("model", nargs="?", help="a saved model (default: a cached digits-16, or "
                                             "one trained now on MNIST)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                                                        "127.0.0.1, this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    sv.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")

    sub.add_parser("bench", add_help=False,
                   help="training throughput of every backend next to a plain NumPy MLP "
                        "('fastnn bench --help' for its options)")
    return p


def _load_data(spec):
    from . import datasets

    if spec == "mnist":
        return datasets.load_mnist()
    if spec.endswith(".npz"):
        with np.load(spec, allow_pickle=False) as f:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
            if missing:
                raise ValueError(f"{spec}: missing arrays {sorted(missing)}")
            x, y, xt, yt = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        if x.dtype == np.uint8:
            x, xt = x / np.float32(255), xt / np.float32(255)
        return (x.reshape(len(x), -1), y), (xt.reshape(len(xt), -1), yt)
    return datasets.load_mnist(path=spec)


def _schedule(spec):
    from .optimizers import StepDecay

    if spec == "none":
        return None
    if spec == "cosine":
        return "cosine"
    parts = spec.split(":")
    if len(parts) == 3 and parts[0] == "step":
        return StepDecay(int(parts[1]), float(parts[2]))
    raise ValueError(f"--schedule: expected none, cosine or step:EPOCHS:GAMMA, got {spec!r}")


def cmd_train(a):
    from . import threads as th
    from .layers import Dense
    from .model import Sequential
    from .optimizers import CosineDecay
    from .optimizers import make as make_optimizer
    from .presets import PRESETS

    p = dict(PRESETS[a.preset])
    hidden = [int(s) for s in a.layers.split(",")] if a.layers else p["hidden"]
    acts = (a.activation or p["activation"]).split(",")
    if len(acts) == 1:
        acts = acts * len(hidden)
    if len(acts) != len(hidden):
        raise ValueError(f"--activation: give one activation or {len(hidden)}, got {len(acts)}")
    epochs = a.epochs if a.epochs is not None else p["epochs"]
    batch = a.batch_size or p["batch_size"]
    opt_name, lr = p["optimizer"]
    if a.optimizer:   # another optimiser than the preset's: its own default lr
        opt_name, lr = a.optimizer, None
    lr = a.lr if a.lr is not None else lr
    sched = _schedule(a.schedule)
    if sched == "cosine":
        sched = CosineDecay(max(epochs, 1))
    opt = make_optimizer(opt_name, lr, a.momentum, a.weight_decay, sched)
    if a.threads:
        th.set_num_threads(a.threads)

    (x, y), (xt, yt) = _load_data(a.data)
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    n_classes = int(max(y.max(), yt.max())) + 1
    layers = [Dense(h, f) for h, f in zip(hidden, acts, strict=True)]
    layers.append(Dense(n_classes, a.output or p["output"]))
    model = Sequential(layers, input_size=x.shape[1] if x.ndim == 2 else int(np.prod(x.shape[1:])),
                       loss=a.loss or p["loss"], optimizer=opt, dtype=a.dtype,
                       backend=a.backend, seed=a.seed)
    sizes = "-".join(str(int(s)) for s in model.net.sizes)
    print(f"fastnn {sizes} {','.join(acts)}/{layers[-1].activation} {model.loss} "
          f"{opt!r} batch {batch} {a.dtype} backend={model.backend.name} "
          f"threads={th.get_num_threads()}", flush=True)
    t0 = time.perf_counter()
    hist = model.fit(x, y, epochs=epochs, batch_size=batch, seed=a.seed,
                     validation_data=(xt, yt), verbose=0 if a.quiet else 1)
    wall = time.perf_counter() - t0
    ev = model.evaluate(xt, yt)
    train_sps = np.median(hist["samples_per_sec"]) if len(hist) else float("nan")
    acc = f"{ev.accuracy:.2%}" if ev.accuracy is not None else "n/a"
    print(f"test accuracy {acc}  test loss {ev.loss:.4f}  training {train_sps:,.0f} samples/s "
          f"(median over {len(hist)} epochs)  wall {wall:.1f}s", flush=True)
    if a.save:
        model.save(a.save)
        print(f"saved {a.save}")
    if a.plots:
        from . import plots
        for path in plots.save_all(model, hist, xt, yt, a.plots):
            print(f"wrote {path}")
    return 0


def cmd_evaluate(a):
    from .io import load

    model = load(a.model)
    _, (xt, yt) = _load_data(a.data)
    ev = model.evaluate(xt, yt)
    acc = f"{ev.accuracy:.2%}" if ev.accuracy is not None else "n/a"
    print(f"{a.model}: test loss {ev.loss:.4f}  accuracy {acc}  ({len(xt)} samples)")
    return 0


def _read_images(path):
    from .datasets import read_idx

    if path.lower().endswith(".png"):   # MNIST-style, exactly as fastnn serve's uploads
        from .datasets.preprocessing import image_to_mnist
        return image_to_mnist(path)[None]
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            key = "x" if "x" in f.files else ("x_test" if "x_test" in f.files else f.files[0])
            x = f[key]
    else:
        x = read_idx(path)
    if x.ndim == 2 and x.shape[1] != 784 and x.shape == (28, 28):
        x = x[None]
    return x / np.float32(255) if x.dtype == np.uint8 else x


def cmd_predict(a):
    from .io import load

    model = load(a.model, backend=a.backend)
    x = _read_images(a.file)
    probs = model.predict(x.reshape(len(x), -1))
    for i, p in enumerate(probs[:1000]):
        top = int(np.argmax(p))
        print(f"{i}\t{top}\t{p[top]:.3f}")
    if len(probs) > 1000:
        print(f"... {len(probs) - 1000} more")
    return 0


def cmd_info(a):
    from . import __version__
    from .backends import backend_status, get_backend
    from .bench import machine
    from .threads import get_num_threads

    print(f"fastnn {__version__}  python {platform.python_version()}  numpy {np.__version__}")
    print(f"platform {platform.platform()}  cpu {machine.cpu_model()}  cpus {os.cpu_count()}")
    print(f"cpu features {' '.join(machine.cpu_features()) or 'unknown'}")
    print(f"cpu generation {machine.cpu_generation() or 'unknown'}  "
          f"caches {machine.cpu_caches() or 'unknown'}")
    print(f"threads {get_num_threads()}")
    for name, status in backend_status().items():
        print(f"backend {name:<7} {status}")
        if status == "ok":
            info = getattr(get_backend(name), "build_info", None)
            for k, v in (info() if info else {}).items():
                print(f"  {k}: {v}")
    print(f"auto -> {get_backend('auto').name}")
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            print(f"pool {pool.get('internal_api')} {pool.get('version')} "
                  f"threads={pool.get('num_threads')} arch={pool.get('architecture')}")
    except Exception as exc:  # noqa: BLE001 - informational only
        print(f"pool info unavailable: {exc}")
    return 0


def cmd_bench(args):
    from .bench import compare

    return compare.main(args) or 0


def cmd_export(a):
    from .io import load
    from .onnx import save_onnx

    model = load(a.model)
    save_onnx(model, a.output, opset=a.opset)
    print(f"wrote {a.output} ({model!r}, output: {model.layers[-1].activation})")
    return 0


def cmd_serve(a):
    from . import serve

    if not 0 <= a.port <= 65535 or a.workers < 1:
        raise ValueError("--port must be in 0..65535 and --workers at least 1")
    serve.require()
    return serve.run(a.model, host=a.host, port=a.port, workers=a.workers)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "info": cmd_info, "export": cmd_export, "serve": cmd_serve}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:   # every option belongs to the compare command
        try:
            return cmd_bench(argv[1:])
        except RuntimeError as exc:
            print(f"fastnn: error: {exc}", file=sys.stderr)
            return 1
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one readable line unless --debug
        if args.debug:
            raise
        print(f"fastnn: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
