"""The CUDA kernels of the gentk:: loss ops (csrc/cuda/losses.cu): values and gradients
against the compiled CPU ops and the float64 reference, every dtype, the gradient-penalty
alphas equal to the CPU's, the penalty's critic gradients, empty / non-contiguous inputs,
and CUDA-graph capture (nothing synchronizes with the host).

Skipped unless a CUDA device is present and gentk._C was built with its CUDA kernels.
"""
import pytest
import torch

from conftest import cuda_kernel_marks

pytestmark = cuda_kernel_marks("gentk::discriminator_loss")

import gentk  # noqa: E402
from gentk.ops._checks import seed_for  # noqa: E402
from gentk.ops.losses import reference as ref  # noqa: E402

ops = torch.ops.gentk
DEV = "cuda"
SEED = torch.tensor([2**62 + 12345, -987654321], dtype=torch.int64)
SHAPES = [(1, 1), (64, 1), (16, 1, 30, 30), (256, 784)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
}


def _x(shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)


def _close(got, want, dtype):
    scale = max(want.abs().max().item(), 1.0) if want.numel() else 1.0
    tol = TOL[dtype]
    torch.testing.assert_close(got.double().cpu(), want.double().cpu(), rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", ["bce", "lsgan", "wgan", "hinge"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_discriminator_and_generator_losses(dtype, shape, mode, reduction):
    r64, f64 = _x(shape, 0), _x(shape, 1)
    r, f = r64.to(DEV, dtype).requires_grad_(), f64.to(DEV, dtype).requires_grad_()
    with gentk.use_backend("cuda"):
        d = gentk.discriminator_loss(r, f, mode, real_label=0.9, reduction=reduction)
        g = gentk.generator_loss(f, mode, reduction)
    rr, ff = r64.clone().requires_grad_(), f64.clone().requires_grad_()
    d_ref = ref.discriminator_loss(rr, ff, mode, 0.9, 0.0, reduction)
    g_ref = ref.generator_loss(ff, mode, reduction)
    _close(d, d_ref, dtype)
    _close(g, g_ref, dtype)
    cot = torch.randn(d_ref.shape, dtype=torch.float64)
    got = torch.autograd.grad(d, [r, f], cot.to(DEV, dtype))
    want = torch.autograd.grad(d_ref, [rr, ff], cot)
    for a, b in zip(got, want):
        _close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("reduction", ["batchsum", "mean", "sum", "none"])
def test_bernoulli_recon_and_l1(dtype, reduction):
    x64, t64 = _x((256, 784), 0), torch.rand(256, 784, dtype=torch.float64)
    x, t = x64.to(DEV, dtype).requires_grad_(), t64.to(DEV, dtype)
    with gentk.use_backend("cuda"):
        b = gentk.bernoulli_recon(x, t, reduction)
        l1 = gentk.l1_loss(x, t, "none" if reduction == "batchsum" else reduction, 100.0)
    xx = x64.clone().requires_grad_()
    b_ref = ref.bernoulli_recon(xx, t64, reduction)
    _close(b, b_ref, dtype)
    _close(l1, ref.l1_loss(x64, t64, "none" if reduction == "batchsum" else reduction, 100.0), dtype)
    cot = torch.randn(b_ref.shape, dtype=torch.float64)
    (got,) = torch.autograd.grad(b, [x], cot.to(DEV, dtype))
    (want,) = torch.autograd.grad(b_ref, [xx], cot)
    _close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_gradient_penalty_ops_match_cpu(dtype):
    real, fake = _x((16, 3, 20, 20), 0, dtype), _x((16, 3, 20, 20), 1, dtype)
    got = ops.gp_interpolate(real.to(DEV), fake.to(DEV), SEED.to(DEV))
    want = ops.gp_interpolate(real, fake, SEED) if dtype in (torch.float32, torch.float64) else None
    if want is not None:
        torch.testing.assert_close(got.cpu(), want, **TOL[dtype])
    ones = torch.ones(1000, 1)
    a_gpu = ops.gp_interpolate(ones.to(DEV), torch.zeros_like(ones).to(DEV), SEED.to(DEV)).cpu()
    assert torch.equal(a_gpu, ops.gp_interpolate(ones, torch.zeros_like(ones), SEED))
    g = _x((16, 3, 20, 20), 2, dtype)
    for r1 in (False, True):
        p = ops.grad_norm_penalty(g.to(DEV), 1.0, r1)
        _close(p, ops.grad_norm_penalty(g.double(), 1.0, r1), dtype)
        gb = ops.grad_norm_penalty_backward(torch.tensor(2.0, device=DEV, dtype=dtype), g.to(DEV), 1.0, r1)
        _close(gb, ops.grad_norm_penalty_backward(torch.tensor(2.0, dtype=torch.float64), g.double(), 1.0, r1), dtype)


def test_gradient_penalty_matches_autograd_grad_on_cuda():
    """Same value and critic-parameter gradients as the plain torch.autograd.grad penalty
    with the same alphas, in float64 on the GPU."""
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 5 * 5, 1)).double().to(DEV)
    real, fake = _x((6, 3, 10, 10), 0).to(DEV), _x((6, 3, 10, 10), 1).to(DEV)
    params = list(critic.parameters())[:-1]  # the last bias does not change d critic / dx
    with gentk.use_backend("cuda"):
        got = gentk.gradient_penalty(critic, real, fake, generator=torch.Generator(device=DEV).manual_seed(3))
    got_grads = torch.autograd.grad(got, params)
    seed = seed_for(real, torch.Generator(device=DEV).manual_seed(3))
    ones = torch.ones(6, 1, dtype=torch.float64, device=DEV)
    alpha = ops.gp_interpolate(ones, torch.zeros_like(ones), seed).reshape(-1)
    want = ref.gradient_penalty(critic, real, fake, alpha=alpha)
    want_grads = torch.autograd.grad(want, params)
    torch.testing.assert_close(got, want)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b)


def test_cuda_graph_capture():
    x = _x((64, 1, 30, 30), 0, torch.float32).to(DEV).requires_grad_()
    y = _x((64, 1, 30, 30), 1, torch.float32).to(DEV).requires_grad_()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            ops.discriminator_loss(x, y, "bce", 1.0, 0.0, "mean")
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = ops.discriminator_loss(x, y, "bce", 1.0, 0.0, "mean")
        grads = ops.discriminator_loss_backward(torch.ones((), device=DEV), x, y, "bce", 1.0, 0.0, "mean")
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(loss.cpu(), ref.discriminator_loss(x.detach().cpu(), y.detach().cpu(), "bce"))
    assert grads[0].shape == x.shape


def test_empty_and_non_contiguous():
    e = torch.empty(0, 1, device=DEV)
    assert torch.isnan(ops.discriminator_loss(e, e, "bce", 1.0, 0.0, "mean").cpu())
    assert ops.discriminator_loss(e, e, "bce", 1.0, 0.0, "sum").item() == 0
    x = _x((40, 6), 0, torch.float32).to(DEV).t()
    t = torch.rand(6, 40, device=DEV)
    torch.testing.assert_close(ops.bernoulli_recon(x, t, "batchsum").cpu(),
                               ref.bernoulli_recon(x.cpu(), t.cpu()), rtol=1e-5, atol=1e-5)
