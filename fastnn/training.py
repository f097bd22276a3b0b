"""The epoch loop behind ``Sequential.fit``: fused native calls, Ctrl-C, divergence, logs.

Shared with fastnn/distributed.py (SAMPLES_PER_CALL, History, _defer_sigint, _format_logs).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time

import numpy as np

from . import _validate as V
from .codes import ACC_NONE

SAMPLES_PER_CALL = 8192   # a fused native call runs about this many samples between returns


class DivergenceError(FloatingPointError):
    """The loss or the weights became NaN/inf; the model keeps its last finite weights."""


class History:
    """Per-epoch logs: ``history.history['loss']`` etc., as in Keras."""

    KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "samples_per_sec", "seconds")

    def __init__(self):
        self.epoch = []
        self.history = {k: [] for k in self.KEYS}
        self.interrupted = False

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for k in self.KEYS:
            self.history[k].append(logs.get(k))

    def __getitem__(self, key):
        return self.history[key]

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        last = {k: v[-1] for k, v in self.history.items() if v and v[-1] is not None}
        return f"History(epochs={len(self)}, last={last})"


@contextlib.contextmanager
def _defer_sigint():
    """Hold Ctrl-C until the current native call returns, so no step is half applied."""
    caught = []
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield caught
        return
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


class InputWatch:
    """fit's input check, folded into training: backends whose kernels check each input row as
    they read it (``checks_inputs_in_training``; the workspace's ``input_peak`` after a call)
    spare fit a separate pass over x. The first epoch reads every row; a NaN or inf found there
    puts back the weights, optimiser state and history (``history``) fit started from, then
    raises the error the up-front check raises, so a bad input still changes nothing."""

    def __init__(self, model, name, x, history):
        self.model, self.name, self.x = model, name, x
        self.saved, self.history = model.get_state(), history
        self.warned = False

    def after_call(self, ws):
        peak = ws.input_peak
        if not math.isfinite(peak):
            self.model.set_state(self.saved)
            self.model.history = self.history
            raise V.nonfinite_error(self.name, self.x)
        if not self.warned and peak > V.UNSCALED_WARN:
            self.warned = True
            V.warn_unscaled(self.name, peak, stacklevel=3)   # at fit, as the up-front one


def all_finite(p):
    """np.isfinite(p).all() in one pass with no temporary (0.16 against 0.29 ms for
    wide-512's parameters): a NaN or inf in p makes p . p NaN or inf; only a dot that
    overflows with every value finite takes the exact check."""
    with np.errstate(over="ignore", invalid="ignore"):
        dot = np.dot(p, p)
    return math.isfinite(dot) or bool(np.isfinite(p).all())


def epoch_order(n, epoch, shuffle, seed):
    """The sample order of one epoch: a permutation drawn from (seed, epoch), or 0..n-1."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(epoch,)))
    return rng.permutation(n).astype(np.int64)


def run_epoch(model, xs, ts, epoch, bs, shuffle, seed, ws, verbose, epochs, watch=None):
    """One epoch of ``model`` in fused native calls; returns the epoch's logs. ``watch``: an
    InputWatch for the epoch that checks the inputs as it trains."""
    n = len(xs)
    opt, be = model.optimizer, model.backend
    opt.set_epoch(epoch)
    order = epoch_order(n, epoch, shuffle, seed)
    steps = -(-n // bs)
    chunk = max(1, SAMPLES_PER_CALL // bs)
    # The one copy of the state an epoch (fit's own, made before its first epoch, if it has
    # one): a divergence replays from here. A copy before every call cost ~1% of wide-512's
    # training time (2.7 MB each way per 8192 samples, read cold).
    start = watch.saved if watch is not None else model.get_state()
    loss_sum, correct, step = 0.0, 0, 0
    bar = _progress(n, epoch, epochs, verbose)
    t0 = time.perf_counter()
    try:
        while step < steps:
            k = min(chunk, steps - step)
            with _defer_sigint() as interrupted:
                ls, c = be.train_steps(model.net, opt, xs, ts.y, order, step * bs, k, bs, ws,
                                       ts.acc_mode)
            if watch is not None:    # a bad input is named before any divergence is
                watch.after_call(ws)
            if not (math.isfinite(ls) and all_finite(model.params)):
                locate_divergence(model, start, xs, ts, order, step, chunk, k, bs, ws, epoch)
            step += k
            loss_sum += ls
            correct += c
            if bar is not None:
                done = min(step * bs, n)
                bar.update(done - bar.n)
                bar.set_postfix_str(f"{done / (time.perf_counter() - t0):,.0f} samples/s",
                                    refresh=False)
            if interrupted:
                raise KeyboardInterrupt
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    return {"loss": loss_sum / n,
            "accuracy": correct / n if ts.acc_mode != ACC_NONE else None,
            "lr": opt.lr, "samples_per_sec": n / seconds, "seconds": seconds}


def locate_divergence(model, start, xs, ts, order, step0, chunk, k, bs, ws, epoch):
    """From the epoch's ``start``, replay the calls before the failed one as they ran
    (``chunk`` steps each; the same bits), then the failed call's ``k`` steps one at a time
    to find the bad step."""
    model.set_state(start)
    for s in range(0, step0, chunk):
        model.backend.train_steps(model.net, model.optimizer, xs, ts.y, order, s * bs,
                                  min(chunk, step0 - s), bs, ws, ts.acc_mode)
    for j in range(k):
        before = model.get_state()
        ls, _ = model.backend.train_steps(model.net, model.optimizer, xs, ts.y, order,
                                          (step0 + j) * bs, 1, bs, ws, ts.acc_mode)
        if not (math.isfinite(ls) and all_finite(model.params)):
            model.set_state(before)
            what = "loss" if not math.isfinite(ls) else "weights"
            raise DivergenceError(
                f"training diverged in epoch {epoch} at step {step0 + j} ({what} became "
                f"NaN/inf; learning rate {model.optimizer.lr:g}). The model keeps its last "
                "finite weights. Try a lower learning rate or scale the inputs.")
    raise DivergenceError(f"training diverged in epoch {epoch} (not reproducible on replay)")


def _progress(n, epoch, epochs, verbose):
    if not verbose:
        return None
    from tqdm.auto import tqdm
    # delay: short epochs print only the summary line; long ones show a live bar too.
    return tqdm(total=n, desc=f"epoch {epoch + 1}/{epochs}", unit=" samples", leave=False,
                delay=0.5, mininterval=0.25, disable=None)  # None: off when not a tty


def _format_logs(epoch, epochs, logs):
    parts = [f"epoch {epoch + 1}/{epochs}", f"loss {logs['loss']:.4f}"]
    if logs.get("accuracy") is not None:
        parts.append(f"acc {logs['accuracy']:.4f}")
    if logs.get("val_loss") is not None:
        parts.append(f"val_loss {logs['val_loss']:.4f}")
    if logs.get("val_accuracy") is not None:
        parts.append(f"val_acc {logs['val_accuracy']:.4f}")
    parts.append(f"{logs['samples_per_sec']:,.0f} samples/s")
    parts.append(f"{logs['seconds']:.2f}s")
    return "  ".join(parts)
