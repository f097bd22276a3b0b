"""Numba-specific behaviour: lazy compilation, the disk cache, the gemm path, threads, no-JIT,
the row kernels themselves and the float64-then-round optimiser scalars."""

import os
import platform
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn as fn

nb = pytest.importorskip("fastnn.backends.numba_backend")
from fastnn._nb import dense, jit, optim  # noqa: E402

from .helpers import OPTIMIZERS, assert_close, build, make_data  # noqa: E402

# The folder that holds the fastnn under test (a checkout, or site-packages for an installed
# wheel): subprocesses import the same fastnn as this process.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))

# A tiny training + prediction run (row path, float64) used by the subprocess tests.
SCRIPT = textwrap.dedent("""
    import numpy as np, fastnn as fn
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 6)); y = rng.integers(0, 3, size=20)
    m = fn.Sequential([fn.Dense(5, "tanh"), fn.Dense(3, "softmax")], input_size=6,
                      optimizer=fn.SGD(0.1), dtype="float64", backend="numba", seed=1)
    m.fit(x, y, epochs=2, batch_size=4, seed=2, verbose=0)
    print(repr(float(m.predict(x).sum())), repr(float(m.params.sum())))
""")
# Appended to SCRIPT: numba's public dispatcher counters for the kernels the run used.
STATS = textwrap.dedent("""
    from fastnn._nb import serial, predict
    kern = [serial.train_serial, predict.predict]
    print(sum(sum(k.stats.cache_hits.values()) for k in kern),
          sum(sum(k.stats.cache_misses.values()) for k in kern))
""")


def run_py(code, root=ROOT, **env):
    full = dict(os.environ, PYTHONPATH=root, **env)
    if "NUMBA_CACHE_DIR" not in env:
        full.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                         timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr
    return out.stdout


def cache_files(path):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
                  if f.endswith((".nbi", ".nbc")))


def test_fastmath_flags_keep_nan_and_inf():
    assert jit.FASTMATH == {"nsz", "arcp", "contract", "afn", "reassoc"}
    assert not {"nnan", "ninf", "fast"} & jit.FASTMATH
    # behaviour, not just the flags: NaN and inf reach the outputs as in NumPy
    x = np.ones((3, 8))
    x[1, 2], x[2, 5] = np.nan, np.inf
    for be in ("numpy", "numba"):
        m = build((8, 6, 4), "relu", "softmax", "cross_entropy", "sgd", "float64", be)
        out = m.backend.workspace(m.net, 4)
        res = np.empty((3, 4))
        with np.errstate(invalid="ignore"):
            m.backend.predict(m.net, x, res, out)
        assert np.isfinite(res[0]).all() and np.isnan(res[1]).all(), be
        assert not np.isfinite(res[2]).all(), be


def test_cache_dir_precedence(monkeypatch, tmp_path):
    for var in ("NUMBA_CACHE_DIR", "FASTNN_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = os.path.expanduser("~")
    assert jit.cache_dir() == os.path.join(home, ".cache", "fastnn", "numba")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jit.cache_dir() == str(tmp_path / "xdg" / "fastnn" / "numba")
    monkeypatch.setenv("FASTNN_CACHE", str(tmp_path / "fc"))
    assert jit.cache_dir() == str(tmp_path / "fc")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "nc"))
    assert jit.cache_dir() == str(tmp_path / "nc")


def test_no_llvmlite_and_no_private_numba_in_kernels():
    here = os.path.join(ROOT, "fastnn")
    for dirpath, _, names in os.walk(here):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name)) as f:
                    src = f.read()
                assert "llvmlite" not in src, name
                assert "numba.core" not in src and "numba.extending" not in src, name


def test_import_compiles_nothing(tmp_path):
    code = textwrap.dedent("""
        import numba
        before = numba.config.CACHE_DIR
        from fastnn.backends import get_backend
        get_backend("numba")
        from fastnn._nb import batched, dense, loss, optim, predict, serial
        from numba.core.registry import CPUDispatcher
        d = [v for m in (batched, dense, loss, optim, predict, serial) for v in vars(m).values()
             if isinstance(v, CPUDispatcher)]
        assert d and all(not f.signatures for f in d), [f for f in d if f.signatures]
        assert numba.config.CACHE_DIR == before   # numba's setting is put back
        print(len(d))
    """)
    assert int(run_py(code, FASTNN_CACHE=str(tmp_path))) > 20


