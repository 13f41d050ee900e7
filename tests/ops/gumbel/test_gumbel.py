"""The Gumbel family (gumbel_softmax, categorical_kl_uniform) on every CPU backend against
the pure-PyTorch reference: values, gradients, shapes, dims, dtypes, reductions, the
distribution of the in-kernel noise, extreme logits, bad input."""
import math

import pytest
import torch

import gentk
from conftest import CPU_BACKENDS
from gentk.ops.gumbel import reference as ref

SHAPES = [(1, 2), (7, 3), (129, 10), (1024, 1000)]
DTYPES = [torch.float32, torch.float64]
REDUCTIONS = ["none", "sum", "mean", "batchmean"]
TOL = {torch.float32: dict(rtol=2e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}
TAU = 0.67


def _cases(backends=CPU_BACKENDS):
    for b in backends:
        for shape in SHAPES:
            for dtype in DTYPES:
                if b == "triton" and shape == (1024, 1000) and dtype == torch.float64:
                    continue  # the interpreter is slow; one large float32 case is enough
                yield pytest.param(b, shape, dtype, id=f"{b}-{'x'.join(map(str, shape))}-{str(dtype)[6:]}")


def _logits(shape, dtype, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)


def _gumbels(shape, dtype, seed=1):
    return ref.gumbel_noise(shape, torch.float64, "cpu", torch.Generator().manual_seed(seed)).to(dtype)


def _cotangent(shape, dtype, seed=2):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _close(actual, expected, dtype, scale=1.0):
    tol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol["rtol"], atol=tol["atol"] * max(scale, 1.0))


# ---- gumbel_softmax -----------------------------------------------------------------------

def _cases_with_dim():
    for case in _cases():
        backend, shape, _ = case.values
        for dim in (-1, 0):
            if backend == "triton" and shape == (1024, 1000) and dim == 0:
                continue  # the interpreter is slow; dim -1 covers this shape
            yield pytest.param(*case.values, dim, id=f"{case.id}-dim{dim}")


@pytest.mark.parametrize("backend,shape,dtype,dim", list(_cases_with_dim()))
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_gumbel_softmax_with_gumbels_matches_reference(backend, shape, dtype, dim, hard):
    logits = _logits(shape, dtype).requires_grad_()
    gumbels = _gumbels(shape, dtype).requires_grad_()
    with gentk.use_backend(backend):
        y = gentk.gumbel_softmax(logits, TAU, hard, dim, gumbels=gumbels)
    assert y.shape == logits.shape and y.dtype == dtype
    # the reference in the same dtype picks the same argmax (the sums logits + g are identical)
    r_logits = logits.detach().clone().requires_grad_()
    r_gumbels = gumbels.detach().clone().requires_grad_()
    y_ref = ref.gumbel_softmax(r_logits, TAU, hard, dim, r_gumbels)
    if hard:
        assert torch.equal(y.detach(), y_ref.detach()), "hard samples must be the same one-hot"
        assert torch.equal(y.detach().sum(dim), torch.ones_like(y.detach().sum(dim)))
    else:
        # values against float64 math on the same (rounded) inputs
        y64 = ref.gumbel_softmax(logits.detach().double(), TAU, False, dim, gumbels.detach().double())
        _close(y, y64, dtype)
    cot = _cotangent(shape, dtype)
    g_logits, g_gumbels = torch.autograd.grad(y, [logits, gumbels], cot)
    l64 = logits.detach().double().requires_grad_()
    y64 = ref.gumbel_softmax(l64, TAU, hard, dim, gumbels.detach().double())
    (want,) = torch.autograd.grad(y64, [l64], cot.double())
    _close(g_logits, want, dtype, scale=want.abs().max().item())
    assert torch.equal(g_logits, g_gumbels), "logits and gumbels enter as a sum: same gradient"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((129, 10), -1), ((129, 10), 0), ((64, 1000), -1), ((4, 5, 6), 1)])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_evaluation_path_without_noise(backend, dtype, shape, dim, hard):
    logits = _logits(shape, dtype).requires_grad_()
    with gentk.use_backend(backend):
        y = gentk.gumbel_softmax(logits, TAU, hard, dim, sample=False)
        again = gentk.gumbel_softmax(logits, TAU, hard, dim, sample=False)
    assert torch.equal(y, again), "no noise: the same result every call"
    if hard:
        assert torch.equal(y.detach(), torch.zeros_like(y).scatter_(dim, logits.argmax(dim, keepdim=True), 1.0))
    else:
        _close(y, torch.softmax(logits.detach().double() / TAU, dim), dtype)
    cot = _cotangent(shape, dtype)
    (got,) = torch.autograd.grad(y, [logits], cot)
    l64 = logits.detach().double().requires_grad_()
    (want,) = torch.autograd.grad(torch.softmax(l64 / TAU, dim), [l64], cot.double())
    _close(got, want, dtype, scale=want.abs().max().item())


