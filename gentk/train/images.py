"""Image grids as PNG, without torchvision."""
import math
import os

import numpy as np
import torch


def make_grid(images, nrow=None, padding=2, pad_value=0.5):
    """images [N, C, H, W] in [0, 1] (C = 1 or 3) -> uint8 array [H', W', 3] with a grey border."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"make_grid: images must be [N, 1 or 3, H, W], got {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, _, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / nrow))
    grid = torch.full((3, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_grid(path, images, nrow=None, scale=None):
    """Write images [N, C, H, W] in [0, 1] as one PNG grid, enlarged (nearest) to about 500 px."""
    from PIL import Image

    array = make_grid(images, nrow)
    img = Image.fromarray(array)
    scale = scale or max(1, 500 // img.width)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)
    return path
