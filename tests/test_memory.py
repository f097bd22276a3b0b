"""The buffers the kernels stream through start on cache lines (fastnn/_memory.py): the model's
parameters, the optimiser's state, and the float pixels load_mnist returns (its own test)."""

import numpy as np
import pytest

import fastnn
import fastnn.presets
from fastnn import io
from fastnn._memory import CACHE_LINE, aligned_empty, aligned_zeros


def _aligned(a):
    return a.ctypes.data % CACHE_LINE == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_aligned_arrays_have_the_shape_dtype_and_alignment_asked(dtype):
    # plain np.empty of these sizes lands 16 or 48 bytes off a line on glibc: many tries
    for shape in [0, 1, 7, 1000, 100352, (3, 5), (60, 784), (2, 28, 28)]:
        for _ in range(5):
            a = aligned_empty(shape, dtype)
            want = (shape,) if isinstance(shape, int) else shape
            assert a.shape == want and a.dtype == dtype
            assert a.flags.c_contiguous and a.flags.writeable
            assert a.size == 0 or _aligned(a)   # an empty array has no first byte
    z = aligned_zeros((4, 9), dtype)
    assert _aligned(z) and not z.any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", ["adam", "momentum", "sgd"])
def test_parameters_and_optimizer_state_are_aligned(dtype, opt):
    rng = np.random.default_rng(0)
    x = rng.random((64, 20)).astype(dtype)
    y = rng.integers(0, 3, 64)
    model = fastnn.presets.build("mlp-128", input_size=20, n_classes=3, dtype=dtype,
                                 optimizer=opt, backend="numpy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert _aligned(model.params)
    for state in (model.optimizer.m, model.optimizer.v):
        assert state is None or state.size == 0 or _aligned(state)
    again = io.from_bytes(io.to_bytes(model), backend="numpy")
    assert _aligned(again.params)
    np.testing.assert_array_equal(again.params, model.params)
