"""The registered gentk::instance_norm ops: gradcheck in float64, opcheck,
torch.compile(fullgraph=True) with running statistics, and every CPU instruction-set
build."""
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import gentk
from conftest import assert_every_isa_agrees

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")
ops = torch.ops.gentk
CODES = {None: 0, "relu": 1, "leaky_relu": 2}


def _inputs(shape=(2, 3, 4, 5), fmt=torch.contiguous_format, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
    w = (1 + 0.3 * torch.randn(shape[1], generator=g, dtype=dtype)).requires_grad_()
    b = (0.3 * torch.randn(shape[1], generator=g, dtype=dtype)).requires_grad_()
    r = torch.randn(shape, generator=g, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
    return x, w, b, r


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_gradcheck_training(fmt, activation):
    x, w, b, r = _inputs(fmt=fmt)

    def fn(x, w, b, r):
        return gentk.instance_norm(x, w, b, activation=activation, negative_slope=0.1, residual=r)

    with gentk.use_backend("cpp"):
        assert torch.autograd.gradcheck(fn, (x, w, b, r))
        assert torch.autograd.gradcheck(lambda x: gentk.instance_norm(x, activation=activation), (x,))


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels_last"])
def test_gradcheck_running_stats(fmt):
    x, w, b, r = _inputs(fmt=fmt)
    rm = torch.randn(3, dtype=torch.float64)
    rv = torch.rand(3, dtype=torch.float64) + 0.5

    def fn(x, w, b):
        return gentk.instance_norm(x, w, b, rm, rv, use_input_stats=False, activation="relu")

    with gentk.use_backend("cpp"):
        assert torch.autograd.gradcheck(fn, (x, w, b))


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_gradgradcheck(activation):
    """Second-order gradients (create_graph=True, as WGAN-GP's penalty takes through a critic)
    are exact: backward then differentiates the normalization written in torch ops."""
    x, w, b, r = _inputs(shape=(2, 3, 3, 4))
    rm = torch.randn(3, dtype=torch.float64)
    rv = torch.rand(3, dtype=torch.float64) + 0.5
    with gentk.use_backend("cpp"):
        assert torch.autograd.gradgradcheck(
            lambda x, w, b, r: gentk.instance_norm(x, w, b, activation=activation, negative_slope=0.1, residual=r),
            (x, w, b, r))
        assert torch.autograd.gradgradcheck(
            lambda x, w, b: gentk.instance_norm(x, w, b, rm, rv, use_input_stats=False, activation=activation),
            (x, w, b))


@pytest.mark.parametrize("given", ["x", "w", "b", "r", "w,r", "b,r"])
def test_gradients_of_any_subset_of_inputs(given):
    """Only the inputs asked for get gradients, whichever optional inputs are absent (the C++
    autograd maps its arguments to graph edges by which tensors were given)."""
    x, w, b, r = _inputs(shape=(2, 3, 4, 4))
    tensors = {"x": x, "w": w, "b": b, "r": r}
    wanted = given.split(",")
    for name, t in tensors.items():
        t.requires_grad_(name in wanted)
    weight = w if "w" in given or "b" not in given else None  # bias without weight too
    args = dict(weight=weight, bias=b, activation="relu", residual=r)
    grad_out = torch.randn(x.shape, dtype=x.dtype)
    expected = torch.autograd.grad(F.relu(F.instance_norm(x, weight=weight, bias=b)) + r, [tensors[n] for n in wanted],
                                   grad_out)
    with gentk.use_backend("cpp"):
        got = torch.autograd.grad(gentk.instance_norm(x, **args), [tensors[n] for n in wanted], grad_out)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e)


def test_gradcheck_3d():
    x, w, b, r = _inputs(shape=(2, 3, 11))
    with gentk.use_backend("cpp"):
        assert torch.autograd.gradcheck(lambda x, w, b: gentk.instance_norm(x, w, b, activation="leaky_relu"), (x, w, b))


def _opcheck_samples():
    samples = []
    for fmt, name in ((torch.contiguous_format, "contiguous"), (torch.channels_last, "channels_last")):
        x, w, b, r = _inputs(shape=(2, 5, 3, 4), fmt=fmt, dtype=torch.float32)
        rm, rv = torch.zeros(5), torch.ones(5)
        samples += [
            pytest.param(ops.instance_norm.default, (x, w, b, None, None, 1e-5, 1, 0.01, r), id=f"train-{name}"),
            pytest.param(ops.instance_norm.default, (x, None, None, None, None, 1e-5, 0, 0.01, None), id=f"plain-{name}"),
            pytest.param(ops.instance_norm.default, (x, w, b, rm, rv, 1e-5, 2, 0.2, None), id=f"eval-{name}"),
        ]
        with torch.no_grad():
            _, mean, var = ops.instance_norm(x, w, b, None, None, 1e-5, 1, 0.01, None)
        grad = torch.randn_like(x)
        samples.append(pytest.param(
            ops.instance_norm_backward.default,
            (grad, x.detach(), w.detach(), b.detach(), mean, var, 1e-5, True, 1, 0.01), id=f"backward-{name}"))
    return samples


@pytest.mark.parametrize("op,args", _opcheck_samples())
def test_opcheck(op, args):
    torch.library.opcheck(op, args)


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.InstanceNorm2d(8, affine=True, track_running_stats=True)
        self.act = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.norm2 = torch.nn.InstanceNorm2d(8)

    def forward(self, x):
        h = self.act(self.norm(self.conv(x)))
        return self.norm2(self.conv2(h)) + h


def test_compile_fullgraph_training_step():
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = _Block()
    patched = gentk.patch(_Block())
    patched.load_state_dict(eager.state_dict())
    x = torch.randn(2, 3, 10, 12)
    with gentk.use_backend("cpp"):
        compiled = torch.compile(patched, fullgraph=True)
        for _ in range(2):  # the second call checks the running-stat update compiled in
            out = compiled(x)
            ref_out = eager(x)
            torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
            out.square().mean().backward()
            ref_out.square().mean().backward()
        torch.testing.assert_close(patched.norm.running_mean, eager.norm.running_mean)
        torch.testing.assert_close(patched.norm.running_var, eager.norm.running_var)
        for (name, p), q in zip(patched.named_parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
        patched.eval()
        eager.eval()
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-5)


ISA_SCRIPT = textwrap.dedent("""
    import sys, torch, gentk
    g = torch.Generator().manual_seed(0)
    out = {}
    x0 = torch.randn(3, 37, 9, 11, generator=g) + 5
    w, b = torch.randn(37, generator=g), torch.randn(37, generator=g)
    r0 = torch.randn(x0.shape, generator=g)  # not randn_like: its draws differ per ISA
    for name, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
        x, r = x0.contiguous(memory_format=fmt), r0.contiguous(memory_format=fmt)
        y, mean, var = torch.ops.gentk.instance_norm(x, w, b, None, None, 1e-5, 2, 0.1, r)
        grads = torch.ops.gentk.instance_norm_backward(r, x, w, b, mean, var, 1e-5, True, 2, 0.1)
        out[name] = (y.contiguous(), mean, var) + tuple(t.contiguous() for t in grads)
    torch.save(out, sys.argv[1])
""")


def test_every_cpu_isa_build_agrees(tmp_path):
    """Each instruction-set build (forced with ATEN_CPU_CAPABILITY) gives the same results."""
    base = assert_every_isa_agrees(tmp_path, ISA_SCRIPT)
    # and the two layouts agree with each other
    for a, b in zip(base["nchw"], base["nhwc"]):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5)


