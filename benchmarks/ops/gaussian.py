"""Benchmark cases of the Gaussian family: reparameterize (in-kernel noise), gaussian_kl
(batchmean) and the fused reparameterize_kl against the two ops called one after the
other."""
import torch

import gentk
from benchmarks.harness import Case
from gentk.ops.gaussian import reference as ref

# (256, 128) and (64, 20): a VAE's latent, where the fixed cost per call dominates
SHAPES = [(4096, 512), (256, 128), (64, 20)]


def _inputs(shape):
    def make(device, dtype):
        g = torch.Generator().manual_seed(0)
        mu = torch.randn(shape, generator=g, dtype=dtype).to(device).requires_grad_()
        logvar = (0.5 * torch.randn(shape, generator=g, dtype=dtype)).to(device).requires_grad_()
        return {"mu": mu, "logvar": logvar}

    return make


def _bytes(n_read, n_written_fwd, n_read_bwd, n_written_bwd):
    def count(inputs, mode):
        t = inputs["mu"]
        elems = t.numel() * t.element_size()
        fwd = (n_read + n_written_fwd) * elems
        bwd = (n_read_bwd + n_written_bwd) * elems
        return {"forward": fwd, "backward": bwd, "forward+backward": fwd + bwd}[mode]

    return count


def _unfused(mu, logvar):
    return gentk.reparameterize(mu, logvar), gentk.gaussian_kl(mu, logvar)


def cases(dtype=torch.float32):
    out = []
    for shape in SHAPES:
        label = "x".join(map(str, shape))
        make = _inputs(shape)
        out.append(Case(
            "gaussian", "reparameterize", label, make,
            reference=lambda mu, logvar: ref.reparameterize(mu, logvar),
            gentk=lambda mu, logvar: gentk.reparameterize(mu, logvar),
            dtype=dtype,
            # fwd: read mu, logvar, write z; bwd: read grad, logvar, write grad_logvar
            bytes_moved=_bytes(2, 1, 2, 1),
        ))
        out.append(Case(
            "gaussian", "gaussian_kl", label, make,
            reference=lambda mu, logvar: ref.gaussian_kl(mu, logvar),
            gentk=lambda mu, logvar: gentk.gaussian_kl(mu, logvar),
            dtype=dtype,
            bytes_moved=_bytes(2, 0, 2, 2),
        ))
        out.append(Case(
            "gaussian", "reparameterize_kl", label, make,
            reference=lambda mu, logvar: ref.reparameterize_kl(mu, logvar),
            gentk=lambda mu, logvar: gentk.reparameterize_kl(mu, logvar),
            variants={"unfused": _unfused},
            dtype=dtype,
            bytes_moved=_bytes(2, 1, 3, 2),
        ))
    return out
