"""BENCHMARKS.md sections for the width sweep and for the speed goals of the engine issue.

Every figure here is computed from the run JSONs (``fastnn bench --json``, the width sweep's
``fastnn bench --networks widths --json`` and ``python -m fastnn.bench.time_to_accuracy
--json``); a goal whose measurement is missing from them says so instead of a verdict.
"""

from __future__ import annotations

import statistics

from fastnn.bench import config as B
from fastnn.bench import peers as P

PEER_NAMES = ("torch", "jax")
# (network, batch, goal as a ratio to the NumPy MLP) of the engine issue's table
NUMPY_GOALS = [("digits-16", 1, 50.0), ("digits-16", 10, 6.0), ("digits-16", 32, 3.0),
               ("nielsen-30", 10, 5.0)]
PEER_GOALS = [("mlp-128", 64, 2.2), ("wide-512", 256, 1.5)]
SWEEP_NUMPY_GOAL, SWEEP_NUMPY_UPTO = 2.0, 256       # >= 2x NumPy MLP for every W <= 256
SWEEP_SGEMM_GOAL, SWEEP_SGEMM_FROM = 80.0, 256      # >= 80% same-shape sgemm for W >= 256
TTA_GOAL = 3.0                                      # PyTorch's time / fastnn's time
ONE_ROW_GOAL_US = {"digits-16": 2.0, "mlp-128": 3.0}  # single-sample predict latency
BIG_PREDICT_GOAL = 1.2                              # 10k-row predict, fastnn / PyTorch


def _rows(result):
    """{(network, batch): {engine: row}} of the measured rows."""
    out = {}
    for r in result["rows"] if result else []:
        if r.get("samples_per_sec"):
            out.setdefault((r["network"], r["batch"]), {})[r["engine"]] = r
    return out


def _per_run(row):
    """{run: samples/s} of a row measured in repeated runs (merge_runs), else None."""
    return row.get("samples_per_sec_by_run") if row else None


def _ratio(num, dens):
    """num's samples/s over the best of dens' (rows of one network and batch): each ratio from
    one run, the median over the runs that measured them all when the rows were repeated."""
    dens = [d for d in dens if d]
    if not num or not dens:
        return None
    runs = [_per_run(r) for r in (num, *dens)]
    if all(runs):
        common = sorted(set.intersection(*(set(r) for r in runs)))
        if common:
            return statistics.median(
                runs[0][k] / max(r[k] for r in runs[1:]) for k in common)
    return num["samples_per_sec"] / max(d["samples_per_sec"] for d in dens)


def _fastnn(engines):
    """The row users get (auto), else the Cython backend's."""
    return engines.get("auto") or engines.get("cython")


def _best_peer(engines):
    peers = [engines[p] for p in PEER_NAMES if p in engines]
    return max(peers, key=lambda r: r["samples_per_sec"]) if peers else None


def _verdict(value, goal, fmt=".2f", unit="x"):
    if value is None:
        return "-", "not measured"
    return f"{value:{fmt}}{unit}", "met" if value >= goal else "short"


def _predict_goals(pred):
    got = {(r["network"], r["engine"]): r for r in (pred or {}).get("rows", [])
           if "error" not in r}
    rows = []
    for net, goal in ONE_ROW_GOAL_US.items():
        r = got.get((net, "fastnn"))
        us = r["one_row_us"] if r else None
        rows.append([f"{net} single-sample predict <= {goal:g} us",
                     "-" if us is None else f"{us:.2f} us",
                     "not measured" if us is None else ("met" if us <= goal else "short")])
    for net in sorted({n for n, _ in got}):
        f, t = got.get((net, "fastnn")), got.get((net, "torch"))
        ratio = f["rows_per_sec"] / t["rows_per_sec"] if f and t else None
        rows.append([f"{net} 10k-row predict >= {BIG_PREDICT_GOAL:g}x PyTorch",
                     *_verdict(ratio, BIG_PREDICT_GOAL)])
    return rows or [["predict (single row, 10k rows)", "-", "not measured"]]


