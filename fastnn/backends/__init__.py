"""Backend registry: the only place in fastnn that knows backend names.

Every backend module exposes the same functions (see ``REQUIRED``), with the NumPy backend as
the specification. Compiled backends are imported lazily, so ``import fastnn`` compiles nothing
and a missing extension or a broken numba only removes that backend (with one clear warning).
"""

from __future__ import annotations

import importlib
import warnings

NAMES = ("numpy", "numba", "cython")
REQUIRED = ("workspace", "predict", "predict_one", "loss_grad", "train_steps")
# "auto" takes the first of these that loads; see README "Backends" for the measurements.
AUTO_ORDER = ("cython", "numba", "numpy")

_loaded: dict[str, object] = {}
_errors: dict[str, str] = {}
_warned = False


def _load(name):
    if name in _loaded:
        return _loaded[name]
    if name in _errors:
        return None
    try:
        mod = importlib.import_module(f".{name}_backend", __name__)
        missing = [f for f in REQUIRED if not hasattr(mod, f)]
        if missing:
            raise ImportError(f"backend module lacks {missing}")
    except Exception as exc:  # noqa: BLE001 - any failure means "not available", with reason
        _errors[name] = f"{type(exc).__name__}: {exc}"
        return None
    _loaded[name] = mod
    return mod


def get_backend(name="auto"):
    """The backend module for a name: 'auto', 'numpy', 'numba' or 'cython'."""
    global _warned
    if hasattr(name, "train_steps"):
        return name
    if name == "auto":
        for cand in AUTO_ORDER:
            mod = _load(cand)
            if mod is not None:
                if cand != AUTO_ORDER[0] and not _warned:
                    _warned = True
                    skipped = "; ".join(f"{n}: {_errors[n]}" for n in AUTO_ORDER if n in _errors)
                    warnings.warn(f"fastnn: using the {cand!r} backend ({skipped})",
                                  RuntimeWarning, stacklevel=3)
                return mod
    if name not in NAMES:
        raise ValueError(f"backend: expected one of {['auto', *NAMES]}, got {name!r}")
    mod = _load(name)
    if mod is None:
        raise RuntimeError(f"backend {name!r} is not available: {_errors[name]}")
    return mod


def update_fn(backend):
    """``apply_update(net, opt, grad)`` for a backend: one optimiser step on net.params from a
    ready gradient (counts the step). Backends may offer their own (Cython and Numba: one
    native pass); the NumPy backend's (the specification) serves any backend that does not.
    """
    return getattr(backend, "apply_update", None) or _load("numpy").apply_update


def apply_update(backend, net, opt, grad):
    """One optimiser step on net.params from the gradient ``grad`` (see ``update_fn``)."""
    update_fn(backend)(net, opt, grad)


def grad_step_fn(backend):
    """``grad_step(net, x, y, order, start, batch_size, grad, ws, scale, acc_mode)`` for a
    backend: grad = scale * gradient of the summed loss of rows order[start : start+batch_size],
    returning (that loss sum, correct count). Backends may offer their own (every built-in one
    does); for others, their ``loss_grad`` on the gathered rows, with correct count None.
    """
    fn = getattr(backend, "grad_step", None)
    if fn is not None:
        return fn

    def via_loss_grad(net, x, y, order, start, batch_size, grad, ws, scale, acc_mode):
        rows = order[start:start + batch_size]
        loss = backend.loss_grad(net, x[rows], y[rows], grad, ws)
        grad *= net.dtype.type(scale * len(rows))
        return loss * len(rows), None

    return via_loss_grad


def available_backends():
    """Names of the backends that load on this machine."""
    return [n for n in NAMES if _load(n) is not None]


def backend_status():
    """name -> 'ok' or the reason it does not load."""
    return {n: ("ok" if _load(n) is not None else _errors[n]) for n in NAMES}


def abs_peak(x):
    """max |x| of a C-contiguous float32/float64 array in one pass, with no full-size temporary.

    NaN or inf exactly when some value is. Native (~memory speed) when the Cython extension
    loads, whichever backend a model uses; otherwise NumPy in small chunks.
    """
    mod = _load("cython") or _load("numpy")
    return mod.abs_peak(x)
