"""fit()'s cost before its first training step, on full MNIST (60000 x 784 float32).

    python -m benchmarks.fit_overhead [--rounds 7] [--backend cython]

Times model.fit(x, y, epochs=1) from the call to the first train_steps call of the backend (input
validation, target conversion, workspace, shuffle), median of the rounds, and the whole call.
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
import warnings

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--backend", default="cython")
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import fastnn.presets
    from fastnn.datasets import load_mnist

    (x, y), _ = load_mnist(verbose=False)
    x = np.ascontiguousarray(x.reshape(len(x), -1), np.float32)
    m = fastnn.presets.build("digits-16", backend=a.backend, seed=0)
    be, first = m.backend, []

    def train_steps(*args):
        if not first:
            first.append(time.perf_counter())
        return be.train_steps(*args)

    proxy = types.SimpleNamespace(**{k: getattr(be, k) for k in dir(be) if k[:2] != "__"})
    proxy.train_steps = train_steps
    m.backend = proxy
    before, whole = [], []
    for r in range(a.rounds):
        first.clear()
        t0 = time.perf_counter()
        m.fit(x, y, epochs=1, batch_size=10, verbose=0, seed=r)
        whole.append(time.perf_counter() - t0)
        before.append(first[0] - t0)
    print(f"{be.name}: {statistics.median(before) * 1e3:.1f} ms before the first step "
          f"(rounds {[round(v * 1e3, 1) for v in before]}); whole fit(epochs=1) digits-16 "
          f"batch 10: {statistics.median(whole) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
