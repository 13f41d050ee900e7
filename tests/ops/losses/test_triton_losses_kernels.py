"""The Triton twins of the loss ops (gentk::*_triton) under the interpreter on CPU (or on a
GPU): same results as the compiled ops, the same gradient-penalty alphas, gradcheck,
opcheck and argument checks."""
import os

import pytest
import torch

import gentk

triton = pytest.importorskip("triton")
pytestmark = [
    pytest.mark.cuda,  # on a GPU these run there (benchmarks/gpu.sh: pytest -m cuda)
    pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built"),
    pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                       reason="Triton needs a GPU or TRITON_INTERPRET=1"),
]

import gentk.ops.losses.triton_kernels  # noqa: E402,F401  (registers the ops)

ops = torch.ops.gentk
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SEED = torch.tensor([2**62 + 12345, -987654321], dtype=torch.int64)


def _x(shape, seed, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(shape, generator=g, dtype=dtype)
    x = torch.where((x.abs() - 1).abs() < 0.05, x + 0.2, x)
    return x.to(DEVICE).requires_grad_(requires_grad)


def _cpp(t):
    return t.cpu() if isinstance(t, torch.Tensor) else t


CALLS = [
    ("discriminator_loss", lambda r, f, t: (r, f, "bce", 0.9, 0.1, "mean")),
    ("discriminator_loss", lambda r, f, t: (r, f, "hinge", 1.0, 0.0, "none")),
    ("discriminator_loss_backward", lambda r, f, t: (r.new_tensor(2.0), r, f, "lsgan", 1.0, 0.0, "sum")),
    ("generator_loss", lambda r, f, t: (f, "wgan", "mean")),
    ("generator_loss_backward", lambda r, f, t: (torch.ones_like(f), f, "bce", "none")),
    ("bernoulli_recon", lambda r, f, t: (r, t, "batchsum")),
    ("bernoulli_recon_backward", lambda r, f, t: (r.new_tensor(0.5), r, t, "mean")),
    ("l1_loss", lambda r, f, t: (r, f, 100.0, "sum")),
    ("l1_loss_backward", lambda r, f, t: (r.new_tensor(1.0), r, f, 100.0, "mean")),
    ("gp_interpolate", lambda r, f, t: (r, f, SEED.to(DEVICE))),
    ("gp_interpolate_backward", lambda r, f, t: (r, SEED.to(DEVICE))),
    ("grad_norm_penalty", lambda r, f, t: (r, 1.0, False)),
    ("grad_norm_penalty_backward", lambda r, f, t: (r.new_tensor(3.0), r, 0.5, False)),
    ("grad_norm_penalty_backward", lambda r, f, t: (r.new_tensor(3.0), r, 0.5, True)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,make", CALLS, ids=[c[0] for c in CALLS])
def test_triton_matches_cpp(name, make, dtype):
    shape = (7, 3, 5, 11)
    r, f = _x(shape, 0, dtype), _x(shape, 1, dtype)
    t = torch.rand(shape, dtype=dtype).to(DEVICE)
    args = make(r, f, t)
    got = getattr(ops, name + "_triton")(*args)
    want = getattr(ops, name)(*[_cpp(a) for a in args])
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        torch.testing.assert_close(a.cpu(), b, **tol)


def test_same_alphas_as_cpp_in_float32_and_float64():
    for dtype in (torch.float32, torch.float64):
        ones = torch.ones(64, 1, dtype=dtype, device=DEVICE)
        got = ops.gp_interpolate_triton(ones, torch.zeros_like(ones), SEED.to(DEVICE))
        want = ops.gp_interpolate(ones.cpu(), torch.zeros_like(ones.cpu()), SEED)
        assert torch.equal(got.cpu(), want)


def test_gradcheck_triton():
    r, f = _x((2, 1, 1, 3), 0, requires_grad=True), _x((2, 1, 1, 3), 1, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ops.discriminator_loss_triton(a, b, "bce", 0.9, 0.0, "mean"), (r, f))
    assert torch.autograd.gradcheck(lambda a: ops.generator_loss_triton(a, "hinge", "none"), (f,))
    assert torch.autograd.gradcheck(lambda a, b: ops.l1_loss_triton(a, b, 3.0, "mean"), (r, f))
    assert torch.autograd.gradcheck(lambda a, b: ops.gp_interpolate_triton(a, b, SEED.to(DEVICE)), (r, f))
    assert torch.autograd.gradgradcheck(lambda a: ops.grad_norm_penalty_triton(a, 0.8, False), (r,))


def test_opcheck_triton():
    r, f = _x((4, 1, 3, 3), 0, torch.float32, True), _x((4, 1, 3, 3), 1, torch.float32, True)
    t = torch.rand(4, 1, 3, 3, device=DEVICE)
    for op, args in [
        (ops.discriminator_loss_triton.default, (r, f, "lsgan", 1.0, 0.0, "mean")),
        (ops.generator_loss_triton.default, (f, "nonsaturating", "sum")),
        (ops.bernoulli_recon_triton.default, (r, t, "batchsum")),
        (ops.l1_loss_triton.default, (r, f, 2.0, "none")),
        (ops.grad_norm_penalty_triton.default, (r, 1.0, False)),
    ]:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_triton_checks_its_arguments():
    x = _x((4, 1), 0, torch.float32)
    with pytest.raises(RuntimeError, match="unknown mode 'x'"):
        ops.discriminator_loss_triton(x, x, "x", 1.0, 0.0, "mean")
    with pytest.raises(RuntimeError, match="cannot pair"):
        ops.discriminator_loss_triton(x, _x((4, 3), 1, torch.float32), "bce", 1.0, 0.0, "mean")
    with pytest.raises(RuntimeError, match="fake_label must lie in"):
        ops.discriminator_loss_triton(x, x, "bce", 1.0, 1.5, "mean")
    with pytest.raises(RuntimeError, match="unknown reduction 'batchsum'"):
        ops.l1_loss_triton(x, x, 1.0, "batchsum")
