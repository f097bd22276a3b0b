"""The model ``fastnn serve`` uses when none is given: digits-16, cached or trained now."""

from __future__ import annotations

import time
from pathlib import Path

NAME = "digits-16"
EPOCHS = 10            # ~1 s with the compiled backends; 95% test accuracy vs 94% for 3
SEED = 0


def cache_path() -> Path:
    """<fastnn cache>/models/digits-16.fnn; the cache is where MNIST is kept (FASTNN_DATA,
    else $XDG_CACHE_HOME/fastnn, else ~/.cache/fastnn)."""
    from ..datasets import mnist_cache_dir

    return mnist_cache_dir().parent / "models" / f"{NAME}.fnn"


def train(epochs: int = EPOCHS):
    """A digits-16 network trained on MNIST; returns (model, test accuracy, seconds)."""
    from .. import presets
    from ..datasets import load_mnist

    (x, y), (xt, yt) = load_mnist(verbose=False)
    model = presets.build(NAME, seed=SEED)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=presets.PRESETS[NAME]["batch_size"], seed=SEED,
              verbose=0)
    seconds = time.perf_counter() - t0
    return model, model.evaluate(xt, yt).accuracy, seconds


def load_or_train(path=None, say=print):
    """(model, its file, a sentence saying where it came from); ``path`` defaults to
    :func:`cache_path`."""
    from ..io import ModelFileError, load

    path = Path(path) if path is not None else cache_path()
    if path.exists():
        try:
            model = load(path)
            return model, path, f"loaded the cached {NAME} model {path}"
        except ModelFileError as exc:
            say(f"the cached model is unreadable ({exc}); training a new one")
    say(f"no model given and none cached: training {NAME} on MNIST ({EPOCHS} epochs)...")
    model, accuracy, seconds = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model, path, (f"trained {NAME} on MNIST in {seconds:.1f} s, test accuracy "
                         f"{accuracy:.1%}; cached as {path}")
