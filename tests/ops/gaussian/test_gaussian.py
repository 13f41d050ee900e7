"""The Gaussian family (reparameterize, gaussian_kl, reparameterize_kl) on every CPU
backend against the float64 pure-PyTorch reference: values, every gradient, shapes,
dtypes, reductions, in-kernel noise, bad input."""
import math

import pytest
import torch

import gentk
from conftest import CPU_BACKENDS
from gentk.ops.gaussian import reference as ref

SHAPES = [(1, 1), (3, 7), (129, 257), (4096, 512)]
DTYPES = [torch.float32, torch.float64]
REDUCTIONS = ["none", "sum", "mean", "batchmean"]
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _cases(backends=CPU_BACKENDS):
    for b in backends:
        for shape in SHAPES:
            for dtype in DTYPES:
                if b == "triton" and shape == (4096, 512) and dtype == torch.float64:
                    continue  # the interpreter is slow; one large float32 case is enough
                yield pytest.param(b, shape, dtype, id=f"{b}-{'x'.join(map(str, shape))}-{str(dtype)[6:]}")


def _inputs(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    return mu, logvar, eps


def _leaves(dtype, *tensors):
    return [t.to(dtype).requires_grad_() for t in tensors]


def _grads(outputs, leaves, seed=1):
    g = torch.Generator().manual_seed(seed)
    cot = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype) for o in outputs]
    return torch.autograd.grad(outputs, leaves, cot), cot


def _close(actual, expected, dtype, scale=1.0):
    tol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
def test_reparameterize_with_eps_matches_reference(backend, shape, dtype):
    mu64, lv64, eps64 = _inputs(shape, dtype)
    mu, lv, eps = _leaves(dtype, mu64, lv64, eps64)
    with gentk.use_backend(backend):
        z = gentk.reparameterize(mu, lv, eps=eps)
    assert z.dtype == dtype and z.shape == mu.shape
    r_mu, r_lv, r_eps = _leaves(torch.float64, mu64, lv64, eps64)
    z_ref = ref.reparameterize(r_mu, r_lv, r_eps)
    _close(z, z_ref, dtype, scale=z_ref.abs().max().item())
    grads, cot = _grads([z], [mu, lv, eps])
    ref_grads = torch.autograd.grad([z_ref], [r_mu, r_lv, r_eps], [c.double() for c in cot])
    for got, want in zip(grads, ref_grads):
        _close(got, want, dtype, scale=want.abs().max().item())


@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gaussian_kl_matches_reference(backend, shape, dtype, reduction):
    mu64, lv64, _ = _inputs(shape, dtype)
    mu, lv = _leaves(dtype, mu64, lv64)
    with gentk.use_backend(backend):
        kl = gentk.gaussian_kl(mu, lv, reduction=reduction)
    r_mu, r_lv = _leaves(torch.float64, mu64, lv64)
    kl_ref = ref.gaussian_kl(r_mu, r_lv, reduction)
    assert kl.dtype == dtype and kl.shape == kl_ref.shape
    _close(kl, kl_ref, dtype, scale=kl_ref.abs().max().item())
    grads, cot = _grads([kl], [mu, lv])
    ref_grads = torch.autograd.grad([kl_ref], [r_mu, r_lv], [c.double() for c in cot])
    for got, want in zip(grads, ref_grads):
        _close(got, want, dtype, scale=want.abs().max().item())


@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
@pytest.mark.parametrize("reduction", ["none", "batchmean"])
def test_reparameterize_kl_matches_reference(backend, shape, dtype, reduction):
    mu64, lv64, eps64 = _inputs(shape, dtype)
    mu, lv, eps = _leaves(dtype, mu64, lv64, eps64)
    with gentk.use_backend(backend):
        z, kl = gentk.reparameterize_kl(mu, lv, eps=eps, reduction=reduction)
    r_mu, r_lv, r_eps = _leaves(torch.float64, mu64, lv64, eps64)
    z_ref, kl_ref = ref.reparameterize_kl(r_mu, r_lv, r_eps, reduction)
    _close(z, z_ref, dtype, scale=z_ref.abs().max().item())
    _close(kl, kl_ref, dtype, scale=kl_ref.abs().max().item())
    grads, cot = _grads([z, kl], [mu, lv, eps])
    ref_grads = torch.autograd.grad([z_ref, kl_ref], [r_mu, r_lv, r_eps], [c.double() for c in cot])
    for got, want in zip(grads, ref_grads):
        _close(got, want, dtype, scale=want.abs().max().item())


