"""pickle and deepcopy of Sequential: the state is the safetensors bytes of ``save``."""

from __future__ import annotations

import copy
import pickle
import pickletools

import numpy as np
import pytest

import fastnn as fn
from fastnn.io import ModelFileError


def _data(rng, n=300, d=12, k=3):
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, :k] + 0.1 * rng.normal(size=(n, k))).argmax(axis=1)
    return x, y


def _model(backend, optimizer="adam", dtype="float32"):
    layers = [fn.Dense(16, "tanh"), fn.Dense(8, "relu"), fn.Dense(3, "softmax")]
    return fn.Sequential(layers, input_size=12, optimizer=optimizer, dtype=dtype,
                         backend=backend, seed=7)


def _globals(payload):
    """Every (module, name) the pickle would import when loaded."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(payload):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.add((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            found.add(tuple(arg.split(" ", 1)))
    return found


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unpickled_model_predicts_bit_identically_and_trains_on_identically(backend, rng, dtype):
    x, y = _data(rng)
    model = _model(backend, dtype=dtype)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)    # seed=None: drawn from the model
    clone = pickle.loads(pickle.dumps(model))
    assert clone.backend.name == model.backend.name
    assert np.array_equal(clone.predict(x), model.predict(x))
    assert np.array_equal(clone.predict(x[0]), model.predict(x[0]))
    assert clone.optimizer.t == model.optimizer.t
    assert clone.history["loss"] == model.history["loss"]
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    clone.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.array_equal(clone.params, model.params)
    assert np.array_equal(clone.optimizer.v, model.optimizer.v)


def test_deepcopy_is_an_independent_equal_model(rng):
    x, y = _data(rng)
    model = _model("numpy", optimizer=fn.SGD(0.1, momentum=0.9))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    twin = copy.deepcopy(model)
    before = model.params.copy()
    assert np.array_equal(twin.predict(x), model.predict(x))
    twin.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.array_equal(model.params, before)             # the original is untouched
    assert not np.array_equal(twin.params, before)
    assert twin.layers[0].weights.base is not None and \
        np.shares_memory(twin.layers[0].weights, twin.params)


@pytest.mark.parametrize("seed", [7, np.int64(7), [1, 2], None])
def test_pickle_holds_no_arrays_or_code_beyond_the_class(rng, seed):
    model = _model("numpy")
    model._seeds = np.random.SeedSequence(seed)     # as Sequential(seed=...) makes it
    model.fit(*_data(rng), epochs=1, verbose=0)
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    assert _globals(payload) == {("fastnn.model", "Sequential")}
    assert _globals(pickle.dumps(model)) == {("fastnn.model", "Sequential")}


def test_a_changed_byte_in_the_pickled_weights_is_caught(rng):
    model = _model("numpy")
    payload = bytearray(pickle.dumps(model))
    raw = model.params.tobytes()[:16]
    at = bytes(payload).find(raw)
    assert at > 0
    payload[at + 3] ^= 0x01
    with pytest.raises(ModelFileError, match="checksum"):
        pickle.loads(bytes(payload))


def test_a_model_with_a_custom_schedule_cannot_be_pickled():
    model = fn.Sequential([fn.Dense(2, "softmax")], input_size=3,
                          optimizer=fn.SGD(0.1, schedule=lambda lr, epoch: lr))
    with pytest.raises(TypeError, match="schedule"):
        pickle.dumps(model)