def predict_section(pred):
    """One-row latency and 10k-row throughput next to PyTorch, or nothing without a run."""
    if not pred:
        return []
    lines = ["## Predict", "",
             f"float32, {pred['threads']} thread(s), the auto backend; one row: median of "
             "single `model.predict(row)` calls on a (784,) MNIST test row (PyTorch: "
             "`from_numpy`, `no_grad`, softmax, `.numpy()` on a (1, 784) batch); 10k: "
             f"the 10000 test rows in one call ({pred['date']}). Command: "
             f"`{pred['command']}`.", "",
             "| network | engine | one row, us | 10k rows, rows/s | max abs diff vs fastnn | "
             "bg CPUs |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in pred["rows"]:
        if "error" in r:
            lines.append(f"| {r['network']} | {r['engine']} | FAILED | | | {r['error'][:60]} |")
            continue
        diff = r.get("max_abs_diff")
        lines.append(f"| {r['network']} | {r['engine']} | {r['one_row_us']:.2f} | "
                     f"{r['rows_per_sec']:,.0f} | {'-' if diff is None else f'{diff:.1e}'} | "
                     f"{r['background_cpus']:.2f} |")
    return lines + [""]


def goal_rows(result, sweep=None, tta=None, pred=None):
    """[goal, measured, verdict] rows for the engine issue's speed table."""
    rows, got = [], _rows(result)
    for net, bs, goal in NUMPY_GOALS:
        e = got.get((net, bs), {})
        ratio = _ratio(_fastnn(e), [e.get(P.BASELINE)])
        rows.append([f"{net} batch {bs}: >= {goal:g}x the NumPy MLP", *_verdict(ratio, goal)])
    for net, bs, goal in PEER_GOALS:
        e = got.get((net, bs), {})
        peer = _best_peer(e)
        ratio = _ratio(_fastnn(e), [e.get(p) for p in PEER_NAMES])
        who = f" (best peer: {peer['label']})" if peer else ""
        rows.append([f"{net} batch {bs}: >= {goal:g}x the best of PyTorch and JAX{who}",
                     *_verdict(ratio, goal)])
    d16 = {bs: _fastnn(got.get(("digits-16", bs), {})) for bs in (1, 10, 32)}
    for bs in (10, 32):
        ratio = _ratio(d16[bs], [d16[1]])
        rows.append([f"digits-16 batch {bs} per sample at least as fast as batch 1",
                     *_verdict(ratio, 1.0)])
    rows += _sweep_goals(sweep)
    rows += _tta_goal(tta)
    rows += _predict_goals(pred)
    return rows


def _sweep_goals(sweep):
    rows = []
    for w, r in sorted(_sweep(sweep).items()):
        if w <= SWEEP_NUMPY_UPTO:
            rows.append([f"width {w}: >= {SWEEP_NUMPY_GOAL:g}x the NumPy MLP",
                         *_verdict(r["vs_numpy"], SWEEP_NUMPY_GOAL)])
        if w >= SWEEP_SGEMM_FROM:
            rows.append([f"width {w}: >= {SWEEP_SGEMM_GOAL:g}% of the same-shape sgemm rate",
                         *_verdict(r["pct_shape"], SWEEP_SGEMM_GOAL, ".0f", "%")])
    return rows or [["width sweep", "-", "not measured"]]


def _tta_goal(tta):
    med = {e["engine"]: e for e in (tta or {}).get("engines", [])}
    f, t = med.get("fastnn"), med.get("torch")
    ratio = t["median_seconds"] / f["median_seconds"] if f and t else None
    return [[f"time to 98%: at most 1/{TTA_GOAL:g} of PyTorch's (PyTorch's time / fastnn's)",
             *_verdict(ratio, TTA_GOAL)]]


def _sweep(sweep):
    """{W: figures} for the sweep's networks."""
    out = {}
    for (net, bs), e in _rows(sweep).items():
        w, f, base = B.width_of(net), _fastnn(e), e.get(P.BASELINE)
        if w is None or f is None:
            continue
        peer = _best_peer(e)
        out[w] = {"batch": bs, "fastnn": f, "numpy": base, "peer": peer,
                  "vs_numpy": f["samples_per_sec"] / base["samples_per_sec"] if base else None,
                  "vs_peer": f["samples_per_sec"] / peer["samples_per_sec"] if peer else None,
                  "pct_shape": f.get("pct_shape_sgemm")}
    return out


def sweep_section(sweep):
    """The width-sweep table (784-W-W-10), or nothing without a sweep run."""
    figures = _sweep(sweep)
    if not figures:
        return []

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)
    lines = ["## Width sweep", "",
             f"784-W-W-10 ReLU/softmax, cross-entropy, momentum SGD (0.9, lr {B.WIDTH_LR}), "
             f"batch {B.WIDTH_BATCH}, {B.WIDTH_SAMPLES:,} MNIST rows a round, one `fit` per "
             f"round, {sweep['threads']} thread(s), float32, median of {sweep['rounds']} rounds "
             f"({sweep['date']}). Same-shape sgemm: numpy float32 ({B.WIDTH_BATCH} x W) @ "
             "(W x W) at the same thread count, in the same run; fastnn's GFLOP/s are "
             "dense-equivalent (see the throughput table's legend). "
             f"Command: `{sweep['command']}`.", "",
             "| W | fastnn samples/s | NumPy MLP samples/s | vs NumPy MLP | best peer | "
             "vs best peer | fastnn GFLOP/s | same-shape sgemm GFLOP/s | % same-shape sgemm |",
             "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for w, r in sorted(figures.items()):
        f, base, peer = r["fastnn"], r["numpy"], r["peer"]
        lines.append(" | ".join([
            f"| {w}", num(f["samples_per_sec"], ",.0f"),
            num(base and base["samples_per_sec"], ",.0f"), num(r["vs_numpy"], ".2f") + "x",
            f"{peer['label']} {peer['samples_per_sec']:,.0f}" if peer else "-",
            num(r["vs_peer"], ".2f") + "x", num(f["gflops"], ".1f"),
            num(f.get("shape_sgemm_gflops"), ".1f"), num(r["pct_shape"], ".0f") + " |"]))
    return lines + [""]


def goals_section(result, sweep=None, tta=None, pred=None):
    lines = ["## Against the engine issue's speed goals", "",
             "Computed from the runs above (fastnn = the auto backend's row); ratios are "
             "samples/s over samples/s within one run, and for the rows measured in repeated "
             "runs the median of the per-run ratios (against the peer that was faster in that "
             "run).", "",
             "| goal | measured | verdict |", "| --- | ---: | --- |"]
    lines += [f"| {g} | {m} | {v} |" for g, m, v in goal_rows(result, sweep, tta, pred)]
    return lines + [""]


README_START = "<!-- benchmarks table: generated by python -m benchmarks.report -->"
README_END = "<!-- end of benchmarks table -->"
README_ENGINES = [("numpy-mlp", "NumPy MLP"), ("numpy", "fastnn numpy (reference)"),
                  ("numba", "Numba"), ("cython", "Cython"), ("torch", "PyTorch"),
                  ("jax", "JAX")]
OPT_NAMES = {"digits-16": "", "nielsen-30": "", "mlp-128": " Adam", "wide-512": " momentum"}


def readme_table(result):
    """The README's training table: samples/s per engine, and fastnn's two ratios (as in the
    goals table: per run, the median of them for repeated rows)."""
    got = _rows(result)
    lines = ["| network, batch | " + " | ".join(lab for _, lab in README_ENGINES)
             + " | fastnn vs NumPy MLP | fastnn vs best peer |",
             "| --- |" + " ---: |" * (len(README_ENGINES) + 2)]
    for (net, bs), e in got.items():
        if B.width_of(net):
            continue
        cells = [f"{e[k]['samples_per_sec']:,.0f}" if k in e else "-" for k, _ in README_ENGINES]
        f = _fastnn(e)
        r_np, r_peer = _ratio(f, [e.get(P.BASELINE)]), _ratio(f, [e.get(p) for p in PEER_NAMES])
        vs_np = "-" if r_np is None else f"{r_np:.1f}x"
        vs_peer = "-" if r_peer is None else f"{r_peer:.2f}x"
        lines.append(f"| {net}{OPT_NAMES.get(net, '')}, {bs} | " + " | ".join(cells)
                     + f" | {vs_np} | {vs_peer} |")
    return lines


def update_readme(path, result):
    """Replace the README's generated block (between the markers) with this run's table."""
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{path}: the benchmarks table markers are missing")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = [README_START, f"Training samples/s, {result['threads']} threads, float32, from "
             f"`{result['command']}` ({result['date'][:10]}); fastnn = the auto backend's row "
             "(the Cython row when auto was not run)."
             + (f" Rows repeated in {len(result['repeat_commands'])} more runs (BENCHMARKS.md): "
                "median samples/s, and the median of the per-run ratios."
                if result.get("repeat_commands") else ""), "",
             *readme_table(result), README_END]
    path.write_text(head + "\n".join(block) + tail)


def merge_runs(result, repeats):
    """Rows measured again in repeated runs (same command, later) get the median samples/s of
    all their runs; the ratios are derived again, and a note lists every run's figure."""
    from fastnn.bench.compare import derive
    if not repeats:
        return result
    again = {}
    for run, rep in enumerate(repeats, 1):
        for r in rep["rows"]:
            if r.get("samples_per_sec"):
                again.setdefault((r["network"], r["batch"], r["engine"]), {})[run] = (
                    r["samples_per_sec"])
    for r in result["rows"]:
        more = again.get((r["network"], r["batch"], r["engine"]))
        if not more or not r.get("samples_per_sec"):
            continue
        r["samples_per_sec_by_run"] = {0: r["samples_per_sec"], **more}   # for per-run ratios
        runs = list(r["samples_per_sec_by_run"].values())
        r["samples_per_sec"] = statistics.median(runs)
        result.setdefault("notes", []).append(
            f"{r['network']}/b{r['batch']} {r['label']}: median of {len(runs)} runs ("
            + ", ".join(f"{v:,.0f}" for v in runs) + " samples/s, in run order)")
    result["repeat_commands"] = [rep["command"] for rep in repeats]
    derive(result)
    return result
