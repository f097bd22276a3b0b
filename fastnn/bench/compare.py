"""``fastnn bench``: fastnn's backends next to a plain NumPy MLP (and PyTorch / JAX).

    fastnn bench [--quick] [--networks digits-16,mlp-128/b64 ...] [--backends numpy,auto]
                 [--peers torch,jax] [--threads N] [--rounds R] [--json out.json]

Prints ONE table: training samples/s (median of R rounds, each one ``fit`` call per pass over
a fixed slice of real MNIST, float32, as users call it), the ratio to the NumPy baseline (an
MLP written the way a NumPy user writes it: fastnn.bench.numpy_mlp), the share of this
machine's sgemm rate (numpy float32 2048x2048 matmul measured in the same run at the same
thread count), peak RSS, first-step time in a fresh process (cold and warm Numba cache) and a
correctness check: the maximum |difference| of test-set probabilities against fastnn's NumPy
reference backend after the same few steps from the same initial weights in the same order.

Every (network, engine) pair runs in its own subprocess (so peak RSS and first-call times are
its own), pinned to the thread count; the JIT is warmed up and one untimed round runs first.
From a checkout, ``python -m benchmarks.report out.json`` turns the JSON into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import config as B
from . import machine as M
from . import peers as P
from .table import format_text, legend

MARK = "@@FASTNN-BENCH@@ "
WORKER_TIMEOUT = 900
QUICK_NETWORKS = ("digits-16/b10", "mlp-128/b64")
QUICK_SAMPLES, QUICK_ROUNDS = 2048, 2
BUSY_CPUS = 0.3   # a row measured while other processes used more CPUs than this is redone


# ---- the worker (one subprocess per network x engine) ---------------------------------------
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

    from fastnn.threads import set_num_threads
    set_num_threads(spec["threads"])
    (x, y), (xt, _) = B.load_data()
    n = spec["samples"]
    xs, ys = x[:n], y[:n]
    rounds = spec["rounds"]
    times = []
    if engine in P.PEERS:
        ref = B.build(name, "numpy")
        peer = P.make(engine, P.spec_of(ref), P.weights_of(ref), spec["threads"])
        data = peer.prepare(xs, ys)
        orders = [peer.order(B.epoch_order(ref, n, e), bs) for e in range(rounds + 1)]
        peer.train(data, orders[0])                               # warm-up round (compiles)
        for e in range(1, rounds + 1):
            t = time.perf_counter()
            peer.train(data, orders[e])
            times.append(time.perf_counter() - t)
        out["version"] = P.version(engine)
    else:
        trainer = B.Trainer(name, bs, engine, xs, ys)
        trainer.warmup()                                           # JIT compile, untimed
        trainer.run(0)                                             # warm-up round, untimed
        for e in range(1, rounds + 1):
            times.append(trainer.run(e))
        out["resolves_to"] = trainer.model.backend.name
        info = getattr(trainer.model.backend, "build_info", None)
        if info is not None:
            try:
                out["build_info"] = info()
            except Exception as exc:  # noqa: BLE001 - informational only
                out["build_info"] = f"unavailable: {exc}"
    out["peak_rss_mib"] = M.rss_mib()
    out["seconds"] = times
    out["samples"] = n
    out["check"] = _check(spec, x, y, xt)
    _emit(out)


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


# ---- the parent ----------------------------------------------------------------------------
def _run_worker(spec, env, log):
    cmd = [sys.executable, "-m", "fastnn.bench.compare", "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr or proc.stdout).strip()
    tail = [t.strip() for t in text.splitlines()[-6:] if t.strip()]
    log(f"    worker failed (exit {proc.returncode}): " + " | ".join(tail))
    errors = [t for t in tail if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", t)]
    return {"error": (errors or tail or [f"exit {proc.returncode}"])[-1]}


def _label(engine, resolves_to=None):
    if engine in P.PEERS:
        return P.LABELS[engine]
    if engine == "auto" and resolves_to:
        return f"fastnn auto ({resolves_to})"
    return f"fastnn {engine}"


def run(args, log=print):
    import fastnn
    configs = []
    for item in args.networks:
        for c in B.parse_config(item):
            if c not in configs:
                configs.append(c)
    available = B.engines()
    backends = args.backends or available
    for b in backends:
        if b not in available:
            raise SystemExit(f"backend {b!r} is not available here (available: {available}; "
                             f"status: {fastnn.backend_status()})")
    peers, notes = [], []
    for p in args.peers:
        if p not in P.PEERS:
            raise SystemExit(f"--peers: expected names from {P.PEERS[1:]}, got {p!r}")
        if P.installed(p):
            peers.append(p)
        else:
            extra = "torch==2.13.0" if p == "torch" else "jax jaxlib"
            notes.append(f"{P.LABELS[p]} skipped: not installed (pip install {extra})")
    engines = [*backends, *dict.fromkeys([P.BASELINE, *peers])]
    threads = args.threads
    t_waits = time.monotonic() + args.wait_idle       # all waiting for quiet ends by then
    bg_start = M.wait_idle(min(120, args.wait_idle), log) if args.wait_idle else None

    load = os.getloadavg()
    result = {
        "command": "fastnn bench " + shlex.join(args.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": M.machine(), "versions": M.versions(), "threads": threads,
        "dtype": B.DTYPE, "rounds": args.rounds, "check_steps": args.check_steps,
        "check_tolerance": B.CHECK_TOL, "flops_formula": B.FLOPS_FORMULA,
        "load_average_start": load, "notes": notes, "rows": [],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "background_cpus_start": bg_start,
        "peer_versions": {p: P.version(p) for p in peers},
    }
    log(f"fastnn benchmark: {len(configs)} network configs x {len(engines)} engines, "
        f"{threads} thread(s), {args.rounds} rounds, load average {load[0]:.2f}")
    for note in notes:
        log("  note: " + note)
    gf = M.sgemm_gflops(threads)
    result["sgemm_gflops_start"] = gf
    log(f"  sgemm (numpy float32 2048^3, {threads} threads): {gf:.1f} GFLOP/s")

    with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as tmp:
        tmp = Path(tmp)
        (x, y), _ = B.load_data()
        for name, bs in configs:
            ref = B.build(name, "numpy")
            first = tmp / f"first-{name}-{bs}.npz"
            arrays = {"x": x[:max(bs, 256)], "y": y[:max(bs, 256)],
                      "spec": np.array(json.dumps(P.spec_of(ref)))}
            for l, (w, b) in enumerate(P.weights_of(ref)):
                arrays[f"w{l}"], arrays[f"b{l}"] = w, b
            np.savez(first, **arrays)
            fps = B.flops_per_sample(ref.net.sizes)
            w = B.width_of(name)
            shape_gf = M.sgemm_gflops(threads, shape=(bs, w, w)) if w else None
            for engine in engines:
                n = B.samples_per_round(name, bs, args.samples, engine)
                spec = {"engine": engine, "network": name, "batch": bs, "threads": threads,
                        "rounds": args.rounds, "samples": n, "first_path": str(first),
                        "check_steps": args.check_steps}
                t_wall = time.perf_counter()
                row = None
                for attempt in range(args.retries + 1):
                    if attempt:
                        log(f"    busy machine ({row['background_cpus']:.2f} CPUs used by "
                            "other processes): measuring again")
                        if time.monotonic() < t_waits:
                            M.wait_idle(min(120, t_waits - time.monotonic()), log)
                    log(f"  {B.config_key(name, bs):<15} {engine:<7} ...", end="")
                    new = _measure(spec, fps, tmp / f"numba-{engine}-{name}-{bs}-{attempt}",
                                   args.first_call, log)
                    new["attempts"] = attempt + 1
                    if row is None or (new.get("samples_per_sec") is not None and (
                            row.get("samples_per_sec") is None
                            or new["background_cpus"] < row["background_cpus"])):
                        row = new
                    sps_txt = (f"{new['samples_per_sec']:>12,.0f} samples/s"
                               if new.get("samples_per_sec") else "  FAILED")
                    log(f"{sps_txt}  (bg {new['background_cpus']:.2f} CPUs, "
                        f"{time.perf_counter() - t_wall:.1f} s)")
                    if row.get("samples_per_sec") is None or (row["background_cpus"] or 0) \
                            < BUSY_CPUS:
                        break
                row["shape_sgemm_gflops"] = shape_gf
                result["rows"].append(row)

    result["sgemm_gflops_end"] = M.sgemm_gflops(threads)
    result["sgemm_gflops"] = max(result["sgemm_gflops_start"], result["sgemm_gflops_end"])
    result["load_average_end"] = os.getloadavg()
    derive(result)
    return result


def _measure(spec, fps, cache, first_call, log):
    """One row: the cold first-call process (optional), then the measuring process."""
    engine, n = spec["engine"], spec["samples"]
    threads = spec["threads"]
    row = {"network": spec["network"], "batch": spec["batch"], "engine": engine,
           "flops_per_sample": fps, "samples": n, "load_average_before": os.getloadavg()[0]}
    snap = M.cpu_snapshot()
    if first_call:
        cold = _run_worker({**spec, "mode": "first"}, M.worker_env(threads, cache), log)
        row["first_call_cold_s"] = cold.get("first_call_s")
        if "error" in cold:
            row["error"] = cold["error"]
    res = _run_worker({**spec, "mode": "full"},
                      M.worker_env(threads, cache if first_call else None), log)
    if "error" in res:
        row["error"] = res["error"]
    else:
        secs = res["seconds"]
        sps = [n / s for s in secs]
        median = n / statistics.median(secs)
        row.update({
            "samples_per_sec": median, "samples_per_sec_rounds": sps,
            "spread_pct": 100 * (max(sps) - min(sps)) / median,
            "peak_rss_mib": res["peak_rss_mib"],
            "first_call_warm_s": res["first_call_s"] if first_call else None,
            "check": res["check"], "resolves_to": res.get("resolves_to"),
            "version": res.get("version"), "build_info": res.get("build_info"),
        })
    row["background_cpus"] = M.background_cpus(snap, M.cpu_snapshot())
    row["label"] = _label(engine, row.get("resolves_to"))
    return row


def derive(result):
    """Fill the ratios to the NumPy baseline (the idiomatic NumPy MLP) and % of sgemm."""
    numpy_sps = {(r["network"], r["batch"]): r.get("samples_per_sec")
                 for r in result["rows"] if r["engine"] == P.BASELINE}
    gf = result["sgemm_gflops"]
    for r in result["rows"]:
        sps = r.get("samples_per_sec")
        base = numpy_sps.get((r["network"], r["batch"]))
        r["vs_numpy"] = sps / base if sps and base else None
        r["gflops"] = sps * r["flops_per_sample"] / 1e9 if sps else None
        r["pct_sgemm"] = 100 * r["gflops"] / gf if sps else None
        shape_gf = r.get("shape_sgemm_gflops")
        r["pct_shape_sgemm"] = 100 * r["gflops"] / shape_gf if sps and shape_gf else None


def parse_args(argv):
    """The command line of ``fastnn bench`` as a namespace ready for ``run``."""
    ap = argparse.ArgumentParser(prog="fastnn bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="+", default=None,
                    help="network configs: NAME (all its batch sizes) or NAME/bBATCH, "
                         "comma or space separated (default: all reference configs)")
    ap.add_argument("--backends", nargs="+", default=None,
                    help="fastnn backends incl. 'auto' (default: all available + auto)")
    ap.add_argument("--peers", nargs="+", default=[], help="torch, jax (skipped if absent)")
    ap.add_argument("--threads", type=int, default=B.bench_threads(),
                    help="threads for every engine (default FASTNN_BENCH_THREADS or 2)")
    ap.add_argument("--rounds", type=int, default=B.bench_rounds(), help="timed rounds")
    ap.add_argument("--samples", type=int, default=None,
                    help="cap on training samples per round (default: the suite's slices)")
    ap.add_argument("--check-steps", type=int, default=3,
                    help="training steps before the agreement check (0: no check)")
    ap.add_argument("--no-first-call", dest="first_call", action="store_false",
                    help="skip the cold/warm first-step subprocesses")
    ap.add_argument("--json", type=Path, default=None, help="write the full results here")
    ap.add_argument("--retries", type=int, default=0,
                    help=f"redo a row up to this many times when other processes used more than "
                         f"{BUSY_CPUS} CPUs meanwhile (keeping the quietest attempt)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="wait until other processes use < 0.2 CPUs, before starting and "
                         "before each retry, at most SECONDS in all")
    ap.add_argument("--quick", action="store_true",
                    help=f"a smoke run in well under a minute: {', '.join(QUICK_NETWORKS)}, "
                         f"{QUICK_SAMPLES} samples and {QUICK_ROUNDS} rounds per row, no "
                         "first-call processes (figures are indicative only)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.networks = args.networks or list(QUICK_NETWORKS)
        args.samples = args.samples or QUICK_SAMPLES
        args.rounds, args.first_call = min(args.rounds, QUICK_ROUNDS), False
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be >= 1")

    def split(values):
        return [v for item in values or [] for v in item.split(",") if v]
    args.networks = split(args.networks) or [B.config_key(*c) for c in B.CONFIGS]
    args.backends = split(args.backends) or None
    args.peers = split(args.peers)
    args.argv = argv
    return args


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker is not None:
        worker(json.loads(args.worker))
        return 0

    def log(msg, end="\n"):
        print(msg, end=end, file=sys.stderr, flush=True)
    result = run(args, log)
    print()
    print(f"fastnn training throughput, {result['machine']['cpu']}, {result['threads']} "
          f"thread(s), float32, {result['date']}")
    print(format_text(result))
    print()
    for text in legend(result):
        print("- " + text)
    for note in result["notes"]:
        print("- note: " + note)
    bad = [r for r in result["rows"] if r.get("check") and not r["check"]["ok"]]
    verdict = "all engines agree" if not bad else "MISMATCH in " + ", ".join(
        f"{r['label']} {r['network']}/b{r['batch']}" for r in bad)
    print(f"- agreement check: {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(f"- results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
