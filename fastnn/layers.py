"""Dense layer description; its weights and biases are views into the model's flat buffer."""

from __future__ import annotations

from . import activations as act
from . import init as initializers


class Dense:
    """A fully connected layer: a = f(a_prev @ W + b), W of shape (n_in, units).

    ``init`` defaults to He for relu/leaky_relu and Glorot/Xavier otherwise.
    """

    def __init__(self, units: int, activation: str = "identity", init: str | None = None):
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"Dense units: expected an integer >= 1, got {units!r}")
        self.units = units
        self.activation = activation
        code = act.code_of(activation)
        self.init = initializers.check_name(init) if init is not None \
            else initializers.default_for(code)
        self._net = None
        self._index = None

    def _bind(self, net, index):
        self._net, self._index = net, index

    @property
    def weights(self):
        """(n_in, units) NumPy view into the model's flat parameter buffer."""
        return self._net.weights(self._index)

    @property
    def biases(self):
        return self._net.biases(self._index)

    @property
    def input_size(self):
        return int(self._net.sizes[self._index])

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "init": self.init}

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation!r}, init={self.init!r})"
