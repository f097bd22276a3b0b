"""fit's NaN/inf check on x, up front or folded into the first epoch (training.InputWatch):
either way the error names the first bad value and the model is left as fit found it."""

import numpy as np
import pytest

import fastnn as fn
import fastnn._validate as V
from fastnn import backends
from fastnn.threads import threads

from .helpers import build, make_data

COMPILED = [b for b in ("numba", "cython") if b in fn.available_backends()]
# a narrow net (per-sample kernels) and a wide one (batched kernels, layer-0 row tasks)
NETS = [(30, 16, 4), (30, 140, 4)]


def _state(m):
    return {k: np.copy(v) for k, v in m.get_state().items()}


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", NETS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_bad_value_late_in_x_changes_nothing(backend, dtype, sizes, bad, n_threads):
    x, y = make_data(20000, sizes[0], sizes[-1], "cross_entropy", seed=4)
    m = build(sizes, "relu", "softmax", "cross_entropy", fn.Adam(1e-3), dtype, backend)
    m.fit(x[:500], y[:500], epochs=1, batch_size=50, seed=0, verbose=0)   # some state
    before, history = _state(m), m.history
    x[19321, 17] = bad        # in order: trained on after two fused calls of the first epoch
    with threads(n_threads), pytest.raises(
            ValueError, match=r"^x: contains NaN or inf \(first at index \(19321, 17\)\)$"):
        m.fit(x, y, epochs=3, batch_size=64, shuffle=False, verbose=0)
    after = _state(m)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert m.history is history and m.epochs_done == 1


@pytest.mark.parametrize("sparse", [1, 0])
def test_cython_checks_in_training_on_both_layer0_paths(sparse):
    if "cython" not in fn.available_backends():
        pytest.skip("cython backend not built")
    from fastnn import _kernels
    x, y = make_data(3000, 30, 4, "cross_entropy", seed=5)
    x[2500, 0] = np.nan
    m = build((30, 140, 4), "relu", "softmax", "cross_entropy", fn.SGD(0.1), "float32",
              "cython")
    before = _state(m)
    old = _kernels.get_tuning()
    _kernels.set_tuning(sparse=sparse)
    try:
        with pytest.raises(ValueError, match=r"first at index \(2500, 0\)"):
            m.fit(x, y, epochs=1, batch_size=100, verbose=0)
    finally:
        _kernels.set_tuning(**old)
    np.testing.assert_array_equal(m.params, before["params"])


def test_the_cython_fit_makes_no_separate_pass(monkeypatch):
    """The point of the deferral: with the cython backend fit never scans x on its own; the
    other backends (and the cases that must check first) still do."""
    calls = []

    def counting_peak(arr):
        calls.append(arr.shape)
        return backends.abs_peak(arr)
    monkeypatch.setattr(V, "abs_peak", counting_peak)
    x, y = make_data(600, 30, 4, "cross_entropy")
    for backend in ["numpy", *COMPILED]:
        calls.clear()
        m = build((30, 16, 4), "relu", "softmax", "cross_entropy", fn.SGD(0.1), "float32",
                  backend)
        m.fit(x, y, epochs=2, batch_size=32, verbose=0)
        assert (calls == []) == (backend == "cython"), (backend, calls)
        calls.clear()
        m.fit(x, y, epochs=1, batch_size=32, verbose=0, validation_split=0.25)
        assert calls == [(600, 30)], backend        # the held-out rows are never trained on
        calls.clear()
        m.fit(x, y, epochs=2, initial_epoch=2, verbose=0)   # nothing to train: checked anyway
        assert calls == [(600, 30)], backend


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_unscaled_inputs_still_warn_once(backend, recwarn):
    x, y = make_data(3000, 30, 4, "cross_entropy")
    x[2999, 3] = 255.0
    m = build((30, 16, 4), "relu", "softmax", "cross_entropy", fn.SGD(0.01), "float32",
              backend)
    m.fit(x, y, epochs=2, batch_size=100, verbose=0)
    msgs = [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)]
    assert [s for s in msgs if "values reach 255" in s and "unscaled" in s] == [msgs[0]]
    assert len(msgs) == 1
