"""Every example runs in one command: `python examples/NAME.py --quick` exits 0 and prints its
key lines. The MNIST examples need the data set (cached after the first download)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.checkout   # runs the examples/ scripts of this repository
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMES = ["digits_16", "nielsen_30", "sleep_study", "best_mnist", "embed_predict"]
NEEDS_MNIST = {"digits_16", "nielsen_30", "best_mnist", "embed_predict"}


def run(name, *args, env_extra=None, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("FASTNN_EXAMPLE_QUICK", None)
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def mnist_available():
    import fastnn as fn

    try:
        fn.datasets.load_mnist()
    except fn.datasets.MNISTUnavailableError as exc:
        pytest.skip(f"MNIST not available: {exc}")


@pytest.mark.parametrize("name", NAMES)
def test_help(name):
    out = run(name, "--help")
    assert "usage:" in out and "--quick" in out and "FASTNN_EXAMPLE_QUICK" in out


def test_digits_16_quick(mnist_available):
    out = run("digits_16", "--quick")
    assert "784-16-16-10, 13,002 weights and biases" in out
    assert re.search(r"^\s+1 \|.*%.*\|.*%", out, re.M)          # the per-epoch table
    assert re.search(r"^\s+2 \|", out, re.M)
    m = re.search(r"final test accuracy: sigmoid ([\d.]+)%  relu ([\d.]+)%", out)
    assert m, out
    assert float(m.group(2)) > 60                             # ReLU learns fast even quick


@pytest.mark.slow  # eight PNG files: ~10-20 s of matplotlib on a small machine
def test_digits_16_plots(mnist_available, tmp_path):
    pytest.importorskip("matplotlib")
    out = run("digits_16", "--quick", "--plots", str(tmp_path))
    for act in ("sigmoid", "relu"):
        for png in ("learning_curves", "first_layer_weights", "confusion_matrix",
                    "misclassified"):
            path = tmp_path / act / f"{png}.png"
            assert f"wrote {path}" in out
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nielsen_30_quick(mnist_available):
    out = run("nielsen_30", "--quick")
    assert "784-30-10 sigmoid/sigmoid, quadratic cost (mse), SGD eta 3.0, batch 10" in out
    assert re.search(r"^Epoch 0: \d+ / 2000", out, re.M)
    assert re.search(r"^Epoch 2: \d+ / 2000", out, re.M)
    assert "final test accuracy" in out


def test_sleep_study_quick():
    out = run("sleep_study", "--quick")
    assert "Part 1: 2-3-1 sigmoid network, 13 parameters" in out
    rows = re.findall(r"^\s+(\d+\.\d)\s+(\d+\.\d) \|\s+(\d+)\s+([\d.]+)$", out, re.M)
    assert len(rows) == 3
    for _, _, target, fitted in rows:
        assert abs(float(fitted) - float(target)) < 1.0      # the three students are fitted
    m = re.search(r"predicted score for 8 h sleep, 3 h study: ([\d.]+)", out)
    assert m and 60 < float(m.group(1)) <= 100
    table = dict(re.findall(r"^(none|max|standard) .*\|\s+[\d.]+ \|\s+([\d.]+)", out, re.M))
    assert set(table) == {"none", "max", "standard"}
    assert float(table["standard"]) < 6 < float(table["none"])   # scaling matters
    assert "fastnn warned" in out                            # about the raw inputs


def test_sleep_study_env_quick():
    out = run("sleep_study", env_extra={"FASTNN_EXAMPLE_QUICK": "1"})
    assert "500 full-batch epochs" in out


def test_best_mnist_quick(mnist_available):
    out = run("best_mnist", "--quick")                       # quick: the first two seeds
    assert "784-64-10 relu/softmax" in out
    assert "seed 0:" in out and "seed 1:" in out
    assert re.search(r"epoch  2 .*test [\d.]+%", out)
    assert "median test accuracy over 2 seeds" in out


def test_best_mnist_stops_at_target(mnist_available):
    out = run("best_mnist", "--quick", "--seeds", "0", "--target", "0.5")
    assert re.search(r"seed 0: test accuracy [\d.]+%, reached 50% after 1 epochs in", out)
    assert "epoch  2" not in out                             # stopped after the first epoch
    assert "median time to 50%" in out


def test_embed_predict_quick(mnist_available, tmp_path):
    path = tmp_path / "d16.fnn"
    out = run("embed_predict", "--quick", "--save", str(path))
    assert path.exists()
    assert "reloaded model predicts bit-identically: True" in out
    for name in ("predict", "predict_classes"):
        m = re.search(rf"{name}\(x_row\)\s+median\s+([\d.]+) us\s+p99\s+([\d.]+) us", out)
        assert m, out
        assert 0 < float(m.group(1)) <= float(m.group(2))
    again = run("embed_predict", "--quick", "--model", str(path))
    assert f"loading {path}" in again and "median" in again
