"""The NumPy baseline, PyTorch (eager) and JAX (jit) versions of a fastnn network, compared
like for like.

A peer is built from ``spec_of(model)`` (plain data: sizes, activations, loss, optimiser) and
the fastnn model's initial weights, so it starts from exactly the same numbers. Both follow
fastnn's (= PyTorch's) conventions:

- layer l: a = f(a_prev @ W + b) with W of shape (n_in, n_out) (torch.nn.Linear stores W.T)
- cross_entropy: softmax outputs, loss = mean over the batch of -sum_j y_j log p_j
  (torch.nn.functional.cross_entropy on logits)
- mse: loss = mean over the batch of 0.5 * sum_j (a_j - y_j)^2 (NOT torch's MSELoss, which
  averages over outputs too)
- SGD, SGD with (Nesterov) momentum and Adam exactly as torch.optim (v = mu v + g; Adam
  bias-corrected); weight decay (L2) on weights only, as fastnn does it
- the minibatch order is given explicitly (fastnn's epoch order), float32 throughout.

Thread counts must be fixed before the peer library is imported: ``configure_threads``.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from ..datasets import one_hot

# The NumPy baseline is always measured; the others when installed (fastnn[peers]).
BASELINE = "numpy-mlp"
PEERS = (BASELINE, "torch", "jax")
LABELS = {BASELINE: "NumPy MLP", "torch": "PyTorch eager", "jax": "JAX jit"}


def installed(name):
    return name == BASELINE or importlib.util.find_spec(name) is not None


def version(name):
    if name == BASELINE:
        return f"numpy {np.__version__}"
    try:
        if name == "jax":
            import jax
            import jaxlib
            return f"jax {jax.__version__}, jaxlib {jaxlib.__version__}"
        import torch
        return f"torch {torch.__version__}"
    except Exception as exc:  # noqa: BLE001
        return f"unavailable ({exc})"


def spec_of(model):
    """Plain-data description of a fastnn Sequential (no fastnn objects)."""
    opt = model.optimizer
    return {
        "sizes": [int(s) for s in model.net.sizes],
        "acts": [lay.activation for lay in model.layers],
        "loss": model.loss,
        "opt": {"name": opt.name, "lr": float(opt.lr), "momentum": float(opt.momentum),
                "nesterov": bool(getattr(opt, "nesterov", False)),
                "beta1": float(opt.beta1), "beta2": float(opt.beta2), "eps": float(opt.eps),
                "weight_decay": float(opt.weight_decay)},
    }


def weights_of(model):
    """[(W (n_in, n_out), b (n_out)), ...] copies of the fastnn model's parameters."""
    return [(model.net.weights(l).copy(), model.net.biases(l).copy())
            for l in range(model.net.n_layers)]


def configure_threads(name, n):
    """Fix the peer's thread count; call before importing it (XLA reads flags at import)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if name == "jax":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        flags = os.environ.get("XLA_FLAGS", "")
        if n == 1:   # otherwise XLA sizes its pool by the CPUs it may use: see _pin
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = flags.strip()
    _pin(n)


def _pin(n):
    """Restrict this process to n CPUs, so no library can use more threads than that."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if n < len(cpus):
            os.sched_setaffinity(0, cpus[:n])
    except (AttributeError, OSError):
        pass


def make(name, spec, weights, threads):
    if name == BASELINE:
        from .numpy_mlp import NumpyMLP
        return NumpyMLP(spec, weights, threads)
    if name == "torch":
        return TorchPeer(spec, weights, threads)
    if name == "jax":
        return JaxPeer(spec, weights)
    raise ValueError(f"peer: expected one of {PEERS}, got {name!r}")


