"""A row's outputs are the same bits whichever path computes them: one sample (the per-sample
kernels) or a batch (the quads, the thin output layer four rows at a time), whatever rows
come with it. (A layer wide enough for a gemm sums in another order: BLAS, or our own
kernel's one chain per element.)"""

import numpy as np
import pytest

kernels = pytest.importorskip("fastnn._kernels")

from .helpers import OPTIMIZERS, available_isas, build, make_data  # noqa: E402


@pytest.fixture(params=available_isas(kernels))
def isa(request):
    kernels.select_isa(request.param)
    yield request.param
    kernels.select_isa("auto")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_out", [3, 10, 20])
@pytest.mark.parametrize("out,loss", [("softmax", "cross_entropy"), ("sigmoid", "mse")])
def test_batch_rows_equal_single_rows(isa, dtype, n_out, out, loss):
    """A 96-unit hidden layer (the batched path) on 20 inputs (its sparse layer 0) and no
    layer wide enough for a gemm: output layers of 3 and 10 units (one vector, four chains)
    and 20 (two vectors in float32, two chains; in float64 past the thin kernels). 37 rows (a
    tail past the groups of four) and slices that start off the groups, against one row at a
    time (the per-sample kernels). Softmax and sigmoid outputs: the same exp on both paths."""
    x, y = make_data(300, 20, n_out, loss)
    x[4] = 0
    x[7, ::2] = 0
    m = build((20, 96, n_out), "relu", out, loss, OPTIMIZERS["momentum"](), dtype, "cython")
    m.fit(x, y, epochs=1, batch_size=32, seed=2, verbose=0)
    rows = np.stack([m.predict(x[i]) for i in range(37)])
    assert np.array_equal(m.predict(x[:37]), rows), f"{isa} {dtype}: batch of 37"
    for lo, hi in ((1, 12), (5, 30), (3, 37)):
        assert np.array_equal(m.predict(x[lo:hi]), rows[lo:hi]), f"{isa} {dtype}: {lo}:{hi}"
