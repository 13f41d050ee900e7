"""Fake tensors and autograd for the loss family.

The compiled ops (``gentk::discriminator_loss`` ...) and their Triton twins
(``gentk::discriminator_loss_triton`` ...) share schemas, so one set of formulas serves
both: each function is called once per op set with its namespace suffix.

The compiled loss ops register the same autograd in C++ (csrc/losses_autograd.cpp).
Losses save only their inputs; backward recomputes the elementwise gradient in one pass.
``grad_norm_penalty_backward`` has an autograd formula of its own (torch ops), so the
gradient penalty's backward is itself differentiable.
"""
import torch

from gentk.ops._registration import first_order, register_fake


def _op(name, suffix):
    return getattr(torch.ops.gentk, name + suffix).default


def _like(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _loss_out(x, reduction):
    return _like(x) if reduction == "none" else x.new_empty(())


def register_fakes(suffix=""):
    """Fake (meta) implementations; Triton ops get theirs from tracing the launcher."""

    @register_fake(f"gentk::discriminator_loss{suffix}")
    def _(real, fake, mode, real_label, fake_label, reduction):
        return _loss_out(real, reduction)

    @register_fake(f"gentk::discriminator_loss_backward{suffix}")
    def _(grad, real, fake, mode, real_label, fake_label, reduction):
        return _like(real), _like(fake)

    @register_fake(f"gentk::generator_loss{suffix}")
    def _(fake, mode, reduction):
        return _loss_out(fake, reduction)

    @register_fake(f"gentk::generator_loss_backward{suffix}")
    def _(grad, fake, mode, reduction):
        return _like(fake)

    @register_fake(f"gentk::bernoulli_recon{suffix}")
    def _(logits, target, reduction):
        return _loss_out(logits, reduction)

    @register_fake(f"gentk::bernoulli_recon_backward{suffix}")
    def _(grad, logits, target, reduction):
        return _like(logits)

    @register_fake(f"gentk::l1_loss{suffix}")
    def _(input, target, weight, reduction):
        return _loss_out(input, reduction)

    @register_fake(f"gentk::l1_loss_backward{suffix}")
    def _(grad, input, target, weight, reduction):
        return _like(input)

    if not suffix:  # CPU-only helpers of the C++ autograd; no Triton twins
        @register_fake("gentk::discriminator_loss_with_grad")
        def _(real, fake, mode, real_label, fake_label, reduction):
            return _loss_out(real, reduction), _like(real), _like(fake)

        @register_fake("gentk::generator_loss_with_grad")
        def _(fake, mode, reduction):
            return _loss_out(fake, reduction), _like(fake)

        @register_fake("gentk::bernoulli_recon_with_grad")
        def _(logits, target, reduction):
            return _loss_out(logits, reduction), _like(logits)

    @register_fake(f"gentk::gp_interpolate{suffix}")
    def _(real, fake, seed):
        return _like(real)

    @register_fake(f"gentk::gp_interpolate_backward{suffix}")
    def _(grad, seed):
        return _like(grad), _like(grad)

    @register_fake(f"gentk::grad_norm_penalty{suffix}")
    def _(grads, target, r1):
        return grads.new_empty(())

    @register_fake(f"gentk::grad_norm_penalty_backward{suffix}")
    def _(grad, grads, target, r1):
        return _like(grads)


def register_autograd(suffix="_triton"):
    """Autograd of the Triton twins. The compiled ops have theirs in C++
    (csrc/losses_autograd.cpp: the same formulas, without Python's cost per call)."""
    _register_penalty_autograd(suffix)
    _register_loss_autograd(suffix)


def _register_loss_autograd(suffix):
    discriminator_loss_backward = _op("discriminator_loss_backward", suffix)
    generator_loss_backward = _op("generator_loss_backward", suffix)
    bernoulli_recon_backward = _op("bernoulli_recon_backward", suffix)
    l1_loss_backward = _op("l1_loss_backward", suffix)

    # discriminator_loss ----------------------------------------------------------------
    def setup_discriminator(ctx, inputs, output):
        real, fake, ctx.mode, ctx.real_label, ctx.fake_label, ctx.reduction = inputs
        ctx.save_for_backward(real, fake)

    @first_order("discriminator_loss", "loss")
    def backward_discriminator(ctx, grad):
        real, fake = ctx.saved_tensors
        grad_real, grad_fake = discriminator_loss_backward(
            grad.contiguous(), real, fake, ctx.mode, ctx.real_label, ctx.fake_label, ctx.reduction
        )
        return grad_real, grad_fake, None, None, None, None

    torch.library.register_autograd(
        f"gentk::discriminator_loss{suffix}", backward_discriminator, setup_context=setup_discriminator
    )

    # generator_loss --------------------------------------------------------------------
    def setup_generator(ctx, inputs, output):
        fake, ctx.mode, ctx.reduction = inputs
        ctx.save_for_backward(fake)

    @first_order("generator_loss", "loss")
    def backward_generator(ctx, grad):
        (fake,) = ctx.saved_tensors
        return generator_loss_backward(grad.contiguous(), fake, ctx.mode, ctx.reduction), None, None

    torch.library.register_autograd(
        f"gentk::generator_loss{suffix}", backward_generator, setup_context=setup_generator
    )

    # bernoulli_recon: d/dlogits = sigmoid(x) - t; d/dtarget = -x ---------------------------
    def setup_recon(ctx, inputs, output):
        logits, target, ctx.reduction = inputs
        ctx.save_for_backward(logits, target)

    @first_order("bernoulli_recon", "loss")
    def backward_recon(ctx, grad):
        logits, target = ctx.saved_tensors
        grad = grad.contiguous()
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_logits = bernoulli_recon_backward(grad, logits, target, ctx.reduction)
        if ctx.needs_input_grad[1]:
            grad_target = -logits * _scaled(grad, logits, ctx.reduction)
        return grad_logits, grad_target, None

    torch.library.register_autograd(f"gentk::bernoulli_recon{suffix}", backward_recon, setup_context=setup_recon)

    # l1_loss: d/dinput = weight * sign(x - t) = -d/dtarget -----------------------------------
    def setup_l1(ctx, inputs, output):
        input, target, ctx.weight, ctx.reduction = inputs
        ctx.save_for_backward(input, target)

    @first_order("l1_loss", "loss")
    def backward_l1(ctx, grad):
        input, target = ctx.saved_tensors
        grad_input = l1_loss_backward(grad.contiguous(), input, target, ctx.weight, ctx.reduction)
        grad_target = -grad_input if ctx.needs_input_grad[1] else None
        return (grad_input if ctx.needs_input_grad[0] else None), grad_target, None, None

    torch.library.register_autograd(f"gentk::l1_loss{suffix}", backward_l1, setup_context=setup_l1)


def _register_penalty_autograd(suffix):
    gp_interpolate_backward = _op("gp_interpolate_backward", suffix)
    grad_norm_penalty_backward = _op("grad_norm_penalty_backward", suffix)

    # gp_interpolate: alpha is regenerated from seed ------------------------------------------
    def setup_interpolate(ctx, inputs, output):
        real, fake, seed = inputs
        ctx.save_for_backward(seed)

    def backward_interpolate(ctx, grad):
        (seed,) = ctx.saved_tensors
        grad_real, grad_fake = gp_interpolate_backward(grad.contiguous(), seed)
        return grad_real, grad_fake, None

    torch.library.register_autograd(
        f"gentk::gp_interpolate{suffix}", backward_interpolate, setup_context=setup_interpolate
    )

    # grad_norm_penalty --------------------------------------------------------------------
    def setup_penalty(ctx, inputs, output):
        grads, ctx.target, ctx.r1 = inputs
        ctx.save_for_backward(grads)

    def backward_penalty(ctx, grad):
        (grads,) = ctx.saved_tensors
        return grad_norm_penalty_backward(grad.contiguous(), grads, ctx.target, ctx.r1), None, None

    torch.library.register_autograd(
        f"gentk::grad_norm_penalty{suffix}", backward_penalty, setup_context=setup_penalty
    )

    # grad_norm_penalty_backward: out_r = c_r * g_r with c_r = 2 w (1 - t / n_r) / N
    # (r1: c_r = 2 w / N), w the upstream scalar, n_r = ||g_r||. Its vector-Jacobian
    # product with v, in torch ops (so it is differentiable once more):
    #   d/dg_r = c_r v_r + g_r (2 w t / (N n_r^3)) <g_r, v_r>     (r1: c_r v_r)
    #   d/dw   = sum_r 2 (1 - t / n_r) <g_r, v_r> / N               (r1: sum_r 2 <g_r, v_r> / N)
    def setup_penalty_backward(ctx, inputs, output):
        w, grads, ctx.target, ctx.r1 = inputs
        ctx.save_for_backward(w, grads)

    def backward_penalty_backward(ctx, v):
        w, grads = ctx.saved_tensors
        rows = grads.shape[0]
        g = grads.reshape(rows, -1)
        v = v.reshape(rows, -1)
        w = w.reshape(())
        gv = (g * v).sum(1)
        if ctx.r1:
            d_g = (2.0 / rows) * w * v
            d_w = (2.0 / rows) * gv.sum()
        else:
            n = g.norm(2, dim=1)
            safe = torch.where(n > 0, n, torch.ones_like(n))
            factor = torch.where(n > 0, 1 - ctx.target / safe, torch.zeros_like(n))
            c = (2.0 / rows) * w * factor
            k = torch.where(n > 0, (2.0 / rows) * w * ctx.target / safe.pow(3), torch.zeros_like(n))
            d_g = c[:, None] * v + (k * gv)[:, None] * g
            d_w = (2.0 / rows) * (factor * gv).sum()
        return d_w.reshape(ctx.saved_tensors[0].shape), d_g.reshape(grads.shape), None, None

    torch.library.register_autograd(
        f"gentk::grad_norm_penalty_backward{suffix}", backward_penalty_backward, setup_context=setup_penalty_backward
    )


def _scaled(grad, x, reduction):
    """The upstream gradient of a loss as a per-element factor for reduction ``reduction``."""
    if reduction == "none":
        return grad
    if reduction == "mean":
        return grad / x.numel()
    if reduction == "batchsum":
        return grad / x.shape[0]
    return grad
