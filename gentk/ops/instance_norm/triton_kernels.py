"""Triton kernels of the instance-norm family, registered as ``gentk::instance_norm_triton``
and ``gentk::instance_norm_backward_triton``: the schemas and semantics of the compiled
ops (``csrc/instance_norm.cpp``), for contiguous and channels_last input alike.

One program per (n, c) plane. The plane's elements sit at ``base + i * stride`` with
stride 1 (contiguous) or C (channels_last), so one kernel serves both layouts; the output
is allocated in the input's layout and written with the same offsets. Statistics are two
passes (mean, then the centred sum of squares); backward recomputes the normalized input
and the activation's mask from x and the per-plane (mean, var).

Math runs in float32 for float16 / bfloat16 / float32 inputs and in float64 for float64.
See ``gentk/ops/_triton.py`` for why, under ``TRITON_INTERPRET=1``, launches are
skipped on fake tensors and the ops stay whole under FunctionalTensorMode.
"""
from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from gentk.ops.instance_norm.registration import output_format, register_autograd
from gentk.ops import _triton_checks as checks
from gentk.ops._triton import INTERPRETED, can_launch, keep_whole

__all__ = ["instance_norm", "instance_norm_backward"]


@triton.jit
def _act(v, ACT: tl.constexpr, slope):
    # NaN passes through, as in torch
    if ACT == 1:
        v = tl.where(v < 0, 0.0, v)
    elif ACT == 2:
        v = tl.where(v < 0, v * slope, v)
    return v


@triton.jit
def _act_grad(g, pre, ACT: tl.constexpr, slope):
    if ACT == 1:  # torch's relu passes the gradient at a NaN
        g = tl.where(pre <= 0, 0.0, g)
    elif ACT == 2:
        g = tl.where(pre > 0, g, g * slope)
    return g


