"""The Model API: fit/predict/evaluate, histories, callbacks, save/load, clear errors."""

import numpy as np
import pytest

import fastnn as fn
from fastnn.datasets import MaxScaler, sleep_study, xor


def digits_like(n=300, n_in=20, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2, size=(n_classes, n_in))
    y = rng.integers(0, n_classes, n)
    x = centers[y] + rng.normal(0, 1, size=(n, n_in))
    return x, y


def test_fit_learns_xor(backend):
    x, y = xor()
    m = fn.Sequential([fn.Dense(8, "tanh"), fn.Dense(2, "softmax")], input_size=2,
                      optimizer=fn.Adam(0.05), seed=1, backend=backend)
    h = m.fit(x, y, epochs=300, batch_size=4, verbose=0)
    assert list(m.predict_classes(x)) == [0, 1, 1, 0]
    assert h["accuracy"][-1] == 1.0 and h["loss"][-1] < 0.05


def test_fit_learns_xor_with_a_single_sigmoid_unit(backend):
    x, y = xor()
    m = fn.Sequential([fn.Dense(8, "tanh"), fn.Dense(1, "sigmoid")], input_size=2,
                      loss="binary_cross_entropy", optimizer=fn.Adam(0.05), seed=2,
                      backend=backend)
    m.fit(x, y.astype(float), epochs=300, batch_size=4, verbose=0)
    assert list(m.predict_classes(x)) == [0, 1, 1, 0]
    assert m.evaluate(x, y.astype(float)).accuracy == 1.0


def test_sleep_study_regression_2_3_1(backend):
    # The video's network: inputs and scores divided by their maxima, 2-3-1 sigmoid, MSE.
    x, y = sleep_study()
    xs, ys = MaxScaler().fit_transform(x), y / 100.0
    m = fn.Sequential([fn.Dense(3, "sigmoid"), fn.Dense(1, "sigmoid")], input_size=2,
                      loss="mse", optimizer=fn.Adam(0.05), dtype="float64", seed=0,
                      backend=backend)
    first = m.evaluate(xs, ys).loss
    h = m.fit(xs, ys, epochs=2000, batch_size=3, verbose=0)
    assert h["accuracy"][-1] is None          # regression: no accuracy
    assert m.evaluate(xs, ys).loss < 1e-4 < first
    np.testing.assert_allclose(m.predict(xs) * 100, y, atol=2.0)


def test_history_validation_and_one_hot_labels(backend):
    x, y = digits_like()
    onehot = np.eye(4)[y]
    m = fn.Sequential([fn.Dense(16, "relu"), fn.Dense(4, "softmax")], input_size=20, seed=0,
                      optimizer=fn.SGD(0.1, momentum=0.9), backend=backend)
    h = m.fit(x, onehot, epochs=5, batch_size=16, validation_split=0.2, verbose=0)
    assert len(h) == 5 and h.epoch == [0, 1, 2, 3, 4]
    assert all(len(h[k]) == 5 for k in ("loss", "accuracy", "val_loss", "val_accuracy"))
    assert h["val_accuracy"][-1] > 0.9 and h["loss"][-1] < h["loss"][0]
    assert all(s > 0 for s in h["samples_per_sec"])
    ev = m.evaluate(x[-60:], y[-60:])
    assert ev.loss == pytest.approx(h["val_loss"][-1], rel=1e-6)
    assert ev.accuracy == pytest.approx(h["val_accuracy"][-1])
    assert m.predict(x).shape == (300, 4)
    np.testing.assert_allclose(m.predict(x).sum(axis=1), 1.0, rtol=1e-5)
    assert m.predict(x[0]).shape == (4,)


def test_validation_data_and_float64(backend):
    x, y = digits_like()
    m = fn.Sequential([fn.Dense(8, "tanh"), fn.Dense(4, "softmax")], input_size=20, seed=1,
                      dtype="float64", backend=backend)
    h = m.fit(x[:200], y[:200], epochs=2, validation_data=(x[200:], y[200:]), verbose=0)
    assert m.predict(x).dtype == np.float64
    assert h["val_loss"][-1] == pytest.approx(m.evaluate(x[200:], y[200:]).loss)


def test_same_seed_same_run_and_shuffle_off(backend):
    x, y = digits_like()

    def run(seed, shuffle=True):
        m = fn.Sequential([fn.Dense(8, "sigmoid"), fn.Dense(4, "softmax")], input_size=20,
                          seed=0, backend=backend)
        m.fit(x, y, epochs=2, batch_size=10, seed=seed, shuffle=shuffle, verbose=0)
        return m.params.copy()

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))
    np.testing.assert_array_equal(run(5, False), run(6, False))


