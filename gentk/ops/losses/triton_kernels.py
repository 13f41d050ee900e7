"""Triton kernels of the loss family, registered as ``gentk::*_triton`` ops with the
schemas and semantics of the compiled ops (``csrc/losses.cpp``).

- One elementwise kernel serves every loss: it reads the logits (and a target tensor or
  one label), and writes per-element losses, per-program partial sums (added in float64
  by the launcher) or the gradient, in one pass. The kind (BCE, squares, linear, hinge,
  L1) is a compile-time constant, as in ``csrc/include/gentk/losses.h``.
- The gradient penalty's row kernels run on a (rows, column blocks) grid: per-block
  partial sums of squares, the per-row scaling of the backward, and the interpolation,
  whose alpha for row r is the first Philox4x32-10 word of counter r under (seed, stream),
  as a uniform in [0, 1) with 24 bits: the same alphas as the CPU and CUDA kernels.

Math runs in float32 for float16 / bfloat16 / float32 inputs and in float64 for float64.
Out-of-range BCE targets are checked by ``gentk.functional`` (the cpp kernel counts them
in its own pass). Under ``TRITON_INTERPRET=1`` the launchers behave as described in
:mod:`gentk.ops._triton` (no launches on fake tensors, ops kept whole under
FunctionalTensorMode).
"""
import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from gentk.ops.losses.registration import register_autograd
from gentk.ops import _triton_checks as checks
from gentk.ops._triton import INTERPRETED, can_launch, keep_whole, load_math, math_scalar
from gentk.ops._philox_triton import philox_at

KIND = {"bce": 0, "square": 1, "linear": 2, "hinge": 3, "abs": 4}
_MAX_BLOCK = 1 << 16 if INTERPRETED else 1024


# ---------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------

@triton.jit
def _log1p_small(e):
    """log(1 + e) for e in [0, 1], accurate for tiny e without libdevice's log1p."""
    u = 1.0 + e
    return tl.where(u == 1.0, e, tl.log(u) * (e / tl.where(u == 1.0, 1.0, u - 1.0)))


@triton.jit
def _term(x, y, KIND: tl.constexpr):
    """(loss, dloss/dx) of one elementwise term; see csrc/include/gentk/losses.h."""
    if KIND == 0:  # BCE-with-logits: (1 - y) x + softplus(-x), torch's form (the same NaNs at +-inf)
        e = tl.exp(-tl.abs(x))
        loss = (1.0 - y) * x + tl.maximum(-x, 0.0) + _log1p_small(e)
        r = 1.0 / (1.0 + e)
        grad = tl.where(x >= 0, r, e * r) - y
    elif KIND == 1:  # (x - y)^2
        d = x - y
        loss = d * d
        grad = 2.0 * d
    elif KIND == 2:  # s x
        loss = y * x
        grad = y
    elif KIND == 3:  # relu(1 + s x); NaN passes through, and its gradient too, as torch's relu
        m = 1.0 + y * x
        loss = tl.where(m < 0, 0.0, m)
        grad = tl.where(m <= 0, 0.0 * y, y)
    else:  # |x - y|
        d = x - y
        loss = tl.abs(d)
        grad = tl.where(d > 0, 1.0, 0.0) - tl.where(d < 0, 1.0, 0.0)
    return loss, grad


