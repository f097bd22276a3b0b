"""Optimisers and learning-rate schedules: plain objects holding hyperparameters and state.

The arithmetic of an update lives in the backends (the NumPy backend defines it); state
buffers (velocity, Adam moments) are flat arrays in the same layout as the parameters.
Conventions follow PyTorch so fastnn and PyTorch runs can be compared step for step.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from . import codes
from ._memory import aligned_zeros


def _check_lr(lr):
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
            or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate: expected a finite number > 0, got {lr!r}")
    return float(lr)


def _check_range(name, value, lo, hi, lo_open=False, hi_open=True):
    ok = (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    if not isinstance(value, (int, float, np.floating, np.integer)) or not ok:
        raise ValueError(f"{name}: expected a number in {'(' if lo_open else '['}{lo}, {hi}"
                         f"{')' if hi_open else ']'}, got {value!r}")
    return float(value)


class StepDecay:
    """lr = base * gamma ** (epoch // step): drop by ``gamma`` every ``step`` epochs."""

    def __init__(self, step: int, gamma: float = 0.1):
        if not isinstance(step, (int, np.integer)) or step < 1:
            raise ValueError(f"StepDecay step: expected an integer >= 1, got {step!r}")
        self.step, self.gamma = int(step), _check_range("StepDecay gamma", gamma, 0, 1, True, False)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step)

    def get_config(self):
        return {"name": "step", "step": self.step, "gamma": self.gamma}


def cosine_lr(base_lr: float, epoch: float, epochs: int, min_lr: float = 0.0) -> float:
    """min + (base - min) * (1 + cos(pi * epoch / epochs)) / 2, flat at min after ``epochs``."""
    frac = min(epoch, epochs) / epochs
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


class CosineDecay:
    """The learning rate of :func:`cosine_lr` at each epoch."""

    def __init__(self, epochs: int, min_lr: float = 0.0):
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"CosineDecay epochs: expected an integer >= 1, got {epochs!r}")
        self.epochs = int(epochs)
        self.min_lr = _check_range("CosineDecay min_lr", min_lr, 0, math.inf)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return cosine_lr(base_lr, epoch, self.epochs, self.min_lr)

    def get_config(self):
        return {"name": "cosine", "epochs": self.epochs, "min_lr": self.min_lr}


SCHEDULES = {"step": StepDecay, "cosine": CosineDecay}


def schedule_from_config(cfg):
    if cfg is None:
        return None
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name](**cfg)


# Every scalar an update derives from the hyper-parameters, as Python floats (float64).
StepScalars = namedtuple("StepScalars", "lr mu wd one_minus_b1 one_minus_b2 step bc2_sqrt eps")


