"""fastnn.plots: real PNG files of the expected size for a small trained model."""

import struct
import sys

import numpy as np
import pytest

import fastnn as fn

pytest.importorskip("matplotlib")
from fastnn import plots  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def decode(path):
    """Pixels as an (H, W, channels) array, decoded by Pillow (or matplotlib as a fallback)."""
    try:
        from PIL import Image
    except ImportError:
        import matplotlib.image as mpimg
        return np.asarray(mpimg.imread(path))
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def assert_real_png(path, size=None):
    w, h = png_size(path)
    pixels = decode(path)
    assert pixels.shape[:2] == (h, w)
    if size is not None:
        assert (w, h) == size
    assert w >= 300 and h >= 200
    # Not blank: many distinct colours (text, lines, colormaps), not just a white page.
    flat = pixels.reshape(-1, pixels.shape[-1])
    assert len(np.unique(flat[::7], axis=0)) > 20
    assert (flat < 128).any()
    return pixels


@pytest.fixture(scope="module")
def trained():
    """A 64-9-3 network on 8x8 'images': three classes of noisy blobs, trained briefly."""
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, n)
    protos = rng.uniform(0, 1, (3, 64))
    x = np.clip(protos[y] + rng.normal(0, 0.6, (n, 64)), 0, 1).astype(np.float32)
    model = fn.Sequential([fn.Dense(9, "sigmoid"), fn.Dense(3, "softmax")], input_size=64,
                          optimizer=fn.SGD(0.5), seed=0, backend="numpy")
    hist = model.fit(x[:200], y[:200], epochs=4, batch_size=10, seed=0,
                     validation_data=(x[200:], y[200:]), verbose=0)
    return model, hist, x[200:], y[200:]


def test_save_all_writes_four_real_pngs(trained, tmp_path):
    model, hist, xt, yt = trained
    out = tmp_path / "new" / "plots"
    paths = plots.save_all(model, hist, xt, yt, out)
    names = ["learning_curves.png", "first_layer_weights.png", "confusion_matrix.png",
             "misclassified.png"]
    assert [p.name for p in paths] == names
    assert sorted(f.name for f in out.iterdir()) == sorted(names)  # no temp files left
    assert_real_png(paths[0], (1000, 400))          # two panels, 10 x 4 inches at 100 dpi
    assert_real_png(paths[1], (400, 460))           # 9 units: a 3 x 3 grid
    assert_real_png(paths[2], (550, 450))           # 3 classes
    assert_real_png(paths[3])


def test_save_all_accepts_string_dir_and_overwrites(trained, tmp_path):
    model, hist, xt, yt = trained
    first = plots.save_all(model, hist, xt, yt, str(tmp_path))
    again = plots.save_all(model, None, xt, yt, str(tmp_path))  # None: model.history
    assert first == again
    for p in again:
        png_size(p)


def test_first_layer_weights_grid_and_limits(trained, tmp_path):
    model, *_ = trained
    p = plots.plot_first_layer_weights(model, tmp_path / "w.png", image_shape=(8, 8),
                                       max_units=4)
    assert_real_png(p, (400, 330))                  # 2 x 2 grid
    with pytest.raises(ValueError, match="image_shape"):
        plots.plot_first_layer_weights(model, tmp_path / "bad.png", image_shape=(28, 28))
    with pytest.raises(ValueError, match="max_units"):
        plots.plot_first_layer_weights(model, tmp_path / "bad.png", max_units=0)
    assert not (tmp_path / "bad.png").exists()


def test_first_layer_weights_mnist_shape(tmp_path):
    model = fn.Sequential([fn.Dense(16, "sigmoid"), fn.Dense(10, "softmax")], input_size=784,
                          seed=0, backend="numpy")
    assert_real_png(plots.plot_first_layer_weights(model, tmp_path / "w.png"))


