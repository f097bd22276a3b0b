"""The measuring side of ``fastnn bench``: one subprocess per network x engine.

``python -m fastnn.bench.compare --worker SPEC`` runs ``worker(SPEC)``, which prints its
results as one JSON line after MARK for the parent (fastnn/bench/compare.py) to read.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from . import config as B
from . import machine as M
from . import peers as P

MARK = "@@FASTNN-BENCH@@ "


def _emit(obj):
    print(MARK + json.dumps(obj), flush=True)


def worker(spec):
    """Measure one engine on one network; print a JSON line. Runs in a fresh process."""
    P.configure_threads(spec["engine"], spec["threads"])   # before any peer import
    engine, name, bs = spec["engine"], spec["network"], spec["batch"]
    first = np.load(spec["first_path"])
    out = {}
    x0, y0 = first["x"][:bs], first["y"][:bs]

    # -- first call: import, construct, one training step (in this fresh process) --
    t0 = time.perf_counter()
    if engine in P.PEERS:
        pspec = json.loads(str(first["spec"]))
        weights = [(first[f"w{l}"], first[f"b{l}"]) for l in range(len(pspec["acts"]))]
        peer = P.make(engine, pspec, weights, spec["threads"])
        peer.train(peer.prepare(x0, y0), peer.order(np.arange(bs), bs))
    else:
        import fastnn  # noqa: F401 - the import is part of the first call
        model = B.build(name, engine)
        model.fit(x0, y0, epochs=1, batch_size=bs, verbose=0, seed=B.SEED)
    out["first_call_s"] = time.perf_counter() - t0
    if spec["mode"] == "first":
        _emit(out)
        return

    run_round, info = _session(spec)
    if spec["mode"] == "serve":
        times = _served_rounds(run_round)
    else:
        times = [run_round(e) for e in range(1, spec["rounds"] + 1)]
    out.update(info)
    out["peak_rss_mib"] = M.rss_mib()
    out["seconds"] = times
    out["samples"] = spec["samples"]
    (x, y), (xt, _) = B.load_data()
    out["check"] = _check(spec, x, y, xt)
    _emit(out)


def _session(spec):
    """Data, engine and an untimed warm-up round; returns (run_round(epoch) -> s, info)."""
    from fastnn.threads import set_num_threads
    set_num_threads(spec["threads"])
    engine, name, bs = spec["engine"], spec["network"], spec["batch"]
    (x, y), _ = B.load_data()
    n = spec["samples"]
    xs, ys = x[:n], y[:n]
    if engine in P.PEERS:
        ref = B.build(name, "numpy")
        peer = P.make(engine, P.spec_of(ref), P.weights_of(ref), spec["threads"])
        data = peer.prepare(xs, ys)
        orders = [peer.order(B.epoch_order(ref, n, e), bs) for e in range(spec["rounds"] + 1)]
        peer.train(data, orders[0])                               # warm-up round (compiles)

        def run_round(e):
            t = time.perf_counter()
            peer.train(data, orders[e])
            return time.perf_counter() - t
        return run_round, {"version": P.version(engine)}
    trainer = B.Trainer(name, bs, engine, xs, ys)
    trainer.warmup()                                               # JIT compile, untimed
    trainer.run(0)                                                 # warm-up round, untimed
    info = {"resolves_to": trainer.model.backend.name}
    build_info = getattr(trainer.model.backend, "build_info", None)
    if build_info is not None:
        try:
            info["build_info"] = build_info()
        except Exception as exc:  # noqa: BLE001 - informational only
            info["build_info"] = f"unavailable: {exc}"
    return trainer.run, info


def _served_rounds(run_round):
    """Rounds on request (``--interleave``): the parent writes ``round E`` lines and this
    process answers each with its seconds, so engines take turns round by round."""
    _emit({"ready": True})
    times = []
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "finish":
            break
        times.append(run_round(int(cmd[1])))
        _emit({"round_seconds": times[-1]})
    return times


def _check(spec, x, y, xt):
    """Max |p - p_ref| on test rows after ``k`` steps from the same start in the same order."""
    engine, name, bs, k = spec["engine"], spec["network"], spec["batch"], spec["check_steps"]
    if k <= 0:
        return None
    n = k * bs
    ref = B.build(name, "numpy")
    init, pspec = P.weights_of(ref), P.spec_of(ref)
    order = B.epoch_order(ref, n, 0)
    ref.fit(x[:n], y[:n], epochs=1, batch_size=bs, seed=B.SEED, verbose=0)
    p_ref = ref.predict(xt[:B.CHECK_ROWS])
    if engine in P.PEERS:
        peer = P.make(engine, pspec, init, spec["threads"])
        peer.train(peer.prepare(x[:n], y[:n]), peer.order(order, bs))
        p = peer.predict(xt[:B.CHECK_ROWS])
    else:
        model = B.build(name, engine)
        model.fit(x[:n], y[:n], epochs=1, batch_size=bs, seed=B.SEED, verbose=0)
        p = model.predict(xt[:B.CHECK_ROWS])
    diff = float(np.abs(p.astype(np.float64) - p_ref).max())
    return {"steps": k, "rows": B.CHECK_ROWS, "max_abs_diff": diff, "ok": diff < B.CHECK_TOL}
