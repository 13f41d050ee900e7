"""Hostile input on the triton backend (interpreter on CPU): planted NaN / +inf / -inf,
rows of all -inf and empty extents give the reference's outputs and gradients, every tensor
argument may have any strides, and every registered triton op checks the size, dtype and
device of every tensor it reads."""
import math
import os

import pytest
import torch

import gentk

pytest.importorskip("triton")
pytestmark = [
    pytest.mark.cuda,  # on a GPU these run there (benchmarks/gpu.sh: pytest -m cuda)
    pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                       reason="Triton needs a GPU or TRITON_INTERPRET=1"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),  # numpy under the interpreter
]

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NAN, INF = math.nan, math.inf


def _critic(x):
    return (x.flatten(1) ** 3).sum(1)


# name -> (function of the tensors, their shapes); values are planted in each tensor in turn
CASES = {
    "reparameterize": (lambda mu, lv, e: gentk.reparameterize(mu, lv, eps=e), [(3, 4)] * 3),
    "gaussian_kl_none": (lambda mu, lv: gentk.gaussian_kl(mu, lv, reduction="none"), [(3, 4)] * 2),
    "gaussian_kl_batchmean": (lambda mu, lv: gentk.gaussian_kl(mu, lv), [(3, 4)] * 2),
    "reparameterize_kl": (lambda mu, lv, e: gentk.reparameterize_kl(mu, lv, eps=e, reduction="sum"), [(3, 4)] * 3),
    "gumbel_soft": (lambda l, g: gentk.gumbel_softmax(l, 0.5, gumbels=g), [(3, 5)] * 2),
    "gumbel_hard": (lambda l, g: gentk.gumbel_softmax(l, 0.5, hard=True, gumbels=g), [(3, 5)] * 2),
    "gumbel_hard_no_noise": (lambda l: gentk.gumbel_softmax(l, 2.0, hard=True, sample=False), [(3, 5)]),
    "gumbel_dim0": (lambda l: gentk.gumbel_softmax(l, 1.0, dim=0, sample=False), [(5, 3)]),
    "categorical_kl_none": (lambda l: gentk.categorical_kl_uniform(l, reduction="none"), [(3, 5)]),
    "categorical_kl_batchmean": (lambda l: gentk.categorical_kl_uniform(l), [(3, 5)]),
    "instance_norm": (lambda x, w, b: gentk.instance_norm(x, w, b), [(2, 3, 3, 4), (3,), (3,)]),
    "instance_norm_relu_residual": (lambda x, r: gentk.instance_norm(x, activation="relu", residual=r),
                                    [(2, 3, 3, 4)] * 2),
    "instance_norm_leaky": (lambda x: gentk.instance_norm(x, activation="leaky_relu", negative_slope=0.2),
                            [(1, 2, 5, 3)]),
    "instance_norm_eval": (lambda x, w, b, rm, rv: gentk.instance_norm(x, w, b, rm, rv, use_input_stats=False),
                           [(2, 3, 2, 2), (3,), (3,), (3,), (3,)]),
    **{f"discriminator_{mode}_{red}": ((lambda mode, red: lambda r, f: gentk.discriminator_loss(
        r, f, mode, reduction=red))(mode, red), [(4, 1, 2, 2)] * 2)
       for mode in ("bce", "lsgan", "wgan", "hinge") for red in ("mean", "none")},
    **{f"generator_{mode}": ((lambda mode: lambda f: gentk.generator_loss(f, mode, "sum"))(mode), [(4, 3)])
       for mode in ("nonsaturating", "lsgan", "wgan", "hinge")},
    "bernoulli_recon": (lambda l, t: gentk.bernoulli_recon(l, t), [(3, 4)] * 2),
    "l1_loss": (lambda a, b: gentk.l1_loss(a, b, "mean", 10.0), [(3, 4)] * 2),
    "l1_loss_none": (lambda a, b: gentk.l1_loss(a, b, "none"), [(3, 4)] * 2),
    "gradient_penalty_r1": (lambda x: gentk.gradient_penalty(_critic, x, kind="r1"), [(3, 2, 2)]),
}
INPUTS_IN_UNIT_INTERVAL = {"bernoulli_recon": 1, "instance_norm_eval": 4}  # a target, a variance
NOT_DIFFERENTIABLE = {"instance_norm_eval": (3, 4)}  # running statistics


