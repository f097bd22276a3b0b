"""Every compiled backend against the NumPy reference: same init, same batches, same steps."""

import numpy as np
import pytest

import fastnn as fn
from fastnn.backends import REQUIRED, get_backend

from .conftest import COMPILED
from .helpers import (
    ACTIVATIONS,
    HEADS,
    OPTIMIZERS,
    TOL,
    assert_close,
    build,
    make_data,
    train_pair,
)

pytestmark = pytest.mark.skipif(not COMPILED, reason="no compiled backend available")


def test_backend_exports_the_contract():
    for name in ["numpy", *COMPILED]:
        mod = get_backend(name)
        assert all(callable(getattr(mod, f)) for f in REQUIRED)
        assert mod.name == name


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("head", HEADS, ids=lambda h: f"{h[0]}-{h[1]}")
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_fifty_steps_match_numpy(backend, dtype, hidden, head, opt_name):
    loss, out, n_out = head
    # 103 samples, batch 10: 10 full batches and a final partial one (3) per epoch; 5 epochs.
    x, y, ((ref, href), (mod, hmod)) = train_pair(
        backend, (12, 9, 7, n_out), hidden, out, loss, opt_name, dtype, 103, 10, 5)
    assert ref.optimizer.t == mod.optimizer.t == 55
    assert_close(mod.params, ref.params, dtype, "parameters")
    assert_close(mod.optimizer.m, ref.optimizer.m, dtype, "optimiser state m")
    assert_close(mod.optimizer.v, ref.optimizer.v, dtype, "optimiser state v")
    np.testing.assert_allclose(hmod["loss"], href["loss"], rtol=TOL[dtype] * 10)
    assert hmod["accuracy"] == href["accuracy"] or dtype == "float32"
    assert_close(mod.predict(x), ref.predict(x), dtype, "predictions")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", [1, 2, 3, 7, 32, 64, 100])
@pytest.mark.parametrize("opt_name", ["sgd", "momentum", "adam"])
def test_batch_sizes_and_partial_batches(backend, dtype, batch, opt_name):
    x, y, ((ref, _), (mod, _)) = train_pair(
        backend, (30, 16, 16, 10), "sigmoid", "softmax", "cross_entropy", opt_name, dtype,
        100, batch, 1 if batch < 3 else 3)
    assert_close(mod.params, ref.params, dtype, "parameters")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes", [(784, 16, 16, 10), (200, 300, 130, 10), (64, 512, 10)],
                         ids=["digits16", "wide", "wide1"])
@pytest.mark.parametrize("batch", [1, 10, 64])
def test_narrow_and_wide_layers(backend, dtype, sizes, batch):
    opt = "momentum" if batch == 64 else "sgd"
    n = 50 * batch if batch < 64 else 640
    x, y, ((ref, _), (mod, _)) = train_pair(
        backend, sizes, "relu", "softmax", "cross_entropy", opt, dtype, min(n, 640), batch, 1)
    assert_close(mod.params, ref.params, dtype, "parameters")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", [1, 5, 1000, 2500])
def test_predict_matches_numpy(backend, dtype, n):
    x, _ = make_data(n, 50, 10, "cross_entropy")
    ref = build((50, 40, 20, 10), "tanh", "softmax", "cross_entropy", "sgd", dtype, "numpy")
    mod = build((50, 40, 20, 10), "tanh", "softmax", "cross_entropy", "sgd", dtype, backend)
    assert_close(mod.predict(x), ref.predict(x), dtype, "predictions")
    assert_close(mod.predict(x[0]), ref.predict(x[0]), dtype, "single-sample prediction")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("head", HEADS, ids=lambda h: f"{h[0]}-{h[1]}")
@pytest.mark.parametrize("hidden", ACTIVATIONS)
def test_gradcheck_through_backend(backend, head, hidden):
    loss, out, n_out = head
    x, y = make_data(9, 6, n_out, loss, seed=3, sparse=False)
    m = build((6, 5, 4, n_out), hidden, out, loss, "sgd", "float64", backend, seed=11)
    assert fn.gradcheck(m, x, y) < 1e-6


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_grad_matches_numpy(backend, dtype):
    x, y = make_data(33, 20, 5, "cross_entropy")
    ref = build((20, 8, 5), "relu", "softmax", "cross_entropy", "sgd", dtype, "numpy")
    mod = build((20, 8, 5), "relu", "softmax", "cross_entropy", "sgd", dtype, backend)
    yd = ref._targets("y", y, len(x)).y
    xs = ref._inputs("x", x)
    g_ref, g_mod = np.zeros_like(ref.params), np.zeros_like(mod.params)
    l_ref = ref.backend.loss_grad(ref.net, xs, yd, g_ref)
    l_mod = mod.backend.loss_grad(mod.net, xs, yd, g_mod)
    assert abs(l_ref - l_mod) <= TOL[dtype] * max(1, abs(l_ref))
    assert_close(g_mod, g_ref, dtype, "gradient")


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_predict_one_fast_path_and_its_nan_check(backend, dtype):
    x, _ = make_data(4, 50, 10, "cross_entropy")
    m = build((50, 40, 20, 10), "tanh", "softmax", "cross_entropy", "sgd", dtype, backend)
    row = np.ascontiguousarray(x[1], dtype=dtype)
    out = m.predict(row)
    assert out.shape == (10,) and out.dtype == np.dtype(dtype)
    assert_close(out, m.predict(x)[1], dtype, "single-sample prediction")
    for bad in (np.nan, np.inf, -np.inf):
        row[7] = bad
        with pytest.raises(ValueError, match="x: contains NaN or inf"):
            m.predict(row)
