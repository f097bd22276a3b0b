"""CPU time per training epoch under kernel-tuning overrides (csrc/fnn_tuning.h's measurements).

    FASTNN_NUM_THREADS=1 python -m benchmarks.tuning_sweep mlp-128 64 --rows 20000 \
        --try "" narrow_max=128 gemm_min=100000

Each --try is a comma-separated list of fastnn._kernels.set_tuning overrides ("" = defaults);
one thread, float32, time.process_time, median of --rounds fit epochs on the first --rows MNIST
rows.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("network")
    p.add_argument("batch", type=int)
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--try", dest="tries", nargs="+", default=[""])
    a = p.parse_args(argv)
    import fastnn._kernels as kernels

    from fastnn.bench import config

    (x, y), _ = config.load_data()
    defaults = kernels.get_tuning()
    for spec in a.tries:
        overrides = {k: int(v) for k, v in (kv.split("=") for kv in spec.split(",") if kv)}
        kernels.set_tuning(**defaults)
        kernels.set_tuning(**overrides)
        trainer = config.Trainer(a.network, a.batch, "cython", x[:a.rows], y[:a.rows])
        trainer.warmup()
        times = []
        for r in range(a.rounds):
            t0 = time.process_time()
            trainer.fit(trainer.x, trainer.y, r)
            times.append(time.process_time() - t0)
        print(f"{a.network} b{a.batch} {spec or 'defaults'}: "
              f"{statistics.median(times) * 1e3:.1f} ms CPU per {a.rows}-row epoch")
    kernels.set_tuning(**defaults)


if __name__ == "__main__":
    main()
