"""Real MNIST, real training: the digit network of the video must learn."""

import numpy as np
import pytest

import fastnn as fn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist():
    return fn.datasets.load_mnist()


def test_digits16_reaches_90_percent_within_3_epochs(mnist, backend):
    (x, y), (xt, yt) = mnist
    model = fn.Sequential([fn.Dense(16, "sigmoid"), fn.Dense(16, "sigmoid"),
                           fn.Dense(10, "softmax")], input_size=784, optimizer=fn.SGD(0.1),
                          seed=0, backend=backend)
    h = model.fit(x, y, epochs=3, batch_size=10, validation_data=(xt, yt), verbose=0)
    assert h["val_accuracy"][-1] >= 0.90, h["val_accuracy"]
    assert model.evaluate(xt, yt).accuracy == h["val_accuracy"][-1]


def test_cli_train_reports_accuracy_and_throughput(mnist, capsys, tmp_path):
    from fastnn.cli import main

    assert main(["train", "--epochs", "1", "--limit", "20000", "--quiet",
                 "--save", str(tmp_path / "m.fnn")]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "samples/s" in out
    acc = float(out.split("test accuracy ")[1].split("%")[0])
    assert acc > 80
    assert main(["evaluate", str(tmp_path / "m.fnn")]) == 0
    assert f"{acc:.2f}%" in capsys.readouterr().out
    x_test = mnist[1][0][:3]
    np.savez(tmp_path / "three.npz", x=x_test)
    assert main(["predict", str(tmp_path / "m.fnn"), str(tmp_path / "three.npz")]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
