"""fastnn's benchmark suite: shared configuration and helpers.

Everything here trains on real MNIST (``fastnn.datasets.load_mnist``), in float32, with a thread
count fixed for the whole run (``FASTNN_BENCH_THREADS``, default 2), JIT compilation and warm-up
outside the timed region, and medians over several rounds.

Environment knobs (shared by the pytest suite and ``python -m benchmarks.compare``):
  FASTNN_BENCH_THREADS  threads for fastnn and BLAS (default 2)
  FASTNN_BENCH_ROUNDS   timed rounds per benchmark (default 5)
  FASTNN_BENCH_SAMPLES  cap on training samples per round (default: the per-config slice)
"""

from __future__ import annotations

import os
import platform
import time
import warnings

import numpy as np

from fastnn.datasets import one_hot

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
# Engines that run one Python-level step per minibatch get a smaller slice at small batches
# (compare.py only; samples/s is what is compared, and the rounds stay about a second long).
PER_STEP_ENGINES = {"torch": 15_000}
WARMUP_SAMPLES = 2_048   # the warm-up fit before any timing (JIT compilation happens here)


def config_key(name, batch):
    return f"{name}/b{batch}"


def parse_config(text):
    """'digits-16/b32' -> [('digits-16', 32)]; 'digits-16' -> all its batch sizes."""
    if "/" in text:
        name, b = text.split("/", 1)
        batch = int(b.lstrip("b"))
        return [(name, batch)]
    found = [c for c in CONFIGS if c[0] == text]
    if not found:
        from fastnn import presets
        if text not in presets.PRESETS:
            raise ValueError(f"unknown network {text!r}; expected one of "
                             f"{sorted({c[0] for c in CONFIGS})} or NAME/bBATCH")
        found = [(text, presets.PRESETS[text]["batch_size"])]
    return found


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
    n = SLICE.get((name, batch), FULL_EPOCH)
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
    from fastnn import presets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return presets.build(name, backend=backend, dtype=DTYPE, seed=seed)


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
    """One fastnn model on a slice of MNIST, trained exactly as ``Sequential.fit`` does it.

    ``run(epoch)`` runs one pass over the slice through the backend's fused ``train_steps`` in
    the chunks fit uses (fastnn.model.SAMPLES_PER_CALL), with fit's minibatch order. Input
    validation and target conversion happen once, here, not in the timed region (fit does them
    at every call: ~50 ms for 60000 rows), so the timing is the training loop alone, like the
    peers' loops over prepared tensors.
    """

    def __init__(self, name, batch, backend, x, y, seed=SEED):
        from fastnn.codes import ACC_ARGMAX
        self.model = build(name, backend, seed)
        self.name, self.batch, self.seed = name, int(batch), seed
        self.x = np.ascontiguousarray(x, dtype=self.model.dtype)
        self.y = one_hot(y, self.model.output_size, self.model.dtype)
        self.acc_mode = ACC_ARGMAX
        self.ws = self.model.backend.workspace(self.model.net, self.batch)
        self.model.optimizer.set_epoch(0)

    @property
    def n(self):
        return len(self.x)

    def warmup(self, n=WARMUP_SAMPLES):
        """A short fit on a small slice: compiles JIT kernels, touches every code path."""
        m = min(n, self.n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(self.x[:m], self.y[:m], epochs=1, batch_size=self.batch, verbose=0,
                           seed=self.seed)

    def order(self, epoch):
        """fit's minibatch order of the slice for an epoch (made outside the timed region)."""
        return epoch_order(self.model, self.n, epoch, self.seed)

    def train(self, order):
        """One pass over the slice in ``order``: the timed region."""
        from fastnn.model import SAMPLES_PER_CALL
        m = self.model
        be, net, opt, bs = m.backend, m.net, m.optimizer, self.batch
        steps = -(-self.n // bs)
        chunk = max(1, SAMPLES_PER_CALL // bs)
        step = 0
        while step < steps:
            k = min(chunk, steps - step)
            be.train_steps(net, opt, self.x, self.y, order, step * bs, k, bs, self.ws,
                           self.acc_mode)
            step += k

    def run(self, epoch=0):
        """One pass over the slice with epoch ``epoch``'s order; returns its seconds."""
        order = self.order(epoch)
        t0 = time.perf_counter()
        self.train(order)
        return time.perf_counter() - t0


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = platform.processor()
    except OSError:
        name = platform.processor()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        simd = [s for s in ("avx512f", "avx2", "fma") if f" {s}" in text]
        flags = f" ({', '.join(simd)})" if simd else ""
    except OSError:
        pass
    n = os.cpu_count() or 1
    return f"{name}{flags}, {n} logical CPUs"


def versions():
    import fastnn
    out = {"python": platform.python_version(), "fastnn": fastnn.__version__,
           "numpy": np.__version__}
    for mod in ("numba", "scipy", "Cython", "threadpoolctl"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: just not listed
            pass
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        out["blas"] = "; ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernels)"
            for i in blas)
    except Exception:  # noqa: BLE001
        pass
    return out


def machine():
    return {"cpu": cpu_name(), "platform": platform.platform(),
            "memory_gib": _memory_gib()}


def _memory_gib():
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def sgemm_gflops(threads, n=2048, reps=10):
    """Median float32 matmul rate (GFLOP/s) of numpy's BLAS at ``threads`` threads."""
    from fastnn.threads import threads as cap
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    times = []
    with cap(threads):
        for _ in range(2):
            np.matmul(a, b, out=c)
        for _ in range(reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / float(np.median(times)) / 1e9
