"""Bad files, interruption, resume, concurrency, processes and memory: nothing is lost."""

import multiprocessing as mp
import os
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn as fn
from fastnn.io import ModelFileError, from_bytes, to_bytes
from fastnn.threads import threads

from .helpers import run_threads


def blobs(n=400, n_in=10, k=3, seed=0):
    return fn.datasets.make_blobs(n=n, n_classes=k, n_features=n_in, seed=seed)


def small_model(backend="numpy", seed=0, opt=None, dtype="float32"):
    return fn.Sequential([fn.Dense(8, "tanh"), fn.Dense(3, "softmax")], input_size=10,
                         optimizer=opt or fn.Adam(1e-2), seed=seed, backend=backend,
                         dtype=dtype)


# ---- model files ----------------------------------------------------------------------------
_VALID = None


def valid_bytes():
    global _VALID
    if _VALID is None:
        m = small_model(opt=fn.SGD(0.1, momentum=0.9))
        x, y = blobs()
        m.fit(x, y, epochs=1, verbose=0)
        _VALID = to_bytes(m)
    return _VALID


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
)


def mutate(data, ops):
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= val
        elif kind == "truncate":
            del b[i:]
        elif kind == "insert":
            b.insert(i, val)
        else:
            del b[i:i + val]
    return bytes(b)


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(mutations, min_size=1, max_size=4))
def test_fuzz_mutated_model_files_give_only_the_documented_error(ops):
    data = mutate(valid_bytes(), ops)
    try:
        m = from_bytes(data, backend="numpy")
    except ModelFileError:
        return
    # Loads only if the mutation hit nothing that matters (e.g. the version string):
    assert np.isfinite(m.params).all()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes(data):
    with pytest.raises(ModelFileError):
        from_bytes(data, backend="numpy")


def test_forged_config_cannot_allocate_gigabytes():
    raw = valid_bytes()
    forged = raw.replace(b'\\"units\\": 8', b'\\"units\\": 800000000')
    assert forged != raw
    with pytest.raises(ModelFileError):
        from_bytes(forged)