def _inputs(name, shapes=None):
    g = torch.Generator().manual_seed(0)
    out = []
    for i, shape in enumerate(shapes or CASES[name][1]):
        t = torch.rand(shape, generator=g, dtype=torch.float64) if INPUTS_IN_UNIT_INTERVAL.get(name) == i \
            else torch.randn(shape, generator=g, dtype=torch.float64)
        out.append(t.to(DEVICE))
    return out


def _run(backend, name, inputs, strided=False):
    """Outputs and the gradients of their sum (weighted by ones) on ``backend``; ``strided``:
    every input with every stride doubled or more."""
    fn = CASES[name][0]
    args = [(_strided(t) if strided else t.clone()).requires_grad_(i not in NOT_DIFFERENTIABLE.get(name, ()))
            for i, t in enumerate(inputs)]
    leaves = [t for t in args if t.requires_grad]
    with gentk.use_backend(backend):
        out = fn(*args)
        outs = out if isinstance(out, tuple) else (out,)
        grads = torch.autograd.grad(outs, leaves, [torch.ones_like(o) for o in outs], allow_unused=True)
    return [o.detach() for o in outs], grads


def _assert_same(name, inputs):
    got, got_grads = _run("triton", name, inputs)
    want, want_grads = _run("torch", name, inputs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, equal_nan=True, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name} output: {m}")
    for i, (a, b) in enumerate(zip(got_grads, want_grads)):
        if b is None:
            assert a is None or not a.any(), name
            continue
        torch.testing.assert_close(a, b, equal_nan=True, rtol=1e-9, atol=1e-9,
                                   msg=lambda m: f"{name} gradient {i}: {m}")


def _planted(name, value, which):
    inputs = _inputs(name)
    inputs[which].view(-1)[1] = value
    return inputs


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("name", list(CASES))
def test_non_finite_input_as_the_reference(name, value):
    for which in range(len(CASES[name][1])):
        if which == INPUTS_IN_UNIT_INTERVAL.get(name) and value == value:  # a target, a variance: NaN only
            continue
        _assert_same(name, _planted(name, value, which))


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("gumbel", "categorical"))])
def test_rows_of_all_minus_inf_as_the_reference(name):
    inputs = _inputs(name)
    if name == "gumbel_dim0":  # the categories run along dim 0
        inputs[0][:, 1] = -INF
    else:
        inputs[0][1] = -INF
    _assert_same(name, inputs)


def _strided(t):
    """t's values in a tensor whose every stride is doubled or more (a view of a larger one)."""
    big = torch.zeros(tuple(2 * d for d in t.shape) + (3,), dtype=t.dtype, device=t.device)
    view = big[tuple(slice(None, None, 2) for _ in t.shape) + (1,)]
    view.copy_(t)
    return view


@pytest.mark.parametrize("name", list(CASES))
def test_any_strides(name):
    inputs = _inputs(name)
    got, got_grads = _run("triton", name, inputs, strided=True)
    want, want_grads = _run("torch", name, inputs)
    for a, b in zip(got + list(got_grads), want + list(want_grads)):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


