import numpy as np
import pytest

from fastnn.datasets import make_blobs, make_regression_scores, sleep_study, xor
from fastnn.datasets.toy import REGRESSION_FEATURES


def test_sleep_study_values():
    x, y = sleep_study()
    assert x.dtype == y.dtype == np.float64
    np.testing.assert_array_equal(x, [[3, 5], [5, 1], [10, 2]])
    np.testing.assert_array_equal(y, [[75], [82], [93]])
    x[0, 0] = 99  # each call returns fresh arrays
    assert sleep_study()[0][0, 0] == 3


def test_xor():
    x, y = xor()
    assert x.shape == (4, 2) and x.dtype == np.float64
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, 1, 0])
    np.testing.assert_array_equal(y, np.logical_xor(x[:, 0], x[:, 1]))


def test_regression_scores_shapes_ranges_and_seed():
    x, y = make_regression_scores(500, seed=3)
    assert x.shape == (500, len(REGRESSION_FEATURES)) and y.shape == (500, 1)
    assert x.dtype == y.dtype == np.float64
    assert x[:, :2].min() >= 0 and x[:, :2].max() <= 10
    assert x[:, 2].min() >= 0 and x[:, 2].max() <= 20000
    assert x[:, 2].std() > 1000 * x[:, :2].std(axis=0).max()  # the scale problem to fix
    assert y.min() >= 0 and y.max() <= 100
    x2, y2 = make_regression_scores(500, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, make_regression_scores(500, seed=4)[0])


def test_regression_scores_signal_is_in_sleep_and_study():
    x, y = make_regression_scores(2000, seed=0)
    design = np.column_stack([np.ones(len(x)), x])
    coef = np.linalg.lstsq(design, y[:, 0], rcond=None)[0]
    np.testing.assert_allclose(coef[1:3], [3, 4], atol=0.3)
    assert abs(coef[3]) * 20000 < 2  # distance moves the score by < 2 points end to end


@pytest.mark.parametrize("n_classes,n_features", [(1, 1), (2, 1), (3, 2), (10, 2), (4, 5)])
def test_blobs_separable_and_balanced(n_classes, n_features):
    x, y = make_blobs(301, n_classes, n_features, seed=1)
    assert x.shape == (301, n_features) and x.dtype == np.float64
    assert y.shape == (301,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=n_classes)
    assert len(counts) == n_classes and counts.max() - counts.min() <= 1
    # Nearest class mean recovers every label.
    means = np.stack([x[y == k].mean(axis=0) for k in range(n_classes)])
    nearest = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nearest, y)


def test_blobs_seeded():
    a, b = make_blobs(50, 3, 2, seed=7), make_blobs(50, 3, 2, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n": 0}, "n must be an integer >= 1, got 0"),
        ({"n": 2.5}, "n must be an integer >= 1, got 2.5"),
        ({"n_classes": 0}, "n_classes must be an integer >= 1"),
        ({"n_features": True}, "n_features must be an integer >= 1, got True"),
    ],
)
def test_blobs_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_blobs(**kwargs)


def test_regression_scores_argument_error():
    with pytest.raises(ValueError, match="n must be an integer >= 1, got -1"):
        make_regression_scores(-1)
