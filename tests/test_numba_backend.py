"""Numba-specific behaviour: lazy compilation, the disk cache, the gemm path, threads, no-JIT."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn as fn

nb = pytest.importorskip("fastnn.backends.numba_backend")
from fastnn._nb import config as nbconfig  # noqa: E402
from fastnn._nb import kernels as K  # noqa: E402

from .test_backends import OPTIMIZERS, assert_close, build, make_data  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


def run_py(code, **env):
    full = dict(os.environ, PYTHONPATH=ROOT, **env)
    for var in ("NUMBA_CACHE_DIR",):
        full.pop(var, None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_fastmath_flags_keep_nan_and_inf():
    assert nbconfig.FASTMATH == {"nsz", "arcp", "contract", "afn", "reassoc"}
    assert not {"nnan", "ninf", "fast"} & nbconfig.FASTMATH


def test_cache_dir_precedence(monkeypatch, tmp_path):
    for var in ("NUMBA_CACHE_DIR", "FASTNN_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = os.path.expanduser("~")
    assert nbconfig.cache_dir() == os.path.join(home, ".cache", "fastnn", "numba")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert nbconfig.cache_dir() == str(tmp_path / "xdg" / "fastnn" / "numba")
    monkeypatch.setenv("FASTNN_CACHE", str(tmp_path / "fc"))
    assert nbconfig.cache_dir() == str(tmp_path / "fc")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "nc"))
    assert nbconfig.cache_dir() == str(tmp_path / "nc")


def test_kernels_use_fastnn_cache_and_leave_numba_alone():
    from numba.core import caching
    assert nbconfig._FastnnLocator not in caching.CacheImpl._locator_classes
    if nbconfig.JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT")
    cache = K.train_serial._cache
    assert isinstance(cache, nbconfig.KernelCache)
    assert "site-packages" not in cache.cache_path
    assert not cache.cache_path.startswith(os.path.dirname(K.__file__))


def test_import_compiles_nothing(tmp_path):
    code = textwrap.dedent("""
        import fastnn
        from fastnn.backends import get_backend
        get_backend("numba")
        from fastnn._nb import kernels as K
        from numba.core.dispatcher import Dispatcher
        d = [v for v in vars(K).values() if isinstance(v, Dispatcher)]
        assert d and all(not f.signatures for f in d), [f for f in d if f.signatures]
        print(len(d))
    """)
    assert int(run_py(code, FASTNN_CACHE=str(tmp_path))) > 10


def test_cache_is_written_then_reused(tmp_path):
    first = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path))
    files = [f for _, _, fs in os.walk(tmp_path) for f in fs]
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files)
    assert run_py(SCRIPT, FASTNN_CACHE=str(tmp_path)) == first


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


def test_garbage_cache_files_mean_recompile(tmp_path):
    ref = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path))
    n = 0
    for dirpath, _, fs in os.walk(tmp_path):
        for f in fs:
            if f.endswith((".nbi", ".nbc")):
                with open(os.path.join(dirpath, f), "wb") as fh:
                    fh.write(b"\x80\x04garbage" if n % 2 else b"")
                n += 1
    assert n > 0
    assert run_py(SCRIPT, FASTNN_CACHE=str(tmp_path)) == ref


def test_disable_jit_runs_pure_python(tmp_path):
    ref = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path))
    got = run_py(SCRIPT, FASTNN_CACHE=str(tmp_path), NUMBA_DISABLE_JIT="1").split()
    np.testing.assert_allclose([float(v) for v in got], [float(v) for v in ref.split()],
                               rtol=1e-12)


def test_warmup_returns_seconds():
    t1 = nb.warmup(("float64",))
    t2 = nb.warmup(("float64",))
    assert t1 >= 0 and t2 >= 0
    assert t2 < 5.0


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
def test_vector_blocks_match_numpy_and_stay_in_bounds(dtype):
    """vec.py's 16-lane blocks (full, masked tails, multi-block rows) against NumPy; the
    elements around every written range must stay untouched."""
    from fastnn._nb import vec as V
    if nbconfig.JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT: the blocks are the NumPy fallbacks themselves")
    import numba
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    n_in = 37

    @numba.njit
    def run(z, zo, W, x, idx, cnt, d, n, which):
        one = z.dtype.type(1)
        if which == 0:
            K.mvs_w(z, zo, n, W, 0, n, x, 0, idx, cnt, one, False)
        elif which == 1:
            K.mvd_w(z, zo, n, W, 0, n, x, 0, 1, n_in, one, True)
        else:
            K.axpy_rows_w(W, 0, n, n, x, 0, idx, 0, cnt, one, d, 0)

    for n in (1, 5, 16, 17, 30, 32, 64):
        W = rng.normal(size=n_in * n + 40).astype(dt)
        x = (rng.normal(size=n_in) * (rng.random(n_in) < 0.5)).astype(dt)
        idx = np.flatnonzero(x).astype(np.int32)
        d = rng.normal(size=n).astype(dt)
        Wm = W[:n_in * n].reshape(n_in, n)
        z = np.full(n + 40, 7.0, dtype=dt)
        run(z, 3, W, x, idx, len(idx), d, n, 0)
        np.testing.assert_allclose(z[3:3 + n], x @ Wm, rtol=1e-4, atol=1e-4)
        assert (z[:3] == 7).all() and (z[3 + n:] == 7).all()
        z0 = z.copy()
        run(z, 3, W, x, idx, len(idx), d, n, 1)
        np.testing.assert_allclose(z[3:3 + n], z0[3:3 + n] + x @ Wm, rtol=1e-4, atol=1e-4)
        assert (z[:3] == 7).all() and (z[3 + n:] == 7).all()
        W0 = W.copy()
        run(z, 3, W, x, idx, len(idx), d, n, 2)
        np.testing.assert_allclose(W[:n_in * n].reshape(n_in, n),
                                   W0[:n_in * n].reshape(n_in, n) + np.outer(x, d),
                                   rtol=1e-4, atol=1e-4)
        assert (W[n_in * n:] == W0[n_in * n:]).all()

    @numba.njit
    def acts(z, b, n):
        for j in range(0, n, 16):
            V.blk_sigmoid(z, j, min(16, n - j), b, j)

    @numba.njit
    def soft(z, b, n):
        V.blk_softmax(z, 0, n, b, 0)

    v = np.linspace(-100, 100, 45).astype(dt)
    b = rng.normal(size=45).astype(dt)
    z = v.copy()
    acts(z, b, 45)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-(v + b)))         # NumPy in the same dtype
    np.testing.assert_allclose(z, ref, rtol=2e-6 if dtype == "float32" else 1e-15)
    for n in (1, 4, 10, 16):
        z = v[20:20 + n].copy()
        soft(z, b, n)
        e = np.exp(v[20:20 + n] + b[:n] - np.max(v[20:20 + n] + b[:n]))
        np.testing.assert_allclose(z, e / e.sum(), rtol=1e-5 if dtype == "float32" else 1e-13)
