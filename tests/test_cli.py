"""Command line: help text, exit codes, one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, timeout=120)


def test_help_and_usage_errors():
    r = run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "examples:" in r.stdout
    assert run("train", "--help").returncode == 0
    assert run("frobnicate").returncode == 2
    assert run("train", "--epochs", "many").returncode == 2


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"fastnn {fn.__version__}"


def test_bench_quick_options_are_a_small_run():
    """--quick narrows the run to a smoke size (CI runs it from an installed wheel)."""
    from fastnn.bench import compare

    full, args = compare.parse_args([]), compare.parse_args(["--quick"])
    assert full.first_call and full.samples is None and len(full.networks) == 6
    assert args.networks == list(compare.QUICK_NETWORKS) and not args.first_call
    assert args.samples == compare.QUICK_SAMPLES and args.rounds == compare.QUICK_ROUNDS


def test_runtime_error_is_one_line_and_exit_1(tmp_path):
    r = run("evaluate", str(tmp_path / "missing.fnn"))
    assert r.returncode == 1
    assert r.stderr.startswith("fastnn: error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run("--debug", "evaluate", str(tmp_path / "missing.fnn"))
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_train_on_npz_data_and_predict(tmp_path, capsys):
    x, y = fn.datasets.make_blobs(n=400, n_classes=3, n_features=6, seed=0)
    np.savez(tmp_path / "d.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:],
             y_test=y[300:])
    code = main(["train", "--data", str(tmp_path / "d.npz"), "--layers", "8",
                 "--activation", "tanh", "--optimizer", "adam", "--lr", "0.05", "--epochs", "20",
                 "--batch-size", "16", "--schedule", "step:10:0.5", "--quiet",
                 "--save", str(tmp_path / "m.fnn")])
    assert code == 0
    out = capsys.readouterr().out
    assert "6-8-3" in out and float(out.split("test accuracy ")[1].split("%")[0]) > 90
    np.savez(tmp_path / "q.npz", x=x[300:305])
    assert main(["predict", str(tmp_path / "m.fnn"), str(tmp_path / "q.npz")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [int(line.split()[1]) for line in lines] == list(y[300:305])


@pytest.mark.parametrize("args, message", [
    (["train", "--schedule", "weekly", "--data", "x.npz"], "--schedule"),
    (["train", "--layers", "8,8", "--activation", "relu,relu,relu", "--data", "x.npz"],
     "--activation"),
])
def test_bad_options_explained(args, message, capsys):
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_info_lists_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend numpy" in out and "auto ->" in out and "cpu features" in out


def test_predict_a_png(tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    x, y = fn.datasets.make_blobs(n=60, n_classes=2, n_features=784, seed=0)
    m = fn.Sequential([fn.Dense(2, "softmax")], input_size=784, seed=0)
    m.fit(np.clip(x / 8 + 0.5, 0, 1), y, epochs=5, verbose=0)
    m.save(tmp_path / "m.fnn")
    img = (np.clip(x[0].reshape(28, 28) / 8 + 0.5, 0, 1) * 255).astype(np.uint8)
    pil.fromarray(img).save(tmp_path / "digit.png")
    assert main(["predict", str(tmp_path / "m.fnn"), str(tmp_path / "digit.png")]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1 and line[0].split()[1] == str(y[0])
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert main(["predict", str(tmp_path / "m.fnn"), str(tmp_path / "bad.png")]) == 1


def test_bench_entry_runs_the_compare_command():
    r = run("bench", "--help")
    assert r.returncode == 0 and "--peers" in r.stdout, r.stderr
