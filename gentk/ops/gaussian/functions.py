"""The Gaussian family's public functions: the reparameterization trick and the KL to N(0, I).

Each checks its arguments, picks the backend (:mod:`gentk.backend`) and calls the
registered ``gentk::`` op, or the pure-PyTorch reference for the ``torch`` backend."""

import torch

from gentk import backend as _backend
from gentk.ops._checks import REDUCTIONS, check_dim, check_generator, kl_scale, seed_for
from gentk.ops.gaussian import reference as _ref
from gentk.ops.table import kernels


def _check_pair(fn, mu, logvar):
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"gentk.{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"gentk.{fn}: {name} must be a floating-point tensor, got dtype {t.dtype}")
    if mu.shape != logvar.shape:
        raise ValueError(
            f"gentk.{fn}: mu and logvar must have the same shape, got mu {tuple(mu.shape)} "
            f"and logvar {tuple(logvar.shape)}"
        )
    if mu.dtype != logvar.dtype:
        raise TypeError(f"gentk.{fn}: mu is {mu.dtype} but logvar is {logvar.dtype}")
    if mu.device != logvar.device:
        raise ValueError(f"gentk.{fn}: mu is on {mu.device} but logvar is on {logvar.device}")


def _check_eps(fn, eps, mu):
    if eps is None:
        return
    if not isinstance(eps, torch.Tensor):
        raise TypeError(f"gentk.{fn}: eps must be a torch.Tensor or None, got {type(eps).__name__}")
    if eps.shape != mu.shape:
        raise ValueError(f"gentk.{fn}: eps must have mu's shape {tuple(mu.shape)}, got {tuple(eps.shape)}")
    if eps.dtype != mu.dtype:
        raise TypeError(f"gentk.{fn}: eps is {eps.dtype} but mu is {mu.dtype}")
    if eps.device != mu.device:
        raise ValueError(f"gentk.{fn}: eps is on {eps.device} but mu is on {mu.device}")


def _check_reduction(fn, reduction, dim, mu):
    if reduction not in REDUCTIONS:
        raise ValueError(f"gentk.{fn}: unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
    check_dim(fn, dim)  # whatever the reduction: a bad dim is never ignored
    if reduction == "batchmean":
        if mu.dim() == 0:
            raise ValueError(f"gentk.{fn}: reduction 'batchmean' needs at least one dimension, got a 0-d mu")
        if not -mu.dim() <= dim < mu.dim():
            raise IndexError(f"gentk.{fn}: dim {dim} is out of range for mu with {mu.dim()} dimensions")


def reparameterize(mu, logvar, *, eps=None, generator=None):
    """z = mu + eps * exp(logvar / 2).

    With ``eps=None`` the standard normal noise is drawn inside the kernel and
    regenerated in backward. Gradients flow to ``mu``, ``logvar`` (and ``eps`` if given).
    """
    _check_pair("reparameterize", mu, logvar)
    _check_eps("reparameterize", eps, mu)
    check_generator("reparameterize", generator, mu.device)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.reparameterize(mu, logvar, eps, generator)
    seed = None if eps is not None else seed_for(mu, generator)
    return kernels(name)["reparameterize"](mu, logvar, eps, seed)


def gaussian_kl(mu, logvar, *, reduction="batchmean", dim=-1):
    """KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).

    reduction: ``none`` (per element), ``sum``, ``mean`` (over elements) or
    ``batchmean`` (sum over ``dim``, mean over the rest: the usual VAE term).
    """
    _check_pair("gaussian_kl", mu, logvar)
    _check_reduction("gaussian_kl", reduction, dim, mu)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.gaussian_kl(mu, logvar, reduction, dim)
    op = kernels(name)["gaussian_kl"]
    if reduction == "none":
        return op(mu, logvar, False, 1.0)
    return op(mu, logvar, True, kl_scale(reduction, dim, mu))


def reparameterize_kl(mu, logvar, *, eps=None, reduction="batchmean", dim=-1, generator=None):
    """``(reparameterize(mu, logvar), gaussian_kl(mu, logvar))`` in one pass that reads
    mu and logvar once, forward and backward."""
    _check_pair("reparameterize_kl", mu, logvar)
    _check_eps("reparameterize_kl", eps, mu)
    _check_reduction("reparameterize_kl", reduction, dim, mu)
    check_generator("reparameterize_kl", generator, mu.device)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.reparameterize_kl(mu, logvar, eps, reduction, dim, generator)
    seed = None if eps is not None else seed_for(mu, generator)
    op = kernels(name)["reparameterize_kl"]
    if reduction == "none":
        return op(mu, logvar, eps, seed, False, 1.0)
    return op(mu, logvar, eps, seed, True, kl_scale(reduction, dim, mu))
