"""Sequential: the thin Model API. Validates and converts once, then calls the backend.

The model never branches on which backend it holds: every backend module offers the same
functions (fastnn/backends/__init__.py), with the NumPy backend as the specification.
"""

from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np

from . import _validate as V
from . import losses, optimizers
from .backends import get_backend
from .callbacks import Callback
from .codes import ACC_NONE
from .layers import Dense
from .network import Network
from .targets import Targets, prepare_targets

# DivergenceError, SAMPLES_PER_CALL and _defer_sigint are only re-exported here:
# fastnn/__init__.py, sklearn.py and distributed.py import them from fastnn.model.
from .training import (  # noqa: F401
    SAMPLES_PER_CALL,
    DivergenceError,
    History,
    InputWatch,
    _defer_sigint,
    _format_logs,
    epoch_order,
    run_epoch,
)

Evaluation = namedtuple("Evaluation", "loss accuracy")
_FitArgs = namedtuple("_FitArgs", "xs ts xv tv epochs initial_epoch batch_size requested "
                      "callbacks seed deferred")
PREDICT_CHUNK = 1024      # rows per predict workspace


class Sequential:
    """A stack of Dense layers trained with one loss and one optimiser.

    >>> model = Sequential([Dense(16, "sigmoid"), Dense(16, "sigmoid"), Dense(10, "softmax")],
    ...                    input_size=784, optimizer=SGD(0.1), seed=0)
    """

    def __init__(self, layers, input_size, loss=None, optimizer="sgd", dtype="float32",
                 backend="auto", seed=None):
        layers = list(layers)
        if not layers or not all(isinstance(lay, Dense) for lay in layers):
            raise TypeError("layers: expected a non-empty list of fastnn.Dense")
        V.check_int("input_size", input_size, 1)
        if loss is None:
            loss = "cross_entropy" if layers[-1].activation == "softmax" else "mse"
        self.layers = layers
        self.net = Network([input_size] + [lay.units for lay in layers],
                           [lay.activation for lay in layers], loss, dtype)
        for i, lay in enumerate(layers):
            lay._bind(self.net, i)
        self._n_in, self._n_out = int(input_size), layers[-1].units
        self._dtype = self.net.dtype
        self.seed = seed
        self._seeds = np.random.SeedSequence(seed)
        self.net.initialize([lay.init for lay in layers],
                            self._seeds.spawn(1)[0] if seed is None else seed)
        self.optimizer = optimizers.get(optimizer)
        self.optimizer.bind(self.net.n_params, self.net.dtype)
        self.backend = backend
        self.history = None
        self.stop_training = False
        self.epochs_done = 0
        self.fit_seed = None      # the shuffle seed of the last fit (saved, for resuming)

    # ---- configuration ----------------------------------------------------------------
    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, name):
        self._backend = get_backend(name)
        self._train_ws = None
        self._local = threading.local()

    @property
    def dtype(self):
        return self.net.dtype

    @property
    def loss(self):
        return losses.NAMES[self.net.loss]

    @property
    def input_size(self):
        return int(self.net.sizes[0])

    @property
    def output_size(self):
        return int(self.net.sizes[-1])

    @property
    def params(self):
        """The flat parameter buffer (every layer's weights and biases are views of it)."""
        return self.net.params

    def compile(self, loss=None, optimizer=None):
        """Change the loss and/or optimiser (optimiser state starts fresh)."""
        if loss is not None:
            code = losses.code_of(loss)
            losses.check_pairing(code, int(self.net.acts[-1]))
            self.net.loss = code
        if optimizer is not None:
            self.optimizer = optimizers.get(optimizer)
            self.optimizer.bind(self.net.n_params, self.net.dtype)
        return self

    def get_state(self):
        """A copy of everything training changes: parameters and optimiser state."""
        opt = self.optimizer
        return {"params": self.params.copy(), "m": opt.m.copy(), "v": opt.v.copy(), "t": opt.t}

    def set_state(self, state):
        self.params[...] = state["params"]
        self.optimizer.m[...] = state["m"]
        self.optimizer.v[...] = state["v"]
        self.optimizer.t = state["t"]

    def summary(self) -> str:
        lines = [f"Sequential  input {self.input_size}  dtype {self.dtype.name}  "
                 f"backend {self.backend.name}  loss {self.loss}  optimizer {self.optimizer!r}"]
        for i, lay in enumerate(self.layers):
            n = lay.input_size * lay.units + lay.units
            lines.append(f"  {i}: Dense {lay.input_size:>5} -> {lay.units:<5} "
                         f"{lay.activation:<10} init {lay.init:<15} params {n}")
        lines.append(f"  total parameters: {self.net.n_params}")
        return "\n".join(lines)

    def __repr__(self):
        sizes = "-".join(str(int(s)) for s in self.net.sizes)
        return f"<fastnn.Sequential {sizes} {self.dtype.name} backend={self.backend.name}>"

    # ---- data preparation ---------------------------------------------------------------
    def _inputs(self, name, x):
        arr, peak = V.inputs_and_peak(name, x, self.input_size, self.dtype)
        V.warn_unscaled(name, peak, stacklevel=3)
        return arr

    def _targets(self, name, y, n):
        """Dense targets (n, n_out) of the model dtype, and how to count correct answers."""
        return prepare_targets(name, y, n, self.output_size, self.net.loss, self.dtype)

    def _train_workspace(self, batch_size):
        ws = self._train_ws
        if ws is None or ws.batch_size != batch_size:
            ws = self._train_ws = self.backend.workspace(self.net, batch_size)
        return ws

    def _predict_workspace(self):
        ws = getattr(self._local, "ws", None)
        if ws is None:  # one per thread, so concurrent predicts never share scratch memory
            ws = self._local.ws = self.backend.workspace(self.net, PREDICT_CHUNK)
        return ws

    # ---- inference ----------------------------------------------------------------------
    def _outputs(self, x):
        out = np.empty((len(x), self.output_size), dtype=self.dtype)
        self.backend.predict(self.net, x, out, self._predict_workspace())
        return out

    def predict(self, x):
        """Network outputs (probabilities for softmax/sigmoid outputs), one row per sample.

        A 1-D input of ``input_size`` values is one sample and gives a 1-D output.
        """
        # Fast path for embedding: one C-contiguous sample of the model dtype goes straight to
        # the kernel, which checks it for NaN/inf itself (~1 us saved per call).
        if type(x) is np.ndarray and x.ndim == 1 and x.dtype is self._dtype \
                and x.shape[0] == self._n_in and x.flags.c_contiguous:
            ws = getattr(self._local, "ws", None) or self._predict_workspace()
            out = np.empty(self._n_out, self._dtype)
            if self._backend.predict_one(self.net, x, out, ws):
                return out
            V.check_finite("x", x)
        single = np.ndim(x) == 1
        xs = V.as_array("x", x, self.input_size, self.dtype)
        checked = getattr(self._backend, "predict_checked", None)
        if checked is None:
            V.check_finite("x", xs)
            out = self._outputs(xs)
        else:   # the kernel checks each block of rows as it feeds them (one pass, not two)
            out = np.empty((len(xs), self.output_size), dtype=self.dtype)
            if not checked(self.net, xs, out, self._predict_workspace()):
                V.check_finite("x", xs)   # raises, naming the first NaN/inf
        return out[0] if single else out

    def predict_classes(self, x):
        """Class ids: argmax of the outputs, or output > 0.5 for a single sigmoid unit."""
        out = self.predict(x)
        if self.output_size == 1:
            return (out[..., 0] > 0.5).astype(np.int64)
        return out.argmax(axis=-1)

    def _evaluate(self, x, t):
        out = self._outputs(x)
        loss = float(losses.per_sample(self.net.loss, out, t.y).astype(np.float64).mean())
        if t.acc_mode == ACC_NONE:
            return Evaluation(loss, None)
        return Evaluation(loss, losses.n_correct(t.acc_mode, out, t.y) / len(x))

    def evaluate(self, x, y):
        """(loss, accuracy) on a data set; accuracy is None for regression."""
        xs = V.as_inputs("x", x, self.input_size, self.dtype)
        return self._evaluate(xs, self._targets("y", y, len(xs)))

    # ---- training -----------------------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            validation_split=None, seed=None, verbose=1, callbacks=(), initial_epoch=0,
            comm=None, sync_every=1):
        """Train with minibatch steps; returns a History (also kept as ``model.history``).

        ``y`` holds class ids (N,) or one-hot/target rows (N, n_out). ``batch_size`` larger
        than N is clamped to N. ``seed`` fixes the shuffling (each epoch's order comes from
        (seed, epoch), so a resumed run repeats the same batches). ``initial_epoch`` resumes a
        run: epochs initial_epoch..epochs-1 are trained (same orders and schedule as before).
        ``comm`` (an mpi4py communicator) trains data-parallel, each rank on its own shard,
        averaging gradients every step (``sync_every=1``) or parameters every ``sync_every``
        steps: see fastnn/distributed.py and docs/scaling.md.
        """
        kwargs = dict(epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                      validation_data=validation_data, validation_split=validation_split,
                      seed=seed, verbose=verbose, callbacks=callbacks,
                      initial_epoch=initial_epoch)
        if comm is not None:
            from .distributed import fit as fit_distributed
            return fit_distributed(self, x, y, comm=comm, sync_every=sync_every, **kwargs)
        if sync_every != 1:
            raise ValueError("sync_every: only meaningful with comm= (data-parallel training)")
        defer = (getattr(self.backend, "checks_inputs_in_training", False)
                 and validation_split is None)
        prep = self._prepare_fit(x, y, defer_check=defer, **kwargs)
        xs, ts, xv, tv = prep.xs, prep.ts, prep.xv, prep.tv
        epochs, initial_epoch, seed = prep.epochs, prep.initial_epoch, prep.seed
        batch_size, callbacks = prep.batch_size, prep.callbacks
        previous = self.history
        history = self.history = History()
        self.stop_training = False
        ws = self._train_workspace(batch_size)
        for cb in callbacks:
            cb.on_train_begin(self)
        # deferred: the first epoch checks every row as it trains (training.InputWatch); its
        # copy of the state is also that epoch's start (training.run_epoch)
        watch = InputWatch(self, "x", xs, previous) if prep.deferred else None
        try:
            for epoch in range(initial_epoch, epochs):
                logs = run_epoch(self, xs, ts, epoch, batch_size, shuffle, seed, ws, verbose,
                                 epochs, watch)
                watch = None                 # every row has been read and checked
                if xv is not None:
                    ev = self._evaluate(xv, tv)
                    logs["val_loss"], logs["val_accuracy"] = ev.loss, ev.accuracy
                history.append(epoch, logs)
                self.epochs_done += 1
                if verbose:
                    print(_format_logs(epoch, epochs, logs), flush=True)
                for cb in callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            history.interrupted = True
            raise
        finally:
            for cb in callbacks:
                cb.on_train_end(self)
        return history

    def _prepare_fit(self, x, y, epochs, batch_size, shuffle, validation_data,
                     validation_split, seed, verbose, callbacks, initial_epoch,
                     defer_check=False):
        """Check and convert fit's arguments once; sets ``fit_seed``. ``defer_check``: x is
        checked finite while the first epoch trains (training.InputWatch), not here."""
        epochs = V.check_int("epochs", epochs, 0)
        initial_epoch = V.check_int("initial_epoch", initial_epoch, 0, epochs)
        deferred = defer_check and epochs > initial_epoch
        if deferred:
            xs = V.as_array("x", x, self.input_size, self.dtype)
        else:
            xs = self._inputs("x", x)
        ts = self._targets("y", y, len(xs))
        if validation_data is not None and validation_split is not None:
            raise ValueError("give validation_data or validation_split, not both")
        if validation_split is not None:
            if not isinstance(validation_split, float) or not 0 < validation_split < 1:
                raise ValueError(f"validation_split: expected a float in (0, 1), got "
                                 f"{validation_split!r}")
            n_val = int(round(len(xs) * validation_split))
            if n_val < 1 or n_val >= len(xs):
                raise ValueError(f"validation_split={validation_split} leaves no samples on "
                                 f"one side of a {len(xs)}-sample split")
            # The last rows, as Keras does: deterministic and independent of the shuffle seed.
            xv, tv = xs[-n_val:], Targets(ts.y[-n_val:], ts.acc_mode)
            xs, ts = xs[:-n_val], Targets(ts.y[:-n_val], ts.acc_mode)
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data: expected a tuple (x_val, y_val)")
            xv = V.as_inputs("validation_data x", validation_data[0], self.input_size,
                             self.dtype)
            tv = self._targets("validation_data y", validation_data[1], len(xv))
        else:
            xv = tv = None
        requested = V.check_int("batch_size", batch_size, 1)
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected fastnn.callbacks.Callback objects, "
                                f"got {cb!r}")
        if seed is None:
            seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
        self.fit_seed = V.check_int("seed", seed, 0)
        return _FitArgs(xs, ts, xv, tv, epochs, initial_epoch, min(requested, len(xs)),
                        requested, callbacks, seed, deferred)

    def _epoch_order(self, n, epoch, shuffle, seed):
        return epoch_order(n, epoch, shuffle, seed)
    # ---- persistence --------------------------------------------------------------------
    def save(self, path):
        """Write the model (config, weights, optimiser state) to a safetensors file."""
        from .io import save_model
        save_model(self, path)

    def get_config(self):
        return {"input_size": self.input_size,
                "layers": [lay.get_config() for lay in self.layers],
                "loss": self.loss, "dtype": self.dtype.name,
                "optimizer": self.optimizer.get_config(), "seed": self.seed}

    def save_onnx(self, path, opset=None):
        """Write the network as an ONNX file (needs the ``fastnn[onnx]`` extra)."""
        from .onnx import save_onnx
        save_onnx(self, path, opset=opset)

    # ---- pickle and deepcopy --------------------------------------------------------------
    # The state is the safetensors bytes of ``save`` plus a few plain ints, floats and strings:
    # a pickle of a model holds no arrays and no code beyond the class reference.
    def __getstate__(self):
        from .io import to_bytes
        seeds, hist = self._seeds, self.history
        return {"fastnn_model": to_bytes(self), "backend": self.backend.name,
                "seeds": (_plain_ints(seeds.entropy), tuple(int(k) for k in seeds.spawn_key),
                          int(seeds.n_children_spawned)),
                "history": None if hist is None else (
                    [int(e) for e in hist.epoch], bool(hist.interrupted),
                    {k: [None if v is None else float(v) for v in vals]
                     for k, vals in hist.history.items()})}

    def __setstate__(self, state):
        from .backends import available_backends
        from .io import from_bytes
        name = state["backend"]
        model = from_bytes(state["fastnn_model"], src="<pickle>",
                           backend=name if name in available_backends() else "auto")
        self.__dict__.update(model.__dict__)
        entropy, spawn_key, spawned = state["seeds"]
        self._seeds = np.random.SeedSequence(entropy, spawn_key=spawn_key,
                                             n_children_spawned=spawned)
        if state["history"] is not None:
            epochs, interrupted, logs = state["history"]
            self.history = History()
            self.history.epoch, self.history.interrupted = list(epochs), interrupted
            self.history.history.update(logs)


def _plain_ints(value):
    """SeedSequence entropy (an int or a sequence of ints) as Python ints, for pickling."""
    return int(value) if np.ndim(value) == 0 else [int(v) for v in np.ravel(value)]