EMPTY = {
    "reparameterize": [[(0, 4)] * 3, [(3, 0)] * 3],
    "gaussian_kl_none": [[(3, 0)] * 2],
    "gaussian_kl_batchmean": [[(0, 4)] * 2, [(3, 0)] * 2, [(2, 0, 3)] * 2],
    "reparameterize_kl": [[(3, 0)] * 3],
    "gumbel_soft": [[(0, 5)] * 2, [(3, 0, 5)] * 2],
    "gumbel_hard": [[(0, 5)] * 2],
    "gumbel_dim0": [[(5, 0)]],
    "categorical_kl_none": [[(0, 5)]],
    "categorical_kl_batchmean": [[(0, 5)], [(2, 0, 5)]],
    "instance_norm": [[(0, 3, 3, 4), (3,), (3,)], [(2, 3, 0, 4), (3,), (3,)]],
    "instance_norm_relu_residual": [[(2, 3, 3, 0)] * 2],
    "instance_norm_eval": [[(2, 3, 0, 2), (3,), (3,), (3,), (3,)]],
    "discriminator_bce_mean": [[(0, 1, 2, 2)] * 2, [(4, 1, 0, 2)] * 2],
    "discriminator_hinge_none": [[(4, 1, 0, 2)] * 2],
    "generator_lsgan": [[(0, 3)]],
    "bernoulli_recon": [[(0, 4)] * 2, [(3, 0)] * 2],
    "l1_loss": [[(0, 4)] * 2],
    "l1_loss_none": [[(3, 0)] * 2],
    "gradient_penalty_r1": [[(0, 2, 2)], [(3, 0, 2)]],
}


@pytest.mark.parametrize("name", list(EMPTY))
def test_empty_extents_as_the_reference(name):
    for shapes in EMPTY[name]:
        _assert_same(name, _inputs(name, shapes))


@pytest.mark.parametrize("shape", [(2, 3, 0, 4), (2, 3, 4, 0), (0, 3, 2, 2), (1, 3, 2, 3)])
def test_running_statistics_as_the_reference(shape):
    """Training mode updates the running statistics as torch does (a zero-size plane leaves
    them alone), whatever their strides."""
    x = torch.randn(shape, dtype=torch.float64, device=DEVICE)
    stats = {}
    for backend in ("triton", "torch"):
        rm = _strided(torch.linspace(-1, 1, 3, dtype=torch.float64, device=DEVICE))
        rv = _strided(torch.linspace(0.5, 2, 3, dtype=torch.float64, device=DEVICE))
        with gentk.use_backend(backend):
            gentk.instance_norm(x, running_mean=rm, running_var=rv, momentum=0.3)
        stats[backend] = (rm, rv)
    for a, b in zip(stats["triton"], stats["torch"]):
        torch.testing.assert_close(a, b, equal_nan=True, rtol=1e-12, atol=1e-12)


# ---- registered ops check every tensor they read ------------------------------------------

SIZE, ANY = {"size"}, {"size", "dtype", "device"}


