"""Fake tensors and autograd of the compiled ops and their Triton twins, one op family per file."""
import functools

import torch


def first_order(op, what="op"):
    """Marks a registered backward whose formula runs gentk's fused kernels, which autograd
    cannot differentiate again: under create_graph=True it raises, as the compiled losses' C++
    autograd does, instead of returning gradients whose own derivative would silently be zero."""

    def decorate(backward):
        @functools.wraps(backward)
        def checked(ctx, *grads):
            if torch.is_grad_enabled():
                raise RuntimeError(f"gentk.{op}: double backward (create_graph=True) through the compiled {what} is "
                                   f"not supported; compute it with gentk.use_backend('torch')")
            return backward(ctx, *grads)

        return checked

    return decorate
