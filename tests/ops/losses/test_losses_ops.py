"""The registered gentk:: ops of the loss family: gradcheck (and gradgradcheck of the
penalty) in float64, opcheck, torch.compile(fullgraph=True) over the losses, and every
CPU instruction-set build."""
import textwrap

import pytest
import torch

import gentk
from gentk.ops.losses import reference as ref
from conftest import assert_every_isa_agrees

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")
ops = torch.ops.gentk
SEED = torch.tensor([2**62 + 12345, -987654321], dtype=torch.int64)


def _x(shape, seed, requires_grad=True, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    # away from the kinks of hinge / L1 so finite differences are well defined
    x = 2 * torch.randn(shape, generator=g, dtype=dtype)
    x = torch.where((x.abs() - 1).abs() < 0.05, x + 0.2, x)
    return x.requires_grad_(requires_grad)


@pytest.mark.parametrize("mode", ["bce", "lsgan", "wgan", "hinge"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_adversarial(mode, reduction):
    r, f = _x((3, 1, 4, 5), 0), _x((3, 1, 4, 5), 1)
    assert torch.autograd.gradcheck(lambda a, b: ops.discriminator_loss(a, b, mode, 0.9, 0.1, reduction), (r, f))
    assert torch.autograd.gradcheck(lambda b: ops.generator_loss(b, mode, reduction), (f,))


@pytest.mark.parametrize("reduction", ["batchsum", "mean", "sum", "none"])
def test_gradcheck_target_losses(reduction):
    x, t = _x((4, 7), 0), torch.rand(4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ops.bernoulli_recon(a, b, reduction), (x, t))
    if reduction != "batchsum":
        y = _x((4, 7), 1)
        assert torch.autograd.gradcheck(lambda a, b: ops.l1_loss(a, b, 2.5, reduction), (x, y))


@pytest.mark.parametrize("loss", [
    lambda x, y: gentk.discriminator_loss(x, y, "bce"), lambda x, y: gentk.generator_loss(x, "lsgan"),
    lambda x, y: gentk.bernoulli_recon(x, torch.sigmoid(y.detach())), lambda x, y: gentk.l1_loss(x, y.detach()),
], ids=["discriminator_loss", "generator_loss", "bernoulli_recon", "l1_loss"])
def test_double_backward_is_refused_with_a_clear_error(loss):
    """The compiled losses' backward is first order: create_graph=True must not hand back a
    gradient whose derivative is silently missing."""
    x, y = _x((4, 1), 0), _x((4, 1), 1)
    gentk.set_backend("cpp")
    (first,) = torch.autograd.grad(loss(x, y), x)  # first order still works
    assert torch.isfinite(first).all()
    with pytest.raises(RuntimeError, match="double backward .* not supported"):
        torch.autograd.grad(loss(x, y), x, create_graph=True)


@pytest.mark.parametrize("r1", [False, True])
def test_gradcheck_and_gradgradcheck_penalty(r1):
    g = _x((3, 2, 5), 0)
    assert torch.autograd.gradcheck(lambda a: ops.grad_norm_penalty(a, 0.7, r1), (g,))
    assert torch.autograd.gradgradcheck(lambda a: ops.grad_norm_penalty(a, 0.7, r1), (g,))


@pytest.mark.parametrize("op", ["discriminator_loss", "generator_loss", "bernoulli_recon", "l1_loss",
                                "gp_interpolate", "grad_norm_penalty", "grad_norm_penalty_backward"])
def test_compiled_ops_have_cpp_autograd(op):
    """Every compiled loss op, the gradient penalty's included, has its autograd in C++
    (csrc/losses_autograd.cpp); only the Triton twins use torch.library's Python registration."""
    kernels = [line for line in torch._C._dispatch_dump(f"gentk::{op}").splitlines() if line.startswith("Autograd")]
    assert kernels and "losses_autograd.cpp" in kernels[0], kernels


def test_gradcheck_interpolate():
    r, f = _x((3, 2, 5), 0), _x((3, 2, 5), 1)
    assert torch.autograd.gradcheck(lambda a, b: ops.gp_interpolate(a, b, SEED), (r, f))


def _opcheck_samples():
    r, f = _x((4, 1, 3, 3), 0, dtype=torch.float32), _x((4, 1, 3, 3), 1, dtype=torch.float32)
    t = torch.rand(4, 1, 3, 3)
    one = torch.tensor(1.5)
    grad = torch.randn(4, 1, 3, 3)
    d = lambda x: x.detach()  # noqa: E731
    return [
        (ops.discriminator_loss.default, (r, f, "bce", 0.9, 0.0, "mean")),
        (ops.discriminator_loss.default, (r, f, "hinge", 1.0, 0.0, "none")),
        (ops.discriminator_loss_backward.default, (one, d(r), d(f), "lsgan", 1.0, 0.0, "sum")),
        (ops.discriminator_loss_backward.default, (grad, d(r), d(f), "wgan", 1.0, 0.0, "none")),
        (ops.generator_loss.default, (f, "nonsaturating", "mean")),
        (ops.generator_loss_backward.default, (one, d(f), "hinge", "mean")),
        (ops.bernoulli_recon.default, (r, t, "batchsum")),
        (ops.bernoulli_recon.default, (r, t, "none")),
        (ops.bernoulli_recon_backward.default, (one, d(r), t, "batchsum")),
        (ops.l1_loss.default, (r, f, 100.0, "mean")),
        (ops.l1_loss_backward.default, (grad, d(r), d(f), 100.0, "none")),
        (ops.discriminator_loss_with_grad.default, (d(r), d(f), "bce", 0.9, 0.0, "mean")),
        (ops.discriminator_loss_with_grad.default, (d(r), d(f), "lsgan", 1.0, 0.0, "none")),
        (ops.generator_loss_with_grad.default, (d(f), "hinge", "sum")),
        (ops.bernoulli_recon_with_grad.default, (d(r), t, "batchsum")),
        (ops.gp_interpolate.default, (r, f, SEED)),
        (ops.gp_interpolate_backward.default, (grad, SEED)),
        (ops.grad_norm_penalty.default, (r, 1.0, False)),
        (ops.grad_norm_penalty.default, (r, 1.0, True)),
        (ops.grad_norm_penalty_backward.default, (one, d(r), 1.0, False)),
    ]


@pytest.mark.parametrize("op,args", _opcheck_samples(), ids=lambda x: getattr(x, "__name__", ""))
def test_opcheck(op, args):
    torch.library.opcheck(op, args)


def _gan_losses(real_logits, fake_logits, recon, target, fake_img, real_img):
    d = gentk.discriminator_loss(real_logits, fake_logits.detach(), "bce", real_label=0.9)
    d = d + gentk.discriminator_loss(real_logits, fake_logits.detach(), "hinge", reduction="sum")
    g = gentk.generator_loss(fake_logits, "nonsaturating") + gentk.generator_loss(fake_logits, "lsgan")
    return d + g + gentk.bernoulli_recon(recon, target) + gentk.l1_loss(fake_img, real_img, weight=100.0)


def test_compile_fullgraph_losses():
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    args = [torch.randn(4, 1, 6, 6, generator=g).requires_grad_(), torch.randn(4, 1, 6, 6, generator=g).requires_grad_(),
            torch.randn(4, 20, generator=g).requires_grad_(), torch.rand(4, 20, generator=g),
            torch.randn(4, 3, 8, 8, generator=g).requires_grad_(), torch.randn(4, 3, 8, 8, generator=g)]
    leaves = [a for a in args if a.requires_grad]
    with gentk.use_backend("cpp"):
        loss = torch.compile(_gan_losses, fullgraph=True)(*args)
        grads = torch.autograd.grad(loss, leaves)
        loss_eager = _gan_losses(*args)
        grads_eager = torch.autograd.grad(loss_eager, leaves)
    torch.testing.assert_close(loss, loss_eager)
    for a, b in zip(grads, grads_eager):
        torch.testing.assert_close(a, b)


ISA_SCRIPT = textwrap.dedent("""
    import sys, torch, gentk
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(67, 129, generator=g); y = 3 * torch.randn(67, 129, generator=g)
    t = torch.rand(67, 129, generator=g); seed = torch.tensor([11, 22])
    ops = torch.ops.gentk
    out = {}
    for mode in ("bce", "lsgan", "wgan", "hinge"):
        out[mode] = ops.discriminator_loss(x, y, mode, 0.9, 0.0, "none")
        out[mode + "_grad"] = ops.discriminator_loss_backward(torch.tensor(1.0), x, y, mode, 0.9, 0.0, "mean")
    out["recon"] = ops.bernoulli_recon(x, t, "batchsum")
    out["recon_grad"] = ops.bernoulli_recon_backward(torch.tensor(1.0), x, t, "batchsum")
    out["recon_with_grad"] = ops.bernoulli_recon_with_grad(x, t, "batchsum")
    out["disc_with_grad"] = ops.discriminator_loss_with_grad(x, y[:50], "bce", 0.9, 0.1, "mean")
    wide = torch.linspace(-120, 120, 2411).reshape(1, -1)  # exp's underflow and the tails
    out["recon_wide"] = ops.bernoulli_recon_with_grad(wide, torch.rand(wide.shape, generator=g), "none")
    out["l1"] = ops.l1_loss(x, y, 3.0, "sum")
    out["interp"] = ops.gp_interpolate(x, y, seed)
    out["penalty"] = ops.grad_norm_penalty(x, 1.0, False)
    out["penalty_grad"] = ops.grad_norm_penalty_backward(torch.tensor(1.0), x, 1.0, False)
    torch.save(out, sys.argv[1])
""")


def test_every_cpu_isa_build_agrees(tmp_path):
    """Each instruction-set build (forced with ATEN_CPU_CAPABILITY) gives the same results."""
    assert_every_isa_agrees(tmp_path, ISA_SCRIPT)


def test_gradient_penalty_runs_eagerly_beside_a_compiled_critic():
    """The documented pattern: compiled adversarial loss, eager gradient penalty (torch.compile
    has no double backward), one backward that reaches every critic parameter."""
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1)).double()
    real, fake = torch.randn(4, 3, 2, 2, dtype=torch.float64), torch.randn(4, 3, 2, 2, dtype=torch.float64)
    loss_fn = torch.compile(lambda r, f: gentk.discriminator_loss(r, f, "wgan"), fullgraph=True)
    with gentk.use_backend("cpp"):
        total = loss_fn(critic(real), critic(fake)) + 10 * gentk.gradient_penalty(critic, real, fake)
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())
    assert torch.isfinite(ref.gradient_penalty(critic, real, fake))
