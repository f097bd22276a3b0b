"""scikit-learn estimators trained by fastnn: ``MLPClassifier`` and ``MLPRegressor``.

A drop-in for ``sklearn.neural_network``'s classes: the same parameter names, defaults, fitted
attributes, initialisation (the same weights for the same ``random_state``) and per-epoch rules
(``tol``/``n_iter_no_change`` on the training loss, or on the validation score with
``early_stopping``; ``learning_rate`` 'constant', 'invscaling', 'adaptive'). The training itself
is ``fastnn.Sequential.fit`` with a callback holding those rules. Differences are listed in
docs/sklearn.md ("Use it from scikit-learn"). Needs the extra: ``pip install 'fastnn[sklearn]'``.
"""

from __future__ import annotations

import contextlib
import warnings
from numbers import Integral, Real

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils._param_validation import Interval, Options, StrOptions
    from sklearn.utils.multiclass import (
        _check_partial_fit_first_call,
        check_classification_targets,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # absent, or older than 1.6 (no validate_data / sklearn tags)
    raise ImportError("fastnn.sklearn needs scikit-learn >= 1.6: pip install 'fastnn[sklearn]' "
                      f"({exc})") from exc

from . import optimizers
from ._sklearn_rules import _EpochRules
from .layers import Dense
from .model import DivergenceError, Sequential
from .threads import threads as _threads

# sklearn's activation names -> fastnn's ('leaky_relu' is fastnn's addition)
__all__ = ["MLPClassifier", "MLPRegressor"]

ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "leaky_relu": "leaky_relu"}
OUT_NAMES = {"softmax": "softmax", "sigmoid": "logistic", "identity": "identity"}


