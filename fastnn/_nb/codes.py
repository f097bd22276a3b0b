"""The integer codes the kernels branch on, imported from where they are defined.

This is the ONE import block of fastnn._nb for them: when the codes move to their own module
(fastnn.codes), only these lines change. Numba freezes module-level ints as constants.
"""

from ..activations import IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SOFTMAX, TANH
from ..backends.numpy_backend import ACC_ARGMAX, ACC_BINARY, ACC_NONE, ADAM, MOMENTUM, NESTEROV, SGD
from ..losses import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE

__all__ = ["IDENTITY", "SIGMOID", "RELU", "TANH", "LEAKY_RELU", "SOFTMAX", "LEAKY_SLOPE",
           "MSE", "CROSS_ENTROPY", "BINARY_CROSS_ENTROPY", "SGD", "MOMENTUM", "NESTEROV", "ADAM",
           "ACC_NONE", "ACC_ARGMAX", "ACC_BINARY"]
