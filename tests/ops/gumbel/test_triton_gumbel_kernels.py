"""The Triton Gumbel ops (gentk::*_triton) against the compiled CPU ops and an independent
reference of the noise stream.

Without a CUDA device the kernels run in the Triton interpreter on CPU tensors
(conftest.py sets TRITON_INTERPRET=1 before triton is imported).
"""

import pytest
import torch

triton = pytest.importorskip("triton")
pytestmark = pytest.mark.cuda  # on a GPU these run there (benchmarks/gpu.sh: pytest -m cuda)

import gentk._C  # noqa: E402,F401  (registers the compiled ops, the comparison baseline)
import gentk.ops.gumbel.triton_kernels as tgum  # noqa: E402  (registers the *_triton ops)

import numpy as np  # noqa: E402

ops = torch.ops.gentk
DEVICE = "cpu" if tgum.INTERPRETED else "cuda"
SHAPES = [(1, 2), (7, 3), (129, 10), (9, 1000)]
DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return dict(rtol=2e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)


def seed_t(seed, stream, device=DEVICE):
    return torch.tensor([seed, stream], dtype=torch.int64, device=device)


def logits_of(shape, dtype, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    return (3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(DEVICE, dtype)


def cpu(*args):
    return [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]


def assert_close(actual, expected, dtype):
    assert actual.shape == expected.shape
    t = tol(dtype)
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual.cpu().double(), expected.cpu().double(), rtol=t["rtol"], atol=t["atol"] * scale)


def gumbel_noise_ref(n, seed, stream):
    """Independent float64 reference of the noise (csrc/include/gentk/gumbel.h), numpy uint64."""
    mask = np.uint64(0xFFFFFFFF)
    e = np.arange(n, dtype=np.uint64)
    c = (e >> np.uint64(6)) * np.uint64(16) + (e & np.uint64(15))
    seed_u, stream_u = np.uint64(seed % 2**64), np.uint64(stream % 2**64)
    c0, c1 = c & mask, c >> np.uint64(32)
    c2 = np.full_like(c, stream_u & mask)
    c3 = np.full_like(c, stream_u >> np.uint64(32))
    k0, k1 = int(seed_u & mask), int(seed_u >> np.uint64(32))
    for _ in range(10):
        p0 = c0 * np.uint64(0xD2511F53)
        p1 = c2 * np.uint64(0xCD9E8D57)
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0),
            p1 & mask,
            (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1),
            p0 & mask,
        )
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    x = np.stack([c0, c1, c2, c3])[((e >> np.uint64(4)) & np.uint64(3)).astype(np.int64), np.arange(n)]
    u = ((x >> np.uint64(9)).astype(np.float64) + 0.5) * 2.0**-23
    assert u.min() > 0 and u.max() < 1
    return torch.from_numpy(-np.log(-np.log(u)))


@pytest.mark.parametrize("shape,seed,stream", [((1, 1), 0, 0), ((3, 7), 1234, 5), ((65, 3), 2**63 - 1, -1),
                                               ((5, 1000), -3, -(2**40) - 7), ((129, 10), 2**62 + 12345, 1)])