def test_cache_is_written_then_reused(tmp_path):
    if jit.JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT")
    first = run_py(SCRIPT + STATS, FASTNN_CACHE=str(tmp_path)).split("\n")
    files = cache_files(tmp_path)
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files)
    assert all(f.startswith(str(tmp_path / jit.source_tag())) for f in files)
    assert not [f for f in os.listdir(os.path.join(ROOT, "fastnn", "_nb"))
                if f == "__pycache__" and cache_files(os.path.join(ROOT, "fastnn", "_nb", f))]
    hits, misses = map(int, first[1].split())
    assert hits == 0 and misses > 0
    again = run_py(SCRIPT + STATS, FASTNN_CACHE=str(tmp_path)).split("\n")
    assert again[0] == first[0]
    hits, misses = map(int, again[1].split())
    assert hits > 0 and misses == 0


def test_numba_cache_dir_is_respected(tmp_path):
    if jit.JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT")
    run_py(SCRIPT, NUMBA_CACHE_DIR=str(tmp_path / "nc"), FASTNN_CACHE=str(tmp_path / "fc"))
    assert cache_files(tmp_path / "nc") and not os.path.exists(tmp_path / "fc")


def test_unwritable_cache_dir_is_silent(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    ref = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path / "ok"))
    assert run_py(SCRIPT, FASTNN_CACHE=str(blocker / "cache")) == ref   # makedirs fails
    if hasattr(os, "geteuid") and os.geteuid() != 0:            # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert run_py(SCRIPT, FASTNN_CACHE=str(ro)) == ref
            assert not list(ro.iterdir())
        finally:
            ro.chmod(0o755)


def test_broken_cache_files_mean_recompile(tmp_path):
    if jit.JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT")
    ref = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path))
    files = cache_files(tmp_path)
    for n, path in enumerate(files):        # truncated, garbage, and half a pickle
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write([b"", b"\x80\x04garbage", data[:len(data) // 2]][n % 3])
    assert run_py(SCRIPT + STATS, FASTNN_CACHE=str(tmp_path)).split("\n")[0] == ref.strip()
    assert len(cache_files(tmp_path)) == len(files)          # written again


def test_stale_cache_recompiles(tmp_path):
    """A changed kernel source gets a fresh cache directory and recompiles silently; a file
    touched without change keeps its cache (numba >= 0.61 stamps contents, older numba
    mtimes: either way the same numbers, no error)."""
    if jit.JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT")
    copy = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "fastnn"), copy / "fastnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    ref = run_py(SCRIPT + STATS, root=str(copy), FASTNN_CACHE=str(cache)).split("\n")
    serial_py = copy / "fastnn" / "_nb" / "serial.py"      # defines train_serial
    st = os.stat(serial_py)
    os.utime(serial_py, (st.st_atime, st.st_mtime + 10))
    touched = run_py(SCRIPT + STATS, root=str(copy), FASTNN_CACHE=str(cache)).split("\n")
    assert touched[0] == ref[0]
    with open(copy / "fastnn" / "_nb" / "loss.py", "a") as f:   # used by train_serial
        f.write("\n# a comment changes the source tag\n")
    edited = run_py(SCRIPT + STATS, root=str(copy), FASTNN_CACHE=str(cache)).split("\n")
    hits, misses = map(int, edited[1].split())
    assert edited[0] == ref[0] and hits == 0 and misses > 0
    assert len(os.listdir(cache)) == 2


def test_disable_jit_runs_pure_python(tmp_path):
    ref = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path))
    got = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path), NUMBA_DISABLE_JIT="1").split()
    np.testing.assert_allclose([float(v) for v in got], [float(v) for v in ref.split()],
                               rtol=1e-12)


