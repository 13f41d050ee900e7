"""gentk's modules: drop-in layers and losses over the fused ops of :mod:`gentk.functional`."""
from gentk.nn.losses import BernoulliRecon, DiscriminatorLoss, GeneratorLoss, GradientPenalty, L1Loss

__all__ = ["BernoulliRecon", "DiscriminatorLoss", "GeneratorLoss", "GradientPenalty", "L1Loss"]