@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b != "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (129, 257)])
def test_in_kernel_noise_gradients_are_consistent(backend, dtype, shape):
    """With in-kernel noise the sample fixes eps = (z - mu) / std; every gradient must
    follow from that eps, for the plain and the fused op alike."""
    mu64, lv64, _ = _inputs(shape, dtype)
    lv64 = lv64.clamp(-2, 2)
    for fused in (False, True):
        mu, lv = _leaves(dtype, mu64, lv64)
        with gentk.use_backend(backend):
            if fused:
                z, kl = gentk.reparameterize_kl(mu, lv, reduction="sum")
            else:
                z = gentk.reparameterize(mu, lv)
        eps = ((z.double() - mu64) / torch.exp(0.5 * lv64)).detach()
        r_mu, r_lv = _leaves(torch.float64, mu64, lv64)
        z_ref = ref.reparameterize(r_mu, r_lv, eps)
        outs, refs = [z], [z_ref]
        if fused:
            outs.append(kl)
            refs.append(ref.gaussian_kl(r_mu, r_lv, "sum"))
        grads, cot = _grads(outs, [mu, lv])
        ref_grads = torch.autograd.grad(refs, [r_mu, r_lv], [c.double() for c in cot])
        for got, want in zip(grads, ref_grads):
            torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_in_kernel_noise_is_standard_normal_and_reproducible(backend):
    n = 1 << 20 if backend != "triton" else 1 << 16
    mu = torch.zeros(n)
    lv = torch.zeros(n)
    with gentk.use_backend(backend):
        torch.manual_seed(1234)
        a = gentk.reparameterize(mu, lv)
        b = gentk.reparameterize(mu, lv)
        torch.manual_seed(1234)
        a_again = gentk.reparameterize(mu, lv)
    assert torch.equal(a, a_again), "torch.manual_seed must reproduce the noise"
    assert not torch.equal(a, b), "the next call must draw new noise"
    se = 1 / math.sqrt(n)
    assert abs(a.mean().item()) < 5 * se
    assert abs(a.std().item() - 1) < 5 / math.sqrt(2 * n)
    # fourth moment: 3 for a normal (sd of its estimate sqrt(96 / n)); catches a wrong
    # transform that keeps mean and std
    assert abs((a**4).mean().item() - 3) < 5 * math.sqrt(96 / n)
    # neighbouring elements must not be correlated (they share Philox calls)
    assert abs(torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1].item()) < 5 * se
    assert abs(torch.corrcoef(torch.stack([a[:-16], a[16:]]))[0, 1].item()) < 5 * se


