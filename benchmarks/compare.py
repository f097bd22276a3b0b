"""Compare fastnn's backends (and optionally PyTorch / JAX) on the reference networks.

    python -m benchmarks.compare [--networks digits-16,mlp-128/b64 ...] [--backends numpy,auto]
                                 [--peers torch,jax] [--threads N] [--rounds R] [--json out.json]

Prints ONE table: training samples/s (median of R rounds over a fixed slice of real MNIST,
float32), the ratio to fastnn's NumPy backend, the share of this machine's sgemm rate (numpy
float32 2048x2048 matmul measured in the same run at the same thread count), peak RSS,
first-step time in a fresh process (cold and warm Numba cache) and a correctness check: the
maximum |difference| of test-set probabilities against fastnn's NumPy reference after the same
few steps from the same initial weights in the same minibatch order.

Every (network, engine) pair runs in its own subprocess (so peak RSS and first-call times are
its own), pinned to the thread count; the JIT is warmed up and one untimed round runs first.
``python -m benchmarks.report out.json`` turns the JSON into BENCHMARKS.md and a chart.
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

import benchmarks as B
from benchmarks import peers as P

ROOT = Path(__file__).resolve().parent.parent
MARK = "@@FASTNN-BENCH@@ "
CHECK_TOL = 1e-4
CHECK_ROWS = 1000
WORKER_TIMEOUT = 900
BUSY_CPUS = 0.3   # a row measured while other processes used more CPUs than this is redone


# ---- the worker (one subprocess per network x engine) ---------------------------------------
def _emit(obj):
    print(MARK + json.dumps(obj), flush=True)


def _rss_mib():
    """Peak RSS of this process (VmHWM: its own address space; ru_maxrss would include the
    parent's peak at fork time, which Linux carries across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


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
    out["peak_rss_mib"] = _rss_mib()
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
    p_ref = ref.predict(xt[:CHECK_ROWS])
    if engine in P.PEERS:
        peer = P.make(engine, pspec, init, spec["threads"])
        peer.train(peer.prepare(x[:n], y[:n]), peer.order(order, bs))
        p = peer.predict(xt[:CHECK_ROWS])
    else:
        model = B.build(name, engine)
        model.fit(x[:n], y[:n], epochs=1, batch_size=bs, seed=B.SEED, verbose=0)
        p = model.predict(xt[:CHECK_ROWS])
    diff = float(np.abs(p.astype(np.float64) - p_ref).max())
    return {"steps": k, "rows": CHECK_ROWS, "max_abs_diff": diff, "ok": diff < CHECK_TOL}


# ---- the parent ----------------------------------------------------------------------------
def _run_worker(spec, env, log):
    cmd = [sys.executable, "-m", "benchmarks.compare", "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
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


def _cpu_snapshot():
    """(CPU-seconds busy on the whole machine, CPU-seconds of this process and its finished
    children, wall time). Their deltas give the CPUs other processes used meanwhile."""
    import resource
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return busy, own, time.monotonic()


def _background_cpus(before, after):
    wall = after[2] - before[2]
    if wall <= 0:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / wall)


def _worker_env(threads, cache_dir=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for var in ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    env.pop("XLA_FLAGS", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env["PYTHONWARNINGS"] = "ignore::RuntimeWarning"
    return env


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
            raise SystemExit(f"--peers: expected names from {P.PEERS}, got {p!r}")
        if P.installed(p):
            peers.append(p)
        else:
            extra = "torch==2.13.0" if p == "torch" else "jax jaxlib"
            notes.append(f"{P.LABELS[p]} skipped: not installed (pip install {extra})")
    engines = [*backends, *peers]
    threads = args.threads
    t_waits = time.monotonic() + args.wait_idle       # all waiting for quiet ends by then
    bg_start = _wait_idle(min(120, args.wait_idle), log) if args.wait_idle else None

    load = os.getloadavg()
    result = {
        "command": "python -m benchmarks.compare " + shlex.join(args.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": B.machine(), "versions": B.versions(), "threads": threads,
        "dtype": B.DTYPE, "rounds": args.rounds, "check_steps": args.check_steps,
        "check_tolerance": CHECK_TOL, "flops_formula": B.FLOPS_FORMULA,
        "load_average_start": load, "notes": notes, "rows": [],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "background_cpus_start": bg_start,
        "peer_versions": {p: P.version(p) for p in peers},
    }
    log(f"fastnn benchmark: {len(configs)} network configs x {len(engines)} engines, "
        f"{threads} thread(s), {args.rounds} rounds, load average {load[0]:.2f}")
    for note in notes:
        log("  note: " + note)
    gf = B.sgemm_gflops(threads)
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
                            _wait_idle(min(120, t_waits - time.monotonic()), log)
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
                result["rows"].append(row)

    result["sgemm_gflops_end"] = B.sgemm_gflops(threads)
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
    snap = _cpu_snapshot()
    if first_call:
        cold = _run_worker({**spec, "mode": "first"}, _worker_env(threads, cache), log)
        row["first_call_cold_s"] = cold.get("first_call_s")
        if "error" in cold:
            row["error"] = cold["error"]
    res = _run_worker({**spec, "mode": "full"},
                      _worker_env(threads, cache if first_call else None), log)
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
    row["background_cpus"] = _background_cpus(snap, _cpu_snapshot())
    row["label"] = _label(engine, row.get("resolves_to"))
    return row


def _wait_idle(max_seconds, log, threshold=0.2, window=10.0):
    """Wait (at most max_seconds) until other processes use < ``threshold`` CPUs on average
    over a ``window``-second sample."""
    deadline = time.monotonic() + max_seconds
    while True:
        before = _cpu_snapshot()
        time.sleep(window)
        bg = _background_cpus(before, _cpu_snapshot())
        if bg is None or bg < threshold:
            log(f"  quiet: other processes use {bg:.2f} CPUs")
            return bg
        if time.monotonic() >= deadline:
            log(f"  still busy after {max_seconds:.0f} s ({bg:.2f} CPUs); going on anyway")
            return bg
        log(f"  waiting for a quiet machine: other processes use {bg:.2f} CPUs")


def derive(result):
    """Fill vs-NumPy ratios and % of sgemm into the rows."""
    numpy_sps = {(r["network"], r["batch"]): r.get("samples_per_sec")
                 for r in result["rows"] if r["engine"] == "numpy"}
    gf = result["sgemm_gflops"]
    for r in result["rows"]:
        sps = r.get("samples_per_sec")
        base = numpy_sps.get((r["network"], r["batch"]))
        r["vs_numpy"] = sps / base if sps and base else None
        r["gflops"] = sps * r["flops_per_sample"] / 1e9 if sps else None
        r["pct_sgemm"] = 100 * r["gflops"] / gf if sps else None


# ---- the table -----------------------------------------------------------------------------
COLUMNS = ["network", "batch", "engine", "samples/s", "spread", "vs NumPy", "GFLOP/s",
           "% sgemm", "n/round", "peak RSS MiB", "1st step cold s", "1st step warm s",
           "bg CPUs", "check"]
LEFT = {"network", "batch", "engine", "check"}


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table_rows(result):
    rows = []
    for r in result["rows"]:
        chk = r.get("check")
        if r["engine"] == "numpy":
            check = "reference"
        elif not chk:
            check = "-"
        else:
            check = f"{'ok' if chk['ok'] else 'MISMATCH'} {chk['max_abs_diff']:.1e}"
        head = [r["network"], str(r["batch"]), r["label"]]
        if r.get("samples_per_sec") is None:
            rows.append(head + ["FAILED"] + [""] * (len(COLUMNS) - 5)
                        + [r.get("error", "?")[:60]])
            continue
        rows.append(head + [
            _fmt(r["samples_per_sec"], ",.0f"), f"±{r['spread_pct'] / 2:.0f}%",
            _fmt(r["vs_numpy"], ".2f") + "x" if r["vs_numpy"] else "-",
            _fmt(r["gflops"], ".2f"), _fmt(r["pct_sgemm"], ".1f"), str(r["samples"]),
            _fmt(r["peak_rss_mib"], ".0f"), _fmt(r.get("first_call_cold_s"), ".2f"),
            _fmt(r.get("first_call_warm_s"), ".2f"), _fmt(r.get("background_cpus"), ".2f"),
            check])
    return rows


def format_text(result):
    rows = table_rows(result)
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(COLUMNS)]
    right = {i for i, c in enumerate(COLUMNS) if c not in LEFT}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
    out = [line(COLUMNS), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows]
    return "\n".join(out)


def legend(result):
    t = result["threads"]
    return [
        f"samples/s: median of {result['rounds']} timed rounds, each one pass over a fixed slice "
        f"of n/round real MNIST training rows, float32, {t} thread(s) for every "
        "engine (fastnn + BLAS; torch.set_num_threads; XLA flags), process pinned to "
        f"{t} CPU(s) when fewer than all; JIT compile and one warm-up round untimed. "
        "spread: half the min-max range of the rounds.",
        f"% sgemm: GFLOP/s / {result['sgemm_gflops']:.1f} GFLOP/s (numpy float32 2048x2048 "
        f"matmul, {t} thread(s), the better of the start and end of this run; BLAS: "
        f"{result['versions'].get('blas', '?')}, so AVX-512 code can exceed 100%). "
        + result["flops_formula"] + ". These are dense-equivalent FLOPs: about 81% of MNIST "
        "pixels are zero, and a backend that skips zero inputs in the first layer does less "
        "arithmetic than counted.",
        "peak RSS: peak resident memory (VmHWM) of the engine's own process, including the "
        "MNIST arrays (~215 MiB float32) and the libraries it imports.",
        "1st step: a fresh process importing the engine, building the network and running one "
        "training step; cold = empty Numba cache directory (NUMBA_CACHE_DIR), warm = a second "
        "process after that cache was filled (engines without a JIT differ only by OS caches).",
        "bg CPUs: CPUs' worth of time other processes on the machine used while the row was "
        "measured (from /proc/stat minus this run's own CPU time); well above 0 means the "
        "row competed for the cores and is slower than it would be on a quiet machine.",
        f"check: max |p - p_numpy| over {CHECK_ROWS} test rows after {result['check_steps']} "
        "training steps from the same initial weights in fastnn's minibatch order; ok if < "
        f"{result['check_tolerance']:g}.",
    ]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
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
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        worker(json.loads(args.worker))
        return 0
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be >= 1")

    def split(values):
        return [v for item in values or [] for v in item.split(",") if v]
    args.networks = split(args.networks) or [B.config_key(*c) for c in B.CONFIGS]
    args.backends = split(args.backends) or None
    args.peers = split(args.peers)
    args.argv = argv

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
