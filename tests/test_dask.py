"""fastnn on a real Dask LocalCluster (2 worker processes, 1 thread each).

A watchdog (faulthandler) ends the run with a traceback if the cluster hangs, so CI is bounded.
"""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from tests._require import require

dask = require("dask")
distributed = require("distributed")
sklearn = require("sklearn")
import dask.array as da  # noqa: E402
from joblib import parallel_backend  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import fastnn.dask as fdask  # noqa: E402
from fastnn.sklearn import MLPClassifier  # noqa: E402

WATCHDOG_SECONDS = 600
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    cl = distributed.Client(cluster, timeout=60)
    cl.register_plugin(fdask.ThreadCap())
    try:
        yield cl
    finally:
        cl.close()
        cluster.close()
        faulthandler.cancel_dump_traceback_later()


def _caps():
    import threadpoolctl

    from fastnn.threads import get_num_threads
    return get_num_threads(), max(p["num_threads"]
                                  for p in threadpoolctl.threadpool_info() or [{"num_threads": 1}])


def test_thread_cap_on_every_worker(client):
    caps = client.run(_caps)
    assert len(caps) == 2
    assert all(c == (1, 1) for c in caps.values()), caps


def test_grid_search_on_dask_equals_n_jobs_1(client):
    x, y = load_digits(return_X_y=True)
    x = x[:600] / 16.0
    y = y[:600]
    grid = {"hidden_layer_sizes": [(16,), (32,)], "learning_rate_init": [1e-3, 1e-2]}
    est = MLPClassifier(max_iter=8, random_state=0, batch_size=32)
    local = GridSearchCV(est, grid, cv=3, n_jobs=1).fit(x, y)
    with parallel_backend("dask"):
        remote = GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(x, y)
    for key in ("mean_test_score", *(f"split{i}_test_score" for i in range(3))):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key], key)
    assert remote.best_params_ == local.best_params_
    assert local.best_score_ > 0.8          # the models learnt something


def _model(dtype):
    return fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dense(4, "softmax")],
                             input_size=10, seed=1, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_equals_model_predict(client, dtype):
    model = _model(dtype)
    x = np.random.default_rng(0).normal(size=(5000, 10))
    dx = da.from_array(x, chunks=(700, 5))          # column chunks are merged by predict
    out = fdask.predict(model, dx)
    assert out.shape == (5000, 4) and out.dtype == model.dtype
    got = client.compute(out).result(timeout=120)
    np.testing.assert_array_equal(got, model.predict(x))
    classes = client.compute(fdask.predict_classes(model, dx)).result(timeout=120)
    np.testing.assert_array_equal(classes, model.predict_classes(x))


def test_predict_ships_the_model_once():
    model = _model("float32")
    out = fdask.predict(model, da.zeros((1000, 10), chunks=(100, 10)))
    graph = dict(out.__dask_graph__())
    holders = [k for k, v in graph.items()
               if isinstance(getattr(v, "value", v), fastnn.Sequential)]
    blocks = [k for k in graph if k[0].startswith("_predict_block")]
    assert len(holders) == 1 and len(blocks) == 10
    assert all(holders[0] in graph[k].dependencies for k in blocks)


def test_predict_rejects_bad_input():
    model = _model("float32")
    with pytest.raises(TypeError, match="dask.array"):
        fdask.predict(model, np.zeros((3, 10)))
    with pytest.raises(ValueError, match="10 columns"):
        fdask.predict(model, da.zeros((3, 9)))
    with pytest.raises(TypeError, match="fastnn.Sequential"):
        fdask.predict("model", da.zeros((3, 10)))


@pytest.mark.slow
@pytest.mark.checkout
@pytest.mark.parametrize("name, args, line", [
    ("grid_search_dask", ["--quick", "--check"], "same scores as on Dask: True"),
    ("predict_dask", ["--quick"], "equal to model.predict: True"),
])
def test_examples(name, args, line):
    try:
        fastnn.datasets.load_mnist(verbose=False)
    except fastnn.datasets.MNISTUnavailableError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    example = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(example), *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert line in proc.stdout
