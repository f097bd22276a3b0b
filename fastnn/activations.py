"""Activation functions: names and the NumPy reference maths (codes: fastnn.codes).

Derivatives are written in terms of the layer's *output* ``a`` (as in scikit-learn's MLP), so the
backward pass needs only the cached activations, never the pre-activations.
"""

from __future__ import annotations

import numpy as np

from .codes import ACTIVATIONS as CODES
from .codes import IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SOFTMAX, TANH, names_of

NAMES = names_of(CODES)


def code_of(name: str) -> int:
    """Code for an activation name; unknown names get an error listing the valid ones."""
    if not isinstance(name, str) or name not in CODES:
        raise ValueError(f"activation: expected one of {sorted(CODES)}, got {name!r}")
    return CODES[name]


def forward(code: int, z: np.ndarray) -> None:
    """Apply the activation to ``z`` in place (rows are samples)."""
    if code == IDENTITY:
        return
    if code == SIGMOID:
        # 1/(1+exp(-z)) overflows exp for z << 0; that gives inf -> 0.0, which is the right limit.
        with np.errstate(over="ignore"):
            np.negative(z, out=z)
            np.exp(z, out=z)
            z += 1.0
            np.reciprocal(z, out=z)
    elif code == RELU:
        np.maximum(z, 0.0, out=z)
    elif code == TANH:
        np.tanh(z, out=z)
    elif code == LEAKY_RELU:
        z[z < 0] *= LEAKY_SLOPE
    elif code == SOFTMAX:
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown activation code {code}")


def backward(code: int, a: np.ndarray, delta: np.ndarray) -> None:
    """Multiply ``delta`` (dL/da) in place by da/dz, written in terms of the output ``a``."""
    if code == IDENTITY:
        return
    if code == SIGMOID:
        delta *= a * (1.0 - a)
    elif code == RELU:
        delta[a <= 0] = 0.0
    elif code == TANH:
        delta *= 1.0 - a * a
    elif code == LEAKY_RELU:
        delta[a <= 0] *= LEAKY_SLOPE
    else:
        # Softmax is only allowed as the output of cross-entropy, whose fused delta is p - y.
        raise ValueError(f"activation {NAMES.get(code, code)!r} has no standalone derivative")
