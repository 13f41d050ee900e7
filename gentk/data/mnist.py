"""MNIST (and anything else in the IDX format) from a directory the user names.

Layout: ``ROOT/train-images-idx3-ubyte[.gz]``, ``ROOT/train-labels-idx1-ubyte[.gz]`` for the
training split and ``ROOT/t10k-images-idx3-ubyte[.gz]``, ``ROOT/t10k-labels-idx1-ubyte[.gz]``
for the test split (any file starting ``train-images`` / ``t10k-images`` etc. is accepted).
torchvision's downloader is used only when asked (``download=True``) and installed.

A folder with only the 10,000 test files keeps the split gentk used before the training files
were there: the first 8,000 test images train and the last 2,000 test, so a run trained there is
never scored on its own training images (one line on stderr says so). ``whole_test=True`` (what
``gentk eval`` asks for when the folder is not the one the run was trained on) reads all of them.
"""
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from gentk.data.errors import DataError

LAYOUT = ("ROOT/{prefix}-images-idx3-ubyte[.gz] and ROOT/{prefix}-labels-idx1-ubyte[.gz] "
          "(MNIST's IDX files, gzipped or not)")
_PREFIX = {"train": "train", "test": "t10k"}
TEST_ONLY_TRAIN = 8000  # a folder of only t10k-*: its first 8,000 images train, the rest test
_told_test_only = set()
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read one IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(path, f"cannot read IDX file: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(path, "not an IDX file (bad magic number)",
                        "an IDX header: two zero bytes, a type byte, a dimension count")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(path, "IDX header is truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(path, f"IDX body has {len(data) - header} bytes but its header {shape} "
                              f"needs {expected} (truncated or corrupt file)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(root, stem):
    for name in sorted(os.listdir(root)):
        if name.startswith(stem) and not name.startswith("."):
            return os.path.join(root, name)
    return None


def mnist(root, split="train", resolution=28, download=False, whole_test=False):
    """TensorDataset of (image [1, R, R] in [0, 1], label) read from IDX files under root."""
    if split not in _PREFIX:
        raise ValueError(f"gentk.data.mnist: split must be 'train' or 'test', got {split!r}")
    prefix = _PREFIX[split]
    layout = LAYOUT.format(prefix=prefix)
    if root is None:
        raise DataError("--data-root", "MNIST needs a directory", layout)
    root = os.path.expanduser(str(root))
    if download and (not os.path.isdir(root) or _find(root, f"{prefix}-images") is None):
        _download(root)
    if not os.path.isdir(root):
        raise DataError(root, "no such directory", layout)
    test_only = _find(root, "train-images") is None and _find(root, "train-labels") is None and \
        _find(root, "t10k-images") is not None and not (split == "test" and whole_test)
    if test_only:
        prefix = "t10k"
    images_path = _find(root, f"{prefix}-images")
    labels_path = _find(root, f"{prefix}-labels")
    if images_path is None or labels_path is None:
        missing = f"{prefix}-images" if images_path is None else f"{prefix}-labels"
        raise DataError(root, f"no {missing}* file for the {split} split", layout)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(images_path, f"images must be 3-d (count, rows, cols), got shape {images.shape}")
    if len(images) == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(images_path, f"holds no pixels: shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(labels_path, f"labels must be 1-d with one label per image ({len(images)}), "
                                     f"got shape {labels.shape}")
    if labels.dtype.kind not in "iu" or labels.min() < 0:
        raise DataError(labels_path, "labels must be integers >= 0")
    finite = np.isfinite(images).reshape(len(images), -1).all(1)
    if not finite.all():
        raise DataError(images_path, f"image {int(np.argmin(finite))} has NaN or infinite pixels")
    if test_only:
        if len(images) <= TEST_ONLY_TRAIN:  # too few to split: the test files are only the test split
            if split == "train":
                raise DataError(root, "no train-images* file for the train split", LAYOUT.format(prefix="train"))
        else:
            if root not in _told_test_only:
                _told_test_only.add(root)
                print(f"gentk: {root} holds only MNIST's test files (t10k-*), no train-*: its first "
                      f"{TEST_ONLY_TRAIN:,} images are the training split, the other {len(images) - TEST_ONLY_TRAIN:,} "
                      f"the test split", file=sys.stderr)
            part = slice(None, TEST_ONLY_TRAIN) if split == "train" else slice(TEST_ONLY_TRAIN, None)
            images, labels = images[part], labels[part]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0, 1)
    return TensorDataset(x.contiguous(), torch.from_numpy(labels.astype(np.int64)))


def binarized(dataset, seed=0):
    """A TensorDataset whose images are drawn once as pixels ~ Bernoulli(grey level) with a
    generator seeded by ``seed``: the fixed binary test set that MNIST likelihoods are reported on."""
    x, *rest = dataset.tensors
    return TensorDataset(torch.bernoulli(x.clamp(0, 1), generator=torch.Generator().manual_seed(seed)), *rest)


def _download(root):
    try:
        from torchvision.datasets import MNIST
    except ImportError:
        raise DataError(root, "download asked for but torchvision is not installed; put the IDX files "
                              "there yourself", LAYOUT.format(prefix="train")) from None
    dataset = MNIST(root, download=True)
    # torchvision writes ROOT/MNIST/raw/*; copy nothing, just point the reader there.
    raw = os.path.join(root, "MNIST", "raw")
    for name in os.listdir(raw):
        target = os.path.join(root, name)
        if not os.path.exists(target):
            os.symlink(os.path.join(raw, name), target)
    del dataset
