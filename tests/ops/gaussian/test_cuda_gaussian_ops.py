"""The CUDA kernels of the gentk:: Gaussian ops (csrc/cuda/gaussian.cu): values and
gradients against float64 formulas, in-kernel Philox noise (statistics, equality with the
CPU stream, regeneration in backward), empty / non-contiguous / misaligned inputs, and
CUDA-graph capture with the seed and the KL weight read on the device.

Skipped unless a CUDA device is present and gentk._C was built with its CUDA kernels.
"""
import pytest
import torch

from conftest import cuda_kernel_marks

pytestmark = cuda_kernel_marks("gentk::reparameterize")

ops = torch.ops.gentk
DEV = "cuda"
SEED = (2**62 + 12345, -987654321)
SHAPES = [(1, 1), (3, 7), (129, 257), (4096, 512)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
}


def _name(dtype):
    return str(dtype).replace("torch.", "")


def _seed(device=DEV, value=SEED):
    return torch.tensor(value, dtype=torch.int64, device=device)


def _randn(shape, dtype, seed, device=DEV, scale=1.0):
    g = torch.Generator(device=device).manual_seed(seed)
    return (torch.randn(shape, generator=g, device=device, dtype=torch.float32) * scale).to(dtype)


def _inputs(shape, dtype, device=DEV):
    mu = _randn(shape, dtype, 1, device)
    lv = _randn(shape, dtype, 2, device, scale=0.5)  # std in [0.3, 3.5] at 5 sigma
    eps = _randn(shape, dtype, 3, device)
    return mu, lv, eps


def _close(actual, expected, dtype, **kw):
    tol = dict(TOL[dtype])
    tol.update(kw)
    torch.testing.assert_close(actual.double(), expected.double(), **tol)


# ---- float64 references (from the inputs as rounded to their dtype) ---------------------

def ref_z(mu, lv, eps):
    return mu.double() + eps.double() * torch.exp(lv.double() / 2)


def ref_kl(mu, lv):
    mu, lv = mu.double(), lv.double()
    return 0.5 * (mu * mu + torch.exp(lv) - 1 - lv)


def ref_grads(mu, lv, eps, grad_z, grad_kl):
    """(grad_mu, grad_logvar) of grad_z . z + grad_kl . kl; either weight may be None."""
    lv = lv.double()
    std = torch.exp(lv / 2)
    g_mu = torch.zeros_like(lv)
    g_lv = torch.zeros_like(lv)
    if grad_z is not None:
        g_mu = g_mu + grad_z.double()
        g_lv = g_lv + 0.5 * grad_z.double() * eps.double() * std
    if grad_kl is not None:
        gk = grad_kl if isinstance(grad_kl, float) else grad_kl.double()
        g_mu = g_mu + gk * mu.double()
        g_lv = g_lv + gk * 0.5 * (std * std - 1)
    return g_mu, g_lv


def _noise(shape, dtype, seed):
    """The in-kernel normals of `seed` as the kernels of `dtype` use them: float math for
    float16/bfloat16/float32, double math for float64 (z = 0 + eps * exp(0) = eps)."""
    ndt = torch.float64 if dtype == torch.float64 else torch.float32
    zeros = torch.zeros(shape, dtype=ndt, device=seed.device)
    return ops.reparameterize(zeros, zeros, None, seed)


