"""The public adversarial and reconstruction losses and the gradient penalty."""
import numbers

import torch

from gentk import backend as _backend
from gentk.ops._checks import check_generator, seed_for
from gentk.ops.losses import reference as _ref
from gentk.ops.table import kernels


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
    _check_choice(fn, "mode", mode, _ref.DISCRIMINATOR_MODES)
    _check_choice(fn, "reduction", reduction, LOSS_REDUCTIONS)
    _check_label(fn, "real_label", real_label, mode)
    _check_label(fn, "fake_label", fake_label, mode)
    _check_pairing(fn, real_logits, fake_logits, reduction)
    name = _backend.resolve("losses", real_logits.device)
    if name == "torch":
        return _ref.discriminator_loss(real_logits, fake_logits, mode, real_label, fake_label, reduction)
    op = kernels(name)["discriminator_loss"]
    return op(real_logits, fake_logits, mode, float(real_label), float(fake_label), reduction)


def generator_loss(fake_logits, mode, reduction="mean"):
    """The generator's loss on the critic's fake logits: ``bce`` / ``nonsaturating``
    (-log D(G(z)): BCE-with-logits against 1), ``lsgan`` ((D(G(z)) - 1)^2), ``wgan`` and
    ``hinge`` (-D(G(z))). Fused forward and backward like :func:`discriminator_loss`."""
    fn = "generator_loss"
    _check_tensor(fn, "fake_logits", fake_logits)
    _check_choice(fn, "mode", mode, _ref.GENERATOR_MODES)
    _check_choice(fn, "reduction", reduction, LOSS_REDUCTIONS)
    name = _backend.resolve("losses", fake_logits.device)
    if name == "torch":
        return _ref.generator_loss(fake_logits, mode, reduction)
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
        return _ref.bernoulli_recon(logits, target, reduction)
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
        return _ref.l1_loss(input, target, reduction, weight)
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
    check_generator(fn, generator, real.device)
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
        x = real if r1 else _ref.gp_interpolate(real, fake, torch.rand(
            real.shape[0], dtype=real.dtype, device=real.device, generator=generator))

        def penalty_of(grads):
            return _ref.grad_norm_penalty(grads, target, r1)
    else:
        ops = kernels(name)
        x = real if r1 else ops["gp_interpolate"](real, fake, seed_for(real, generator))

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
