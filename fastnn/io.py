"""Model files: safetensors (raw arrays + JSON header), never pickle.

The safetensors metadata holds the model config as JSON, the format version, the fastnn
version and a sha256 of the tensor bytes, so a flipped bit anywhere is caught on load.
Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from ._version import __version__

FORMAT = "fastnn"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20       # our headers are a few KB; refuse absurd ones before parsing
TENSORS = ("params", "opt.m", "opt.v")


class ModelFileError(ValueError):
    """A model file is truncated, corrupt, from an unknown format version or not fastnn's."""


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for name in TENSORS:
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    return h.hexdigest()


def to_bytes(model) -> bytes:
    """The model as safetensors bytes (what ``save`` writes)."""
    from safetensors.numpy import save

    opt = model.optimizer
    tensors = {"params": model.params, "opt.m": opt.m, "opt.v": opt.v}
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "fastnn_version": __version__, "config": json.dumps(model.get_config()),
            "optimizer_t": str(int(opt.t)), "epochs_done": str(int(model.epochs_done)),
            "fit_seed": "" if model.fit_seed is None else str(int(model.fit_seed)),
            "sha256": _digest(tensors)}
    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta)


def save_model(model, path) -> None:
    from ._atomic import atomic_write_bytes
    atomic_write_bytes(os.fspath(path), to_bytes(model))


def _fail(src, msg):
    raise ModelFileError(f"{src}: {msg}")


def from_bytes(data: bytes, backend="auto", src="<bytes>"):
    """Rebuild a model from ``to_bytes`` output; every field is checked before use."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    from . import optimizers
    from .layers import Dense
    from .model import Sequential

    if len(data) < 8:
        _fail(src, f"truncated: {len(data)} bytes is shorter than the 8-byte header length")
    (n_header,) = struct.unpack("<Q", data[:8])
    if n_header > MAX_HEADER_BYTES:
        _fail(src, f"header claims {n_header} bytes (limit {MAX_HEADER_BYTES}): not a fastnn "
                   "model file, or corrupt")
    if 8 + n_header > len(data):
        _fail(src, f"truncated: header needs {8 + n_header} bytes, file has {len(data)}")
    try:
        tensors = st_load(bytes(data))
        header = json.loads(data[8:8 + n_header])
    except (SafetensorError, ValueError, TypeError, KeyError, OverflowError,
            RecursionError) as exc:
        _fail(src, f"not a valid safetensors file ({type(exc).__name__}: {exc})")
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        _fail(src, "not a fastnn model file (no fastnn metadata)")
    if meta.get("format_version") != str(FORMAT_VERSION):
        _fail(src, f"unknown format version {meta.get('format_version')!r} (this fastnn "
                   f"{__version__} reads version {FORMAT_VERSION})")
    if set(tensors) != set(TENSORS):
        _fail(src, f"expected tensors {sorted(TENSORS)}, found {sorted(tensors)}")
    if meta.get("sha256") != _digest(tensors):
        _fail(src, "checksum mismatch: the weights were changed or corrupted after saving")
    try:
        cfg = json.loads(meta["config"])
        sizes = [int(cfg["input_size"])] + [int(c["units"]) for c in cfg["layers"]]
        n_params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=False))
        if min(sizes) < 1 or n_params != tensors["params"].size:
            # checked before building, so a forged config cannot make us allocate gigabytes
            _fail(src, f"config layer sizes {sizes} need {n_params} parameters, the file "
                       f"holds {tensors['params'].size}")
        layers = [Dense(int(c["units"]), c["activation"], c["init"]) for c in cfg["layers"]]
        model = Sequential(layers, int(cfg["input_size"]), loss=cfg["loss"],
                           optimizer=optimizers.get(cfg["optimizer"]), dtype=cfg["dtype"],
                           backend=backend, seed=cfg.get("seed"))
        t, epochs_done = int(meta["optimizer_t"]), int(meta["epochs_done"])
        fit_seed = int(meta["fit_seed"]) if meta.get("fit_seed") else None
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError,
            RecursionError) as exc:
        _fail(src, f"invalid model config ({type(exc).__name__}: {exc})")
    opt = model.optimizer
    for name, dest in (("params", model.params), ("opt.m", opt.m), ("opt.v", opt.v)):
        arr = tensors[name]
        if arr.dtype != dest.dtype or arr.shape != dest.shape:
            _fail(src, f"tensor {name!r} has {arr.dtype}{list(arr.shape)}, the config needs "
                       f"{dest.dtype}{list(dest.shape)}")
        dest[...] = arr
    if not np.isfinite(model.params).all():
        _fail(src, "weights contain NaN or inf")
    opt.t, model.epochs_done, model.fit_seed = t, epochs_done, fit_seed
    return model


def load(path, backend="auto"):
    """Load a model saved with ``model.save``; it predicts bit-identically and can train on."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return from_bytes(data, backend=backend, src=path)
