"""The split training step of data-parallel training (fit(comm=...)): ``grad_step`` (a batch's
gradient into a flat buffer, scaled for the ranks) and ``apply_update`` (the optimiser update
from a ready gradient), native in the Cython and Numba backends, against the NumPy backend."""

import numpy as np
import pytest

import fastnn as fn
from fastnn.backends import available_backends, get_backend, grad_step_fn, update_fn
from fastnn.codes import ACC_ARGMAX

from .helpers import OPTIMIZERS

NATIVE = [b for b in ("cython", "numba") if b in available_backends()]
# one update, or one gradient: a handful of roundings apart at most
TIGHT = {"float64": 1e-13, "float32": 2e-6}


def wide_model(dtype, opt=None, backend="numpy"):
    """Layers wide enough for the kernels' gemm path (min(n_in, n_out) >= 32)."""
    return fn.Sequential([fn.Dense(64, "relu"), fn.Dense(48, "tanh"), fn.Dense(10, "softmax")],
                         input_size=40, optimizer=opt or fn.SGD(0.1), dtype=dtype, seed=1,
                         backend=backend)


def data(dtype, n=100, seed=0):
    g = np.random.default_rng(seed)
    x = g.uniform(size=(n, 40)) * (g.uniform(size=(n, 40)) < 0.3)
    x[:, 5] = 0   # an input that is zero in every row: its gradient rows are exactly zero
    y = np.eye(10)[g.integers(0, 10, n)]
    return x.astype(dtype), y.astype(dtype), g.permutation(n).astype(np.int64)