@triton.jit
def _instance_norm_fwd_kernel(x_ptr, w_ptr, b_ptr, rm_ptr, rv_ptr, res_ptr, y_ptr, mean_ptr, var_ptr,
                              C, HW, stride_n, stride_c, stride_hw, eps, slope,
                              HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_RUNNING: tl.constexpr,
                              HAS_RES: tl.constexpr, ACT: tl.constexpr, F64: tl.constexpr,
                              BLOCK: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)
    n = p // C
    c = p % C
    base = n * stride_n + c * stride_c
    dt = tl.float64 if F64 else tl.float32
    if HAS_RUNNING:
        mean = tl.load(rm_ptr + c).to(dt)
        var = tl.load(rv_ptr + c).to(dt)
    else:
        acc = tl.zeros([BLOCK], dtype=dt)
        for start in range(0, HW, BLOCK):
            i = start + tl.arange(0, BLOCK)
            acc += tl.load(x_ptr + base + i * stride_hw, mask=i < HW, other=0).to(dt)
        mean = tl.sum(acc, axis=0) / HW
        acc2 = tl.zeros([BLOCK], dtype=dt)
        for start in range(0, HW, BLOCK):
            i = start + tl.arange(0, BLOCK)
            m = i < HW
            d = tl.where(m, tl.load(x_ptr + base + i * stride_hw, mask=m, other=0).to(dt) - mean, 0.0)
            acc2 += d * d
        var = tl.sum(acc2, axis=0) / HW
        tl.store(mean_ptr + p, mean)
        tl.store(var_ptr + p, var)
    scale = 1.0 / tl.sqrt(var + eps)
    if HAS_W:
        scale = scale * tl.load(w_ptr + c).to(dt)
    shift = 0.0
    if HAS_B:
        shift = tl.load(b_ptr + c).to(dt)
    for start in range(0, HW, BLOCK):
        i = start + tl.arange(0, BLOCK)
        m = i < HW
        offs = base + i * stride_hw
        xv = tl.load(x_ptr + offs, mask=m, other=0).to(dt)
        # an infinite scale gives what torch's x * scale + (shift - mean * scale) gives
        v = tl.where(tl.abs(scale) == float("inf"), xv * scale + (shift - mean * scale), (xv - mean) * scale + shift)
        v = _act(v, ACT, slope)
        if HAS_RES:
            v += tl.load(res_ptr + offs, mask=m, other=0).to(dt)
        tl.store(y_ptr + offs, v.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _instance_norm_bwd_kernel(gy_ptr, x_ptr, w_ptr, b_ptr, mean_ptr, var_ptr, gx_ptr, sg_ptr, sgx_ptr,
                              C, HW, stride_n, stride_c, stride_hw, eps, slope,
                              HAS_W: tl.constexpr, HAS_B: tl.constexpr, INPUT_STATS: tl.constexpr,
                              ACT: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)
    n = p // C
    c = p % C
    base = n * stride_n + c * stride_c
    dt = tl.float64 if F64 else tl.float32
    mean = tl.load(mean_ptr + p).to(dt)
    rstd = 1.0 / tl.sqrt(tl.load(var_ptr + p).to(dt) + eps)
    w = 1.0
    if HAS_W:
        w = tl.load(w_ptr + c).to(dt)
    b = 0.0
    if HAS_B:
        b = tl.load(b_ptr + c).to(dt)
    acc_g = tl.zeros([BLOCK], dtype=dt)
    acc_gx = tl.zeros([BLOCK], dtype=dt)
    for start in range(0, HW, BLOCK):
        i = start + tl.arange(0, BLOCK)
        m = i < HW
        offs = base + i * stride_hw
        xh = (tl.load(x_ptr + offs, mask=m, other=0).to(dt) - mean) * rstd
        g = _act_grad(tl.load(gy_ptr + offs, mask=m, other=0).to(dt), xh * w + b, ACT, slope)
        acc_g += g
        acc_gx += g * xh
    sg = tl.sum(acc_g, axis=0)
    sgx = tl.sum(acc_gx, axis=0)
    tl.store(sg_ptr + p, sg)
    tl.store(sgx_ptr + p, sgx)
    k1 = w * rstd
    for start in range(0, HW, BLOCK):
        i = start + tl.arange(0, BLOCK)
        m = i < HW
        offs = base + i * stride_hw
        xh = (tl.load(x_ptr + offs, mask=m, other=0).to(dt) - mean) * rstd
        g = _act_grad(tl.load(gy_ptr + offs, mask=m, other=0).to(dt), xh * w + b, ACT, slope)
        if INPUT_STATS:  # with running statistics x itself does not enter (a NaN x leaves its gradient finite)
            g = g - sg / HW - (sgx / HW) * xh
        tl.store(gx_ptr + offs, (k1 * g).to(gx_ptr.dtype.element_ty), mask=m)


def _check_vector(op, name, t, x):
    if t is None:
        return
    if t.dim() != 1 or t.shape[0] != x.shape[1]:
        checks.fail(op, f"{name} must have shape ({x.shape[1]},) to match x's channels, got {list(t.shape)}")
    checks.check_floating(op, name, t)
    checks.check_same_device(op, name, t, "x", x)


def _check_param_dtype(op, name, t, x):
    """weight and bias as torch's CPU norms take them: in x's dtype, or float32 for float16 /
    bfloat16 x (mixed precision)."""
    reduced = x.dtype in (torch.float16, torch.bfloat16)
    if t is not None and not (t.dtype == x.dtype or (reduced and t.dtype == torch.float32)):
        checks.fail(op, f"{name} has dtype {t.dtype} but x is {x.dtype}" +
                    (" (give it in x's dtype or float32)" if reduced else ""))


def _check(op, x, weight, bias, running_mean, running_var, like_x_name, like_x, activation):
    """The checks of csrc/instance_norm_checks.h, with the same wording."""
    checks.check_device_type(op, "x", x, INTERPRETED)
    if x.dim() < 3:
        checks.fail(op, f"x must be (N, C, ...) with at least one spatial dimension, got {list(x.shape)}")
    checks.check_floating(op, "x", x)
    if activation not in (0, 1, 2):
        checks.fail(op, f"activation must be 0 (none), 1 (relu) or 2 (leaky_relu), got {activation}")
    for name, t in (("weight", weight), ("bias", bias)):
        _check_vector(op, name, t, x)
        _check_param_dtype(op, name, t, x)
    if weight is not None and bias is not None:
        checks.check_like(op, "bias", bias, "weight", weight, same_shape=False)
    _check_vector(op, "running_mean", running_mean, x)
    _check_vector(op, "running_var", running_var, x)
    if (running_mean is None) != (running_var is None):
        checks.fail(op, "give both running_mean and running_var, or neither")
    if like_x is not None:
        checks.check_like(op, like_x_name, like_x, "x", x)


def _check_stats(op, mean, var, x):
    """The per-plane statistics the forward returned: (N, C), in the math dtype, on x's device."""
    for name, t in (("mean", mean), ("var", var)):
        if tuple(t.shape) != (x.shape[0], x.shape[1]):
            checks.fail(op, f"{name} must have shape ({x.shape[0]}, {x.shape[1]}), got {list(t.shape)}")
        if t.dtype != _math_dtype(x):
            checks.fail(op, f"{name} has dtype {t.dtype} but the statistics of x is {_math_dtype(x)}")
        checks.check_same_device(op, name, t, "x", x)


def _layout(x):
    """x in the layout the kernels read, and (stride_n, stride_c, stride_hw) of its planes."""
    fmt = output_format(x)
    x = x.contiguous(memory_format=fmt)
    N, C = x.shape[0], x.shape[1]
    HW = x.numel() // max(N * C, 1)
    if fmt == torch.channels_last:
        return x, fmt, (HW * C, 1, C)
    return x, fmt, (C * HW, HW, 1)


def _dense(*tensors):
    """The per-channel vectors as the kernels read them: element c at ptr + c."""
    return [None if t is None else t.contiguous() for t in tensors]


def _math_dtype(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _block(hw):
    return min(triton.next_power_of_2(max(hw, 1)), 65536 if INTERPRETED else 1024)


@triton_op("gentk::instance_norm_triton", mutates_args=())
def instance_norm(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                  running_mean: Optional[torch.Tensor], running_var: Optional[torch.Tensor], eps: float,
                  activation: int, negative_slope: float,
                  residual: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check("instance_norm_triton", x, weight, bias, running_mean, running_var, "residual", residual, activation)
    x, fmt, (sn, sc, shw) = _layout(x)
    weight, bias, running_mean, running_var = _dense(weight, bias, running_mean, running_var)
    N, C = x.shape[0], x.shape[1]
    HW = x.numel() // max(N * C, 1)
    math = _math_dtype(x)
    y = torch.empty_like(x, memory_format=fmt)
    mean = x.new_empty((N, C), dtype=math)
    var = torch.empty_like(mean)
    res = residual.contiguous(memory_format=fmt) if residual is not None else None
    if N * C * HW > 0 and can_launch(x, weight, bias, running_mean, running_var, res):
        wrap_triton(_instance_norm_fwd_kernel)[(N * C,)](
            x, weight, bias, running_mean, running_var, res, y, mean, var,
            C, HW, sn, sc, shw, float(eps), float(negative_slope),
            HAS_W=weight is not None, HAS_B=bias is not None, HAS_RUNNING=running_mean is not None,
            HAS_RES=res is not None, ACT=int(activation), F64=math == torch.float64, BLOCK=_block(HW),
        )
    elif N * C * HW == 0 and running_mean is None:
        mean.fill_(float("nan"))
        var.fill_(float("nan"))
    if running_mean is not None:  # copied: for N <= 1 a contiguous view would alias the input
        mean.copy_(running_mean.to(math).expand(N, C))
        var.copy_(running_var.to(math).expand(N, C))
    return y, mean, var


@triton_op("gentk::instance_norm_backward_triton", mutates_args=())
def instance_norm_backward(grad_y: torch.Tensor, x: torch.Tensor, weight: Optional[torch.Tensor],
                           bias: Optional[torch.Tensor], mean: torch.Tensor, var: torch.Tensor, eps: float,
                           input_stats: bool, activation: int,
                           negative_slope: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    op = "instance_norm_backward_triton"
    _check(op, x, weight, bias, None, None, "grad_y", grad_y, activation)
    _check_stats(op, mean, var, x)
    N, C = x.shape[0], x.shape[1]
    x, fmt, (sn, sc, shw) = _layout(x)
    weight, bias = _dense(weight, bias)
    HW = x.numel() // max(N * C, 1)
    math = _math_dtype(x)
    gy = grad_y.contiguous(memory_format=fmt)
    grad_x = torch.empty_like(x, memory_format=fmt)
    sum_g = x.new_zeros((N, C), dtype=math)
    sum_gx = torch.zeros_like(sum_g)
    if N * C * HW > 0 and can_launch(gy, x, weight, bias, mean, var):
        wrap_triton(_instance_norm_bwd_kernel)[(N * C,)](
            gy, x, weight, bias, mean.contiguous(), var.contiguous(), grad_x, sum_g, sum_gx,
            C, HW, sn, sc, shw, float(eps), float(negative_slope),
            HAS_W=weight is not None, HAS_B=bias is not None, INPUT_STATS=bool(input_stats),
            ACT=int(activation), F64=math == torch.float64, BLOCK=_block(HW),
        )
    param_dtype = weight.dtype if weight is not None else x.dtype
    return grad_x, sum_gx.sum(0).to(param_dtype), sum_g.sum(0).to(param_dtype)


_OPS = (instance_norm, instance_norm_backward)

keep_whole(_OPS)  # see gentk/ops/_triton.py

# triton_op registered each launcher as its own fake implementation (see gaussian.py).
register_autograd("_triton")
