"""The Gumbel family's public functions: Gumbel-Softmax samples and the categorical KL to uniform."""
import math
import numbers

import torch

from gentk import backend as _backend
from gentk.ops._checks import REDUCTIONS, check_dim, check_generator, kl_scale, seed_for
from gentk.ops.gumbel import reference as _ref
from gentk.ops.table import kernels


def _check_logits(fn, logits, dim):
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"gentk.{fn}: logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"gentk.{fn}: logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() == 0:
        raise ValueError(f"gentk.{fn}: logits must have at least one dimension (the categories), got a 0-d tensor")
    check_dim(fn, dim)
    if not -logits.dim() <= dim < logits.dim():
        raise IndexError(f"gentk.{fn}: dim {dim} is out of range for logits with {logits.dim()} dimensions")
    if logits.shape[dim] == 0:
        raise ValueError(f"gentk.{fn}: logits has no categories along dim {dim} (size 0)")


def _check_tau(fn, tau):
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"gentk.{fn}: tau must be a real number, got {type(tau).__name__}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"gentk.{fn}: tau must be finite and > 0, got {tau}")


def _last(t, dim):
    return t if dim in (-1, t.dim() - 1) else t.movedim(dim, -1)


def gumbel_softmax(logits, tau=1.0, hard=False, dim=-1, *, gumbels=None, generator=None, sample=True):
    """A Gumbel-Softmax (Concrete) sample: softmax((logits + g) / tau) over ``dim`` with
    g = -log(-log(u)), u uniform, drawn inside the kernel (Philox) unless ``gumbels`` is given.

    ``hard=True`` returns the one-hot of the argmax of logits + g (the first maximum on
    ties) with the soft sample's gradient (straight-through), as
    ``torch.nn.functional.gumbel_softmax`` does. ``sample=False`` leaves the noise out: the
    plain softmax(logits / tau), or with ``hard=True`` the one-hot of the argmax of logits
    (the evaluation path of Joint-VAE). Any ``dim``; the last one is the fast path.
    Backward keeps the soft output (soft samples) or regenerates the noise from the
    (seed, stream) pair (hard samples); no noise-sized tensor is stored.
    """
    _check_logits("gumbel_softmax", logits, dim)
    _check_tau("gumbel_softmax", tau)
    check_generator("gumbel_softmax", generator, logits.device)
    if gumbels is not None:
        if not sample:
            raise ValueError("gentk.gumbel_softmax: gumbels given with sample=False; give one or the other")
        if not isinstance(gumbels, torch.Tensor):
            raise TypeError(f"gentk.gumbel_softmax: gumbels must be a torch.Tensor or None, got {type(gumbels).__name__}")
        if gumbels.shape != logits.shape:
            raise ValueError(
                f"gentk.gumbel_softmax: gumbels must have logits' shape {tuple(logits.shape)}, got {tuple(gumbels.shape)}"
            )
        if gumbels.dtype != logits.dtype:
            raise TypeError(f"gentk.gumbel_softmax: gumbels is {gumbels.dtype} but logits is {logits.dtype}")
        if gumbels.device != logits.device:
            raise ValueError(f"gentk.gumbel_softmax: gumbels is on {gumbels.device} but logits is on {logits.device}")
    name = _backend.resolve("gumbel", logits.device)
    if name == "torch":
        return _ref.gumbel_softmax(logits, tau, bool(hard), dim, gumbels, generator, sample)
    seed = seed_for(logits, generator) if sample and gumbels is None else None
    x = _last(logits, dim)
    g = _last(gumbels, dim) if gumbels is not None else None
    y = kernels(name)["gumbel_softmax"](x, g, seed, float(tau), bool(hard))
    return y if x is logits else y.movedim(-1, dim)


def categorical_kl_uniform(logits, dim=-1, reduction="batchmean"):
    """KL(softmax(logits) || uniform(K)) = sum_k q_k log q_k + log K, with K = logits.shape[dim]
    and 0 log 0 = 0: the KL term of a categorical latent (Joint-VAE's KL_c).

    reduction: ``none`` (one KL per distribution: logits' shape without ``dim``), ``sum``
    (their sum), ``batchmean`` (their mean, i.e. the sum over ``dim`` averaged over every other
    dimension, as in :func:`gaussian_kl`) or ``mean`` (the sum divided by the number of
    elements, as gaussian_kl's and ``F.kl_div``'s ``mean``).
    """
    _check_logits("categorical_kl_uniform", logits, dim)
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"gentk.categorical_kl_uniform: unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}"
        )
    name = _backend.resolve("gumbel", logits.device)
    if name == "torch":
        return _ref.categorical_kl_uniform(logits, dim, reduction)
    op = kernels(name)["categorical_kl_uniform"]
    x = _last(logits, dim)
    if reduction == "none":
        return op(x, False, 1.0)
    return op(x, True, kl_scale(reduction, dim, logits))
