"""Triton kernels of the Gaussian op family, registered as ``gentk::*_triton`` ops.

The six ops have the schemas and semantics of the compiled ``gentk::`` ops (``csrc/gaussian.cpp``)
and draw the same noise: Philox4x32-10 keyed by ``seed`` (lo, hi), counter
``(c lo, c hi, stream lo, stream hi)``; elements come in groups of 64, counter
``c = g*16 + k`` of group ``g`` gives four normals, normal ``j`` lands on element
``g*64 + j*16 + k`` (see ``csrc/include/gentk/philox.h``). Each program turns a block of
``BLOCK_G`` groups (``BLOCK_G*16`` counters) into ``BLOCK_G*64`` elements with four masked
loads / stores per tensor, so every counter runs through Philox once.

Math runs in float32 for float16 / bfloat16 / float32 inputs and in float64 for float64.

Under ``TRITON_INTERPRET=1`` the launchers behave as ``gentk/ops/_triton.py`` describes.
"""
from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from gentk.ops.gaussian.registration import register_autograd
from gentk.ops import _triton_checks as checks
from gentk.ops._philox_triton import philox_at
from gentk.ops._triton import INTERPRETED, can_launch, keep_whole, load_math

__all__ = [
    "reparameterize",
    "reparameterize_backward",
    "gaussian_kl",
    "gaussian_kl_backward",
    "reparameterize_kl",
    "reparameterize_kl_backward",
]

NOISE_GROUP = 64  # elements per noise group
NOISE_LANES = 16  # Philox counters per group

# ---------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------


@triton.jit
def _philox_normals(seed_ptr, g, k, F64: tl.constexpr):
    """The four standard normals of counters g*16 + k (g: int64 group, k: lane)."""
    c0, c1, c2, c3 = philox_at(seed_ptr, g * 16 + k)
    if F64:
        two_pi = tl.full([], 6.283185307179586476925286766559, tl.float64)
    else:
        two_pi = tl.full([], 6.283185307179586476925286766559, tl.float32)
    step = 5.9604644775390625e-08  # 2^-24, exact in any float type
    u1 = (((c0 >> 8) + 1).to(tl.int32)).to(two_pi.dtype) * step  # (0, 1]
    u2 = ((c1 >> 8).to(tl.int32)).to(two_pi.dtype) * step  # [0, 1)
    u3 = (((c2 >> 8) + 1).to(tl.int32)).to(two_pi.dtype) * step
    u4 = ((c3 >> 8).to(tl.int32)).to(two_pi.dtype) * step
    r0 = tl.sqrt(-2.0 * tl.log(u1))
    t0 = two_pi * u2
    r1 = tl.sqrt(-2.0 * tl.log(u3))
    t1 = two_pi * u4
    return r0 * tl.cos(t0), r0 * tl.sin(t0), r1 * tl.cos(t1), r1 * tl.sin(t1)


@triton.jit
def _fwd_slot(offs, mask, noise, mu_ptr, logvar_ptr, eps_ptr, z_ptr, kl_ptr, acc,
              HAS_Z: tl.constexpr, HAS_EPS: tl.constexpr, WANT_KL: tl.constexpr,
              REDUCE: tl.constexpr, F64: tl.constexpr):
    m = load_math(mu_ptr, offs, mask, F64)
    lv = load_math(logvar_ptr, offs, mask, F64)
    sd = tl.exp(0.5 * lv)
    if HAS_Z:
        if HAS_EPS:
            e = load_math(eps_ptr, offs, mask, F64)
        else:
            e = noise
        z = m + e * sd
        tl.store(z_ptr + offs, z.to(z_ptr.dtype.element_ty), mask=mask)
    if WANT_KL:
        k = 0.5 * (m * m + (sd * sd - 1.0) - lv)
        if REDUCE:
            acc += tl.where(mask, k, 0.0)
        else:
            tl.store(kl_ptr + offs, k.to(kl_ptr.dtype.element_ty), mask=mask)
    return acc