def test_early_stopping_restores_best_weights(backend):
    x, y = digits_like(n=200)
    snapshots = []
    m = fn.Sequential([fn.Dense(32, "relu"), fn.Dense(4, "softmax")], input_size=20, seed=0,
                      optimizer=fn.SGD(0.5), backend=backend)
    stop = fn.EarlyStopping(monitor="val_loss", patience=2)
    record = fn.LambdaCallback(lambda model, epoch, logs: snapshots.append(model.params.copy()))
    rng = np.random.default_rng(1)
    y_noisy = np.where(rng.uniform(size=200) < 0.5, rng.integers(0, 4, 200), y)  # overfits
    h = m.fit(x[:100], y_noisy[:100], epochs=200, batch_size=5, verbose=0,
              validation_data=(x[100:], y[100:]), callbacks=[stop, record])
    assert len(h) < 200 and stop.stopped_epoch == len(h) - 1
    best = int(np.argmin(h["val_loss"]))
    assert best == stop.best_epoch and len(h) - 1 - best == 3
    np.testing.assert_array_equal(m.params, snapshots[best])


def test_save_load_round_trip_predicts_identically_and_resumes(tmp_path, backend):
    x, y = digits_like()
    make = lambda: fn.Sequential([fn.Dense(12, "relu"), fn.Dense(4, "softmax")],  # noqa: E731
                                 input_size=20, seed=4, optimizer=fn.Adam(3e-3),
                                 backend=backend)
    full = make()
    full.fit(x, y, epochs=4, batch_size=8, seed=9, verbose=0)
    half = make()
    half.fit(x, y, epochs=2, batch_size=8, seed=9, verbose=0)
    half.save(tmp_path / "m.fnn")
    loaded = fn.load(tmp_path / "m.fnn", backend=backend)
    np.testing.assert_array_equal(loaded.predict(x), half.predict(x))
    assert loaded.optimizer.t == half.optimizer.t and loaded.get_config() == half.get_config()
    loaded.fit(x, y, epochs=4, batch_size=8, seed=9, initial_epoch=2, verbose=0)
    np.testing.assert_array_equal(loaded.params, full.params)


