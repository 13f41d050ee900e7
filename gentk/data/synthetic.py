"""Image-to-image data sets derived from the embedded digits, so pix2pix, CycleGAN and
StarGAN have an offline default.

- ``digits_edges`` (paired): A = digit, B = its edge map (morphological gradient:
  dilation minus erosion), pixel-aligned, like pix2pix's edges -> photos sets.
- ``digits_thickness`` (unpaired): domain A = thin strokes (eroded), domain B = thick
  strokes (dilated), drawn from disjoint halves of the split so no image has its twin.
- ``digits_colour`` (multi-domain): RGB digits with attributes red / green / blue (one of
  the three) and thick (0 or 1), a small stand-in for CelebA's attribute labels.
"""
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from gentk.data.digits import digits

COLOUR_ATTRIBUTES = ("red", "green", "blue", "thick")
_COLOURS = torch.tensor([[1.0, 0.15, 0.15], [0.15, 1.0, 0.15], [0.2, 0.35, 1.0]])


def dilate(x, k=3):
    return F.max_pool2d(x, k, stride=1, padding=k // 2)


def erode(x, k=3):
    return -F.max_pool2d(-x, k, stride=1, padding=k // 2)


def edge_map(x):
    return (dilate(x) - erode(x)).clamp(0, 1)


def digits_edges(split="train", resolution=28, seed=0):
    """TensorDataset of (digit, edge map), both [1, R, R] in [0, 1]."""
    images, _ = digits(split, resolution, seed).tensors
    return TensorDataset(images, edge_map(images))


class Unpaired(Dataset):
    """Item i: (a[i mod len(a)], a random b): unpaired domains for CycleGAN. B is drawn with
    torch's generator, so the trainer's seed fixes the pairing."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __len__(self):
        return max(len(self.a), len(self.b))

    def __getitem__(self, index):
        return self.a[index % len(self.a)], self.b[int(torch.randint(len(self.b), ()))]


def digits_thickness(split="train", resolution=28, seed=0):
    """Unpaired (thin digit, thick digit) from disjoint halves; B is drawn at random."""
    images, _ = digits(split, resolution, seed).tensors
    half = len(images) // 2
    return Unpaired(erode(images[:half] * 1.5).clamp(0, 1), dilate(images[half:]))


def digits_colour(split="train", resolution=28, seed=0):
    """TensorDataset of (RGB digit [3, R, R] in [0, 1], attributes [4] in {0, 1})."""
    images, labels = digits(split, resolution, seed).tensors
    g = torch.Generator().manual_seed(seed + 1)
    colour = torch.randint(3, (len(images),), generator=g)
    thick = torch.randint(2, (len(images),), generator=g)
    shapes = torch.where(thick.view(-1, 1, 1, 1).bool(), dilate(images), images)
    rgb = shapes * _COLOURS[colour].view(-1, 3, 1, 1)
    attrs = torch.cat([F.one_hot(colour, 3).float(), thick.float().unsqueeze(1)], dim=1)
    return TensorDataset(rgb.contiguous(), attrs)
