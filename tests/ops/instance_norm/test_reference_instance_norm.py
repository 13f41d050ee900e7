"""The instance-norm reference against the normalization written out by hand in float64,
with gradients by autograd of that formula: PyTorch 2.13's CPU F.instance_norm returns a wrong
input gradient when the incoming gradient is channels_last and N = 1; the reference, and so
the torch backend and gentk.patch'ed torch modules, must not."""
import pytest
import torch

import gentk
from gentk.ops.instance_norm import reference as ref


def by_hand(x, weight, bias, eps=1e-5):
    mean = x.mean((2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean((2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight[:, None, None] + bias[:, None, None]


def _case(n, x_format, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 5, 4, generator=g, dtype=torch.float64).contiguous(memory_format=x_format)
    w = 1 + torch.rand(3, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    grad = torch.randn(n, 3, 5, 4, generator=g, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    return x, w, b, grad


def _grads(fn, x, w, b, grad):
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    return torch.autograd.grad(fn(x, w, b), (x, w, b), grad)


FORMATS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("x_format", FORMATS, ids=["x_contiguous", "x_channels_last"])
def test_reference_gradient_with_a_channels_last_gradient(n, x_format, activation):
    x, w, b, grad = _case(n, x_format)
    got = _grads(lambda *a: ref.instance_norm(*a, activation=activation), x, w, b, grad)
    want = _grads(lambda *a: ref.activate(by_hand(*a), activation), x, w, b, grad)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_patched_torch_module_gradient_with_a_channels_last_gradient(backend):
    x, w, b, grad = _case(1, torch.contiguous_format)
    norm = gentk.patch(torch.nn.InstanceNorm2d(3, affine=True).double())
    with torch.no_grad():
        norm.weight.copy_(w)
        norm.bias.copy_(b)
    xr = x.clone().requires_grad_()
    with gentk.use_backend(backend):
        got = torch.autograd.grad(norm(xr), (xr, norm.weight, norm.bias), grad)
    for a, e in zip(got, _grads(by_hand, x, w, b, grad)):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_second_order_gradient_with_a_channels_last_gradient():
    x, w, b, grad = _case(1, torch.contiguous_format)

    def grad_norm(fn):
        xr = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(fn(xr, w, b), xr, grad, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), xr)[0]

    torch.testing.assert_close(grad_norm(ref.instance_norm), grad_norm(by_hand), rtol=1e-9, atol=1e-9)


def test_empty_batch_with_affine_parameters():
    x = torch.randn(0, 3, 2, 2, dtype=torch.float64)
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    y = ref.instance_norm(x, w, torch.zeros(3, dtype=torch.float64))
    assert y.shape == x.shape
    assert torch.equal(torch.autograd.grad(y.sum(), w)[0], torch.zeros(3, dtype=torch.float64))
