"""The CUDA kernels of the gentk:: Gumbel ops (csrc/cuda/gumbel.cu) against the CPU ops:
values, gradients, the shared in-kernel noise stream, every row layout (K from 2 to 2000),
float16 / bfloat16 with extreme logits, the device-side reduced KL.

Skipped unless a CUDA device is present and gentk._C was built with its CUDA kernels.
"""
import math

import pytest
import torch

from conftest import cuda_kernel_marks

pytestmark = cuda_kernel_marks("gentk::gumbel_softmax")

ops = torch.ops.gentk
DEV = "cuda"
SEED = (2**62 + 12345, -987654321)
# one K per row layout of the kernels: 1, 2, 4, 8, 16, 32 lanes, register-cached warp, recomputing warp
KS = [2, 3, 7, 10, 30, 60, 100, 1000, 2000]
ROWS = [1, 5, 129, 1000]
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float64: dict(rtol=1e-12, atol=1e-13),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
}


def _seed(device):
    return torch.tensor(SEED, dtype=torch.int64, device=device)


def _logits(rows, k, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(rows, k, generator=g)).to(dtype)


def _close(got, want, dtype):
    scale = max(1.0, want.double().abs().max().item()) if want.numel() else 1.0
    tol = TOL[dtype]
    torch.testing.assert_close(got.cpu().double(), want.cpu().double(), rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_matches_cpu_ops(rows, k, dtype):
    logits = _logits(rows, k, dtype)
    grad = _logits(rows, k, dtype, seed=1)
    gumbels = -torch.log(-torch.log(torch.rand(rows, k, dtype=dtype).clamp(1e-6, 1 - 1e-6)))
    for tau in (0.3, 1.0):
        for hard in (False, True):
            for g, s in ((None, _seed("cpu")), (gumbels, None), (None, None)):
                want = ops.gumbel_softmax(logits, g, s, tau, hard)
                got = ops.gumbel_softmax(logits.to(DEV), None if g is None else g.to(DEV),
                                         None if s is None else s.to(DEV), tau, hard)
                if hard:
                    assert torch.equal(got.cpu(), want), (tau, g is None, s is None)
                else:
                    _close(got, want, dtype)
                want = ops.gumbel_softmax_backward(grad, None, logits, g, s, tau)
                got = ops.gumbel_softmax_backward(grad.to(DEV), None, logits.to(DEV), None if g is None else g.to(DEV),
                                                  None if s is None else s.to(DEV), tau)
                _close(got, want, dtype)
        soft = ops.gumbel_softmax(logits, None, _seed("cpu"), tau, False)
        _close(ops.gumbel_softmax_backward(grad.to(DEV), soft.to(DEV), None, None, None, tau),
               ops.gumbel_softmax_backward(grad, soft, None, None, None, tau), dtype)
    for reduce in (False, True):
        _close(ops.categorical_kl_uniform(logits.to(DEV), reduce, 0.25),
               ops.categorical_kl_uniform(logits, reduce, 0.25), dtype)
    row_grad = grad[:, 0].contiguous()
    _close(ops.categorical_kl_uniform_backward(row_grad.to(DEV), logits.to(DEV), 1.0),
           ops.categorical_kl_uniform_backward(row_grad, logits, 1.0), dtype)
    one = torch.tensor(1.5, dtype=dtype)
    _close(ops.categorical_kl_uniform_backward(one.to(DEV), logits.to(DEV), 0.5),
           ops.categorical_kl_uniform_backward(one, logits, 0.5), dtype)


@pytest.mark.parametrize("k", [3, 10, 100, 1000, 2000])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_low_precision_math_in_float32(k, dtype):
    logits = _logits(64, k, dtype)
    want = ops.gumbel_softmax(logits.float(), None, _seed("cpu"), 0.67, False)
    got = ops.gumbel_softmax(logits.to(DEV), None, _seed(DEV), 0.67, False)
    assert got.dtype == dtype
    _close(got, want, dtype)
    assert torch.equal(ops.gumbel_softmax(logits.to(DEV), None, _seed(DEV), 0.67, True).cpu().float(),
                       ops.gumbel_softmax(logits.float(), None, _seed("cpu"), 0.67, True))
    _close(ops.categorical_kl_uniform(logits.to(DEV), False, 1.0), ops.categorical_kl_uniform(logits.float(), False, 1.0),
           dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("k", [3, 10, 1000])
def test_extreme_logits_stay_finite(dtype, k):
    big = 1e4 if dtype != torch.float16 else 6e4  # float16 tops out at 65504
    logits = torch.randint(-1, 2, (4096, k)).to(DEV, torch.float32).mul(big).to(dtype)
    seed = _seed(DEV)
    for tau, hard in ((0.1, False), (1.0, True), (1e-30, False)):
        y = ops.gumbel_softmax(logits, None, seed, tau, hard)
        assert torch.isfinite(y.float()).all(), (tau, hard)
        torch.testing.assert_close(y.float().sum(-1), torch.ones(4096, device=DEV), rtol=0, atol=2e-2)
        g = ops.gumbel_softmax_backward(torch.randn_like(logits), None, logits, None, seed, tau)
        assert torch.isfinite(g.float()).all()
    kl = ops.categorical_kl_uniform(logits, False, 1.0)
    assert torch.isfinite(kl.float()).all()
    assert torch.isfinite(ops.categorical_kl_uniform_backward(torch.ones(4096, device=DEV, dtype=dtype), logits,
                                                              1.0).float()).all()


def test_hard_frequencies_and_determinism():
    n, k = 1 << 20, 10
    logits = torch.linspace(1.5, -2.0, k, device=DEV).expand(n, k).contiguous()
    y = ops.gumbel_softmax(logits, None, _seed(DEV), 0.5, True)
    counts = y.double().sum(0).cpu()
    expected = n * torch.softmax(logits[0].double().cpu(), 0)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 27.877, chi2  # chi2.ppf(0.999, 9)
    big = _logits(4096, 512).to(DEV)
    total = ops.categorical_kl_uniform(big, True, 1.0)
    for _ in range(3):
        assert torch.equal(total, ops.categorical_kl_uniform(big, True, 1.0))


def test_functional_api_on_cuda():
    import gentk

    logits = _logits(33, 10).to(DEV).requires_grad_()
    with gentk.use_backend("cuda"):
        torch.manual_seed(0)
        y = gentk.gumbel_softmax(logits, 0.67, True, dim=0)
        kl = gentk.categorical_kl_uniform(logits, dim=0)
        (y.square().sum() + kl).backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.equal(y.detach().sum(0), torch.ones(10, device=DEV))
    assert math.isfinite(kl.item())
