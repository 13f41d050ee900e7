"""Pure-PyTorch reference of the Gaussian op family: the truth in tests, the ``torch``
backend, and what the benchmarks call ``eager`` (and ``compile``, under torch.compile)."""
import torch


def reparameterize(mu, logvar, eps=None, generator=None):
    if eps is None:
        if generator is None:
            eps = torch.randn_like(mu, memory_format=torch.contiguous_format)
        else:
            eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + eps * torch.exp(0.5 * logvar)


def gaussian_kl_elements(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def reduce_kl(kl, reduction, dim):
    if reduction == "none":
        return kl
    if reduction == "sum":
        return kl.sum()
    if reduction == "mean":
        return kl.mean()
    # batchmean: sum over the latent dimension, mean over everything else
    return kl.sum(dim).mean()


def gaussian_kl(mu, logvar, reduction="batchmean", dim=-1):
    return reduce_kl(gaussian_kl_elements(mu, logvar), reduction, dim)


def reparameterize_kl(mu, logvar, eps=None, reduction="batchmean", dim=-1, generator=None):
    return reparameterize(mu, logvar, eps, generator), gaussian_kl(mu, logvar, reduction, dim)
