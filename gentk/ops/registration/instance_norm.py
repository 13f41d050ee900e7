"""Fake tensors and autograd for the instance-norm op family.

``gentk::instance_norm(x, weight, bias, running_mean, running_var, eps, activation,
negative_slope, residual) -> (y, mean, var)`` and its backward. Backward recomputes the
normalized input and the activation's mask from the saved x and the per-plane (mean,
var): x is the only activation-sized tensor kept. Under ``create_graph=True`` backward
differentiates the normalization written in torch ops instead, so that second-order
gradients are exact. The compiled op registers the same autograd in C++
(csrc/instance_norm_autograd.cpp); this one serves the Triton twin.
"""
import torch

ACTIVATION_CODES = {None: 0, "relu": 1, "leaky_relu": 2}


def channels_last_kernel(x):
    """The layout the kernels read x in (and write y in): the rule of csrc/instance_norm_checks.h."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def output_format(x):
    return torch.channels_last if channels_last_kernel(x) else torch.contiguous_format


def math_dtype(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def register_fakes(suffix=""):
    @torch.library.register_fake(f"gentk::instance_norm{suffix}")
    def _(x, weight, bias, running_mean, running_var, eps, activation, negative_slope, residual):
        y = torch.empty_like(x, memory_format=output_format(x))
        mean = x.new_empty((x.shape[0], x.shape[1]), dtype=math_dtype(x))
        return y, mean, torch.empty_like(mean)

    @torch.library.register_fake(f"gentk::instance_norm_backward{suffix}")
    def _(grad_y, x, weight, bias, mean, var, eps, input_stats, activation, negative_slope):
        grad_x = torch.empty_like(x, memory_format=output_format(x))
        param_dtype = weight.dtype if weight is not None else x.dtype
        grad_w = x.new_empty((x.shape[1],), dtype=param_dtype)
        return grad_x, grad_w, torch.empty_like(grad_w)


def normalization_in_torch(x, weight, bias, mean, var, input_stats, eps, activation, negative_slope):
    """act((x - mean) / sqrt(var + eps) * weight + bias) in differentiable torch ops, in the
    kernels' math dtype. With input statistics mean and var are x's own; otherwise the given
    per-plane (N, C) values, constants. ``activation`` is the kernels' code."""
    xm = x.to(math_dtype(x))
    spatial = tuple(range(2, x.dim()))
    if input_stats:
        m = xm.mean(spatial, keepdim=True)
        v = (xm - m).square().mean(spatial, keepdim=True)
    else:
        plane = (x.shape[0], x.shape[1]) + (1,) * len(spatial)
        m, v = mean.to(xm.dtype).reshape(plane), var.to(xm.dtype).reshape(plane)
    y = (xm - m) * (v + eps).rsqrt()
    channel = (1, x.shape[1]) + (1,) * len(spatial)
    if weight is not None:
        y = y * weight.to(xm.dtype).reshape(channel)
    if bias is not None:
        y = y + bias.to(xm.dtype).reshape(channel)
    if activation == ACTIVATION_CODES["relu"]:
        y = torch.relu(y)
    elif activation == ACTIVATION_CODES["leaky_relu"]:
        y = torch.nn.functional.leaky_relu(y, negative_slope)
    return y.to(x.dtype)


def register_autograd(suffix=""):
    backward_op = getattr(torch.ops.gentk, "instance_norm_backward" + suffix).default

    def setup_context(ctx, inputs, output):
        x, weight, bias, running_mean, running_var, eps, activation, negative_slope, residual = inputs
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
