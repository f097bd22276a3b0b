"""Cython-specific checks: every SIMD build, thread-count determinism, input validation."""

import os

import numpy as np
import pytest

import fastnn as fn
from fastnn.threads import threads

kernels = pytest.importorskip("fastnn._kernels")
cb = pytest.importorskip("fastnn.backends.cython_backend")

from .helpers import (  # noqa: E402
    OPTIMIZERS,
    assert_close,
    available_isas,
    build,
    make_data,
    run_threads,
    train_pair,
)

ISAS = available_isas(kernels)


@pytest.fixture
def isa(request):
    kernels.select_isa(request.param)
    yield request.param
    kernels.select_isa("auto")


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes,batch,opt", [((784, 16, 16, 10), 1, "sgd"),
                                             ((784, 16, 16, 10), 10, "sgd"),
                                             ((50, 30, 10), 7, "adam_wd"),
                                             ((64, 130, 33, 10), 64, "momentum"),
                                             ((40, 200, 10), 32, "nesterov"),
                                             # inner dimension 640 (> 512) in the own sgemm
                                             ((50, 96, 640, 64, 10), 64, "momentum")])
def test_every_simd_build_matches_numpy(isa, dtype, sizes, batch, opt):
    x, _, ((ref, _), (mod, _)) = train_pair("cython", sizes, "relu", "softmax", "cross_entropy",
                                            opt, dtype, min(20 * batch, 400), batch, 1)
    assert_close(mod.params, ref.params, dtype, f"parameters ({isa})")
    assert_close(mod.predict(x), ref.predict(x), dtype, f"predictions ({isa})")
    assert_close(mod.predict(x[3]), ref.predict(x[3]), dtype, f"one row ({isa})")


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n_in,opt", [(100, "adam"), (47, "momentum"), (64, "sgd")])
def test_layer0_row_tasks_split_anywhere_match_numpy(isa, dtype, n_in, opt):
    """The batched step's layer-0 tasks find each sample's nonzeros in their row range from
    16-input block starts: ranges that start and end inside a block must still match."""
    old = kernels.get_tuning()
    kernels.set_tuning(par_min_work_batch=0, task_work=1000)   # chunked, 8 tasks per layer
    try:
        x, _, ((ref, _), (mod, _)) = train_pair("cython", (n_in, 130, 10), "relu", "softmax",
                                                "cross_entropy", opt, dtype, 160, 32, 1)
    finally:
        kernels.set_tuning(**old)
    assert_close(mod.params, ref.params, dtype, f"parameters ({isa}, {n_in} inputs)")


def _fit_sharing_small_steps(m, x, y, n, **fit_kw):
    """m.fit on n threads, with threads sharing even the smallest per-sample steps."""
    old = kernels.get_tuning()
    kernels.set_tuning(par_min_work=0)
    try:
        with threads(n):
            return m.fit(x, y, seed=3, verbose=0, **fit_kw)
    finally:
        kernels.set_tuning(**old)


@pytest.mark.parametrize("sizes,batch,opt", [((784, 16, 16, 10), 10, "sgd"),
                                             ((784, 16, 16, 10), 32, "momentum"),
                                             ((100, 30, 10), 64, "adam_wd")])
def test_thread_count_is_bit_reproducible(sizes, batch, opt):
    """The fused path sums layer 0 in fixed parts, a thread per part, and partitions the other
    parameters, not samples: 1, 2 and 3 threads agree exactly, and with NumPy."""
    x, y = make_data(600, sizes[0], sizes[-1], "cross_entropy")
    params = []
    for n in (1, 2, 1, 3):
        m = build(sizes, "sigmoid", "softmax", "cross_entropy", OPTIMIZERS[opt](), "float32",
                  "cython")
        _fit_sharing_small_steps(m, x, y, n, epochs=1, batch_size=batch)
        params.append(m.params.copy())
    assert np.array_equal(params[0], params[2])
    assert np.array_equal(params[0], params[1])
    assert np.array_equal(params[0], params[3])
    ref = build(sizes, "sigmoid", "softmax", "cross_entropy", OPTIMIZERS[opt](), "float32",
                "numpy")
    ref.fit(x, y, seed=3, verbose=0, epochs=1, batch_size=batch)
    assert_close(params[1], ref.params, "float32", "parameters (2 threads)")


