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
from . import interleave as I
from . import machine as M
from . import peers as P
from .table import format_text, legend
from .worker import MARK, worker

WORKER_TIMEOUT = 900
QUICK_NETWORKS = ("digits-16/b10", "mlp-128/b64")
QUICK_SAMPLES, QUICK_ROUNDS = 2048, 2
BUSY_CPUS = 0.3   # a row measured while other processes used more CPUs than this is redone


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
    configs = _configs(args.networks)
    engines, peers, notes = _engines(args.backends, args.peers)
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
        measure = _measure_interleaved if args.interleave else _measure_sequential
        for name, batches in I.group_by_network(configs):
            plans = []
            for bs in batches:
                ref = B.build(name, "numpy")
                first = _save_first_step(tmp / f"first-{name}-{bs}.npz", ref, x, y, bs)
                fps = B.flops_per_sample(ref.net.sizes)
                w = B.width_of(name)
                shape_gf = M.sgemm_gflops(threads, shape=(bs, w, w)) if w else None
                for engine in engines:
                    n = B.samples_per_round(name, bs, args.samples, engine)
                    spec = {"engine": engine, "network": name, "batch": bs,
                            "threads": threads, "rounds": args.rounds, "samples": n,
                            "first_path": str(first), "check_steps": args.check_steps}
                    plans.append((spec, fps, shape_gf))
            result["rows"] += measure(plans, tmp, args, t_waits, log)

    result["sgemm_gflops_end"] = M.sgemm_gflops(threads)
    result["sgemm_gflops"] = max(result["sgemm_gflops_start"], result["sgemm_gflops_end"])
    result["load_average_end"] = os.getloadavg()
    derive(result)
    return result


def _configs(networks):
    """The (network, batch) pairs named on the command line, each once, in order."""
    configs = []
    for item in networks:
        for c in B.parse_config(item):
            if c not in configs:
                configs.append(c)
    return configs


def _engines(backends, peer_names):
    """(engines to run, installed peers, notes on skipped peers); unknown names exit."""
    import fastnn
    available = B.engines()
    backends = backends or available
    for b in backends:
        if b not in available:
            raise SystemExit(f"backend {b!r} is not available here (available: {available}; "
                             f"status: {fastnn.backend_status()})")
    peers, notes = [], []
    for p in peer_names:
        if p not in P.PEERS:
            raise SystemExit(f"--peers: expected names from {P.PEERS[1:]}, got {p!r}")
        if P.installed(p):
            peers.append(p)
        else:
            extra = "torch==2.13.0" if p == "torch" else "jax jaxlib"
            notes.append(f"{P.LABELS[p]} skipped: not installed (pip install {extra})")
    return [*backends, *dict.fromkeys([P.BASELINE, *peers])], peers, notes


def _save_first_step(path, ref, x, y, bs):
    """The data and initial weights of a worker's first call, as an .npz at ``path``."""
    arrays = {"x": x[:max(bs, 256)], "y": y[:max(bs, 256)],
              "spec": np.array(json.dumps(P.spec_of(ref)))}
    for l, (w, b) in enumerate(P.weights_of(ref)):
        arrays[f"w{l}"], arrays[f"b{l}"] = w, b
    np.savez(path, **arrays)
    return path


def _measure_sequential(plans, tmp, args, t_waits, log):
    """``--no-interleave``: each row in its own process, one after another."""
    rows = []
    for spec, fps, shape_gf in plans:
        row = _measure_quietest(spec, fps, tmp, args, t_waits, log)
        row["shape_sgemm_gflops"] = shape_gf
        rows.append(row)
    return rows


def _before_retry(bg, what, t_waits, log):
    """Say why ``what`` is measured again; wait for a quiet machine while waits remain."""
    log(f"    busy machine ({bg:.2f} CPUs used by other processes): measuring {what} again")
    if time.monotonic() < t_waits:
        M.wait_idle(min(120, t_waits - time.monotonic()), log)


def _measure_interleaved(plans, tmp, args, t_waits, log):
    """Every row of one network at once, taking turns round by round (fastnn.bench.interleave);
    the whole group again up to ``args.retries`` times while the machine is busy."""
    best = None
    for attempt in range(args.retries + 1):
        if attempt:
            _before_retry(best[0]["background_cpus"], "the group", t_waits, log)
        snap = M.cpu_snapshot()
        caches = [tmp / f"numba-{s['engine']}-{s['network']}-{s['batch']}-{attempt}"
                  for s, _, _ in plans]
        rows = [_start_row(s, fps, cache, args.first_call, log)
                for (s, fps, _), cache in zip(plans, caches, strict=True)]
        envs = [M.worker_env(s["threads"], cache if args.first_call else None)
                for (s, _, _), cache in zip(plans, caches, strict=True)]
        log(f"  {plans[0][0]['network']}: {len(plans)} rows taking turns, "
            f"{args.rounds} rounds")
        results = I.measure_group([s for s, _, _ in plans], envs, args.rounds,
                                  WORKER_TIMEOUT, log)
        bg = M.background_cpus(snap, M.cpu_snapshot())
        for row, res, (_, _, shape_gf) in zip(rows, results, plans, strict=True):
            _finish_row(row, res, args.first_call)
            row.update(background_cpus=bg, attempts=attempt + 1, interleaved=True,
                       shape_sgemm_gflops=shape_gf)
        if best is None or (bg or 0) < (best[0]["background_cpus"] or 0):
            best = rows
        if (best[0]["background_cpus"] or 0) < BUSY_CPUS:
            break
    return best


def _measure_quietest(spec, fps, tmp, args, t_waits, log):
    """Measure one row, again up to ``args.retries`` times while the machine is busy; the
    attempt with the least background CPU use is kept."""
    engine, name, bs = spec["engine"], spec["network"], spec["batch"]
    t_wall = time.perf_counter()
    row = None
    for attempt in range(args.retries + 1):
        if attempt:
            _before_retry(row["background_cpus"], "the row", t_waits, log)
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
        if row.get("samples_per_sec") is None or (row["background_cpus"] or 0) < BUSY_CPUS:
            break
    return row


def _measure(spec, fps, cache, first_call, log):
    """One row: the cold first-call process (optional), then the measuring process."""
    snap = M.cpu_snapshot()
    row = _start_row(spec, fps, cache, first_call, log)
    res = _run_worker({**spec, "mode": "full"},
                      M.worker_env(spec["threads"], cache if first_call else None), log)
    _finish_row(row, res, first_call)
    row["background_cpus"] = M.background_cpus(snap, M.cpu_snapshot())
    return row


def _start_row(spec, fps, cache, first_call, log):
    """A row's fixed fields, and its cold first call in a fresh process (optional)."""
    row = {"network": spec["network"], "batch": spec["batch"], "engine": spec["engine"],
           "flops_per_sample": fps, "samples": spec["samples"],
           "load_average_before": os.getloadavg()[0]}
    if first_call:
        cold = _run_worker({**spec, "mode": "first"}, M.worker_env(spec["threads"], cache),
                           log)
        row["first_call_cold_s"] = cold.get("first_call_s")
        if "error" in cold:
            row["error"] = cold["error"]
    return row


def _finish_row(row, res, first_call):
    """Fill a row from its measuring worker's result."""
    if "error" in res:
        row["error"] = res["error"]
    else:
        n, secs = row["samples"], res["seconds"]
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
    row["label"] = _label(row["engine"], row.get("resolves_to"))
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
    ap.add_argument("--no-interleave", dest="interleave", action="store_false",
                    help="measure each row alone, one after another (default: the rows of "
                         "one network take turns round by round; see fastnn.bench.interleave)")
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
