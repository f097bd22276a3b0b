"""The ``fastnn bench`` table: columns, rows, legend (shared with benchmarks/report.py)."""

from __future__ import annotations

from .config import CHECK_ROWS

COLUMNS = ["network", "batch", "engine", "samples/s", "spread", "vs NumPy MLP", "GFLOP/s",
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
        "vs NumPy MLP: samples/s over the NumPy MLP row's (fastnn.bench.numpy_mlp: the same "
        "network, start and batch order, written as a NumPy user writes it: minibatch "
        "SGD/Adam with @, float32, no bookkeeping). 'fastnn numpy' is fastnn's reference "
        "backend, slower by design (per-step loss and accuracy, gathers).",
        f"samples/s: median of {result['rounds']} timed rounds, each one pass over a fixed slice "
        "of n/round real MNIST training rows (fastnn: one model.fit call per pass), float32, "
        f"{t} thread(s) for every engine (fastnn + BLAS; torch.set_num_threads; XLA flags), "
        f"process pinned to {t} CPU(s) when fewer than all; JIT compile and one warm-up "
        "round untimed. "
        + ("The rows of one network (all its batch sizes) took turns round by round, each "
           "engine in its own waiting process, so a drift in the machine's speed reached "
           "every engine alike. " if any(r.get("interleaved") for r in result["rows"])
           else "Each row was measured alone, one after another. ")
        + "spread: half the min-max range of the rounds.",
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
        "measured (interleaved: while its network's rows were; from /proc/stat minus this "
        "run's own CPU time); well above 0 means the "
        "row competed for the cores and is slower than it would be on a quiet machine.",
        f"check: max |p - p_numpy| over {CHECK_ROWS} test rows after {result['check_steps']} "
        "training steps from the same initial weights in fastnn's minibatch order; ok if < "
        f"{result['check_tolerance']:g}.",
    ]


