"""How far float32 training drifts from float64: mlp-128, 50 unshuffled MNIST steps.

    python -m benchmarks.float32_drift [--optimizer adam|momentum|nesterov]

Same initial weights for every run; drift = max |p32 - p64| / max |p64| after the steps, for each
fastnn backend and, if installed, PyTorch (torch.optim on the same batches).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

STEPS, BATCH = 50, 64
LR = {"adam": 1e-3, "momentum": 0.05, "nesterov": 0.05}


def drift(p32, p64):
    return float(np.abs(p32 - p64).max() / np.abs(p64).max())


def fastnn_run(opt, dtype, backend, x, y, p0):
    import fastnn.presets
    from fastnn.optimizers import make

    m = fastnn.presets.build("mlp-128", dtype=dtype, backend=backend, optimizer=make(opt, LR[opt]))
    m.params[...] = p0
    m.fit(x.astype(dtype), y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    return m.params.astype(np.float64)


def torch_run(opt, dtype, net, x, y, p0):
    import torch

    W = [torch.tensor(net.weights(i, p0), dtype=dtype, requires_grad=True) for i in range(3)]
    b = [torch.tensor(net.biases(i, p0), dtype=dtype, requires_grad=True) for i in range(3)]
    if opt == "adam":
        o = torch.optim.Adam(W + b, lr=LR[opt])
    else:
        o = torch.optim.SGD(W + b, lr=LR[opt], momentum=0.9, nesterov=opt == "nesterov")
    X, Y = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=torch.long)
    for s in range(STEPS):
        h = X[s * BATCH:(s + 1) * BATCH]
        for i in range(3):
            h = h @ W[i] + b[i]
            h = torch.relu(h) if i < 2 else h
        loss = torch.nn.functional.cross_entropy(h, Y[s * BATCH:(s + 1) * BATCH])
        o.zero_grad()
        loss.backward()
        o.step()
    flat = np.empty(net.n_params)
    for i in range(3):
        net.weights(i, flat)[...] = W[i].detach().double().numpy()
        net.biases(i, flat)[...] = b[i].detach().double().numpy()
    return flat


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--optimizer", default="adam", choices=sorted(LR))
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import fastnn.presets
    from fastnn.datasets import load_mnist

    (x, y), _ = load_mnist(verbose=False)
    x = x[:STEPS * BATCH].reshape(STEPS * BATCH, -1).astype(np.float64)
    y = y[:STEPS * BATCH]
    ref = fastnn.presets.build("mlp-128", dtype="float64", backend="numpy", seed=0)
    p0 = ref.params.copy()
    for be in fastnn.available_backends():
        p64 = fastnn_run(a.optimizer, "float64", be, x, y, p0)
        p32 = fastnn_run(a.optimizer, "float32", be, x, y, p0)
        print(f"{a.optimizer} {be:7s} float32 drift {drift(p32, p64):.3g}")
    try:
        import torch
    except ImportError:
        return
    t64 = torch_run(a.optimizer, torch.float64, ref.net, x, y, p0)
    t32 = torch_run(a.optimizer, torch.float32, ref.net, x, y, p0)
    print(f"{a.optimizer} torch   float32 drift {drift(t32, t64):.3g} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
