"""What the cpp backend hands back behaves as torch's would: every op over every empty
extent gives the reference's answer (gentk.use_backend("torch")), outputs and gradients,
running statistics included; and large outputs (from the instance-norm buffer cache) are
ordinary tensors that can be resized and written with out=."""
import pytest
import torch

import gentk

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")


def _norm(t):
    rm, rv = torch.zeros(t["x"].shape[1], dtype=t["x"].dtype), torch.ones(t["x"].shape[1], dtype=t["x"].dtype)
    y = gentk.instance_norm(t["x"], running_mean=rm, running_var=rv, activation="relu")
    return y, rm, rv


def _norm_affine_eval(t):
    c = t["x"].shape[1]
    w, b = torch.linspace(0.5, 1.5, c, dtype=t["x"].dtype), torch.linspace(-1, 1, c, dtype=t["x"].dtype)
    return (gentk.instance_norm(t["x"], w, b, torch.zeros(c, dtype=w.dtype), torch.ones(c, dtype=w.dtype),
                                use_input_stats=False),)


# name: (function of the inputs, shapes of the inputs with a free extent; each is emptied in turn)
CASES = {
    "reparameterize": (lambda t: (gentk.reparameterize(t["mu"], t["logvar"], eps=t["eps"]),),
                       dict(mu=(3, 4), logvar=(3, 4), eps=(3, 4))),
    "reparameterize_kl": (lambda t: gentk.reparameterize_kl(t["mu"], t["logvar"], eps=t["eps"]),
                          dict(mu=(3, 4), logvar=(3, 4), eps=(3, 4))),
    "gumbel_softmax": (lambda t: (gentk.gumbel_softmax(t["logits"], 0.5, gumbels=t["g"]),),
                       dict(logits=(3, 4), g=(3, 4))),
    "gumbel_softmax_hard": (lambda t: (gentk.gumbel_softmax(t["logits"], 0.5, hard=True, gumbels=t["g"]),),
                            dict(logits=(3, 4), g=(3, 4))),
    "instance_norm_train": (_norm, dict(x=(2, 3, 4, 5))),
    "instance_norm_channels_last": (lambda t: _norm({"x": t["x"].contiguous(memory_format=torch.channels_last)}),
                                    dict(x=(2, 3, 4, 5))),
    "instance_norm_eval": (_norm_affine_eval, dict(x=(2, 3, 4, 5))),
    "bernoulli_recon": (lambda t: (gentk.bernoulli_recon(t["logits"], torch.sigmoid(t["target"])),),
                        dict(logits=(3, 4), target=(3, 4))),
    "l1_loss": (lambda t: (gentk.l1_loss(t["input"], t["target"]),), dict(input=(3, 4), target=(3, 4))),
    "gradient_penalty_r1": (lambda t: (gentk.gradient_penalty(lambda x: (x ** 2).sum(1), t["real"], kind="r1"),),
                            dict(real=(3, 4))),
}
for _red in ("none", "sum", "mean", "batchmean"):
    CASES[f"gaussian_kl_{_red}"] = (lambda t, r=_red: (gentk.gaussian_kl(t["mu"], t["logvar"], reduction=r),),
                                    dict(mu=(3, 4), logvar=(3, 4)))
    CASES[f"categorical_kl_{_red}"] = (lambda t, r=_red: (gentk.categorical_kl_uniform(t["logits"], dim=0,
                                                                                       reduction=r),),
                                       dict(logits=(3, 4)))
for _mode in ("bce", "lsgan", "wgan", "hinge"):
    for _red in ("none", "sum", "mean"):
        CASES[f"discriminator_loss_{_mode}_{_red}"] = (
            lambda t, m=_mode, r=_red: (gentk.discriminator_loss(t["real"], t["fake"], m, reduction=r),),
            dict(real=(3, 4), fake=(3, 4)))
        CASES[f"generator_loss_{_mode}_{_red}"] = (
            lambda t, m=_mode, r=_red: (gentk.generator_loss(t["fake"], m, reduction=r),), dict(fake=(3, 4)))
for _red in ("batchsum", "none", "sum", "mean"):
    CASES[f"bernoulli_recon_{_red}"] = (
        lambda t, r=_red: (gentk.bernoulli_recon(t["logits"], torch.sigmoid(t["target"]), reduction=r),),
        dict(logits=(3, 4), target=(3, 4)))
# categorical_kl_uniform and gumbel_softmax refuse an empty category dimension (dim 0 above
# and the last dimension below), and torch's own F.instance_norm fails on no channels in eval
# mode (IndexError): those extents are not emptied.
NO_EMPTY = {"categorical_kl": 0, "gumbel_softmax": -1, "instance_norm_eval": 1}


def _run(backend, fn, inputs):
    inputs = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    with gentk.use_backend(backend):
        outs = fn(inputs)
        diff = [o for o in outs if o.requires_grad]
        g = torch.Generator().manual_seed(1)
        upstream = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in diff]
        grads = torch.autograd.grad(diff, list(inputs.values()), upstream, allow_unused=True)
    return [o.detach() for o in outs] + [torch.zeros(()) if x is None else x for x in grads]


def _emptied():
    for case, (_, shapes) in CASES.items():
        rank = len(next(iter(shapes.values())))
        for d in range(rank):
            keep = next((v for k, v in NO_EMPTY.items() if case.startswith(k)), None)
            if keep is not None and d == keep % rank:
                continue
            yield pytest.param(case, d, id=f"{case}-dim{d}")


@pytest.mark.parametrize("case,dim", list(_emptied()))
def test_empty_extent_gives_the_reference_answer(case, dim):
    fn, shapes = CASES[case]
    g = torch.Generator().manual_seed(0)
    inputs = {}
    for name, shape in shapes.items():
        shape = list(shape)
        shape[dim] = 0
        inputs[name] = torch.randn(shape, generator=g)
    want = _run("torch", fn, inputs)
    got = _run("cpp", fn, inputs)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("channels_last", [False, True])
def test_large_instance_norm_outputs_resize_like_any_tensor(channels_last):
    """Outputs of 1 MiB and more come from csrc's buffer cache; resize_ and out= must work."""
    x = torch.randn(4, 64, 32, 32, requires_grad=True)  # 1 MiB of float32
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    with gentk.use_backend("cpp"):
        y = gentk.instance_norm(x, activation="relu")
        (grad_x,) = torch.autograd.grad(y, x, torch.ones_like(y))
    a = torch.randn(4, 64, 32, 32)
    out = y.detach().resize_(0)
    torch.cat([a, a], out=out)
    assert out.shape == (8, 64, 32, 32) and torch.equal(out[4:], a)
    grad_x.resize_(3 * grad_x.numel()).fill_(2.0)
    assert grad_x.shape == (3 * 4 * 64 * 32 * 32,) and bool((grad_x == 2.0).all())
