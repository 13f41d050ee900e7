"""The loss family (discriminator_loss, generator_loss, bernoulli_recon, l1_loss,
gradient_penalty) on every CPU backend against the float64 pure-PyTorch reference:
values and gradients for every mode, reduction, label setting, shape and dtype; bad input."""
import pytest
import torch

import gentk
import gentk.nn
from conftest import CPU_BACKENDS
from gentk.ops._checks import seed_for
from gentk.ops.losses import reference as ref

SHAPES = [(1, 1), (64, 1), (16, 1, 30, 30), (256, 784)]
DTYPES = [torch.float32, torch.float64]
MODES = ["bce", "lsgan", "wgan", "hinge"]
REDUCTIONS = ["mean", "sum", "none"]
LABELS = [(1.0, 0.0), (0.9, 0.1)]
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _id(shape):
    return "x".join(map(str, shape))


def _logits(shape, seed, dtype=torch.float64, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(shape, generator=g, dtype=dtype)


def _close(actual, expected, dtype):
    tol = TOL[dtype]
    scale = max(expected.abs().max().item(), 1.0) if expected.numel() else 1.0
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol["rtol"], atol=tol["atol"] * scale)


def _check_against_reference(fn, ref_fn, inputs64, dtype, grad_inputs):
    """fn on dtype leaves vs ref_fn on float64 leaves: value and gradients of every leaf in grad_inputs."""
    leaves = [t.to(dtype).requires_grad_(i in grad_inputs) for i, t in enumerate(inputs64)]
    ref_leaves = [t.clone().requires_grad_(i in grad_inputs) for i, t in enumerate(inputs64)]
    out = fn(*leaves)
    want = ref_fn(*ref_leaves)
    assert out.dtype == dtype and out.shape == want.shape
    _close(out, want, dtype)
    g = torch.Generator().manual_seed(7)
    cot = torch.randn(want.shape, generator=g, dtype=torch.float64)
    got_grads = torch.autograd.grad(out, [leaves[i] for i in grad_inputs], cot.to(dtype))
    want_grads = torch.autograd.grad(want, [ref_leaves[i] for i in grad_inputs], cot)
    for a, b in zip(got_grads, want_grads):
        assert a.dtype == dtype
        _close(a, b, dtype)


def _cases():
    for b in CPU_BACKENDS:
        for shape in SHAPES:
            for dtype in DTYPES:
                if b == "triton" and shape == (256, 784) and dtype == torch.float64:
                    continue  # the interpreter is slow; one large float32 case is enough
                yield pytest.param(b, shape, dtype, id=f"{b}-{_id(shape)}-{str(dtype)[6:]}")


@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("labels", LABELS, ids=["hard", "smooth"])
def test_discriminator_loss_matches_reference(backend, shape, dtype, mode, reduction, labels):
    if mode in ("wgan", "hinge") and labels != LABELS[0]:
        pytest.skip("labels do not apply to wgan / hinge")
    real_label, fake_label = labels
    inputs = (_logits(shape, 0), _logits(shape, 1))

    def fn(r, f):
        with gentk.use_backend(backend):
            return gentk.discriminator_loss(r, f, mode, real_label=real_label, fake_label=fake_label,
                                            reduction=reduction)

    def ref_fn(r, f):
        return ref.discriminator_loss(r, f, mode, real_label, fake_label, reduction)

    _check_against_reference(fn, ref_fn, inputs, dtype, (0, 1))


