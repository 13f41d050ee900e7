"""gentk's public functions, one op family each in ``gentk/ops/<family>/functions.py``. Each
checks its arguments, picks the backend (:mod:`gentk.backend`) and calls the registered
``gentk::`` op, or the pure-PyTorch reference for the ``torch`` backend.

In-kernel noise: when no ``eps`` is given, a fresh (seed, stream) pair is drawn from
torch's generator (or ``generator``), so ``torch.manual_seed`` reproduces the result on a
backend and the next call draws new noise. The kernels turn it into Philox normals and
regenerate them in backward, so nothing noise-sized is kept for backward.
"""
from gentk.ops._checks import REDUCTIONS
from gentk.ops.gaussian.functions import gaussian_kl, reparameterize, reparameterize_kl
from gentk.ops.gumbel.functions import categorical_kl_uniform, gumbel_softmax
from gentk.ops.instance_norm.functions import INSTANCE_NORM_ACTIVATIONS, instance_norm
from gentk.ops.losses.functions import (GRADIENT_PENALTIES, LOSS_REDUCTIONS, bernoulli_recon, discriminator_loss,
                                        generator_loss, gradient_penalty, l1_loss)

__all__ = ["GRADIENT_PENALTIES", "INSTANCE_NORM_ACTIVATIONS", "LOSS_REDUCTIONS", "REDUCTIONS", "bernoulli_recon",
           "categorical_kl_uniform", "discriminator_loss", "gaussian_kl", "generator_loss", "gradient_penalty",
           "gumbel_softmax", "instance_norm", "l1_loss", "reparameterize", "reparameterize_kl"]