@pytest.mark.parametrize("opt", ["adam", "nesterov"])
def test_probed_per_sample_threads_keep_every_bit(opt):
    """A call long enough to probe times its first steps on 2 threads, the next on 1, then runs
    on with the faster: the parameters, the epoch's loss and accuracy, the optimiser's step
    count (Adam's bias corrections) and the input check all come out as on 1 thread."""
    sizes = (784, 16, 16, 10)
    x, y = make_data(2400, sizes[0], sizes[-1], "cross_entropy")   # 240 steps of 10 in a call
    out = []
    for n in (1, 2):
        m = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS[opt](), "float32",
                  "cython")
        h = _fit_sharing_small_steps(m, x, y, n, epochs=2, batch_size=10)
        probe = m._train_ws.per_sample_threads
        if n == 1 or not kernels.have_openmp():    # one thread: nothing to compare
            assert probe is None, probe
        else:
            assert probe in ((1, 2), (2, 2)), probe
        out.append((m.params.copy(), h.history["loss"], h.history["accuracy"]))
    assert np.array_equal(out[0][0], out[1][0])
    assert out[0][1:] == out[1][1:]
    bad = x.copy()
    bad[2300, 400] = np.nan            # in the part after the probe
    m = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS[opt](), "float32", "cython")
    before = m.params.copy()
    with threads(2), pytest.raises(ValueError, match="NaN|finite"):
        m.fit(bad, y, epochs=1, batch_size=10, seed=3, verbose=0)
    assert np.array_equal(m.params, before)


# layer 0 of the batched step: dense, sparse row by row, sparse in groups of input rows
LAYER0_PATHS = {"dense": dict(sparse=0), "sparse rows": dict(sparse=1, s0_group_min=10**6),
                "sparse groups": dict(sparse=1, s0_group_min=1)}


@pytest.mark.parametrize("layer0", list(LAYER0_PATHS))
@pytest.mark.parametrize("sizes,batch,opt", [((300, 96, 40, 10), 64, "momentum"),
                                             ((301, 97, 40, 10), 50, "adam_wd"),
                                             ((300, 80, 10), 33, "sgd")])
