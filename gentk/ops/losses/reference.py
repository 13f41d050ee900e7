"""Pure-PyTorch reference of the loss family: the truth in tests, the ``torch`` backend,
and what the benchmarks call ``eager`` (and ``compile``, under torch.compile).

Adversarial modes (``real``/``fake``: the critic's logits):

- ``bce``: BCE-with-logits of real against ``real_label`` plus fake against ``fake_label``;
  the generator's form is the non-saturating BCE of fake against 1.
- ``lsgan``: squared error of real against ``real_label`` plus fake against ``fake_label``;
  generator: squared error of fake against 1.
- ``wgan``: mean(fake) - mean(real); generator: -mean(fake). Labels do not apply.
- ``hinge``: mean(relu(1 - real)) + mean(relu(1 + fake)); generator: -mean(fake).

Non-finite logits get torch's answers, which the kernels reproduce: NaN propagates (relu
passes it, and its gradient); BCE-with-logits is NaN at a -inf logit and at +inf with target
1 (torch's formula, where the limit would be inf or 0), with finite gradients.
"""
import math

import torch
import torch.nn.functional as F

DISCRIMINATOR_MODES = ("bce", "lsgan", "wgan", "hinge")
GENERATOR_MODES = ("bce", "nonsaturating", "lsgan", "wgan", "hinge")


def _reduce(x, reduction):
    if reduction == "none":
        return x
    if reduction == "sum":
        return x.sum()
    if reduction == "mean":
        return x.mean()
    return x.sum() / x.shape[0]  # batchsum


def _term(x, mode, label, sign, reduction):
    if mode == "bce":
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, label), reduction=reduction)
    if mode == "lsgan":
        return F.mse_loss(x, torch.full_like(x, label), reduction=reduction)
    if mode == "wgan":
        return _reduce(sign * x, reduction)
    return _reduce(F.relu(1 + sign * x), reduction)  # hinge


def discriminator_loss(real, fake, mode, real_label=1.0, fake_label=0.0, reduction="mean"):
    return _term(real, mode, real_label, -1.0, reduction) + _term(fake, mode, fake_label, 1.0, reduction)


def generator_loss(fake, mode, reduction="mean"):
    if mode in ("bce", "nonsaturating"):
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake), reduction=reduction)
    if mode == "lsgan":
        return F.mse_loss(fake, torch.ones_like(fake), reduction=reduction)
    return _reduce(-fake, reduction)  # wgan, hinge


def bernoulli_recon(logits, target, reduction="batchsum"):
    if reduction == "batchsum":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]
    return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)


def l1_loss(input, target, reduction="mean", weight=1.0):
    return weight * F.l1_loss(input, target, reduction=reduction)


def gp_interpolate(real, fake, alpha):
    """alpha * real + (1 - alpha) * fake with one alpha per sample (shape (N,))."""
    alpha = alpha.reshape((-1,) + (1,) * (real.dim() - 1))
    return alpha * real + (1 - alpha) * fake


def grad_norm_penalty(grad, target=1.0, r1=False):
    """mean over samples of (||g_r||_2 - target)^2, or of ||g_r||^2 (R1)."""
    grad = grad.reshape(grad.shape[0], math.prod(grad.shape[1:]))  # -1 is ambiguous for an empty batch
    if r1:
        return grad.pow(2).sum(1).mean()
    return (grad.norm(2, dim=1) - target).pow(2).mean()


def gradient_penalty(critic, real, fake=None, kind="wgan-gp", target=1.0, alpha=None, generator=None):
    """WGAN-GP: mean over samples of (||d critic(x) / dx||_2 - target)^2 at x = alpha*real +
    (1-alpha)*fake, alpha ~ U[0, 1) per sample (or given, shape (N,)). R1: mean of
    ||d critic(real) / d real||^2."""
    if kind == "r1":
        x = real
    else:
        if alpha is None:
            alpha = torch.rand(real.shape[0], dtype=real.dtype, device=real.device, generator=generator)
        x = gp_interpolate(real, fake, alpha)
    if not x.requires_grad:
        x = x.detach().requires_grad_()
    out = critic(x)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)
    return grad_norm_penalty(grad, target, kind == "r1")
