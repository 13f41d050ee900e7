"""The embedded default: scikit-learn's handwritten digits (1,797 8x8 images, 10 classes,
shipped inside scikit-learn, so it works offline), resized to the model's resolution.

Like MNIST, the digit fills the central 20/28 of the frame with a dark border around it.
The train/test split is a fixed permutation (seed 0 unless asked otherwise): 80% / 20%.
"""
import functools

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

TEST_FRACTION = 0.2
MIN_RESOLUTION = 8  # the digits' own size


@functools.lru_cache(maxsize=4)
def _digits_tensors(resolution, seed):
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.tensor(raw.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(raw.target, dtype=torch.long)
    inner = max(1, round(resolution * 20 / 28))
    images = F.interpolate(images, size=(inner, inner), mode="bilinear", align_corners=False).clamp_(0, 1)
    before = (resolution - inner) // 2
    images = F.pad(images, (before, resolution - inner - before, before, resolution - inner - before))
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[perm].contiguous(), labels[perm].contiguous()


def digits(split="train", resolution=28, seed=0):
    """TensorDataset of (image [1, R, R] in [0, 1], label) for split 'train' or 'test'."""
    if split not in ("train", "test"):
        raise ValueError(f"gentk.data.digits: split must be 'train' or 'test', got {split!r}")
    if not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
        raise ValueError(f"gentk.data.digits: resolution must be an int >= {MIN_RESOLUTION}, got {resolution!r}")
    images, labels = _digits_tensors(resolution, seed)
    n_test = int(len(images) * TEST_FRACTION)
    if split == "test":
        return TensorDataset(images[:n_test], labels[:n_test])
    return TensorDataset(images[n_test:], labels[n_test:])
