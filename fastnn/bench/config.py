"""fastnn's benchmark suite: shared configuration and helpers.

Everything here trains on real MNIST (``fastnn.datasets.load_mnist``), in float32, with a thread
count fixed for the whole run (``FASTNN_BENCH_THREADS``, default 2), JIT compilation and warm-up
outside the timed region, and medians over several rounds.

Environment knobs (shared by the pytest suite and ``fastnn bench``):
  FASTNN_BENCH_THREADS  threads for fastnn and BLAS (default 2)
  FASTNN_BENCH_ROUNDS   timed rounds per benchmark (default 5)
  FASTNN_BENCH_SAMPLES  cap on training samples per round (default: the per-config slice)
"""

from __future__ import annotations

import os
import re
import time
import warnings

import numpy as np

DTYPE = "float32"
SEED = 0

# (preset, batch size) pairs: the reference networks of DESIGN.md, one benchmark group each.
CONFIGS = [
    ("digits-16", 1), ("digits-16", 10), ("digits-16", 32),
    ("nielsen-30", 10), ("mlp-128", 64), ("wide-512", 256),
]
# Training samples timed per round (same for every engine, so each group does the same work).
# Rounded down to a whole number of batches. Slow configurations get a smaller slice.
SLICE = {
    ("digits-16", 1): 15_000,
    ("wide-512", 256): 15_360,
}
FULL_EPOCH = 60_000
# The width sweep: 784-W-W-10 ReLU/softmax, momentum SGD, batch 128, on 20k rows a round
# ("width-W" works for any W as a network name; WIDTHS are the ones the sweep runs).
WIDTHS = (32, 64, 128, 256, 512, 1024)
WIDTH_BATCH, WIDTH_SAMPLES, WIDTH_LR = 128, 20_000, 0.05
_WIDTH = re.compile(r"width-([1-9][0-9]*)$")
# Engines that run one Python-level step per minibatch get a smaller slice at small batches
# (compare.py only; samples/s is what is compared, and the rounds stay about a second long).
PER_STEP_ENGINES = {"torch": 15_000}
CHECK_TOL = 1e-4         # agreement check: max |p - p_numpy| on CHECK_ROWS test rows
CHECK_ROWS = 1000
WARMUP_SAMPLES = 2_048   # the warm-up fit before any timing (JIT compilation happens here)


def config_key(name, batch):
    return f"{name}/b{batch}"


def parse_config(text):
    """'digits-16/b32' -> [('digits-16', 32)]; 'digits-16' -> all its batch sizes;
    'widths' -> the width sweep (every 'width-W' of WIDTHS at batch WIDTH_BATCH)."""
    if text == "widths":
        return [(f"width-{w}", WIDTH_BATCH) for w in WIDTHS]
    if "/" in text:
        name, b = text.split("/", 1)
        batch = int(b.lstrip("b"))
        return [(name, batch)]
    found = [c for c in CONFIGS if c[0] == text]
    if not found and width_of(text):
        found = [(text, WIDTH_BATCH)]
    if not found:
        from fastnn import presets
        if text not in presets.PRESETS:
            raise ValueError(f"unknown network {text!r}; expected one of "
                             f"{sorted({c[0] for c in CONFIGS})} or NAME/bBATCH")
        found = [(text, presets.PRESETS[text]["batch_size"])]
    return found


def width_of(name):
    """W of a width-sweep network name ("width-W"), else None."""
    m = _WIDTH.match(name)
    return int(m.group(1)) if m else None


def env_int(name, default, lo=1):
    val = os.environ.get(name)
    if not val:
        return default
    n = int(val)
    if n < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {val!r}")
    return n


def bench_threads():
    return env_int("FASTNN_BENCH_THREADS", 2)


def bench_rounds():
    return env_int("FASTNN_BENCH_ROUNDS", 5)


