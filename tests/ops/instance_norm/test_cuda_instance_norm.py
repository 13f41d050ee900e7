"""The CUDA kernels of gentk::instance_norm (csrc/cuda/instance_norm.cu) and the Triton
twins on a GPU: values and every gradient against the float64 reference, contiguous and
channels_last, float32 / float64 / float16 / bfloat16, running statistics, compile.

Skipped unless a CUDA device is present and gentk._C was built with its CUDA kernels.
"""
import pytest
import torch

from conftest import cuda_kernel_marks

pytestmark = cuda_kernel_marks("gentk::instance_norm")

import gentk  # noqa: E402
from gentk.ops.instance_norm import reference as ref  # noqa: E402

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
TOL = {torch.float32: 1e-4, torch.float64: 1e-9, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def _cases():
    for backend in ("cuda", "triton"):
        for fmt in FORMATS:
            for shape in [(1, 1, 2, 2), (2, 3, 5, 7), (8, 64, 64, 64), (1, 3, 256, 256)]:
                # the large shapes in one dtype, as on CPU
                for dtype in (TOL if shape[1] < 64 and shape[2] < 256 else [torch.float32]):
                    yield pytest.param(shape, fmt, dtype, backend,
                                       id=f"{backend}-{fmt}-{'x'.join(map(str, shape))}-{str(dtype)[6:]}")


@pytest.mark.parametrize("shape,fmt,dtype,backend", list(_cases()))
def test_matches_reference(shape, fmt, dtype, backend):
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.randn(shape, generator=g, dtype=torch.float64) + 1)
    w = 1 + 0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64)
    r = torch.randn(shape, generator=g, dtype=torch.float64)
    cot = torch.randn(shape, generator=g, dtype=torch.float64)
    leaves = [x.to(dtype).cuda().contiguous(memory_format=FORMATS[fmt]), w.float().cuda(), b.float().cuda(),
              r.to(dtype).cuda().contiguous(memory_format=FORMATS[fmt])]
    if dtype == torch.float64:
        leaves[1], leaves[2] = leaves[1].double(), leaves[2].double()
    leaves = [t.requires_grad_() for t in leaves]
    with gentk.use_backend(backend):
        y = gentk.instance_norm(*leaves[:3], activation="leaky_relu", negative_slope=0.2, residual=leaves[3])
    assert y.dtype == dtype and y.is_contiguous(memory_format=FORMATS[fmt])
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    y_ref = ref.instance_norm(*ref_leaves[:3], activation="leaky_relu", negative_slope=0.2, residual=ref_leaves[3])
    tol = TOL[dtype]
    torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol * 10)
    grads = torch.autograd.grad(y, leaves, cot.to(dtype).cuda())
    ref_grads = torch.autograd.grad(y_ref, ref_leaves, cot.cuda())
    for got, want in zip(grads, ref_grads):
        scale = max(want.abs().max().item(), 1.0)
        torch.testing.assert_close(got.double(), want, rtol=tol * 10, atol=tol * 10 * scale)


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_running_stats(backend, fmt):
    x = torch.randn(4, 6, 9, 10, device="cuda").contiguous(memory_format=FORMATS[fmt])
    rm, rv = torch.zeros(6, device="cuda"), torch.ones(6, device="cuda")
    rm_t, rv_t = rm.clone(), rv.clone()
    with gentk.use_backend(backend):
        y = gentk.instance_norm(x, running_mean=rm, running_var=rv, momentum=0.2, activation="relu")
        y_eval = gentk.instance_norm(x, running_mean=rm, running_var=rv, use_input_stats=False)
    torch.testing.assert_close(y, ref.instance_norm(x, None, None, rm_t, rv_t, True, 0.2, activation="relu"))
    torch.testing.assert_close(rm, rm_t)
    torch.testing.assert_close(rv, rv_t)
    torch.testing.assert_close(y_eval, ref.instance_norm(x, None, None, rm_t, rv_t, False))


def test_opcheck_and_compile():
    x = torch.randn(2, 5, 6, 7, device="cuda", requires_grad=True)
    torch.library.opcheck(torch.ops.gentk.instance_norm.default, (x, None, None, None, None, 1e-5, 1, 0.01, None))
    with gentk.use_backend("cuda"):
        fn = torch.compile(lambda t: gentk.instance_norm(t, activation="relu"), fullgraph=True)
        torch.testing.assert_close(fn(x), ref.instance_norm(x, activation="relu"), rtol=1e-4, atol=1e-5)
