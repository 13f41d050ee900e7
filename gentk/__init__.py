"""gentk: fused kernels and complete models for VAE and GAN training in PyTorch."""
from gentk import _extension
from gentk.backend import BACKENDS, get_backend, set_backend, use_backend
from gentk.functional import (
    categorical_kl_uniform,
    gaussian_kl,
    gumbel_softmax,
    instance_norm,
    reparameterize,
    reparameterize_kl,
)
from gentk.nn.instance_norm import patch, unpatch
from gentk.profile import profile_step

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "categorical_kl_uniform",
    "gaussian_kl",
    "get_backend",
    "gumbel_softmax",
    "instance_norm",
    "patch",
    "profile_step",
    "reparameterize",
    "reparameterize_kl",
    "set_backend",
    "unpatch",
    "use_backend",
]


def extension_available():
    """True when the compiled kernels loaded (otherwise 'auto' uses the reference)."""
    return _extension.available()
