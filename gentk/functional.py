"""gentk's public functions. Each checks its arguments, picks the backend
(:mod:`gentk.backend`) and calls the registered ``gentk::`` op, or the pure-PyTorch
reference for the ``torch`` backend.

In-kernel noise: when no ``eps`` is given, a fresh (seed, stream) pair is drawn from
torch's generator (or ``generator``), so ``torch.manual_seed`` reproduces the result on a
backend and the next call draws new noise. The kernels turn it into Philox normals and
regenerate them in backward, so nothing noise-sized is kept for backward.
"""
import math

import torch

from gentk import backend as _backend
from gentk.ops.reference import gaussian as _ref
from gentk.ops.reference import losses as _loss_ref

REDUCTIONS = ("none", "sum", "mean", "batchmean")

_triton_loaded = False


def _ops(backend):
    """The op namespace for a compiled-or-Triton backend."""
    global _triton_loaded
    if backend == "triton":
        if not _triton_loaded:
            import gentk.ops.triton.gaussian  # noqa: F401  (registers gentk::*_triton)
            import gentk.ops.triton.losses  # noqa: F401

            _triton_loaded = True
        return "_triton"
    return ""


def _check_pair(fn, mu, logvar):
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"gentk.{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"gentk.{fn}: {name} must be a floating-point tensor, got dtype {t.dtype}")
    if mu.shape != logvar.shape:
        raise ValueError(
            f"gentk.{fn}: mu and logvar must have the same shape, got mu {tuple(mu.shape)} "
            f"and logvar {tuple(logvar.shape)}"
        )
    if mu.dtype != logvar.dtype:
        raise TypeError(f"gentk.{fn}: mu is {mu.dtype} but logvar is {logvar.dtype}")
    if mu.device != logvar.device:
        raise ValueError(f"gentk.{fn}: mu is on {mu.device} but logvar is on {logvar.device}")


def _check_eps(fn, eps, mu):
    if eps is None:
        return
    if not isinstance(eps, torch.Tensor):
        raise TypeError(f"gentk.{fn}: eps must be a torch.Tensor or None, got {type(eps).__name__}")
    if eps.shape != mu.shape:
        raise ValueError(f"gentk.{fn}: eps must have mu's shape {tuple(mu.shape)}, got {tuple(eps.shape)}")
    if eps.dtype != mu.dtype:
        raise TypeError(f"gentk.{fn}: eps is {eps.dtype} but mu is {mu.dtype}")
    if eps.device != mu.device:
        raise ValueError(f"gentk.{fn}: eps is on {eps.device} but mu is on {mu.device}")