@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
@pytest.mark.parametrize("mode", MODES + ["nonsaturating"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_generator_loss_matches_reference(backend, shape, dtype, mode, reduction):
    def fn(f):
        with gentk.use_backend(backend):
            return gentk.generator_loss(f, mode, reduction)

    _check_against_reference(fn, lambda f: ref.generator_loss(f, mode, reduction), (_logits(shape, 2),), dtype, (0,))


def test_generator_bce_is_non_saturating():
    """The generator's bce is -log D(G(z)) (BCE against 1), not the saturating log(1 - D(G(z)))."""
    fake = torch.tensor([[-8.0], [0.0], [8.0]], dtype=torch.float64)
    want = torch.nn.functional.softplus(-fake).mean()
    for mode in ("bce", "nonsaturating"):
        torch.testing.assert_close(gentk.generator_loss(fake, mode), want)


def test_patchgan_batches_may_differ():
    real, fake = _logits((8, 1, 30, 30), 0), _logits((5, 1, 30, 30), 1)
    got = gentk.discriminator_loss(real, fake, "lsgan")
    torch.testing.assert_close(got, ref.discriminator_loss(real, fake, "lsgan"))


@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
@pytest.mark.parametrize("reduction", ["batchsum"] + REDUCTIONS)
def test_bernoulli_recon_matches_reference(backend, shape, dtype, reduction):
    g = torch.Generator().manual_seed(3)
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    target[..., ::3] = (target[..., ::3] > 0.5).double()  # hard 0 / 1 pixels too

    def fn(x, t):
        with gentk.use_backend(backend):
            return gentk.bernoulli_recon(x, t, reduction)

    _check_against_reference(fn, lambda x, t: ref.bernoulli_recon(x, t, reduction), (_logits(shape, 4), target),
                             dtype, (0, 1))


@pytest.mark.parametrize("backend,shape,dtype", list(_cases()))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [1.0, 100.0])
def test_l1_loss_matches_reference(backend, shape, dtype, reduction, weight):
    def fn(x, t):
        with gentk.use_backend(backend):
            return gentk.l1_loss(x, t, reduction, weight)

    _check_against_reference(fn, lambda x, t: ref.l1_loss(x, t, reduction, weight),
                             (_logits(shape, 5), _logits(shape, 6)), dtype, (0, 1))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_extreme_logits_stay_finite(backend):
    x = torch.tensor([[-1e4], [-80.0], [0.0], [80.0], [1e4]], requires_grad=True)
    t = torch.tensor([[0.0], [1.0], [0.5], [0.0], [1.0]])
    with gentk.use_backend(backend):
        loss = gentk.bernoulli_recon(x, t, "sum")
        d = gentk.discriminator_loss(x, x, "bce")
    loss.backward()
    want = ref.bernoulli_recon(x.detach().double(), t.double(), "sum")
    torch.testing.assert_close(loss.double(), want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad, torch.sigmoid(x.detach()) - t)
    assert torch.isfinite(d)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_and_non_contiguous(backend):
    with gentk.use_backend(backend):
        e = torch.empty(0, 1, requires_grad=True)
        assert torch.isnan(gentk.discriminator_loss(e, e, "bce"))
        assert gentk.discriminator_loss(e, e, "hinge", reduction="sum").item() == 0
        assert gentk.l1_loss(e, e.detach(), "none").shape == (0, 1)
        x = _logits((6, 40), 0).t()  # non-contiguous
        t = torch.rand(40, 6, dtype=torch.float64)
        torch.testing.assert_close(gentk.bernoulli_recon(x, t), ref.bernoulli_recon(x, t))
        f = _logits((40, 12), 1)[:, ::2]
        assert not x.is_contiguous() and not f.is_contiguous()
        torch.testing.assert_close(gentk.discriminator_loss(x, f, "bce", reduction="none"),
                                   ref.discriminator_loss(x, f, "bce", reduction="none"))
        torch.testing.assert_close(gentk.l1_loss(x, t, weight=3.0), ref.l1_loss(x, t, weight=3.0))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_repeated_backward_accumulates_exactly(backend):
    """The CPU autograd hands back the gradient it wrote in forward when the upstream
    gradient is 1: a second backward through the same graph must still add the same amount."""
    r, f = _logits((6, 1, 4, 4), 0).requires_grad_(), _logits((6, 1, 4, 4), 1).requires_grad_()
    x, t = _logits((6, 20), 2).requires_grad_(), torch.rand(6, 20, dtype=torch.float64)
    with gentk.use_backend(backend):
        loss = gentk.discriminator_loss(r, f, "bce") + gentk.generator_loss(f, "bce") + gentk.bernoulli_recon(x, t)
    loss.backward(retain_graph=True)
    first = [v.grad.clone() for v in (r, f, x)]
    loss.backward()
    for v, g in zip((r, f, x), first):
        torch.testing.assert_close(v.grad, 2 * g)
    with torch.no_grad():  # no gradient wanted: the plain forward
        assert gentk.discriminator_loss(r, f, "bce").grad_fn is None


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bce_extreme_logits(backend):
    """The CPU kernel's float exp / log1p / reciprocal approximations over the whole range:
    0, tiny, around exp's underflow (-87.3, -104) and overflow, and huge logits, per element
    and summed, values and gradients against float64."""
    edge = [0.0, 1e-30, 1e-7, 0.5, 1.0, 2.0, 10.0, 17.0, 30.0, 87.0, 88.5, 89.0, 103.0, 105.0, 1e4, 3e38]
    x64 = torch.tensor(edge + [-v for v in edge] + torch.linspace(-40, 40, 1001).tolist(), dtype=torch.float64)
    t64 = torch.rand(x64.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t64[:8] = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.25], dtype=torch.float64)
    for dtype in DTYPES:
        x = x64.to(dtype).requires_grad_()
        t = t64.to(dtype)
        want_x = x64.clone().requires_grad_()
        with gentk.use_backend(backend):
            got = gentk.bernoulli_recon(x, t, "none")
        want = ref.bernoulli_recon(want_x, t64, "none")
        assert torch.isfinite(got).all()
        # a few ulp of the result, plus the rounding a float formula has in (1 - t) * x (every
        # backend computes torch's (1 - t) * x - log_sigmoid(x), which cancels in x)
        eps = torch.finfo(dtype).eps
        ulps = 8 if dtype == torch.float32 else 64  # double: at::vec's 20-ulp exp
        bound = ulps * eps * (want.detach().abs() + x64.abs() + 1e-30)
        assert ((got.double() - want).abs() <= bound).all(), (got.double() - want).abs().div(bound).max()
        (gx,) = torch.autograd.grad(got.sum(), x)
        (wx,) = torch.autograd.grad(want.sum(), want_x)
        assert ((gx.double() - wx).abs() <= ulps * eps * (wx.abs() + t64) + 1e-45).all()
        with gentk.use_backend(backend):
            total = gentk.bernoulli_recon(x.detach(), t, "sum")
        torch.testing.assert_close(total.double(), want.sum(), rtol=2e-6 if dtype == torch.float32 else 1e-12, atol=0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bernoulli_target_check_finds_every_position(backend):
    """A target outside [0, 1] is caught wherever it lies: first element, a vector's tail
    lane, another thread's block, the last element; NaN targets are not counted as outside
    (as torch's comparisons do not)."""
    n = 3 * 32768 + 21
    if backend == "triton":
        n = 1000  # the interpreter is slow
    x = torch.randn(n)
    for pos in sorted({0, 17, n // 2, 2 * 32768 + 5, n - 1} & set(range(n))):
        for bad in (-1e-7, 1.0000001, float("inf"), float("-inf")):
            t = torch.rand(n)
            t[pos] = bad
            with gentk.use_backend(backend), pytest.raises(ValueError, match="target must lie in"):
                gentk.bernoulli_recon(x.view(1, n), t.view(1, n))
    t = torch.rand(n)
    t[5] = float("nan")
    with gentk.use_backend(backend):
        assert torch.isnan(gentk.bernoulli_recon(x.view(1, n), t.view(1, n)))


# ---- gradient penalty --------------------------------------------------------------------

def _conv_critic(dtype=torch.float64):
    torch.manual_seed(0)
    body = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, 2, 1), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(4, 4, 3, 2, 1), torch.nn.Softplus(),
        torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 1),
    ).to(dtype)
    return body


