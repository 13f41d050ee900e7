"""gentk.instance_norm (norm + affine + activation + residual) on every CPU backend
against the float64 pure-PyTorch reference (F.instance_norm): values, every gradient,
running statistics, memory formats, shapes, dtypes, numerics, bad input."""
import pytest
import torch
import torch.nn.functional as F

import gentk
from gentk.ops.instance_norm import reference as ref

BACKENDS = ["torch", "cpp"]
SMALL_SHAPES = [(1, 1, 2, 2), (2, 3, 5, 7), (3, 19, 6, 9)]
LARGE_SHAPES = [(8, 64, 64, 64), (1, 3, 256, 256)]
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
CONFIGS = {
    "plain": dict(affine=False, activation=None, residual=False),
    "affine-relu": dict(affine=True, activation="relu", residual=False),
    "affine-leaky-residual": dict(affine=True, activation="leaky_relu", residual=True),
    "relu-residual": dict(affine=False, activation="relu", residual=True),
}
TOL = {torch.float32: dict(rtol=1e-4, atol=2e-5), torch.float64: dict(rtol=1e-9, atol=1e-10)}


def _away_from_kink(x, w, b, margin=2e-3):
    """Moves the inputs whose pre-activation is within `margin` of 0, so that float32 and
    float64 agree on which side of the relu kink every element falls."""
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dims, keepdim=True)
    std = (x.var(dims, keepdim=True, unbiased=False) + 1e-5).sqrt()
    shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
    wv = w.view(shape) if w is not None else torch.ones(shape, dtype=x.dtype)
    bv = b.view(shape) if b is not None else torch.zeros(shape, dtype=x.dtype)
    pre = (x - mean) / std * wv + bv
    near = pre.abs() < margin
    step = torch.where(pre * wv >= 0, 1.0, -1.0) * 4 * margin * std / wv.abs().clamp_min(1e-3)
    return torch.where(near, x + step, x)


def _inputs(shape, affine, activation, residual, seed=0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(shape, generator=g, dtype=torch.float64) + offset
    w = (1 + 0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64)) if affine else None
    b = (0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64)) if affine else None
    r = torch.randn(shape, generator=g, dtype=torch.float64) if residual else None
    if activation is not None:
        x = _away_from_kink(x, w, b)
    cot = torch.randn(shape, generator=g, dtype=torch.float64)
    return x, w, b, r, cot


def _leaf(t, dtype, fmt=torch.contiguous_format):
    if t is None:
        return None
    t = t.to(dtype)
    if t.dim() == 4:
        t = t.contiguous(memory_format=fmt)
    return t.requires_grad_()


def _close(actual, expected, dtype, scale=1.0):
    tol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol["rtol"], atol=tol["atol"] * max(scale, 1.0))


def _check_parity(backend, shape, dtype, fmt, affine, activation, residual, seed=0):
    x64, w64, b64, r64, cot64 = _inputs(shape, affine, activation, residual, seed)
    x, w, b, r = (_leaf(t, dtype, fmt) for t in (x64, w64, b64, r64))
    with gentk.use_backend(backend):
        y = gentk.instance_norm(x, w, b, activation=activation, residual=r)
    assert y.dtype == dtype and y.shape == x.shape
    if backend == "cpp" and len(shape) == 4:
        assert y.is_contiguous(memory_format=fmt), "the output keeps the input's memory format"
    rx, rw, rb, rr = (_leaf(t, torch.float64) for t in (x64, w64, b64, r64))
    y_ref = ref.instance_norm(rx, rw, rb, activation=activation, residual=rr)
    _close(y, y_ref, dtype, scale=y_ref.abs().max().item())
    leaves = [t for t in (x, w, b, r) if t is not None]
    ref_leaves = [t for t in (rx, rw, rb, rr) if t is not None]
    grads = torch.autograd.grad(y, leaves, cot64.to(dtype).contiguous(memory_format=fmt))
    ref_grads = torch.autograd.grad(y_ref, ref_leaves, cot64)
    for name, got, want in zip(["x", "weight", "bias", "residual"][: len(grads)], grads, ref_grads):
        assert got.shape == want.shape, name
        _close(got, want, dtype, scale=want.abs().max().item())
    if backend == "cpp" and len(shape) == 4:
        assert grads[0].is_contiguous(memory_format=fmt)


def _small_cases():
    for backend in BACKENDS:
        for shape in SMALL_SHAPES:
            for fmt in FORMATS:
                for dtype in (torch.float32, torch.float64):
                    for cfg in CONFIGS:
                        yield pytest.param(backend, shape, fmt, dtype, cfg,
                                           id=f"{backend}-{'x'.join(map(str, shape))}-{fmt}-{str(dtype)[6:]}-{cfg}")


