"""fastnn on Ray (the alternative to Dask that docs/scaling.md documents): a local Ray instance
with 2 CPUs, a grid search through ray.util.joblib and predictions from the object store.

A watchdog (faulthandler) ends the run with a traceback if Ray hangs, so CI is bounded.
"""

from __future__ import annotations

import faulthandler

import numpy as np
import pytest

import fastnn
from tests._require import require

ray = require("ray")
require("sklearn")
import joblib  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from fastnn.sklearn import MLPClassifier  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning",
                                        "ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def ray_local():
    faulthandler.dump_traceback_later(600, exit=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"FASTNN_NUM_THREADS": "1"}})
    try:
        yield
    finally:
        ray.shutdown()
        faulthandler.cancel_dump_traceback_later()


def test_grid_search_on_ray_equals_n_jobs_1(ray_local):
    from ray.util.joblib import register_ray

    register_ray()
    x, y = load_digits(return_X_y=True)
    x, y = x[:600] / 16.0, y[:600]
    grid = {"hidden_layer_sizes": [(16,), (32,)], "learning_rate_init": [1e-3, 1e-2]}
    est = MLPClassifier(max_iter=8, random_state=0, batch_size=32, threads=1)
    local = GridSearchCV(est, grid, cv=3, n_jobs=1).fit(x, y)
    with joblib.parallel_backend("ray"):
        remote = GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(x, y)
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert remote.best_params_ == local.best_params_


@ray.remote
def _predict(model, block):
    return fastnn.threads.get_num_threads(), model.predict(block)


def test_predictions_from_the_object_store(ray_local):
    model = fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dense(4, "softmax")],
                              input_size=10, seed=1)
    x = np.random.default_rng(0).normal(size=(3000, 10)).astype(np.float32)
    ref = ray.put(model)                     # one copy in the object store, for every task
    results = ray.get([_predict.remote(ref, x[lo:lo + 500]) for lo in range(0, 3000, 500)],
                      timeout=120)
    assert all(threads == 1 for threads, _ in results)
    np.testing.assert_array_equal(np.concatenate([out for _, out in results]),
                                  model.predict(x))
