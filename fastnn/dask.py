"""fastnn on Dask: predictions over chunked arrays, and a thread cap for Dask workers.

``predict(model, x)`` maps ``model.predict`` over the row blocks of a Dask array. The model goes
into the graph once, as one key (``dask.delayed``) that every block task depends on: the
scheduler sends its pickle (safetensors bytes, see Sequential.__getstate__) to each worker once,
not once per block.

``ThreadCap`` is a worker plugin: on every worker it sets fastnn's threads (and the BLAS/OpenMP
pools, through threadpoolctl) to the worker's own thread count, so n_workers x threads_per_worker
never exceeds the cores. Register it with ``client.register_plugin(ThreadCap())``.
"""

from __future__ import annotations

import numpy as np

try:   # Dask refuses duck-typed plugins; without distributed, ThreadCap is not usable anyway
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:
    _WorkerPlugin = object

__all__ = ["predict", "predict_classes", "ThreadCap"]


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise ImportError("fastnn.dask needs Dask: pip install 'fastnn[dask]'") from exc
    return dask, da


def _predict_block(block, model, method):
    out = getattr(model, method)(np.ascontiguousarray(block, dtype=model.dtype))
    return out if out.ndim == 2 else out.reshape(len(out))


def _mapped(model, x, method):
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a fastnn.Sequential, got {type(model).__name__}")
    dask, da = _dask()
    if not isinstance(x, da.Array):
        raise TypeError(f"x: expected a dask.array.Array, got {type(x).__name__}; for NumPy "
                        "data call model.predict directly")
    if x.ndim != 2 or x.shape[1] != model.input_size:
        raise ValueError(f"x: expected a 2-D array with {model.input_size} columns, got shape "
                         f"{x.shape}")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"x: expected numbers, got dtype {x.dtype}")
    x = x.rechunk({1: -1})                      # a block must hold whole rows
    shipped = dask.delayed(model, pure=True)    # one key in the graph, whatever the blocks
    kw = {"model": shipped, "method": method}
    if method == "predict":
        return x.map_blocks(_predict_block, dtype=model.dtype,
                            chunks=(x.chunks[0], (model.output_size,)), **kw)
    return x.map_blocks(_predict_block, dtype=np.int64, chunks=(x.chunks[0],), drop_axis=1,
                        **kw)


def predict(model, x):
    """``model.predict`` over a Dask array of shape (N, input_size): a lazy (N, n_out) array.

    Blocks run where the scheduler puts them (threads, processes or a cluster); call
    ``.compute()`` or store the result. Equal to ``model.predict(x.compute())`` row for row.
    """
    return _mapped(model, x, "predict")


def predict_classes(model, x):
    """``model.predict_classes`` over a Dask array: a lazy (N,) int64 array."""
    return _mapped(model, x, "predict_classes")


class ThreadCap(_WorkerPlugin):
    """Dask worker plugin: fastnn (and BLAS/OpenMP) use the worker's own thread count.

    Dask's nanny already sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in worker processes, but fastnn's
    own kernels default to every CPU the process may use; this plugin caps them. ``threads``
    overrides the count (default: the worker's ``nthreads``).
    """

    name = "fastnn-thread-cap"

    def __init__(self, threads=None):
        self.threads = threads

    def setup(self, worker):
        from .threads import set_num_threads

        set_num_threads(self.threads or worker.state.nthreads)

    def __repr__(self):
        return f"ThreadCap(threads={self.threads!r})"
