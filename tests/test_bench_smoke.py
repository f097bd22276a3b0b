"""The benchmark suite, the compare command and the report run at tiny size (so they cannot rot).

Real MNIST only (as the benchmarks themselves); skipped when it cannot be loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastnn.bench import config as B
from fastnn.bench import machine as M

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("pytest_benchmark")
pytestmark = pytest.mark.checkout   # runs the benchmarks/ suite and report


@pytest.fixture(scope="module")
def mnist_ok():
    from fastnn.datasets import MNISTUnavailableError, load_mnist
    try:
        load_mnist(verbose=False)
    except MNISTUnavailableError as exc:
        pytest.skip(f"MNIST unavailable: {exc}")


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update({"FASTNN_BENCH_SAMPLES": "320", "FASTNN_BENCH_ROUNDS": "1",
                "FASTNN_BENCH_THREADS": "1"})
    env.update(extra)
    return env


def _run(args, env, timeout=300):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_suite_runs_every_benchmark_disabled(mnist_ok):
    proc = _run(["-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider",
                 "--benchmark-disable"], _env())
    assert " passed" in proc.stdout and "error" not in proc.stdout.lower()


def test_suite_saves_groups_and_extra_info(mnist_ok, tmp_path):
    out = tmp_path / "bench.json"
    _run(["-m", "pytest", "benchmarks/test_bench_train.py", "-q", "-p", "no:cacheprovider",
          "-k", "digits-16/b32 and numpy", f"--benchmark-json={out}"], _env())
    data = json.loads(out.read_text())
    (bench,) = data["benchmarks"]
    assert bench["group"].startswith("train digits-16/b32")
    info = bench["extra_info"]
    assert info["backend"] == "numpy" and info["dtype"] == "float32" and info["threads"] == 1
    assert info["samples_per_round"] == 320 and info["samples_per_sec"] > 0
    assert data["machine_info"]["fastnn_threads"] == 1


def test_compare_and_report(mnist_ok, tmp_path):
    out = tmp_path / "cmp.json"
    proc = _run(["-m", "fastnn", "bench", "--networks", "digits-16/b32", "--backends",
                 "numpy", "--rounds", "1", "--samples", "320", "--check-steps", "1",
                 "--threads", "1", "--json", str(out)], _env())
    header = next(line for line in proc.stdout.splitlines() if line.startswith("network"))
    for col in ("samples/s", "vs NumPy MLP", "% sgemm", "peak RSS MiB", "1st step cold s",
                "1st step warm s", "check"):
        assert col in header
    assert any(line.startswith("digits-16") and "fastnn numpy" in line
               for line in proc.stdout.splitlines())
    result = json.loads(out.read_text())
    row, base = result["rows"]    # the backend asked for, then the NumPy MLP baseline
    assert row["engine"] == "numpy" and base["engine"] == "numpy-mlp"
    assert base["vs_numpy"] == 1.0
    assert row["vs_numpy"] == pytest.approx(row["samples_per_sec"] / base["samples_per_sec"])
    assert row["peak_rss_mib"] > 0 and row["first_call_cold_s"] > 0
    assert row["check"]["ok"] and base["check"]["ok"]
    assert result["threads"] == 1 and result["sgemm_gflops"] > 0

    md, png = tmp_path / "BENCHMARKS.md", tmp_path / "img" / "b.png"
    _run(["-m", "benchmarks.report", str(out), "--out", str(md), "--png", str(png),
          "--machine-note", "a Zen 5 host"], _env())
    text = md.read_text()
    assert "| network | batch | engine | samples/s |" in text and "fastnn numpy" in text
    assert "- about the machine: a Zen 5 host\n" in text
    assert "fastnn bench" in text and "NumPy MLP" in text
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("peer", ["numpy-mlp", "torch", "jax"])
def test_peer_matches_fastnn_maths(mnist_ok, peer):
    """A peer (when installed) computes what fastnn computes: same start, steps, order."""
    if peer != "numpy-mlp":
        pytest.importorskip(peer)
    import numpy as np

    from fastnn.bench import config as B
    from fastnn.bench import peers as P
    (x, y), (xt, _) = B.load_data()
    for name, bs in (("nielsen-30", 10), ("mlp-128", 64), ("wide-512", 32)):
        ref = B.build(name, "numpy")
        p = P.make(peer, P.spec_of(ref), P.weights_of(ref), 1)
        n = 3 * bs
        order = B.epoch_order(ref, n, 0)
        ref.fit(x[:n], y[:n], epochs=1, batch_size=bs, seed=B.SEED, verbose=0)
        p.train(p.prepare(x[:n], y[:n]), p.order(order, bs))
        assert np.abs(p.predict(xt[:200]) - ref.predict(xt[:200])).max() < 1e-4


# ---- the width sweep, the same-shape sgemm and the goals section ----
def test_width_networks():
    assert B.parse_config("widths") == [(f"width-{w}", B.WIDTH_BATCH) for w in B.WIDTHS]
    assert B.parse_config("width-48") == [("width-48", B.WIDTH_BATCH)]
    assert B.width_of("width-48") == 48 and B.width_of("wide-512") is None
    assert B.samples_per_round("width-48", 128) == (B.WIDTH_SAMPLES // 128) * 128
    model = B.build("width-48", "numpy")
    assert list(model.net.sizes) == [784, 48, 48, 10]
    assert model.optimizer.momentum == 0.9 and model.optimizer.lr == B.WIDTH_LR
    with pytest.raises(ValueError, match="unknown network"):
        B.parse_config("width-x")


def test_same_shape_sgemm_rate():
    small = M.sgemm_gflops(1, reps=3, shape=(8, 16, 24))
    square = M.sgemm_gflops(1, n=64, reps=3)
    assert 0 < small < 1e4 and 0 < square < 1e4


def _row(net, bs, engine, sps, **extra):
    return {"network": net, "batch": bs, "engine": engine, "samples_per_sec": sps,
            "label": engine, **extra}


def test_goal_verdicts_follow_the_numbers():
    from benchmarks.report_goals import goal_rows
    result = {"rows": [
        _row("digits-16", 1, "auto", 600.0), _row("digits-16", 1, "numpy-mlp", 10.0),
        _row("digits-16", 10, "cython", 50.0), _row("digits-16", 10, "numpy-mlp", 10.0),
        _row("mlp-128", 64, "auto", 300.0), _row("mlp-128", 64, "torch", 100.0),
        _row("mlp-128", 64, "jax", 200.0)]}
    sweep = {"rows": [
        _row("width-256", 128, "auto", 90.0, pct_shape_sgemm=85.0),
        _row("width-256", 128, "numpy-mlp", 60.0)]}
    tta = {"engines": [{"engine": "fastnn", "median_seconds": 1.0},
                       {"engine": "torch", "median_seconds": 2.5}]}
    got = {g: (m, v) for g, m, v in goal_rows(result, sweep, tta)}
    assert got["digits-16 batch 1: >= 50x the NumPy MLP"] == ("60.00x", "met")
    assert got["digits-16 batch 10: >= 6x the NumPy MLP"] == ("5.00x", "short")
    assert got["digits-16 batch 32: >= 3x the NumPy MLP"] == ("-", "not measured")
    peer = "mlp-128 batch 64: >= 2.2x the best of PyTorch and JAX (best peer: jax)"
    assert got[peer] == ("1.50x", "short")            # against the faster peer, not torch
    assert got["digits-16 batch 10 per sample at least as fast as batch 1"] == ("0.08x",
                                                                                 "short")
    assert got["width 256: >= 2x the NumPy MLP"] == ("1.50x", "short")
    assert got["width 256: >= 80% of the same-shape sgemm rate"] == ("85%", "met")
    tta_goal = next(k for k in got if k.startswith("time to 98%"))
    assert got[tta_goal] == ("2.50x", "short")


def test_goal_ratios_of_repeated_rows_are_per_run_medians():
    """Each ratio comes from one run (against that run's faster peer); the goal takes their
    median, not the ratio of medians taken from different runs."""
    from benchmarks.report_goals import goal_rows, merge_runs
    runs = [("auto", (300.0, 500.0, 100.0)), ("jax", (100.0, 400.0, 90.0)),
            ("torch", (50.0, 450.0, 10.0)), ("numpy-mlp", (100.0, 100.0, 20.0))]
    first, *again = ({"rows": [_row("mlp-128", 64, e, v[k], flops_per_sample=1e5)
                               for e, v in runs]} for k in range(3))
    for i, rep in enumerate(again):
        rep["command"] = f"run {i + 2}"
    first["sgemm_gflops"] = 100.0
    got = {g: (m, v) for g, m, v in goal_rows(merge_runs(first, again))}
    peer = "mlp-128 batch 64: >= 2.2x the best of PyTorch and JAX (best peer: jax)"
    assert got[peer] == ("1.11x", "short")    # 300/100, 500/450 (torch), 100/90: median
    # (the medians, 300 and 100 from different runs, would have read 3.00x)


def test_sweep_run_and_report(mnist_ok, tmp_path):
    from benchmarks.report_goals import README_END, README_START
    out = tmp_path / "sweep.json"
    _run(["-m", "fastnn", "bench", "--networks", "width-16", "--backends", "auto",
          "--rounds", "1", "--samples", "256", "--check-steps", "0", "--threads", "1",
          "--no-first-call", "--json", str(out)], _env())
    sweep = json.loads(out.read_text())
    rows = {r["engine"]: r for r in sweep["rows"]}
    assert set(rows) == {"auto", "numpy-mlp"}
    r = rows["auto"]
    assert r["shape_sgemm_gflops"] > 0
    assert r["pct_shape_sgemm"] == pytest.approx(100 * r["gflops"] / r["shape_sgemm_gflops"])
    md, png, readme = tmp_path / "B.md", tmp_path / "b.png", tmp_path / "README.md"
    readme.write_text("intro\n" + README_START + "\nold table\n" + README_END + "\nrest\n")
    _run(["-m", "benchmarks.report", str(out), "--sweep", str(out), "--out", str(md),
          "--png", str(png), "--readme", str(readme)], _env())
    new = readme.read_text()
    assert new.startswith("intro\n") and new.endswith(README_END + "\nrest\n")
    assert "old table" not in new and "| network, batch | NumPy MLP |" in new
    text = md.read_text()
    assert "## Width sweep" in text and "| 16 |" in text
    assert "## Against the engine issue's speed goals" in text
    assert "width 16: >= 2x the NumPy MLP" in text


def test_repeated_runs_give_medians_and_ratios_again():
    from benchmarks.report_goals import merge_runs
    first = {"sgemm_gflops": 100.0, "rows": [
        _row("mlp-128", 64, "auto", 300.0, flops_per_sample=1e5),
        _row("mlp-128", 64, "numpy-mlp", 100.0, flops_per_sample=1e5),
        _row("wide-512", 256, "auto", 50.0, flops_per_sample=1e6)]}
    again = [{"command": "fastnn bench --networks mlp-128", "rows": [
        _row("mlp-128", 64, "auto", 500.0), _row("mlp-128", 64, "numpy-mlp", 80.0)]},
             {"command": "fastnn bench --networks mlp-128", "rows": [
        _row("mlp-128", 64, "auto", 400.0)]}]
    merged = merge_runs(first, again)
    rows = {(r["network"], r["engine"]): r for r in merged["rows"]}
    assert rows[("mlp-128", "auto")]["samples_per_sec"] == 400.0          # median of 3
    assert rows[("mlp-128", "numpy-mlp")]["samples_per_sec"] == 90.0      # median of 2
    assert rows[("mlp-128", "auto")]["vs_numpy"] == pytest.approx(400.0 / 90.0)
    assert rows[("wide-512", "auto")]["samples_per_sec"] == 50.0          # not repeated
    assert merged["repeat_commands"] == [a["command"] for a in again]
    assert any("median of 3 runs (300, 500, 400" in n for n in merged["notes"])


def test_cpu_name_names_the_generation_and_caches(monkeypatch, tmp_path):
    # Two CPUs with one model name and one flag list (Zen 4 and Zen 5 EPYC) must read apart.
    lines = ["processor\t: 0", "cpu family\t: 25", "model\t\t: 17", "model name\t: AMD EPYC",
             "flags\t\t: fpu avx2 fma avx512f", "", "processor\t: 1", "cpu family\t: 26",
             "model\t\t: 2"]
    monkeypatch.setattr(M, "_cpuinfo_lines", lambda: lines)
    assert M.cpu_generation() == "family 25 model 17"
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                             (2, "Unified", "1024K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (d / name).write_text(f"{value}\n")
    assert M.cpu_caches(str(tmp_path)) == "L1d 48K, L2 1024K"
    assert M.cpu_caches(str(tmp_path / "absent")) == ""
    monkeypatch.setattr(M, "cpu_caches", lambda: "L1d 48K, L2 1024K")
    assert M.cpu_name().startswith(
        "AMD EPYC (family 25 model 17; L1d 48K, L2 1024K; avx512f, avx2, fma), ")
    monkeypatch.setattr(M, "_cpuinfo_lines", lambda: ["Features\t: asimd"])
    assert M.cpu_generation() == ""