def samples_per_round(name, batch, cap=None, engine=None):
    """Training samples timed in one round for a configuration (a multiple of the batch)."""
    n = WIDTH_SAMPLES if width_of(name) else SLICE.get((name, batch), FULL_EPOCH)
    if engine in PER_STEP_ENGINES and batch <= 32:
        n = min(n, PER_STEP_ENGINES[engine])
    cap = cap if cap is not None else env_int("FASTNN_BENCH_SAMPLES", 0, lo=0) or None
    if cap:
        n = min(n, cap)
    return max(batch, (n // batch) * batch)


_DATA = None


def load_data():
    """Real MNIST: ((x_train, y_train), (x_test, y_test)), float32 pixels in [0, 1]."""
    global _DATA
    if _DATA is None:
        from fastnn.datasets import load_mnist
        _DATA = load_mnist(verbose=False)
    return _DATA


def engines():
    """fastnn backends available here, plus 'auto' (the default a user gets)."""
    import fastnn
    return [*fastnn.available_backends(), "auto"]


def resolved(backend):
    """The backend module name 'auto' (or a name) resolves to."""
    import fastnn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fastnn.get_backend(backend).name


def build(name, backend, seed=SEED):
    """A reference network (a preset name) or a width-sweep network ("width-W")."""
    from fastnn import Dense, Sequential, optimizers, presets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        w = width_of(name)
        if w is None:
            return presets.build(name, backend=backend, dtype=DTYPE, seed=seed)
        return Sequential([Dense(w, "relu"), Dense(w, "relu"), Dense(10, "softmax")],
                          input_size=784, loss="cross_entropy", backend=backend, dtype=DTYPE,
                          seed=seed, optimizer=optimizers.make("momentum", WIDTH_LR))


def epoch_order(model, n, epoch, seed=SEED):
    """The minibatch order fastnn.fit uses for epoch ``epoch`` (shared with the peers)."""
    return model._epoch_order(n, epoch, True, seed)


def flops_per_sample(sizes):
    """Training FLOPs per sample of a dense network with layer sizes ``sizes``.

    forward 2*M (M = sum of n_in*n_out), weight gradients 2*M, input gradients 2*(M - M_1)
    (the first layer needs none): 6*M - 2*M_1. Biases, activations and the optimiser are left
    out (they are O(parameters / batch) or O(units), small next to the matrix products).
    """
    macs = [int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return 6 * sum(macs) - 2 * macs[0]


FLOPS_FORMULA = ("FLOPs/sample = 2*M (forward) + 4*M (backward: weight and input gradients) "
                 "- 2*M_1 (the first layer computes no input gradient) = 6*M - 2*M_1, where "
                 "M = sum over layers of n_in*n_out multiply-adds and M_1 = 784*n_1; biases, "
                 "activations and the optimiser are not counted")


class Trainer:
    """One fastnn model on a slice of MNIST, trained as users train: one ``fit`` per epoch.

    ``run(epoch)`` times ``model.fit(x, y, epochs=epoch + 1, initial_epoch=epoch)`` on the
    slice: input validation, target conversion and the fused native loop, with fit's minibatch
    order for (seed, epoch), which the peers replay through ``epoch_order``.
    """

    def __init__(self, name, batch, backend, x, y, seed=SEED):
        self.model = build(name, backend, seed)
        self.name, self.batch, self.seed = name, int(batch), seed
        self.x = np.ascontiguousarray(x, dtype=self.model.dtype)
        self.y = np.asarray(y)

    @property
    def n(self):
        return len(self.x)

    def warmup(self, n=WARMUP_SAMPLES):
        """A short fit on a small slice: compiles JIT kernels, touches every code path."""
        m = min(n, self.n)
        self.fit(self.x[:m], self.y[:m], 0)

    def fit(self, x, y, epoch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=self.batch,
                           verbose=0, seed=self.seed)

    def run(self, epoch=0):
        """One ``fit`` pass over the slice with epoch ``epoch``'s order; returns its seconds."""
        t0 = time.perf_counter()
        self.fit(self.x, self.y, epoch)
        return time.perf_counter() - t0
