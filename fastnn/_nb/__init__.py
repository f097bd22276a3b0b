"""Numba kernels of the fastnn backend (fastnn/backends/numba_backend.py); see jit.py."""
