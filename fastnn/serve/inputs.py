"""Request bodies -> checked float arrays, or an ApiError naming what is wrong.

Nothing here knows about HTTP frameworks, so the checks are easy to test on their own.
"""

from __future__ import annotations

import json
import math

import numpy as np

MAX_BODY_BYTES = 1 << 20     # 1 MB, for any request body
MAX_BATCH = 256              # samples in one {"inputs": [...]} request
IMAGE_FIELD = "image"


class ApiError(Exception):
    """A bad request: ``status`` is the HTTP status, the message goes back as {"error": ...}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json(body: bytes):
    if not body:
        raise ApiError(400, "empty body: send a JSON object such as {\"pixels\": [...]}")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed JSON: the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column "
                            f"{exc.colno}") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:        # e.g. an integer with more than 4300 digits
        raise ApiError(400, f"malformed JSON: {exc}") from None


def _describe(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_bad(name, row, dtype):
    """The precise complaint about the first element of ``row`` that is not a finite number
    of ``dtype``."""
    big = float(np.finfo(dtype).max)
    for i, v in enumerate(row):
        if type(v) not in (int, float):
            return ApiError(422, f"{name}[{i}] is not a number: {_describe(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            return ApiError(422, f"{name}[{i}] is {'NaN' if v != v else 'infinite'}; "
                                 "every value must be a finite number")
        if abs(v) > big:
            return ApiError(422, f"{name}[{i}] = {_describe(v)} is too large for the model's "
                                 f"{np.dtype(dtype).name}")
    return ApiError(422, f"{name} holds a value that is not a finite number")


def as_row(name: str, row, n_inputs: int, unit_range: bool, dtype=np.float32,
           strict: bool = True) -> np.ndarray:
    """One sample: a list of ``n_inputs`` finite numbers (in 0..1 if ``unit_range``) as a
    ``dtype`` array. ``strict=False`` skips the per-value type check that only booleans need
    (strings, nulls, lists and huge integers already give NumPy a non-numeric dtype)."""
    if not isinstance(row, list):
        raise ApiError(422, f"{name} must be a list of {n_inputs} numbers, got "
                            f"{type(row).__name__ if not isinstance(row, dict) else 'an object'}")
    if len(row) != n_inputs:
        raise ApiError(422, f"{name} must have {n_inputs} numbers, got {len(row)}")
    if strict and not set(map(type, row)) <= {int, float}:
        raise _first_bad(name, row, dtype)
    try:
        arr = np.array(row)
    except (ValueError, OverflowError):      # ragged nesting
        raise _first_bad(name, row, dtype) from None
    if arr.dtype.kind == "O" and set(map(type, row)) <= {int, float}:   # ints beyond int64
        try:
            arr = np.array(row, dtype=np.float64)
        except OverflowError:
            raise _first_bad(name, row, dtype) from None
    if arr.dtype.kind not in "fi" or arr.ndim != 1:
        raise _first_bad(name, row, dtype)
    with np.errstate(over="ignore"):
        arr = arr.astype(dtype, copy=False)
    if not np.isfinite(arr).all():
        raise _first_bad(name, row, dtype)
    if unit_range and (arr.min() < 0.0 or arr.max() > 1.0):
        i = int(np.flatnonzero((arr < 0.0) | (arr > 1.0))[0])
        raise ApiError(422, f"{name}[{i}] = {_describe(row[i])} is outside 0..1 (pixels are "
                            "0 for background and 1 for full ink: divide 0..255 values by 255)")
    return arr


def parse_predict(doc, n_inputs: int, unit_range: bool, dtype=np.float32, strict=True):
    """('one', (n_inputs,) array) for {"pixels": [...]}, ('batch', (n, n_inputs)) for
    {"inputs": [[...], ...]}."""
    if not isinstance(doc, dict) or ("pixels" in doc) == ("inputs" in doc):
        raise ApiError(422, "expected a JSON object with either \"pixels\" (one sample of "
                            f"{n_inputs} numbers) or \"inputs\" (a list of such samples)")
    if "pixels" in doc:
        return "one", as_row("pixels", doc["pixels"], n_inputs, unit_range, dtype, strict)
    rows = doc["inputs"]
    if not isinstance(rows, list) or not rows:
        raise ApiError(422, "inputs must be a non-empty list of samples")
    if len(rows) > MAX_BATCH:
        raise ApiError(413, f"inputs has {len(rows)} samples, more than the limit of "
                            f"{MAX_BATCH} per request: split the batch")
    return "batch", np.stack([as_row(f"inputs[{k}]", r, n_inputs, unit_range, dtype, strict)
                              for k, r in enumerate(rows)])


def check_content_type(content_type: str) -> str:
    """'json' or 'multipart', else a 415 naming what is accepted."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        return "json"
    if kind == "multipart/form-data":
        return "multipart"
    got = f"unsupported content type '{kind}'" if kind else "no Content-Type header"
    raise ApiError(415, f"{got}: send application/json, or multipart/form-data with a PNG in "
                        f"the field '{IMAGE_FIELD}'")
