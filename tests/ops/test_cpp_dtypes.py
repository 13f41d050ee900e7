"""float16 and bfloat16 on the cpp backend: every op the README says takes them runs with
float32 math and returns the input dtype, forward and backward, matching the reference
computed in float32 and cast to the dtype."""
import pytest
import torch

import gentk

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")
DTYPES = [torch.float16, torch.bfloat16]


def _critic(x):
    w = torch.linspace(-1, 1, x[0].numel(), dtype=x.dtype)
    return (x.reshape(x.shape[0], -1) ** 2 * w).sum(1)


# name: (function of the inputs, input shapes); targets in [0, 1] are made with sigmoid
CASES = {
    "reparameterize": (lambda t: (gentk.reparameterize(t["mu"], t["logvar"], eps=t["eps"]),),
                       dict(mu=(4, 6), logvar=(4, 6), eps=(4, 6))),
    "gaussian_kl": (lambda t: (gentk.gaussian_kl(t["mu"], t["logvar"]),), dict(mu=(4, 6), logvar=(4, 6))),
    "reparameterize_kl": (lambda t: gentk.reparameterize_kl(t["mu"], t["logvar"], eps=t["eps"], reduction="none"),
                          dict(mu=(4, 6), logvar=(4, 6), eps=(4, 6))),
    "gumbel_softmax": (lambda t: (gentk.gumbel_softmax(t["logits"], 0.7, gumbels=t["g"]),),
                       dict(logits=(5, 7), g=(5, 7))),
    "gumbel_softmax_hard": (lambda t: (gentk.gumbel_softmax(t["logits"], 0.7, hard=True, gumbels=t["g"]),),
                            dict(logits=(5, 7), g=(5, 7))),
    "gumbel_softmax_eval": (lambda t: (gentk.gumbel_softmax(t["logits"], 0.7, sample=False),), dict(logits=(5, 7))),
    "categorical_kl_uniform": (lambda t: (gentk.categorical_kl_uniform(t["logits"]),), dict(logits=(5, 7))),
    "categorical_kl_uniform_none": (lambda t: (gentk.categorical_kl_uniform(t["logits"], reduction="none"),),
                                    dict(logits=(5, 7))),
    "instance_norm": (lambda t: (gentk.instance_norm(t["x"], activation="relu"),), dict(x=(2, 3, 4, 5))),
    "bernoulli_recon": (lambda t: (gentk.bernoulli_recon(t["logits"], torch.sigmoid(t["target"])),),
                        dict(logits=(4, 6), target=(4, 6))),
    "bernoulli_recon_none": (lambda t: (gentk.bernoulli_recon(t["logits"], torch.sigmoid(t["target"]), "none"),),
                             dict(logits=(4, 6), target=(4, 6))),
    "l1_loss": (lambda t: (gentk.l1_loss(t["input"], t["target"], weight=3.0),), dict(input=(4, 6), target=(4, 6))),
    "l1_loss_none": (lambda t: (gentk.l1_loss(t["input"], t["target"], "none"),), dict(input=(4, 6), target=(4, 6))),
    "gradient_penalty_r1": (lambda t: (gentk.gradient_penalty(_critic, t["real"], kind="r1"),), dict(real=(4, 6))),
}
for _mode in ("bce", "lsgan", "wgan", "hinge"):
    for _red in ("mean", "none"):
        CASES[f"discriminator_loss_{_mode}_{_red}"] = (
            lambda t, m=_mode, r=_red: (gentk.discriminator_loss(t["real"], t["fake"], m, reduction=r),),
            dict(real=(4, 6), fake=(4, 6)))
        CASES[f"generator_loss_{_mode}_{_red}"] = (
            lambda t, m=_mode, r=_red: (gentk.generator_loss(t["fake"], m, reduction=r),), dict(fake=(4, 6)))


def _run(backend, fn, inputs, upstream_dtype):
    inputs = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    with gentk.use_backend(backend):
        outs = fn(inputs)
        g = torch.Generator().manual_seed(1)
        # the same upstream values for both runs: drawn in the low-precision dtype
        upstream = [torch.randn(o.shape, generator=g).to(upstream_dtype).to(o.dtype) for o in outs]
        grads = torch.autograd.grad(outs, list(inputs.values()), upstream)
    return [o.detach() for o in outs], list(grads)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(CASES))
def test_low_precision_matches_float32_reference(case, dtype):
    fn, shapes = CASES[case]
    g = torch.Generator().manual_seed(0)
    inputs = {name: torch.randn(shape, generator=g).to(dtype) for name, shape in shapes.items()}
    got_out, got_grad = _run("cpp", fn, inputs, dtype)
    want_out, want_grad = _run("torch", fn, {k: v.float() for k, v in inputs.items()}, dtype)
    for got, want in ((got_out, want_out), (got_grad, want_grad)):
        for a, b in zip(got, want):
            assert a.dtype == dtype
            torch.testing.assert_close(a, b.to(dtype), rtol=2e-2 if dtype == torch.bfloat16 else 2e-3, atol=2e-3)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_low_precision_wgan_gp_matches_float32(dtype):
    """WGAN-GP draws its interpolation weights in the kernel: compared with the cpp float32
    run from the same generator seed."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 6, generator=g).to(dtype), torch.randn(4, 6, generator=g).to(dtype)
    with gentk.use_backend("cpp"):
        got = gentk.gradient_penalty(_critic, real, fake, generator=torch.Generator().manual_seed(3))
        want = gentk.gradient_penalty(_critic, real.float(), fake.float(), generator=torch.Generator().manual_seed(3))
    assert got.dtype == dtype
    torch.testing.assert_close(got, want.to(dtype), rtol=2e-2, atol=2e-3)