class Optimizer:
    """Hyperparameters, the step counter ``t`` and flat state buffers ``m`` and ``v``."""

    kind = -1
    n_buffers = 0

    def __init__(self, lr, weight_decay=0.0, schedule=None):
        self.base_lr = _check_lr(lr)
        self.lr = self.base_lr
        self.weight_decay = _check_range("weight_decay", weight_decay, 0, math.inf)
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule: expected StepDecay/CosineDecay or a callable, "
                            f"got {schedule!r}")
        self.schedule = schedule
        self.t = 0
        self.m = self.v = None

    # Hyperparameters the kernels read; unused ones stay at neutral values.
    momentum, beta1, beta2, eps = 0.0, 0.9, 0.999, 1e-8

    def bind(self, n_params: int, dtype) -> None:
        """Allocate state buffers for a network (kept if already the right size/dtype)."""
        for name, used in (("m", self.n_buffers >= 1), ("v", self.n_buffers >= 2)):
            size = n_params if used else 0
            cur = getattr(self, name)
            if cur is None or cur.size != size or cur.dtype != dtype:
                setattr(self, name, aligned_zeros(size, dtype))

    def set_epoch(self, epoch: int) -> None:
        lr = self.schedule(self.base_lr, epoch) if self.schedule else self.base_lr
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"schedule gave learning rate {lr!r} at epoch {epoch}")
        self.lr = float(lr)

    def step_scalars(self, t: int) -> StepScalars:
        """The update's scalars for step ``t`` (1-based), computed in float64.

        Backends round each of these ONCE to the parameter dtype. Computing ``1 - beta2`` in
        float32 instead gives 0.00099998713 for beta2 = 0.999 (1.3e-5 off), and a float32 Adam
        run then drifts far from the float64 one (issue 10); PyTorch computes them in float64 too.
        """
        step = bc2_sqrt = 0.0
        if self.kind == codes.ADAM:
            step = self.lr / (1.0 - self.beta1 ** t)          # lr / bias correction 1
            bc2_sqrt = math.sqrt(1.0 - self.beta2 ** t)      # sqrt(bias correction 2)
        return StepScalars(self.lr, self.momentum, self.weight_decay, 1.0 - self.beta1,
                           1.0 - self.beta2, step, bc2_sqrt, self.eps)

    def reset(self) -> None:
        self.t = 0
        for buf in (self.m, self.v):
            if buf is not None:
                buf[...] = 0

    def get_config(self) -> dict:
        cfg = {"name": self.name, "lr": self.base_lr, "weight_decay": self.weight_decay}
        cfg.update(self._extra_config())
        if self.schedule is not None:
            if not hasattr(self.schedule, "get_config"):
                raise TypeError("only StepDecay/CosineDecay schedules can be saved")
            cfg["schedule"] = self.schedule.get_config()
        return cfg

    def _extra_config(self) -> dict:
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Plain SGD (p -= lr g); with ``momentum`` > 0: v = mu v + g, p -= lr v (or Nesterov)."""

    name = "sgd"

    def __init__(self, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.momentum = _check_range("momentum", momentum, 0, 1)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.kind = (codes.NESTEROV if self.nesterov else codes.MOMENTUM) if self.momentum \
            else codes.SGD
        self.n_buffers = 1 if self.momentum else 0

    def _extra_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba), bias-corrected exactly as torch.optim.Adam does it."""

    name = "adam"
    kind = codes.ADAM
    n_buffers = 2

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.beta1 = _check_range("beta1", beta1, 0, 1)
        self.beta2 = _check_range("beta2", beta2, 0, 1)
        self.eps = _check_range("eps", eps, 0, math.inf, lo_open=True)

    def _extra_config(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


OPTIMIZERS = {"sgd": SGD, "adam": Adam}   # config names (get_config()["name"])
# Default learning rate of each optimiser name accepted by ``make``.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 1e-3}


def make(name, lr=None, momentum=0.9, weight_decay=0.0, schedule=None) -> Optimizer:
    """'sgd', 'momentum', 'nesterov' or 'adam'; ``lr=None`` takes the name's DEFAULT_LR."""
    if name not in DEFAULT_LR:
        raise ValueError(f"optimizer: expected one of {sorted(DEFAULT_LR)} or an Optimizer "
                         f"instance, got {name!r}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "adam":
        return Adam(lr, weight_decay=weight_decay, schedule=schedule)
    if name == "sgd":
        return SGD(lr, weight_decay=weight_decay, schedule=schedule)
    return SGD(lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=weight_decay,
               schedule=schedule)


def get(spec) -> Optimizer:
    """An Optimizer from an instance, a name (see ``make``) or a saved config dict."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec in DEFAULT_LR:
        return make(spec)
    if isinstance(spec, dict):
        cfg = dict(spec)
        name = cfg.pop("name", None)
        if name in OPTIMIZERS:
            sched = schedule_from_config(cfg.pop("schedule", None))
            return OPTIMIZERS[name](**cfg, schedule=sched)
    raise ValueError(f"optimizer: expected one of {sorted(DEFAULT_LR)} "
                     f"or an Optimizer instance, got {spec!r}")