@pytest.mark.parametrize("backend,shape,fmt,dtype,cfg", list(_small_cases()))
def test_matches_reference_small(backend, shape, fmt, dtype, cfg):
    _check_parity(backend, shape, dtype, FORMATS[fmt], **CONFIGS[cfg])


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("shape", LARGE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference_large_float32(shape, fmt):
    _check_parity("cpp", shape, torch.float32, FORMATS[fmt], affine=True, activation="relu", residual=True)


@pytest.mark.parametrize("shape", [(2, 5, 33), (3, 4, 1000), (2, 3, 4, 5, 6)], ids=lambda s: "x".join(map(str, s)))
def test_other_ranks(shape):
    _check_parity("cpp", shape, torch.float64, torch.contiguous_format, affine=True, activation="leaky_relu",
                  residual=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_half_precision_runs_in_float32(dtype, fmt):
    x64, w64, b64, _, cot64 = _inputs((2, 8, 9, 10), True, "relu", False)
    x = x64.to(dtype).contiguous(memory_format=FORMATS[fmt]).requires_grad_()
    w, b = w64.float().requires_grad_(), b64.float().requires_grad_()
    with gentk.use_backend("cpp"):
        y = gentk.instance_norm(x, w, b, activation="relu")
    assert y.dtype == dtype and y.is_contiguous(memory_format=FORMATS[fmt])
    rx = x.detach().double().requires_grad_()
    rw, rb = w64.clone().requires_grad_(), b64.clone().requires_grad_()
    y_ref = ref.instance_norm(rx, rw, rb, activation="relu")
    tol = dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(y.double(), y_ref, **tol)
    gx, gw, gb = torch.autograd.grad(y, [x, w, b], cot64.to(dtype))
    rgx, rgw, rgb = torch.autograd.grad(y_ref, [rx, rw, rb], cot64.to(dtype).double())
    assert gx.dtype == dtype and gw.dtype == torch.float32
    torch.testing.assert_close(gx.double(), rgx, **tol)
    torch.testing.assert_close(gw.double(), rgw, rtol=2e-2, atol=0.2)
    torch.testing.assert_close(gb.double(), rgb, rtol=2e-2, atol=0.2)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("offset", [1e4, -3e4])
@pytest.mark.parametrize("shape", [(2, 4, 48, 48), (2, 32, 24, 24)], ids=lambda s: "x".join(map(str, s)))
def test_large_mean_is_stable(fmt, offset, shape):
    """float32 planes centred far from 0: the variance is computed centred (Welford)."""
    x64 = torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + offset
    x = x64.float()  # the float32 values are the truth: compare against them in float64
    x = x.contiguous(memory_format=FORMATS[fmt])
    with gentk.use_backend("cpp"):
        y = gentk.instance_norm(x)
    y_ref = F.instance_norm(x.double())
    # the float32 mean itself is only known to half a unit in the last place of `offset`
    spacing = torch.finfo(torch.float32).eps * abs(offset)
    torch.testing.assert_close(y.double(), y_ref, rtol=0, atol=spacing)
    # E[x^2] - E[x]^2 in float32 would be off by ~offset^2 * eps; centred it stays at 1
    torch.testing.assert_close(y.double().var((2, 3), unbiased=False), torch.ones(shape[:2], dtype=torch.float64),
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("channels", [5, 32])
def test_constant_planes(fmt, channels):
    x = torch.full((2, channels, 7, 6), 3.25).contiguous(memory_format=FORMATS[fmt]).requires_grad_()
    w = torch.linspace(0.5, 2, channels).requires_grad_()
    b = torch.linspace(-1, 1, channels).requires_grad_()
    with gentk.use_backend("cpp"):
        y = gentk.instance_norm(x, w, b, activation="leaky_relu", negative_slope=0.2)
    expected = F.leaky_relu(b.detach(), 0.2).view(1, channels, 1, 1).expand_as(y)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()
    # exact math gives 0; float32 rounding of mean(g) is scaled by w * rstd (up to 2 / sqrt(eps) ~ 632)
    torch.testing.assert_close(x.grad, torch.zeros_like(x), rtol=0, atol=632 * 2e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_running_stats_update_as_torch(backend, fmt, momentum):
    g = torch.Generator().manual_seed(2)
    rm, rv = torch.randn(6, generator=g), torch.rand(6, generator=g) + 0.5
    rm_t, rv_t = rm.clone(), rv.clone()
    for step in range(3):
        x = (3 * torch.randn(4, 6, 5, 9, generator=g) + step).contiguous(memory_format=FORMATS[fmt])
        with gentk.use_backend(backend):
            y = gentk.instance_norm(x, running_mean=rm, running_var=rv, momentum=momentum)
        y_t = F.instance_norm(x, rm_t, rv_t, momentum=momentum)
        torch.testing.assert_close(y, y_t, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rm, rm_t, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(rv, rv_t, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("channels", [5, 32])
def test_eval_mode_uses_running_stats(backend, fmt, activation, channels):
    g = torch.Generator().manual_seed(4)
    shape = (3, channels, 6, 7)
    x64 = torch.randn(shape, generator=g, dtype=torch.float64)
    rm64 = 0.3 * torch.randn(channels, generator=g, dtype=torch.float64)
    rv64 = torch.rand(channels, generator=g, dtype=torch.float64) + 0.5
    w64, b64 = torch.randn(channels, generator=g, dtype=torch.float64), torch.randn(channels, generator=g, dtype=torch.float64)
    cot = torch.randn(shape, generator=g, dtype=torch.float64)
    x = x64.float().contiguous(memory_format=FORMATS[fmt]).requires_grad_()
    w, b = w64.float().requires_grad_(), b64.float().requires_grad_()
    rm, rv = rm64.float(), rv64.float()
    with gentk.use_backend(backend):
        y = gentk.instance_norm(x, w, b, rm, rv, use_input_stats=False, activation=activation)
    torch.testing.assert_close(rm, rm64.float(), rtol=0, atol=0)  # untouched in eval
    rx, rw, rb = (t.clone().requires_grad_() for t in (x64, w64, b64))
    y_ref = ref.instance_norm(rx, rw, rb, rm64, rv64, use_input_stats=False, activation=activation)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(y, [x, w, b], cot.float())
    ref_grads = torch.autograd.grad(y_ref, [rx, rw, rb], cot)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_non_contiguous_input():
    base = torch.randn(4, 6, 10, 12, dtype=torch.float64)
    x = base[:, ::2, 1:, ::3].requires_grad_()  # neither contiguous nor channels_last
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    with gentk.use_backend("cpp"):
        y = gentk.instance_norm(x, w, None, activation="relu")
    xr = x.detach().clone().requires_grad_()
    wr = w.detach().clone().requires_grad_()
    y_ref = ref.instance_norm(xr, wr, None, activation="relu")
    torch.testing.assert_close(y, y_ref)
    cot = torch.randn_like(y)
    for got, want in zip(torch.autograd.grad(y, [x, w], cot), torch.autograd.grad(y_ref, [xr, wr], cot)):
        torch.testing.assert_close(got, want)


def test_empty_batch():
    x = torch.randn(0, 3, 4, 4, requires_grad=True)
    with gentk.use_backend("cpp"):
        y = gentk.instance_norm(x, activation="relu")
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_spatial_element_while_training_raises(backend):
    x = torch.randn(2, 3, 1, 1)
    with gentk.use_backend(backend), pytest.raises(ValueError, match="more than 1 spatial element when training"):
        gentk.instance_norm(x)
    # torch raises too; with running statistics (eval) one element is fine
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        F.instance_norm(x)
    with gentk.use_backend(backend):
        y = gentk.instance_norm(x, running_mean=torch.zeros(3), running_var=torch.ones(3), use_input_stats=False)
    torch.testing.assert_close(y, x / (1 + 1e-5) ** 0.5)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(weight=torch.ones(4)), ValueError, r"weight must have shape \(3,\)"),
    (dict(bias=torch.ones(3, 1)), ValueError, r"bias must have shape \(3,\)"),
    (dict(weight=torch.ones(3, dtype=torch.int64)), TypeError, "weight must be a floating-point"),
    (dict(running_mean=torch.zeros(3)), ValueError, "both running_mean and running_var"),
    (dict(running_mean=torch.zeros(2), running_var=torch.ones(2)), ValueError, "running_mean must have shape"),
    (dict(use_input_stats=False), ValueError, "use_input_stats=False needs running_mean"),
    (dict(activation="gelu"), ValueError, "unknown activation 'gelu'"),
    (dict(residual=torch.zeros(2, 3, 4)), ValueError, "residual must have x's shape"),
    (dict(residual=torch.zeros(2, 3, 4, 5, dtype=torch.float64)), TypeError, "residual is torch.float64"),
    (dict(eps=0.0), ValueError, "eps must be a positive"),
    (dict(momentum=1.5), ValueError, "momentum must be a number in"),
    (dict(negative_slope=float("nan")), ValueError, "negative_slope must be a number"),
])
def test_bad_arguments(kwargs, error, match):
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(error, match=match):
        gentk.instance_norm(x, **kwargs)


def test_bad_input_tensor():
    with pytest.raises(ValueError, match="x must be"):
        gentk.instance_norm(torch.randn(3, 4))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        gentk.instance_norm(torch.ones(2, 3, 4, 4, dtype=torch.int32))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        gentk.instance_norm([[1.0]])


def test_op_checks_its_arguments():
    """Direct torch.ops callers get C++ errors that name the argument."""
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(RuntimeError, match="weight must have shape"):
        torch.ops.gentk.instance_norm(x, torch.ones(2), None, None, None, 1e-5, 0, 0.01, None)
    with pytest.raises(RuntimeError, match="activation must be 0"):
        torch.ops.gentk.instance_norm(x, None, None, None, None, 1e-5, 7, 0.01, None)
    with pytest.raises(RuntimeError, match="mean must have shape"):
        torch.ops.gentk.instance_norm_backward(x, x, None, None, torch.zeros(3), torch.ones(3), 1e-5, True, 0, 0.01)
