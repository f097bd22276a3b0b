import numpy as np
import pytest

from fastnn.datasets import (
    MaxScaler,
    StandardScaler,
    from_one_hot,
    make_regression_scores,
    one_hot,
    sleep_study,
    train_val_split,
)

# ---- MaxScaler ----------------------------------------------------------------------------------


def test_max_scaler_sleep_study_like_the_video():
    x, y = sleep_study()
    xs = MaxScaler().fit_transform(x)
    np.testing.assert_allclose(xs, [[0.3, 1.0], [0.5, 0.2], [1.0, 0.4]])
    ys = MaxScaler().fit_transform(y)
    np.testing.assert_allclose(ys, [[75 / 93], [82 / 93], [1.0]])


def test_max_scaler_abs_zero_column_and_inverse():
    x = np.array([[-4.0, 0.0, 2.0], [2.0, 0.0, 1.0]])
    scaler = MaxScaler().fit(x)
    np.testing.assert_array_equal(scaler.scale_, [4.0, 1.0, 2.0])
    xs = scaler.transform(x)
    np.testing.assert_array_equal(xs, [[-1.0, 0.0, 1.0], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(scaler.inverse_transform(xs), x)


def test_scalers_keep_float32_and_convert_ints():
    x32 = np.arange(6, dtype=np.float32).reshape(3, 2)
    for cls in (MaxScaler, StandardScaler):
        assert cls().fit_transform(x32).dtype == np.float32
        assert cls().fit_transform(x32.astype(np.int64)).dtype == np.float64


# ---- StandardScaler -----------------------------------------------------------------------------


def test_standard_scaler_fit_on_train_apply_to_test():
    x, _ = make_regression_scores(300, seed=0)
    train, test = x[:200], x[200:]
    scaler = StandardScaler().fit(train)
    ts = scaler.transform(train)
    np.testing.assert_allclose(ts.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(ts.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(scaler.transform(test), (test - train.mean(0)) / train.std(0))
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(test)), test)


def test_standard_scaler_constant_column():
    x = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 3.0]])  # 0.1 * 3 / 3 is not exactly 0.1
    scaler = StandardScaler().fit(x)
    assert scaler.scale_[0] == 1.0
    out = scaler.transform(x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], 0, atol=1e-15)
    x0 = np.zeros((4, 1))
    np.testing.assert_array_equal(StandardScaler().fit_transform(x0), x0)


@pytest.mark.parametrize("cls", [MaxScaler, StandardScaler])
def test_scaler_errors(cls):
    name = cls.__name__
    with pytest.raises(RuntimeError, match=f"{name}.transform: not fitted yet, call fit"):
        cls().transform(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="inverse_transform: not fitted"):
        cls().inverse_transform(np.ones((2, 2)))
    scaler = cls().fit(np.ones((4, 3)))
    with pytest.raises(
        ValueError, match=rf"{name}.transform: expected 3 features \(as in fit\), got 2"
    ):
        scaler.transform(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"expected a 2-D array .* got shape \(4,\)"):
        cls().fit(np.ones(4))
    with pytest.raises(ValueError, match="no samples"):
        cls().fit(np.ones((0, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        cls().fit([[1.0], [np.nan]])
    with pytest.raises(TypeError, match="expected numbers"):
        cls().fit([["a"], ["b"]])


# ---- train_val_split ----------------------------------------------------------------------------


def test_split_sizes_cover_and_disjoint():
    x = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    (x_tr, y_tr), (x_va, y_va) = train_val_split(x, y, val_fraction=0.2, seed=0)
    assert len(x_tr) == len(y_tr) == 40 and len(x_va) == len(y_va) == 10
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_va])), y)
    np.testing.assert_array_equal(x_tr[:, 0] // 2, y_tr)  # rows stay paired
    np.testing.assert_array_equal(x_va[:, 0] // 2, y_va)
    again = train_val_split(x, y, val_fraction=0.2, seed=0)
    np.testing.assert_array_equal(again[1][1], y_va)
    assert not np.array_equal(train_val_split(x, y, 0.2, seed=1)[1][1], y_va)


def test_split_without_shuffle_takes_last_part():
    (x_tr, y_tr), (x_va, y_va) = train_val_split(np.arange(10), np.arange(10), 0.3, shuffle=False)
    np.testing.assert_array_equal(y_tr, np.arange(7))
    np.testing.assert_array_equal(y_va, [7, 8, 9])


def test_split_rounding():
    assert len(train_val_split(np.arange(5), np.arange(5), 0.1)[1][0]) == 1  # 0.5 rounds up
    assert len(train_val_split(np.arange(10), np.arange(10), 0.7)[1][0]) == 7


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True, "0.1", None])
def test_split_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        train_val_split(np.arange(10), np.arange(10), fraction)


def test_split_other_errors():
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        train_val_split(np.arange(10), np.arange(9))
    with pytest.raises(ValueError, match="gives 0 training and 1 validation samples"):
        train_val_split(np.arange(1), np.arange(1), 0.5)
    with pytest.raises(ValueError, match="gives 3 training and 0 validation samples"):
        train_val_split(np.arange(3), np.arange(3), 0.1)


# ---- one_hot ------------------------------------------------------------------------------------


def test_one_hot_basic_and_round_trip():
    labels = np.array([0, 2, 1, 2])
    out = one_hot(labels)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out, np.eye(3)[labels])
    np.testing.assert_array_equal(from_one_hot(out), labels)
    assert from_one_hot(out).dtype == np.int64
    assert one_hot([1], n_classes=10, dtype=np.float64).shape == (1, 10)
    assert one_hot([1], n_classes=10, dtype=np.float64).dtype == np.float64


def test_one_hot_shapes_and_integral_floats():
    np.testing.assert_array_equal(one_hot([1.0, 0.0]), [[0, 1], [1, 0]])
    assert one_hot(np.zeros((2, 3), dtype=np.uint8), n_classes=4).shape == (2, 3, 4)
    assert one_hot(np.array([], dtype=np.int64), n_classes=3).shape == (0, 3)


@pytest.mark.parametrize(
    "labels,kwargs,match",
    [
        ([0.5, 1.0], {}, "labels must be whole numbers, found 0.5"),
        ([np.nan], {}, "whole numbers, found nan"),
        (["a", "b"], {}, "labels must be integers, got dtype <U1"),
        ([True, False], {}, "labels must be integers, got dtype bool"),
        ([0, -1], {}, "labels must be >= 0, found -1"),
        ([0, 3], {"n_classes": 3}, r"label 3 is out of range for n_classes=3 \(valid: 0\.\.2\)"),
        ([0], {"n_classes": 0}, "n_classes must be >= 1, got 0"),
        ([0], {"n_classes": 2.0}, "n_classes must be an integer"),
        (np.array([], dtype=int), {}, "cannot infer n_classes from empty labels"),
    ],
)
def test_one_hot_errors(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        one_hot(labels, **kwargs)


def test_from_one_hot_probabilities_and_errors():
    np.testing.assert_array_equal(from_one_hot([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]]), [1, 0])
    with pytest.raises(ValueError, match="from_one_hot"):
        from_one_hot(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="from_one_hot"):
        from_one_hot(3)