def _check_reduction(fn, reduction, dim, mu):
    if reduction not in REDUCTIONS:
        raise ValueError(f"gentk.{fn}: unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
    if reduction == "batchmean":
        if mu.dim() == 0:
            raise ValueError(f"gentk.{fn}: reduction 'batchmean' needs at least one dimension, got a 0-d mu")
        if not -mu.dim() <= dim < mu.dim():
            raise IndexError(f"gentk.{fn}: dim {dim} is out of range for mu with {mu.dim()} dimensions")


def _kl_scale(reduction, dim, mu):
    """The factor that turns the sum of KL elements into the reduction asked for."""
    n = mu.numel()
    if reduction == "sum":
        return 1.0
    if reduction == "mean":
        return 1.0 / n if n else math.nan
    rows = n // mu.shape[dim] if mu.shape[dim] else 0  # batchmean: mean over all but `dim`
    return 1.0 / rows if rows else math.nan


def _seed(mu, generator):
    """(seed, stream) for in-kernel Philox noise, drawn from torch's generator."""
    if generator is not None and torch.device(generator.device).type != mu.device.type:
        raise ValueError(f"gentk: generator is on {generator.device} but the tensors are on {mu.device}")
    return torch.randint(
        -(2**63), 2**63 - 1, (2,), dtype=torch.int64, device=mu.device, generator=generator
    )


def reparameterize(mu, logvar, *, eps=None, generator=None):
    """z = mu + eps * exp(logvar / 2).

    With ``eps=None`` the standard normal noise is drawn inside the kernel and
    regenerated in backward. Gradients flow to ``mu``, ``logvar`` (and ``eps`` if given).
    """
    _check_pair("reparameterize", mu, logvar)
    _check_eps("reparameterize", eps, mu)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.reparameterize(mu, logvar, eps, generator)
    seed = None if eps is not None else _seed(mu, generator)
    return getattr(torch.ops.gentk, "reparameterize" + _ops(name))(mu, logvar, eps, seed)


def gaussian_kl(mu, logvar, *, reduction="batchmean", dim=-1):
    """KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).

    reduction: ``none`` (per element), ``sum``, ``mean`` (over elements) or
    ``batchmean`` (sum over ``dim``, mean over the rest: the usual VAE term).
    """
    _check_pair("gaussian_kl", mu, logvar)
    _check_reduction("gaussian_kl", reduction, dim, mu)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.gaussian_kl(mu, logvar, reduction, dim)
    op = getattr(torch.ops.gentk, "gaussian_kl" + _ops(name))
    if reduction == "none":
        return op(mu, logvar, False, 1.0)
    return op(mu, logvar, True, _kl_scale(reduction, dim, mu))


def reparameterize_kl(mu, logvar, *, eps=None, reduction="batchmean", dim=-1, generator=None):
    """``(reparameterize(mu, logvar), gaussian_kl(mu, logvar))`` in one pass that reads
    mu and logvar once, forward and backward."""
    _check_pair("reparameterize_kl", mu, logvar)
    _check_eps("reparameterize_kl", eps, mu)
    _check_reduction("reparameterize_kl", reduction, dim, mu)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.reparameterize_kl(mu, logvar, eps, reduction, dim, generator)
    seed = None if eps is not None else _seed(mu, generator)
    op = getattr(torch.ops.gentk, "reparameterize_kl" + _ops(name))
    if reduction == "none":
        return op(mu, logvar, eps, seed, False, 1.0)
    return op(mu, logvar, eps, seed, True, _kl_scale(reduction, dim, mu))


# ---- losses ------------------------------------------------------------------------------

LOSS_REDUCTIONS = ("none", "sum", "mean")


def _check_tensor(fn, name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"gentk.{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"gentk.{fn}: {name} must be a floating-point tensor, got dtype {t.dtype}")


def _check_like(fn, name, t, ref_name, ref, same_shape=True):
    _check_tensor(fn, name, t)
    if t.dtype != ref.dtype:
        raise TypeError(f"gentk.{fn}: {name} is {t.dtype} but {ref_name} is {ref.dtype}")
    if t.device != ref.device:
        raise ValueError(f"gentk.{fn}: {name} is on {t.device} but {ref_name} is on {ref.device}")
    if same_shape and t.shape != ref.shape:
        raise ValueError(f"gentk.{fn}: {name} must have {ref_name}'s shape {tuple(ref.shape)}, got {tuple(t.shape)}")


def _check_choice(fn, what, value, choices):
    if value not in choices:
        raise ValueError(f"gentk.{fn}: unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _check_unit_interval(fn, name, value):
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"gentk.{fn}: {name} must lie in [0, 1] for mode 'bce', got {value!r}")


def _check_pairing(fn, real, fake, reduction):
    ok = real.dim() == fake.dim() and real.shape[1:] == fake.shape[1:]
    if reduction == "none":
        ok = ok and real.shape == fake.shape
    if not ok:
        extra = " for reduction 'none'" if reduction == "none" else " apart from the batch dimension"
        raise ValueError(
            f"gentk.{fn}: real_logits {tuple(real.shape)} and fake_logits {tuple(fake.shape)} cannot pair: "
            f"they must have the same shape{extra}"
        )


def _eager():
    return not torch.compiler.is_compiling()


def discriminator_loss(real_logits, fake_logits, mode, *, real_label=1.0, fake_label=0.0, reduction="mean"):
    """The discriminator's (critic's) loss on real and fake logits, in one fused pass.

    mode: ``bce`` (BCE-with-logits of real against ``real_label`` plus fake against
    ``fake_label``; labels below 1 / above 0 give one-sided label smoothing), ``lsgan``
    (squared error against the same labels), ``wgan`` (mean(fake) - mean(real); labels do
    not apply) or ``hinge`` (mean(relu(1 - real)) + mean(relu(1 + fake))).
    The real and fake terms are each reduced (``mean``, ``sum``) and added, so the batch
    sizes may differ; ``none`` adds the two per-element terms (same shapes). Works for
    per-sample logits (N, 1) and PatchGAN maps (N, 1, H, W). Backward recomputes the
    elementwise gradient in one pass; nothing but the logits is kept.
    """
    fn = "discriminator_loss"
    _check_tensor(fn, "real_logits", real_logits)
    _check_like(fn, "fake_logits", fake_logits, "real_logits", real_logits, same_shape=False)
    _check_choice(fn, "mode", mode, _loss_ref.DISCRIMINATOR_MODES)
    _check_choice(fn, "reduction", reduction, LOSS_REDUCTIONS)
    if mode == "bce":
        _check_unit_interval(fn, "real_label", real_label)
        _check_unit_interval(fn, "fake_label", fake_label)
    _check_pairing(fn, real_logits, fake_logits, reduction)
    name = _backend.resolve("losses", real_logits.device)
    if name == "torch":
        return _loss_ref.discriminator_loss(real_logits, fake_logits, mode, real_label, fake_label, reduction)
    op = getattr(torch.ops.gentk, "discriminator_loss" + _ops(name))
    return op(real_logits, fake_logits, mode, float(real_label), float(fake_label), reduction)


def generator_loss(fake_logits, mode, reduction="mean"):
    """The generator's loss on the critic's fake logits: ``bce`` / ``nonsaturating``
    (-log D(G(z)): BCE-with-logits against 1), ``lsgan`` ((D(G(z)) - 1)^2), ``wgan`` and
    ``hinge`` (-D(G(z))). Fused forward and backward like :func:`discriminator_loss`."""
    fn = "generator_loss"
    _check_tensor(fn, "fake_logits", fake_logits)
    _check_choice(fn, "mode", mode, _loss_ref.GENERATOR_MODES)
    _check_choice(fn, "reduction", reduction, LOSS_REDUCTIONS)
    name = _backend.resolve("losses", fake_logits.device)
    if name == "torch":
        return _loss_ref.generator_loss(fake_logits, mode, reduction)
    return getattr(torch.ops.gentk, "generator_loss" + _ops(name))(fake_logits, mode, reduction)


def _check_target_range(fn, target, backend):
    # The cpp kernel counts out-of-range targets in the same pass; elsewhere it costs a
    # pass (and on a GPU a synchronization), and under torch.compile it is skipped.
    if backend != "cpp" and _eager() and target.numel() and bool(((target < 0) | (target > 1)).any()):
        raise ValueError(f"gentk.{fn}: target must lie in [0, 1] (binary cross-entropy)")


def bernoulli_recon(logits, target, reduction="batchsum"):
    """Bernoulli reconstruction term of a VAE: BCE-with-logits (stable softplus form)
    summed over every non-batch dimension and averaged over the batch (``batchsum``);
    also ``sum``, ``mean`` and ``none``. ``target`` must lie in [0, 1]."""
    fn = "bernoulli_recon"
    _check_tensor(fn, "logits", logits)
    _check_like(fn, "target", target, "logits", logits)
    _check_choice(fn, "reduction", reduction, ("batchsum",) + LOSS_REDUCTIONS)
    if reduction == "batchsum" and logits.dim() == 0:
        raise ValueError(f"gentk.{fn}: reduction 'batchsum' needs a batch dimension, got a 0-d logits")
    name = _backend.resolve("losses", logits.device)
    _check_target_range(fn, target, name)
    if name == "torch":
        return _loss_ref.bernoulli_recon(logits, target, reduction)
    return getattr(torch.ops.gentk, "bernoulli_recon" + _ops(name))(logits, target, reduction)


def l1_loss(input, target, reduction="mean", weight=1.0):
    """``weight * |input - target|`` reduced (``mean``, ``sum``, ``none``), with the weight
    (pix2pix's lambda_L1, CycleGAN's lambda_cyc) folded into the kernel."""
    fn = "l1_loss"
    _check_tensor(fn, "input", input)
    _check_like(fn, "target", target, "input", input)
    _check_choice(fn, "reduction", reduction, LOSS_REDUCTIONS)
    if not isinstance(weight, (int, float)) or weight != weight:
        raise ValueError(f"gentk.{fn}: weight must be a number (not NaN), got {weight!r}")
    name = _backend.resolve("losses", input.device)
    if name == "torch":
        return _loss_ref.l1_loss(input, target, reduction, weight)
    return getattr(torch.ops.gentk, "l1_loss" + _ops(name))(input, target, float(weight), reduction)


GRADIENT_PENALTIES = ("wgan-gp", "r1")


def gradient_penalty(critic, real, fake=None, *, kind="wgan-gp", target=1.0, generator=None):
    """Gradient penalty of ``critic`` (a callable returning one value per sample).

    ``wgan-gp`` (Gulrajani et al. 2017): mean over samples of (||d critic(x)/dx||_2 - target)^2
    at x = a*real + (1-a)*fake, a ~ U[0, 1) per sample drawn inside the interpolation kernel
    from Philox (seed, stream) taken from torch's generator (or ``generator``), as
    :func:`reparameterize` does. ``r1`` (Mescheder et al. 2018): mean of ||d critic(real)/d real||^2
    (multiply by gamma/2 yourself). The gradient is taken with
    ``torch.autograd.grad(..., create_graph=True)`` and reduced by a fused per-sample norm op
    whose backward is differentiable, so the penalty trains the critic's parameters.

    Runs eagerly: torch.compile does not support double backward, so do not wrap this in
    torch.compile (compile the critic itself if you like; the losses compile fine).
    """
    fn = "gradient_penalty"
    if not callable(critic):
        raise TypeError(f"gentk.{fn}: critic must be callable, got {type(critic).__name__}")
    _check_choice(fn, "kind", kind, GRADIENT_PENALTIES)
    _check_tensor(fn, "real", real)
    if real.dim() == 0:
        raise ValueError(f"gentk.{fn}: real needs a batch dimension, got a 0-d tensor")
    if kind == "wgan-gp":
        if fake is None:
            raise ValueError(f"gentk.{fn}: kind 'wgan-gp' needs fake samples")
        _check_like(fn, "fake", fake, "real", real)
    if not isinstance(target, (int, float)) or target != target:
        raise ValueError(f"gentk.{fn}: target must be a number (not NaN), got {target!r}")
    name = _backend.resolve("losses", real.device)
    if name == "torch":
        alpha = None
        if kind == "wgan-gp":
            alpha = torch.rand(real.shape[0], dtype=real.dtype, device=real.device, generator=generator)
        return _loss_ref.gradient_penalty(_checked_critic(critic, real.shape[0]), real, fake, kind, target, alpha)
    suffix = _ops(name)
    if kind == "r1":
        x = real
    else:
        x = getattr(torch.ops.gentk, "gp_interpolate" + suffix)(real, fake, _seed(real, generator))
    if not x.requires_grad:
        x = x.detach().requires_grad_()
    out = _checked_critic(critic, real.shape[0])(x)
    (grads,) = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)
    return getattr(torch.ops.gentk, "grad_norm_penalty" + suffix)(grads, float(target), kind == "r1")


def _checked_critic(critic, batch):
    def call(x):
        out = critic(x)
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != batch or out.numel() != batch:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"gentk.gradient_penalty: critic must return one value per sample, shape ({batch},) or "
                f"({batch}, 1), got {shape}"
            )
        return out

    return call
