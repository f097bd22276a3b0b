"""Thread control: fastnn's own count and the BLAS/OpenMP pools, capped together."""

import subprocess
import sys

import pytest

import fastnn
import fastnn.threads as fth


def test_module_and_api_names_do_not_shadow_each_other():
    import importlib
    assert importlib.import_module("fastnn.threads") is fth
    assert callable(fastnn.num_threads) and callable(fth.threads)
    assert fastnn.get_num_threads is fth.get_num_threads


def test_context_manager_caps_and_restores_fastnn_and_blas():
    from threadpoolctl import threadpool_info

    before = fastnn.get_num_threads()
    with fastnn.num_threads(1):
        assert fastnn.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert fastnn.get_num_threads() == before


def test_bad_thread_counts():
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="expected an integer >= 1"):
            fastnn.set_num_threads(bad)


def test_env_default():
    code = "import fastnn; print(fastnn.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"FASTNN_NUM_THREADS": "1", "PATH": ""}, timeout=60)
    assert out.stdout.strip() == "1", out.stderr


def test_cli_threads_option(tmp_path, capsys):
    import numpy as np

    from fastnn.cli import main

    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
             y_train=np.arange(60) % 10, x_test=rng.integers(0, 256, (20, 784), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    with fastnn.num_threads(2):   # restores the count the CLI sets
        assert main(["train", "--data", str(data), "--threads", "1", "--epochs", "1",
                     "--quiet"]) == 0
        assert fastnn.get_num_threads() == 1
    assert "threads=1" in capsys.readouterr().out


@pytest.mark.parametrize("first", ["torch", "sklearn"])
def test_import_next_to_torch_and_sklearn_raises_no_openmp_error(first):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    other = "sklearn" if first == "torch" else "torch"
    code = (f"import {first}, fastnn, {other}, numpy as np\n"
            "from sklearn.cluster import KMeans\n"
            "m = fastnn.Sequential([fastnn.Dense(64, 'relu'), fastnn.Dense(3, 'softmax')], "
            "input_size=20, seed=0)\n"
            "x = np.random.default_rng(0).uniform(size=(512, 20)); y = np.arange(512) % 3\n"
            "m.fit(x, y, epochs=2, batch_size=64, verbose=0)\n"
            "torch.randn(64, 64) @ torch.randn(64, 64)\n"
            "KMeans(3, n_init=2).fit(x)\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    assert "OMP: Error" not in r.stderr
    del torch
