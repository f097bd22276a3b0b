"""The NumPy reference backend against arithmetic done by hand."""

import math

import numpy as np
import pytest

import fastnn as fn
from fastnn.backends import numpy_backend as nb


def tiny_model(hidden="relu", out="identity", loss="mse", opt=None):
    m = fn.Sequential([fn.Dense(2, hidden), fn.Dense(1, out)], input_size=2, loss=loss,
                      optimizer=opt or fn.SGD(0.1), dtype="float64", backend="numpy")
    m.layers[0].weights[...] = [[1.0, -1.0], [0.5, 1.0]]
    m.layers[0].biases[...] = [0.5, -2.0]
    m.layers[1].weights[...] = [[2.0], [3.0]]
    m.layers[1].biases[...] = [-1.0]
    return m


def test_hand_worked_forward_backward_and_sgd_step():
    m = tiny_model()
    x, y = np.array([[1.0, 2.0]]), np.array([[3.0]])
    # Forward: z1 = x W1 + b1 = [1*1 + 2*0.5, 1*(-1) + 2*1] + [0.5, -2] = [2.5, -1]
    #          a1 = relu(z1) = [2.5, 0]
    #          z2 = a1 W2 + b2 = 2.5*2 + 0*3 - 1 = 4 = a2 (identity output)
    assert m.predict(x)[0, 0] == 4.0
    # Loss (quadratic cost): 1/2 (4 - 3)^2 = 0.5
    assert m.evaluate(x, y).loss == 0.5
    # Backward: delta2 = a2 - y = 1;  dW2 = a1^T delta2 = [[2.5], [0]];  db2 = [1]
    #           delta1 = (delta2 W2^T) * relu'(a1) = [2, 3] * [1, 0] = [2, 0]
    #           dW1 = x^T delta1 = [[1*2, 0], [2*2, 0]] = [[2, 0], [4, 0]];  db1 = [2, 0]
    grad = np.zeros_like(m.params)
    loss = nb.loss_grad(m.net, x, y, grad)
    assert loss == 0.5
    np.testing.assert_array_equal(m.net.weights(0, grad), [[2.0, 0.0], [4.0, 0.0]])
    np.testing.assert_array_equal(m.net.biases(0, grad), [2.0, 0.0])
    np.testing.assert_array_equal(m.net.weights(1, grad), [[2.5], [0.0]])
    np.testing.assert_array_equal(m.net.biases(1, grad), [1.0])
    # One SGD step, lr 0.1: W1 = [[1-0.2, -1], [0.5-0.4, 1]], b1 = [0.5-0.2, -2],
    #                       W2 = [[2-0.25], [3]], b2 = [-1-0.1]
    m.fit(x, y, epochs=1, batch_size=1, verbose=0)
    np.testing.assert_allclose(m.layers[0].weights, [[0.8, -1.0], [0.1, 1.0]], rtol=1e-15)
    np.testing.assert_allclose(m.layers[0].biases, [0.3, -2.0], rtol=1e-15)
    np.testing.assert_allclose(m.layers[1].weights, [[1.75], [3.0]], rtol=1e-15)
    np.testing.assert_allclose(m.layers[1].biases, [-1.1], rtol=1e-15)
    assert m.history["loss"] == [0.5]


def test_batch_gradient_is_the_mean_of_sample_gradients():
    m = tiny_model(hidden="sigmoid")
    x = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    y = np.array([[3.0], [0.0], [1.0]])
    g_all = np.zeros_like(m.params)
    nb.loss_grad(m.net, x, y, g_all)
    g_each = np.zeros_like(m.params)
    for i in range(3):
        g = np.zeros_like(m.params)
        nb.loss_grad(m.net, x[i:i + 1], y[i:i + 1], g)
        g_each += g / 3
    np.testing.assert_allclose(g_all, g_each, rtol=1e-13)


def test_softmax_cross_entropy_by_hand():
    m = fn.Sequential([fn.Dense(3, "softmax")], input_size=1, dtype="float64", backend="numpy")
    m.layers[0].weights[...] = [[0.0, 0.0, 0.0]]
    m.layers[0].biases[...] = [0.0, math.log(2.0), math.log(5.0)]
    # p = [1, 2, 5] / 8;  label 2 -> loss = -log(5/8)
    p = m.predict(np.array([[1.0]]))
    np.testing.assert_allclose(p, [[1 / 8, 2 / 8, 5 / 8]], rtol=1e-15)
    assert m.evaluate(np.array([[1.0]]), np.array([2])).loss == pytest.approx(-math.log(5 / 8))
    # Fused gradient: dL/dz = p - y = [1/8, 2/8, -3/8]; with x = 1, dW = dz
    grad = np.zeros_like(m.params)
    nb.loss_grad(m.net, np.array([[1.0]]), np.array([[0.0, 0.0, 1.0]]), grad)
    np.testing.assert_allclose(m.net.biases(0, grad), [1 / 8, 2 / 8, -3 / 8], rtol=1e-15)


class _Opt:
    """Scalar optimiser arithmetic written out longhand (PyTorch's conventions)."""

    @staticmethod
    def momentum(p, grads, lr, mu, nesterov=False, wd=0.0):
        v = 0.0
        for g in grads:
            g = g + wd * p
            v = mu * v + g
            p = p - lr * ((g + mu * v) if nesterov else v)
        return p

    @staticmethod
    def adam(p, grads, lr, b1, b2, eps, wd=0.0):
        m = v = 0.0
        for t, g in enumerate(grads, start=1):
            g = g + wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        return p