def test_batched_path_thread_count_is_bit_reproducible(sizes, batch, opt, layer0):
    """The gemm path cuts each step in fixed pieces (never by thread count): 1 and 2 threads
    give the same bits, and the numbers match numpy."""
    tuning = LAYER0_PATHS[layer0]
    x, y = make_data(400, sizes[0], sizes[-1], "cross_entropy")
    x[np.random.default_rng(1).uniform(size=x.shape) < 0.7] = 0   # MNIST-like sparsity
    ref = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS[opt](), "float32", "numpy")
    ref.fit(x, y, epochs=1, batch_size=batch, seed=3, verbose=0)
    params = []
    old = kernels.get_tuning()
    kernels.set_tuning(par_min_work_batch=0, **tuning)
    try:
        for n in (1, 2, 1):
            m = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS[opt](), "float32",
                      "cython")
            with threads(n):
                m.fit(x, y, epochs=1, batch_size=batch, seed=3, verbose=0)
            params.append(m.params.copy())
    finally:
        kernels.set_tuning(**old)
    assert np.array_equal(params[0], params[2])
    assert np.array_equal(params[0], params[1])
    assert_close(params[1], ref.params, "float32", "parameters (2 threads)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_grouped_layer0_update_matches_numpy(opt, dtype):
    """Layer 0 updated in groups of input rows (fnn_sparse0.h), forced on a small network:
    every optimiser, both dtypes, an input count and width that leave short groups and partial
    vectors, a last batch shorter than the others."""
    old = kernels.get_tuning()
    kernels.set_tuning(s0_group_min=1, narrow_max=8)
    try:
        _, _, ((ref, _), (mod, _)) = train_pair("cython", (70, 37, 24, 3), "relu", "softmax",
                                                "cross_entropy", opt, dtype, 130, 16, 2)
    finally:
        kernels.set_tuning(**old)
    assert_close(mod.params, ref.params, dtype, "parameters (grouped layer 0)")
    for buf in ("m", "v"):
        got, want = getattr(mod.optimizer, buf), getattr(ref.optimizer, buf)
        assert (got is None) == (want is None)
        if want is not None:
            assert_close(got, want, dtype, f"optimiser buffer {buf} (grouped layer 0)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes,batch,colblock_kb", [((100, 64, 10), 30, 400),
                                                     ((70, 100, 10), 33, 400),
                                                     ((83, 200, 24, 10), 50, 1)])
def test_layer0_forward_in_quads_matches_one_sample_at_a_time(dtype, sizes, batch, colblock_kb):
    """The batched layer-0 forward takes 4 samples at a time on whole tiles (AVX-512 builds):
    the same sums as one sample at a time, exactly, with quads (samples grouped by class and
    nonzero count) and single rows mixed (batches and chunks not multiples of 4), column
    tails, several column blocks, input counts that leave a partial 16-block, all-zero rows
    and -0.0 inputs."""
    if "avx512" not in ISAS or kernels.isa() != "avx512":
        pytest.skip("no AVX-512 kernels on this CPU/build: the quad path would not run")
    x, y = make_data(4 * batch + 7, sizes[0], sizes[-1], "cross_entropy")
    x[5] = 0
    x[8, ::3] = -0.0
    results = []
    old = kernels.get_tuning()
    try:
        for quad0 in (0, 1):
            kernels.set_tuning(quad0=quad0, narrow_max=8, par_min_work_batch=0,
                               colblock_kb=colblock_kb)
            m = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS["momentum"](),
                      dtype, "cython")
            with threads(2):
                m.fit(x, y, epochs=2, batch_size=batch, seed=3, verbose=0)
                results.append((m.params.copy(), m.predict(x)))
    finally:
        kernels.set_tuning(**old)
    (p0, out0), (p1, out1) = results
    assert np.array_equal(p0, p1), "parameters: quads differ from one sample at a time"
    assert np.array_equal(out0, out1), "predictions: quads differ from one sample at a time"
    ref = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS["momentum"](), dtype,
                "numpy")
    ref.fit(x, y, epochs=2, batch_size=batch, seed=3, verbose=0)
    assert_close(p1, ref.params, dtype, "parameters (quads)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", [7, 20, 30, 40])
def test_per_sample_sgd_on_padded_layer0_matches_in_place(dtype, hidden):
    """Plain SGD on the per-sample path trains layer 0 in a copy whose rows start on cache
    lines (hidden widths that are not a whole number of lines): the same parameters and
    predictions, bit for bit, as training in place, on 1 and 2 threads (shared steps), fit
    after fit; and close to the NumPy reference."""
    sizes = (70, hidden, 10)
    x, y = make_data(203, sizes[0], sizes[-1], "mse")
    x[5] = 0
    results = []
    old = kernels.get_tuning()
    try:
        for w0pad in (0, 1):
            kernels.set_tuning(w0pad=w0pad, par_min_work=0)
            for n in (1, 2):
                m = build(sizes, "sigmoid", "sigmoid", "mse", OPTIMIZERS["sgd"](), dtype,
                          "cython")
                with threads(n):
                    for epoch in range(2):
                        m.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=10,
                              seed=3, verbose=0)
                    results.append((m.params.copy(), m.predict(x)))
    finally:
        kernels.set_tuning(**old)
    p0, out0 = results[0]
    for p, out in results[1:]:
        assert np.array_equal(p, p0), "parameters: padded layer 0 differs from in place"
        assert np.array_equal(out, out0), "predictions: padded layer 0 differs from in place"
    ref = build(sizes, "sigmoid", "sigmoid", "mse", OPTIMIZERS["sgd"](), dtype, "numpy")
    for epoch in range(2):
        ref.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=10, seed=3, verbose=0)
    assert_close(p0, ref.params, dtype, "parameters (padded layer 0)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", ["sgd", "momentum"])