class _BaseMLP(BaseEstimator):
    _loss_scale = 1    # fastnn's loss / _loss_scale = sklearn's loss (regressor: n_outputs_)
    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "backend": [StrOptions({"auto", "numpy", "numba", "cython"})],
        "dtype": [StrOptions({"float32", "float64"})],
        "threads": [None, Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, backend="auto",
                 dtype="float32", threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype
        self.threads = threads

    # ---- fitted attributes that are views of the model's flat parameter buffer -----------
    @property
    def coefs_(self):
        """Weight matrices (n_in, n_out) per layer: views into ``model_.params``."""
        check_is_fitted(self, "model_")
        return [lay.weights for lay in self.model_.layers]

    @property
    def intercepts_(self):
        check_is_fitted(self, "model_")
        return [lay.biases for lay in self.model_.layers]

    def _thread_cap(self):
        return contextlib.nullcontext() if self.threads is None else _threads(self.threads)

    # ---- fitting -------------------------------------------------------------------------
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(s, Integral) or s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _initialize(self, n_features, n_out, rng):
        """A fresh network with sklearn's initialisation (same draws for the same seed)."""
        hidden, act = self._hidden_sizes(), ACTIVATIONS[self.activation]
        out = self._out_activation(n_out)
        layers = [Dense(h, act) for h in hidden] + [Dense(n_out, out)]
        loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(out, "mse")
        model = Sequential(layers, input_size=n_features, loss=loss, dtype=self.dtype,
                           backend=self.backend, seed=0)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for lay in model.layers:
            bound = np.sqrt(factor / (lay.input_size + lay.units))
            lay.weights[...] = rng.uniform(-bound, bound, (lay.input_size, lay.units))
            lay.biases[...] = rng.uniform(-bound, bound, lay.units)
        self.model_ = model
        self.out_activation_ = OUT_NAMES[out]
        self.n_outputs_ = n_out
        self.n_layers_ = len(hidden) + 2
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._seed = int(rng.randint(np.iinfo(np.int32).max))
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _optimizer(self, batch_size):
        wd = self.alpha / batch_size      # sklearn's penalty alpha/2 |W|^2 per batch of this size
        if self.solver == "adam":
            return optimizers.Adam(self.learning_rate_init, self.beta_1, self.beta_2,
                                   self.epsilon, weight_decay=wd)
        return optimizers.SGD(self.learning_rate_init, momentum=self.momentum,
                              nesterov=self.nesterovs_momentum and self.momentum > 0,
                              weight_decay=wd)

    def _fit(self, X, y, incremental):
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first)
        rng = check_random_state(self.random_state)
        if first:
            self._initialize(X.shape[1], Y.shape[1] if Y.ndim == 2 else len(self.classes_), rng)
        n = len(X)
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=3)
            batch = int(np.clip(self.batch_size, 1, n))
        model = self.model_
        if not incremental or not getattr(self, "_has_optimizer", False):
            model.compile(optimizer=self._optimizer(batch))
            self._has_optimizer = True
        early = self.early_stopping and not incremental
        validation = None
        if early:
            stratify = Y if is_classifier(self) and self._label_binarizer.y_type_ == \
                "multiclass" else None
            X, X_val, Y, Y_val = train_test_split(X, Y, random_state=rng, stratify=stratify,
                                                  test_size=self.validation_fraction)
            validation = (X_val, Y_val)
            n = len(X)
            batch = min(batch, n)
        rules = _EpochRules(self, n, -(-n // batch), validation)
        seed = (self._seed + self.n_iter_) % (2 ** 31)
        with self._thread_cap(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"x: values reach")  # sklearn has no such
            try:
                model.fit(X, Y, epochs=1 if incremental else self.max_iter, batch_size=batch,
                          shuffle=self.shuffle, seed=seed, verbose=0, callbacks=[rules])
            except DivergenceError as exc:   # scikit-learn's error for the same event
                raise ValueError("Solver produced non-finite parameter weights. The input data "
                                 f"may contain large values and need to be preprocessed. ({exc})"
                                 ) from exc
        if early and getattr(self, "_best_params", None) is not None:
            model.params[...] = self._best_params
            del self._best_params
        if not incremental and self.n_iter_ == self.max_iter and not model.stop_training:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)
        return self

    def fit(self, X, y):
        """Fit the model to data matrix X and target(s) y (sklearn's rules, fastnn's kernels)."""
        self._validate_params()
        return self._fit(X, y, incremental=False)

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        with self._thread_cap():
            out = self.model_.predict(X)
        return out.astype(np.float64)   # what scikit-learn returns (its checks demand it)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False      # fastnn's kernels take dense arrays only
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier`` on fastnn's kernels.

    Binary targets get one logistic output, multi-class a softmax, multi-label indicator targets
    one logistic output per label (binary cross-entropy). Differences from scikit-learn: no
    'lbfgs' solver; ``alpha`` is applied as weight decay ``alpha / batch_size`` (the last, smaller
    batch of an epoch uses the full batch size); Adam adds ``epsilon`` to the bias-corrected
    sqrt(v) (PyTorch's form); inputs are dense and computed in ``dtype`` (default float32).
    fastnn's own parameters: ``backend``, ``dtype``, ``threads`` (thread cap during fit/predict).
    """

    def _out_activation(self, n_out):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same "
                                     "classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        if self._label_binarizer.y_type_ == "multiclass":
            # class ids: the model one-hot encodes them, cheaper than LabelBinarizer's matrix
            return X, np.searchsorted(self.classes_, y)
        return X, self._label_binarizer.transform(y).astype(self.dtype)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); ``classes`` (all labels) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._validate_params()
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, incremental=True)

    def _score_rows(self, X, Y):
        labels = self.classes_[Y] if Y.ndim == 1 else self._label_binarizer.inverse_transform(Y)
        return accuracy_score(labels, self.predict(X))

    def predict(self, X):
        out = self._forward(X)
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes); per-label for multi-label targets."""
        out = self._forward(X)
        if self.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X):
        p = self.predict_proba(X)
        return np.log(np.maximum(p, np.finfo(p.dtype).tiny))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor`` on fastnn's kernels.

    Identity output and squared error; several target columns give multi-output regression.
    ``loss_`` and ``loss_curve_`` are reported as scikit-learn defines them (mean over samples
    and outputs, halved); the gradient fastnn follows sums over outputs, so with k outputs
    plain SGD takes steps k times larger than scikit-learn's (Adam is unaffected up to
    ``epsilon``). Other differences as for ``MLPClassifier``.
    """

    def _out_activation(self, n_out):
        return "identity"

    @property
    def _loss_scale(self):
        return self.n_outputs_

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if not reset and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs, the model was fitted with "
                             f"{self.n_outputs_}")
        return X, Y

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the current weights and optimiser state."""
        if not hasattr(self, "model_"):
            self._validate_params()
        return self._fit(X, y, incremental=True)

    def _score_rows(self, X, Y):
        return r2_score(Y, self._forward(X))

    def predict(self, X):
        out = self._forward(X)
        return out.ravel() if self.n_outputs_ == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