def _run_update(opt, grads):
    """Apply nb.update to a 1-parameter 'network' (a 1x1 weight with a 0 bias)."""
    m = fn.Sequential([fn.Dense(1)], input_size=1, optimizer=opt, dtype="float64",
                      backend="numpy")
    m.params[...] = [0.7, 0.0]
    for g in grads:
        grad = np.array([g, 0.0])
        opt.t += 1
        nb.update(m.net, opt, grad)
    return m.params[0]


GRADS = [0.5, -1.25, 2.0, 0.125]


def test_sgd_update():
    assert _run_update(fn.SGD(0.1), GRADS) == pytest.approx(0.7 - 0.1 * sum(GRADS), rel=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_momentum_update(nesterov, wd):
    got = _run_update(fn.SGD(0.1, momentum=0.9, nesterov=nesterov, weight_decay=wd), GRADS)
    assert got == pytest.approx(_Opt.momentum(0.7, GRADS, 0.1, 0.9, nesterov, wd), rel=1e-14)


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_update(wd):
    got = _run_update(fn.Adam(0.01, weight_decay=wd), GRADS)
    assert got == pytest.approx(_Opt.adam(0.7, GRADS, 0.01, 0.9, 0.999, 1e-8, wd), rel=1e-14)


def test_weight_decay_leaves_biases_alone():
    m = fn.Sequential([fn.Dense(1)], input_size=1, optimizer=fn.SGD(0.1, weight_decay=0.5),
                      dtype="float64", backend="numpy")
    m.params[...] = [2.0, 3.0]
    m.optimizer.t = 1
    nb.update(m.net, m.optimizer, np.zeros(2))
    assert list(m.params) == [2.0 - 0.1 * 0.5 * 2.0, 3.0]


def test_schedules():
    step = fn.StepDecay(step=2, gamma=0.5)
    assert [step(1.0, e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    cos = fn.CosineDecay(epochs=4, min_lr=0.1)
    assert cos(1.0, 0) == 1.0 and cos(1.0, 4) == pytest.approx(0.1)
    assert cos(1.0, 2) == pytest.approx(0.55) and cos(1.0, 9) == pytest.approx(0.1)
    m = fn.Sequential([fn.Dense(2, "softmax")], input_size=2, seed=0, backend="numpy",
                      optimizer=fn.SGD(0.5, schedule=step))
    h = m.fit(np.eye(2), [0, 1], epochs=5, verbose=0)
    assert h["lr"] == [0.5, 0.5, 0.25, 0.25, 0.125]


ACTS = ["sigmoid", "relu", "tanh", "leaky_relu", "identity"]
HEADS = [("mse", "sigmoid", 3), ("mse", "identity", 3), ("mse", "tanh", 2),
         ("cross_entropy", "softmax", 3), ("binary_cross_entropy", "sigmoid", 1)]


@pytest.mark.parametrize("hidden", ACTS)
@pytest.mark.parametrize("head", HEADS, ids=lambda h: f"{h[0]}-{h[1]}")
@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_every_activation_and_loss(hidden, head, seed):
    loss, out, n_out = head
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(7, 4))
    y = rng.integers(0, 2, (7, 1)).astype(float) if n_out == 1 else rng.integers(0, n_out, 7)
    m = fn.Sequential([fn.Dense(5, hidden), fn.Dense(3, hidden), fn.Dense(n_out, out)],
                      input_size=4, loss=loss, dtype="float64", seed=seed, backend="numpy")
    assert fn.gradcheck(m, x, y) < 1e-6


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    m = fn.Sequential([fn.Dense(4, "tanh"), fn.Dense(3, "softmax")], input_size=3,
                      dtype="float64", seed=0, backend="numpy")
    x, y = np.random.default_rng(0).normal(size=(5, 3)), np.array([0, 1, 2, 1, 0])
    assert fn.gradcheck(m, x, y) < 1e-6
    real = nb.act.backward

    def wrong(code, a, delta):  # forget the tanh derivative's factor
        if code != nb.act.TANH:
            real(code, a, delta)

    monkeypatch.setattr(nb.act, "backward", wrong)
    assert fn.gradcheck(m, x, y) > 1e-2


def test_float32_model_starts_from_the_float64_numbers():
    layers = lambda: [fn.Dense(8, "relu"), fn.Dense(3, "softmax")]  # noqa: E731
    a = fn.Sequential(layers(), input_size=5, seed=3, dtype="float32")
    b = fn.Sequential(layers(), input_size=5, seed=3, dtype="float64")
    np.testing.assert_array_equal(a.params, b.params.astype(np.float32))


def test_default_init_follows_activation():
    m = fn.Sequential([fn.Dense(400, "relu"), fn.Dense(400, "sigmoid"), fn.Dense(10, "softmax")],
                      input_size=400, seed=0)
    assert [lay.init for lay in m.layers] == ["he_normal", "glorot_uniform", "glorot_uniform"]
    assert m.layers[0].weights.std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert np.abs(m.layers[1].weights).max() <= math.sqrt(6 / 800)
    assert not m.layers[0].biases.any()
