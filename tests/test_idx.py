import gzip
import os
import struct

import numpy as np
import pytest

import fastnn._atomic as atomic_mod
from fastnn._atomic import atomic_open, atomic_write_bytes
from fastnn.datasets import (
    IDXFormatError,
    read_idx,
    read_mnist_images,
    read_mnist_labels,
    write_idx,
)

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)]


def _sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        arr = rng.normal(0, 1e3, size=shape).astype(dt)
        flat = arr.reshape(-1)
        flat[: min(3, flat.size)] = [np.nan, -np.inf, -0.0][: min(3, flat.size)]
        return arr
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)


def _idx_bytes(code, shape, body):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_exact(tmp_path, dtype, shape, compress):
    arr = _sample(dtype, shape)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is compress
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    assert out.tobytes() == arr.tobytes()  # bit-exact, NaN and -0.0 included
    assert out.flags.writeable and out.flags.c_contiguous


def test_big_endian_on_disk_and_header(tmp_path):
    arr = np.array([[1, 2, 3], [4, 5, -1]], dtype=np.int16)
    write_idx(tmp_path / "a", arr)
    raw = (tmp_path / "a").read_bytes()
    assert raw[:4] == b"\x00\x00\x0b\x02"
    assert struct.unpack(">2I", raw[4:12]) == (2, 3)
    assert raw[12:14] == b"\x00\x01" and raw[-2:] == b"\xff\xff"


def test_big_endian_input_and_non_contiguous(tmp_path):
    arr = np.arange(24, dtype=">f8").reshape(4, 6)[:, ::2]
    write_idx(tmp_path / "a", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), arr)


def test_gzip_detected_by_content_not_name(tmp_path):
    arr = _sample(np.uint8, (4, 4))
    write_idx(tmp_path / "no_suffix", arr, compress=True)
    assert (tmp_path / "no_suffix").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "no_suffix"), arr)
    # And a plain file with a .gz name is read as plain.
    write_idx(tmp_path / "plain.gz", arr, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), arr)


def test_read_from_bytes_and_str_path(tmp_path):
    arr = _sample(np.int32, (3, 2))
    body = arr.astype(">i4").tobytes()
    np.testing.assert_array_equal(read_idx(_idx_bytes(0x0C, (3, 2), body)), arr)
    np.testing.assert_array_equal(read_idx(gzip.compress(_idx_bytes(0x0C, (3, 2), body))), arr)
    write_idx(str(tmp_path / "s.idx"), arr)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "s.idx")), arr)


def test_gzip_output_is_deterministic(tmp_path):
    arr = _sample(np.float32, (5, 5))
    write_idx(tmp_path / "a.gz", arr)
    write_idx(tmp_path / "b.gz", arr)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_error_bad_magic(tmp_path):
    path = _write(tmp_path, "x.idx", b"\x01\x02\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(IDXFormatError, match=r"x\.idx: bad magic: expected 00 00, got 01 02"):
        read_idx(path)


def test_error_unknown_dtype(tmp_path):
    path = _write(tmp_path, "x.idx", _idx_bytes(0x0A, (1,), b"\x00"))
    with pytest.raises(IDXFormatError, match="unknown IDX dtype code 0x0A"):
        read_idx(path)


@pytest.mark.parametrize("ndim", [0, 5])
def test_error_bad_ndim(ndim):
    data = bytes([0, 0, 8, ndim]) + b"\x00\x00\x00\x01" * ndim + b"\x00"
    with pytest.raises(IDXFormatError, match=f"unsupported number of dimensions {ndim}"):
        read_idx(data)


def test_error_truncated_data_names_file_and_sizes(tmp_path):
    data = _idx_bytes(0x08, (60000, 28, 28), b"\x00" * 1200)
    path = _write(tmp_path, "train-images-idx3-ubyte.gz", gzip.compress(data))
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg
    assert "truncated: header says 47040000 data bytes, file has 1200" in msg


def test_error_truncated_header():
    with pytest.raises(IDXFormatError, match="truncated header"):
        read_idx(b"\x00\x00\x08\x03\x00\x00\x00\x01")
    with pytest.raises(IDXFormatError, match="too short"):
        read_idx(b"\x00\x00")


def test_error_trailing_bytes():
    with pytest.raises(IDXFormatError, match="2 trailing bytes after the 3 data bytes"):
        read_idx(_idx_bytes(0x08, (3,), b"\x01\x02\x03\x04\x05"))


def test_error_html_page(tmp_path):
    page = b"<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n"
    path = _write(tmp_path, "t10k-labels-idx1-ubyte", page)
    with pytest.raises(IDXFormatError, match="looks like an HTML page, not an IDX file"):
        read_idx(path)
    # Servers sometimes gzip their error pages too.
    with pytest.raises(IDXFormatError, match="after gunzip.*HTML page"):
        read_idx(gzip.compress(page))


def test_error_gzip_of_garbage():
    with pytest.raises(IDXFormatError, match="gzip stream is valid but does not contain an IDX"):
        read_idx(gzip.compress(b"hello world, not idx"))


def test_error_corrupt_gzip(tmp_path):
    good = gzip.compress(_idx_bytes(0x08, (1000,), bytes(range(250)) * 4))
    cut = _write(tmp_path, "cut.gz", good[: len(good) // 2])
    with pytest.raises(IDXFormatError, match=r"cut\.gz: corrupt gzip stream"):
        read_idx(cut)
    flipped = bytearray(good)
    flipped[12:20] = b"\xff" * 8
    with pytest.raises(IDXFormatError, match="corrupt gzip stream"):
        read_idx(bytes(flipped))
    with pytest.raises(IDXFormatError, match="corrupt gzip stream"):
        read_idx(b"\x1f\x8b" + b"garbage" * 10)


def test_format_error_is_value_error():
    assert issubclass(IDXFormatError, ValueError)


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_, np.float16, np.complex64])
def test_write_unsupported_dtype(tmp_path, dtype):
    with pytest.raises(ValueError, match="unsupported dtype"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=dtype))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("shape", [(), (1, 1, 1, 1, 1)])
