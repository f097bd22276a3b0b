"""Feature scaling, train/validation split, one-hot encoding and MNIST-style digit images."""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from .._validate import whole_ids

__all__ = ["MaxScaler", "StandardScaler", "train_val_split", "one_hot", "from_one_hot",
           "mnist_style", "image_to_mnist"]


class _Scaler:
    """Shared checks; subclasses set self.scale_ (and self.mean_) in _fit."""

    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    n_features_in_: int | None = None

    def fit(self, x):
        x = self._as_2d(x)
        if len(x) == 0:
            raise ValueError(f"{type(self).__name__}.fit: x has no samples")
        if not np.isfinite(x).all():
            raise ValueError(f"{type(self).__name__}.fit: x contains NaN or inf")
        self.n_features_in_ = x.shape[1]
        self._fit(x)
        return self

    def fit_transform(self, x) -> np.ndarray:
        return self.fit(x).transform(x)

    def transform(self, x) -> np.ndarray:
        x = self._checked(x, "transform")
        return self._cast((x - self._mean()) / self.scale_, x)

    def inverse_transform(self, x) -> np.ndarray:
        x = self._checked(x, "inverse_transform")
        return self._cast(x * self.scale_ + self._mean(), x)

    def _mean(self):
        return 0.0 if self.mean_ is None else self.mean_

    def _as_2d(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "iuf":
            raise TypeError(f"{type(self).__name__}: expected numbers, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: expected a 2-D array (samples, features), got shape "
                f"{x.shape}; use x.reshape(-1, 1) for a single feature"
            )
        return x

    def _checked(self, x, method: str) -> np.ndarray:
        name = type(self).__name__
        if self.scale_ is None:
            raise RuntimeError(f"{name}.{method}: not fitted yet, call fit(x) first")
        x = self._as_2d(x)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name}.{method}: expected {self.n_features_in_} features (as in fit), "
                f"got {x.shape[1]}"
            )
        return x

    @staticmethod
    def _cast(result: np.ndarray, x: np.ndarray) -> np.ndarray:
        # float32 in -> float32 out (MNIST-sized data); integers become float64.
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
        return result.astype(dtype, copy=False)


class MaxScaler(_Scaler):
    """Divide each column by its largest absolute value seen in fit (a zero column by 1)."""

    def _fit(self, x: np.ndarray) -> None:
        scale = np.abs(x).max(axis=0).astype(np.float64)
        scale[scale == 0] = 1.0
        self.scale_ = scale


class StandardScaler(_Scaler):
    """Subtract the training mean and divide by the training std (ddof=0) per column.

    Constant columns get std 1, so they map to 0 instead of dividing by zero.
    """

    def _fit(self, x: np.ndarray) -> None:
        mean = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
        # The mean of identical floats can be off by an ulp, leaving a tiny nonzero std.
        constant = std <= 10 * np.finfo(np.float64).eps * np.abs(mean)
        std[constant] = 1.0
        self.mean_, self.scale_ = mean, std


def train_val_split(x, y, val_fraction: float = 0.1, seed=None, shuffle: bool = True):
    """Split into ((x_train, y_train), (x_val, y_val)).

    The validation part has round(val_fraction * n) samples; without shuffle it is the last
    ones. Both parts must end up non-empty.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError("train_val_split: x and y must be arrays of samples, not scalars")
    if len(x) != len(y):
        raise ValueError(f"train_val_split: x has {len(x)} samples but y has {len(y)}")
    is_real = isinstance(val_fraction, numbers.Real) and not isinstance(val_fraction, bool)
    if not (is_real and 0 < val_fraction < 1):
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    n = len(x)
    n_val = math.floor(n * val_fraction + 0.5)  # round half up
    if n_val < 1 or n - n_val < 1:
        raise ValueError(
            f"train_val_split: val_fraction={val_fraction} of {n} samples gives {n - n_val} "
            f"training and {n_val} validation samples; each part needs at least one"
        )
    idx = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    tr, va = idx[: n - n_val], idx[n - n_val :]
    return (x[tr], y[tr]), (x[va], y[va])


def one_hot(labels, n_classes: int | None = None, dtype=np.float32) -> np.ndarray:
    """Integer class ids of any shape -> array of shape labels.shape + (n_classes,)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iuf":
        raise ValueError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    labels = whole_ids("one_hot", labels)
    if n_classes is None:
        if labels.size == 0:
            raise ValueError("one_hot: cannot infer n_classes from empty labels; pass n_classes")
        n_classes = int(labels.max()) + 1
    elif isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral):
        raise ValueError(f"one_hot: n_classes must be an integer, got {n_classes!r}")
    elif n_classes < 1:
        raise ValueError(f"one_hot: n_classes must be >= 1, got {n_classes}")
    elif labels.size and labels.max() >= n_classes:
        raise ValueError(
            f"one_hot: label {int(labels.max())} is out of range for n_classes={n_classes} "
            f"(valid: 0..{n_classes - 1})"
        )
    out = np.zeros((labels.size, int(n_classes)), dtype=dtype)
    out[np.arange(labels.size), labels.ravel()] = 1
    return out.reshape(*labels.shape, int(n_classes))