def test_saved_file_is_safetensors_without_pickle(tmp_path):
    from safetensors.numpy import load_file
    m = fn.Sequential([fn.Dense(3, "sigmoid")], input_size=2, optimizer=fn.SGD(0.1, 0.9))
    m.save(tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    assert b"pickle" not in raw and raw[8:9] == b"{"
    tensors = load_file(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(tensors["params"], m.params)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.safetensors"]   # no temp files left


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:100], "truncated"),
    (lambda b: b[:4], "truncated"),
    (lambda b: (10**9).to_bytes(8, "little") + b[8:], "header claims"),
    (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:], "checksum mismatch"),
    (lambda b: b.replace(b'"format_version":"1"', b'"format_version":"9"'), "format version"),
    (lambda b: b.replace(b'\\"sigmoid\\"', b'\\"sigmoix\\"'), "activation"),
    (lambda b: b"\x80\x04\x95" + b[3:], "not"),
])
def test_load_rejects_bad_files(tmp_path, mutate, message):
    m = fn.Sequential([fn.Dense(3, "sigmoid"), fn.Dense(2, "softmax")], input_size=2)
    m.save(tmp_path / "m.fnn")
    (tmp_path / "bad.fnn").write_bytes(mutate((tmp_path / "m.fnn").read_bytes()))
    with pytest.raises(fn.ModelFileError, match=message):
        fn.load(tmp_path / "bad.fnn")


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    m = fn.Sequential([fn.Dense(3, "sigmoid")], input_size=2)
    m.save(tmp_path / "m.fnn")
    before = (tmp_path / "m.fnn").read_bytes()
    import fastnn.io
    monkeypatch.setattr(fastnn.io, "to_bytes", lambda model: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        m.save(tmp_path / "m.fnn")
    assert (tmp_path / "m.fnn").read_bytes() == before


def test_divergence_stops_with_last_finite_weights(backend):
    x, y = digits_like()
    m = fn.Sequential([fn.Dense(16, "relu"), fn.Dense(4, "identity")], input_size=20, loss="mse",
                      optimizer=fn.SGD(50.0), seed=0, backend=backend)
    y_reg = np.random.default_rng(0).normal(size=(300, 4)) * 100
    with pytest.raises(fn.DivergenceError, match=r"epoch \d+ at step \d+.*lower learning rate"):
        m.fit(x, y_reg, epochs=50, batch_size=10, verbose=0)
    assert np.isfinite(m.params).all()


BAD_FIT = [
    (dict(x=np.zeros((10, 3))), ValueError, r"x: expected shape \(n_samples, 4\)"),
    (dict(x=np.zeros((0, 4)), y=np.zeros(0, int)), ValueError, "at least one sample"),
    (dict(y=np.zeros(9, int)), ValueError, "y: expected 10 rows"),
    (dict(x=np.full((10, 4), np.nan)), ValueError, "x: contains NaN"),
    (dict(x=np.array([["a"] * 4] * 10)), TypeError, "x: expected a numeric array"),
    (dict(x=np.zeros((10, 4), complex)), TypeError, "numeric"),
    (dict(y=np.arange(10)), ValueError, r"class labels must be in \[0, 2\]"),
    (dict(y=np.full(10, 0.5)), ValueError, "must be integers"),
    (dict(y=np.zeros((10, 5))), ValueError, "targets of shape"),
    (dict(batch_size=0), ValueError, "batch_size: expected an integer >= 1"),
    (dict(epochs=-1), ValueError, "epochs: expected an integer >= 0"),
    (dict(validation_split=1.5), ValueError, "validation_split"),
]


@pytest.mark.parametrize("kwargs, exc, message", BAD_FIT)
def test_fit_rejects_bad_input_clearly(kwargs, exc, message):
    m = fn.Sequential([fn.Dense(3, "softmax")], input_size=4, optimizer=fn.Adam(0.1))
    before = m.get_state()
    args = dict(x=np.ones((10, 4)), y=np.arange(10) % 3, verbose=0) | kwargs
    with pytest.raises(exc, match=message):
        m.fit(**args)
    after = m.get_state()   # every error comes before any weight or optimiser change
    for key in ("params", "m", "v"):
        np.testing.assert_array_equal(after[key], before[key])
    assert after["t"] == before["t"] == 0


@pytest.mark.parametrize("make, message", [
    (lambda: fn.Dense(0), "units"),
    (lambda: fn.Dense(3, "sigmoidal"), r"activation: expected one of \['identity'"),
    (lambda: fn.Dense(3, init="zeros"), "init: expected one of"),
    (lambda: fn.Sequential([fn.Dense(3, "softmax")], input_size=2, loss="mae"), "loss"),
    (lambda: fn.Sequential([fn.Dense(3, "sigmoid")], input_size=2, loss="cross_entropy"),
     "needs a 'softmax' output"),
    (lambda: fn.Sequential([fn.Dense(3, "softmax")], input_size=2, loss="mse"), "softmax"),
    (lambda: fn.Sequential([fn.Dense(3)], input_size=2, dtype="float16"), "dtype"),
    (lambda: fn.Sequential([fn.Dense(3)], input_size=2, optimizer="rmsprop"), "optimizer"),
    (lambda: fn.Sequential([fn.Dense(3)], input_size=2, backend="cuda"), "backend"),
    (lambda: fn.SGD(0.0), "learning rate"),
    (lambda: fn.SGD(float("nan")), "learning rate"),
    (lambda: fn.Adam(-1), "learning rate"),
])
def test_constructors_reject_bad_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_inputs_are_converted_once_and_odd_layouts_work(backend):
    x, y = digits_like(n=64)
    m = fn.Sequential([fn.Dense(4, "softmax")], input_size=20, seed=0, backend=backend)
    ref = m.predict(x)
    fortran = np.asfortranarray(x)
    strided = np.repeat(x, 2, axis=0)[::2]
    readonly = x.copy()
    readonly.setflags(write=False)
    for variant in (fortran, strided, readonly, x.astype(np.float32), x.T.copy().T):
        np.testing.assert_array_equal(m.predict(variant), ref)
    ints = np.round(x * 3).astype(np.int16)
    np.testing.assert_array_equal(m.predict(ints), m.predict(ints.astype(np.float32)))


def test_unscaled_inputs_warn():
    m = fn.Sequential([fn.Dense(2, "softmax")], input_size=3)
    with pytest.warns(UserWarning, match="unscaled"):
        m.fit(np.full((4, 3), 255.0), [0, 1, 0, 1], verbose=0)


def test_batch_size_larger_than_data_is_clamped():
    m = fn.Sequential([fn.Dense(2, "softmax")], input_size=3, optimizer=fn.SGD(0.1))
    m.fit(np.zeros((5, 3)), [0, 1, 0, 1, 0], batch_size=100, epochs=3, verbose=0)
    assert m.optimizer.t == 3


def test_summary_and_views_share_the_flat_buffer():
    m = fn.Sequential([fn.Dense(16, "sigmoid"), fn.Dense(16, "sigmoid"), fn.Dense(10, "softmax")],
                      input_size=784, seed=0)
    assert m.net.n_params == 784 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10 == 13002
    m.layers[1].weights[0, 0] = 42.0
    assert m.params[784 * 16 + 16] == 42.0
    assert np.shares_memory(m.layers[2].biases, m.params)
    assert "13002" in m.summary()
