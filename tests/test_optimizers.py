"""The one optimiser factory, its default learning rates, the cosine schedule and the scalars."""

import math

import pytest

import fastnn as fn
import fastnn.presets
from fastnn import codes, optimizers


@pytest.mark.parametrize("name, kind", list(codes.OPTIMIZER_KINDS.items()))
def test_make_builds_each_kind_with_its_default_lr(name, kind):
    opt = optimizers.make(name)
    assert opt.kind == kind and opt.lr == optimizers.DEFAULT_LR[name]
    assert optimizers.get(name).get_config() == opt.get_config()
    assert optimizers.make(name, 0.3).lr == 0.3


def test_make_options_and_errors():
    opt = optimizers.make("nesterov", 0.01, momentum=0.8, weight_decay=1e-4,
                          schedule=fn.CosineDecay(3))
    assert (opt.momentum, opt.nesterov, opt.weight_decay) == (0.8, True, 1e-4)
    with pytest.raises(ValueError, match=r"optimizer: expected one of \['adam', 'momentum'"):
        optimizers.make("rmsprop")
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        optimizers.get(42)


def test_cosine_lr_and_schedule_agree():
    sched = fn.CosineDecay(4, min_lr=0.1)
    for epoch, want in [(0, 1.0), (2, 0.55), (4, 0.1), (9, 0.1)]:
        assert optimizers.cosine_lr(1.0, epoch, 4, 0.1) == pytest.approx(want)
        assert sched(1.0, epoch) == optimizers.cosine_lr(1.0, epoch, 4, 0.1)


def test_step_scalars_are_float64():
    adam = fn.Adam(1e-3, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.01)
    sc = adam.step_scalars(3)
    assert sc.one_minus_b1 == 1 - 0.9 and sc.one_minus_b2 == 1 - 0.999
    assert sc.step == 1e-3 / (1 - 0.9 ** 3)
    assert sc.bc2_sqrt == math.sqrt(1 - 0.999 ** 3)
    assert (sc.lr, sc.wd, sc.eps) == (1e-3, 0.01, 1e-7)
    sgd = fn.SGD(0.1, momentum=0.9).step_scalars(1)
    assert (sgd.lr, sgd.mu, sgd.step, sgd.bc2_sqrt) == (0.1, 0.9, 0.0, 0.0)
