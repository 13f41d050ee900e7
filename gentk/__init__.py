"""gentk: fused kernels and complete models for VAE and GAN training in PyTorch."""
from gentk import _extension
from gentk.backend import BACKENDS, get_backend, set_backend, use_backend
from gentk.functional import (
    bernoulli_recon,
    categorical_kl_uniform,
    discriminator_loss,
    gaussian_kl,
    generator_loss,
    gradient_penalty,
    gumbel_softmax,
    instance_norm,
    l1_loss,
    reparameterize,
    reparameterize_kl,
)
from gentk.nn.instance_norm import patch, unpatch
from gentk.profile import profile_step

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "bernoulli_recon",
    "categorical_kl_uniform",
    "discriminator_loss",
    "gaussian_kl",
    "generator_loss",
    "get_backend",
    "gradient_penalty",
    "gumbel_softmax",
    "instance_norm",
    "l1_loss",
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