def rel(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


def reference_step(model, x, y, rows, scale):
    """NumPy loss_grad on the gathered rows: the gradient of the mean, rescaled."""
    npb = get_backend("numpy")
    grad = np.empty(model.params.shape, dtype=np.float64)
    net = wide_model("float64").net
    net.params[...] = model.params
    loss = npb.loss_grad(net, x[rows].astype(np.float64), y[rows].astype(np.float64), grad)
    return loss * len(rows), grad * (scale * len(rows))


@pytest.mark.parametrize("backend", ["numpy", *NATIVE])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_grad_step_is_the_scaled_gradient_of_the_chosen_rows(backend, dtype):
    model = wide_model(dtype, backend=backend)
    x, y, order = data(dtype)
    be = get_backend(backend)
    ws = be.workspace(model.net, 32)
    grad = np.full_like(model.params, np.nan)   # every entry must be written
    for start, B, scale in ((7, 30, 1 / 70), (90, 10, 1 / 10)):
        loss, correct = be.grad_step(model.net, x, y, order, start, B, grad, ws, scale,
                                     ACC_ARGMAX)
        rows = order[start:start + B]
        ref_loss, ref_grad = reference_step(model, x, y, rows, scale)
        assert rel(grad, ref_grad) <= TIGHT[dtype] * 10
        assert loss == pytest.approx(ref_loss, rel=TIGHT[dtype] * 10)
        out = model.predict(x[rows])
        assert correct == int(np.sum(out.argmax(1) == y[rows].argmax(1)))
    w0 = model.net.weights(0, grad)
    assert np.all(w0[5] == 0), "the always-zero input's gradient row"


@pytest.mark.skipif("cython" not in NATIVE, reason="cython backend not built")
def test_cython_grad_step_gives_the_same_bits_for_any_thread_count():
    model = wide_model("float32", backend="cython")
    x, y, order = data("float32", n=400)
    be = get_backend("cython")
    ws = be.workspace(model.net, 400)
    grads = []
    saved = be._kernels.get_tuning()
    be._kernels.set_tuning(par_min_work_batch=1000)   # a step this small is cut in chunks too
    try:
        for threads in (1, 2):
            grad = np.empty_like(model.params)
            with fn.num_threads(threads):
                res = be.grad_step(model.net, x, y, order, 0, 400, grad, ws, 1 / 400,
                                   ACC_ARGMAX)
            grads.append((res, grad))
    finally:
        be._kernels.set_tuning(**saved)
    assert grads[0][0] == grads[1][0]
    assert np.array_equal(grads[0][1], grads[1][1])


@pytest.mark.skipif("cython" not in NATIVE, reason="cython backend not built")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cython_split_step_equals_the_fused_training_step(dtype):
    x, y, order = data(dtype)
    fused = wide_model(dtype, fn.SGD(0.1, momentum=0.9, weight_decay=1e-3), "cython")
    split = wide_model(dtype, fn.SGD(0.1, momentum=0.9, weight_decay=1e-3), "cython")
    be = get_backend("cython")
    ws = be.workspace(fused.net, 25)
    grad = np.empty_like(split.params)
    for s in range(4):
        be.train_steps(fused.net, fused.optimizer, x, y, order, s * 25, 1, 25, ws, ACC_ARGMAX)
        be.grad_step(split.net, x, y, order, s * 25, 25, grad, ws, 1 / 25, ACC_ARGMAX)
        be.apply_update(split.net, split.optimizer, grad)
    assert split.optimizer.t == fused.optimizer.t == 4
    assert rel(split.params, fused.params.astype(np.float64)) <= TIGHT[dtype] * 10
    assert rel(split.optimizer.m, fused.optimizer.m.astype(np.float64)) <= TIGHT[dtype] * 10


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_native_apply_update_matches_numpy(backend, dtype, opt_name):
    g = np.random.default_rng(3)
    models = [wide_model(dtype, OPTIMIZERS[opt_name]()) for _ in range(2)]
    for m in models:
        m.optimizer.bind(m.net.n_params, m.dtype)
    ref, mine = models
    for step in range(3):
        grad = g.normal(scale=0.1, size=ref.params.shape).astype(dtype)
        update_fn(get_backend("numpy"))(ref.net, ref.optimizer, grad.copy())
        update_fn(get_backend(backend))(mine.net, mine.optimizer, grad.copy())
        assert mine.optimizer.t == ref.optimizer.t == step + 1
        assert rel(mine.params, ref.params.astype(np.float64)) <= TIGHT[dtype]
        for buf in ("m", "v"):
            a, b = getattr(mine.optimizer, buf), getattr(ref.optimizer, buf)
            if b is not None and b.size:
                assert rel(a, b.astype(np.float64)) <= TIGHT[dtype], buf


@pytest.mark.skipif("cython" not in NATIVE, reason="cython backend not built")
def test_cython_apply_update_leaves_the_gradient_and_decays_weights_only():
    model = wide_model("float64", fn.SGD(0.5, weight_decay=0.1))
    model.optimizer.bind(model.net.n_params, model.dtype)
    grad = np.zeros_like(model.params)
    before = model.params.copy()
    get_backend("cython").apply_update(model.net, model.optimizer, grad)
    assert np.all(grad == 0)
    net = model.net
    for lay in range(net.n_layers):   # zero gradient: weights shrink by lr * wd, biases stay
        np.testing.assert_allclose(net.weights(lay), net.weights(lay, before) * 0.95, rtol=1e-15)
        np.testing.assert_array_equal(net.biases(lay), net.biases(lay, before))


@pytest.mark.parametrize("backend", NATIVE)
def test_bad_arguments_raise(backend):
    model = wide_model("float32")
    x, y, order = data("float32")
    be = get_backend(backend)
    ws = be.workspace(model.net, 16)
    grad = np.zeros_like(model.params)
    with pytest.raises(ValueError, match="batch_size"):
        be.grad_step(model.net, x, y, order, 0, 17, grad, ws, 1 / 17, 0)
    with pytest.raises(ValueError, match="run past"):
        be.grad_step(model.net, x, y, order, 90, 16, grad, ws, 1 / 16, 0)
    bad = order.copy()
    bad[3] = 100
    with pytest.raises(IndexError, match="indices"):
        be.grad_step(model.net, x, y, bad, 0, 16, grad, ws, 1 / 16, 0)
    with pytest.raises((TypeError, ValueError), match="grad"):
        be.grad_step(model.net, x, y, order, 0, 16, np.zeros(grad.shape), ws, 1 / 16, 0)
    opt = fn.SGD(0.1, momentum=0.9)
    opt.bind(model.net.n_params, model.dtype)
    with pytest.raises((TypeError, ValueError), match="grad"):
        be.apply_update(model.net, opt, grad[:-1].copy())
    opt.m = opt.m[:10].copy()
    with pytest.raises((TypeError, ValueError), match="opt.m"):
        be.apply_update(model.net, opt, grad)
    assert opt.t == 0, "a rejected update must not count a step"


def test_registry_falls_back_to_loss_grad_for_other_backends():
    """A backend module without grad_step: its loss_grad on the gathered rows, no accuracy."""
    npb = get_backend("numpy")

    class Minimal:
        name = "minimal"
        workspace, predict, predict_one = npb.workspace, npb.predict, npb.predict_one
        loss_grad, train_steps = npb.loss_grad, npb.train_steps

    model = wide_model("float64")
    x, y, order = data("float64")
    grad = np.empty_like(model.params)
    loss, correct = grad_step_fn(Minimal)(model.net, x, y, order, 3, 20, grad,
                                          npb.workspace(model.net, 20), 1 / 40, ACC_ARGMAX)
    ref_loss, ref_grad = reference_step(model, x, y, order[3:23], 1 / 40)
    assert correct is None
    assert loss == pytest.approx(ref_loss, rel=1e-13)
    assert rel(grad, ref_grad) <= 1e-13
    assert update_fn(Minimal) is npb.apply_update


@pytest.mark.skipif("cython" not in NATIVE, reason="cython backend not built")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cython_apply_update_sum_adds_the_gradients_in_order(dtype):
    """The shared-memory step: the update from g0 + g1 + g2 equals the update from their sum,
    bit for bit (the same additions, in the same order)."""
    g = np.random.default_rng(5)
    models = [wide_model(dtype, fn.Adam(1e-2, weight_decay=1e-3)) for _ in range(2)]
    for m in models:
        m.optimizer.bind(m.net.n_params, m.dtype)
    be = get_backend("cython")
    for _ in range(2):
        parts = [g.normal(size=models[0].params.shape).astype(dtype) for _ in range(3)]
        be.apply_update(models[0].net, models[0].optimizer, parts[0] + parts[1] + parts[2])
        be.apply_update_sum(models[1].net, models[1].optimizer, parts)
    np.testing.assert_array_equal(models[0].params, models[1].params)
    np.testing.assert_array_equal(models[0].optimizer.v, models[1].optimizer.v)
    with pytest.raises(ValueError, match="gradients"):
        be.apply_update_sum(models[1].net, models[1].optimizer, [])


@pytest.mark.skipif("cython" not in NATIVE, reason="cython backend not built")
def test_cython_apply_update_sum_updates_only_its_slice():
    """Ranks sharing the parameters each update a slice: the slices make the whole update."""
    g = np.random.default_rng(6)
    models = [wide_model("float32", fn.SGD(0.1, momentum=0.9, weight_decay=1e-3))
              for _ in range(2)]
    for m in models:
        m.optimizer.bind(m.net.n_params, m.dtype)
    whole, sliced = models
    be = get_backend("cython")
    parts = [g.normal(size=whole.params.shape).astype("float32") for _ in range(2)]
    be.apply_update_sum(whole.net, whole.optimizer, parts)
    cut = 40 * 64 + 16                      # inside layer 0's weights
    before = sliced.params.copy()
    be.apply_update_sum(sliced.net, sliced.optimizer, parts, 0, cut)
    np.testing.assert_array_equal(sliced.params[cut:], before[cut:])
    sliced.optimizer.t -= 1                 # the other rank's optimiser counts its own step
    be.apply_update_sum(sliced.net, sliced.optimizer, parts, cut, sliced.params.size)
    np.testing.assert_array_equal(sliced.params, whole.params)
    np.testing.assert_array_equal(sliced.optimizer.m, whole.optimizer.m)
    with pytest.raises(ValueError, match="range"):
        be.apply_update_sum(sliced.net, sliced.optimizer, parts, 10, 5)