def _alpha(real, generator_seed, backend="cpp"):
    """The per-sample alphas gentk draws when its generator is seeded with generator_seed
    (the torch backend draws them with torch.rand, the kernels with Philox)."""
    g = torch.Generator().manual_seed(generator_seed)
    if backend == "torch":
        return torch.rand(real.shape[0], dtype=real.dtype, generator=g)
    seed = seed_for(real, g)
    ones = torch.ones(real.shape[0], 1, dtype=real.dtype)
    return torch.ops.gentk.gp_interpolate(ones, torch.zeros_like(ones), seed).reshape(-1)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
@pytest.mark.parametrize("target", [1.0, 0.5])
def test_gradient_penalty_matches_autograd_grad(backend, kind, target):
    """Same value and same critic-parameter gradients as a plain torch.autograd.grad
    implementation on a small conv critic, in float64 (same alphas)."""
    if kind == "r1" and target != 1.0:
        pytest.skip("r1 has no target")
    critic = _conv_critic()
    real, fake = _logits((5, 3, 10, 10), 0), _logits((5, 3, 10, 10), 1)
    params = list(critic.parameters())
    g = torch.Generator().manual_seed(11)
    with gentk.use_backend(backend):
        got = gentk.gradient_penalty(critic, real, fake, kind=kind, target=target, generator=g)
    # the last bias does not change d critic / dx: no gradient for it either way
    got_grads = torch.autograd.grad(got, params, allow_unused=True)
    want = ref.gradient_penalty(critic, real, fake, kind, target, alpha=_alpha(real, 11, backend))
    want_grads = torch.autograd.grad(want, params, allow_unused=True)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert sum(a is not None for a in got_grads) == len(params) - 1
    for a, b in zip(got_grads, want_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
@pytest.mark.parametrize("chunk_size", [1, 2, 5, 8])
def test_chunked_gradient_penalty_matches_autograd_grad(backend, kind, chunk_size):
    """chunk_size (chunks of 1, uneven 2+2+1, the whole batch, larger than it): the same value
    and, through a backward that also carries another critic term, the same .grad as the
    plain torch.autograd.grad implementation, in float64 (same alphas)."""
    critic = _conv_critic()
    real, fake = _logits((5, 3, 10, 10), 0), _logits((5, 3, 10, 10), 1)

    def grads_of(penalty):
        critic.zero_grad(set_to_none=True)
        (critic(real).mean() + 10 * penalty).backward()
        return [p.grad for p in critic.parameters()]

    with gentk.use_backend(backend):
        got = gentk.gradient_penalty(critic, real, fake, kind=kind, generator=torch.Generator().manual_seed(11),
                                     chunk_size=chunk_size)
        got_grads = grads_of(got)
    want = ref.gradient_penalty(critic, real, fake, kind, alpha=_alpha(real, 11, backend))
    torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)
    for a, b in zip(got_grads, grads_of(want)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_chunked_gradient_penalty_keeps_no_graph_alive():
    """The plain penalty keeps every tensor its double backward needs until backward; the
    chunked one has already spent them when it returns (that is the memory it saves). The
    critic's weights, saved too, live on as parameters and do not count."""
    import weakref

    critic = _conv_critic(torch.float32)
    weights = {p.data_ptr() for p in critic.parameters()}
    real, fake = _logits((6, 3, 10, 10), 0, torch.float32), _logits((6, 3, 10, 10), 1, torch.float32)

    def saved_alive(chunk_size):
        saved = []

        def pack(t):
            saved.append(weakref.ref(t))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            penalty = gentk.gradient_penalty(critic, real, fake, chunk_size=chunk_size)
        alive = sum(r() is not None and r().data_ptr() not in weights for r in saved)
        penalty.backward()
        return alive, len(saved)

    plain_alive, plain_saved = saved_alive(None)
    chunked_alive, chunked_saved = saved_alive(2)
    assert plain_alive > 0 and chunked_saved > plain_saved
    assert chunked_alive == 0


def test_chunked_gradient_penalty_checks_its_arguments():
    critic = _conv_critic(torch.float32)
    img = torch.randn(4, 3, 10, 10)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size must be a positive int or None"):
            gentk.gradient_penalty(critic, img, img, chunk_size=bad)
    with pytest.raises(ValueError, match="chunk_size needs real and fake that do not require grad"):
        gentk.gradient_penalty(critic, img, img.clone().requires_grad_(), chunk_size=2)
    with pytest.raises(ValueError, match=r"critic must return one value per sample.*\(2,\) or \(2, 1\)"):
        gentk.gradient_penalty(lambda v: critic(v).sum(), img, img, chunk_size=2)


def test_gradient_penalty_alphas_are_uniform_and_reproducible():
    real = torch.zeros(20000, 1)
    a = _alpha(real, 1)
    assert torch.equal(a, _alpha(real, 1)) and not torch.equal(a, _alpha(real, 2))
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean().item() - 0.5) < 0.01 and abs(a.var().item() - 1 / 12) < 0.005