def _op_samples():
    """One valid call of every gentk::*_triton op: (op name, args, {tensor argument: the changes
    of it that are still valid}); a tensor read alone may have any size, dtype and device."""
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(shape, generator=g, dtype=torch.float64).to(DEVICE)

    x, y, one = t(3, 4), t(3, 4), t()
    seed = torch.tensor([5, 7], dtype=torch.int64, device=DEVICE)
    img, w, stats = t(2, 3, 2, 2), t(3), t(2, 3)
    target = torch.rand(3, 4, dtype=torch.float64).to(DEVICE)
    return [
        ("reparameterize", (x, y, None, seed), {}),
        ("reparameterize", (x, y, t(3, 4), None), {}),
        ("reparameterize_backward", (x, y, None, seed), {}),
        ("gaussian_kl", (x, y, True, 1.0), {}),
        ("gaussian_kl_backward", (one, x, y, 1.0), {}),
        ("reparameterize_kl", (x, y, None, seed, True, 1.0), {}),
        ("reparameterize_kl_backward", (x, one, x, y, None, seed, 1.0), {}),
        ("gumbel_softmax", (x, y, None, 1.0, False), {}),
        ("gumbel_softmax", (x, None, seed, 1.0, True), {"logits": ANY}),
        ("gumbel_softmax_backward", (x, y, None, None, None, 1.0), {}),
        ("gumbel_softmax_backward", (x, None, y, None, seed, 1.0), {}),
        ("categorical_kl_uniform", (x, True, 1.0), {"logits": ANY}),
        ("categorical_kl_uniform_backward", (t(3), x, 1.0), {}),
        ("instance_norm", (img, w, t(3), w.abs(), w.abs(), 1e-5, 1, 0.01, None),
         {"x": SIZE, "running_mean": {"dtype"}, "running_var": {"dtype"}}),  # any batch size; any float stats
        ("instance_norm", (img, None, None, None, None, 1e-5, 0, 0.01, t(2, 3, 2, 2)), {}),
        ("instance_norm_backward", (t(2, 3, 2, 2), img, w, t(3), stats, stats.abs(), 1e-5, True, 2, 0.2), {}),
        ("discriminator_loss", (x, y, "hinge", 1.0, 0.0, "none"), {}),
        ("discriminator_loss_backward", (one, x, y, "bce", 1.0, 0.0, "mean"),
         {"real_logits": SIZE, "fake_logits": SIZE}),  # the batch sizes may differ
        ("generator_loss", (x, "lsgan", "mean"), {"fake_logits": ANY}),
        ("generator_loss_backward", (x, y, "wgan", "none"), {}),
        ("bernoulli_recon", (x, target, "sum"), {}),
        ("bernoulli_recon_backward", (one, x, target, "mean"), {}),
        ("l1_loss", (x, y, 2.0, "none"), {}),
        ("l1_loss_backward", (x, y, target, 2.0, "none"), {}),
        ("gp_interpolate", (x, y, seed), {}),
        ("gp_interpolate_backward", (x, seed), {"grad": ANY}),
        ("grad_norm_penalty", (x, 1.0, False), {"grads": ANY}),
        ("grad_norm_penalty_backward", (one, x, 1.0, True), {"grads": SIZE}),
    ]


def _bad_variants(t, valid):
    """(what, t changed) for each change of size, dtype and device not in ``valid``."""
    if t.dtype == torch.int64:  # a seed
        changes = {"size": torch.zeros(3, dtype=torch.int64, device=t.device), "dtype": t.int()}
    else:
        changes = {"size": t.new_zeros((t.shape[0] + 1,) + t.shape[1:] if t.dim() else (3,)), "dtype": t.float()}
    changes["device"] = t.to("meta")
    return [(what, bad) for what, bad in changes.items() if what not in valid]


def test_every_triton_op_is_walked():
    import gentk.ops.gaussian.triton_kernels, gentk.ops.gumbel.triton_kernels, gentk.ops.instance_norm.triton_kernels  # noqa: E401,F401
    import gentk.ops.losses.triton_kernels  # noqa: F401
    walked = {name + "_triton" for name, *_ in _op_samples()}
    registered = {name for name in dir(torch.ops.gentk) if name.endswith("_triton")}
    assert registered == walked


@pytest.mark.parametrize("index", range(len(_op_samples())))
def test_triton_op_checks_every_tensor_it_reads(index):
    import gentk.ops.gaussian.triton_kernels, gentk.ops.gumbel.triton_kernels, gentk.ops.instance_norm.triton_kernels  # noqa: E401,F401
    import gentk.ops.losses.triton_kernels  # noqa: F401
    name, args, valid = _op_samples()[index]
    op = getattr(torch.ops.gentk, name + "_triton").default
    op(*args)  # the valid call runs
    names = [a.name for a in op._schema.arguments]
    for i, t in enumerate(args):
        if not isinstance(t, torch.Tensor):
            continue
        for what, bad in _bad_variants(t, valid.get(names[i], ())):
            with pytest.raises(RuntimeError, match=rf"^gentk::{name}_triton: .*\b{names[i]}\b") as info:
                op(*args[:i], bad, *args[i + 1:])
            assert "\n" not in str(info.value), (what, names[i])
