"""Pure-PyTorch reference of the Gumbel family: the truth in tests and the ``torch``
backend. (The benchmarks time ``torch.nn.functional.gumbel_softmax`` as ``eager`` and
``compile`` for gumbel_softmax, and :func:`categorical_kl_uniform` below for the KL.)"""
import math

import torch


def gumbel_noise(shape, dtype, device, generator=None):
    """Gumbel(0, 1) samples -log(-log(u)), u uniform clamped away from 0 and 1."""
    u = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    finfo = torch.finfo(dtype)
    u = u.clamp(finfo.tiny, 1 - finfo.eps)
    return -torch.log(-torch.log(u))


def gumbel_softmax(logits, tau=1.0, hard=False, dim=-1, gumbels=None, generator=None, sample=True):
    """softmax((logits + g) / tau) over ``dim``; ``hard``: the one-hot of the argmax of
    logits + g (the first maximum on ties) with the soft sample's gradient. ``sample=False``
    leaves the noise out."""
    if sample:
        if gumbels is None:
            gumbels = gumbel_noise(logits.shape, logits.dtype, logits.device, generator)
        s = logits + gumbels
    else:
        s = logits
    y = torch.softmax(s / tau, dim)
    if not hard:
        return y
    index = s.argmax(dim, keepdim=True)
    y_hard = torch.zeros_like(y).scatter_(dim, index, 1.0)
    return y_hard - y.detach() + y


def categorical_kl_uniform_rows(logits, dim=-1):
    """KL(softmax(logits) || uniform(K)) = sum q log q + log K for every row along ``dim``."""
    log_q = torch.log_softmax(logits, dim)
    q = log_q.exp()
    # 0 log 0 = 0, with no NaN in the gradient of -inf logits
    plogp = q * torch.where(q > 0, log_q, torch.zeros_like(log_q))
    return plogp.sum(dim) + math.log(logits.shape[dim])


def categorical_kl_uniform(logits, dim=-1, reduction="batchmean"):
    kl = categorical_kl_uniform_rows(logits, dim)
    if reduction == "none":
        return kl
    if reduction == "sum":
        return kl.sum()
    if reduction == "mean":  # over elements, as gaussian_kl's and F.kl_div's "mean"
        return kl.sum() / logits.numel()
    return kl.mean()  # batchmean: the mean over rows (distributions)
