"""Facts about the machine a benchmark runs on: CPU, versions, sgemm rate, background load.

One home for them: ``fastnn info``, ``fastnn bench`` and the pytest-benchmark suite all read
the CPU name and features from here.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

SIMD_FEATURES = ("sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "neon", "asimd")


def _cpuinfo_lines():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read().splitlines()
    except OSError:
        return []


def cpu_model():
    """The CPU's marketing name ('model name' in /proc/cpuinfo), else platform.processor()."""
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_features():
    """The SIMD features fastnn's kernels can use, as the OS reports them."""
    for line in _cpuinfo_lines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return [w for w in SIMD_FEATURES if w in have]
    return []


def cpu_generation():
    """'family 25 model 17' on x86 (from /proc/cpuinfo), else ''. Cloud CPUs often share one
    model name across generations with different SIMD throughput (AMD EPYC: Zen 4 runs AVX-512
    at half Zen 5's rate), so a benchmark report has to name the generation."""
    found = {}
    for line in _cpuinfo_lines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("cpu family", "model") and key not in found:
            found[key] = value.strip()
        if not line.strip() and found:
            break
    if len(found) < 2:
        return ""
    return f"family {found['cpu family']} model {found['model']}"


def cpu_caches(root="/sys/devices/system/cpu/cpu0/cache"):
    """'L1d 32K, L2 1024K, L3 32768K' for one core, from sysfs; '' where sysfs has none."""
    out = []
    try:
        names = sorted(n for n in os.listdir(root) if n.startswith("index"))
    except OSError:
        return ""
    for name in names:
        try:
            level, kind, size = (Path(root, name, f).read_text().strip()
                                 for f in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            out.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return ", ".join(out)


def cpu_name():
    """'<model> (family F model M; L1d .., L2 ..; avx512f, avx2, fma), N logical CPUs': the CPU
    line of benchmark reports."""
    simd = [s for s in ("avx512f", "avx2", "fma") if s in cpu_features()]
    parts = [p for p in (cpu_generation(), cpu_caches(), ", ".join(simd)) if p]
    detail = f" ({'; '.join(parts)})" if parts else ""
    return f"{cpu_model()}{detail}, {os.cpu_count() or 1} logical CPUs"


def versions():
    import fastnn
    out = {"python": platform.python_version(), "fastnn": fastnn.__version__,
           "numpy": np.__version__}
    for mod in ("numba", "scipy", "Cython", "threadpoolctl"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: just not listed
            pass
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        out["blas"] = "; ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernels)"
            for i in blas)
    except Exception:  # noqa: BLE001
        pass
    return out


def machine():
    return {"cpu": cpu_name(), "platform": platform.platform(),
            "memory_gib": _memory_gib()}


def _memory_gib():
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def sgemm_gflops(threads, n=2048, reps=10, shape=None):
    """Median float32 matmul rate (GFLOP/s) of numpy's BLAS at ``threads`` threads.

    ``shape`` = (m, k, n) times an (m x k) @ (k x n) product instead of n x n x n (the width
    sweep compares each network with the matmul of its hidden layer's shape); small shapes
    repeat the product so that each timing lasts about a millisecond.
    """
    from fastnn.threads import threads as cap
    m, k, n = shape or (n, n, n)
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    inner = min(1000, max(1, int(1e8 // (2 * m * k * n))))   # ~1 ms at 100 GFLOP/s
    times = []
    with cap(threads):
        for _ in range(2 * inner):
            np.matmul(a, b, out=c)
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                np.matmul(a, b, out=c)
            times.append((time.perf_counter() - t0) / inner)
    return 2.0 * m * k * n / float(np.median(times)) / 1e9


def rss_mib():
    """Peak RSS of this process (VmHWM: its own address space; ru_maxrss would include the
    parent's peak at fork time, which Linux carries across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def cpu_snapshot():
    """(CPU-seconds busy on the whole machine, CPU-seconds of this process and its finished
    children, wall time). Their deltas give the CPUs other processes used meanwhile."""
    import resource
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return busy, own, time.monotonic()


def background_cpus(before, after):
    wall = after[2] - before[2]
    if wall <= 0:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / wall)


def wait_idle(max_seconds, log, threshold=0.2, window=10.0):
    """Wait (at most max_seconds) until other processes use < ``threshold`` CPUs on average
    over a ``window``-second sample."""
    deadline = time.monotonic() + max_seconds
    while True:
        before = cpu_snapshot()
        time.sleep(window)
        bg = background_cpus(before, cpu_snapshot())
        if bg is None or bg < threshold:
            log(f"  quiet: other processes use {bg:.2f} CPUs")
            return bg
        if time.monotonic() >= deadline:
            log(f"  still busy after {max_seconds:.0f} s ({bg:.2f} CPUs); going on anyway")
            return bg
        log(f"  waiting for a quiet machine: other processes use {bg:.2f} CPUs")


def worker_env(threads, cache_dir=None):
    env = dict(os.environ)
    for var in ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    env.pop("XLA_FLAGS", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env["PYTHONWARNINGS"] = "ignore::RuntimeWarning"
    return env
