"""gentk: fused kernels and complete models for VAE and GAN training in PyTorch."""
from gentk import _extension
from gentk.backend import BACKENDS, get_backend, set_backend, use_backend
from gentk.functional import gaussian_kl, instance_norm, reparameterize, reparameterize_kl
from gentk.nn.instance_norm import patch, unpatch

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "gaussian_kl",
    "get_backend",
    "instance_norm",
    "patch",
    "reparameterize",
    "reparameterize_kl",
    "set_backend",
    "unpatch",
    "use_backend",
]


def extension_available():
    """True when the compiled kernels loaded (otherwise 'auto' uses the reference)."""
    return _extension.available()
