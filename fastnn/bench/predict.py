"""Inference next to PyTorch: one-row latency and 10k-row throughput, float32, real MNIST.

    python -m fastnn.bench.predict [--networks digits-16 mlp-128 wide-512] [--peers torch]
                                   [--threads 2] [--json predict.json]

fastnn: ``model.predict(row)`` on one (784,) test row, and ``model.predict(x_test)`` on the
10000 test rows (the auto backend). PyTorch: the same weights in ``torch.nn.Sequential``,
called as a user calls it (``torch.from_numpy``, ``no_grad``, softmax, ``.numpy()``). Each
engine in its own process, pinned to the thread count; medians of many calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import config as B
from . import machine as M
from . import peers as P

NETWORKS = ("digits-16", "mlp-128", "wide-512")
ONE_CALLS, BIG_ROUNDS = 3000, 15
MARK = "@@FASTNN-PREDICT@@ "


def _timings(fn, row, big):
    fn(row)
    fn(big)                                            # compile, workspaces: untimed
    one = []
    for _ in range(ONE_CALLS):
        t0 = time.perf_counter()
        fn(row)
        one.append(time.perf_counter() - t0)
    many = []
    for _ in range(BIG_ROUNDS):
        t0 = time.perf_counter()
        fn(big)
        many.append(time.perf_counter() - t0)
    return {"one_row_us": 1e6 * statistics.median(one),
            "rows_per_sec": len(big) / statistics.median(many)}


def worker(engine, network, threads):
    """Measure one engine on one network in this (fresh) process; print a JSON line."""
    P.configure_threads(engine, threads)
    from fastnn.threads import set_num_threads
    set_num_threads(threads)
    _, (xt, _) = B.load_data()
    big = np.ascontiguousarray(xt, dtype=np.float32)
    model = B.build(network, "auto")
    if engine == "fastnn":
        out = _timings(model.predict, np.ascontiguousarray(big[0]), big)
        out["resolves_to"] = model.backend.name
    else:
        peer = P.make(engine, P.spec_of(model), P.weights_of(model), threads)
        out = _timings(peer.predict, big[:1], big)     # torch takes a (1, 784) batch
        diff = np.abs(peer.predict(big[:1000]).astype(np.float64) - model.predict(big[:1000]))
        out["max_abs_diff"] = float(diff.max())
    print(MARK + json.dumps(out), flush=True)


def run(networks, engines, threads, log=print):
    rows = []
    for network in networks:
        for engine in engines:
            cmd = [sys.executable, "-m", "fastnn.bench.predict", "--worker", engine, network,
                   "--threads", str(threads)]
            snap = M.cpu_snapshot()
            proc = subprocess.run(cmd, env=M.worker_env(threads), capture_output=True,
                                  text=True, timeout=900)
            bg = M.background_cpus(snap, M.cpu_snapshot())
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
            if proc.returncode != 0 or not lines:
                rows.append({"network": network, "engine": engine,
                             "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
                log(f"  {network:<10} {engine:<7} FAILED: {rows[-1]['error']}")
                continue
            row = {"network": network, "engine": engine, "background_cpus": bg,
                   **json.loads(lines[-1][len(MARK):])}
            rows.append(row)
            log(f"  {network:<10} {engine:<7} {row['one_row_us']:8.2f} us/row   "
                f"{row['rows_per_sec']:>12,.0f} rows/s (10k)   bg {bg:.2f} CPUs")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fastnn.bench.predict",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--peers", nargs="+", default=["torch"])
    ap.add_argument("--threads", type=int, default=B.bench_threads())
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(*a.worker, a.threads)
        return 0
    peers = [p for p in a.peers if p == "torch" and P.installed(p)]
    result = {"command": "python -m fastnn.bench.predict " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
              "threads": a.threads, "peer_versions": {p: P.version(p) for p in peers}}
    print(f"predict, float32, {a.threads} thread(s): one row (median of {ONE_CALLS} calls) "
          f"and the 10000 MNIST test rows (median of {BIG_ROUNDS})", file=sys.stderr)
    result["rows"] = run(a.networks, ["fastnn", *peers], a.threads,
                         lambda m: print(m, file=sys.stderr, flush=True))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
        print(f"results written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
