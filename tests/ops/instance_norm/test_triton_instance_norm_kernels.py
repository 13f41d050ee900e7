"""The Triton instance-norm ops (gentk::instance_norm*_triton) against the F.instance_norm
reference: values, every gradient, both memory formats, running statistics, opcheck.

Without a CUDA device the kernels run in the Triton interpreter on CPU tensors
(conftest.py sets TRITON_INTERPRET=1 before triton is imported), on small shapes.
"""

import pytest
import torch

triton = pytest.importorskip("triton")
pytestmark = pytest.mark.cuda  # on a GPU these run there (benchmarks/gpu.sh: pytest -m cuda)

import gentk  # noqa: E402
import gentk.ops.instance_norm.triton_kernels  # noqa: E402,F401  (registers the *_triton ops)
from gentk.ops.instance_norm import reference as ref  # noqa: E402
from gentk.ops.gaussian.triton_kernels import INTERPRETED  # noqa: E402

ops = torch.ops.gentk
DEVICE = "cpu" if INTERPRETED else "cuda"
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _tensors(shape, dtype, fmt, affine, residual, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (2 * torch.randn(shape, generator=g, dtype=torch.float64) + 1).to(dtype)
    if x.dim() == 4:
        x = x.contiguous(memory_format=fmt)
    x = x.to(DEVICE).requires_grad_()
    w = (1 + 0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64)).to(dtype).to(DEVICE).requires_grad_() \
        if affine else None
    b = (0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64)).to(dtype).to(DEVICE).requires_grad_() \
        if affine else None
    r = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).to(DEVICE).requires_grad_() if residual else None
    return x, w, b, r


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("shape,affine,activation,residual", [
    ((1, 1, 2, 2), False, None, False),
    ((2, 3, 5, 7), True, "relu", True),
    ((3, 7, 6, 9), True, "leaky_relu", False),
    ((2, 4, 33), False, "relu", True),
])
def test_matches_reference(shape, affine, activation, residual, fmt, dtype):
    x, w, b, r = _tensors(shape, dtype, FORMATS[fmt], affine, residual)
    with gentk.use_backend("triton"):
        y = gentk.instance_norm(x, w, b, activation=activation, negative_slope=0.1, residual=r)
    if len(shape) == 4:
        assert y.is_contiguous(memory_format=FORMATS[fmt])
    leaves = [t for t in (x, w, b, r) if t is not None]
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    it = iter(ref_leaves)
    rx = next(it)
    rw = next(it) if w is not None else None
    rb = next(it) if b is not None else None
    rr = next(it) if r is not None else None
    y_ref = ref.instance_norm(rx, rw, rb, activation=activation, negative_slope=0.1, residual=rr)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(y.double(), y_ref, **tol)
    cot = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(y, leaves, cot.to(dtype).to(DEVICE))
    ref_grads = torch.autograd.grad(y_ref, ref_leaves, cot)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double().cpu(), want, **tol)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_running_stats_train_and_eval(fmt):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, 5, 6, generator=g).contiguous(memory_format=FORMATS[fmt]).to(DEVICE)
    rm, rv = torch.zeros(4, device=DEVICE), torch.ones(4, device=DEVICE)
    rm_t, rv_t = rm.clone(), rv.clone()
    with gentk.use_backend("triton"):
        y = gentk.instance_norm(x, running_mean=rm, running_var=rv, momentum=0.3)
        y_eval = gentk.instance_norm(x, running_mean=rm, running_var=rv, use_input_stats=False, activation="relu")
    torch.testing.assert_close(y, ref.instance_norm(x, running_mean=rm_t, running_var=rv_t, momentum=0.3))
    torch.testing.assert_close(rm, rm_t)
    torch.testing.assert_close(rv, rv_t)
    torch.testing.assert_close(y_eval, ref.instance_norm(x, None, None, rm_t, rv_t, False, activation="relu"))


@pytest.mark.parametrize("n", [0, 1])
def test_eval_with_running_stats_at_batch_0_and_1(n):
    """The statistics returned for N <= 1 are copies, not views of the running buffers (a view
    is an alias, which torch's custom-op checks refuse; gentk selftest found it)."""
    x = torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    rm, rv = torch.randn(3).to(DEVICE), torch.rand(3).add(0.5).to(DEVICE)
    with gentk.use_backend("triton"):
        y = gentk.instance_norm(x, running_mean=rm, running_var=rv, use_input_stats=False, activation="relu")
    torch.testing.assert_close(y, ref.instance_norm(x, None, None, rm, rv, False, activation="relu"))


def test_second_order_gradients_match_reference():
    """create_graph=True (WGAN-GP through a critic with instance norm): the Python backward
    differentiates the normalization written in torch ops, so gradients of gradients match."""
    x, w, b, r = _tensors((2, 3, 4, 5), torch.float64, torch.contiguous_format, True, True)
    grad_out = torch.randn(x.shape, dtype=x.dtype, device=DEVICE)
    results = []
    for backend in ("triton", "torch"):
        with gentk.use_backend(backend):
            y = gentk.instance_norm(x, w, b, activation="leaky_relu", negative_slope=0.1, residual=r)
        first = torch.autograd.grad(y, (x, w, b), grad_out, create_graph=True)
        results.append(first + torch.autograd.grad(sum(g.square().sum() for g in first), (x, w, b)))
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected)


def test_opcheck():
    x, w, b, r = _tensors((2, 3, 4, 5), torch.float32, torch.channels_last, True, True)
    torch.library.opcheck(ops.instance_norm_triton.default, (x, w, b, None, None, 1e-5, 1, 0.01, r))
    _, mean, var = ops.instance_norm_triton(x.detach(), None, None, None, None, 1e-5, 0, 0.01, None)
    torch.library.opcheck(ops.instance_norm_backward_triton.default,
                          (torch.randn_like(x), x.detach(), None, None, mean, var, 1e-5, True, 0, 0.01))


def test_bad_input():
    x = torch.randn(2, 3, 4, 5, device=DEVICE)
    with pytest.raises(RuntimeError, match="weight must have shape"):
        ops.instance_norm_triton(x, torch.ones(2, device=DEVICE), None, None, None, 1e-5, 0, 0.01, None)
    with pytest.raises(RuntimeError, match="activation must be 0"):
        ops.instance_norm_triton(x, None, None, None, None, 1e-5, 5, 0.01, None)
