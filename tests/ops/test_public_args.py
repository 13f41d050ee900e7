"""Bad arguments to every public function are refused the same way on every backend: the
same exception type and a one-line message naming the argument, checked once in
gentk.functional before any backend runs (never accepted by one and refused by another,
never ignored)."""
import math

import pytest
import torch

import gentk
from conftest import CPU_BACKENDS

x = torch.randn(4, 3)
img = torch.randn(2, 3, 4, 4)
w = torch.ones(3)
gen = torch.Generator()


def _critic(t):
    return t.flatten(1).sum(1)


# (call, exception type, the argument the message names)
BAD = [
    (lambda: gentk.reparameterize(x, "a"), TypeError, "logvar"),
    (lambda: gentk.reparameterize(x, x.double()), TypeError, "logvar"),
    (lambda: gentk.reparameterize(x, x[:2]), ValueError, "logvar"),
    (lambda: gentk.reparameterize(x, x, eps=x[:1]), ValueError, "eps"),
    (lambda: gentk.reparameterize(x, x, generator=5), TypeError, "generator"),
    (lambda: gentk.reparameterize(x, x, eps=x, generator="cpu"), TypeError, "generator"),
    (lambda: gentk.gaussian_kl(x, x, dim=1.5), TypeError, "dim"),
    (lambda: gentk.gaussian_kl(x, x, reduction="sum", dim="1"), TypeError, "dim"),
    (lambda: gentk.gaussian_kl(x, x, reduction="none", dim=None), TypeError, "dim"),
    (lambda: gentk.gaussian_kl(x, x, dim=2), IndexError, "dim"),
    (lambda: gentk.gaussian_kl(x, x, reduction="batch"), ValueError, "reduction"),
    (lambda: gentk.reparameterize_kl(x, x, dim=True), TypeError, "dim"),
    (lambda: gentk.reparameterize_kl(x, x, generator=1), TypeError, "generator"),
    (lambda: gentk.gumbel_softmax(x, 0.0), ValueError, "tau"),
    (lambda: gentk.gumbel_softmax(x, "1"), TypeError, "tau"),
    (lambda: gentk.gumbel_softmax(x, dim=1.0), TypeError, "dim"),
    (lambda: gentk.gumbel_softmax(x, dim=None), TypeError, "dim"),
    (lambda: gentk.gumbel_softmax(x, gumbels=x[:1]), ValueError, "gumbels"),
    (lambda: gentk.gumbel_softmax(x, generator=gen.manual_seed), TypeError, "generator"),
    (lambda: gentk.categorical_kl_uniform(x, dim="0"), TypeError, "dim"),
    (lambda: gentk.categorical_kl_uniform(x, reduction="avg"), ValueError, "reduction"),
    (lambda: gentk.instance_norm(img, w.double()), TypeError, "weight"),
    (lambda: gentk.instance_norm(img.double(), w), TypeError, "weight"),
    (lambda: gentk.instance_norm(img.half(), w, w.half()), TypeError, "bias"),
    (lambda: gentk.instance_norm(img, None, w.double()), TypeError, "bias"),
    (lambda: gentk.instance_norm(img, running_mean=torch.zeros(3, requires_grad=True), running_var=w),
     ValueError, "running_mean"),
    (lambda: gentk.instance_norm(img, running_mean=torch.zeros(3), running_var=w.clone().requires_grad_(),
                                 use_input_stats=False), ValueError, "running_var"),
    (lambda: gentk.instance_norm(img, running_mean=w), ValueError, "running_mean"),
    (lambda: gentk.instance_norm(img, momentum=1.5), ValueError, "momentum"),
    (lambda: gentk.instance_norm(img, eps="1e-5"), ValueError, "eps"),
    (lambda: gentk.instance_norm(img, activation="gelu"), ValueError, "activation"),
    (lambda: gentk.instance_norm(img, residual=img[:1]), ValueError, "residual"),
    (lambda: gentk.discriminator_loss(x, x, "bce", real_label="1"), TypeError, "real_label"),
    (lambda: gentk.discriminator_loss(x, x, "lsgan", real_label="1"), TypeError, "real_label"),
    (lambda: gentk.discriminator_loss(x, x, "wgan", fake_label="0"), TypeError, "fake_label"),
    (lambda: gentk.discriminator_loss(x, x, "lsgan", fake_label=None), TypeError, "fake_label"),
    (lambda: gentk.discriminator_loss(x, x, "bce", real_label=1.5), ValueError, "real_label"),
    (lambda: gentk.discriminator_loss(x, x, "bce", fake_label=math.nan), ValueError, "fake_label"),
    (lambda: gentk.discriminator_loss(x, x, "gan"), ValueError, "mode"),
    (lambda: gentk.discriminator_loss(x, x.double(), "bce"), TypeError, "fake_logits"),
    (lambda: gentk.generator_loss(x, "bce", "batchmean"), ValueError, "reduction"),
    (lambda: gentk.generator_loss(x.long(), "bce"), TypeError, "fake_logits"),
    (lambda: gentk.bernoulli_recon(x, torch.full_like(x, 2.0)), ValueError, "target"),
    (lambda: gentk.bernoulli_recon(x, x.sigmoid()[:2]), ValueError, "target"),
    (lambda: gentk.l1_loss(x, x, weight="2"), ValueError, "weight"),
    (lambda: gentk.l1_loss(x, x, reduction=None), ValueError, "reduction"),
    (lambda: gentk.gradient_penalty(5, x, x), TypeError, "critic"),
    (lambda: gentk.gradient_penalty(_critic, x, x, kind="gp"), ValueError, "kind"),
    (lambda: gentk.gradient_penalty(_critic, x, x, chunk_size=0), ValueError, "chunk_size"),
    (lambda: gentk.gradient_penalty(_critic, x, x, target=math.nan), ValueError, "target"),
    (lambda: gentk.gradient_penalty(_critic, x, x, generator=0), TypeError, "generator"),
    (lambda: gentk.gradient_penalty(_critic, x), ValueError, "fake"),
]


@pytest.mark.parametrize("index", range(len(BAD)))
def test_bad_argument_refused_alike_on_every_backend(index):
    call, exc, argument = BAD[index]
    for backend in CPU_BACKENDS:
        # gentk.fn (the public check) or gentk::fn (the cpp kernel counts bad BCE targets itself)
        with gentk.use_backend(backend), pytest.raises(exc, match=rf"^gentk(\.|::)\w+: .*\b{argument}\b") as info:
            call()
        assert type(info.value) is exc
        assert "\n" not in str(info.value)


def test_mixed_precision_norm_parameters_accepted_alike():
    """float32 weight and bias with float16 / bfloat16 x, and running statistics of any float
    dtype, as torch's norms take them."""
    for dtype in (torch.float16, torch.bfloat16):
        xs = img.to(dtype)
        results = []
        for backend in ("torch", "cpp"):
            rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
            with gentk.use_backend(backend):
                results.append((gentk.instance_norm(xs, w, w, rm, rv).float(), rm, rv))
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)