class TorchPeer:
    """torch.nn.Sequential of Linear layers + torch.optim, one Python step per minibatch."""

    label = LABELS["torch"]

    def __init__(self, spec, weights, threads):
        import torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass
        self.torch = torch
        self.loss_name = spec["loss"]
        mods, decayed, plain = [], [], []
        n_layers = len(weights)
        for l, (w, b) in enumerate(weights):
            lin = torch.nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                lin.bias.copy_(torch.from_numpy(b))
            mods.append(lin)
            decayed.append(lin.weight)
            plain.append(lin.bias)
            act = spec["acts"][l]
            if l < n_layers - 1 or act != "softmax":   # softmax is fused into the loss
                mods.extend(_torch_act(torch, act))
        self.net = torch.nn.Sequential(*mods)
        o = spec["opt"]
        groups = [{"params": decayed, "weight_decay": o["weight_decay"]},
                  {"params": plain, "weight_decay": 0.0}]
        if o["name"] == "adam":
            self.opt = torch.optim.Adam(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]),
                                        eps=o["eps"])
        else:
            self.opt = torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"],
                                       nesterov=o["nesterov"])
        self.softmax_out = spec["acts"][-1] == "softmax"
        self.n_out = spec["sizes"][-1]

    def prepare(self, x, y):
        """Tensors made once, outside any timing: x float32, targets ids or one-hot."""
        t = self.torch
        xt = t.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.loss_name == "cross_entropy":
            yt = t.from_numpy(np.asarray(y, dtype=np.int64))
        else:
            yt = t.from_numpy(one_hot(y, self.n_out))
        return xt, yt

    def order(self, order, batch):
        return self.torch.from_numpy(np.asarray(order, dtype=np.int64)), batch

    def train(self, data, order):
        """One pass: minibatches order[i*bs:(i+1)*bs] of the prepared data."""
        t = self.torch
        xt, yt = data
        idx, bs = order
        F = t.nn.functional
        net, opt, ce = self.net, self.opt, self.loss_name == "cross_entropy"
        for lo in range(0, len(idx), bs):
            sel = idx[lo:lo + bs]
            out = net(xt[sel])
            yb = yt[sel]
            if ce:
                loss = F.cross_entropy(out, yb)
            else:
                loss = 0.5 * ((out - yb) ** 2).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def predict(self, x):
        t = self.torch
        with t.no_grad():
            out = self.net(t.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            if self.softmax_out:
                out = t.softmax(out, dim=1)
        return out.numpy()


def _torch_act(torch, name):
    return {"identity": [], "sigmoid": [torch.nn.Sigmoid()], "relu": [torch.nn.ReLU()],
            "tanh": [torch.nn.Tanh()], "leaky_relu": [torch.nn.LeakyReLU(0.01)]}[name]


class JaxPeer:
    """A jitted epoch: ``lax.scan`` over the minibatches, the update in PyTorch's conventions.

    One compiled call per pass (like fastnn's fused train_steps), so per-step Python dispatch
    is not what is measured. Arguments are donated so the update happens in place.
    """

    label = LABELS["jax"]

    def __init__(self, spec, weights):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.spec = spec
        self.params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]
        o = spec["opt"]
        zeros = [(jnp.zeros_like(w), jnp.zeros_like(b)) for w, b in self.params]
        if o["name"] == "adam":
            self.state = (jnp.zeros((), jnp.float32), zeros,
                          [(jnp.zeros_like(w), jnp.zeros_like(b)) for w, b in self.params])
        else:
            self.state = (jnp.zeros((), jnp.float32), zeros, ())
        self._epoch = jax.jit(self._make_epoch(), donate_argnums=(0, 1))
        self._forward = jax.jit(self._predict)

    # -- maths -------------------------------------------------------------------------------
    def _act(self, name, z):
        jnp, nn = self.jnp, self.jax.nn
        if name == "sigmoid":
            return nn.sigmoid(z)
        if name == "relu":
            return jnp.maximum(z, 0)
        if name == "tanh":
            return jnp.tanh(z)
        if name == "leaky_relu":
            return jnp.where(z > 0, z, 0.01 * z)
        return z

    def _logits(self, params, x):
        acts = self.spec["acts"]
        a = x
        for l, (w, b) in enumerate(params):
            z = a @ w + b
            a = self._act(acts[l], z) if l < len(params) - 1 else z
        return a

    def _predict(self, params, x):
        z = self._logits(params, x)
        last = self.spec["acts"][-1]
        return self.jax.nn.softmax(z, axis=1) if last == "softmax" else self._act(last, z)

    def _loss(self, params, xb, yb):
        jnp = self.jnp
        z = self._logits(params, xb)
        if self.spec["loss"] == "cross_entropy":
            return -jnp.mean(jnp.sum(yb * self.jax.nn.log_softmax(z, axis=1), axis=1))
        a = self._act(self.spec["acts"][-1], z)
        return 0.5 * jnp.mean(jnp.sum((a - yb) ** 2, axis=1))

    def _update(self, params, state, grads):
        jnp = self.jnp
        o = self.spec["opt"]
        lr, wd = jnp.float32(o["lr"]), jnp.float32(o["weight_decay"])
        t, m, v = state
        t = t + 1
        if o["weight_decay"]:
            grads = [(gw + wd * w, gb) for (w, _), (gw, gb) in zip(params, grads, strict=True)]
        if o["name"] == "adam":
            b1, b2, eps = jnp.float32(o["beta1"]), jnp.float32(o["beta2"]), jnp.float32(o["eps"])
            step = lr / (1 - b1 ** t)
            bc2 = jnp.sqrt(1 - b2 ** t)
            m = [tuple(b1 * mi + (1 - b1) * gi for mi, gi in zip(mm, gg, strict=True))
                 for mm, gg in zip(m, grads, strict=True)]
            v = [tuple(b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(vv, gg, strict=True))
                 for vv, gg in zip(v, grads, strict=True)]
            params = [tuple(p - step * mi / (jnp.sqrt(vi) / bc2 + eps)
                            for p, mi, vi in zip(pp, mm, vv, strict=True))
                      for pp, mm, vv in zip(params, m, v, strict=True)]
            return params, (t, m, v)
        mu = jnp.float32(o["momentum"])
        if o["momentum"]:
            m = [tuple(mu * mi + gi for mi, gi in zip(mm, gg, strict=True))
                 for mm, gg in zip(m, grads, strict=True)]
            if o["nesterov"]:
                upd = [tuple(gi + mu * mi for gi, mi in zip(gg, mm, strict=True))
                       for gg, mm in zip(grads, m, strict=True)]
            else:
                upd = m
        else:
            upd = grads
        params = [tuple(p - lr * u for p, u in zip(pp, uu, strict=True))
                  for pp, uu in zip(params, upd, strict=True)]
        return params, (t, m, v)

    def _make_epoch(self):
        jax = self.jax
        grad = jax.grad(self._loss)

        def epoch(params, state, x, y, idx):
            def body(carry, sel):
                p, s = carry
                g = grad(p, x[sel], y[sel])
                return self._update(p, s, g), None
            (params, state), _ = jax.lax.scan(body, (params, state), idx)
            return params, state
        return epoch

    # -- API -------------------------------------------------------------------------------
    def prepare(self, x, y):
        jnp = self.jnp
        return (jnp.asarray(np.ascontiguousarray(x, dtype=np.float32)),
                jnp.asarray(one_hot(y, self.spec["sizes"][-1])))

    def order(self, order, batch):
        n = len(order) // batch * batch
        if n != len(order):
            raise ValueError("JAX peer: the slice must be a whole number of batches")
        return self.jnp.asarray(np.asarray(order[:n], dtype=np.int32).reshape(-1, batch))

    def train(self, data, order):
        x, y = data
        self.params, self.state = self._epoch(self.params, self.state, x, y, order)
        self.jax.block_until_ready(self.params)

    def predict(self, x):
        out = self._forward(self.params, self.jnp.asarray(np.asarray(x, dtype=np.float32)))
        return np.asarray(out)