@triton.jit
def _gaussian_fwd_kernel(mu_ptr, logvar_ptr, eps_ptr, seed_ptr, z_ptr, kl_ptr, partial_ptr, n,
                         HAS_Z: tl.constexpr, HAS_EPS: tl.constexpr, WANT_KL: tl.constexpr,
                         REDUCE: tl.constexpr, F64: tl.constexpr, BLOCK_G: tl.constexpr):
    pid = tl.program_id(0)
    i = tl.arange(0, BLOCK_G * 16)
    g = pid.to(tl.int64) * BLOCK_G + i // 16
    k = i % 16
    base = g * 64 + k
    if HAS_Z and not HAS_EPS:
        n0, n1, n2, n3 = _philox_normals(seed_ptr, g, k, F64)
    else:
        n0 = None
        n1 = None
        n2 = None
        n3 = None
    if F64:
        acc = tl.zeros([BLOCK_G * 16], tl.float64)
    else:
        acc = tl.zeros([BLOCK_G * 16], tl.float32)
    acc = _fwd_slot(base, base < n, n0, mu_ptr, logvar_ptr, eps_ptr, z_ptr, kl_ptr, acc,
                    HAS_Z, HAS_EPS, WANT_KL, REDUCE, F64)
    acc = _fwd_slot(base + 16, base + 16 < n, n1, mu_ptr, logvar_ptr, eps_ptr, z_ptr, kl_ptr, acc,
                    HAS_Z, HAS_EPS, WANT_KL, REDUCE, F64)
    acc = _fwd_slot(base + 32, base + 32 < n, n2, mu_ptr, logvar_ptr, eps_ptr, z_ptr, kl_ptr, acc,
                    HAS_Z, HAS_EPS, WANT_KL, REDUCE, F64)
    acc = _fwd_slot(base + 48, base + 48 < n, n3, mu_ptr, logvar_ptr, eps_ptr, z_ptr, kl_ptr, acc,
                    HAS_Z, HAS_EPS, WANT_KL, REDUCE, F64)
    if WANT_KL and REDUCE:
        tl.store(partial_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _bwd_slot(offs, mask, noise, gk_scalar, gz_ptr, gk_ptr, mu_ptr, logvar_ptr, eps_ptr,
              gmu_ptr, glv_ptr,
              HAS_GZ: tl.constexpr, HAS_EPS: tl.constexpr, GK_MODE: tl.constexpr,
              WANT_GMU: tl.constexpr, F64: tl.constexpr):
    lv = load_math(logvar_ptr, offs, mask, F64)
    sd = tl.exp(0.5 * lv)
    d_lv = tl.zeros_like(lv)
    d_mu = tl.zeros_like(lv)
    if HAS_GZ:
        gz = load_math(gz_ptr, offs, mask, F64)
        if HAS_EPS:
            e = load_math(eps_ptr, offs, mask, F64)
        else:
            e = noise
        d_lv = 0.5 * gz * e * sd
        d_mu = gz
    if GK_MODE != 0:
        if GK_MODE == 1:  # per element
            gk = load_math(gk_ptr, offs, mask, F64)
            d_lv = d_lv + gk * (0.5 * (sd * sd - 1.0))
            if WANT_GMU:
                d_mu = d_mu + gk * load_math(mu_ptr, offs, mask, F64)
        else:  # one value for the whole sum; a zero one adds nothing (as on CPU)
            d_lv = tl.where(gk_scalar != 0, d_lv + gk_scalar * (0.5 * (sd * sd - 1.0)), d_lv)
            if WANT_GMU:
                d_mu = tl.where(gk_scalar != 0, d_mu + gk_scalar * load_math(mu_ptr, offs, mask, F64), d_mu)
    tl.store(glv_ptr + offs, d_lv.to(glv_ptr.dtype.element_ty), mask=mask)
    if WANT_GMU:
        tl.store(gmu_ptr + offs, d_mu.to(gmu_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gaussian_bwd_kernel(gz_ptr, gk_ptr, mu_ptr, logvar_ptr, eps_ptr, seed_ptr, gmu_ptr, glv_ptr,
                         n, scale: tl.float64,
                         HAS_GZ: tl.constexpr, HAS_EPS: tl.constexpr, GK_MODE: tl.constexpr,
                         WANT_GMU: tl.constexpr, F64: tl.constexpr, BLOCK_G: tl.constexpr):
    # GK_MODE: 0 no KL gradient, 1 per-element grad_kl, 2 one value (times scale)
    pid = tl.program_id(0)
    i = tl.arange(0, BLOCK_G * 16)
    g = pid.to(tl.int64) * BLOCK_G + i // 16
    k = i % 16
    base = g * 64 + k
    if HAS_GZ and not HAS_EPS:
        n0, n1, n2, n3 = _philox_normals(seed_ptr, g, k, F64)
    else:
        n0 = None
        n1 = None
        n2 = None
        n3 = None
    if GK_MODE == 2:
        # the product is formed in float64 and rounded once, like the CPU kernels
        gk_scalar = tl.load(gk_ptr).to(tl.float64) * scale
        if not F64:
            gk_scalar = gk_scalar.to(tl.float32)
    else:
        gk_scalar = None
    _bwd_slot(base, base < n, n0, gk_scalar, gz_ptr, gk_ptr, mu_ptr, logvar_ptr, eps_ptr,
              gmu_ptr, glv_ptr, HAS_GZ, HAS_EPS, GK_MODE, WANT_GMU, F64)
    _bwd_slot(base + 16, base + 16 < n, n1, gk_scalar, gz_ptr, gk_ptr, mu_ptr, logvar_ptr, eps_ptr,
              gmu_ptr, glv_ptr, HAS_GZ, HAS_EPS, GK_MODE, WANT_GMU, F64)
    _bwd_slot(base + 32, base + 32 < n, n2, gk_scalar, gz_ptr, gk_ptr, mu_ptr, logvar_ptr, eps_ptr,
              gmu_ptr, glv_ptr, HAS_GZ, HAS_EPS, GK_MODE, WANT_GMU, F64)
    _bwd_slot(base + 48, base + 48 < n, n3, gk_scalar, gz_ptr, gk_ptr, mu_ptr, logvar_ptr, eps_ptr,
              gmu_ptr, glv_ptr, HAS_GZ, HAS_EPS, GK_MODE, WANT_GMU, F64)


# ---------------------------------------------------------------------------------------
# Launch helpers
# ---------------------------------------------------------------------------------------

# Counter groups per program: 16 groups = 1024 elements on a GPU. The interpreter runs each
# program as a sequence of numpy calls, so its cost is per program, not per element: it
# takes blocks of up to 256K elements (with 4K-element blocks a 2M-element input took
# over 20 times longer). Small inputs get the smallest power of two that covers them (a
# handful of compiled variants at most).
_MAX_BLOCK_G = 4096 if INTERPRETED else 16

def _block_g(n: int) -> int:
    groups = triton.cdiv(n, NOISE_GROUP)
    return min(_MAX_BLOCK_G, triton.next_power_of_2(max(groups, 1)))


def _grid(n: int, block_g: int):
    return (triton.cdiv(triton.cdiv(n, NOISE_GROUP), block_g),)


def _check_inputs(op: str, mu, logvar, eps, seed, needs_noise: bool, mu_name: str = "mu"):
    """The checks of csrc/gaussian_checks.h: mu (named mu_name: reparameterize_backward passes
    its grad in mu's place), logvar like it, and the noise: eps like mu, else a seed."""
    checks.check_device_type(op, mu_name, mu, INTERPRETED)
    checks.check_floating(op, mu_name, mu)
    checks.check_like(op, "logvar", logvar, mu_name, mu)
    if eps is not None:
        checks.check_like(op, "eps", eps, mu_name, mu)
    elif needs_noise:
        if seed is None:
            checks.fail(op, "give either eps or seed")
        checks.check_seed(op, seed, mu_name, mu)


def _check_kl_grad(op: str, name: str, grad: torch.Tensor, mu: torch.Tensor):
    """The gradient of the KL: per element (reduction none) or one value (a reduced KL)."""
    checks.check_grad_either(op, name, grad, "mu", mu, mu.shape)


def _empty(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _forward(op, mu, logvar, eps, seed, want_z, want_kl, reduce, scale):
    mu = mu.contiguous()
    logvar = logvar.contiguous()
    has_eps = want_z and eps is not None
    if has_eps:
        eps = eps.contiguous()
    seed_arg = seed.contiguous() if (want_z and not has_eps) else None
    eps_arg = eps if has_eps else None
    n = mu.numel()
    z = _empty(mu) if want_z else None
    kl_elem = _empty(mu) if (want_kl and not reduce) else None
    kl = kl_elem
    f64 = mu.dtype == torch.float64
    if n == 0:
        if want_kl and reduce:
            kl = mu.new_full((), 0.0 * scale)
        return z, kl
    block_g = _block_g(n)
    grid = _grid(n, block_g)
    partial = None
    if want_kl and reduce:
        partial = torch.empty(grid[0], device=mu.device, dtype=torch.float64 if f64 else torch.float32)
    if can_launch(mu, logvar, eps_arg, seed_arg):
        wrap_triton(_gaussian_fwd_kernel)[grid](
            mu, logvar, eps_arg, seed_arg, z, kl_elem, partial, n,
            HAS_Z=want_z, HAS_EPS=has_eps, WANT_KL=want_kl, REDUCE=bool(reduce), F64=f64,
            BLOCK_G=block_g,
        )
    if want_kl and reduce:
        kl = (partial.sum(dtype=torch.float64) * scale).to(mu.dtype)
    return z, kl


def _backward(op, grad_z, grad_kl, mu, logvar, eps, seed, scale, want_grad_mu):
    logvar = logvar.contiguous()
    mu = mu.contiguous() if mu is not None else None
    n = logvar.numel()
    has_gz = grad_z is not None
    has_eps = has_gz and eps is not None
    gz = grad_z.contiguous() if has_gz else None
    eps_arg = eps.contiguous() if has_eps else None
    seed_arg = seed.contiguous() if (has_gz and not has_eps) else None
    gk = None
    gk_mode = 0
    if grad_kl is not None:
        if grad_kl.shape == logvar.shape and logvar.dim() > 0:
            gk, gk_mode = grad_kl.contiguous(), 1
        else:
            gk, gk_mode = grad_kl.reshape(()), 2
    grad_mu = _empty(logvar) if want_grad_mu else None
    grad_logvar = _empty(logvar)
    if n == 0:
        return grad_mu, grad_logvar
    block_g = _block_g(n)
    if can_launch(gz, gk, mu, logvar, eps_arg, seed_arg):
        wrap_triton(_gaussian_bwd_kernel)[_grid(n, block_g)](
            gz, gk, mu if want_grad_mu else None, logvar, eps_arg, seed_arg, grad_mu, grad_logvar,
            n, float(scale),
            HAS_GZ=has_gz, HAS_EPS=has_eps, GK_MODE=gk_mode, WANT_GMU=want_grad_mu,
            F64=logvar.dtype == torch.float64, BLOCK_G=block_g,
        )
    return grad_mu, grad_logvar


# ---------------------------------------------------------------------------------------
# Ops (schemas are inferred from the annotations and match csrc/gaussian.cpp exactly)
# ---------------------------------------------------------------------------------------


@triton_op("gentk::reparameterize_triton", mutates_args=())
def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, eps: Optional[torch.Tensor], seed: Optional[torch.Tensor]
) -> torch.Tensor:
    op = "reparameterize_triton"
    _check_inputs(op, mu, logvar, eps, seed, True)
    return _forward(op, mu, logvar, eps, seed, True, False, False, 1.0)[0]


@triton_op("gentk::reparameterize_backward_triton", mutates_args=())
def reparameterize_backward(
    grad: torch.Tensor, logvar: torch.Tensor, eps: Optional[torch.Tensor], seed: Optional[torch.Tensor]
) -> torch.Tensor:
    op = "reparameterize_backward_triton"
    _check_inputs(op, grad, logvar, eps, seed, True, mu_name="grad")
    return _backward(op, grad, None, None, logvar, eps, seed, 1.0, False)[1]


@triton_op("gentk::gaussian_kl_triton", mutates_args=())
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, reduce: bool, scale: float) -> torch.Tensor:
    op = "gaussian_kl_triton"
    _check_inputs(op, mu, logvar, None, None, False)
    return _forward(op, mu, logvar, None, None, False, True, reduce, scale)[1]


@triton_op("gentk::gaussian_kl_backward_triton", mutates_args=())
def gaussian_kl_backward(
    grad: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    op = "gaussian_kl_backward_triton"
    _check_inputs(op, mu, logvar, None, None, False)
    _check_kl_grad(op, "grad", grad, mu)
    return _backward(op, None, grad, mu, logvar, None, None, scale, True)


@triton_op("gentk::reparameterize_kl_triton", mutates_args=())
def reparameterize_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: Optional[torch.Tensor],
    seed: Optional[torch.Tensor],
    reduce: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    op = "reparameterize_kl_triton"
    _check_inputs(op, mu, logvar, eps, seed, True)
    return _forward(op, mu, logvar, eps, seed, True, True, reduce, scale)


@triton_op("gentk::reparameterize_kl_backward_triton", mutates_args=())
def reparameterize_kl_backward(
    grad_z: Optional[torch.Tensor],
    grad_kl: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: Optional[torch.Tensor],
    seed: Optional[torch.Tensor],
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    op = "reparameterize_kl_backward_triton"
    _check_inputs(op, mu, logvar, eps, seed, True)
    if grad_z is not None:
        checks.check_grad(op, "grad_z", grad_z, "mu", mu, mu.shape, per_element=True)
    _check_kl_grad(op, "grad_kl", grad_kl, mu)
    return _backward(op, grad_z, grad_kl, mu, logvar, eps, seed, scale, True)


_OPS = (
    reparameterize,
    reparameterize_backward,
    gaussian_kl,
    gaussian_kl_backward,
    reparameterize_kl,
    reparameterize_kl_backward,
)

keep_whole(_OPS)  # see gentk/ops/_triton.py

# No register_fakes("_triton"): triton_op already registered each launcher as its own fake
# implementation (run on fake tensors, argument checks included). register_fakes would be
# accepted silently and replace those with the hand-written shapes.
register_autograd("_triton")
