"""The reference networks by name (as in docs/DESIGN): layers, loss, optimiser and batch size."""

from __future__ import annotations

from . import optimizers
from .layers import Dense

PRESETS = {
    "digits-16": dict(hidden=[16, 16], activation="sigmoid", output="softmax",
                      loss="cross_entropy", optimizer=("sgd", 0.1), batch_size=10, epochs=3),
    "nielsen-30": dict(hidden=[30], activation="sigmoid", output="sigmoid", loss="mse",
                       optimizer=("sgd", 3.0), batch_size=10, epochs=30),
    "mlp-128": dict(hidden=[128, 64], activation="relu", output="softmax", loss="cross_entropy",
                    optimizer=("adam", 1e-3), batch_size=64, epochs=10),
    "wide-512": dict(hidden=[512, 512], activation="relu", output="softmax",
                     loss="cross_entropy", optimizer=("momentum", 0.05), batch_size=256,
                     epochs=10),
}


def build(name, input_size=784, n_classes=10, **overrides):
    """A Sequential for a preset name; keyword overrides go to Sequential (dtype, backend...)."""
    from .model import Sequential

    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    p = PRESETS[name]
    layers = [Dense(h, p["activation"]) for h in p["hidden"]] + [Dense(n_classes, p["output"])]
    opt = optimizers.make(*p["optimizer"])
    return Sequential(layers, input_size=input_size, loss=p["loss"],
                      optimizer=overrides.pop("optimizer", opt), **overrides)