def test_confusion_matrix_counts():
    cm = plots.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1], n_classes=4)
    expected = np.zeros((4, 4), int)
    expected[0, 0], expected[1, 2], expected[2, 2], expected[1, 1] = 1, 1, 2, 1
    np.testing.assert_array_equal(cm, expected)
    one_hot = np.eye(3)[[0, 1, 2]]
    np.testing.assert_array_equal(plots.confusion_matrix(one_hot, [0, 1, 1]),
                                  [[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="out of range"):
        plots.confusion_matrix([0, 5], [0, 1], n_classes=3)
    with pytest.raises(ValueError, match="samples"):
        plots.confusion_matrix([0, 1], [0])


def test_confusion_matrix_png(tmp_path):
    rng = np.random.default_rng(1)
    t = rng.integers(0, 10, 500)
    p = np.where(rng.random(500) < 0.8, t, rng.integers(0, 10, 500))
    assert_real_png(plots.plot_confusion_matrix(t, p, tmp_path / "cm.png"), (850, 750))


def test_misclassified_grid_and_none_wrong(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (50, 28, 28))
    t = rng.integers(0, 10, 50)
    p = t.copy()
    p[::5] = (p[::5] + 1) % 10                      # 10 wrong -> a 3 x 4 grid
    assert_real_png(plots.plot_misclassified(x, t, p, tmp_path / "m.png"))
    capped = plots.plot_misclassified(x.reshape(50, -1), t, p, tmp_path / "m4.png", max_images=4)
    assert_real_png(capped, (400, 340))             # 2 x 2 grid
    none = plots.plot_misclassified(x, t, t, tmp_path / "none.png")
    assert png_size(none)[0] >= 300
    with pytest.raises(ValueError, match="same number"):
        plots.plot_misclassified(x, t[:3], t, tmp_path / "bad.png")


def test_learning_curves_regression_and_empty(tmp_path):
    x, y = fn.datasets.sleep_study()
    model = fn.Sequential([fn.Dense(3, "sigmoid"), fn.Dense(1, "sigmoid")], input_size=2,
                          seed=0, backend="numpy")
    hist = model.fit(x / x.max(axis=0), y / 100, epochs=5, batch_size=3, verbose=0)
    assert hist["accuracy"] == [None] * 5
    assert_real_png(plots.plot_learning_curves(hist, tmp_path / "reg.png"), (500, 400))
    empty = fn.History()
    assert png_size(plots.plot_learning_curves(empty, tmp_path / "e.png")) == (500, 400)
    with pytest.raises(TypeError, match="History"):
        plots.plot_learning_curves([0.1, 0.2], tmp_path / "bad.png")


def test_failed_write_leaves_no_file(trained, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    model, hist, *_ = trained
    target = tmp_path / "lc.png"
    target.write_bytes(b"old")

    def broken_savefig(self, f, **kw):
        f.write(PNG_SIGNATURE + b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_learning_curves(hist, target)
    assert target.read_bytes() == b"old"
    assert [f.name for f in tmp_path.iterdir()] == ["lc.png"]


def test_missing_matplotlib_gives_clear_import_error(trained, tmp_path, monkeypatch):
    model, hist, xt, yt = trained
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plots.plot_learning_curves(hist, tmp_path / "lc.png")
    out = tmp_path / "plots"
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plots.save_all(model, hist, xt, yt, out)
    assert not out.exists()


def test_cli_train_plots(tmp_path, capsys):
    """`fastnn train --plots DIR` on a tiny .npz data set prints the four paths."""
    from fastnn.cli import main

    rng = np.random.default_rng(3)
    protos = rng.uniform(0, 1, (4, 16))
    y = rng.integers(0, 4, 240)
    x = np.clip(protos[y] + rng.normal(0, 0.3, (240, 16)), 0, 1).astype(np.float32)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    out = tmp_path / "p"
    assert main(["train", "--data", str(data), "--layers", "6", "--epochs", "2", "--quiet",
                 "--backend", "numpy", "--plots", str(out)]) == 0
    text = capsys.readouterr().out
    for name in plots.FILENAMES.values():
        assert f"wrote {out / name}" in text
        assert_real_png(out / name)
