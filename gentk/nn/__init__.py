"""gentk modules: drop-in layers and fused blocks on gentk's kernels."""
from gentk.nn.instance_norm import (
    FusedActivation,
    InstanceNorm2d,
    InstanceNormAct2d,
    ResidualBlock,
    patch,
    unpatch,
)

__all__ = ["FusedActivation", "InstanceNorm2d", "InstanceNormAct2d", "ResidualBlock", "patch", "unpatch"]