def test_rows_read_ahead_by_a_second_thread_change_nothing(dtype, opt):
    """Batch 1 on the per-sample path runs one thread on the steps and, with 2 threads, a
    second one reading the coming input rows ahead (fnn_fetch.h): the same parameters, bit for
    bit, as with the helper off and on one thread, fit after fit (the helper must also stop at
    every call's end, or the next call would hang)."""
    sizes = (70, 16, 10)
    x, y = make_data(157, sizes[0], sizes[-1], "mse")
    results = []
    old = kernels.get_tuning()
    try:
        for helper, n in ((0, 1), (0, 2), (1, 2), (1, 1)):
            kernels.set_tuning(fetch_ahead=helper)
            m = build(sizes, "relu", "sigmoid", "mse", OPTIMIZERS[opt](), dtype, "cython")
            with threads(n):
                for epoch in range(3):
                    m.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=1, seed=5,
                          verbose=0)
            results.append(m.params.copy())
    finally:
        kernels.set_tuning(**old)
    for p in results[1:]:
        assert np.array_equal(p, results[0]), "the read-ahead helper changed the result"


@pytest.mark.parametrize("batch", [64, 33, 300])
def test_own_avx512_gemm_matches_numpy_and_blas(batch):
    """Widths that are multiples of 32 take our AVX-512 sgemm; row tails (batch 33) too, and
    inner dimensions past one packed panel (288 and 320 units; batch 300 for the gradient),
    not a multiple of it. Same numbers as numpy and as the BLAS route."""
    if "avx512" not in ISAS or kernels.isa() != "avx512":
        pytest.skip("no AVX-512 kernels on this CPU/build: the own-gemm path would not run")
    assert kernels.get_tuning()["own_gemm"] == 1
    sizes = (70, 64, 288, 320, 32, 10)
    x, _, ((ref, _), (mod, _)) = train_pair("cython", sizes, "relu", "softmax", "cross_entropy",
                                            "momentum", "float32", 330, batch, 1)
    assert_close(mod.params, ref.params, "float32", "parameters (own gemm)")
    assert_close(mod.predict(x), ref.predict(x), "float32", "predictions (own gemm)")
    old = kernels.get_tuning()
    kernels.set_tuning(own_gemm=0)
    try:
        _, _, (_, (blas, _)) = train_pair("cython", sizes, "relu", "softmax", "cross_entropy",
                                          "momentum", "float32", 330, batch, 1)
    finally:
        kernels.set_tuning(**old)
    assert_close(mod.params, blas.params, "float32", "own gemm vs BLAS")


