"""The NumPy baseline: an MLP trained the way a NumPy user writes it.

This is what "vs NumPy" means in ``fastnn bench`` and BENCHMARKS.md: Nielsen-style minibatch
training with ``@``, float32 throughout, no per-step bookkeeping beyond what the loss needs
(no loss or accuracy sums, no checks), BLAS at the benchmark's thread count. It is written
independently of fastnn's NumPy reference backend (which does the reference's bookkeeping and
is about half as fast) and follows the same conventions as the other peers (see peers.py), so
its predictions are checked against fastnn's like theirs.
"""

from __future__ import annotations

import numpy as np

from ..activations import LEAKY_SLOPE
from ..datasets import one_hot


def _forward_act(name, z):
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "leaky_relu":
        return np.where(z > 0, z, z * LEAKY_SLOPE)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def _derivative(name, a):
    """f'(z) written in terms of a = f(z)."""
    if name == "sigmoid":
        return a * (1 - a)
    if name == "relu":
        return a > 0
    if name == "tanh":
        return 1 - a * a
    if name == "leaky_relu":
        return np.where(a > 0, 1, LEAKY_SLOPE).astype(a.dtype)
    return 1


class NumpyMLP:
    """Weights as a list of (W, b) float32 arrays; one Python step per minibatch."""

    label = "NumPy MLP"

    def __init__(self, spec, weights, threads):
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(threads)   # held for the life of the object
        self.spec, self.acts = spec, spec["acts"]
        self.W = [np.array(w, dtype=np.float32) for w, _ in weights]
        self.b = [np.array(b, dtype=np.float32) for _, b in weights]
        o = spec["opt"]
        self.opt, self.t = o, 0
        self.m = [np.zeros_like(p) for p in self.W + self.b]
        self.v = [np.zeros_like(p) for p in self.W + self.b]

    def prepare(self, x, y):
        return (np.ascontiguousarray(x, dtype=np.float32),
                one_hot(np.asarray(y), self.spec["sizes"][-1]))

    def order(self, order, batch):
        return np.asarray(order), batch

    def train(self, data, order):
        x, y = data
        idx, bs = order
        for lo in range(0, len(idx), bs):
            sel = idx[lo:lo + bs]
            self.step(x[sel], y[sel])

    def step(self, xb, yb):
        acts = [xb]
        for W, b, f in zip(self.W, self.b, self.acts, strict=True):
            acts.append(_forward_act(f, acts[-1] @ W + b))
        out = acts[-1]
        if self.spec["loss"] == "cross_entropy":    # softmax + cross-entropy: dL/dz = p - y
            delta = (out - yb) / len(xb)
        else:                                       # 1/2 |a - y|^2 averaged over the batch
            delta = (out - yb) * _derivative(self.acts[-1], out) / len(xb)
        grads_w, grads_b = [None] * len(self.W), [None] * len(self.W)
        for l in range(len(self.W) - 1, -1, -1):
            grads_w[l] = acts[l].T @ delta
            grads_b[l] = delta.sum(axis=0)
            if l:
                delta = (delta @ self.W[l].T) * _derivative(self.acts[l - 1], acts[l])
        self.update(grads_w, grads_b)

    def update(self, grads_w, grads_b):
        o = self.opt
        if o["weight_decay"]:
            grads_w = [g + o["weight_decay"] * w for g, w in zip(grads_w, self.W, strict=True)]
        params, grads = self.W + self.b, grads_w + grads_b
        self.t += 1
        lr = o["lr"]
        if o["name"] == "adam":
            b1, b2 = o["beta1"], o["beta2"]
            step = lr / (1 - b1 ** self.t)
            bc2 = np.sqrt(1 - b2 ** self.t)
            for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= step * m / (np.sqrt(v) / bc2 + o["eps"])
        elif o["momentum"]:
            mu = o["momentum"]
            for p, g, v in zip(params, grads, self.m, strict=True):
                v *= mu
                v += g
                p -= lr * (g + mu * v) if o["nesterov"] else lr * v
        else:
            for p, g in zip(params, grads, strict=True):
                p -= lr * g

    def predict(self, x):
        a = np.asarray(x, dtype=np.float32)
        for W, b, f in zip(self.W, self.b, self.acts, strict=True):
            a = _forward_act(f, a @ W + b)
        return a