@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b != "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 3), (129, 10), (33, 100)])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_in_kernel_noise_gradients_are_consistent(backend, dtype, shape, hard):
    """With in-kernel noise, backward (saved soft sample or regenerated noise) must give the
    softmax gradient at the very sample forward drew."""
    logits = _logits(shape, dtype).requires_grad_()
    with gentk.use_backend(backend):
        torch.manual_seed(3)
        y = gentk.gumbel_softmax(logits, TAU, hard)
        torch.manual_seed(3)
        soft = gentk.gumbel_softmax(logits.detach(), TAU, False)  # the same noise, soft
    assert torch.isfinite(soft).all() and torch.allclose(soft.sum(-1), torch.ones(shape[0], dtype=dtype))
    if hard:
        assert torch.equal(y.detach(), torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0))
    cot = _cotangent(shape, dtype)
    (got,) = torch.autograd.grad(y, [logits], cot)
    s = soft.double()
    want = s * (cot.double() - (s * cot.double()).sum(-1, keepdim=True)) / TAU
    _close(got, want, dtype, scale=want.abs().max().item())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("k", [3, 10, 40])
def test_hard_frequencies_match_softmax_chi_square(backend, k):
    """Gumbel-max: the argmax of logits + g is distributed as softmax(logits), for any tau.
    Pearson's chi-square over the K categories at a fixed seed, significance 0.001."""
    critical = {2: 13.816, 9: 27.877, 39: 72.055}  # chi2.ppf(0.999, K - 1)
    n = 200_000 if backend != "triton" else 10_000
    logits = torch.linspace(1.5, -2.0, k, dtype=torch.float64).float()
    probs = torch.softmax(logits.double(), 0)
    with gentk.use_backend(backend):
        torch.manual_seed(2024)
        y = gentk.gumbel_softmax(logits.expand(n, k), 0.5, True)
    counts = y.double().sum(0)
    assert counts.sum().item() == n
    expected = n * probs
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < critical[k - 1], f"chi-square {chi2:.1f} over {k - 1} degrees of freedom"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_soft_samples_approach_one_hot_as_tau_shrinks(backend):
    n, k = (20_000 if backend != "triton" else 10_000), 5
    logits = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.0]).expand(n, k)
    mean_max = []
    with gentk.use_backend(backend):
        for tau in (10.0, 2.0, 1.0, 0.5, 0.1, 0.02):
            torch.manual_seed(11)
            y = gentk.gumbel_softmax(logits, tau)
            mean_max.append(y.max(-1).values.mean().item())
            if tau == 0.02:
                # nearly one-hot, and their mean is the categorical distribution
                torch.testing.assert_close(y.mean(0).double(), torch.softmax(logits[0].double(), 0),
                                           rtol=0, atol=0.02)
    assert all(a < b for a, b in zip(mean_max, mean_max[1:])), mean_max
    assert mean_max[0] < 0.35 and mean_max[-1] > 0.99, mean_max


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_in_kernel_noise_is_reproducible(backend):
    logits = _logits((64, 10), torch.float32)
    with gentk.use_backend(backend):
        torch.manual_seed(1234)
        a = gentk.gumbel_softmax(logits)
        b = gentk.gumbel_softmax(logits)
        torch.manual_seed(1234)
        a_again = gentk.gumbel_softmax(logits)
        c = gentk.gumbel_softmax(logits, generator=torch.Generator().manual_seed(7))
        c_again = gentk.gumbel_softmax(logits, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, a_again), "torch.manual_seed must reproduce the sample"
    assert not torch.equal(a, b), "the next call must draw new noise"
    assert torch.equal(c, c_again)


