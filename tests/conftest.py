import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastnn

warnings.filterwarnings("ignore", message="fastnn: using the", category=RuntimeWarning)

COMPILED = [b for b in fastnn.available_backends() if b != "numpy"]
CHECKOUT = Path(__file__).resolve().parent.parent


def pytest_report_header(config):
    return f"fastnn {fastnn.__version__} from {Path(fastnn.__file__).parent}"


def pytest_sessionstart(session):
    """FASTNN_TEST_INSTALLED=1: the run must test an installed fastnn, not this checkout."""
    if os.environ.get("FASTNN_TEST_INSTALLED") == "1" and \
            Path(fastnn.__file__).resolve().is_relative_to(CHECKOUT):
        raise pytest.UsageError(f"FASTNN_TEST_INSTALLED=1 but fastnn was imported from the "
                                f"checkout ({fastnn.__file__}): run pytest from outside it "
                                "with --import-mode=append")


@pytest.fixture(params=fastnn.available_backends())
def backend(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
