"""Training throughput on real MNIST: one group per reference network and batch size, one row
per backend. Each round is one ``fit`` call over a fixed slice of the training set (the same
slice for every backend of a group), as users call it, one epoch per call. A warm-up fit (JIT
compilation) and one warm-up round come first and are not timed.
"""

from __future__ import annotations

import statistics

import pytest

from fastnn.bench import config as B


@pytest.mark.parametrize("backend", B.engines())
@pytest.mark.parametrize("config", B.CONFIGS, ids=[B.config_key(*c) for c in B.CONFIGS])
def test_train(benchmark, mnist, rounds, info, config, backend):
    name, batch = config
    (x, y), _ = mnist
    n = B.samples_per_round(name, batch)
    trainer = B.Trainer(name, batch, backend, x[:n], y[:n])
    trainer.warmup()
    benchmark.group = f"train {B.config_key(name, batch)} ({n} samples/round)"
    epoch = iter(range(1_000_000))
    times = []

    def one_pass():
        times.append(trainer.run(next(epoch)))

    benchmark.pedantic(one_pass, rounds=rounds, warmup_rounds=1, iterations=1)
    timed = times[1:] or times  # the first call is the warm-up round (when timing is enabled)
    median = statistics.median(timed)
    info(backend, network=name, batch_size=batch, samples_per_round=n,
         samples_per_sec=n / median, samples_per_sec_rounds=[n / t for t in timed],
         flops_per_sample=B.flops_per_sample(trainer.model.net.sizes))
