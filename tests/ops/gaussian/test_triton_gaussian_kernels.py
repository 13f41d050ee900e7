"""The Triton Gaussian ops (gentk::*_triton) against the compiled CPU ops and the formulas.

Without a CUDA device the kernels run in the Triton interpreter on CPU tensors
(conftest.py sets TRITON_INTERPRET=1 before triton is imported).
"""

import pytest
import torch

triton = pytest.importorskip("triton")
pytestmark = pytest.mark.cuda  # on a GPU these run there (benchmarks/gpu.sh: pytest -m cuda)

import gentk._C  # noqa: E402,F401  (registers the compiled ops, the comparison baseline)
import gentk.ops.gaussian.triton_kernels as tg  # noqa: E402  (registers the *_triton ops)

import numpy as np  # noqa: E402

ops = torch.ops.gentk
DEVICE = "cpu" if tg.INTERPRETED else "cuda"
SHAPES = [(1, 1), (3, 7), (129, 257)]
DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)


def seed_t(seed, stream):
    return torch.tensor([seed, stream], dtype=torch.int64, device=DEVICE)


def inputs(shape, dtype, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    mu = torch.randn(shape, generator=g, dtype=torch.float64)
    logvar = torch.randn(shape, generator=g, dtype=torch.float64).clamp(-4, 4)
    return mu.to(DEVICE, dtype), logvar.to(DEVICE, dtype)


def cpu(*args):
    """Arguments moved to CPU for the compiled CPU ops."""
    return [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]


def assert_close(actual, expected, dtype):
    if isinstance(actual, (tuple, list)):
        for a, e in zip(actual, expected):
            assert_close(a, e, dtype)
        return
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual.cpu().to(torch.float64), expected.cpu().to(torch.float64), **tol(dtype))


# Independent reference of the noise stream (csrc/include/gentk/philox.h), numpy uint64 math.
def philox_noise_ref(n, seed, stream):
    mask = np.uint64(0xFFFFFFFF)
    e = np.arange(n, dtype=np.uint64)
    c = (e >> np.uint64(6)) * np.uint64(16) + (e & np.uint64(15))
    seed_u, stream_u = np.uint64(seed % 2**64), np.uint64(stream % 2**64)
    c0, c1 = c & mask, c >> np.uint64(32)
    c2 = np.full_like(c, stream_u & mask)
    c3 = np.full_like(c, stream_u >> np.uint64(32))
    k0, k1 = int(seed_u & mask), int(seed_u >> np.uint64(32))
    for _ in range(10):
        p0 = c0 * np.uint64(0xD2511F53)
        p1 = c2 * np.uint64(0xCD9E8D57)
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0),
            p1 & mask,
            (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1),
            p0 & mask,
        )
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    x = np.stack([c0, c1, c2, c3])
    slot = ((e >> np.uint64(4)) & np.uint64(3)).astype(np.int64)
    pair = slot // 2
    xa = x[2 * pair, np.arange(n)]  # the (open, closed) uniform of the element's pair
    xb = x[2 * pair + 1, np.arange(n)]
    u1 = ((xa >> np.uint64(8)) + np.uint64(1)).astype(np.float64) * 2.0**-24
    u2 = (xb >> np.uint64(8)).astype(np.float64) * 2.0**-24
    r = np.sqrt(-2.0 * np.log(u1))
    theta = 2 * np.pi * u2
    return torch.from_numpy(np.where(slot % 2 == 0, r * np.cos(theta), r * np.sin(theta)))


# Formulas in float64 (gentk/gaussian.h).
def ref_forward(mu, logvar, eps):
    mu, logvar, eps = (t.cpu().double() for t in (mu, logvar, eps))
    std = torch.exp(0.5 * logvar)
    z = mu + eps * std
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1 - logvar)
    return z, kl


