"""Fake tensors and autograd for the instance-norm op family.

``gentk::instance_norm(x, weight, bias, running_mean, running_var, eps, activation,
negative_slope, residual) -> (y, mean, var)`` and its backward. Backward recomputes the
normalized input and the activation's mask from the saved x and the per-plane (mean,
var): x is the only activation-sized tensor kept. Under ``create_graph=True`` backward
differentiates the reference (F.instance_norm) instead, so that second-order gradients are
exact. The compiled op registers the same autograd in C++
(csrc/instance_norm_autograd.cpp); this one serves the Triton twin.
"""
import torch

from gentk.ops.instance_norm import reference as reference
from gentk.ops._registration import register_fake

ACTIVATION_CODES = {None: 0, "relu": 1, "leaky_relu": 2}
ACTIVATION_NAMES = {code: name for name, code in ACTIVATION_CODES.items()}


def channels_last_kernel(x):
    """The layout the kernels read x in (and write y in): the rule of csrc/instance_norm_checks.h."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def output_format(x):
    return torch.channels_last if channels_last_kernel(x) else torch.contiguous_format


def math_dtype(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def register_fakes(suffix=""):
    @register_fake(f"gentk::instance_norm{suffix}")
    def _(x, weight, bias, running_mean, running_var, eps, activation, negative_slope, residual):
        y = torch.empty_like(x, memory_format=output_format(x))
        mean = x.new_empty((x.shape[0], x.shape[1]), dtype=math_dtype(x))
        return y, mean, torch.empty_like(mean)

    @register_fake(f"gentk::instance_norm_backward{suffix}")
    def _(grad_y, x, weight, bias, mean, var, eps, input_stats, activation, negative_slope):
        grad_x = torch.empty_like(x, memory_format=output_format(x))
        param_dtype = weight.dtype if weight is not None else x.dtype
        grad_w = x.new_empty((x.shape[1],), dtype=param_dtype)
        return grad_x, grad_w, torch.empty_like(grad_w)


def normalization_in_torch(x, weight, bias, mean, var, input_stats, eps, activation, negative_slope):
    """The reference norm + activation (twice differentiable) in the kernels' math dtype. With
    input statistics they come from x; otherwise from the running statistics the forward
    normalized with (every row of the saved (N, C) mean and var holds them)."""
    math = math_dtype(x)
    in_math = [None if t is None else t.to(math) for t in (weight, bias)]
    running = (None, None) if input_stats else (mean[0].to(math), var[0].to(math))
    y = reference.instance_norm(x.to(math), *in_math, *running, use_input_stats=input_stats, eps=eps,
                                activation=ACTIVATION_NAMES[activation], negative_slope=negative_slope)
    return y.to(x.dtype)


def register_autograd(suffix=""):
    backward_op = getattr(torch.ops.gentk, "instance_norm_backward" + suffix).default

    def setup_context(ctx, inputs, output):
        x, weight, bias, running_mean, running_var, eps, activation, negative_slope, residual = inputs
        for name, t in (("running_mean", running_mean), ("running_var", running_var)):
            if t is not None and t.requires_grad:  # as the compiled op (csrc/instance_norm_checks.h)
                raise RuntimeError(f"gentk::instance_norm{suffix}: {name} requires grad, but running statistics "
                                   "are not differentiable (detach it)")
        _, mean, var = output
        ctx.eps, ctx.activation, ctx.negative_slope = eps, activation, negative_slope
        ctx.input_stats = running_mean is None
        ctx.mark_non_differentiable(mean, var)
        ctx.save_for_backward(x, weight, bias, mean, var)

    def backward(ctx, grad_y, grad_mean, grad_var):
        x, weight, bias, mean, var = ctx.saved_tensors
        if grad_y is None:
            return (None,) * 9
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True
            grads = [None] * 3
            wanted = [i for i, t in enumerate((x, weight, bias)) if need[i] and t is not None]
            if wanted:
                y = normalization_in_torch(x, weight, bias, mean, var, ctx.input_stats, ctx.eps, ctx.activation,
                                           ctx.negative_slope)
                found = torch.autograd.grad(y, [(x, weight, bias)[i] for i in wanted], grad_y, create_graph=True,
                                            allow_unused=True)
                for i, g in zip(wanted, found):
                    grads[i] = g
            grad_x, grad_w, grad_b = grads
        else:
            grad_x, grad_w, grad_b = backward_op(
                grad_y, x, weight, bias, mean, var, ctx.eps, ctx.input_stats, ctx.activation, ctx.negative_slope
            )
        return (
            grad_x if need[0] else None,
            grad_w if need[1] else None,
            grad_b if need[2] else None,
            None, None, None, None, None,
            grad_y if need[8] else None,
        )

    torch.library.register_autograd(f"gentk::instance_norm{suffix}", backward, setup_context=setup_context)
