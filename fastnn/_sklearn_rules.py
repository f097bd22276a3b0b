"""sklearn's per-epoch rules for fastnn.sklearn's estimators, as a fastnn callback.

After each epoch: sklearn's loss (with its L2 penalty), ``tol``/``n_iter_no_change`` on the
training loss or on the validation score (``early_stopping``), and the 'invscaling' and
'adaptive' learning rates. Needs nothing from scikit-learn itself.
"""

from __future__ import annotations

import numpy as np

from .callbacks import Callback


class _EpochRules(Callback):
    """sklearn's end-of-epoch bookkeeping and stopping rules, run inside ``Sequential.fit``."""

    def __init__(self, est, n_train, n_batches, validation):
        self.est, self.n_train, self.n_batches = est, n_train, n_batches
        self.validation = validation            # (X_val, y_val) or None

    def on_epoch_end(self, model, epoch, logs):
        est = self.est
        weights = sum(float(np.dot(w.ravel(), w.ravel())) for w in est.coefs_)
        # sklearn adds 0.5 * alpha * |W|^2 / batch_size to each batch's loss
        penalty = 0.5 * est.alpha * weights * self.n_batches / self.n_train
        est.loss_ = float(logs["loss"]) / est._loss_scale + penalty
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        self._update_no_improvement_count(model)
        opt = model.optimizer
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            opt.base_lr = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
            if est.solver == "sgd" and est.learning_rate == "adaptive" and opt.base_lr > 1e-6:
                opt.base_lr /= 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(msg + f" Setting learning rate to {opt.base_lr:f}")
            else:
                if est.verbose:
                    print(msg + " Stopping.")
                model.stop_training = True

    def _update_no_improvement_count(self, model):
        est = self.est
        if self.validation is not None:
            score = est._score_rows(*self.validation)
            est.validation_scores_.append(score)
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_params = model.params.copy()
        else:
            if est.loss_curve_[-1] > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, est.loss_curve_[-1])

