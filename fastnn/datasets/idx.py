"""Reader and writer for the IDX format used by the MNIST files.

Layout: two zero bytes, a dtype code byte, a dimension count byte, then that many big-endian
uint32 sizes, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_open

__all__ = ["IDXFormatError", "read_idx", "write_idx", "read_mnist_images", "read_mnist_labels"]

_CODE_TO_DTYPE = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# Keyed by (kind, itemsize) so both byte orders of an array map to the same code.
_KIND_TO_CODE = {(dt.kind, dt.itemsize): code for code, dt in _CODE_TO_DTYPE.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_HTML_HINT = (
    "looks like an HTML page, not an IDX file: the download probably returned an error page"
)


class IDXFormatError(ValueError):
    """The bytes are not a well-formed IDX file (or gzipped IDX file)."""


def read_idx(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> np.ndarray:
    """Read an IDX file (path or raw bytes), gzipped or not, into a native-endian array.

    Compression is detected from the content, so the file name does not matter.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        name, data = "<bytes>", bytes(source)
    else:
        name = os.fspath(source)
        data = Path(source).read_bytes()
    gzipped = data[:2] == _GZIP_MAGIC
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXFormatError(f"{name}: corrupt gzip stream: {exc}") from exc
    return _parse(data, name, gzipped)


def _parse(data: bytes, name: str, gzipped: bool) -> np.ndarray:
    where = f"{name} (after gunzip)" if gzipped else name

    def fail(what: str) -> IDXFormatError:
        hint = ""
        if data.lstrip()[:1] == b"<":
            hint = f"; {_HTML_HINT}"
        elif gzipped:
            hint = "; the gzip stream is valid but does not contain an IDX file"
        return IDXFormatError(f"{where}: {what}{hint}")

    if len(data) < 4:
        raise fail(f"too short for an IDX header ({len(data)} bytes)")
    if data[:2] != b"\x00\x00":
        raise fail(f"bad magic: expected 00 00, got {data[:2].hex(' ')}")
    code, ndim = data[2], data[3]
    if code not in _CODE_TO_DTYPE:
        raise fail(f"unknown IDX dtype code 0x{code:02X}")
    if not 1 <= ndim <= 4:
        raise fail(f"unsupported number of dimensions {ndim} (expected 1..4)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise fail(f"truncated header: {ndim} dims need {header_len} bytes, file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _CODE_TO_DTYPE[code]
    count = math.prod(shape)
    expected = count * dtype.itemsize
    got = len(data) - header_len
    if got < expected:
        raise fail(f"truncated: header says {expected} data bytes, file has {got}")
    if got > expected:
        raise fail(f"{got - expected} trailing bytes after the {expected} data bytes")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header_len).reshape(shape)
    # astype copies: gives a writable array that does not pin the file's bytes.
    return arr.astype(dtype.newbyteorder("="))


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None
) -> None:
    """Write `array` as IDX (big-endian), atomically.

    compress=None gzips when the path ends in ".gz".
    """
    arr = np.asarray(array)
    code = _KIND_TO_CODE.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        supported = ", ".join(str(dt.newbyteorder("=")) for dt in _CODE_TO_DTYPE.values())
        raise ValueError(f"write_idx: unsupported dtype {arr.dtype} (supported: {supported})")
    if not 1 <= arr.ndim <= 4:
        raise ValueError(f"write_idx: IDX holds 1..4 dimensions, array has {arr.ndim}")
    if max(arr.shape) >= 2**32:
        raise ValueError(f"write_idx: dimension too large for IDX: {arr.shape}")
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = arr.astype(_CODE_TO_DTYPE[code], copy=False).tobytes(order="C")
    with atomic_open(path, "wb") as f:
        if compress:
            # mtime=0 and no file name: identical arrays give identical files.
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=6, mtime=0) as g:
                g.write(header)
                g.write(body)
        else:
            f.write(header)
            f.write(body)


def read_mnist_images(path: str | os.PathLike[str] | bytes) -> np.ndarray:
    """Read an MNIST image file: uint8 array of shape (N, 28, 28)."""
    arr = read_idx(path)
    name = _name(path)
    if arr.dtype != np.uint8:
        raise IDXFormatError(f"{name}: MNIST images must be uint8, got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise IDXFormatError(f"{name}: MNIST images must have shape (N, 28, 28), got {arr.shape}")
    return arr


def read_mnist_labels(path: str | os.PathLike[str] | bytes) -> np.ndarray:
    """Read an MNIST label file: uint8 array of shape (N,) with values 0..9."""
    arr = read_idx(path)
    name = _name(path)
    if arr.dtype != np.uint8:
        raise IDXFormatError(f"{name}: MNIST labels must be uint8, got {arr.dtype}")
    if arr.ndim != 1:
        raise IDXFormatError(f"{name}: MNIST labels must be 1-D, got shape {arr.shape}")
    if arr.size and arr.max() > 9:
        raise IDXFormatError(f"{name}: MNIST labels must be 0..9, found {int(arr.max())}")
    return arr


def _name(source: object) -> str:
    return "<bytes>" if isinstance(source, bytes | bytearray | memoryview) else os.fspath(source)
