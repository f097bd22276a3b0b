"""The benchmark harness behind ``fastnn bench``, shipped with the package.

- ``config``: the reference configurations, MNIST slices, thread and round settings, Trainer
- ``machine``: CPU, versions, sgemm rate, background load
- ``compare``: the one-table comparison (``fastnn bench``; ``--quick`` for a smoke run)
- ``peers``: the NumPy baseline (``numpy_mlp``), PyTorch eager and JAX jit, like for like
- ``time_to_accuracy``: wall time to 98% MNIST test accuracy

The pytest-benchmark suite in the repository's ``benchmarks/`` folder imports from here.
"""
