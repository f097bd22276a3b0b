"""fastnn bench's turn-taking workers (fastnn.bench.interleave), with real worker processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastnn.bench import compare
from fastnn.bench import config as B
from fastnn.bench import interleave as I
from fastnn.bench import machine as M


@pytest.fixture(scope="module")
def first_step(tmp_path_factory):
    from fastnn.datasets import MNISTUnavailableError, load_mnist
    try:
        load_mnist(verbose=False)
    except MNISTUnavailableError as exc:
        pytest.skip(f"MNIST unavailable: {exc}")
    (x, y), _ = B.load_data()
    path = tmp_path_factory.mktemp("first") / "first.npz"
    return compare._save_first_step(path, B.build("digits-16", "numpy"), x, y, 10)


def _spec(engine, first_path, rounds=3):
    return {"engine": engine, "network": "digits-16", "batch": 10, "threads": 1,
            "rounds": rounds, "samples": 200, "first_path": str(first_path),
            "check_steps": 1}


def test_rows_take_turns_and_a_broken_worker_is_an_error_row(first_step, tmp_path):
    specs = [_spec("numpy-mlp", first_step), _spec("numpy", tmp_path / "missing.npz"),
             _spec("numpy", first_step)]
    log = []
    res = I.measure_group(specs, [M.worker_env(1)] * 3, 3, 300, log.append)
    assert [len(r.get("seconds", [])) for r in res] == [3, 0, 3]
    assert "error" in res[1] and "missing.npz" in res[1]["error"]
    assert all(r["check"]["ok"] for r in (res[0], res[2]))
    assert res[2]["resolves_to"] == "numpy"
    # every round names both live rows; the first to go rotates
    rounds = [line for line in log if "round" in line]
    assert len(rounds) == 3 and all("numpy-mlp/b10" in r and "numpy/b10" in r for r in rounds)


def test_a_worker_that_dies_between_rounds_is_reported(first_step):
    w = I.Served(_spec("numpy-mlp", first_step), M.worker_env(1), 300)
    assert w.ready()
    w.round(1)
    assert len(w.times) == 1 and w.times[0] > 0
    w.proc.kill()
    w.round(2)
    assert w.error is not None and len(w.times) == 1
    assert "error" in w.finish()


def test_compare_marks_interleaved_rows_and_can_run_them_one_by_one(first_step, tmp_path):
    for flag, expected in (([], True), (["--no-interleave"], None)):
        out = tmp_path / "cmp.json"
        args = compare.parse_args(["--networks", "digits-16/b10", "--backends", "numpy",
                                   "--rounds", "2", "--samples", "200", "--check-steps", "1",
                                   "--threads", "1", "--no-first-call", "--json", str(out),
                                   *flag])
        result = compare.run(args, log=lambda *a, **k: None)
        assert [r["engine"] for r in result["rows"]] == ["numpy", "numpy-mlp"]
        for r in result["rows"]:
            assert r.get("interleaved") is expected
            assert len(r["samples_per_sec_rounds"]) == 2 and r["check"]["ok"]
    json.dumps(result)          # what --json writes
    assert np.isfinite(result["rows"][0]["vs_numpy"])


def test_time_to_accuracy_takes_turns_seed_by_seed(first_step, tmp_path):
    """Each (engine, seed) in its own process, runs kept in seed order per engine."""
    import subprocess
    import sys

    from fastnn.bench import peers as P
    peers = "torch" if P.installed("torch") else ""
    out = tmp_path / "tta.json"
    proc = subprocess.run([sys.executable, "-m", "fastnn.bench.time_to_accuracy", "--seeds",
                           "0,1", "--peers", peers, "--target", "0.5", "--threads", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [e["engine"] for e in result["engines"]] == ["fastnn", *([peers] if peers else [])]
    for e in result["engines"]:
        assert [r["seed"] for r in e["runs"]] == [0, 1]
        assert all(r["reached"] for r in e["runs"])
        assert e["median_seconds"] > 0
    if peers:   # the second seed started with the peer: the turns rotate
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip().endswith(":")]
        assert lines == ["fastnn:", "torch:", "torch:", "fastnn:"]