def from_one_hot(y) -> np.ndarray:
    """One-hot rows (or scores/probabilities) -> int64 class ids via argmax of the last axis."""
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[-1] == 0:
        raise ValueError(
            f"from_one_hot: expected (..., n_classes) with n_classes >= 1, got {y.shape}"
        )
    return y.argmax(axis=-1).astype(np.int64)


# ---- MNIST-style digit images ----------------------------------------------------------------
# The one place that turns a drawing or a picture of a digit into the 28x28 input MNIST networks
# expect; `fastnn predict` (PNG files) and `fastnn serve` (the page and PNG uploads) both use it.

INK_THRESHOLD = 0.1      # ink below this does not count for the bounding box (anti-aliasing fuzz)
MAX_IMAGE_PIXELS = 4096 * 4096


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights that average the input cells each output cell covers (box filter)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def mnist_style(ink) -> np.ndarray:
    """Normalise a digit as MNIST's were: a (28, 28) float32 array in [0, 1].

    ``ink`` is a 2-D array of any size with 0 for background and 1 for full ink. The bounding
    box of the ink is scaled (aspect ratio kept, area-averaged into grey levels) so its longer
    side is 20 pixels, then placed in a 28x28 field with its centre of mass in the middle.
    An image without ink gives all zeros.
    """
    ink = np.asarray(ink, dtype=np.float64)
    if ink.ndim != 2 or ink.size == 0:
        raise ValueError(f"mnist_style: expected a non-empty 2-D image, got shape {ink.shape}")
    if not np.isfinite(ink).all():
        raise ValueError("mnist_style: the image contains NaN or inf")
    ink = np.clip(ink, 0.0, 1.0)
    rows = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=0))
    out = np.zeros((28, 28), dtype=np.float32)
    if rows.size == 0:
        return out
    box = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = box.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = _area_matrix(nh, h) @ box @ _area_matrix(nw, w).T
    mass = small.sum()
    cy = (small.sum(axis=1) @ (np.arange(nh) + 0.5)) / mass
    cx = (small.sum(axis=0) @ (np.arange(nw) + 0.5)) / mass
    top = int(np.clip(round(14.5 - cy), 0, 28 - nh))
    left = int(np.clip(round(14.5 - cx), 0, 28 - nw))
    out[top:top + nh, left:left + nw] = np.clip(small, 0.0, 1.0)
    return out


def _ink_of(img) -> np.ndarray:
    """Ink in [0, 1] of a Pillow image: its opacity if it has any transparency, else its
    lightness, inverted when the border is light (dark digits on white paper)."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if has_alpha:
        alpha = np.asarray(img.convert("RGBA"), dtype=np.float64)[..., 3] / 255.0
        if alpha.min() < 1.0:
            return alpha
    grey = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1.0 - grey if border.mean() > 0.5 else grey


def image_to_mnist(source) -> np.ndarray:
    """A PNG picture of one digit (path, bytes or Pillow image) as a (28, 28) float32 input.

    A 28x28 image is taken to be MNIST-format already and only brought to light-on-dark;
    any other size goes through :func:`mnist_style`. Needs Pillow.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise RuntimeError("reading images needs Pillow: pip install pillow") from None
    import io

    where = f"{os.fspath(source)}: " if isinstance(source, (str, os.PathLike)) else ""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        img = source if isinstance(source, Image.Image) else Image.open(source, formats=["PNG"])
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ValueError(f"{where}not a PNG image, or a damaged one") from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(f"{where}{w}x{h} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                         "accepted")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{where}damaged PNG image ({exc})") from None
    ink = _ink_of(img)
    if ink.shape == (28, 28):
        return ink.astype(np.float32)
    return mnist_style(ink)
