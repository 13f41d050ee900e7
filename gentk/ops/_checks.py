"""Argument checks and helpers the public functions of several op families share."""
import math

import torch

REDUCTIONS = ("none", "sum", "mean", "batchmean")


def check_dim(fn, dim):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"gentk.{fn}: dim must be an int, got {type(dim).__name__}")


def check_generator(fn, generator, device):
    """Checked on every backend, also where no noise is drawn (eps given)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"gentk.{fn}: generator must be a torch.Generator or None, got {type(generator).__name__}")
    if torch.device(generator.device).type != device.type:
        raise ValueError(f"gentk.{fn}: generator is on {generator.device} but the tensors are on {device}")


def kl_scale(reduction, dim, mu):
    """The factor that turns the sum of KL elements into the reduction asked for."""
    n = mu.numel()
    if reduction == "sum":
        return 1.0
    if reduction == "mean":
        return 1.0 / n if n else math.nan
    # batchmean: the mean over every dimension but `dim` (of sums that are 0 when `dim` is empty)
    rows = math.prod([size for i, size in enumerate(mu.shape) if i != dim % mu.dim()])  # a list: dynamo traces it
    return 1.0 / rows if rows else math.nan


def seed_for(mu, generator):
    """(seed, stream) for in-kernel Philox noise, drawn from torch's generator (checked by
    :func:`check_generator`)."""
    return torch.randint(
        -(2**63), 2**63 - 1, (2,), dtype=torch.int64, device=mu.device, generator=generator
    )
