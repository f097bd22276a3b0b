"""Write BENCHMARKS.md and a bar chart from a saved ``fastnn bench --json`` run.

    python -m benchmarks.report results.json [--sweep sweep.json] [--tta tta.json]
                                [--predict predict.json]
                                [--out BENCHMARKS.md] [--png docs/img/benchmarks.png]

BENCHMARKS.md is generated: edit this script, not the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from fastnn.bench.table import COLUMNS, LEFT, legend, table_rows

from .report_goals import goals_section, merge_runs, predict_section, sweep_section, update_readme

ROOT = Path(__file__).resolve().parent.parent

ENGINE_ORDER = ["numpy-mlp", "numpy", "numba", "cython", "auto", "torch", "jax"]
COLORS = {"numpy-mlp": "#616161", "numpy": "#9e9e9e",
          "numba": "#1f77b4", "cython": "#2ca02c", "auto": "#17becf",
          "torch": "#d62728", "jax": "#ff7f0e"}


def markdown_table(headers, rows):
    out = ["| " + " | ".join(headers) + " |",
           "| " + " | ".join("---" if h in LEFT else "---:" for h in headers) + " |"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def chart(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in result["rows"] if r.get("samples_per_sec")]
    configs = []
    for r in rows:
        key = f"{r['network']}\nbatch {r['batch']}"
        if key not in configs:
            configs.append(key)
    engines = [e for e in ENGINE_ORDER if any(r["engine"] == e for r in rows)]
    labels = {r["engine"]: r["label"] for r in rows}
    width = 0.8 / max(1, len(engines))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.7 * len(configs)), 5.2), dpi=120)
    xs = np.arange(len(configs))
    for i, e in enumerate(engines):
        vals = []
        for key in configs:
            hit = [r["samples_per_sec"] for r in rows
                   if r["engine"] == e and f"{r['network']}\nbatch {r['batch']}" == key]
            vals.append(hit[0] if hit else np.nan)
        ax.bar(xs + (i - (len(engines) - 1) / 2) * width, vals, width, label=labels[e],
               color=COLORS.get(e))
    ax.set_yscale("log")
    ax.set_xticks(xs, configs)
    ax.set_ylabel("training samples / s (log scale)")
    ax.set_title(f"fastnn training throughput on MNIST, float32, {result['threads']} thread(s)"
                 f"\n{result['machine']['cpu']}", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(6, len(engines)), loc="upper center",
              bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def tta_section(tta):
    lines = ["## Time to 98% test accuracy", "",
             f"Recipe: {tta['recipe_text']}. Training stops at the first epoch end whose test "
             f"accuracy is >= {100 * tta['target']:.1f}%; wall time includes every epoch's "
             "training and test evaluation, not data loading or JIT warm-up (done first on a "
             f"small slice). Median over seeds "
             f"({', '.join(map(str, tta['seeds']))}); {tta['threads']} thread(s), float32. "
             f"Command: `{tta['command']}`.", "",
             "| engine | median seconds | epochs (per seed) | test accuracy (per seed) | "
             "seconds (per seed) | bg CPUs |", "| --- | ---: | --- | --- | --- | ---: |"]
    for e in tta["engines"]:
        runs = e["runs"]
        reached = all(r["reached"] for r in runs)
        med = f"{e['median_seconds']:.1f}" if reached else "not reached"
        epochs = ", ".join(str(r["epochs"]) for r in runs)
        accs = ", ".join(f"{100 * r['accuracy']:.2f}%" for r in runs)
        secs = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        bg = e.get("background_cpus")
        bg = "-" if bg is None else f"{bg:.2f}"
        lines.append(f"| {e['label']} | {med} | {epochs} | {accs} | {secs} | {bg} |")
    for note in tta.get("notes", []):
        lines += ["", f"- {note}"]
    return lines + [""]


def _background_line(result):
    bg = [r["background_cpus"] for r in result["rows"] if r.get("background_cpus") is not None]
    if not bg:
        return "- background load: not measured"
    bg.sort()
    return (f"- other processes' CPU use while rows were measured (column bg CPUs): median "
            f"{bg[len(bg) // 2]:.2f}, max {bg[-1]:.2f} CPUs of {os.cpu_count()}")


# Benchmarks measured by their own scripts, documented with their conditions in docs/; the
# report carries them over so that BENCHMARKS.md has every figure (doc, heading to start at).
CARRIED = [("docs/interop-benchmarks.md", None), ("docs/serve.md", "## Load")]
CARRIED_MARK = "<!-- carried over from docs/ by benchmarks/report.py -->"


def carried_sections(root=ROOT):
    """The interop and serving benchmark sections of docs/, headings one level down."""
    lines = ["## scikit-learn, ONNX Runtime and serving", "", CARRIED_MARK, ""]
    for rel, start in CARRIED:
        text = (root / rel).read_text().splitlines()
        if start is None:   # the whole document, its title becoming a subsection
            body = text
        else:
            i = text.index(start)
            end = next((j for j in range(i + 1, len(text)) if text[j].startswith("## ")),
                       len(text))
            body = [f"## {start[3:]} (`fastnn serve`)", *text[i + 1:end]]
        shift = "#" * (3 - (len(body[0]) - len(body[0].lstrip("#"))))   # first heading -> ###
        lines += [shift + h if h.startswith("#") else h for h in body]
        lines += ["", f"(From [{rel}]({rel}).)", ""]
    return lines


def refresh_carried(out):
    """Replace the carried-over sections of an existing BENCHMARKS.md (no new run needed)."""
    text = out.read_text().splitlines()
    head = "## scikit-learn, ONNX Runtime and serving"
    repro = text.index("## Reproduce")
    start = text.index(head) if head in text else repro
    out.write_text("\n".join(text[:start] + carried_sections() + text[repro:]))


def write(result, out, png, tta=None, argv=(), sweep=None, pred=None, machine_notes=()):
    chart(result, png)
    v = result["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items())
    peer_versions = "; ".join(result.get("peer_versions", {}).values()) or "none"
    m = result["machine"]
    la0, la1 = result["load_average_start"][0], result.get("load_average_end", [None])[0]
    rel_png = os.path.relpath(png, out.parent)
    lines = [
        "# fastnn benchmarks", "",
        "<!-- Generated by `python -m benchmarks.report`; do not edit by hand. -->", "",
        f"Measured on this project's machine. The throughput table comes from one run of "
        f"`fastnn bench` ({result['date']}) and the time-to-accuracy table "
        f"from one run of `python -m fastnn.bench.time_to_accuracy`"
        f"{' (' + tta['date'] + ')' if tta else ''}; numbers are only compared within their "
        "own run. The commands are at the end.", "",
        "## Machine and settings", "",
        f"- CPU: {m['cpu']}; memory {m.get('memory_gib')} GiB; {m['platform']}",
        *[f"- about the machine: {text}" for text in machine_notes],
        f"- threads: {result['threads']} for every engine; dtype float32; "
        f"{result['rounds']} timed rounds (median reported)",
        f"- sgemm reference: {result['sgemm_gflops']:.1f} GFLOP/s (numpy float32 2048x2048, "
        f"start {result['sgemm_gflops_start']:.1f}, end {result['sgemm_gflops_end']:.1f})",
        f"- load average (1 min) at start / end: {la0:.2f} / "
        f"{la1:.2f}" if la1 is not None else f"- load average at start: {la0:.2f}",
        _background_line(result),
        f"- versions: {versions}",
        f"- peers: {peer_versions}", "",
        "## Training throughput", "",
        *markdown_table(COLUMNS, table_rows(result)), "",
        *[f"- {text}" for text in legend(result)],
        *[f"- note: {n}" for n in result.get("notes", [])], "",
        f"![training samples/s per engine and network]({rel_png})", "",
    ]
    lines += sweep_section(sweep)
    if tta:
        lines += tta_section(tta)
    lines += predict_section(pred)
    lines += goals_section(result, sweep, tta, pred)
    lines += carried_sections()
    lines += [
        "## Reproduce", "",
        "```",
        'pip install -e ".[bench]"            # peers: pip install torch==2.13.0 jax jaxlib',
        f"{result['command']}",
        *result.get("repeat_commands", []),
        *([sweep["command"]] if sweep else []),
        *([tta["command"]] if tta else []),
        *([pred["command"]] if pred else []),
        "python -m benchmarks.report " + shlex.join(argv),
        "python -m pytest benchmarks/ --benchmark-save=NAME   # per-kernel and predict groups",
        "```", "",
    ]
    out.write_text("\n".join(lines))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, nargs="?",
                    help="JSON from fastnn bench --json (without it: only refresh the sections "
                         "carried over from docs/)")
    ap.add_argument("--repeat", type=Path, nargs="+", default=[],
                    help="JSONs of repeated fastnn bench runs (any subset of the rows): each "
                         "repeated row shows the median of its runs")
    ap.add_argument("--tta", type=Path, default=None,
                    help="JSON from python -m fastnn.bench.time_to_accuracy --json")
    ap.add_argument("--sweep", type=Path, default=None,
                    help="JSON from fastnn bench --networks widths --json (the width sweep)")
    ap.add_argument("--predict", type=Path, default=None,
                    help="JSON from python -m fastnn.bench.predict --json")
    ap.add_argument("--readme", type=Path, default=None,
                    help="README whose generated benchmarks table is replaced (default: the "
                         "checkout's README.md when --out is the checkout's BENCHMARKS.md)")
    ap.add_argument("--machine-note", action="append", default=[],
                    help="a line on the machine the run's JSONs do not record (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "img" / "benchmarks.png")
    args = ap.parse_args(argv)
    if args.results is None:
        refresh_carried(args.out)
        print(f"refreshed the carried-over sections of {args.out}")
        return 0
    result = merge_runs(json.loads(args.results.read_text()),
                        [json.loads(p.read_text()) for p in args.repeat])
    tta = json.loads(args.tta.read_text()) if args.tta else None
    sweep = json.loads(args.sweep.read_text()) if args.sweep else None
    pred = json.loads(args.predict.read_text()) if args.predict else None
    write(result, args.out, args.png, tta, argv, sweep, pred, args.machine_note)
    readme = args.readme or (ROOT / "README.md" if args.out == ROOT / "BENCHMARKS.md" else None)
    if readme is not None:
        update_readme(readme, result)
        print(f"updated the benchmarks table of {readme}")
    print(f"wrote {args.out} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
