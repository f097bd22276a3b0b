"""Callbacks for Sequential.fit: hooks called at the start/end of training and each epoch."""

from __future__ import annotations

import math


class Callback:
    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, model, epoch: int, logs: dict):
        pass

    def on_train_end(self, model):
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best`` the model gets back the weights of its best epoch."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best=True):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode: expected 'min', 'max' or 'auto', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping patience: expected an integer >= 0, got {patience!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode, self.restore_best = mode, restore_best

    def on_train_begin(self, model):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait, self.best_state, self.stopped_epoch = None, 0, None, None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, model, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise ValueError(f"EarlyStopping: {self.monitor!r} is not logged; "
                             f"available: {sorted(k for k, v in logs.items() if v is not None)}")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = model.get_state()
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stopped_epoch = epoch
                model.stop_training = True

    def on_train_end(self, model):
        if self.restore_best and self.best_state is not None and self.stopped_epoch is not None:
            model.set_state(self.best_state)


class LambdaCallback(Callback):
    """Wrap a plain function f(model, epoch, logs) as an epoch-end callback."""

    def __init__(self, on_epoch_end):
        self._fn = on_epoch_end

    def on_epoch_end(self, model, epoch, logs):
        self._fn(model, epoch, logs)


class ModelCheckpoint(Callback):
    """Save the model every ``every`` epochs to ``path`` (may contain ``{epoch}``).

    Files are written atomically. To resume after a crash or Ctrl-C:
    ``m = fastnn.load(path); m.fit(x, y, epochs=E, seed=m.fit_seed, initial_epoch=m.epochs_done)``
    repeats the uninterrupted run exactly (single thread). In ``fit(comm=...)`` only rank 0
    writes (``rank0_only``): every rank holds the same weights.
    """

    rank0_only = True

    def __init__(self, path, every=1):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"ModelCheckpoint every: expected an integer >= 1, got {every!r}")
        self.path, self.every = str(path), every
        self.saved = []

    def on_epoch_end(self, model, epoch, logs):
        if (epoch + 1) % self.every == 0:
            path = self.path.format(epoch=epoch + 1)
            model.save(path)
            self.saved.append(path)