# ---- forward values -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("shape", SHAPES)
def test_reparameterize_with_eps(shape, dtype):
    mu, lv, eps = _inputs(shape, dtype)
    z = ops.reparameterize(mu, lv, eps, None)
    assert z.shape == mu.shape and z.dtype == dtype and z.device == mu.device
    _close(z, ref_z(mu, lv, eps), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("shape", SHAPES)
def test_reparameterize_in_kernel_noise(shape, dtype):
    mu, lv, _ = _inputs(shape, dtype)
    seed = _seed()
    z = ops.reparameterize(mu, lv, None, seed)
    _close(z, ref_z(mu, lv, _noise(shape, dtype, seed)), dtype)
    assert torch.equal(z, ops.reparameterize(mu, lv, None, seed)), "same seed, different noise"
    other = ops.reparameterize(mu, lv, None, _seed(value=(SEED[0], SEED[1] + 1)))
    if mu.numel() > 4:
        assert not torch.equal(z, other), "another stream gave the same noise"


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_kl(shape, dtype):
    mu, lv, _ = _inputs(shape, dtype)
    kl = ops.gaussian_kl(mu, lv, False, 0.25)  # scale applies to the reduced KL only
    assert kl.shape == mu.shape and kl.dtype == dtype
    _close(kl, ref_kl(mu, lv), dtype)
    scale = 1.0 / mu.numel()  # a mean: keeps float16's sum in range
    total = ops.gaussian_kl(mu, lv, True, scale)
    assert total.dim() == 0 and total.dtype == dtype and total.device == mu.device
    _close(total, ref_kl(mu, lv).sum() * scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noise", ["eps", "seed"])
def test_reparameterize_kl(shape, dtype, noise):
    mu, lv, eps = _inputs(shape, dtype)
    seed = _seed()
    if noise == "seed":
        eps_arg, seed_arg, eps = None, seed, _noise(shape, dtype, seed)
    else:
        eps_arg, seed_arg = eps, None
    z, kl = ops.reparameterize_kl(mu, lv, eps_arg, seed_arg, False, 3.0)
    _close(z, ref_z(mu, lv, eps), dtype)
    _close(kl, ref_kl(mu, lv), dtype)
    scale = 0.5 / mu.numel()
    z2, total = ops.reparameterize_kl(mu, lv, eps_arg, seed_arg, True, scale)
    assert torch.equal(z, z2)
    assert total.dim() == 0 and total.dtype == dtype
    _close(total, ref_kl(mu, lv).sum() * scale, dtype)


def test_reduced_kl_is_deterministic():
    mu, lv, _ = _inputs((4096, 512), torch.float32)
    a = ops.gaussian_kl(mu, lv, True, 1.0)
    for _ in range(3):
        assert torch.equal(a, ops.gaussian_kl(mu, lv, True, 1.0))


# ---- gradients through the backward ops --------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noise", ["eps", "seed"])
def test_reparameterize_backward(shape, dtype, noise):
    _, lv, eps = _inputs(shape, dtype)
    grad = _randn(shape, dtype, 4)
    seed = _seed()
    if noise == "seed":
        g_lv = ops.reparameterize_backward(grad, lv, None, seed)
        eps = _noise(shape, dtype, seed)
    else:
        g_lv = ops.reparameterize_backward(grad, lv, eps, None)
    assert g_lv.shape == lv.shape and g_lv.dtype == dtype
    _close(g_lv, ref_grads(lv, lv, eps, grad, None)[1], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_kl_backward(shape, dtype):
    mu, lv, _ = _inputs(shape, dtype)
    # reduce=False: one weight per element, scale not applied
    grad = _randn(shape, dtype, 5)
    g_mu, g_lv = ops.gaussian_kl_backward(grad, mu, lv, 0.25)
    e_mu, e_lv = ref_grads(mu, lv, None, None, grad)
    _close(g_mu, e_mu, dtype)
    _close(g_lv, e_lv, dtype)
    # reduce=True: one weight (a 0-dim tensor on the device) times scale
    for g in (torch.tensor(1.5, dtype=dtype, device=DEV), torch.tensor(-0.75, dtype=dtype)):  # device, host
        g_mu, g_lv = ops.gaussian_kl_backward(g, mu, lv, 0.25)
        e_mu, e_lv = ref_grads(mu, lv, None, None, float(g.double()) * 0.25)
        _close(g_mu, e_mu, dtype)
        _close(g_lv, e_lv, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noise", ["eps", "seed"])
@pytest.mark.parametrize("reduce", [False, True])
def test_reparameterize_kl_backward(shape, dtype, noise, reduce):
    mu, lv, eps = _inputs(shape, dtype)
    seed = _seed()
    if noise == "seed":
        eps_arg, seed_arg, eps = None, seed, _noise(shape, dtype, seed)
    else:
        eps_arg, seed_arg = eps, None
    grad_z = _randn(shape, dtype, 6)
    scale = 0.3
    if reduce:
        grad_kl = torch.tensor(2.0, dtype=dtype, device=DEV)
        weight = float(grad_kl.double()) * scale
    else:
        grad_kl = _randn(shape, dtype, 7)
        weight = grad_kl
    g_mu, g_lv = ops.reparameterize_kl_backward(grad_z, grad_kl, mu, lv, eps_arg, seed_arg, scale)
    e_mu, e_lv = ref_grads(mu, lv, eps, grad_z, weight)
    _close(g_mu, e_mu, dtype)
    _close(g_lv, e_lv, dtype)
    # without grad_z: only the KL part
    g_mu, g_lv = ops.reparameterize_kl_backward(None, grad_kl, mu, lv, eps_arg, seed_arg, scale)
    e_mu, e_lv = ref_grads(mu, lv, eps, None, weight)
    _close(g_mu, e_mu, dtype)
    _close(g_lv, e_lv, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=_name)
def test_autograd_both_outputs(dtype):
    import gentk

    if not gentk.extension_available():
        pytest.skip("gentk's autograd registration did not load")
    mu, lv, eps = _inputs((129, 257), dtype)
    mu.requires_grad_(True)
    lv.requires_grad_(True)
    z, kl = ops.reparameterize_kl(mu, lv, None, _seed(), True, 0.1)
    grad_z = _randn(z.shape, dtype, 8)
    g_mu, g_lv = torch.autograd.grad((z * grad_z).sum() + 2.0 * kl, (mu, lv))
    noise = _noise(mu.shape, dtype, _seed())
    e_mu, e_lv = ref_grads(mu.detach(), lv.detach(), noise, grad_z, 2.0 * 0.1)
    _close(g_mu, e_mu, dtype)
    _close(g_lv, e_lv, dtype)


# ---- in-kernel noise ------------------------------------------------------------------------

def test_noise_statistics():
    n = 1 << 20
    zeros = torch.zeros(n, device=DEV)
    z = ops.reparameterize(zeros, zeros, None, _seed()).double()
    assert abs(z.mean().item()) < 5e-3  # standard error 1e-3
    assert abs(z.std().item() - 1) < 5e-3  # standard error 7e-4
    assert abs((z.abs() < 1).double().mean().item() - 0.682689) < 3e-3
    assert abs((z.abs() < 2).double().mean().item() - 0.954500) < 2e-3
    assert z.abs().max().item() < 6.0  # Box-Muller with 24-bit uniforms: |n| <= 5.77
    z2 = ops.reparameterize(zeros, zeros, None, _seed(value=(SEED[0], SEED[1] + 1))).double()
    assert abs(torch.corrcoef(torch.stack([z, z2]))[0, 1].item()) < 5e-3
    # the slots of one Philox call (elements k, k+16, k+32, k+48 of a group of 64) are
    # independent too: 16384 samples per pair, standard error 0.008
    groups = z.view(-1, 64)
    for a, b in ((0, 16), (0, 32), (16, 48)):
        assert abs(torch.corrcoef(torch.stack([groups[:, a], groups[:, b]]))[0, 1].item()) < 0.04


@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 64, 65, 1000, 129 * 257, 1 << 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=_name)
def test_noise_equals_cpu(n, dtype):
    seed_cpu = torch.tensor(SEED, dtype=torch.int64)
    zeros = torch.zeros(n, dtype=dtype)
    cpu = ops.reparameterize(zeros, zeros, None, seed_cpu)
    gpu = ops.reparameterize(zeros.to(DEV), zeros.to(DEV), None, seed_cpu.to(DEV))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gpu.cpu(), cpu, **tol)
    # and with a non-trivial mu / logvar
    mu, lv, _ = _inputs((n,), dtype, device="cpu")
    torch.testing.assert_close(ops.reparameterize(mu.to(DEV), lv.to(DEV), None, seed_cpu.to(DEV)).cpu(),
                               ops.reparameterize(mu, lv, None, seed_cpu), **tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=_name)
def test_low_precision_noise_equals_cpu_float(dtype):
    seed_cpu = torch.tensor(SEED, dtype=torch.int64)
    n = 129 * 257
    cpu = ops.reparameterize(torch.zeros(n), torch.zeros(n), None, seed_cpu)
    zeros = torch.zeros(n, dtype=dtype, device=DEV)
    gpu = ops.reparameterize(zeros, zeros, None, seed_cpu.to(DEV))
    _close(gpu.cpu(), cpu.to(dtype), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=_name)
def test_matches_cpu_ops(dtype):
    """Every op on CUDA against the same op on CPU, including a 0-dim input."""
    seed_cpu = torch.tensor(SEED, dtype=torch.int64)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for shape in [(), (1,), (3, 7), (129, 257)]:
        mu, lv, eps = _inputs(shape, dtype, device="cpu")
        gz = _randn(shape, dtype, 9, device="cpu")
        gk_elem = _randn(shape, dtype, 10, device="cpu")
        gk_one = torch.tensor(1.7, dtype=dtype)
        calls = [
            lambda d, s: ops.reparameterize(mu.to(d), lv.to(d), None, s),
            lambda d, s: ops.reparameterize(mu.to(d), lv.to(d), eps.to(d), None),
            lambda d, s: ops.reparameterize_backward(gz.to(d), lv.to(d), None, s),
            lambda d, s: ops.gaussian_kl(mu.to(d), lv.to(d), False, 0.5),
            lambda d, s: ops.gaussian_kl(mu.to(d), lv.to(d), True, 0.5),
            lambda d, s: ops.gaussian_kl_backward(gk_one.to(d), mu.to(d), lv.to(d), 0.5),
            lambda d, s: ops.gaussian_kl_backward(gk_elem.to(d), mu.to(d), lv.to(d), 0.5),
            lambda d, s: ops.reparameterize_kl(mu.to(d), lv.to(d), None, s, True, 0.5),
            lambda d, s: ops.reparameterize_kl(mu.to(d), lv.to(d), eps.to(d), None, False, 0.5),
            lambda d, s: ops.reparameterize_kl_backward(gz.to(d), gk_one.to(d), mu.to(d), lv.to(d), None, s, 0.5),
            lambda d, s: ops.reparameterize_kl_backward(gz.to(d), gk_elem.to(d), mu.to(d), lv.to(d), eps.to(d),
                                                        None, 0.5),
            lambda d, s: ops.reparameterize_kl_backward(None, gk_one.to(d), mu.to(d), lv.to(d), None, s, 0.5),
        ]
        for i, call in enumerate(calls):
            want = call("cpu", seed_cpu)
            got = call(DEV, seed_cpu.to(DEV))
            want = want if isinstance(want, tuple) else (want,)
            got = got if isinstance(got, tuple) else (got,)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype, (shape, i)
                torch.testing.assert_close(g.cpu(), w, **tol, msg=lambda m: f"shape {shape}, call {i}: {m}")


# ---- layouts, edge cases, streams and graphs -----------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=_name)
def test_non_contiguous_and_misaligned(dtype):
    mu, lv, eps = _inputs((258, 131), dtype)
    gz = _randn((258, 131), dtype, 11)
    seed = _seed()
    for view in (lambda t: t.t(), lambda t: t.reshape(-1)[1:1 + 129 * 257].view(129, 257),
                 lambda t: t[:, 1:130]):
        m, l, e, g = view(mu), view(lv), view(eps), view(gz)
        noise = _noise(m.shape, dtype, seed)
        _close(ops.reparameterize(m, l, e, None), ref_z(m, l, e), dtype)
        _close(ops.reparameterize(m, l, None, seed), ref_z(m, l, noise), dtype)
        z, kl = ops.reparameterize_kl(m, l, e, None, False, 1.0)
        _close(kl, ref_kl(m, l), dtype)
        g_mu, g_lv = ops.reparameterize_kl_backward(g, g, m, l, e, None, 1.0)
        e_mu, e_lv = ref_grads(m, l, e, g, g)
        _close(g_mu, e_mu, dtype)
        _close(g_lv, e_lv, dtype)


@pytest.mark.parametrize("shape", [(0,), (0, 5), (3, 0, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=_name)
def test_empty(shape, dtype):
    x = torch.empty(shape, dtype=dtype, device=DEV)
    seed = _seed()
    assert ops.reparameterize(x, x, None, seed).shape == shape
    assert ops.reparameterize(x, x, x, None).shape == shape
    assert ops.reparameterize_backward(x, x, None, seed).shape == shape
    assert ops.gaussian_kl(x, x, False, 2.0).shape == shape
    total = ops.gaussian_kl(x, x, True, 2.0)
    assert total.shape == () and total.dtype == dtype and total.device == x.device and total.item() == 0
    one = torch.ones((), dtype=dtype, device=DEV)
    for g_mu, g_lv in (ops.gaussian_kl_backward(one, x, x, 2.0), ops.gaussian_kl_backward(x, x, x, 2.0),
                       ops.reparameterize_kl_backward(x, one, x, x, None, seed, 2.0),
                       ops.reparameterize_kl_backward(None, one, x, x, None, seed, 2.0)):
        assert g_mu.shape == shape and g_lv.shape == shape
    z, total = ops.reparameterize_kl(x, x, None, seed, True, 2.0)
    assert z.shape == shape and total.shape == () and total.item() == 0
    z, kl = ops.reparameterize_kl(x, x, None, seed, False, 2.0)
    assert z.shape == shape and kl.shape == shape


def test_argument_errors():
    mu, lv, _ = _inputs((3, 7), torch.float32)
    with pytest.raises(RuntimeError, match="seed"):
        ops.reparameterize(mu, lv, None, torch.tensor(SEED))  # seed on the host
    with pytest.raises(RuntimeError, match="either eps or seed"):
        ops.reparameterize(mu, lv, None, None)
    with pytest.raises(RuntimeError):
        ops.reparameterize(mu, lv.double(), None, _seed())


def test_side_stream():
    mu, lv, eps = _inputs((4096, 512), torch.float32)
    seed = _seed()
    want_z, want_kl = ops.reparameterize_kl(mu, lv, None, seed, True, 1e-3)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        z, kl = ops.reparameterize_kl(mu, lv, None, seed, True, 1e-3)
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(z, want_z) and torch.equal(kl, want_kl)


def test_cuda_graph_reads_seed_and_weight_on_device():
    mu, lv, _ = _inputs((129, 257), torch.float32)
    grad_z = _randn(mu.shape, torch.float32, 12)
    seed = _seed()
    weight = torch.tensor(1.0, device=DEV)

    def step():
        z, kl = ops.reparameterize_kl(mu, lv, None, seed, True, 0.5)
        g_mu, g_lv = ops.reparameterize_kl_backward(grad_z, weight, mu, lv, None, seed, 0.5)
        return z, kl, g_mu, g_lv

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # warm up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    for value, w in (((1, 2), 1.0), ((SEED[0], SEED[1]), -3.0), ((7, -7), 0.0)):
        seed.copy_(torch.tensor(value, dtype=torch.int64))
        weight.fill_(w)
        graph.replay()
        torch.cuda.synchronize()
        for got, want in zip(captured, step()):
            assert torch.equal(got, want), value