def ref_backward(grad_z, grad_kl, mu, logvar, eps):
    logvar = logvar.cpu().double()
    std = torch.exp(0.5 * logvar)
    g_mu = torch.zeros_like(logvar)
    g_lv = torch.zeros_like(logvar)
    if grad_z is not None:
        gz = grad_z.cpu().double()
        g_mu = g_mu + gz
        g_lv = g_lv + 0.5 * gz * eps.cpu().double() * std
    if grad_kl is not None:
        gk = grad_kl.cpu().double()
        g_mu = g_mu + gk * mu.cpu().double()
        g_lv = g_lv + gk * 0.5 * (std * std - 1)
    return g_mu, g_lv


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_ops(shape, dtype):
    mu, logvar = inputs(shape, dtype)
    seed = seed_t(1234, 7)
    eps = torch.randn(shape, dtype=dtype).to(DEVICE)
    noise = philox_noise_ref(mu.numel(), 1234, 7).reshape(shape)

    # reparameterize, with in-kernel noise and with eps given (seed then ignored)
    z = ops.reparameterize_triton(mu, logvar, None, seed)
    assert z.dtype == dtype and z.shape == shape
    assert_close(z, ops.reparameterize(*cpu(mu, logvar, None, seed)), dtype)
    assert_close(z, ref_forward(mu, logvar, noise)[0], dtype)
    z_eps = ops.reparameterize_triton(mu, logvar, eps, seed_t(99, 1))
    assert_close(z_eps, ref_forward(mu, logvar, eps)[0], dtype)

    # gaussian_kl, per element and summed
    kl_ref = ref_forward(mu, logvar, eps)[1]
    kl = ops.gaussian_kl_triton(mu, logvar, False, 3.0)
    assert_close(kl, ops.gaussian_kl(*cpu(mu, logvar), False, 3.0), dtype)
    assert_close(kl, kl_ref, dtype)
    kl_sum = ops.gaussian_kl_triton(mu, logvar, True, 0.25)
    assert kl_sum.dim() == 0 and kl_sum.dtype == dtype
    assert_close(kl_sum, ops.gaussian_kl(*cpu(mu, logvar), True, 0.25), dtype)
    assert_close(kl_sum, 0.25 * kl_ref.sum(), dtype)

    # reparameterize_kl
    for reduce in (False, True):
        out = ops.reparameterize_kl_triton(mu, logvar, None, seed, reduce, 0.5)
        assert_close(out, ops.reparameterize_kl(*cpu(mu, logvar, None, seed), reduce, 0.5), dtype)
        z_ref, kl_ref_ = ref_forward(mu, logvar, noise)
        assert_close(out, (z_ref, 0.5 * kl_ref_.sum() if reduce else kl_ref_), dtype)
    out = ops.reparameterize_kl_triton(mu, logvar, eps, None, False, 1.0)
    assert_close(out, ref_forward(mu, logvar, eps), dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_ops(shape, dtype):
    mu, logvar = inputs(shape, dtype, gen_seed=1)
    seed = seed_t(-42, 3)
    noise = philox_noise_ref(mu.numel(), -42, 3).reshape(shape)
    gz = torch.randn(shape, dtype=dtype).to(DEVICE)
    gk = torch.randn(shape, dtype=dtype).to(DEVICE)
    eps = torch.randn(shape, dtype=dtype).to(DEVICE)
    single = torch.tensor(1.5, dtype=dtype, device=DEVICE)

    g_lv = ops.reparameterize_backward_triton(gz, logvar, None, seed)
    assert_close(g_lv, ops.reparameterize_backward(*cpu(gz, logvar, None, seed)), dtype)
    assert_close(g_lv, ref_backward(gz, None, mu, logvar, noise)[1], dtype)
    g_lv = ops.reparameterize_backward_triton(gz, logvar, eps, None)
    assert_close(g_lv, ref_backward(gz, None, mu, logvar, eps)[1], dtype)

    out = ops.gaussian_kl_backward_triton(gk, mu, logvar, 7.0)  # elementwise: scale unused
    assert_close(out, ops.gaussian_kl_backward(*cpu(gk, mu, logvar), 7.0), dtype)
    assert_close(out, ref_backward(None, gk, mu, logvar, None), dtype)
    out = ops.gaussian_kl_backward_triton(single, mu, logvar, 0.5)  # one value, times scale
    assert_close(out, ops.gaussian_kl_backward(*cpu(single, mu, logvar), 0.5), dtype)
    assert_close(out, ref_backward(None, torch.full(shape, 0.75, dtype=torch.float64), mu, logvar, None), dtype)

    cases = [
        (gz, gk, None, seed, 2.0, noise, gk),
        (gz, single, None, seed, 2.0, noise, torch.full(shape, 3.0, dtype=torch.float64)),
        (gz, gk, eps, None, 1.0, eps, gk),
        (None, gk, None, seed, 1.0, None, gk),
        (None, single, None, seed, 0.1, None, torch.full(shape, 0.15, dtype=torch.float64)),
    ]
    for g_z, g_k, e, s, scale, eps_ref, gk_ref in cases:
        out = ops.reparameterize_kl_backward_triton(g_z, g_k, mu, logvar, e, s, scale)
        assert_close(out, ops.reparameterize_kl_backward(*cpu(g_z, g_k, mu, logvar, e, s), scale), dtype)
        assert_close(out, ref_backward(g_z, gk_ref, mu, logvar, eps_ref), dtype)


def test_large_float32():
    shape, dtype = (4096, 512), torch.float32
    mu, logvar = inputs(shape, dtype, gen_seed=2)
    seed = seed_t(2**62 + 3, -9)
    z, kl = ops.reparameterize_kl_triton(mu, logvar, None, seed, True, 1.0 / 4096)
    z_c, kl_c = ops.reparameterize_kl(*cpu(mu, logvar, None, seed), True, 1.0 / 4096)
    torch.testing.assert_close(z.cpu(), z_c, rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(kl.cpu(), kl_c, rtol=1e-5, atol=0)
    gz = torch.randn(shape, dtype=dtype).to(DEVICE)
    out = ops.reparameterize_kl_backward_triton(gz, kl.new_tensor(2.0), mu, logvar, None, seed, 1.0 / 4096)
    expected = ops.reparameterize_kl_backward(*cpu(gz, kl.new_tensor(2.0), mu, logvar, None, seed), 1.0 / 4096)
    for a, e in zip(out, expected):
        torch.testing.assert_close(a.cpu(), e, rtol=1e-5, atol=2e-5)


SEEDS = [(0, 0), (1234, 5), (2**62 + 12345, 1), (2**63 - 1, -1), (-3, -(2**40) - 7)]
NOISE_CASES = [(shape, *ss) for shape in [(1,), (63,), (65,), (3, 7), (1000,)] for ss in SEEDS]
NOISE_CASES += [((129, 257), *ss) for ss in SEEDS[2:4]]


@pytest.mark.parametrize("shape,seed,stream", NOISE_CASES)
def test_noise_matches_cpu_stream(shape, seed, stream):
    zeros = torch.zeros(shape, dtype=torch.float32, device=DEVICE)
    s = seed_t(seed, stream)
    noise = ops.reparameterize_triton(zeros, zeros, None, s)  # std 1: z is the noise
    torch.testing.assert_close(noise.cpu(), ops.reparameterize(*cpu(zeros, zeros, None, s)), rtol=1e-5, atol=1e-5)
    ref = philox_noise_ref(zeros.numel(), seed, stream).reshape(shape)
    torch.testing.assert_close(noise.cpu().double(), ref, rtol=1e-5, atol=1e-5)
    noise64 = ops.reparameterize_triton(zeros.double(), zeros.double(), None, s)
    torch.testing.assert_close(noise64.cpu(), ref, rtol=1e-12, atol=1e-12)


def test_noise_depends_on_seed_and_stream():
    zeros = torch.zeros(256, device=DEVICE)
    a = ops.reparameterize_triton(zeros, zeros, None, seed_t(1, 0))
    assert not torch.equal(a, ops.reparameterize_triton(zeros, zeros, None, seed_t(2, 0)))
    assert not torch.equal(a, ops.reparameterize_triton(zeros, zeros, None, seed_t(1, 1)))
    assert torch.equal(a, ops.reparameterize_triton(zeros, zeros, None, seed_t(1, 0)))
    assert abs(a.mean().item()) < 0.3 and 0.7 < a.std().item() < 1.3


@pytest.mark.parametrize("dtype", DTYPES)
def test_autograd_matches_compiled_ops(dtype):
    shape = (5, 13)
    seed = seed_t(11, 2)
    mu0, lv0 = inputs(shape, dtype, gen_seed=3)
    gz = torch.randn(shape, dtype=dtype).to(DEVICE)
    gk = torch.randn(shape, dtype=dtype).to(DEVICE)

    def grads(suffix, to):
        fwd = {n: getattr(ops, n + suffix) for n in ("reparameterize", "gaussian_kl", "reparameterize_kl")}
        mu, lv = (t.detach().to(to).requires_grad_() for t in (mu0, lv0))
        z = fwd["reparameterize"](mu, lv, None, seed.to(to))
        kl_none = fwd["gaussian_kl"](mu, lv, False, 1.0)
        kl_sum = fwd["gaussian_kl"](mu, lv, True, 0.3)
        z2, kl2 = fwd["reparameterize_kl"](mu, lv, None, seed.to(to), True, 0.7)
        z3, kl3 = fwd["reparameterize_kl"](mu, lv, None, seed.to(to), False, 1.0)
        loss = ((z * gz.to(to)).sum() + (kl_none * gk.to(to)).sum() + 2 * kl_sum + (z2 * gz.to(to)).sum()
                + 3 * kl2 + (kl3 * gk.to(to)).sum())
        zk, _ = fwd["reparameterize_kl"](mu, lv, None, seed.to(to), True, 1.0)  # KL unused: grad_kl None
        loss = loss + (zk * gk.to(to)).sum()
        return torch.autograd.grad(loss, (mu, lv))

    got = grads("_triton", DEVICE)
    expected = grads("", "cpu")
    assert_close(got, expected, dtype)

    # eps given: it gets a gradient as well
    eps = torch.randn(shape, dtype=dtype).to(DEVICE).requires_grad_()
    mu, lv = (t.detach().requires_grad_() for t in (mu0, lv0))
    z, kl = ops.reparameterize_kl_triton(mu, lv, eps, None, True, 1.0)
    g = torch.autograd.grad((z * gz).sum() + kl, (mu, lv, eps))
    std = torch.exp(0.5 * lv.detach())
    assert_close(g[0], gz + mu.detach(), dtype)
    assert_close(g[1], 0.5 * gz * eps.detach() * std + 0.5 * (std * std - 1), dtype)
    assert_close(g[2], gz * std, dtype)


def test_gradcheck_float64():
    mu, lv = inputs((2, 3), torch.float64, gen_seed=4)
    mu.requires_grad_()
    lv.requires_grad_()
    seed = seed_t(5, 6)
    # fast_mode: a few directional derivatives instead of one forward pair per element
    checks = [
        lambda m, v: ops.reparameterize_triton(m, v, None, seed),
        lambda m, v: ops.gaussian_kl_triton(m, v, True, 0.5),
        lambda m, v: ops.reparameterize_kl_triton(m, v, None, seed, False, 1.0),
    ]
    for fn in checks:
        assert torch.autograd.gradcheck(fn, (mu, lv), fast_mode=True)


@pytest.mark.parametrize("shape", [(0,), (0, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty(shape, dtype):
    mu = torch.empty(shape, dtype=dtype, device=DEVICE)
    seed = seed_t(1, 2)
    assert ops.reparameterize_triton(mu, mu, None, seed).shape == shape
    assert ops.gaussian_kl_triton(mu, mu, False, 1.0).shape == shape
    total = ops.gaussian_kl_triton(mu, mu, True, 2.0)
    assert total.shape == () and total.dtype == dtype and total.item() == 0.0
    z, kl = ops.reparameterize_kl_triton(mu, mu, None, seed, True, 1.0)
    assert z.shape == shape and kl.shape == () and kl.item() == 0.0
    assert ops.reparameterize_backward_triton(mu, mu, None, seed).shape == shape
    g_mu, g_lv = ops.gaussian_kl_backward_triton(mu.new_ones(()), mu, mu, 1.0)
    assert g_mu.shape == shape and g_lv.shape == shape
    g_mu, g_lv = ops.reparameterize_kl_backward_triton(mu, mu.new_ones(()), mu, mu, None, seed, 1.0)
    assert g_mu.shape == shape and g_lv.shape == shape


def test_zero_dim_inputs():
    # a 0-dim logvar makes grad_kl "one value": multiplied by scale, as on CPU
    mu = torch.tensor(0.3, dtype=torch.float64, device=DEVICE)
    lv = torch.tensor(-0.2, dtype=torch.float64, device=DEVICE)
    seed = seed_t(8, 9)
    g = torch.tensor(2.0, dtype=torch.float64, device=DEVICE)
    assert_close(ops.gaussian_kl_backward_triton(g, mu, lv, 3.0),
                 ops.gaussian_kl_backward(*cpu(g, mu, lv), 3.0), torch.float64)
    assert_close(ops.reparameterize_kl_triton(mu, lv, None, seed, True, 3.0),
                 ops.reparameterize_kl(*cpu(mu, lv, None, seed), True, 3.0), torch.float64)
    assert_close(ops.reparameterize_kl_backward_triton(g, g, mu, lv, None, seed, 3.0),
                 ops.reparameterize_kl_backward(*cpu(g, g, mu, lv, None, seed), 3.0), torch.float64)


def test_non_contiguous_inputs():
    mu, lv = inputs((70, 9), torch.float32, gen_seed=5)
    mu_t, lv_t = mu.t(), lv.t()
    seed = seed_t(3, 4)
    assert_close(ops.reparameterize_kl_triton(mu_t, lv_t, None, seed, False, 1.0),
                 ops.reparameterize_kl(*cpu(mu_t, lv_t, None, seed), False, 1.0), torch.float32)
    g = torch.randn(9, 70).to(DEVICE)
    assert_close(ops.reparameterize_kl_backward_triton(g, g, mu_t, lv_t, None, seed, 1.0),
                 ops.reparameterize_kl_backward(*cpu(g, g, mu_t, lv_t, None, seed), 1.0), torch.float32)


def test_float16_math_in_float32():
    mu, lv = inputs((3, 70), torch.float16, gen_seed=6)
    seed = seed_t(5, 6)
    z, kl = ops.reparameterize_kl_triton(mu, lv, None, seed, True, 1.0)
    assert z.dtype == torch.float16 and kl.dtype == torch.float16
    z_ref, kl_ref = ops.reparameterize_kl(*cpu(mu.float(), lv.float(), None, seed), True, 1.0)
    torch.testing.assert_close(z.cpu().float(), z_ref, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(kl.cpu().float(), kl_ref, rtol=2e-3, atol=0)


def test_argument_checks():
    mu, lv = inputs((3, 4), torch.float32)
    seed = seed_t(1, 2)
    with pytest.raises(RuntimeError, match="reparameterize_triton: logvar must have mu's shape"):
        ops.reparameterize_triton(mu, lv[:2], None, seed)
    with pytest.raises(RuntimeError, match="logvar has dtype torch.float64 but mu has torch.float32"):
        ops.gaussian_kl_triton(mu, lv.double(), True, 1.0)
    with pytest.raises(RuntimeError, match="mu must be floating point"):
        ops.gaussian_kl_triton(mu.long(), lv.long(), True, 1.0)
    with pytest.raises(RuntimeError, match="give either eps or seed"):
        ops.reparameterize_triton(mu, lv, None, None)
    with pytest.raises(RuntimeError, match="give either eps or seed"):  # as on CPU, even without grad_z
        ops.reparameterize_kl_backward_triton(None, mu, mu, lv, None, None, 1.0)
    with pytest.raises(RuntimeError, match="seed must be an int64 tensor of two elements"):
        ops.reparameterize_kl_triton(mu, lv, None, seed.int(), True, 1.0)
    with pytest.raises(RuntimeError, match="seed must be an int64 tensor of two elements"):
        ops.reparameterize_triton(mu, lv, None, seed[:1])
    with pytest.raises(RuntimeError, match="eps must have mu's shape"):
        ops.reparameterize_triton(mu, lv, mu[:1], None)
    with pytest.raises(RuntimeError, match="eps has dtype torch.float64 but mu has torch.float32"):
        ops.reparameterize_triton(mu, lv, mu.double(), None)
    with pytest.raises(RuntimeError, match="reparameterize_backward_triton: logvar must have grad's shape"):
        ops.reparameterize_backward_triton(mu[:1], lv, None, seed)
    with pytest.raises(RuntimeError, match="gaussian_kl_backward_triton: grad must have shape \\[3, 4\\] to match mu"):
        ops.gaussian_kl_backward_triton(mu[:2], mu, lv, 1.0)
    with pytest.raises(RuntimeError, match="grad_z must have shape \\[3, 4\\] to match mu"):
        ops.reparameterize_kl_backward_triton(mu[:2], mu, mu, lv, None, seed, 1.0)
    with pytest.raises(RuntimeError, match="grad_kl must have shape \\[3, 4\\] to match mu"):
        ops.reparameterize_kl_backward_triton(mu, mu[:2], mu, lv, None, seed, 1.0)
    if tg.INTERPRETED:
        with pytest.raises(RuntimeError, match="seed is on meta but mu is on cpu"):
            ops.reparameterize_triton(mu, lv, None, seed.to("meta"))


def _opcheck_samples():
    mu, lv = inputs((3, 70), torch.float64, gen_seed=7)
    rg = [t.detach().requires_grad_() for t in (mu, lv)]
    seed = seed_t(13, -1)
    eps = torch.randn(3, 70, dtype=torch.float64).to(DEVICE)
    g = torch.randn(3, 70, dtype=torch.float64).to(DEVICE)
    one = g.new_tensor(0.5)
    return [
        (ops.reparameterize_triton, (*rg, None, seed)),
        (ops.reparameterize_triton, (rg[0], rg[1], eps.clone().requires_grad_(), None)),
        (ops.reparameterize_backward_triton, (g, lv, None, seed)),
        (ops.gaussian_kl_triton, (*rg, True, 0.5)),
        (ops.gaussian_kl_triton, (*rg, False, 1.0)),
        (ops.gaussian_kl_backward_triton, (one, mu, lv, 2.0)),
        (ops.reparameterize_kl_triton, (*rg, None, seed, True, 0.5)),
        (ops.reparameterize_kl_backward_triton, (g, one, mu, lv, None, seed, 0.5)),
        (ops.reparameterize_kl_backward_triton, (None, g, mu, lv, eps, None, 1.0)),
    ]


@pytest.mark.parametrize("index", range(9))
def test_opcheck(index):
    # All of opcheck's sub-tests run, the interpreter included: the module skips kernel
    # launches on fake tensors (the launcher then only builds the outputs, as a fake impl
    # should) and keeps the ops whole under FunctionalTensorMode, so
    # test_aot_dispatch_dynamic compares a graph that calls the real op.
    op, args = _opcheck_samples()[index]
    torch.library.opcheck(op, args)


def test_torch_compile_aot_eager():
    # aot_eager: AOT autograd + functionalization without Inductor's C++ compile time.
    mu, lv = inputs((4, 33), torch.float32, gen_seed=8)
    seed = seed_t(21, 22)

    def loss(m, v, suffix):
        z, kl = getattr(ops, "reparameterize_kl" + suffix)(m, v, None, seed, True, 0.5)
        return (z * z).sum() + kl

    compiled = torch.compile(lambda m, v: loss(m, v, "_triton"), backend="aot_eager", fullgraph=True)
    m1, v1 = (t.detach().requires_grad_() for t in (mu, lv))
    out = compiled(m1, v1)
    grads = torch.autograd.grad(out, (m1, v1))
    m2, v2 = (t.detach().cpu().requires_grad_() for t in (mu, lv))
    out2 = loss(m2, v2, "")
    grads2 = torch.autograd.grad(out2, (m2, v2))
    assert_close(out, out2, torch.float32)
    assert_close(grads, grads2, torch.float32)