def test_blas_threads_restored():
    """The batched path holds scipy's OpenBLAS at one thread only while it runs."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not kernels.BLAS_CONTROLLED:
        pytest.skip("no OpenBLAS registered")
    x, y = make_data(256, 100, 10, "cross_entropy")
    m = build((100, 64, 64, 10), "relu", "softmax", "cross_entropy", "sgd", "float32", "cython")

    def count():
        return [c.num_threads for c in threadpoolctl.ThreadpoolController().lib_controllers
                if c.filepath in kernels.BLAS_CONTROLLED]

    with threads(2):
        before = count()
        m.fit(x, y, epochs=1, batch_size=64, verbose=0)
        m.predict(x)
        assert count() == before


def test_predict_chunks_and_threads():
    x, _ = make_data(2500, 30, 10, "cross_entropy")
    for sizes in ((30, 20, 10), (30, 300, 10)):
        ref = build(sizes, "tanh", "softmax", "cross_entropy", "sgd", "float64", "numpy")
        mod = build(sizes, "tanh", "softmax", "cross_entropy", "sgd", "float64", "cython")
        old = kernels.get_tuning()
        kernels.set_tuning(par_min_work=0)   # force the threaded paths
        try:
            for n in (1, 2):
                with threads(n):
                    assert_close(mod.predict(x), ref.predict(x), "float64",
                                 f"predict {sizes} {n} thr")
        finally:
            kernels.set_tuning(**old)


def test_concurrent_predict_threads_agree():
    x, _ = make_data(300, 784, 10, "cross_entropy")
    m = build((784, 16, 16, 10), "sigmoid", "softmax", "cross_entropy", "sgd", "float32",
              "cython")
    want = m.predict(x)
    bad = []

    def work():
        for i in range(200):
            if not np.array_equal(m.predict(x[i % 300]), want[i % 300]):
                bad.append(i)

    run_threads(work, 4)
    assert not bad


def _setup(dtype="float32"):
    m = build((20, 8, 3), "relu", "softmax", "cross_entropy", fn.SGD(0.1), dtype, "cython")
    x = np.random.default_rng(0).uniform(size=(10, 20)).astype(dtype)
    y = np.eye(3, dtype=dtype)[np.arange(10) % 3]
    ws = cb.workspace(m.net, 5)
    return m, x, y, ws


def test_validation_rejects_bad_arrays():
    m, x, y, ws = _setup()
    out = np.empty((10, 3), np.float32)
    order = np.arange(10, dtype=np.int64)
    with pytest.raises(TypeError):
        cb.predict(m.net, x.astype(np.float64), out, ws)
    with pytest.raises(ValueError):
        cb.predict(m.net, x[:, :19].copy(), out, ws)
    with pytest.raises(ValueError):
        cb.predict(m.net, np.asfortranarray(x), out, ws)
    with pytest.raises(ValueError):
        cb.predict(m.net, x, out[:5], ws)
    with pytest.raises(TypeError):
        cb.predict(m.net, x.tolist(), out, ws)
    with pytest.raises(TypeError):
        cb.train_steps(m.net, m.optimizer, x, y, order.astype(np.int32), 0, 2, 5, ws, 1)
    with pytest.raises(IndexError):
        cb.train_steps(m.net, m.optimizer, x, y, order + 5, 0, 2, 5, ws, 1)
    with pytest.raises(ValueError):   # runs past the order
        cb.train_steps(m.net, m.optimizer, x, y, order, 0, 3, 5, ws, 1)
    with pytest.raises(ValueError):   # batch larger than the workspace
        cb.train_steps(m.net, m.optimizer, x, y, order, 0, 1, 6, ws, 1)
    with pytest.raises(ValueError):
        cb.train_steps(m.net, m.optimizer, x, y[:, :2].copy(), order, 0, 1, 5, ws, 1)
    other = build((20, 9, 3), "relu", "softmax", "cross_entropy", "sgd", "float32", "cython")
    with pytest.raises(ValueError):
        cb.predict(other.net, x, out, ws)
    assert m.optimizer.t == 0


def test_train_steps_contract():
    m, x, y, ws = _setup("float64")
    order = np.arange(10, dtype=np.int64)
    loss, correct = cb.train_steps(m.net, m.optimizer, x, y, order, 0, 2, 5, ws, 1)
    assert isinstance(loss, float) and isinstance(correct, int)
    assert m.optimizer.t == 2
    assert cb.train_steps(m.net, m.optimizer, x, y, order, 0, 0, 5, ws, 1) == (0.0, 0)


def test_build_info_and_warmup():
    info = cb.build_info()
    for key in ("cflags", "openmp", "simd", "blas", "compiler"):
        assert key in info
    # the default build is portable; only an opt-in FASTNN_NATIVE build may use -march=native
    assert "-march=native" not in info["cflags"] or os.environ.get("FASTNN_NATIVE")
    assert info["simd"] == kernels.isa() and info["simd"] in ISAS
    spent = cb.warmup()
    assert isinstance(spent, float) and 0.0 < spent < 60.0


@pytest.mark.parametrize("sizes", [(50, 12, 4), (50, 96, 40, 4)])   # per-sample, batched
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_checks_inputs_in_the_same_pass(sizes, dtype, n_threads):
    """predict(check=True) flags NaN/inf anywhere (block edges included) and otherwise gives
    the same bits as an unchecked predict; Model.predict still names the first bad value."""
    old = kernels.get_tuning()
    kernels.set_tuning(par_min_work=0)   # threads even for this small network
    try:
        m = build(list(sizes), "relu", "softmax", "cross_entropy", OPTIMIZERS["sgd"](), dtype,
                  "cython")
        x, _ = make_data(700, sizes[0], sizes[-1], "cross_entropy")
        x = x.astype(dtype)
        ws = kernels.workspace(m.net, 256)
        plain, checked = np.empty((700, sizes[-1]), dtype), np.empty((700, sizes[-1]), dtype)
        with threads(n_threads):
            kernels.predict(m.net, x, plain, ws)
            assert kernels.predict(m.net, x, checked, ws, True) is True
            assert np.array_equal(plain, checked)
            for row in (0, 127, 128, 255, 256, 699):
                for bad in (np.nan, np.inf, -np.inf):
                    y = x.copy()
                    y[row, sizes[0] - 1 if row % 2 else 0] = bad
                    assert kernels.predict(m.net, y, checked, ws, True) is False, (row, bad)
            y = x.copy()
            y[300, 7] = np.nan
            with pytest.raises(ValueError, match=r"first at index \(300, 7\)"):
                m.predict(y)
    finally:
        kernels.set_tuning(**old)


def test_pieces_only_with_threads_same_bits_for_every_thread_count_above_one():
    """Below par_min_work_batch, steps are cut in pieces only when 2+ threads run: 2 and 3
    threads give the same bits, one thread its own whole-step bits; all match numpy."""
    sizes, batch = (300, 96, 40, 10), 64
    x, y = make_data(400, sizes[0], sizes[-1], "cross_entropy")
    ref = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS["adam"](), "float32",
                "numpy")
    ref.fit(x, y, epochs=1, batch_size=batch, seed=3, verbose=0)
    old = kernels.get_tuning()
    kernels.set_tuning(par_min_work_batch=10**9, par_min_work_chunks=0)
    params = {}
    try:
        for n in (1, 2, 3):
            m = build(sizes, "relu", "softmax", "cross_entropy", OPTIMIZERS["adam"](),
                      "float32", "cython")
            with threads(n):
                m.fit(x, y, epochs=1, batch_size=batch, seed=3, verbose=0)
            params[n] = m.params.copy()
    finally:
        kernels.set_tuning(**old)
    assert np.array_equal(params[2], params[3])
    for n in (1, 2):
        assert_close(params[n], ref.params, "float32", f"parameters ({n} threads)")


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("sizes,batch", [((20, 8, 3), 4), ((20, 96, 64, 3), 64)])
def test_kernels_flush_subnormals_and_leave_the_callers_mode(sizes, batch, n_threads):
    """csrc/fnn.h fnn_ftz_begin: the momentum of weights fed by a never-lit input decays 0.9x a
    step from just above the smallest normal float32; the kernels flush it to 0 within three
    steps where NumPy keeps subnormals (per-sample and batched paths, 1 and 2 threads), and the
    caller's floating-point mode is as it was afterwards."""
    x, y = make_data(8 * batch, sizes[0], sizes[-1], "cross_entropy")
    x[:, 0] = 0.0   # input 0: its layer-0 weights get no gradient, only decay
    tiny = np.finfo(np.float32).tiny
    velocity = {}
    for be in ("numpy", "cython"):
        m = build(sizes, "relu", "softmax", "cross_entropy", fn.SGD(0.01, momentum=0.9),
                  "float32", be)
        m.fit(x[:batch], y[:batch], epochs=1, batch_size=batch, verbose=0)   # binds the state
        m.net.weights(0, m.optimizer.m)[0] = 1.5 * tiny
        with threads(n_threads):
            m.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        velocity[be] = m.net.weights(0, m.optimizer.m)[0].copy()
    assert np.all((velocity["numpy"] > 0) & (velocity["numpy"] < tiny))   # subnormal in NumPy
    assert np.all(velocity["cython"] == 0)
    assert np.float32(tiny) * np.float32(0.5) > 0   # no flush left on the calling thread
