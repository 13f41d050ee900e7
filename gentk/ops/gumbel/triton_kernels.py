"""Triton kernels of the Gumbel family, registered as ``gentk::*_triton`` ops.

The four ops have the schemas and semantics of the compiled ``gentk::`` ops
(``csrc/gumbel.cpp``: softmax over the last dim of contiguous inputs) and draw the same
noise (``csrc/include/gentk/gumbel.h``): element ``e`` of the flattened input takes output
``(e >> 4) & 3`` of Philox4x32-10 counter ``(e >> 6) * 16 + (e & 15)``, keyed by ``seed``
(lo, hi), counter words ``(c lo, c hi, stream lo, stream hi)``, turned into
u = ((x >> 9) + 1/2) * 2^-23 and g = -log(-log(u)).

Each program holds ``BLOCK_R`` whole rows (``BLOCK_K`` = K rounded up to a power of two),
so one load and one store per element; rows longer than ``MAX_K`` are not supported by
this backend (the cpp and cuda backends take any K). Every element runs its own Philox
counter and keeps one of its four outputs: 4x the integer work of sharing a counter, in
exchange for plain row tiles.

Math runs in float32 for float16 / bfloat16 / float32 inputs and in float64 for float64.
Interpreter notes (fake tensors, FunctionalTensorMode): see gentk/ops/_triton.py.
"""
from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from gentk.ops.gumbel.registration import register_autograd
from gentk.ops import _triton_checks as checks
from gentk.ops._triton import INTERPRETED, can_launch, keep_whole, math_scalar
from gentk.ops._philox_triton import philox_at

__all__ = ["gumbel_softmax", "gumbel_softmax_backward", "categorical_kl_uniform", "categorical_kl_uniform_backward"]

MAX_K = 16384
NOISE_NONE, NOISE_GIVEN, NOISE_PHILOX = 0, 1, 2

# ---------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------


@triton.jit
def _gumbel_noise(seed_ptr, e, F64: tl.constexpr):
    """Gumbel noise of flat element indices e (int64)."""
    slot = (e >> 4) & 3
    c0, c1, c2, c3 = philox_at(seed_ptr, (e >> 6) * 16 + (e & 15))
    x = tl.where(slot == 0, c0, tl.where(slot == 1, c1, tl.where(slot == 2, c2, c3)))
    u = (((x >> 9).to(tl.int32)).to(tl.float32) + 0.5) * 1.1920928955078125e-07  # (0, 1), exact
    if F64:
        u = u.to(tl.float64)
    return -tl.log(-tl.log(u))


@triton.jit
def _load(ptr, offs, mask, other, F64: tl.constexpr):
    x = tl.load(ptr + offs, mask=mask, other=other)
    if F64:
        return x.to(tl.float64)
    else:
        return x.to(tl.float32)


@triton.jit
def _perturbed(logits_ptr, gumbels_ptr, seed_ptr, offs, mask, NOISE: tl.constexpr, F64: tl.constexpr):
    """logits + noise over a row tile; -inf outside the mask."""
    s = _load(logits_ptr, offs, mask, float("-inf"), F64)
    if NOISE == 1:
        s = s + _load(gumbels_ptr, offs, mask, 0.0, F64)
    elif NOISE == 2:
        s = s + _gumbel_noise(seed_ptr, offs, F64)
    return tl.where(mask, s, float("-inf"))


@triton.jit
def _softmax_rows(s, mask, row_mask, inv_tau):
    # a row holding NaN or +inf, or all -inf, comes out NaN, as torch.softmax's
    m = tl.where(row_mask, tl.max(s, axis=1), 0.0)
    e = tl.exp((s - m[:, None]) * inv_tau)
    e = tl.where(mask, e, 0.0)
    total = tl.where(row_mask, tl.sum(e, axis=1), 1.0)
    return e / total[:, None]


