"""gentk's public functions. Each checks its arguments, picks the backend
(:mod:`gentk.backend`) and calls the registered ``gentk::`` op, or the pure-PyTorch
reference for the ``torch`` backend.

In-kernel noise: when no ``eps`` is given, a fresh (seed, stream) pair is drawn from
torch's generator (or ``generator``), so ``torch.manual_seed`` reproduces the result on a
backend and the next call draws new noise. The kernels turn it into Philox normals and
regenerate them in backward, so nothing noise-sized is kept for backward.
"""
import math
import numbers

import torch

from gentk import backend as _backend
from gentk.ops.reference import gaussian as _ref
from gentk.ops.reference import gumbel as _ref_gumbel
from gentk.ops.reference import instance_norm as _ref_norm
from gentk.ops.registration import instance_norm as _norm_registration
from gentk.ops.reference import losses as _loss_ref
from gentk.ops.table import kernels

REDUCTIONS = ("none", "sum", "mean", "batchmean")

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


def _check_dim(fn, dim):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"gentk.{fn}: dim must be an int, got {type(dim).__name__}")


def _check_generator(fn, generator, device):
    """Checked on every backend, also where no noise is drawn (eps given)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"gentk.{fn}: generator must be a torch.Generator or None, got {type(generator).__name__}")
    if torch.device(generator.device).type != device.type:
        raise ValueError(f"gentk.{fn}: generator is on {generator.device} but the tensors are on {device}")


def _check_reduction(fn, reduction, dim, mu):
    if reduction not in REDUCTIONS:
        raise ValueError(f"gentk.{fn}: unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
    _check_dim(fn, dim)  # whatever the reduction: a bad dim is never ignored
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
    # batchmean: the mean over every dimension but `dim` (of sums that are 0 when `dim` is empty)
    rows = math.prod([size for i, size in enumerate(mu.shape) if i != dim % mu.dim()])  # a list: dynamo traces it
    return 1.0 / rows if rows else math.nan


def _seed(mu, generator):
    """(seed, stream) for in-kernel Philox noise, drawn from torch's generator (checked by
    :func:`_check_generator`)."""
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
    _check_generator("reparameterize", generator, mu.device)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.reparameterize(mu, logvar, eps, generator)
    seed = None if eps is not None else _seed(mu, generator)
    return kernels(name)["reparameterize"](mu, logvar, eps, seed)


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
    op = kernels(name)["gaussian_kl"]
    if reduction == "none":
        return op(mu, logvar, False, 1.0)
    return op(mu, logvar, True, _kl_scale(reduction, dim, mu))


def reparameterize_kl(mu, logvar, *, eps=None, reduction="batchmean", dim=-1, generator=None):
    """``(reparameterize(mu, logvar), gaussian_kl(mu, logvar))`` in one pass that reads
    mu and logvar once, forward and backward."""
    _check_pair("reparameterize_kl", mu, logvar)
    _check_eps("reparameterize_kl", eps, mu)
    _check_reduction("reparameterize_kl", reduction, dim, mu)
    _check_generator("reparameterize_kl", generator, mu.device)
    name = _backend.resolve("gaussian", mu.device)
    if name == "torch":
        return _ref.reparameterize_kl(mu, logvar, eps, reduction, dim, generator)
    seed = None if eps is not None else _seed(mu, generator)
    op = kernels(name)["reparameterize_kl"]
    if reduction == "none":
        return op(mu, logvar, eps, seed, False, 1.0)
    return op(mu, logvar, eps, seed, True, _kl_scale(reduction, dim, mu))


# ---- Gumbel family ------------------------------------------------------------------------


def _check_logits(fn, logits, dim):
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"gentk.{fn}: logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"gentk.{fn}: logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() == 0:
        raise ValueError(f"gentk.{fn}: logits must have at least one dimension (the categories), got a 0-d tensor")
    _check_dim(fn, dim)
    if not -logits.dim() <= dim < logits.dim():
        raise IndexError(f"gentk.{fn}: dim {dim} is out of range for logits with {logits.dim()} dimensions")
    if logits.shape[dim] == 0:
        raise ValueError(f"gentk.{fn}: logits has no categories along dim {dim} (size 0)")


def _check_tau(fn, tau):
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"gentk.{fn}: tau must be a real number, got {type(tau).__name__}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"gentk.{fn}: tau must be finite and > 0, got {tau}")


def _last(t, dim):
    return t if dim in (-1, t.dim() - 1) else t.movedim(dim, -1)


def gumbel_softmax(logits, tau=1.0, hard=False, dim=-1, *, gumbels=None, generator=None, sample=True):
    """A Gumbel-Softmax (Concrete) sample: softmax((logits + g) / tau) over ``dim`` with
    g = -log(-log(u)), u uniform, drawn inside the kernel (Philox) unless ``gumbels`` is given.

    ``hard=True`` returns the one-hot of the argmax of logits + g (the first maximum on
    ties) with the soft sample's gradient (straight-through), as
    ``torch.nn.functional.gumbel_softmax`` does. ``sample=False`` leaves the noise out: the
    plain softmax(logits / tau), or with ``hard=True`` the one-hot of the argmax of logits
    (the evaluation path of Joint-VAE). Any ``dim``; the last one is the fast path.
    Backward keeps the soft output (soft samples) or regenerates the noise from the
    (seed, stream) pair (hard samples); no noise-sized tensor is stored.
    """
    _check_logits("gumbel_softmax", logits, dim)
    _check_tau("gumbel_softmax", tau)
    _check_generator("gumbel_softmax", generator, logits.device)
    if gumbels is not None:
        if not sample:
            raise ValueError("gentk.gumbel_softmax: gumbels given with sample=False; give one or the other")
        if not isinstance(gumbels, torch.Tensor):
            raise TypeError(f"gentk.gumbel_softmax: gumbels must be a torch.Tensor or None, got {type(gumbels).__name__}")
        if gumbels.shape != logits.shape:
            raise ValueError(
                f"gentk.gumbel_softmax: gumbels must have logits' shape {tuple(logits.shape)}, got {tuple(gumbels.shape)}"
            )
        if gumbels.dtype != logits.dtype:
            raise TypeError(f"gentk.gumbel_softmax: gumbels is {gumbels.dtype} but logits is {logits.dtype}")
        if gumbels.device != logits.device:
            raise ValueError(f"gentk.gumbel_softmax: gumbels is on {gumbels.device} but logits is on {logits.device}")
    name = _backend.resolve("gumbel", logits.device)
    if name == "torch":
        return _ref_gumbel.gumbel_softmax(logits, tau, bool(hard), dim, gumbels, generator, sample)
    seed = _seed(logits, generator) if sample and gumbels is None else None
    x = _last(logits, dim)
    g = _last(gumbels, dim) if gumbels is not None else None
    y = kernels(name)["gumbel_softmax"](x, g, seed, float(tau), bool(hard))
    return y if x is logits else y.movedim(-1, dim)


def categorical_kl_uniform(logits, dim=-1, reduction="batchmean"):
    """KL(softmax(logits) || uniform(K)) = sum_k q_k log q_k + log K, with K = logits.shape[dim]
    and 0 log 0 = 0: the KL term of a categorical latent (Joint-VAE's KL_c).

    reduction: ``none`` (one KL per distribution: logits' shape without ``dim``), ``sum``
    (their sum), ``batchmean`` (their mean, i.e. the sum over ``dim`` averaged over every other
    dimension, as in :func:`gaussian_kl`) or ``mean`` (the sum divided by the number of
    elements, as gaussian_kl's and ``F.kl_div``'s ``mean``).
    """
    _check_logits("categorical_kl_uniform", logits, dim)
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"gentk.categorical_kl_uniform: unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}"
        )
    name = _backend.resolve("gumbel", logits.device)
    if name == "torch":
        return _ref_gumbel.categorical_kl_uniform(logits, dim, reduction)
    op = kernels(name)["categorical_kl_uniform"]
    x = _last(logits, dim)
    if reduction == "none":
        return op(x, False, 1.0)
    return op(x, True, _kl_scale(reduction, dim, logits))
# ---- instance norm -----------------------------------------------------------------------

INSTANCE_NORM_ACTIVATIONS = (None, "relu", "leaky_relu")


def _check_norm_vector(name, t, x, channels):
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"gentk.instance_norm: {name} must be a torch.Tensor or None, got {type(t).__name__}")
    if t.shape != (channels,):
        raise ValueError(
            f"gentk.instance_norm: {name} must have shape ({channels},) to match x's channels, got {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise TypeError(f"gentk.instance_norm: {name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.device != x.device:
        raise ValueError(f"gentk.instance_norm: {name} is on {t.device} but x is on {x.device}")
    if name in ("weight", "bias"):
        # as torch's CPU norms: x's dtype, or float32 for float16 / bfloat16 x (mixed precision)
        mixed = x.dtype in (torch.float16, torch.bfloat16) and t.dtype == torch.float32
        if t.dtype != x.dtype and not mixed:
            raise TypeError(f"gentk.instance_norm: {name} is {t.dtype} but x is {x.dtype}")
    elif t.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"gentk.instance_norm: {name} requires grad, but running statistics are not "
                         "differentiable (detach it)")


def _check_instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, activation,
                         negative_slope, residual):
    fn = "gentk.instance_norm"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{fn}: x must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 3:
        raise ValueError(f"{fn}: x must be (N, C, L), (N, C, H, W) or more, got shape {tuple(x.shape)}")
    channels = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        _check_norm_vector(name, t, x, channels)
    if weight is not None and bias is not None and weight.dtype != bias.dtype:
        raise TypeError(f"{fn}: bias is {bias.dtype} but weight is {weight.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: give both running_mean and running_var, or neither")
    if not use_input_stats and running_mean is None:
        raise ValueError(f"{fn}: use_input_stats=False needs running_mean and running_var")
    if use_input_stats:
        spatial = math.prod(x.shape[2:])
        if spatial == 1:
            raise ValueError(
                f"{fn}: expected more than 1 spatial element when training, got input size {list(x.shape)} "
                "(instance statistics over a single value are undefined)"
            )
    if not isinstance(eps, (int, float)) or not eps > 0 or eps == math.inf:  # math.isinf breaks torch.compile
        raise ValueError(f"{fn}: eps must be a positive finite number, got {eps!r}")
    if not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
        raise ValueError(f"{fn}: momentum must be a number in [0, 1], got {momentum!r}")
    if activation not in INSTANCE_NORM_ACTIVATIONS:
        raise ValueError(f"{fn}: unknown activation {activation!r}; choose None, 'relu' or 'leaky_relu'")
    if not isinstance(negative_slope, (int, float)) or negative_slope != negative_slope:  # NaN; math.isnan: see eps
        raise ValueError(f"{fn}: negative_slope must be a number, got {negative_slope!r}")
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError(f"{fn}: residual must be a torch.Tensor or None, got {type(residual).__name__}")
        if residual.shape != x.shape:
            raise ValueError(f"{fn}: residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")
        if residual.dtype != x.dtype:
            raise TypeError(f"{fn}: residual is {residual.dtype} but x is {x.dtype}")
        if residual.device != x.device:
            raise ValueError(f"{fn}: residual is on {residual.device} but x is on {x.device}")


def instance_norm(x, weight=None, bias=None, running_mean=None, running_var=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5, activation=None, negative_slope=0.01, residual=None):
    """Instance normalization with optional affine, activation and residual, in one kernel:

        y = act((x - mean) / sqrt(var + eps) * weight + bias) + residual

    with mean and (biased) var per (n, c) plane over the spatial dimensions, as
    ``F.instance_norm``. ``activation`` is None, ``"relu"`` or ``"leaky_relu"``
    (``negative_slope``). With ``use_input_stats`` and running buffers, those are updated in
    place as torch does (momentum, unbiased variance averaged over the batch); with
    ``use_input_stats=False`` the running statistics normalize (eval mode).
    (N, C, H, W) input runs contiguous or channels_last, and y keeps x's memory format.
    """
    _check_instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, activation,
                         negative_slope, residual)
    name = _backend.resolve("instance_norm", x.device)
    if name == "torch":
        return _ref_norm.instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
                                       activation, negative_slope, residual)
    op = kernels(name)["instance_norm"]
    code = _norm_registration.ACTIVATION_CODES[activation]
    if not use_input_stats:
        y, _, _ = op(x, weight, bias, running_mean, running_var, float(eps), code, float(negative_slope), residual)
        return y
    y, mean, var = op(x, weight, bias, None, None, float(eps), code, float(negative_slope), residual)
    spatial = math.prod(x.shape[2:])
    if running_mean is not None and spatial > 0:  # torch leaves the statistics alone for empty planes
        with torch.no_grad():
            unbiased = var * (spatial / (spatial - 1))
            running_mean.mul_(1 - momentum).add_(mean.mean(0).to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_(unbiased.mean(0).to(running_var.dtype), alpha=momentum)
    return y
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


def _check_label(fn, name, value, mode):
    # checked in every mode (wgan and hinge ignore labels, but a string is still a mistake)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"gentk.{fn}: {name} must be a real number, got {type(value).__name__}")
    if mode == "bce" and not 0.0 <= value <= 1.0:
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
    per-sample logits (N, 1) and PatchGAN maps (N, 1, H, W). On CPU the elementwise
    gradient is written in the same pass as the loss (real and fake together) and backward
    only scales it; elsewhere backward recomputes it in one pass from the saved logits.
    """
    fn = "discriminator_loss"
    _check_tensor(fn, "real_logits", real_logits)
    _check_like(fn, "fake_logits", fake_logits, "real_logits", real_logits, same_shape=False)
    _check_choice(fn, "mode", mode, _loss_ref.DISCRIMINATOR_MODES)
    _check_choice(fn, "reduction", reduction, LOSS_REDUCTIONS)
    _check_label(fn, "real_label", real_label, mode)
    _check_label(fn, "fake_label", fake_label, mode)
    _check_pairing(fn, real_logits, fake_logits, reduction)
    name = _backend.resolve("losses", real_logits.device)
    if name == "torch":
        return _loss_ref.discriminator_loss(real_logits, fake_logits, mode, real_label, fake_label, reduction)
    op = kernels(name)["discriminator_loss"]
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
    return kernels(name)["generator_loss"](fake_logits, mode, reduction)


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
    return kernels(name)["bernoulli_recon"](logits, target, reduction)


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
    return kernels(name)["l1_loss"](input, target, float(weight), reduction)


GRADIENT_PENALTIES = ("wgan-gp", "r1")


def gradient_penalty(critic, real, fake=None, *, kind="wgan-gp", target=1.0, generator=None, chunk_size=None):
    """Gradient penalty of ``critic`` (a callable returning one value per sample).

    ``wgan-gp`` (Gulrajani et al. 2017): mean over samples of (||d critic(x)/dx||_2 - target)^2
    at x = a*real + (1-a)*fake, a ~ U[0, 1) per sample drawn inside the interpolation kernel
    from Philox (seed, stream) taken from torch's generator (or ``generator``), as
    :func:`reparameterize` does. ``r1`` (Mescheder et al. 2018): mean of ||d critic(real)/d real||^2
    (multiply by gamma/2 yourself). The gradient is taken with
    ``torch.autograd.grad(..., create_graph=True)`` and reduced by a fused per-sample norm op
    whose backward is differentiable, so the penalty trains the critic's parameters.

    ``chunk_size=k`` lowers the peak memory: the batch goes through the critic k samples at a
    time and each chunk's double backward runs inside this call, straight into gradients for
    the critic's parameters (every tensor requiring grad that the critic uses; the unused
    second-order gradient of the input is never computed), which the returned penalty hands
    out in its backward. Only one chunk's double-backward graph is ever alive, where the
    plain path keeps the whole batch's until backward. Needs a critic that scores each sample
    on its own (WGAN-GP's critic has no batch norm), ``real`` and ``fake`` that do not require
    grad, and the returned penalty's gradient is not differentiable again.

    Runs eagerly: torch.compile does not support double backward, so do not wrap this in
    torch.compile (compile the critic itself if you like; the losses compile fine).
    """
    fn = "gradient_penalty"
    if not callable(critic):
        raise TypeError(f"gentk.{fn}: critic must be callable, got {type(critic).__name__}")
    _check_choice(fn, "kind", kind, GRADIENT_PENALTIES)
    _check_tensor(fn, "real", real)
    _check_generator(fn, generator, real.device)
    if real.dim() == 0:
        raise ValueError(f"gentk.{fn}: real needs a batch dimension, got a 0-d tensor")
    if kind == "wgan-gp":
        if fake is None:
            raise ValueError(f"gentk.{fn}: kind 'wgan-gp' needs fake samples")
        _check_like(fn, "fake", fake, "real", real)
    if not isinstance(target, (int, float)) or target != target:
        raise ValueError(f"gentk.{fn}: target must be a number (not NaN), got {target!r}")
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"gentk.{fn}: chunk_size must be a positive int or None, got {chunk_size!r}")
        if real.requires_grad or (fake is not None and fake.requires_grad):
            raise ValueError(f"gentk.{fn}: chunk_size needs real and fake that do not require grad "
                             "(detach the fake batch, as the critic's step does)")
    r1 = kind == "r1"
    name = _backend.resolve("losses", real.device)
    if name == "torch":
        x = real if r1 else _loss_ref.gp_interpolate(real, fake, torch.rand(
            real.shape[0], dtype=real.dtype, device=real.device, generator=generator))

        def penalty_of(grads):
            return _loss_ref.grad_norm_penalty(grads, target, r1)
    else:
        ops = kernels(name)
        x = real if r1 else ops["gp_interpolate"](real, fake, _seed(real, generator))

        def penalty_of(grads):
            return ops["grad_norm_penalty"](grads, float(target), r1)
    if chunk_size is not None:
        return _chunked_penalty(critic, x, penalty_of, chunk_size)
    if not x.requires_grad:
        x = x.detach().requires_grad_()
    out = _checked_critic(critic, real.shape[0])(x)
    (grads,) = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)
    return penalty_of(grads)