@triton.jit
def _loss_term_kernel(x_ptr, t_ptr, gout_ptr, loss_ptr, grad_ptr, partial_ptr, n,
                      param: tl.float64, loss_scale: tl.float64, grad_scale: tl.float64,
                      KIND: tl.constexpr, HAS_TARGET: tl.constexpr, LOSS_MODE: tl.constexpr,
                      GRAD_MODE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    # LOSS_MODE: 0 none, 1 partial sums, 2 store elements, 3 add into elements
    # GRAD_MODE: 0 none, 1 times grad_scale, 2 times grad_out and grad_scale
    # scalars arrive in float64 (rounded once, like the CPU kernels) and run in the math type
    param = math_scalar(param, F64)
    loss_scale = math_scalar(loss_scale, F64)
    grad_scale = math_scalar(grad_scale, F64)
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = load_math(x_ptr, offs, mask, F64)
    if HAS_TARGET:
        y = load_math(t_ptr, offs, mask, F64)
    else:
        y = tl.zeros_like(x) + param
    loss, grad = _term(x, y, KIND)
    if LOSS_MODE == 1:
        tl.store(partial_ptr + pid, tl.sum(tl.where(mask, loss, 0.0), axis=0))
    elif LOSS_MODE == 2:
        tl.store(loss_ptr + offs, (loss * loss_scale).to(loss_ptr.dtype.element_ty), mask=mask)
    elif LOSS_MODE == 3:
        prev = load_math(loss_ptr, offs, mask, F64)
        tl.store(loss_ptr + offs, (prev + loss * loss_scale).to(loss_ptr.dtype.element_ty), mask=mask)
    if GRAD_MODE != 0:
        g = grad * grad_scale
        if GRAD_MODE == 2:
            g = g * load_math(gout_ptr, offs, mask, F64)
        tl.store(grad_ptr + offs, g.to(grad_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _row_alpha(seed_ptr, row, like, F64: tl.constexpr):
    """gentk/losses.h gp_alpha(row): the first Philox word of counter `row`, as U[0, 1)."""
    c0, c1, c2, c3 = philox_at(seed_ptr, tl.zeros_like(like).to(tl.int64) + row)
    alpha = ((c0 >> 8).to(tl.int32)).to(tl.float32) * 5.9604644775390625e-08
    if F64:
        return alpha.to(tl.float64)
    else:
        return alpha


@triton.jit
def _interpolate_kernel(a_ptr, b_ptr, seed_ptr, out_ptr, out2_ptr, cols,
                        BACKWARD: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    # forward: out = fake + alpha (real - fake); backward: out = alpha g, out2 = (1 - alpha) g
    row = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = c < cols
    offs = row * cols + c
    a = load_math(a_ptr, offs, mask, F64)
    alpha = _row_alpha(seed_ptr, row, c, F64)
    if BACKWARD:
        tl.store(out_ptr + offs, (alpha * a).to(out_ptr.dtype.element_ty), mask=mask)
        tl.store(out2_ptr + offs, ((1.0 - alpha) * a).to(out2_ptr.dtype.element_ty), mask=mask)
    else:
        f = load_math(b_ptr, offs, mask, F64)
        tl.store(out_ptr + offs, (f + alpha * (a - f)).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _row_sumsq_kernel(x_ptr, partial_ptr, cols, blocks, F64: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1)
    c = b.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = load_math(x_ptr, row * cols + c, c < cols, F64)
    tl.store(partial_ptr + row * blocks + b, tl.sum(x * x, axis=0))


@triton.jit
def _scale_rows_kernel(x_ptr, coef_ptr, out_ptr, cols, F64: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = c < cols
    k = tl.load(coef_ptr + row)
    if not F64:
        k = k.to(tl.float32)
    x = load_math(x_ptr, row * cols + c, mask, F64)
    tl.store(out_ptr + row * cols + c, (k * x).to(out_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# Checks (the wording of csrc/losses_checks.h) and launch helpers
# ---------------------------------------------------------------------------------------

def _check_tensor(op, name, x):
    checks.check_device_type(op, name, x, INTERPRETED)
    checks.check_floating(op, name, x)


def _discriminator_spec(op, mode, real_label, fake_label):
    if mode in ("bce", "lsgan"):
        if mode == "bce":
            for name, v in (("real_label", real_label), ("fake_label", fake_label)):
                if not 0 <= v <= 1:
                    checks.fail(op, f"{name} must lie in [0, 1] for mode 'bce', got {v}")
        kind = KIND["bce"] if mode == "bce" else KIND["square"]
        return (kind, real_label), (kind, fake_label)
    if mode == "wgan":
        return (KIND["linear"], -1.0), (KIND["linear"], 1.0)
    if mode == "hinge":
        return (KIND["hinge"], -1.0), (KIND["hinge"], 1.0)
    checks.fail(op, f"unknown mode '{mode}'; choose one of bce, lsgan, wgan, hinge")


def _generator_spec(op, mode):
    if mode in ("bce", "nonsaturating"):
        return KIND["bce"], 1.0
    if mode == "lsgan":
        return KIND["square"], 1.0
    if mode in ("wgan", "hinge"):
        return KIND["linear"], -1.0
    checks.fail(op, f"unknown mode '{mode}'; choose one of bce, nonsaturating, lsgan, wgan, hinge")


def _reduction(op, reduction, allow_batchsum=False):
    choices = ("none", "sum", "mean") + (("batchsum",) if allow_batchsum else ())
    if reduction not in choices:
        checks.fail(op, f"unknown reduction '{reduction}'; choose one of {', '.join(choices)}")
    return reduction


def _scale(reduction, x):
    if reduction == "mean":
        return 1.0 / x.numel() if x.numel() else float("nan")
    if reduction == "batchsum":
        return 1.0 / x.shape[0] if x.shape[0] else float("nan")
    return 1.0


def _check_pairing(op, real, fake, reduction):
    ok = real.dim() == fake.dim() and real.shape[1:] == fake.shape[1:]
    if reduction == "none":
        ok = ok and real.shape == fake.shape
    if not ok:
        extra = " for reduction 'none'" if reduction == "none" else " apart from the batch dimension"
        checks.fail(op, f"real_logits {list(real.shape)} and fake_logits {list(fake.shape)} cannot pair: they must "
                  f"have the same shape{extra}")


def _empty(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _block(n):
    return min(_MAX_BLOCK, triton.next_power_of_2(max(n, 1)))


def _term_sum(x, kind, param, target=None):
    """Unscaled float64 sum of one elementwise term."""
    n = x.numel()
    if n == 0:
        return torch.zeros((), dtype=torch.float64, device=x.device)
    block = _block(n)
    grid = (triton.cdiv(n, block),)
    f64 = x.dtype == torch.float64
    partial = torch.empty(grid[0], device=x.device, dtype=torch.float64 if f64 else torch.float32)
    if can_launch(x, target):
        wrap_triton(_loss_term_kernel)[grid](
            x, target, None, None, None, partial, n, float(param), 1.0, 1.0,
            KIND=kind, HAS_TARGET=target is not None, LOSS_MODE=1, GRAD_MODE=0, F64=f64, BLOCK=block)
    return partial.sum(dtype=torch.float64)


def _term_elements(x, kind, param, out, accumulate, scale=1.0, target=None):
    n = x.numel()
    if n == 0:
        return out
    block = _block(n)
    if can_launch(x, target, out):
        wrap_triton(_loss_term_kernel)[(triton.cdiv(n, block),)](
            x, target, None, out, None, None, n, float(param), float(scale), 1.0,
            KIND=kind, HAS_TARGET=target is not None, LOSS_MODE=3 if accumulate else 2, GRAD_MODE=0,
            F64=x.dtype == torch.float64, BLOCK=block)
    return out


def _term_grad(grad, x, kind, param, reduction, scale, target=None):
    """dterm/dx times grad (per element, reduction none) or times grad * scale (one value)."""
    out = _empty(x)
    n = x.numel()
    if n == 0:
        return out
    block = _block(n)
    if reduction == "none":
        gout, gscale, mode = grad.contiguous(), float(scale), 2
    else:
        gout, mode = None, 1
        gscale = float(grad.reshape(()).item()) * scale if can_launch(grad) else 0.0
    if can_launch(x, target, gout):
        wrap_triton(_loss_term_kernel)[(triton.cdiv(n, block),)](
            x, target, gout, None, out, None, n, float(param), 1.0, gscale,
            KIND=kind, HAS_TARGET=target is not None, LOSS_MODE=0, GRAD_MODE=mode,
            F64=x.dtype == torch.float64, BLOCK=block)
    return out


def _reduced(x, total):
    return total.to(x.dtype)


# ---------------------------------------------------------------------------------------
# Ops (schemas inferred from the annotations; they match csrc/losses.cpp)
# ---------------------------------------------------------------------------------------

@triton_op("gentk::discriminator_loss_triton", mutates_args=())
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str, real_label: float,
                       fake_label: float, reduction: str) -> torch.Tensor:
    op = "discriminator_loss_triton"
    _check_tensor(op, "real_logits", real_logits)
    checks.check_like(op, "fake_logits", fake_logits, "real_logits", real_logits, same_shape=False)
    (rk, rp), (fk, fp) = _discriminator_spec(op, mode, real_label, fake_label)
    _reduction(op, reduction)
    _check_pairing(op, real_logits, fake_logits, reduction)
    real, fake = real_logits.contiguous(), fake_logits.contiguous()
    if reduction == "none":
        out = _empty(real)
        _term_elements(real, rk, rp, out, False)
        return _term_elements(fake, fk, fp, out, True)
    total = _term_sum(real, rk, rp) * _scale(reduction, real) + _term_sum(fake, fk, fp) * _scale(reduction, fake)
    return _reduced(real, total)


@triton_op("gentk::discriminator_loss_backward_triton", mutates_args=())
def discriminator_loss_backward(grad: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor,
                                mode: str, real_label: float, fake_label: float,
                                reduction: str) -> tuple[torch.Tensor, torch.Tensor]:
    op = "discriminator_loss_backward_triton"
    _check_tensor(op, "real_logits", real_logits)
    checks.check_like(op, "fake_logits", fake_logits, "real_logits", real_logits, same_shape=False)
    (rk, rp), (fk, fp) = _discriminator_spec(op, mode, real_label, fake_label)
    _reduction(op, reduction)
    _check_pairing(op, real_logits, fake_logits, reduction)
    checks.check_grad(op, "grad", grad, "real_logits", real_logits, real_logits.shape, reduction == "none")
    real, fake = real_logits.contiguous(), fake_logits.contiguous()
    return (_term_grad(grad, real, rk, rp, reduction, _scale(reduction, real)),
            _term_grad(grad, fake, fk, fp, reduction, _scale(reduction, fake)))


@triton_op("gentk::generator_loss_triton", mutates_args=())
def generator_loss(fake_logits: torch.Tensor, mode: str, reduction: str) -> torch.Tensor:
    op = "generator_loss_triton"
    _check_tensor(op, "fake_logits", fake_logits)
    kind, param = _generator_spec(op, mode)
    _reduction(op, reduction)
    fake = fake_logits.contiguous()
    if reduction == "none":
        return _term_elements(fake, kind, param, _empty(fake), False)
    return _reduced(fake, _term_sum(fake, kind, param) * _scale(reduction, fake))


@triton_op("gentk::generator_loss_backward_triton", mutates_args=())
def generator_loss_backward(grad: torch.Tensor, fake_logits: torch.Tensor, mode: str,
                            reduction: str) -> torch.Tensor:
    op = "generator_loss_backward_triton"
    _check_tensor(op, "fake_logits", fake_logits)
    kind, param = _generator_spec(op, mode)
    _reduction(op, reduction)
    checks.check_grad(op, "grad", grad, "fake_logits", fake_logits, fake_logits.shape, reduction == "none")
    fake = fake_logits.contiguous()
    return _term_grad(grad, fake, kind, param, reduction, _scale(reduction, fake))


def _target_forward(op, x, target, kind, weight, reduction):
    x, target = x.contiguous(), target.contiguous()
    if reduction == "none":
        return _term_elements(x, kind, 0.0, _empty(x), False, weight, target)
    return _reduced(x, _term_sum(x, kind, 0.0, target) * (weight * _scale(reduction, x)))


@triton_op("gentk::bernoulli_recon_triton", mutates_args=())
def bernoulli_recon(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    op = "bernoulli_recon_triton"
    _check_tensor(op, "logits", logits)
    checks.check_like(op, "target", target, "logits", logits)
    _reduction(op, reduction, True)
    if reduction == "batchsum" and logits.dim() == 0:
        checks.fail(op, "logits needs a batch dimension, got a 0-d tensor")
    return _target_forward(op, logits, target, KIND["bce"], 1.0, reduction)


@triton_op("gentk::bernoulli_recon_backward_triton", mutates_args=())
def bernoulli_recon_backward(grad: torch.Tensor, logits: torch.Tensor, target: torch.Tensor,
                             reduction: str) -> torch.Tensor:
    op = "bernoulli_recon_backward_triton"
    _check_tensor(op, "logits", logits)
    checks.check_like(op, "target", target, "logits", logits)
    _reduction(op, reduction, True)
    checks.check_grad(op, "grad", grad, "logits", logits, logits.shape, reduction == "none")
    x = logits.contiguous()
    return _term_grad(grad, x, KIND["bce"], 0.0, reduction, _scale(reduction, x), target.contiguous())


@triton_op("gentk::l1_loss_triton", mutates_args=())
def l1_loss(input: torch.Tensor, target: torch.Tensor, weight: float, reduction: str) -> torch.Tensor:
    op = "l1_loss_triton"
    _check_tensor(op, "input", input)
    checks.check_like(op, "target", target, "input", input)
    _reduction(op, reduction)
    return _target_forward(op, input, target, KIND["abs"], weight, reduction)


@triton_op("gentk::l1_loss_backward_triton", mutates_args=())
def l1_loss_backward(grad: torch.Tensor, input: torch.Tensor, target: torch.Tensor, weight: float,
                     reduction: str) -> torch.Tensor:
    op = "l1_loss_backward_triton"
    _check_tensor(op, "input", input)
    checks.check_like(op, "target", target, "input", input)
    _reduction(op, reduction)
    checks.check_grad(op, "grad", grad, "input", input, input.shape, reduction == "none")
    x = input.contiguous()
    return _term_grad(grad, x, KIND["abs"], 0.0, reduction, weight * _scale(reduction, x), target.contiguous())


def _rows(x):
    rows = x.shape[0]
    return rows, (x.numel() // rows if rows else 0)


def _check_batched(op, name, x):
    if x.dim() == 0:
        checks.fail(op, f"{name} needs a batch dimension, got a 0-d tensor")


def _row_grid(rows, cols):
    block = _block(cols)
    return block, (rows, triton.cdiv(cols, block))


@triton_op("gentk::gp_interpolate_triton", mutates_args=())
def gp_interpolate(real: torch.Tensor, fake: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    op = "gp_interpolate_triton"
    _check_tensor(op, "real", real)
    checks.check_like(op, "fake", fake, "real", real)
    _check_batched(op, "real", real)
    checks.check_seed(op, seed, "real", real)
    real, fake, seed = real.contiguous(), fake.contiguous(), seed.contiguous()
    out = _empty(real)
    rows, cols = _rows(real)
    if rows and cols and can_launch(real, fake, seed):
        block, grid = _row_grid(rows, cols)
        wrap_triton(_interpolate_kernel)[grid](real, fake, seed, out, None, cols, BACKWARD=False,
                                               F64=real.dtype == torch.float64, BLOCK=block)
    return out


@triton_op("gentk::gp_interpolate_backward_triton", mutates_args=())
def gp_interpolate_backward(grad: torch.Tensor, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    op = "gp_interpolate_backward_triton"
    _check_tensor(op, "grad", grad)
    _check_batched(op, "grad", grad)
    checks.check_seed(op, seed, "grad", grad)
    grad, seed = grad.contiguous(), seed.contiguous()
    grad_real, grad_fake = _empty(grad), _empty(grad)
    rows, cols = _rows(grad)
    if rows and cols and can_launch(grad, seed):
        block, grid = _row_grid(rows, cols)
        wrap_triton(_interpolate_kernel)[grid](grad, None, seed, grad_real, grad_fake, cols, BACKWARD=True,
                                               F64=grad.dtype == torch.float64, BLOCK=block)
    return grad_real, grad_fake


def _row_sumsq(x):
    """float64 per-row sums of squares."""
    rows, cols = _rows(x)
    if not (rows and cols):
        return torch.zeros(rows, dtype=torch.float64, device=x.device)
    block, grid = _row_grid(rows, cols)
    f64 = x.dtype == torch.float64
    partial = torch.zeros(rows, grid[1], device=x.device, dtype=torch.float64 if f64 else torch.float32)
    if can_launch(x):
        wrap_triton(_row_sumsq_kernel)[grid](x, partial, cols, grid[1], F64=f64, BLOCK=block)
    return partial.sum(1, dtype=torch.float64)


@triton_op("gentk::grad_norm_penalty_triton", mutates_args=())
def grad_norm_penalty(grads: torch.Tensor, target: float, r1: bool) -> torch.Tensor:
    op = "grad_norm_penalty_triton"
    _check_tensor(op, "grads", grads)
    _check_batched(op, "grads", grads)
    sumsq = _row_sumsq(grads.contiguous())
    per_row = sumsq if r1 else (sumsq.sqrt() - target) ** 2
    return per_row.mean().to(grads.dtype)


@triton_op("gentk::grad_norm_penalty_backward_triton", mutates_args=())
def grad_norm_penalty_backward(grad: torch.Tensor, grads: torch.Tensor, target: float, r1: bool) -> torch.Tensor:
    op = "grad_norm_penalty_backward_triton"
    _check_tensor(op, "grads", grads)
    _check_batched(op, "grads", grads)
    checks.check_grad(op, "grad", grad, "grads", grads, grads.shape, per_element=False)
    grads = grads.contiguous()
    rows, cols = _rows(grads)
    out = _empty(grads)
    if not (rows and cols):
        return out
    w = 2.0 * grad.reshape(()).to(torch.float64) / rows
    if r1:
        coef = w.expand(rows).contiguous()
    else:
        n = _row_sumsq(grads).sqrt()
        coef = torch.where(n > 0, w * (1 - target / torch.where(n > 0, n, torch.ones_like(n))), torch.zeros_like(n))
    block, grid = _row_grid(rows, cols)
    if can_launch(grads, coef):
        wrap_triton(_scale_rows_kernel)[grid](grads, coef, out, cols, F64=grads.dtype == torch.float64, BLOCK=block)
    return out


_OPS = (
    discriminator_loss, discriminator_loss_backward, generator_loss, generator_loss_backward,
    bernoulli_recon, bernoulli_recon_backward, l1_loss, l1_loss_backward,
    gp_interpolate, gp_interpolate_backward, grad_norm_penalty, grad_norm_penalty_backward,
)

keep_whole(_OPS)  # see gentk/ops/_triton.py

# No register_fakes("_triton"): triton_op registers each launcher as its own fake.
register_autograd("_triton")
