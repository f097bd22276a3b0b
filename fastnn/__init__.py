"""fastnn: a small, very fast neural-network engine.

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

__all__ = [
    "Adam", "Callback", "CosineDecay", "Dense", "DivergenceError", "EarlyStopping",
    "Evaluation", "History", "LambdaCallback", "ModelCheckpoint", "ModelFileError", "SGD", "Sequential",
    "StepDecay", "__version__", "available_backends", "backend_status", "datasets",
    "get_backend", "gradcheck", "load",
]