def test_warmup_compiles_what_fit_and_predict_use(tmp_path):
    """After warmup, training and prediction (row and gemm paths) compile nothing new."""
    if jit.JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT")
    code = textwrap.dedent("""
        import numpy as np, fastnn as fn
        from fastnn.backends import numba_backend as nb
        from fastnn._nb import batched, predict, serial
        kern = [serial.train_serial, batched.train_batched, batched.loss_grad,
                predict.predict, predict.predict_one]
        seconds = nb.warmup(("float32",))
        n_sigs = [len(k.signatures) for k in kern]
        rng = np.random.default_rng(0)
        x = rng.uniform(size=(64, 20)).astype(np.float32); y = rng.integers(0, 4, size=64)
        for hidden, bs in ((8, 4), (80, 16)):
            m = fn.Sequential([fn.Dense(hidden, "relu"), fn.Dense(7, "tanh"),
                               fn.Dense(4, "softmax")], input_size=20, dtype="float32",
                              optimizer=fn.Adam(), backend="numba")
            m.fit(x, y, epochs=1, batch_size=bs, verbose=0)
            m.predict(x); m.predict(x[0])
        print(seconds, n_sigs == [len(k.signatures) for k in kern], min(n_sigs))
    """)
    seconds, same, fewest = run_py(code, FASTNN_CACHE=str(tmp_path)).split()
    assert float(seconds) > 0 and same == "True" and int(fewest) >= 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("head", [("cross_entropy", "softmax", 4), ("mse", "sigmoid", 4),
                                  ("binary_cross_entropy", "sigmoid", 1)],
                         ids=lambda h: h[0])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "leaky_relu"])
def test_gemm_path_matches_numpy(monkeypatch, dtype, opt_name, head, hidden):
    """The batched (gemm + sparse input layer) path, forced on for a small network."""
    monkeypatch.setattr(nb, "BATCHED_MIN_WIDTH", 1)
    monkeypatch.setattr(nb, "BATCHED_MIN_BATCH", 1)
    loss, out, n_out = head
    x, y = make_data(103, 12, n_out, loss, 0)
    res = []
    for be in ("numpy", "numba"):
        m = build((12, 9, 7, n_out), hidden, out, loss, OPTIMIZERS[opt_name](), dtype, be)
        h = m.fit(x, y, epochs=3, batch_size=10, seed=1, verbose=0)
        res.append((m, h))
    (ref, href), (mod, hmod) = res
    assert mod._train_ws.batched
    assert_close(mod.params, ref.params, dtype, "parameters")
    np.testing.assert_allclose(hmod["loss"], href["loss"], rtol=1e-9 if dtype == "float64"
                               else 1e-3)


@pytest.mark.parametrize("batched", [False, True])
def test_deterministic_for_a_thread_count(monkeypatch, batched):
    from fastnn.threads import threads
    if batched:
        monkeypatch.setattr(nb, "BATCHED_MIN_WIDTH", 1)
    x, y = make_data(200, 30, 10, "cross_entropy", 0)
    outs = {}
    for n_threads in (1, 2, 2, 1):
        with threads(n_threads):
            m = build((30, 20, 10), "relu", "softmax", "cross_entropy", fn.Adam(1e-2),
                      "float32", "numba")
            m.fit(x, y, epochs=2, batch_size=16, seed=3, verbose=0)
        if n_threads in outs:
            np.testing.assert_array_equal(m.params, outs[n_threads])
        outs[n_threads] = m.params.copy()
    assert_close(outs[2], outs[1], "float32", "1 vs 2 threads")


def test_concurrent_predict_threads():
    from concurrent.futures import ThreadPoolExecutor
    x, _ = make_data(3000, 40, 10, "cross_entropy", 0)
    m = build((40, 64, 10), "relu", "softmax", "cross_entropy", "sgd", "float64", "numba")
    ref = m.predict(x)
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda i: m.predict(x[i::4]), range(4)))
    for i, o in enumerate(outs):
        np.testing.assert_array_equal(o, ref[i::4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 5, 10, 16, 17, 30, 64, 130])