def test_gradient_penalty_reaches_real_and_fake_when_they_need_grad():
    critic = _conv_critic()
    real = _logits((3, 3, 10, 10), 0).requires_grad_()
    fake = _logits((3, 3, 10, 10), 1).requires_grad_()
    got = gentk.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    gr, gf = torch.autograd.grad(got, [real, fake])
    r2, f2 = real.detach().clone().requires_grad_(), fake.detach().clone().requires_grad_()
    want = ref.gradient_penalty(critic, r2, f2, alpha=_alpha(real, 5))
    wr, wf = torch.autograd.grad(want, [r2, f2])
    torch.testing.assert_close(gr, wr)
    torch.testing.assert_close(gf, wf)


def test_gradient_penalty_trains_the_critic():
    critic = _conv_critic(torch.float32)
    opt = torch.optim.Adam(critic.parameters(), lr=0.03)
    real, fake = _logits((8, 3, 10, 10), 0, torch.float32), _logits((8, 3, 10, 10), 1, torch.float32)
    first = None
    for step in range(30):
        opt.zero_grad()
        loss = gentk.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(step))
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


# ---- modules ------------------------------------------------------------------------------

def test_modules_call_the_functions():
    r, f = _logits((4, 1, 6, 6), 0), _logits((4, 1, 6, 6), 1)
    t = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(gentk.nn.DiscriminatorLoss("hinge")(r, f), ref.discriminator_loss(r, f, "hinge"))
    torch.testing.assert_close(gentk.nn.GeneratorLoss()(f), ref.generator_loss(f, "bce"))
    torch.testing.assert_close(gentk.nn.BernoulliRecon()(r, t), ref.bernoulli_recon(r, t))
    torch.testing.assert_close(gentk.nn.L1Loss(10.0)(r, f), ref.l1_loss(r, f, weight=10.0))
    critic = _conv_critic()
    real = _logits((2, 3, 10, 10), 0)
    torch.testing.assert_close(gentk.nn.GradientPenalty("r1")(critic, real),
                               ref.gradient_penalty(critic, real, kind="r1"))
    assert "hinge" in repr(gentk.nn.DiscriminatorLoss("hinge"))


