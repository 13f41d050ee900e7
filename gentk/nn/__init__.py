"""gentk modules: drop-in layers, fused blocks and losses on gentk's kernels."""
from gentk.nn.instance_norm import (
    InstanceNorm2d,
    InstanceNormAct2d,
    ResidualBlock,
    patch,
    unpatch,
)
from gentk.nn.losses import BernoulliRecon, DiscriminatorLoss, GeneratorLoss, GradientPenalty, L1Loss

__all__ = [
    "BernoulliRecon",
    "DiscriminatorLoss",
    "GeneratorLoss",
    "GradientPenalty",
    "InstanceNorm2d",
    "InstanceNormAct2d",
    "L1Loss",
    "ResidualBlock",
    "patch",
    "unpatch",
]