def test_write_unsupported_ndim(tmp_path, shape):
    with pytest.raises(ValueError, match="1..4 dimensions"):
        write_idx(tmp_path / "a", np.zeros(shape, dtype=np.uint8))


def test_mnist_helpers(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint16).reshape(2, 28, 28).astype(np.uint8)
    write_idx(tmp_path / "img.gz", images)
    write_idx(tmp_path / "lab.gz", np.array([3, 9], dtype=np.uint8))
    np.testing.assert_array_equal(read_mnist_images(tmp_path / "img.gz"), images)
    np.testing.assert_array_equal(read_mnist_labels(tmp_path / "lab.gz"), [3, 9])

    write_idx(tmp_path / "bad_shape", np.zeros((2, 28, 27), dtype=np.uint8))
    with pytest.raises(IDXFormatError, match=r"bad_shape: MNIST images must have shape"):
        read_mnist_images(tmp_path / "bad_shape")
    write_idx(tmp_path / "bad_dtype", np.zeros((2, 28, 28), dtype=np.float32))
    with pytest.raises(IDXFormatError, match="must be uint8, got float32"):
        read_mnist_images(tmp_path / "bad_dtype")
    write_idx(tmp_path / "bad_label", np.array([1, 10], dtype=np.uint8))
    with pytest.raises(IDXFormatError, match=r"labels must be 0\.\.9, found 10"):
        read_mnist_labels(tmp_path / "bad_label")
    with pytest.raises(IDXFormatError, match="must be 1-D"):
        read_mnist_labels(tmp_path / "img.gz")


# ---- fastnn._atomic -----------------------------------------------------------------------------


def test_atomic_write_bytes_replaces(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_open_text_mode_and_permissions(tmp_path):
    with atomic_open(tmp_path / "t.txt", "w") as f:
        f.write("héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o666 & ~atomic_mod._UMASK


def test_atomic_open_crash_leaves_old_file_and_no_litter(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old content")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_open(target) as f:
            f.write(b"partial new")
            raise RuntimeError("simulated crash")
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["model.bin"]

    new = tmp_path / "new.bin"
    with pytest.raises(RuntimeError):
        with atomic_open(new) as f:
            f.write(b"x")
            raise RuntimeError("crash")
    assert not new.exists()
    assert os.listdir(tmp_path) == ["model.bin"]


def test_atomic_open_fsync_failure_cleans_up(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_mod.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "a", b"data")
    assert os.listdir(tmp_path) == []


def test_atomic_open_rejects_other_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "a", "ab"):
            pass


def test_write_idx_crash_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "a.gz"
    write_idx(target, np.arange(5, dtype=np.uint8))
    before = target.read_bytes()

    class CrashingGzip(gzip.GzipFile):
        def write(self, data):
            if len(data) > 4:
                super().write(bytes(data)[:3])
                raise OSError("simulated crash mid-write")
            return super().write(data)

    monkeypatch.setattr(gzip, "GzipFile", CrashingGzip)
    with pytest.raises(OSError, match="mid-write"):
        write_idx(target, np.arange(100, dtype=np.uint8))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.gz"]
