"""The public instance norm, fused with its activation and residual."""
import math

import torch

from gentk import backend as _backend
from gentk.ops.instance_norm import reference as _ref
from gentk.ops.instance_norm import registration as _registration
from gentk.ops.table import kernels


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
        return _ref.instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
                                       activation, negative_slope, residual)
    op = kernels(name)["instance_norm"]
    code = _registration.ACTIVATION_CODES[activation]
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
