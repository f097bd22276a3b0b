"""fastnn: a small, very fast neural-network engine.

A first network::

    import fastnn as fn
    (x, y), (xt, yt) = fn.datasets.load_mnist()
    model = fn.Sequential([fn.Dense(16, "sigmoid"), fn.Dense(16, "sigmoid"),
                           fn.Dense(10, "softmax")], input_size=784, optimizer=fn.SGD(0.1))
    model.fit(x, y, epochs=3, batch_size=10)
    print(model.evaluate(xt, yt))
"""

from . import datasets
from ._version import __version__
from .backends import available_backends, backend_status, get_backend
from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint
from .gradcheck import gradcheck
from .io import ModelFileError, load
from .layers import Dense
from .model import DivergenceError, Evaluation, History, Sequential
from .optimizers import SGD, Adam, CosineDecay, StepDecay
from .threads import get_num_threads, num_threads, set_num_threads


def warmup(dtypes=("float32", "float64"), backends=None):
    """Compile or load every available compiled backend's kernels now, not on first use.

    Returns {backend name: seconds taken}. ``import fastnn`` itself compiles nothing.
    """
    from .backends import get_backend

    took = {}
    for name in backends or available_backends():
        fn = getattr(get_backend(name), "warmup", None)
        if fn is not None:
            took[name] = fn(dtypes=tuple(dtypes))
    return took


__all__ = [
    "Adam", "Callback", "CosineDecay", "Dense", "DivergenceError", "EarlyStopping",
    "Evaluation", "History", "LambdaCallback", "ModelCheckpoint", "ModelFileError", "SGD",
    "Sequential", "StepDecay", "__version__", "available_backends", "backend_status",
    "datasets", "get_backend", "get_num_threads", "gradcheck", "load", "set_num_threads",
    "num_threads", "warmup",
]
