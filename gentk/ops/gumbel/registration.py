"""Fake tensors and autograd for the Gumbel family.

The compiled ops (``gentk::gumbel_softmax`` ...) and their Triton twins
(``gentk::gumbel_softmax_triton`` ...) share schemas, so one set of formulas serves both;
the compiled ops register the autograd formulas in C++ (csrc/gumbel_autograd.cpp), the
Triton twins these.

What backward keeps: a soft sample saves its own output (the softmax gradient needs only
y, so backward is one pass over y and grad; no extra memory, since the output exists
anyway). A hard sample's output is the one-hot, so backward regenerates the soft sample
from logits and the (seed, stream) pair, never a noise-sized tensor.

Measured (cpp, float32, one thread, CPU time): the backward op reading the saved soft
sample takes 0.30 ms at (8192, 10) and 1.6 ms at (1024, 1000); regenerating it (Philox,
two logs and an exp per element) 0.61 ms and 6.4 ms. Keeping the soft sample for hard
samples too would save about a third of their forward+backward at K = 1000 (little at
K = 10), at the cost of one logits-sized saved tensor; they regenerate instead.
"""
import torch

from gentk.ops._registration import first_order, register_fake


def _op(name, suffix):
    return getattr(torch.ops.gentk, name + suffix).default


def register_fakes(suffix=""):
    """Fake (meta) implementations; Triton ops get theirs from tracing the launcher."""

    @register_fake(f"gentk::gumbel_softmax{suffix}")
    def _(logits, gumbels, seed, tau, hard):
        return torch.empty_like(logits, memory_format=torch.contiguous_format)

    @register_fake(f"gentk::gumbel_softmax_backward{suffix}")
    def _(grad, soft, logits, gumbels, seed, tau):
        return torch.empty_like(grad, memory_format=torch.contiguous_format)

    @register_fake(f"gentk::categorical_kl_uniform{suffix}")
    def _(logits, reduce, scale):
        if reduce:
            return logits.new_empty(())
        return logits.new_empty(logits.shape[:-1])

    @register_fake(f"gentk::categorical_kl_uniform_backward{suffix}")
    def _(grad, logits, scale):
        return torch.empty_like(logits, memory_format=torch.contiguous_format)


def register_autograd(suffix="_triton"):
    """Autograd of the Triton twins. The compiled ops have theirs in C++
    (csrc/gumbel_autograd.cpp: the same formulas, without Python's cost per call)."""
    gumbel_softmax_backward = _op("gumbel_softmax_backward", suffix)
    categorical_kl_uniform_backward = _op("categorical_kl_uniform_backward", suffix)

    def setup_gumbel_softmax(ctx, inputs, output):
        logits, gumbels, seed, tau, hard = inputs
        ctx.tau = tau
        if hard:
            ctx.save_for_backward(None, logits, gumbels, seed)
        else:
            ctx.save_for_backward(output, None, None, None)

    @first_order("gumbel_softmax")
    def backward_gumbel_softmax(ctx, grad):
        soft, logits, gumbels, seed = ctx.saved_tensors
        grad_logits = gumbel_softmax_backward(grad.contiguous(), soft, logits, gumbels, seed, ctx.tau)
        # logits + gumbels: both get the same gradient
        grad_gumbels = grad_logits if ctx.needs_input_grad[1] else None
        return grad_logits, grad_gumbels, None, None, None

    torch.library.register_autograd(
        f"gentk::gumbel_softmax{suffix}", backward_gumbel_softmax, setup_context=setup_gumbel_softmax
    )

    def setup_categorical_kl(ctx, inputs, output):
        logits, reduce, scale = inputs
        ctx.scale = scale if reduce else 1.0
        ctx.save_for_backward(logits)

    @first_order("categorical_kl_uniform")
    def backward_categorical_kl(ctx, grad):
        (logits,) = ctx.saved_tensors
        return categorical_kl_uniform_backward(grad.contiguous(), logits, ctx.scale), None, None

    torch.library.register_autograd(
        f"gentk::categorical_kl_uniform{suffix}", backward_categorical_kl, setup_context=setup_categorical_kl
    )
