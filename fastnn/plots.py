"""Pictures of a model and its training: learning curves, what the first-layer units see, the
confusion matrix and the misclassified samples.

matplotlib is an optional extra (``pip install "fastnn[plots]"`` or ``pip install matplotlib``);
it is imported only when a plot is made. Figures are drawn with matplotlib's object API on the
Agg canvas, so making plots never changes pyplot's global backend or opens a window, and works
from threads and headless machines. Every file is written atomically: a reader sees the old
file or the complete new PNG, never a partial one.

    from fastnn import plots
    paths = plots.save_all(model, history, x_test, y_test, "plots/")
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ._validate import whole_ids

__all__ = [
    "plot_learning_curves",
    "plot_first_layer_weights",
    "plot_confusion_matrix",
    "plot_misclassified",
    "save_all",
    "FILENAMES",
]

FILENAMES = {
    "learning_curves": "learning_curves.png",
    "first_layer_weights": "first_layer_weights.png",
    "confusion_matrix": "confusion_matrix.png",
    "misclassified": "misclassified.png",
}
DPI = 100

_MISSING = ("fastnn.plots needs matplotlib, an optional extra: pip install matplotlib "
            "(or pip install \"fastnn[plots]\")")


def _figure(figsize):
    """A new matplotlib Figure on an Agg canvas (no pyplot, no global state)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"{_MISSING} ({exc})") from exc
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    from ._atomic import atomic_open

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def _class_ids(name, y):
    """Class ids from ids (N,) or one-hot/probability rows (N, k)."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        return arr.argmax(axis=1).astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected class ids (N,) or rows (N, k), got shape {arr.shape}")
    if arr.dtype.kind not in "iubf":
        raise TypeError(f"{name}: expected integer class ids, got dtype {arr.dtype}")
    return whole_ids(name, arr)


def _image_shape(n_features, image_shape=None):
    if image_shape is not None:
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 2 or math.prod(image_shape) != n_features:
            raise ValueError(f"image_shape {image_shape} does not hold {n_features} values")
        return image_shape
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else (1, n_features)


def _grid(k):
    cols = max(1, math.ceil(math.sqrt(k)))
    return math.ceil(k / cols), cols


# ---- learning curves ---------------------------------------------------------------------
def plot_learning_curves(history, path) -> Path:
    """Training and validation loss (left) and accuracy (right) against the epoch.

    ``history`` is the History that ``fit`` returns (or its ``.history`` dict). The accuracy
    panel is left out for regression (no accuracy logged).
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or "loss" not in logs:
        raise TypeError("history: expected the History returned by fit (or its .history dict)")

    def series(key):
        vals = logs.get(key) or []
        return [np.nan if v is None else float(v) for v in vals]

    loss = series("loss")
    epochs = list(getattr(history, "epoch", None) or range(len(loss)))
    xs = [e + 1 for e in epochs]
    panels = [("loss", "loss")]
    if any(v == v for v in series("accuracy") + series("val_accuracy")):
        panels.append(("accuracy", "accuracy"))
    fig = _figure((5.0 * len(panels), 4.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    marker = "o" if len(xs) <= 30 else None
    for ax, (key, label) in zip(axes, panels, strict=True):
        for k, name, style in ((key, "training", "-"), (f"val_{key}", "validation", "--")):
            ys = series(k)
            if ys and any(v == v for v in ys):
                ax.plot(xs[:len(ys)], ys, style, marker=marker, markersize=4, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        if xs:
            ax.set_xlim(0.5, max(xs) + 0.5)
            if len(xs) <= 20:
                ax.set_xticks(xs)
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no epochs trained", ha="center", va="center",
                    transform=ax.transAxes)
        if key == "accuracy":
            last = [v for v in series("val_accuracy") if v == v]
            if last:
                ax.set_title(f"accuracy (final validation {last[-1]:.2%})")
    return _save(fig, path)


def _image_grid(fig, rows, cols, k):
    """A rows x cols grid of image cells without ticks, the cells after the first ``k``
    hidden; returns (the axes array, the first ``k`` axes)."""
    axes = fig.subplots(rows, cols, squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if j >= k:
            ax.axis("off")
    return axes, axes.flat[:k]


# ---- first-layer weights -----------------------------------------------------------------
def plot_first_layer_weights(model, path, image_shape=(28, 28), max_units=64) -> Path:
    """Each first-layer unit's incoming weights drawn as an image, in a grid.

    Red pixels push the unit's input up, blue ones down (a diverging colormap centred at 0,
    each unit scaled to its own largest |weight|): the pattern a hidden unit "looks for".
    ``model`` is a Sequential (or a weight matrix of shape (n_in, units)).
    """
    w = np.asarray(model if isinstance(model, np.ndarray) else model.layers[0].weights)
    if w.ndim != 2:
        raise ValueError(f"first-layer weights: expected a 2-D (n_in, units) array, "
                         f"got shape {w.shape}")
    if isinstance(max_units, bool) or not isinstance(max_units, int) or max_units < 1:
        raise ValueError(f"max_units: expected an integer >= 1, got {max_units!r}")
    n_in, units = w.shape
    shape = _image_shape(n_in, image_shape)
    k = min(units, max_units)
    rows, cols = _grid(k)
    cell = 1.3 if shape[0] > 1 else 2.0
    fig = _figure((max(cols * cell, 4.0), rows * (cell if shape[0] > 1 else 0.6) + 0.7))
    axes, cells = _image_grid(fig, rows, cols, k)
    im = None
    for j, ax in enumerate(cells):
        img = w[:, j].astype(np.float64).reshape(shape)
        lim = float(np.abs(img).max()) or 1.0
        im = ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                       aspect="equal" if shape[0] > 1 else "auto")
        ax.set_title(f"unit {j}", fontsize=8, pad=2)
    shown = f"{k} of {units} units" if k < units else f"{units} units"
    fig.suptitle(f"First-layer weights ({shown}): red +, blue -, each scaled to its max |w|",
                 fontsize=10)
    if im is not None:
        cb = fig.colorbar(im, ax=axes, shrink=0.6, ticks=[im.norm.vmin, 0, im.norm.vmax])
        cb.ax.set_yticklabels(["-max", "0", "+max"], fontsize=8)
    return _save(fig, path)


# ---- confusion matrix --------------------------------------------------------------------
def confusion_matrix(y_true, y_pred, n_classes=None) -> np.ndarray:
    """counts[i, j] = how many samples of true class i were predicted as class j."""
    t = _class_ids("y_true", y_true)
    p = _class_ids("y_pred", y_pred)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} samples but y_pred has {len(p)}")
    top = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if n_classes is None:
        n_classes = max(top, 1)
    elif isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or n_classes < 1:
        raise ValueError(f"n_classes: expected an integer >= 1, got {n_classes!r}")
    elif top > n_classes:
        raise ValueError(f"class id {top - 1} is out of range for n_classes={n_classes}")
    n_classes = int(n_classes)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def plot_confusion_matrix(y_true, y_pred, path, n_classes=None) -> Path:
    """The confusion matrix with the count in every cell (rows: true, columns: predicted)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    n = cm.shape[0]
    size = min(max(4.5, 0.55 * n + 2.0), 16.0)
    fig = _figure((size + 1.0, size))
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="samples")
    if n <= 30:
        hi = cm.max() / 2 if cm.max() else 1
        fs = 9 if n <= 12 else 6
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=fs,
                        color="white" if cm[i, j] > hi else "black")
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else float("nan")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix: {total} samples, accuracy {acc:.2%}")
    return _save(fig, path)


# ---- misclassified samples ---------------------------------------------------------------
def plot_misclassified(x, y_true, y_pred, path, max_images=36, image_shape=None) -> Path:
    """A grid of the first ``max_images`` misclassified samples, titled true/predicted.

    ``x`` holds flat rows (N, 784) or images (N, 28, 28); ``image_shape`` defaults to the
    images' shape or the largest square that the row length allows.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        if image_shape is None:
            image_shape = x.shape[1:]
        x = x.reshape(len(x), -1)
    if x.ndim != 2:
        raise ValueError(f"x: expected rows (N, features) or images (N, H, W), got {x.shape}")
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images: expected an integer >= 1, got {max_images!r}")
    t = _class_ids("y_true", y_true)
    p = _class_ids("y_pred", y_pred)
    if not len(x) == len(t) == len(p):
        raise ValueError(f"x, y_true and y_pred need the same number of samples, got "
                         f"{len(x)}, {len(t)}, {len(p)}")
    shape = _image_shape(x.shape[1], image_shape)
    wrong = np.flatnonzero(t != p)
    k = min(len(wrong), max_images)
    rows, cols = _grid(max(k, 1))
    fig = _figure((max(cols * 1.25, 4.0), rows * 1.4 + 0.6))
    axes, cells = _image_grid(fig, rows, cols, k)
    for j, ax in enumerate(cells):
        i = wrong[j]
        ax.imshow(x[i].astype(np.float64).reshape(shape), cmap="gray_r", interpolation="nearest",
                  aspect="equal" if shape[0] > 1 else "auto")
        ax.set_title(f"#{i}: true {t[i]}\npredicted {p[i]}", fontsize=7, pad=2, color="darkred")
    if k == 0:
        axes.flat[0].text(0.5, 0.5, "no misclassified samples", ha="center", va="center",
                          transform=axes.flat[0].transAxes)
        title = f"Misclassified: none of {len(t)}"
    else:
        title = f"Misclassified: first {k} of {len(wrong)} errors in {len(t)} samples"
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


# ---- everything --------------------------------------------------------------------------
def save_all(model, history, x_test, y_test, out_dir) -> list[Path]:
    """Write the four standard plots as PNG files into ``out_dir`` (created if needed).

    Returns the paths in this order: learning_curves.png, first_layer_weights.png,
    confusion_matrix.png, misclassified.png. ``history`` may be None to use
    ``model.history`` (the last fit).
    """
    _figure((1, 1))  # fail early and clearly when matplotlib is missing
    out = Path(os.fspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    if history is None:
        history = model.history
    if history is None:
        raise ValueError("history: the model has not been trained; pass the History from fit")
    x = np.asarray(x_test)
    rows = x.reshape(len(x), -1)
    y_pred = model.predict_classes(rows)
    n_classes = model.output_size if model.output_size > 1 else 2
    shape = _image_shape(model.input_size, x.shape[1:] if x.ndim == 3 else None)
    return [
        plot_learning_curves(history, out / FILENAMES["learning_curves"]),
        plot_first_layer_weights(model, out / FILENAMES["first_layer_weights"], shape),
        plot_confusion_matrix(y_test, y_pred, out / FILENAMES["confusion_matrix"], n_classes),
        plot_misclassified(rows, y_test, y_pred, out / FILENAMES["misclassified"],
                           image_shape=shape),
    ]