def test_row_kernels_match_numpy_and_stay_in_bounds(dtype, n):
    """dense.py's row kernels on a layer record against NumPy; the elements around every
    written range stay untouched (the same source runs under NUMBA_DISABLE_JIT)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(n)
    n_in, pad = 37, 5
    lay = np.zeros(1, dtype=nb.LAYER)[0]
    lay["n_in"], lay["n_out"], lay["w"] = n_in, n, pad
    params = rng.normal(size=pad + n_in * n + pad).astype(dt)
    W = params[pad:pad + n_in * n].reshape(n_in, n)
    x = (rng.normal(size=n_in) * (rng.random(n_in) < 0.5)).astype(dt)
    x[3] = 2.0                                   # at least one nonzero input
    idx = np.full(n_in, -1, dtype=np.int32)
    nnz = dense.list_nonzeros(x, idx)
    np.testing.assert_array_equal(idx[:nnz], np.flatnonzero(x))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    z = np.full(n + 2 * pad, 7.0, dtype=dt)
    dense.sparse_matvec(z[pad:pad + n], params, lay, 0, x, idx, nnz)
    np.testing.assert_allclose(z[pad:pad + n], x @ W, **tol)
    dense.matvec(z[pad:pad + n], params, lay, x)
    np.testing.assert_allclose(z[pad:pad + n], x @ W, **tol)
    assert (z[:pad] == 7).all() and (z[pad + n:] == 7).all()
    d = rng.normal(size=n).astype(dt)
    before = params.copy()
    Wb = W.copy()
    dense.add_outer_sparse(params, lay, 0, dt.type(-0.5), x, idx, nnz, d)
    np.testing.assert_allclose(W, Wb - 0.5 * np.outer(x, d), **tol)
    dense.add_outer(params, lay, dt.type(0.5), x, d)
    np.testing.assert_allclose(W, Wb, **tol)
    assert (params[:pad] == before[:pad]).all() and (params[-pad:] == before[-pad:]).all()
    dprev = np.empty(n_in, dtype=dt)
    a = rng.uniform(0.1, 0.9, size=n_in).astype(dt)
    dense.backprop_row(dprev, params, lay, d, a, fn.activations.SIGMOID)
    np.testing.assert_allclose(dprev, (W @ d) * a * (1 - a), **tol)


def test_optimiser_scalars_are_rounded_once_from_float64():
    hyper = np.zeros(optim.N_HYPER)
    hyper[[optim.LR, optim.BETA1, optim.BETA2, optim.MOMENTUM_SLOT]] = 1e-3, 0.9, 0.999, 0.9
    for dt in (np.float32, np.float64):
        s = [float(v) for v in optim.step_scalars(hyper, 7, np.zeros(1, dt))]
        assert all(v == float(dt(v)) for v in s)           # values of the dtype
        assert s[3] == float(dt(1.0 - 0.9)) and s[5] == float(dt(1.0 - 0.999))
        assert s[8] == float(dt(1e-3 / (1.0 - 0.9 ** 7)))
        assert s[9] == float(dt(np.sqrt(1.0 - 0.999 ** 7)))
    s32 = optim.step_scalars(hyper, 1, np.zeros(1, np.float32))
    assert float(s32[5]) != float(np.float32(1) - np.float32(0.999))   # float32 1 - b2 is off


def test_inner_loops_vectorise(tmp_path):
    """The sparse layer's inner loop compiles to packed FMAs (x86-64 with AVX2 or AVX-512)."""
    if jit.JIT_DISABLED or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs the JIT on x86-64")
    code = textwrap.dedent("""
        import re, numpy as np
        from fastnn._nb import dense
        from fastnn.backends import numba_backend as nb
        lay = np.zeros(1, dtype=nb.LAYER)[0]
        lay["n_in"], lay["n_out"] = 64, 16
        p = np.zeros(64 * 16, np.float32); x = np.zeros(64, np.float32)
        dense.sparse_matvec(np.zeros(16, np.float32), p, lay, 0, x, np.zeros(64, np.int32), 0)
        asm = "".join(dense.sparse_matvec.inspect_asm().values())
        print(len(re.findall(r"vfmadd\\w*ps\\s+[^\\n]*[yz]mm", asm)))
    """)
    blocker = tmp_path / "f"
    blocker.write_text("")          # no cache: inspect_asm needs freshly compiled code
    n = int(run_py(code, FASTNN_CACHE=str(blocker / "x")))
    if n == 0 and "avx2" not in open("/proc/cpuinfo").read():
        pytest.skip("CPU without AVX2")
    assert n > 0
