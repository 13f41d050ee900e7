"""Fake tensors and autograd for the Gaussian op family.

The compiled ops (``gentk::reparameterize`` ...) and their Triton twins
(``gentk::reparameterize_triton`` ...) share schemas, so one set of fakes serves both:
:func:`register_fakes` is called once per op set with its namespace suffix. The autograd
formulas below serve the Triton twins; the compiled ops register the same ones in C++
(csrc/gaussian_autograd.cpp).

Backward regenerates the noise from ``seed``; nothing noise-sized is saved.
"""
import torch

from gentk.ops._registration import first_order, register_fake

FORWARD_OPS = ("reparameterize", "gaussian_kl", "reparameterize_kl")
BACKWARD_OPS = ("reparameterize_backward", "gaussian_kl_backward", "reparameterize_kl_backward")


def _op(name, suffix):
    return getattr(torch.ops.gentk, name + suffix).default


def register_fakes(suffix=""):
    """Fake (meta) implementations; Triton ops get theirs from tracing the launcher."""

    @register_fake(f"gentk::reparameterize{suffix}")
    def _(mu, logvar, eps, seed):
        return torch.empty_like(mu, memory_format=torch.contiguous_format)

    @register_fake(f"gentk::reparameterize_backward{suffix}")
    def _(grad, logvar, eps, seed):
        return torch.empty_like(logvar, memory_format=torch.contiguous_format)

    @register_fake(f"gentk::gaussian_kl{suffix}")
    def _(mu, logvar, reduce, scale):
        if reduce:
            return mu.new_empty(())
        return torch.empty_like(mu, memory_format=torch.contiguous_format)

    @register_fake(f"gentk::gaussian_kl_backward{suffix}")
    def _(grad, mu, logvar, scale):
        like = torch.empty_like(logvar, memory_format=torch.contiguous_format)
        return like, torch.empty_like(like)

    @register_fake(f"gentk::reparameterize_kl{suffix}")
    def _(mu, logvar, eps, seed, reduce, scale):
        z = torch.empty_like(mu, memory_format=torch.contiguous_format)
        return z, (mu.new_empty(()) if reduce else torch.empty_like(z))

    @register_fake(f"gentk::reparameterize_kl_backward{suffix}")
    def _(grad_z, grad_kl, mu, logvar, eps, seed, scale):
        like = torch.empty_like(logvar, memory_format=torch.contiguous_format)
        return like, torch.empty_like(like)


def register_autograd(suffix="_triton"):
    """Autograd of the Triton twins. The compiled ops have theirs in C++
    (csrc/gaussian_autograd.cpp: the same formulas, without Python's cost per call)."""
    reparameterize_backward = _op("reparameterize_backward", suffix)
    gaussian_kl_backward = _op("gaussian_kl_backward", suffix)
    reparameterize_kl_backward = _op("reparameterize_kl_backward", suffix)

    # reparameterize ------------------------------------------------------------------
    def setup_reparameterize(ctx, inputs, output):
        mu, logvar, eps, seed = inputs
        ctx.save_for_backward(logvar, eps, seed)

    @first_order("reparameterize")
    def backward_reparameterize(ctx, grad):
        logvar, eps, seed = ctx.saved_tensors
        grad = grad.contiguous()
        grad_logvar = reparameterize_backward(grad, logvar, eps, seed)
        grad_eps = None
        if eps is not None and ctx.needs_input_grad[2]:
            grad_eps = grad * torch.exp(0.5 * logvar)
        return grad, grad_logvar, grad_eps, None

    torch.library.register_autograd(
        f"gentk::reparameterize{suffix}", backward_reparameterize, setup_context=setup_reparameterize
    )

    # gaussian_kl ---------------------------------------------------------------------
    def setup_gaussian_kl(ctx, inputs, output):
        mu, logvar, reduce, scale = inputs
        ctx.scale = scale
        ctx.save_for_backward(mu, logvar)

    @first_order("gaussian_kl")
    def backward_gaussian_kl(ctx, grad):
        mu, logvar = ctx.saved_tensors
        grad_mu, grad_logvar = gaussian_kl_backward(grad.contiguous(), mu, logvar, ctx.scale)
        return grad_mu, grad_logvar, None, None

    torch.library.register_autograd(
        f"gentk::gaussian_kl{suffix}", backward_gaussian_kl, setup_context=setup_gaussian_kl
    )

    # reparameterize_kl ---------------------------------------------------------------
    def setup_reparameterize_kl(ctx, inputs, output):
        mu, logvar, eps, seed, reduce, scale = inputs
        ctx.scale = scale
        ctx.reduce = reduce
        ctx.save_for_backward(mu, logvar, eps, seed)

    @first_order("reparameterize_kl")
    def backward_reparameterize_kl(ctx, grad_z, grad_kl):
        mu, logvar, eps, seed = ctx.saved_tensors
        if grad_kl is None:
            grad_kl = logvar.new_zeros(())
        if grad_z is not None:
            grad_z = grad_z.contiguous()
        grad_mu, grad_logvar = reparameterize_kl_backward(
            grad_z, grad_kl.contiguous(), mu, logvar, eps, seed, ctx.scale
        )
        grad_eps = None
        if eps is not None and ctx.needs_input_grad[2] and grad_z is not None:
            grad_eps = grad_z * torch.exp(0.5 * logvar)
        return grad_mu, grad_logvar, grad_eps, None, None, None

    torch.library.register_autograd(
        f"gentk::reparameterize_kl{suffix}", backward_reparameterize_kl, setup_context=setup_reparameterize_kl
    )
