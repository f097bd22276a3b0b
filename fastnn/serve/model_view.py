"""What the API and the page show of a model: its description, activations and weights."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .. import activations
from .._version import __version__

DISPLAY_UNITS = 32      # hidden units per layer the page draws (the first ones)
DIGITS = 6              # significant digits of numbers sent back (float32 has about 7)


def describe(model, source: str = "") -> dict:
    """GET /model: architecture, dtype, backend, version."""
    from .inputs import MAX_BATCH, MAX_BODY_BYTES

    return {
        "sizes": [int(s) for s in model.net.sizes],
        "layers": [{"units": lay.units, "activation": lay.activation} for lay in model.layers],
        "input_size": model.input_size,
        "output_size": model.output_size,
        "loss": model.loss,
        "dtype": model.dtype.name,
        "backend": model.backend.name,
        "parameters": int(model.net.n_params),
        "fastnn_version": __version__,
        "source": source,
        "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_batch": MAX_BATCH},
    }


class Forward:
    """Every layer's output for one sample: the reference maths, with each layer's weight
    views and activation looked up once per model instead of once per request.

    The last output is the network output, equal to ``model.predict(x)`` up to rounding.
    """

    def __init__(self, model):
        net = model.net
        self.layers = [(net.weights(k), net.biases(k), int(net.acts[k]))
                       for k in range(net.n_layers)]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        outs, a = [], x
        for w, b, code in self.layers:
            z = a @ w
            z += b
            if code == activations.SIGMOID:
                expit(z, out=z)              # one ufunc call: a third of a request's maths
            else:
                activations.forward(code, z.reshape(1, -1))
            outs.append(z)
            a = z
        return outs


def forward(model, x: np.ndarray) -> list[np.ndarray]:
    return Forward(model)(x)


def rounded(a: np.ndarray) -> list:
    """A float array as a JSON-friendly list with short numbers."""
    return np.round(a.astype(np.float64), DIGITS).tolist()


def page_weights(model) -> dict:
    """The weights the page draws: every layer's block between the units it shows.

    ``layers[l]`` has ``rows`` (inputs shown) x ``cols`` (units shown), row-major, so
    ``w[i * cols + j]`` is the weight from input i to unit j.
    """
    net = model.net
    shown = [int(net.sizes[0])] + [min(int(s), DISPLAY_UNITS) for s in net.sizes[1:-1]] \
        + [int(net.sizes[-1])]
    layers = []
    for layer in range(net.n_layers):
        w = net.weights(layer)[:shown[layer], :shown[layer + 1]]
        layers.append({"rows": shown[layer], "cols": shown[layer + 1],
                       "w": np.round(w.astype(np.float64).ravel(), 4).tolist()})
    return {"shown": shown, "layers": layers}
