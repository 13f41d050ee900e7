"""Loss modules over the fused loss ops (see :mod:`gentk.functional` for the formulas)."""
import torch

from gentk import functional as F


class DiscriminatorLoss(torch.nn.Module):
    """``loss(real_logits, fake_logits)``: the discriminator's loss in ``mode`` (bce,
    lsgan, wgan, hinge), with one-sided label smoothing through ``real_label``."""

    def __init__(self, mode="bce", *, real_label=1.0, fake_label=0.0, reduction="mean"):
        super().__init__()
        self.mode, self.real_label, self.fake_label, self.reduction = mode, real_label, fake_label, reduction

    def forward(self, real_logits, fake_logits):
        return F.discriminator_loss(real_logits, fake_logits, self.mode, real_label=self.real_label,
                                    fake_label=self.fake_label, reduction=self.reduction)

    def extra_repr(self):
        return f"mode={self.mode!r}, real_label={self.real_label}, fake_label={self.fake_label}, reduction={self.reduction!r}"


class GeneratorLoss(torch.nn.Module):
    """``loss(fake_logits)``: the generator's loss in ``mode`` (bce = nonsaturating, lsgan, wgan, hinge)."""

    def __init__(self, mode="nonsaturating", reduction="mean"):
        super().__init__()
        self.mode, self.reduction = mode, reduction

    def forward(self, fake_logits):
        return F.generator_loss(fake_logits, self.mode, self.reduction)

    def extra_repr(self):
        return f"mode={self.mode!r}, reduction={self.reduction!r}"


class BernoulliRecon(torch.nn.Module):
    """``loss(logits, target)``: BCE-with-logits summed over pixels, mean over the batch."""

    def __init__(self, reduction="batchsum"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, target):
        return F.bernoulli_recon(logits, target, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class L1Loss(torch.nn.Module):
    """``loss(input, target)`` = ``weight * |input - target|`` reduced; weight folded into the kernel."""

    def __init__(self, weight=1.0, reduction="mean"):
        super().__init__()
        self.weight, self.reduction = weight, reduction

    def forward(self, input, target):
        return F.l1_loss(input, target, self.reduction, self.weight)

    def extra_repr(self):
        return f"weight={self.weight}, reduction={self.reduction!r}"


class GradientPenalty(torch.nn.Module):
    """``penalty(critic, real, fake=None)``: WGAN-GP or R1 (``kind``); runs eagerly."""

    def __init__(self, kind="wgan-gp", target=1.0):
        super().__init__()
        self.kind, self.target = kind, target

    def forward(self, critic, real, fake=None, generator=None):
        return F.gradient_penalty(critic, real, fake, kind=self.kind, target=self.target, generator=generator)

    def extra_repr(self):
        return f"kind={self.kind!r}, target={self.target}"
