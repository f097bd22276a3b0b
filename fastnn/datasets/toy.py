"""Small data sets for examples and tests."""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["sleep_study", "xor", "make_regression_scores", "make_blobs", "REGRESSION_FEATURES"]

REGRESSION_FEATURES = ("sleep_hours", "study_hours", "distance_to_school_m")


def sleep_study() -> tuple[np.ndarray, np.ndarray]:
    """(hours of sleep, hours of study) -> test score, from "Neural Networks Demystified".

    Returns X (3, 2) and y (3, 1), both float64.
    """
    x = np.array([[3, 5], [5, 1], [10, 2]], dtype=np.float64)
    y = np.array([[75], [82], [93]], dtype=np.float64)
    return x, y


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: X (4, 2) float64, y int64 labels [0, 1, 1, 0]."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return x, y


def make_regression_scores(n: int = 200, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic sleep/study -> score data (made up, not measured), for showing why
    standardisation matters.

    X (n, 3) float64 columns are REGRESSION_FEATURES: hours of sleep (0..10), hours of study
    (0..10) and distance to school in metres (0..20000). The distance has no effect on the score
    but a scale ~2000x larger, so unscaled gradient descent struggles. y (n, 1) float64 is a
    score in 0..100: 30 + 3*sleep + 4*study + noise (sd 3), clipped.
    """
    n = _check_count("n", n, 1)
    rng = np.random.default_rng(seed)
    sleep = rng.uniform(0, 10, n)
    study = rng.uniform(0, 10, n)
    distance = rng.uniform(0, 20000, n)
    score = np.clip(30 + 3 * sleep + 4 * study + rng.normal(0, 3, n), 0, 100)
    return np.column_stack([sleep, study, distance]), score.reshape(n, 1)


def make_blobs(
    n: int = 300, n_classes: int = 3, n_features: int = 2, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs (sd 1) whose centres are at least 8 apart, so the classes are separable.

    Returns X (n, n_features) float64 and y (n,) int64, classes as balanced as n allows,
    samples in random order.
    """
    n = _check_count("n", n, 1)
    n_classes = _check_count("n_classes", n_classes, 1)
    n_features = _check_count("n_features", n_features, 1)
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_classes, n_features))
    if n_features == 1 or n_classes <= 2:
        centres[:, 0] = 8.0 * np.arange(n_classes)
    else:
        # On a circle whose chord between neighbours is 8: 8 standard deviations apart.
        radius = 4.0 / math.sin(math.pi / n_classes)
        angles = 2 * np.pi * np.arange(n_classes) / n_classes
        centres[:, 0] = radius * np.cos(angles)
        centres[:, 1] = radius * np.sin(angles)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    x = centres[y] + rng.normal(size=(n, n_features))
    return x, y


def _check_count(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)
