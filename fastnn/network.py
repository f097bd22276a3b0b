"""The network's shape and its ONE flat parameter buffer.

Layout of ``params`` (and of gradients and optimiser state): for each layer l in order,
W_l as a row-major (n_in, n_out) block, then b_l (n_out). Layer l maps a batch ``a`` of shape
(B, n_in) to f(a @ W_l + b_l). Kernels receive the layout as three small integer arrays.
"""

from __future__ import annotations

import numpy as np

from . import activations as act
from . import init as initializers
from . import losses
from ._memory import aligned_zeros
from .codes import SOFTMAX

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return dt


class Network:
    """Layer sizes, activation codes, loss code, dtype and the flat parameter buffer."""

    def __init__(self, sizes, activations, loss, dtype="float32"):
        self.sizes = np.array([int(s) for s in sizes], dtype=np.int64)
        self.acts = np.array([act.code_of(a) if isinstance(a, str) else int(a)
                              for a in activations], dtype=np.int64)
        if len(self.acts) != len(self.sizes) - 1:
            raise ValueError("need one activation per layer")
        self.loss = losses.code_of(loss) if isinstance(loss, str) else int(loss)
        losses.check_pairing(self.loss, int(self.acts[-1]))
        if SOFTMAX in self.acts[:-1]:
            raise ValueError("softmax is only supported on the output layer")
        self.dtype = check_dtype(dtype)
        fan_in, fan_out = self.sizes[:-1], self.sizes[1:]
        block = fan_in * fan_out + fan_out
        self.offsets = np.concatenate([[0], np.cumsum(block)[:-1]]).astype(np.int64)
        self.n_params = int(block.sum())
        self.params = aligned_zeros(self.n_params, self.dtype)

    @property
    def n_layers(self) -> int:
        return len(self.acts)

    def weights(self, layer: int, buf: np.ndarray | None = None) -> np.ndarray:
        """(n_in, n_out) view of layer's weights in ``buf`` (default: the parameters)."""
        buf = self.params if buf is None else buf
        n_in, n_out = int(self.sizes[layer]), int(self.sizes[layer + 1])
        o = int(self.offsets[layer])
        return buf[o:o + n_in * n_out].reshape(n_in, n_out)

    def biases(self, layer: int, buf: np.ndarray | None = None) -> np.ndarray:
        buf = self.params if buf is None else buf
        n_in, n_out = int(self.sizes[layer]), int(self.sizes[layer + 1])
        o = int(self.offsets[layer]) + n_in * n_out
        return buf[o:o + n_out]

    def weight_slices(self):
        """Slices of the flat buffer that hold weights (weight decay touches only these)."""
        return [slice(int(o), int(o) + int(i) * int(j))
                for o, i, j in zip(self.offsets, self.sizes[:-1], self.sizes[1:], strict=True)]

    def initialize(self, inits, seed) -> None:
        """Fill weights with each layer's initialiser (seeded), biases with zeros."""
        rng = np.random.default_rng(seed)
        for layer, name in enumerate(inits):
            n_in, n_out = int(self.sizes[layer]), int(self.sizes[layer + 1])
            w = initializers.INITIALIZERS[name](rng, n_in, n_out)
            self.weights(layer)[...] = w
            self.biases(layer)[...] = 0.0