def test_pickle_is_never_loaded(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.fnn").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFileError):
        fn.load(tmp_path / "evil.fnn")
    assert not (tmp_path / "pwned").exists()


# ---- interruption, divergence, resume ------------------------------------------------------
@pytest.fixture
def terminal_sigint():
    """Ctrl-C as a terminal delivers it: a shell running us in the background (as a CI job
    may) starts Python with SIGINT ignored, and then there is no KeyboardInterrupt to test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_mid_fit_leaves_a_consistent_model(monkeypatch, terminal_sigint):
    import fastnn.training as ft
    monkeypatch.setattr(ft, "SAMPLES_PER_CALL", 64)       # many native calls per epoch
    x, y = blobs(n=3000)
    m = small_model()
    calls = []
    real = m.backend.train_steps

    def train_steps(*args):
        calls.append(1)
        if len(calls) == 30:   # the signal arrives while a native call is running
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(m.backend, "train_steps", train_steps)
    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, epochs=5, batch_size=16, seed=3, verbose=0)
    assert m.history.interrupted and len(m.history) == 30 * 64 // 3000   # whole epochs kept
    assert m.optimizer.t == 30 * (64 // 16)                          # the last call completed
    # Replaying exactly that many steps from scratch gives the same weights.
    monkeypatch.undo()
    ref, done = small_model(), len(m.history)
    if done:
        ref.fit(x, y, epochs=done, batch_size=16, seed=3, verbose=0)
    ws = ref.backend.workspace(ref.net, 16)
    order = ref._epoch_order(len(x), done, True, 3)
    yd = ref._targets("y", y, len(x)).y
    ref.backend.train_steps(ref.net, ref.optimizer, ref._inputs("x", x), yd, order, 0,
                            m.optimizer.t - ref.optimizer.t, 16, ws, 1)
    np.testing.assert_array_equal(m.params, ref.params)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_is_the_elementwise_check(dtype):
    from fastnn.training import all_finite
    a = np.ones(1001, dtype)
    assert all_finite(a)
    for bad in (np.nan, np.inf, -np.inf):
        a[500] = bad
        assert not all_finite(a)
    a[:] = np.finfo(dtype).max            # finite, but the one-pass sum overflows
    assert all_finite(a)
    a[-1] = np.nan
    assert not all_finite(a)


@pytest.mark.parametrize("backend", ["numpy", "cython", "numba"])
def test_divergence_in_a_later_call_keeps_the_state_before_the_bad_step(monkeypatch, backend):
    """fit keeps one copy of the state an epoch: a divergence replays the calls before the
    failed one as they ran, then its steps one by one, and stops before the bad step."""
    import re

    import fastnn.training as ft
    monkeypatch.setattr(ft, "SAMPLES_PER_CALL", 32)       # 2 steps of 16 a call
    x, _ = blobs(n=96)
    y = np.random.default_rng(1).normal(size=(96, 4)) * 100

    def model():
        return fn.Sequential([fn.Dense(16, "relu"), fn.Dense(4, "identity")], input_size=10,
                             loss="mse", optimizer=fn.SGD(0.5, momentum=0.9), seed=0,
                             backend=backend)

    m = model()
    with pytest.raises(fn.DivergenceError) as err:
        m.fit(x, y, epochs=50, batch_size=16, seed=2, verbose=0)
    epoch, step = map(int, re.search(r"epoch (\d+) at step (\d+)", str(err.value)).groups())
    assert epoch > 0 or step >= 2, "diverged in the first call: the replay went untested"
    assert np.isfinite(m.params).all() and np.isfinite(m.optimizer.m).all()
    ref = model()                # the same run, stopped just before the bad step
    if epoch:
        ref.fit(x, y, epochs=epoch, batch_size=16, seed=2, verbose=0)
    if step:
        ws = ref.backend.workspace(ref.net, 16)
        ref.backend.train_steps(ref.net, ref.optimizer, ref._inputs("x", x),
                                ref._targets("y", y, len(x)).y,
                                ref._epoch_order(len(x), epoch, True, 2), 0, step, 16, ws, 0)
    np.testing.assert_array_equal(m.params, ref.params)
    np.testing.assert_array_equal(m.optimizer.m, ref.optimizer.m)


def test_checkpoint_resume_reproduces_the_uninterrupted_run(tmp_path, backend):
    x, y = blobs()
    with threads(1):
        full = small_model(backend)
        full.fit(x, y, epochs=4, batch_size=8, seed=5, verbose=0)

        crashing = small_model(backend)
        ckpt = fn.ModelCheckpoint(tmp_path / "ckpt-{epoch}.fnn")

        def crash(model, epoch, logs):
            if epoch == 1:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            crashing.fit(x, y, epochs=4, batch_size=8, seed=5, verbose=0,
                         callbacks=[ckpt, fn.LambdaCallback(crash)])
        resumed = fn.load(tmp_path / "ckpt-2.fnn", backend=backend)
        assert resumed.epochs_done == 2 and resumed.fit_seed == 5
        resumed.fit(x, y, epochs=4, batch_size=8, seed=resumed.fit_seed,
                    initial_epoch=resumed.epochs_done, verbose=0)
    np.testing.assert_array_equal(resumed.params, full.params)


# ---- threads and processes -----------------------------------------------------------------
def test_eight_threads_predict_concurrently(backend):
    x, y = blobs(n=2000)
    m = small_model(backend)
    m.fit(x, y, epochs=1, verbose=0)
    expected = m.predict(x)
    rows = [m.predict(x[i]) for i in range(50)]
    errors = []

    def work():
        try:
            for _ in range(20):
                np.testing.assert_array_equal(m.predict(x), expected)
                for i in range(50):
                    np.testing.assert_array_equal(m.predict(x[i]), rows[i])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    run_threads(work, 8)
    assert not errors, errors[0]


def _fit_in_child(backend, queue):
    x, y = blobs()
    m = small_model(backend)
    with threads(1):
        m.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0)
    queue.put(m.params.copy())


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_fit_in_a_child_process(method, backend):
    x, y = blobs()
    m = small_model(backend)
    with threads(1):
        m.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0)
    ctx = mp.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=_fit_in_child, args=(backend, q))
    p.start()
    params = q.get(timeout=300)
    p.join(timeout=60)
    assert p.exitcode == 0
    np.testing.assert_array_equal(params, m.params)


# ---- memory ---------------------------------------------------------------------------------
def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_no_memory_growth_over_many_predicts_and_fits(backend):
    x, y = blobs(n=200)
    m = small_model(backend)
    for _ in range(200):            # warm up allocators, caches, JIT
        m.predict(x[0])
    m.fit(x, y, epochs=1, verbose=0)
    before = _rss_mb()
    for i in range(10_000):
        m.predict(x[i % 200])
    for _ in range(100):
        small_model(backend).fit(x, y, epochs=1, batch_size=32, verbose=0)
    grown = _rss_mb() - before
    assert grown < 25, f"RSS grew by {grown:.1f} MB"