def test_generator_argument_drives_the_noise():
    mu, lv = torch.zeros(1000), torch.zeros(1000)
    with gentk.use_backend("cpp"):
        a = gentk.reparameterize(mu, lv, generator=torch.Generator().manual_seed(7))
        b = gentk.reparameterize(mu, lv, generator=torch.Generator().manual_seed(7))
        c = gentk.reparameterize(mu, lv, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif("triton" not in CPU_BACKENDS, reason="triton not usable here")
def test_cpp_and_triton_draw_the_same_noise():
    mu = torch.zeros(5, 131)
    lv = torch.zeros(5, 131)
    out = {}
    for backend in ("cpp", "triton"):
        with gentk.use_backend(backend):
            torch.manual_seed(99)
            out[backend] = gentk.reparameterize(mu, lv)
    torch.testing.assert_close(out["cpp"], out["triton"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b != "torch"])
def test_backward_keeps_nothing_noise_sized(backend):
    mu, lv = _leaves(torch.float32, *_inputs((64, 33), torch.float32)[:2])
    saved = []
    with gentk.use_backend(backend), torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        z = gentk.reparameterize(mu, lv)
    # logvar is needed for the gradient; beyond it only the two-element seed
    assert sorted(saved) == [2, lv.numel()], saved
    z.sum().backward()
    assert lv.grad is not None and torch.isfinite(lv.grad).all()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_and_non_contiguous(backend):
    with gentk.use_backend(backend):
        e = torch.empty(0, 4, requires_grad=True)
        z, kl = gentk.reparameterize_kl(e, e.detach().clone().requires_grad_(), reduction="sum")
        assert z.shape == (0, 4) and kl.item() == 0.0
        assert gentk.gaussian_kl(e, e, reduction="none").shape == (0, 4)
        assert math.isnan(gentk.gaussian_kl(e, e, reduction="batchmean").item())  # as torch's mean of nothing
        (z.sum() + kl).backward()

        mu64, lv64, eps64 = _inputs((33, 20), torch.float32)
        mu = mu64.float().t()  # non-contiguous views
        lv = lv64.float().t()
        eps = eps64.float().t()
        assert not mu.is_contiguous()
        torch.testing.assert_close(gentk.reparameterize(mu, lv, eps=eps), ref.reparameterize(mu, lv, eps))
        torch.testing.assert_close(gentk.gaussian_kl(mu, lv, dim=0), ref.gaussian_kl(mu, lv, dim=0))
        torch.testing.assert_close(gentk.gaussian_kl(mu, lv, reduction="none"), ref.gaussian_kl(mu, lv, "none"))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_batchmean_follows_dim(backend, dim):
    mu, lv, _ = _inputs((4, 5, 6), torch.float32)
    with gentk.use_backend(backend):
        got = gentk.gaussian_kl(mu.float(), lv.float(), dim=dim)
    torch.testing.assert_close(got.double(), ref.gaussian_kl(mu, lv, dim=dim), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_extreme_logvar_stays_finite(backend):
    lv = torch.tensor([[-80.0, 80.0, 0.0, -80.0, 80.0, 40.0, -40.0]], requires_grad=True)
    mu = torch.tensor([[0.0, 1.0, -1.0, 1e3, -1e3, 0.5, 0.5]], requires_grad=True)
    with gentk.use_backend(backend):
        z, kl = gentk.reparameterize_kl(mu, lv, reduction="none")
        kl_sum = gentk.gaussian_kl(mu, lv, reduction="sum")
    for t in (z, kl, kl_sum):
        assert torch.isfinite(t).all(), t
    (z.sum() + kl.sum() + kl_sum).backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(lv.grad).all()
    torch.testing.assert_close(kl.double(), ref.gaussian_kl(mu.double(), lv.double(), "none"), rtol=1e-5, atol=1e-5)


# ---- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_input_names_the_argument(backend):
    x = torch.randn(3, 4)
    with gentk.use_backend(backend):
        with pytest.raises(ValueError, match="mu and logvar must have the same shape"):
            gentk.reparameterize(x, torch.randn(3, 5))
        with pytest.raises(TypeError, match="logvar must be a floating-point"):
            gentk.gaussian_kl(x, torch.ones(3, 4, dtype=torch.int64))
        with pytest.raises(TypeError, match="mu must be a floating-point"):
            gentk.reparameterize_kl(torch.ones(3, 4, dtype=torch.int32), x)
        with pytest.raises(ValueError, match="eps must have mu's shape"):
            gentk.reparameterize(x, x, eps=torch.randn(4, 3))
        with pytest.raises(ValueError, match="unknown reduction 'avg'"):
            gentk.gaussian_kl(x, x, reduction="avg")
        with pytest.raises(ValueError, match="logvar is on meta"):
            gentk.reparameterize(x, torch.empty(3, 4, device="meta"))
        with pytest.raises(TypeError, match="logvar is torch.float64"):
            gentk.gaussian_kl(x, x.double())
        with pytest.raises(IndexError, match="dim 2 is out of range"):
            gentk.gaussian_kl(x, x, dim=2)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'cudnn'"):
        gentk.set_backend("cudnn")
    with pytest.raises(ValueError, match="backend 'cuda' runs on CUDA tensors"), gentk.use_backend("cuda"):
        gentk.reparameterize(torch.zeros(2), torch.zeros(2))


def test_backend_context_and_setter():
    assert gentk.get_backend() == "auto"
    with gentk.use_backend("torch"):
        assert gentk.get_backend() == "torch"
        with gentk.use_backend("cpp"):
            assert gentk.get_backend() == "cpp"
        assert gentk.get_backend() == "torch"
    assert gentk.set_backend("cpp") == "auto"
    assert gentk.get_backend() == "cpp"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpp_reduced_precision_computes_in_float32(dtype):
    """float16 / bfloat16 on CPU: math in float32, results rounded once to the dtype."""
    mu64, lv64, eps64 = _inputs((129, 257), dtype)
    mu, lv, eps = _leaves(dtype, mu64, lv64, eps64)
    with gentk.use_backend("cpp"):
        z, kl = gentk.reparameterize_kl(mu, lv, eps=eps, reduction="none")
    r_mu, r_lv, r_eps = _leaves(torch.float32, mu, lv, eps)  # the same rounded inputs, widened
    z_ref, kl_ref = ref.reparameterize_kl(r_mu, r_lv, r_eps, "none")
    assert z.dtype == kl.dtype == dtype
    # one rounding of a float32 result: within half an ulp of the dtype
    ulp = torch.finfo(dtype).eps
    for got, want in ((z, z_ref), (kl, kl_ref)):
        assert ((got.float() - want).abs() <= ulp * want.abs() + 1e-6).all()
    grads, cot = _grads([z, kl], [mu, lv, eps])
    ref_grads = torch.autograd.grad([z_ref, kl_ref], [r_mu, r_lv, r_eps], [c.float() for c in cot])
    for got, want in zip(grads, ref_grads):
        assert got.dtype == dtype
        assert ((got.float() - want).abs() <= 2 * ulp * want.abs() + 1e-3).all()
