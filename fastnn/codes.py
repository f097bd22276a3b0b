"""The integer codes and constants shared by the Model API and every backend's kernels.

This is the one home of these facts. The C kernels repeat them as enums in csrc/fnn.h (C cannot
import Python); tests/test_codes.py checks that file, and the compiled extension, against this
module. Codes are what the kernels see; never renumber them (saved models store names).
"""

from __future__ import annotations

# ---- activations (fastnn.activations holds their NumPy maths) ---------------------------------
IDENTITY = 0
SIGMOID = 1
RELU = 2
TANH = 3
LEAKY_RELU = 4
SOFTMAX = 5
ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "relu": RELU, "tanh": TANH,
               "leaky_relu": LEAKY_RELU, "softmax": SOFTMAX}

# leaky_relu(z) = z for z > 0, LEAKY_SLOPE * z otherwise (forward and derivative).
LEAKY_SLOPE = 0.01

# ---- losses (fastnn.losses holds their NumPy maths) -------------------------------------------
MSE = 0
CROSS_ENTROPY = 1
BINARY_CROSS_ENTROPY = 2
LOSSES = {"mse": MSE, "cross_entropy": CROSS_ENTROPY,
          "binary_cross_entropy": BINARY_CROSS_ENTROPY}

# ---- optimiser kinds (Optimizer.kind; fastnn.optimizers builds the objects) -------------------
SGD = 0           # p -= lr g
MOMENTUM = 1      # v = mu v + g; p -= lr v                 (PyTorch's convention)
NESTEROV = 2      # v = mu v + g; p -= lr (g + mu v)
ADAM = 3          # torch.optim.Adam, bias-corrected
OPTIMIZER_KINDS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM}

# ---- accuracy modes (how train_steps counts correct predictions) ------------------------------
ACC_NONE = 0      # regression: no accuracy
ACC_ARGMAX = 1    # argmax of the output row == argmax of the target row
ACC_BINARY = 2    # (output > 0.5) == (target > 0.5), one sigmoid unit
ACC_MODES = {"none": ACC_NONE, "argmax": ACC_ARGMAX, "binary": ACC_BINARY}

# ---- hyper-parameter slots: the float64 vector a backend may hand its kernels -----------------
HP_LR = 0         # learning rate of this epoch (after the schedule)
HP_MU = 1         # momentum
HP_B1 = 2         # Adam beta1
HP_B2 = 3         # Adam beta2
HP_EPS = 4        # Adam eps
HP_WD = 5         # weight decay (L2 on weights, not biases)
N_HP = 6


def names_of(table: dict) -> dict:
    """code -> name for one of the tables above."""
    return {code: name for name, code in table.items()}
