"""pytest-benchmark fixtures: real MNIST, a fixed thread count for the whole run, metadata.

Run:  python -m pytest benchmarks/ [--benchmark-save=NAME] [--benchmark-compare]
Knobs: FASTNN_BENCH_THREADS (default 2), FASTNN_BENCH_ROUNDS (default 5), FASTNN_BENCH_SAMPLES.
"""

from __future__ import annotations

import warnings

import pytest

from fastnn.bench import config as B
from fastnn.bench import machine as M

warnings.filterwarnings("ignore", message="fastnn: using the", category=RuntimeWarning)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Stored with --benchmark-save: what a later --benchmark-compare needs to know."""
    machine_info["fastnn_threads"] = B.bench_threads()
    machine_info["fastnn_dtype"] = B.DTYPE
    machine_info["fastnn_cpu"] = M.cpu_name()
    machine_info["fastnn_versions"] = M.versions()
    try:
        import fastnn
        machine_info["fastnn_backends"] = fastnn.available_backends()
        machine_info["fastnn_auto"] = B.resolved("auto")
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture(scope="session", autouse=True)
def fixed_threads():
    """One thread count (fastnn kernels and BLAS) for every benchmark of the run."""
    from fastnn.threads import threads
    n = B.bench_threads()
    with threads(n):
        yield n


@pytest.fixture(scope="session")
def mnist():
    from fastnn.datasets import MNISTUnavailableError
    try:
        return B.load_data()
    except MNISTUnavailableError as exc:  # the suite measures real MNIST only
        pytest.skip(f"MNIST unavailable: {exc}")


@pytest.fixture(scope="session")
def rounds():
    return B.bench_rounds()


@pytest.fixture
def info(benchmark, fixed_threads):
    """Fill benchmark.extra_info with the facts every row carries."""
    def fill(backend, **extra):
        benchmark.extra_info.update({
            "backend": backend,
            "resolves_to": B.resolved(backend),
            "dtype": B.DTYPE,
            "threads": fixed_threads,
            "cpu": M.cpu_name(),
            "versions": M.versions(),
            **extra,
        })
    return fill