def test_noise_matches_the_reference_stream(shape, seed, stream):
    """With zero logits and tau = 1 a sample is softmax(g): both the Triton and the cpp
    kernels must give softmax of the reference noise."""
    n = shape[0] * shape[1]
    g_ref = gumbel_noise_ref(n, seed, stream).reshape(shape)
    zeros = torch.zeros(shape, dtype=torch.float64, device=DEVICE)
    s = seed_t(seed, stream)
    for fn in (lambda: ops.gumbel_softmax_triton(zeros, None, s, 1.0, False),
               lambda: ops.gumbel_softmax(*cpu(zeros, None, s), 1.0, False)):
        y = fn().cpu()
        torch.testing.assert_close(y, torch.softmax(g_ref, -1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_match_compiled_ops(shape, dtype):
    logits = logits_of(shape, dtype)
    gumbels = gumbel_noise_ref(logits.numel(), 7, 8).reshape(shape).to(DEVICE, dtype)
    grad = logits_of(shape, dtype, gen_seed=1)
    s = seed_t(-42, 3)
    for tau in (0.3, 1.0):
        for hard in (False, True):
            for g, sd in ((None, s), (gumbels, None), (None, None)):
                got = ops.gumbel_softmax_triton(logits, g, sd, tau, hard)
                want = ops.gumbel_softmax(*cpu(logits, g, sd), tau, hard)
                if hard:
                    assert torch.equal(got.cpu(), want)
                else:
                    assert_close(got, want, dtype)
                got = ops.gumbel_softmax_backward_triton(grad, None, logits, g, sd, tau)
                assert_close(got, ops.gumbel_softmax_backward(*cpu(grad, None, logits, g, sd), tau), dtype)
        soft = ops.gumbel_softmax(*cpu(logits, None, s), tau, False).to(DEVICE)
        got = ops.gumbel_softmax_backward_triton(grad, soft, None, None, None, tau)
        assert_close(got, ops.gumbel_softmax_backward(*cpu(grad, soft, None, None, None), tau), dtype)
    for reduce in (False, True):
        assert_close(ops.categorical_kl_uniform_triton(logits, reduce, 0.25),
                     ops.categorical_kl_uniform(*cpu(logits), reduce, 0.25), dtype)
    row_grad = grad[:, 0].contiguous()
    assert_close(ops.categorical_kl_uniform_backward_triton(row_grad, logits, 1.0),
                 ops.categorical_kl_uniform_backward(*cpu(row_grad, logits), 1.0), dtype)
    one = torch.tensor(1.5, dtype=dtype, device=DEVICE)
    assert_close(ops.categorical_kl_uniform_backward_triton(one, logits, 0.5),
                 ops.categorical_kl_uniform_backward(*cpu(one, logits), 0.5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_autograd_matches_compiled_ops(dtype):
    shape = (5, 13)
    s = seed_t(11, 2)
    grad = logits_of(shape, dtype, gen_seed=2)

    def grads(suffix, to):
        logits = logits_of(shape, dtype).to(to).requires_grad_()
        gs = getattr(ops, "gumbel_softmax" + suffix)
        kl = getattr(ops, "categorical_kl_uniform" + suffix)
        loss = ((gs(logits, None, s.to(to), 0.5, False) * grad.to(to)).sum()
                + (gs(logits, None, s.to(to), 0.5, True) * grad.to(to)).sum()
                + 3 * kl(logits, True, 0.2) + (kl(logits, False, 1.0) * grad[:, 0].to(to)).sum())
        return torch.autograd.grad(loss, [logits])[0]

    assert_close(grads("_triton", DEVICE), grads("", "cpu"), dtype)


def test_gradcheck_float64():
    logits = logits_of((3, 5), torch.float64, gen_seed=4).requires_grad_()
    s = seed_t(5, 6)
    for fn in (lambda l: ops.gumbel_softmax_triton(l, None, s, 0.7, False),
               lambda l: ops.categorical_kl_uniform_triton(l, True, 0.5),
               lambda l: ops.categorical_kl_uniform_triton(l, False, 1.0)):
        assert torch.autograd.gradcheck(fn, (logits,), fast_mode=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty(dtype):
    x = torch.empty(0, 5, dtype=dtype, device=DEVICE)
    s = seed_t(1, 2)
    assert ops.gumbel_softmax_triton(x, None, s, 1.0, True).shape == (0, 5)
    assert ops.gumbel_softmax_backward_triton(x, None, x, None, s, 1.0).shape == (0, 5)
    assert ops.categorical_kl_uniform_triton(x, False, 1.0).shape == (0,)
    total = ops.categorical_kl_uniform_triton(x, True, 2.0)
    assert total.shape == () and total.item() == 0.0
    assert ops.categorical_kl_uniform_backward_triton(x.new_ones(()), x, 1.0).shape == (0, 5)


def test_float16_math_in_float32_and_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, -1e4, -1e4]], device=DEVICE)
    s = seed_t(5, 6)
    for dtype in (torch.float16, torch.bfloat16):
        x = logits.clamp(-6e4, 6e4).to(dtype)
        for hard in (False, True):
            y = ops.gumbel_softmax_triton(x, None, s, 0.1, hard)
            assert y.dtype == dtype and torch.isfinite(y.float()).all()
            g = ops.gumbel_softmax_backward_triton(torch.ones_like(x), None, x, None, s, 0.1)
            assert torch.isfinite(g.float()).all()
        kl = ops.categorical_kl_uniform_triton(x, False, 1.0)
        assert torch.isfinite(kl.float()).all()
        torch.testing.assert_close(kl.float().cpu(), ops.categorical_kl_uniform(x.float().cpu(), False, 1.0),
                                   rtol=1e-2, atol=1e-2)
        assert abs(kl[1].item()) < 1e-2  # a uniform row


def test_argument_checks():
    x = logits_of((3, 4), torch.float32)
    s = seed_t(1, 2)
    with pytest.raises(RuntimeError, match="gumbel_softmax_triton: tau must be finite and > 0"):
        ops.gumbel_softmax_triton(x, None, s, 0.0, False)
    with pytest.raises(RuntimeError, match="logits must be floating point"):
        ops.gumbel_softmax_triton(x.long(), None, s, 1.0, False)
    with pytest.raises(RuntimeError, match="seed must be an int64 tensor of two elements"):
        ops.gumbel_softmax_triton(x, None, s[:1], 1.0, False)
    with pytest.raises(RuntimeError, match="gumbels must have logits's shape"):
        ops.gumbel_softmax_triton(x, x[:1], None, 1.0, False)
    with pytest.raises(RuntimeError, match="give either soft or logits"):
        ops.gumbel_softmax_backward_triton(x, None, None, None, s, 1.0)
    with pytest.raises(RuntimeError, match="grad must have logits's shape"):
        ops.gumbel_softmax_backward_triton(x[:1], None, x, None, s, 1.0)
    with pytest.raises(RuntimeError, match="grad must have shape"):
        ops.categorical_kl_uniform_backward_triton(x[:2, 0], x, 1.0)
    with pytest.raises(RuntimeError, match="at most 16384 categories"):
        ops.categorical_kl_uniform_triton(torch.zeros(1, 16385, device=DEVICE), True, 1.0)


def _opcheck_samples():
    logits = logits_of((3, 10), torch.float64, gen_seed=7)
    rg = logits.detach().requires_grad_()
    s = seed_t(13, -1)
    g = logits_of((3, 10), torch.float64, gen_seed=8)
    return [
        (ops.gumbel_softmax_triton, (rg, None, s, 0.5, False)),
        (ops.gumbel_softmax_triton, (rg, None, s, 0.5, True)),
        (ops.gumbel_softmax_triton, (rg, g.clone().requires_grad_(), None, 2.0, False)),
        (ops.gumbel_softmax_backward_triton, (g, None, logits, None, s, 0.5)),
        (ops.categorical_kl_uniform_triton, (rg, True, 0.5)),
        (ops.categorical_kl_uniform_triton, (rg, False, 1.0)),
        (ops.categorical_kl_uniform_backward_triton, (g.new_tensor(0.5), logits, 2.0)),
    ]


@pytest.mark.parametrize("index", range(7))
def test_opcheck(index):
    op, args = _opcheck_samples()[index]
    torch.library.opcheck(op, args)