# ---- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_input_names_the_argument(backend):
    x = torch.randn(4, 1)
    with gentk.use_backend(backend):
        with pytest.raises(ValueError, match="unknown mode 'vanilla'"):
            gentk.discriminator_loss(x, x, "vanilla")
        with pytest.raises(ValueError, match="unknown mode 'minimax'"):
            gentk.generator_loss(x, "minimax")
        with pytest.raises(ValueError, match="nonsaturating"):
            gentk.discriminator_loss(x, x, "nonsaturating")  # a generator-only form
        with pytest.raises(ValueError, match="unknown reduction 'avg'"):
            gentk.discriminator_loss(x, x, "bce", reduction="avg")
        with pytest.raises(ValueError, match=r"real_logits \(4, 1\) and fake_logits \(4, 2\) cannot pair"):
            gentk.discriminator_loss(x, torch.randn(4, 2), "bce")
        with pytest.raises(ValueError, match="cannot pair.*reduction 'none'"):
            gentk.discriminator_loss(x, torch.randn(3, 1), "bce", reduction="none")
        with pytest.raises(ValueError, match="real_label must lie in"):
            gentk.discriminator_loss(x, x, "bce", real_label=1.2)
        with pytest.raises(ValueError, match="fake_label must lie in"):
            gentk.discriminator_loss(x, x, "bce", fake_label=-0.1)
        with pytest.raises(TypeError, match="fake_logits is torch.float64"):
            gentk.discriminator_loss(x, x.double(), "bce")
        with pytest.raises(TypeError, match="real_logits must be a floating-point"):
            gentk.discriminator_loss(x.long(), x, "bce")
        with pytest.raises(ValueError, match="target must lie in"):
            gentk.bernoulli_recon(x, torch.full((4, 1), 1.5))
        with pytest.raises(ValueError, match="target must have logits's shape"):
            gentk.bernoulli_recon(x, torch.rand(4, 2))
        with pytest.raises(ValueError, match="unknown reduction 'batchmean'"):
            gentk.bernoulli_recon(x, torch.rand(4, 1), "batchmean")
        with pytest.raises(ValueError, match="weight must be a number"):
            gentk.l1_loss(x, x, weight=float("nan"))
        critic = _conv_critic(torch.float32)
        img = torch.randn(2, 3, 10, 10)
        with pytest.raises(ValueError, match=r"critic must return one value per sample.*got \(2, 2\)"):
            gentk.gradient_penalty(lambda v: torch.cat([critic(v), critic(v)], 1), img, img)
        with pytest.raises(ValueError, match="critic must return one value per sample"):
            gentk.gradient_penalty(lambda v: critic(v).sum(), img, img)
        with pytest.raises(ValueError, match="unknown kind 'gp'"):
            gentk.gradient_penalty(critic, img, img, kind="gp")
        with pytest.raises(ValueError, match="fake must have real's shape"):
            gentk.gradient_penalty(critic, img, img[:1])
        with pytest.raises(ValueError, match="needs fake samples"):
            gentk.gradient_penalty(critic, img)


def test_compiled_ops_check_their_arguments():
    """Direct torch.ops.gentk callers get the same checks from C++."""
    ops = torch.ops.gentk
    x = torch.randn(4, 1)
    with pytest.raises(RuntimeError, match="unknown mode 'x'"):
        ops.discriminator_loss(x, x, "x", 1.0, 0.0, "mean")
    with pytest.raises(RuntimeError, match="cannot pair"):
        ops.discriminator_loss(x, torch.randn(4, 3), "bce", 1.0, 0.0, "mean")
    with pytest.raises(RuntimeError, match="real_label must lie in"):
        ops.discriminator_loss(x, x, "bce", 2.0, 0.0, "mean")
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\].*1 element"):
        ops.bernoulli_recon(x, torch.tensor([[0.0], [1.0], [0.5], [-0.01]]), "batchsum")
    with pytest.raises(RuntimeError, match="seed must be an int64"):
        ops.gp_interpolate(x, x, torch.tensor([1.0, 2.0]))