@pytest.mark.skipif("triton" not in CPU_BACKENDS, reason="triton not usable here")
@pytest.mark.parametrize("shape", [(5, 3), (7, 131)])
def test_cpp_and_triton_draw_the_same_noise(shape):
    logits = _logits(shape, torch.float32)
    out = {}
    for backend in ("cpp", "triton"):
        with gentk.use_backend(backend):
            torch.manual_seed(99)
            out[backend] = gentk.gumbel_softmax(logits, 0.3)
    torch.testing.assert_close(out["cpp"], out["triton"], rtol=1e-5, atol=1e-6)


def test_extreme_logits_no_nan_in_ten_million_samples():
    """10^7 float32 samples (cpp) with logits at +-1e4: finite, one-hot or summing to 1."""
    n, k = 1_000_000, 10
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(-1, 2, (n, k), generator=g).float() * 1e4 + torch.randn(n, k, generator=g)
    logits[::7, 3] = 1e4  # ties in the largest logit
    with gentk.use_backend("cpp"):
        for tau, hard in ((0.1, False), (1.0, False), (0.67, True)):
            y = gentk.gumbel_softmax(logits, tau, hard)
            assert torch.isfinite(y).all(), (tau, hard)
            torch.testing.assert_close(y.sum(-1), torch.ones(n), rtol=0, atol=1e-5)
        part = logits[:100_000].clone().requires_grad_()
        for hard in (False, True):
            y = gentk.gumbel_softmax(part, 0.1, hard)
            (grad,) = torch.autograd.grad(y, [part], torch.randn_like(y))
            assert torch.isfinite(grad).all()
        kl = gentk.categorical_kl_uniform(part, reduction="none")
        (grad,) = torch.autograd.grad(kl.sum(), [part])
        assert torch.isfinite(kl).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_extreme_logits_all_backends(backend):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])
    logits = logits.requires_grad_()
    with gentk.use_backend(backend):
        for tau, hard in ((1e-3, False), (1.0, True), (1e3, False)):
            y = gentk.gumbel_softmax(logits, tau, hard)
            (grad,) = torch.autograd.grad(y, [logits], torch.ones_like(y))
            assert torch.isfinite(y).all() and torch.isfinite(grad).all(), (tau, hard, y, grad)
        y = gentk.gumbel_softmax(logits, 1e-30, False, sample=False)  # 1/tau overflows float32
        assert torch.isfinite(y).all()
        assert torch.equal(y[0], torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b != "torch"])
def test_backward_keeps_nothing_noise_sized(backend):
    logits = _logits((64, 33), torch.float32).requires_grad_()
    for hard in (False, True):
        saved = []
        with gentk.use_backend(backend), torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t.numel()) or t, lambda t: t
        ):
            y = gentk.gumbel_softmax(logits, TAU, hard)
        # soft: its own output; hard: logits and the two-element (seed, stream)
        assert sorted(saved) == ([logits.numel()] if not hard else [2, logits.numel()]), (hard, saved)
        y.sum().backward()


# ---- categorical_kl_uniform ----------------------------------------------------------------