FALLBACK_SCRIPT = textwrap.dedent("""
    import sys, warnings
    sys.modules["gentk._C"] = None  # as if the extension had not been built
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch, gentk
    import torch.nn.functional as F
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    y = gentk.instance_norm(x, activation="relu")
    assert torch.equal(y, F.relu(F.instance_norm(x)))
    model = gentk.patch(torch.nn.Sequential(torch.nn.InstanceNorm2d(3), torch.nn.ReLU()))
    assert torch.equal(model(x), y)
    model(x).sum().backward()
    print("fallback ok")
""")


def test_missing_extension_falls_back_to_reference():
    out = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fallback ok" in out.stdout


BUFFER_CACHE_SCRIPT = textwrap.dedent("""
    import torch, gentk
    x = torch.randn(2, 8, 128, 128)  # 1 MiB: large enough for the buffer cache
    y = torch.ops.gentk.instance_norm(x, None, None, None, None, 1e-5, 0, 0.01, None)[0]
    first = y.data_ptr()
    expected = torch.nn.functional.instance_norm(x)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    del y
    y = torch.ops.gentk.instance_norm(x, None, None, None, None, 1e-5, 0, 0.01, None)[0]
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    print(y.data_ptr() == first)
""")


@pytest.mark.parametrize("cache_mb, reused", [(None, True), ("0", False)])
def test_large_outputs_reuse_freed_buffers(cache_mb, reused):
    """A freed output of >= 1 MiB comes back for the next call of the same size (no fresh
    pages to fault in), unless GENTK_CPU_BUFFER_CACHE_MB=0 turns the cache off."""
    import os

    env = dict(os.environ)
    env.pop("GENTK_CPU_BUFFER_CACHE_MB", None)
    if cache_mb is not None:
        env["GENTK_CPU_BUFFER_CACHE_MB"] = cache_mb
    out = subprocess.run([sys.executable, "-c", BUFFER_CACHE_SCRIPT], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(reused)
