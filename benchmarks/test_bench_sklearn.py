"""fastnn.sklearn.MLPClassifier against scikit-learn's on MNIST (see benchmarks/interop.py).

sklearn-fit <config>: one ``fit`` of 5 epochs on 10k MNIST images with the same
hyper-parameters, one round per seed (0, 1, 2); extra_info holds the test accuracy per seed and
its median. Run: python -m pytest benchmarks/test_bench_sklearn.py
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import interop as I

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def data(mnist):
    x, y, xt, yt = I.sklearn_data()
    I.warm_up(x, y)
    return x, y, xt, yt


@pytest.mark.parametrize("engine", ["fastnn", "sklearn"])
@pytest.mark.parametrize("config", list(I.SKLEARN_CONFIGS))
def test_fit(benchmark, data, info, config, engine):
    x, y, xt, yt = data
    seeds, fitted = iter(I.SEEDS), []

    def setup():
        return (I.make_estimator(engine, config, next(seeds)),), {}

    def run(est):
        I.fit_seconds(est, x, y)
        fitted.append(est)

    benchmark.group = f"sklearn-fit {config}"
    benchmark.pedantic(run, setup=setup, rounds=len(I.SEEDS), iterations=1)
    accuracy = [float(est.score(xt, yt)) for est in fitted]
    info("auto", engine=engine, config=config, epochs=I.EPOCHS, n_train=len(x),
         accuracy=accuracy, accuracy_median=float(np.median(accuracy)))
