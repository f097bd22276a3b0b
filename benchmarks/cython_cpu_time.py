"""CPU time of one training epoch on the Cython backend, every reference network, float32.

    FASTNN_NUM_THREADS=1 PYTHONPATH=<tree with a built fastnn/> \
        python -m benchmarks.cython_cpu_time [--rounds 7] [--out run.json] [--only mlp-128]

For before/after comparisons of the C kernels on a shared machine: time.process_time (CPU time,
so other processes on the machine count less than in wall time), one thread. Each round is a few
fit epochs (fastnn.bench.config.Trainer, as users call fit) on a fixed MNIST slice; the median
over rounds is printed and, with --out, every round is saved. Build the old tree separately
(python setup.py build_ext --inplace) and alternate the runs, old and new.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

# epochs per round, so that a round takes ~0.1-0.4 s
REPEATS = {("digits-16", 1): 4, ("digits-16", 10): 5, ("digits-16", 32): 5,
           ("nielsen-30", 10): 4, ("mlp-128", 64): 1, ("wide-512", 256): 1}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default=None)
    p.add_argument("--only", nargs="*", default=None, help="network names (default: all)")
    a = p.parse_args(argv)
    import fastnn._kernels as kernels

    from fastnn.bench import config

    (x, y), _ = config.load_data()
    result = {"so": kernels.__file__, "isa": kernels.isa()}
    for name, batch in config.CONFIGS:
        if a.only and name not in a.only:
            continue
        n = (15360 if name == "wide-512" else 60000) // batch * batch
        trainer = config.Trainer(name, batch, "cython", x[:n], y[:n])
        trainer.warmup()
        reps, times = REPEATS[(name, batch)], []
        for r in range(a.rounds):
            t0 = time.process_time()
            for k in range(reps):
                trainer.fit(trainer.x, trainer.y, r * 10 + k)
            times.append((time.process_time() - t0) / reps)
        result[f"{name} b{batch}"] = {"rows": n, "median_s": statistics.median(times),
                                      "rounds_s": times}
        print(f"{name} b{batch}: {statistics.median(times) * 1e3:.1f} ms CPU per {n}-row epoch")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
