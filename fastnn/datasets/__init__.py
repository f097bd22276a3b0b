"""Data sets (MNIST, toy sets), the IDX file format and preprocessing helpers."""

from .idx import IDXFormatError, read_idx, read_mnist_images, read_mnist_labels, write_idx
from .mnist import MNISTUnavailableError, load_mnist, mnist_cache_dir
from .preprocessing import MaxScaler, StandardScaler, from_one_hot, one_hot, train_val_split
from .toy import make_blobs, make_regression_scores, sleep_study, xor

__all__ = [
    "IDXFormatError",
    "read_idx",
    "write_idx",
    "read_mnist_images",
    "read_mnist_labels",
    "MNISTUnavailableError",
    "load_mnist",
    "mnist_cache_dir",
    "MaxScaler",
    "StandardScaler",
    "train_val_split",
    "one_hot",
    "from_one_hot",
    "make_blobs",
    "make_regression_scores",
    "sleep_study",
    "xor",
]
