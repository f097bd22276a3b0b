import warnings

import numpy as np
import pytest

import fastnn

warnings.filterwarnings("ignore", message="fastnn: using the", category=RuntimeWarning)

COMPILED = [b for b in fastnn.available_backends() if b != "numpy"]


@pytest.fixture(params=fastnn.available_backends())
def backend(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
