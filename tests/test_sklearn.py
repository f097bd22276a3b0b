"""fastnn.sklearn: scikit-learn's own estimator checks, its tools, and sklearn's rules."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

from tests._require import require
from tests.helpers import assert_missing_module_names_extra

require("sklearn", "1.6")

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([
    MLPClassifier(), MLPRegressor(),
    MLPClassifier(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5,
                  dtype="float64", backend="numpy"),
    MLPRegressor(solver="sgd", activation="tanh", learning_rate="adaptive", dtype="float64"),
])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)


def _tiny_step(cls, **kw):
    """An estimator whose one epoch barely moves the weights: its loss is the initial loss."""
    return cls(solver="sgd", learning_rate_init=1e-12, momentum=0.0, max_iter=1,
               random_state=3, **kw)


@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel", "regression-2"])
def test_initial_weights_and_loss_match_scikit_learn(target):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(250, 6))
    if target == "binary":
        y, cls, sk = (x[:, 0] > 0).astype(int), MLPClassifier, sk_nn.MLPClassifier
    elif target == "multiclass":
        y, cls, sk = x[:, :4].argmax(1), MLPClassifier, sk_nn.MLPClassifier
    elif target == "multilabel":
        y, cls, sk = (x[:, :3] > 0).astype(int), MLPClassifier, sk_nn.MLPClassifier
    else:
        y, cls, sk = x[:, :2] @ [[1.0, 2.0], [0.5, -1.0]], MLPRegressor, sk_nn.MLPRegressor
    kw = dict(hidden_layer_sizes=(7, 5), activation="logistic", alpha=0.3, batch_size=64)
    ours = _tiny_step(cls, dtype="float64", **kw).fit(x, y)
    theirs = _tiny_step(sk, **kw).fit(x, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.out_activation_ == theirs.out_activation_
    assert (ours.n_outputs_, ours.n_layers_) == (theirs.n_outputs_, theirs.n_layers_)


def test_digits_accuracy_matches_scikit_learn(digits):
    x, xt, y, yt = digits
    ours = MLPClassifier(random_state=0).fit(x, y).score(xt, yt)
    theirs = sk_nn.MLPClassifier(random_state=0).fit(x, y).score(xt, yt)
    assert ours > 0.95
    assert abs(ours - theirs) < 0.03


@pytest.mark.parametrize("learning_rate", ["constant", "adaptive"])
def test_stopping_rule_counts_epochs_as_scikit_learn_does(digits, learning_rate):
    x, _, y, _ = digits
    kw = dict(solver="sgd", tol=100.0, n_iter_no_change=3, learning_rate=learning_rate,
              hidden_layer_sizes=(8,), random_state=0)
    ours = MLPClassifier(**kw).fit(x, y)
    theirs = sk_nn.MLPClassifier(**kw).fit(x, y)
    assert ours.n_iter_ == theirs.n_iter_ == len(ours.loss_curve_)
    assert ours.t_ == theirs.t_ == ours.n_iter_ * len(x)
    if learning_rate == "adaptive":
        assert ours.model_.optimizer.base_lr <= 1e-6 < ours.model_.optimizer.base_lr * 5


def test_invscaling_sets_scikit_learns_rate():
    x = np.random.default_rng(1).normal(size=(40, 3))
    est = MLPRegressor(solver="sgd", learning_rate="invscaling", power_t=0.25, max_iter=4,
                       random_state=0).fit(x, x.sum(1))
    assert est.model_.optimizer.base_lr == pytest.approx(0.001 / (4 * 40 + 1) ** 0.25)


def test_early_stopping_records_validation_scores(digits):
    x, _, y, _ = digits
    est = MLPClassifier(early_stopping=True, tol=1.0, n_iter_no_change=2,
                        random_state=0).fit(x, y)
    assert est.best_loss_ is None
    assert len(est.validation_scores_) == est.n_iter_ == 4
    assert est.best_validation_score_ == max(est.validation_scores_)
    plain = MLPClassifier(max_iter=3, random_state=0).fit(x, y)
    assert plain.validation_scores_ is None and plain.best_loss_ == min(plain.loss_curve_)


def test_a_convergence_warning_when_max_iter_is_reached(digits):
    x, _, y, _ = digits
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(2\\)"):
        MLPClassifier(max_iter=2).fit(x, y)


def test_partial_fit_runs_one_epoch_per_call_and_checks_classes(digits):
    x, _, y, _ = digits
    est = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(x, y)
    est.partial_fit(x[:500], y[:500], classes=np.arange(10))
    est.partial_fit(x[500:], y[500:])
    assert (est.n_iter_, est.t_) == (2, len(x))
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(x[:5], np.full(5, 11))
    reg = MLPRegressor(random_state=0)
    for _ in range(3):
        reg.partial_fit(x, y.astype(float))
    assert reg.n_iter_ == 3 and len(reg.loss_curve_) == 3


def test_warm_start_continues_and_partial_fit_refuses_early_stopping(digits):
    x, _, y, _ = digits
    est = MLPClassifier(max_iter=3, random_state=0, warm_start=True).fit(x, y)
    first = list(est.loss_curve_)
    weights = est.coefs_[0].copy()
    est.fit(x, y)
    assert est.n_iter_ == 6 and est.loss_curve_[:3] == first
    assert est.loss_curve_[3] < first[0] and not np.array_equal(est.coefs_[0], weights)
    with pytest.raises(ValueError, match="same classes"):
        est.fit(x[y < 5], y[y < 5])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(x, y, classes=np.arange(10))


def test_multilabel_and_multioutput_targets():
    x, ys = make_multilabel_classification(n_samples=300, n_classes=4, random_state=0)
    x = StandardScaler().fit_transform(x)
    clf = MLPClassifier(random_state=0, max_iter=300).fit(x, ys)
    assert clf.out_activation_ == "logistic" and clf.predict(x).shape == ys.shape
    proba = clf.predict_proba(x)
    assert proba.shape == ys.shape and proba.min() >= 0 and proba.max() <= 1
    assert np.array_equal(clf.predict(x), (proba > 0.5).astype(int))
    assert clf.score(x, ys) > 0.6       # subset accuracy: every label of a row right
    targets = np.column_stack([x[:, 0] - x[:, 1], 0.5 * x[:, 2]])
    reg = MLPRegressor(random_state=0, max_iter=300).fit(x, targets)
    assert reg.predict(x).shape == (300, 2) and reg.score(x, targets) > 0.95


def test_pipeline_grid_search_with_two_jobs_cross_val_score_and_clone(digits):
    x, xt, y, yt = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0, threads=1))
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(16,), (32,)]}, cv=2,
                          n_jobs=2).fit(x, y)
    assert search.best_params_["mlpclassifier__hidden_layer_sizes"] in [(16,), (32,)]
    assert search.score(xt, yt) > 0.9
    scores = cross_val_score(MLPClassifier(max_iter=30, random_state=0), x, y, cv=3)
    assert scores.min() > 0.85
    fitted = MLPClassifier(max_iter=5, random_state=0, backend="numpy").fit(x, y)
    fresh = clone(fitted)
    assert not hasattr(fresh, "model_") and fresh.get_params() == fitted.get_params()


def test_fitted_estimators_pickle_and_deepcopy_exactly(backend, digits):
    x, xt, y, _ = digits
    est = MLPClassifier(max_iter=3, random_state=0, backend=backend).fit(x, y)
    for twin in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert np.array_equal(twin.predict_proba(xt), est.predict_proba(xt))
        assert twin.model_.backend.name == backend
    twin = pickle.loads(pickle.dumps(est))
    est.partial_fit(x, y)
    twin.partial_fit(x, y)
    assert np.array_equal(twin.coefs_[0], est.coefs_[0])


def test_coefs_are_views_of_the_network_parameters(digits):
    x, _, y, _ = digits
    est = MLPRegressor(max_iter=2, random_state=0).fit(x, y.astype(float))
    est.coefs_[0][...] = 0.0            # every row now gives relu(b0) @ W1 + b1
    est.intercepts_[-1][...] = 1.5
    hidden = np.maximum(est.intercepts_[0].astype(np.float64), 0)
    expected = hidden @ est.coefs_[1].astype(np.float64)[:, 0] + 1.5
    np.testing.assert_allclose(est.predict(x[:3]), np.full(3, expected), rtol=1e-5)
    assert np.all(est.model_.layers[0].weights == 0)
    with pytest.raises(AttributeError):
        MLPClassifier().coefs_      # noqa: B018 - not fitted


def test_verbose_threads_and_backend_parameters(digits, capsys):
    x, _, y, _ = digits
    before = fastnn.get_num_threads()
    est = MLPClassifier(max_iter=2, verbose=True, threads=1, backend="numpy",
                        dtype="float64").fit(x, y)
    assert capsys.readouterr().out.startswith("Iteration 1, loss = ")
    assert fastnn.get_num_threads() == before
    assert est.model_.backend.name == "numpy" and est.coefs_[0].dtype == np.float64
    with pytest.raises(ValueError, match="backend"):
        MLPClassifier(backend="gpu").fit(x, y)
    with pytest.raises(ValueError, match="solver"):
        MLPClassifier(solver="lbfgs").fit(x, y)


def test_divergence_raises_scikit_learns_value_error():
    x = np.random.default_rng(0).normal(size=(200, 5))
    est = MLPRegressor(solver="sgd", learning_rate_init=10.0, max_iter=50, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameter weights.*diverged in epoch"):
        est.fit(x, 1e3 * x.sum(1))
    assert all(np.isfinite(w).all() for w in est.coefs_)


def test_feature_names_are_recorded_with_pandas(digits):
    pd = pytest.importorskip("pandas")
    x, _, y, _ = digits
    frame = pd.DataFrame(x, columns=[f"p{i}" for i in range(x.shape[1])])
    est = MLPClassifier(max_iter=2).fit(frame, y)
    assert list(est.feature_names_in_) == list(frame.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(frame)


def test_a_missing_scikit_learn_names_the_extra():
    assert_missing_module_names_extra("sklearn", "sklearn")
