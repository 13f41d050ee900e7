"""Which op each backend runs, written out: ``kernels(backend)[name]``. The compiled ops
(``torch.ops.gentk.*``, from csrc/) serve backends ``cpp`` and ``cuda`` alike, since they
dispatch on the tensors' device; ``triton`` runs their twins (``torch.ops.gentk.*_triton``,
registered by importing each family's ``triton_kernels``)."""
import torch

_tables = {}


def _compiled():
    ops = torch.ops.gentk
    return {
        "reparameterize": ops.reparameterize,
        "gaussian_kl": ops.gaussian_kl,
        "reparameterize_kl": ops.reparameterize_kl,
        "gumbel_softmax": ops.gumbel_softmax,
        "categorical_kl_uniform": ops.categorical_kl_uniform,
        "instance_norm": ops.instance_norm,
        "discriminator_loss": ops.discriminator_loss,
        "generator_loss": ops.generator_loss,
        "bernoulli_recon": ops.bernoulli_recon,
        "l1_loss": ops.l1_loss,
        "gp_interpolate": ops.gp_interpolate,
        "grad_norm_penalty": ops.grad_norm_penalty,
    }


def _triton():
    import gentk.ops.gaussian.triton_kernels  # noqa: F401  (each registers its family's gentk::*_triton ops)
    import gentk.ops.gumbel.triton_kernels  # noqa: F401
    import gentk.ops.instance_norm.triton_kernels  # noqa: F401
    import gentk.ops.losses.triton_kernels  # noqa: F401

    ops = torch.ops.gentk
    return {
        "reparameterize": ops.reparameterize_triton,
        "gaussian_kl": ops.gaussian_kl_triton,
        "reparameterize_kl": ops.reparameterize_kl_triton,
        "gumbel_softmax": ops.gumbel_softmax_triton,
        "categorical_kl_uniform": ops.categorical_kl_uniform_triton,
        "instance_norm": ops.instance_norm_triton,
        "discriminator_loss": ops.discriminator_loss_triton,
        "generator_loss": ops.generator_loss_triton,
        "bernoulli_recon": ops.bernoulli_recon_triton,
        "l1_loss": ops.l1_loss_triton,
        "gp_interpolate": ops.gp_interpolate_triton,
        "grad_norm_penalty": ops.grad_norm_penalty_triton,
    }


def kernels(backend):
    """name -> op for ``backend`` (cpp, cuda or triton)."""
    kind = "triton" if backend == "triton" else "compiled"
    if kind not in _tables:
        _tables[kind] = _triton() if kind == "triton" else _compiled()
    return _tables[kind]
