"""Weight initialisers. Draws are made in float64 from a seeded generator and cast once, so a
float32 and a float64 model built with the same seed start from the same numbers."""

from __future__ import annotations

import numpy as np

from . import activations as act


def glorot_uniform(rng, fan_in, fan_out):
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, size=(fan_in, fan_out))


def glorot_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))


def he_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def he_uniform(rng, fan_in, fan_out):
    lim = np.sqrt(6.0 / fan_in)
    return rng.uniform(-lim, lim, size=(fan_in, fan_out))


def lecun_normal(rng, fan_in, fan_out):
    """N(0, 1/fan_in): Nielsen's network2 'default_weight_initializer'."""
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), size=(fan_in, fan_out))


def standard_normal(rng, fan_in, fan_out):
    """N(0, 1): Nielsen's network.py (the 'large_weight_initializer')."""
    return rng.normal(0.0, 1.0, size=(fan_in, fan_out))


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "lecun_normal": lecun_normal,
    "standard_normal": standard_normal,
}


def default_for(activation_code: int) -> str:
    """He for the ReLU family, Glorot/Xavier for everything else."""
    return "he_normal" if activation_code in (act.RELU, act.LEAKY_RELU) else "glorot_uniform"


def check_name(name: str) -> str:
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(f"init: expected one of {sorted(INITIALIZERS)}, got {name!r}")
    return name
