"""A hyper-parameter search on Dask: many small fastnn networks, one per task.

    python examples/grid_search_dask.py                        # LocalCluster: 2 workers x 1 thread
    python examples/grid_search_dask.py --scheduler tcp://10.0.0.5:8786   # an existing cluster
    python examples/grid_search_dask.py --quick --check        # small, and compare with n_jobs=1

fastnn.sklearn.MLPClassifier under scikit-learn's GridSearchCV, with joblib's Dask backend
sending each (candidate, fold) fit to a worker. fastnn.dask.ThreadCap caps fastnn's threads on
every worker at the worker's thread count, so the workers never oversubscribe the cores.
Needs `pip install "dask[distributed]" scikit-learn`. See docs/scaling.md.
"""

from __future__ import annotations

import time

from _common import fastnn as fn
from _common import parser, run


def parse_args(argv=None):
    p = parser("GridSearchCV of fastnn MLPs on Dask.")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler (default: start a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    p.add_argument("--rows", type=int, default=10000, help="MNIST training rows searched over")
    p.add_argument("--check", action="store_true",
                   help="run the same search with n_jobs=1 and compare the scores")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    from distributed import Client, LocalCluster
    from joblib import parallel_backend
    from sklearn.model_selection import GridSearchCV

    from fastnn.dask import ThreadCap
    from fastnn.sklearn import MLPClassifier

    (x, y), _ = fn.datasets.load_mnist()
    rows = 2000 if args.quick else args.rows
    x, y = x[:rows], y[:rows]
    grid = {"hidden_layer_sizes": [(32,), (64,), (64, 32)],
            "learning_rate_init": [1e-3, 3e-3]}
    est = MLPClassifier(max_iter=3 if args.quick else 10, random_state=0, batch_size=64)
    if args.scheduler:
        client, cluster = Client(args.scheduler), None
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        client.register_plugin(ThreadCap())
        print(f"Dask: {len(client.scheduler_info()['workers'])} workers; {len(x):,} rows, "
              f"{np.prod([len(v) for v in grid.values()])} candidates x 3 folds", flush=True)
        start = time.perf_counter()
        with parallel_backend("dask"):
            search = GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(x, y)
        print(f"search on Dask: {time.perf_counter() - start:.1f}s")
        for params, score in zip(search.cv_results_["params"],
                                 search.cv_results_["mean_test_score"], strict=True):
            print(f"  {params}  mean accuracy {score:.4f}")
        print(f"best: {search.best_params_} ({search.best_score_:.4f})")
        if args.check:
            start = time.perf_counter()
            local = GridSearchCV(est, grid, cv=3, n_jobs=1).fit(x, y)
            same = np.array_equal(local.cv_results_["mean_test_score"],
                                  search.cv_results_["mean_test_score"])
            print(f"search with n_jobs=1: {time.perf_counter() - start:.1f}s; "
                  f"same scores as on Dask: {same}")
            if not same:
                return 1
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore", message="Stochastic Optimizer")
    run(main)