def _chunked_penalty(critic, x, penalty_of, chunk_size):
    rows = x.shape[0]
    value, leaves, gradients = None, [], {}
    for start in range(0, rows, chunk_size):
        chunk = x[start:start + chunk_size].detach().requires_grad_()
        out = _checked_critic(critic, chunk.shape[0])(chunk)
        (grads,) = torch.autograd.grad(out, chunk, torch.ones_like(out), create_graph=True)
        part = penalty_of(grads) * (chunk.shape[0] / rows)
        del out, grads
        found = _leaves_under(part, chunk)
        for leaf in found:
            if id(leaf) not in gradients:
                leaves.append(leaf)
                gradients[id(leaf)] = None
        if found:
            for leaf, grad in zip(found, torch.autograd.grad(part, found, allow_unused=True)):
                if grad is not None:
                    total = gradients[id(leaf)]
                    gradients[id(leaf)] = grad if total is None else total.add_(grad)
        part = part.detach()
        value = part if value is None else value + part
    if not leaves:
        return value
    return _PenaltyWithGradients.apply(value, tuple(gradients[id(leaf)] for leaf in leaves), *leaves)


def _leaves_under(tensor, exclude):
    """The tensors requiring grad (leaves: parameters and the like) that ``tensor``'s graph
    reaches, other than ``exclude``."""
    leaves, seen, stack = [], set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None and variable is not exclude:
            leaves.append(variable)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves


class _PenaltyWithGradients(torch.autograd.Function):
    """A penalty value whose gradients with respect to ``leaves`` were computed already."""

    @staticmethod
    def forward(ctx, value, gradients, *leaves):
        ctx.gradients = gradients
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        return (None, None, *(None if g is None else g * grad for g in ctx.gradients))


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