@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
@pytest.mark.parametrize("dim", [-1, 0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_categorical_kl_uniform_matches_reference(backend, shape, dtype, dim, reduction):
    logits = _logits(shape, dtype).requires_grad_()
    with gentk.use_backend(backend):
        kl = gentk.categorical_kl_uniform(logits, dim, reduction)
    l64 = logits.detach().double().requires_grad_()
    kl_ref = ref.categorical_kl_uniform(l64, dim, reduction)
    assert kl.shape == kl_ref.shape and kl.dtype == dtype
    _close(kl, kl_ref, dtype, scale=kl_ref.abs().max().item())
    cot = _cotangent(kl.shape, dtype)
    (got,) = torch.autograd.grad(kl, [logits], cot)
    (want,) = torch.autograd.grad(kl_ref, [l64], cot.double())
    _close(got, want, dtype, scale=want.abs().max().item())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("k", [4, 100])
def test_categorical_kl_zero_probabilities(backend, k):
    """0 log 0 = 0: -inf logits and logits far below the rest add nothing, gradients stay finite."""
    logits = _logits((6, k), torch.float32, scale=1.0)
    logits[0, 1] = -math.inf
    logits[1, :2] = -1e4
    logits[2, 0] = 1e4  # one-hot: KL = log K
    logits[3] = 0.0  # uniform: KL = 0
    logits = logits.requires_grad_()
    with gentk.use_backend(backend):
        kl = gentk.categorical_kl_uniform(logits, reduction="none")
    kl_ref = ref.categorical_kl_uniform(logits.detach().double(), -1, "none")
    torch.testing.assert_close(kl.double(), kl_ref, rtol=1e-5, atol=1e-5)
    assert abs(kl[2].item() - math.log(k)) < 1e-5 and abs(kl[3].item()) < 1e-6
    (grad,) = torch.autograd.grad(kl.sum(), [logits])
    assert torch.isfinite(grad).all() and grad[0, 1].item() == 0.0


# ---- both ops: empty, non-contiguous, more dims ---------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_non_contiguous_and_3d(backend):
    with gentk.use_backend(backend):
        e = torch.empty(0, 4, requires_grad=True)
        y = gentk.gumbel_softmax(e)
        assert y.shape == (0, 4)
        assert gentk.categorical_kl_uniform(e, reduction="none").shape == (0,)
        assert gentk.categorical_kl_uniform(e, reduction="sum").item() == 0.0
        assert math.isnan(gentk.categorical_kl_uniform(e).item())  # as torch's mean of nothing
        (y.sum() + gentk.categorical_kl_uniform(e, reduction="sum")).backward()

        logits = _logits((20, 33), torch.float32).t()  # non-contiguous (33, 20) view
        gumbels = _gumbels((20, 33), torch.float32).t()
        assert not logits.is_contiguous()
        for dim in (0, 1):
            torch.testing.assert_close(gentk.gumbel_softmax(logits, 0.5, dim=dim, gumbels=gumbels),
                                       ref.gumbel_softmax(logits, 0.5, dim=dim, gumbels=gumbels))
            torch.testing.assert_close(gentk.categorical_kl_uniform(logits, dim, "none"),
                                       ref.categorical_kl_uniform(logits, dim, "none"))
        x = _logits((3, 4, 5), torch.float64)
        for dim in (0, 1, 2, -2):
            torch.testing.assert_close(gentk.categorical_kl_uniform(x, dim, "none"),
                                       ref.categorical_kl_uniform(x, dim, "none"))
            torch.testing.assert_close(gentk.categorical_kl_uniform(x, dim), ref.categorical_kl_uniform(x, dim))
            g = _gumbels((3, 4, 5), torch.float64)
            torch.testing.assert_close(gentk.gumbel_softmax(x, 2.0, True, dim, gumbels=g),
                                       ref.gumbel_softmax(x, 2.0, True, dim, gumbels=g))


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_input_names_the_argument(backend):
    x = torch.randn(3, 4)
    with gentk.use_backend(backend):
        for tau in (0.0, -1.0, math.inf, math.nan):
            with pytest.raises(ValueError, match="tau must be finite and > 0"):
                gentk.gumbel_softmax(x, tau)
        with pytest.raises(TypeError, match="tau must be a real number"):
            gentk.gumbel_softmax(x, "1.0")
        with pytest.raises(TypeError, match="logits must be a floating-point"):
            gentk.gumbel_softmax(torch.ones(3, 4, dtype=torch.int64))
        with pytest.raises(ValueError, match="logits must have at least one dimension"):
            gentk.categorical_kl_uniform(torch.tensor(1.0))
        with pytest.raises(IndexError, match="dim 2 is out of range"):
            gentk.gumbel_softmax(x, dim=2)
        with pytest.raises(ValueError, match="no categories along dim -1"):
            gentk.categorical_kl_uniform(torch.empty(3, 0))
        with pytest.raises(ValueError, match="gumbels must have logits' shape"):
            gentk.gumbel_softmax(x, gumbels=torch.randn(4, 3))
        with pytest.raises(TypeError, match="gumbels is torch.float64"):
            gentk.gumbel_softmax(x, gumbels=x.double())
        with pytest.raises(ValueError, match="gumbels given with sample=False"):
            gentk.gumbel_softmax(x, gumbels=x, sample=False)
        with pytest.raises(ValueError, match="unknown reduction 'avg'"):
            gentk.categorical_kl_uniform(x, reduction="avg")