@triton.jit
def _row_tile(rows, K, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
    c = tl.arange(0, BLOCK_K).to(tl.int64)
    mask = (r[:, None] < rows) & (c[None, :] < K)
    offs = r[:, None] * K + c[None, :]
    return r, c, mask, offs


@triton.jit
def _gumbel_softmax_fwd_kernel(logits_ptr, gumbels_ptr, seed_ptr, out_ptr, rows, K, inv_tau: tl.float64,
                               NOISE: tl.constexpr, HARD: tl.constexpr, F64: tl.constexpr,
                               BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    r, c, mask, offs = _row_tile(rows, K, BLOCK_R, BLOCK_K)
    s = _perturbed(logits_ptr, gumbels_ptr, seed_ptr, offs, mask, NOISE, F64)
    if HARD:
        m = tl.max(s, axis=1)
        first = tl.min(tl.where((s == m[:, None]) & mask, c[None, :], BLOCK_K), axis=1)  # first maximum
        y = tl.where(c[None, :] == first[:, None], 1.0, 0.0)
        # NaN where the soft sample is NaN (the straight-through value y_hard - y + y of torch)
        undefined = (tl.sum((s != s).to(tl.int32), axis=1) > 0) | (m == float("inf")) | (m == float("-inf"))
        y = tl.where(undefined[:, None], float("nan"), y)
    else:
        y = _softmax_rows(s, mask, r < rows, math_scalar(inv_tau, F64))
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gumbel_softmax_bwd_kernel(grad_ptr, soft_ptr, logits_ptr, gumbels_ptr, seed_ptr, out_ptr, rows, K,
                               inv_tau: tl.float64, HAS_SOFT: tl.constexpr, NOISE: tl.constexpr,
                               F64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    r, c, mask, offs = _row_tile(rows, K, BLOCK_R, BLOCK_K)
    inv = math_scalar(inv_tau, F64)
    if HAS_SOFT:
        y = _load(soft_ptr, offs, mask, 0.0, F64)
    else:
        s = _perturbed(logits_ptr, gumbels_ptr, seed_ptr, offs, mask, NOISE, F64)
        y = _softmax_rows(s, mask, r < rows, inv)
    g = _load(grad_ptr, offs, mask, 0.0, F64)
    dot = tl.sum(y * g, axis=1)
    res = y * (g - dot[:, None]) * inv
    tl.store(out_ptr + offs, res.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _entropy_rows(logits_ptr, offs, mask, row_mask, F64: tl.constexpr):
    """Per row: e_j = exp(l_j - max), d_j = l_j - max, S = sum e, H = sum q log q (NaN for a
    row holding NaN or +inf, or all -inf, as torch.log_softmax)."""
    l = _load(logits_ptr, offs, mask, float("-inf"), F64)
    m = tl.where(row_mask, tl.max(l, axis=1), 0.0)
    d = l - m[:, None]
    e = tl.where(mask, tl.exp(d), 0.0)
    s = tl.where(row_mask, tl.sum(e, axis=1), 1.0)
    ed = tl.where(e > 0, e * d, 0.0)  # 0 log 0 = 0, also for -inf logits
    h = tl.sum(ed, axis=1) / s - tl.log(s)
    return e, d, s, h


@triton.jit
def _kl_fwd_kernel(logits_ptr, kl_ptr, partial_ptr, rows, K, log_k: tl.float64, REDUCE: tl.constexpr,
                   F64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    r, c, mask, offs = _row_tile(rows, K, BLOCK_R, BLOCK_K)
    e, d, s, h = _entropy_rows(logits_ptr, offs, mask, r < rows, F64)
    kl = h + math_scalar(log_k, F64)
    row_mask = r < rows
    if REDUCE:
        tl.store(partial_ptr + tl.program_id(0), tl.sum(tl.where(row_mask, kl, 0.0), axis=0))
    else:
        tl.store(kl_ptr + r, kl.to(kl_ptr.dtype.element_ty), mask=row_mask)


@triton.jit
def _kl_bwd_kernel(grad_ptr, logits_ptr, out_ptr, rows, K, scale: tl.float64, PER_ROW: tl.constexpr,
                   F64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    r, c, mask, offs = _row_tile(rows, K, BLOCK_R, BLOCK_K)
    e, d, s, h = _entropy_rows(logits_ptr, offs, mask, r < rows, F64)
    if PER_ROW:
        w = _load(grad_ptr, r, r < rows, 0.0, F64)
    else:
        # formed in float64 and rounded once, like the CPU kernels
        w = math_scalar(tl.load(grad_ptr).to(tl.float64) * scale, F64)
    log_q_minus_h = d - (tl.log(s) + h)[:, None]
    # 0 for q = 0 (a -inf logit), unless the row's KL is NaN
    res = tl.where((e == 0) & (h == h)[:, None], 0.0, (w / s)[:, None] * e * log_q_minus_h)
    tl.store(out_ptr + offs, res.to(out_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# Launch helpers
# ---------------------------------------------------------------------------------------

# Elements per program: 4K on a GPU; the interpreter's cost is per program, so it takes
# up to 256K (see gaussian.py).
_TILE = 1 << 18 if INTERPRETED else 4096


def _tiles(rows, k):
    block_k = triton.next_power_of_2(max(k, 1))
    block_r = max(1, min(triton.next_power_of_2(max(rows, 1)), _TILE // block_k))
    return block_r, block_k, (triton.cdiv(rows, block_r),)


def _rows_cols(x):
    k = x.shape[-1]
    return (x.numel() // k if k else 0), k


def _check_logits(op, logits, name="logits"):
    """The tensor the op reduces over its last dimension: logits, or the saved soft sample."""
    checks.check_device_type(op, name, logits, INTERPRETED)
    checks.check_floating(op, name, logits)
    if logits.dim() < 1:
        checks.fail(op, f"{name} must have at least one dimension (the categories)")
    if logits.shape[-1] > MAX_K:
        checks.fail(op, f"the triton backend takes at most {MAX_K} categories, got {logits.shape[-1]}; "
                        "use the cpp or cuda backend")


def _check_noise(op, ref_name, ref, gumbels, seed):
    if gumbels is not None:
        checks.check_like(op, "gumbels", gumbels, ref_name, ref)
    elif seed is not None:
        checks.check_seed(op, seed, ref_name, ref)


def _check_tau(op, tau):
    if not (tau > 0 and tau != float("inf")):
        checks.fail(op, f"tau must be finite and > 0, got {tau}")


def _inv_tau(tau, dtype):
    return min(1.0 / tau, torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).max)


def _noise_args(gumbels, seed):
    if gumbels is not None:
        return gumbels.contiguous(), None, NOISE_GIVEN
    if seed is not None:
        return None, seed.contiguous(), NOISE_PHILOX
    return None, None, NOISE_NONE


# ---------------------------------------------------------------------------------------
# Ops (schemas are inferred from the annotations and match csrc/gumbel.cpp exactly)
# ---------------------------------------------------------------------------------------


@triton_op("gentk::gumbel_softmax_triton", mutates_args=())
def gumbel_softmax(
    logits: torch.Tensor, gumbels: Optional[torch.Tensor], seed: Optional[torch.Tensor], tau: float, hard: bool
) -> torch.Tensor:
    op = "gumbel_softmax_triton"
    _check_logits(op, logits)
    _check_noise(op, "logits", logits, gumbels, seed)
    _check_tau(op, tau)
    logits = logits.contiguous()
    gumbels, seed, noise = _noise_args(gumbels, seed)
    out = torch.empty_like(logits)
    rows, k = _rows_cols(logits)
    if rows == 0 or not can_launch(logits, gumbels, seed):
        return out
    block_r, block_k, grid = _tiles(rows, k)
    wrap_triton(_gumbel_softmax_fwd_kernel)[grid](
        logits, gumbels, seed, out, rows, k, _inv_tau(tau, logits.dtype),
        NOISE=noise, HARD=bool(hard), F64=logits.dtype == torch.float64, BLOCK_R=block_r, BLOCK_K=block_k,
    )
    return out


@triton_op("gentk::gumbel_softmax_backward_triton", mutates_args=())
def gumbel_softmax_backward(
    grad: torch.Tensor,
    soft: Optional[torch.Tensor],
    logits: Optional[torch.Tensor],
    gumbels: Optional[torch.Tensor],
    seed: Optional[torch.Tensor],
    tau: float,
) -> torch.Tensor:
    op = "gumbel_softmax_backward_triton"
    if soft is None and logits is None:
        checks.fail(op, "give either soft or logits")
    like_name, like = ("soft", soft) if soft is not None else ("logits", logits)
    _check_logits(op, like, like_name)
    checks.check_like(op, "grad", grad, like_name, like)
    if soft is not None and logits is not None:
        checks.check_like(op, "logits", logits, like_name, like)
    _check_noise(op, like_name, like, gumbels, seed)
    _check_tau(op, tau)
    grad = grad.contiguous()
    soft = soft.contiguous() if soft is not None else None
    logits = logits.contiguous() if soft is None else None
    gumbels, seed, noise = _noise_args(gumbels, seed)
    out = torch.empty_like(grad)
    rows, k = _rows_cols(grad)
    if rows == 0 or not can_launch(grad, soft, logits, gumbels, seed):
        return out
    block_r, block_k, grid = _tiles(rows, k)
    wrap_triton(_gumbel_softmax_bwd_kernel)[grid](
        grad, soft, logits, gumbels, seed, out, rows, k, _inv_tau(tau, grad.dtype),
        HAS_SOFT=soft is not None, NOISE=noise, F64=grad.dtype == torch.float64, BLOCK_R=block_r, BLOCK_K=block_k,
    )
    return out


@triton_op("gentk::categorical_kl_uniform_triton", mutates_args=())
def categorical_kl_uniform(logits: torch.Tensor, reduce: bool, scale: float) -> torch.Tensor:
    op = "categorical_kl_uniform_triton"
    _check_logits(op, logits)
    logits = logits.contiguous()
    rows, k = _rows_cols(logits)
    f64 = logits.dtype == torch.float64
    kl = None if reduce else logits.new_empty(logits.shape[:-1])
    if rows == 0:
        return logits.new_full((), 0.0 * scale) if reduce else kl
    block_r, block_k, grid = _tiles(rows, k)
    partial = torch.empty(grid[0], device=logits.device, dtype=torch.float64 if f64 else torch.float32) if reduce \
        else None
    if can_launch(logits):
        import math

        wrap_triton(_kl_fwd_kernel)[grid](
            logits, kl, partial, rows, k, math.log(k),
            REDUCE=bool(reduce), F64=f64, BLOCK_R=block_r, BLOCK_K=block_k,
        )
    if reduce:
        return (partial.sum(dtype=torch.float64) * scale).to(logits.dtype)
    return kl


@triton_op("gentk::categorical_kl_uniform_backward_triton", mutates_args=())
def categorical_kl_uniform_backward(grad: torch.Tensor, logits: torch.Tensor, scale: float) -> torch.Tensor:
    op = "categorical_kl_uniform_backward_triton"
    _check_logits(op, logits)
    logits = logits.contiguous()
    rows, k = _rows_cols(logits)
    checks.check_grad_either(op, "grad", grad, "logits", logits, logits.shape[:-1])
    per_row = grad.shape == logits.shape[:-1] and logits.dim() > 1
    grad = grad.contiguous() if per_row else grad.reshape(())
    out = torch.empty_like(logits)
    if rows == 0 or not can_launch(grad, logits):
        return out
    block_r, block_k, grid = _tiles(rows, k)
    wrap_triton(_kl_bwd_kernel)[grid](
        grad, logits, out, rows, k, float(scale),
        PER_ROW=per_row, F64=logits.dtype == torch.float64, BLOCK_R=block_r, BLOCK_K=block_k,
    )
    return out


_OPS = (gumbel_softmax, gumbel_softmax_backward, categorical_kl_uniform, categorical_kl_uniform_backward)

keep_whole(_OPS)  # see gentk/ops/_triton.py

register_autograd("_triton")
