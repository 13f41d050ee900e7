"""The registered gentk:: ops of the Gumbel family: gradcheck in float64, opcheck,
torch.compile(fullgraph=True), and every CPU instruction-set build."""
import textwrap

import pytest
import torch

import gentk
from gentk.ops.gumbel import reference as ref
from conftest import assert_every_isa_agrees

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")
ops = torch.ops.gentk
SEED = torch.tensor([2**62 + 12345, -987654321], dtype=torch.int64)


def _logits(shape=(5, 7), dtype=torch.float64, requires_grad=True, seed=3):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(shape, generator=g, dtype=dtype)).requires_grad_(requires_grad)


@pytest.mark.parametrize("shape", [(5, 7), (3, 40)])
def test_gradcheck_gumbel_softmax(shape):
    logits = _logits(shape)
    gumbels = ref.gumbel_noise(shape, torch.float64, "cpu", torch.Generator().manual_seed(4)).requires_grad_()
    # soft samples; in-kernel noise, given noise (which gets a gradient too), no noise
    assert torch.autograd.gradcheck(lambda l: ops.gumbel_softmax(l, None, SEED, 0.7, False), (logits,))
    assert torch.autograd.gradcheck(lambda l, g: ops.gumbel_softmax(l, g, None, 0.7, False), (logits, gumbels))
    assert torch.autograd.gradcheck(lambda l: ops.gumbel_softmax(l, None, None, 1.3, False), (logits,))
    # the backward that regenerates the soft sample (used by hard samples) against one
    # that reads it: the same numbers
    grad = torch.randn(shape, dtype=torch.float64)
    soft = ops.gumbel_softmax(logits.detach(), None, SEED, 0.7, False)
    torch.testing.assert_close(ops.gumbel_softmax_backward(grad, None, logits.detach(), None, SEED, 0.7),
                               ops.gumbel_softmax_backward(grad, soft, None, None, None, 0.7), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduce", [False, True])
@pytest.mark.parametrize("shape", [(5, 7), (3, 40)])
def test_gradcheck_categorical_kl_uniform(reduce, shape):
    logits = _logits(shape)
    assert torch.autograd.gradcheck(lambda l: ops.categorical_kl_uniform(l, reduce, 0.2), (logits,))


@pytest.mark.parametrize("op", ["gumbel_softmax", "categorical_kl_uniform"])
def test_compiled_ops_have_cpp_autograd(op):
    """Their autograd is registered in C++ (csrc/gumbel_autograd.cpp), not through
    torch.library's Python registration, whose fixed cost per call outweighs the kernels at
    Joint-VAE's code sizes; the Triton twins keep the Python one."""
    lines = [l for l in torch._C._dispatch_dump(f"gentk::{op}").splitlines() if l.startswith("Autograd")]
    assert lines and "gumbel_autograd.cpp" in lines[0], lines
    with gentk.use_backend("cpp"):
        out = getattr(gentk, op)(_logits((4, 3), torch.float32))
    assert type(out.grad_fn).__name__ == "CppFunction"


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("needs", ["both", "logits", "gumbels"])
def test_cpp_gumbel_softmax_autograd_matches_the_reference(hard, needs):
    """Gradients of the C++ autograd against the pure-PyTorch reference, with given noise
    (which gets the logits' gradient too) for each subset of inputs that require grad, and
    with in-kernel noise, regenerated in backward for hard samples."""
    logits = _logits((6, 7)).requires_grad_(needs != "gumbels")
    gumbels = ref.gumbel_noise((6, 7), torch.float64, "cpu", torch.Generator().manual_seed(4))
    gumbels.requires_grad_(needs != "logits")
    w = torch.randn(6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    wanted = [t for t in (logits, gumbels) if t.requires_grad]
    results = []
    for backend in ("cpp", "torch"):
        with gentk.use_backend(backend):
            y = gentk.gumbel_softmax(logits, 0.7, hard, gumbels=gumbels)
        results.append(torch.autograd.grad(y, wanted, w))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    # in-kernel noise: the hard sample's gradient is the soft sample's (straight-through)
    logits = _logits((6, 7))
    soft = ops.gumbel_softmax(logits, None, SEED, 0.7, False)
    y = ops.gumbel_softmax(logits, None, SEED, 0.7, hard)
    torch.testing.assert_close(torch.autograd.grad(y, logits, w)[0], torch.autograd.grad(soft, logits, w)[0])


@pytest.mark.parametrize("reduction", ["none", "sum", "batchmean", "mean"])
def test_cpp_categorical_kl_autograd_matches_the_reference(reduction):
    logits = _logits((3, 4, 6))
    results = []
    for backend in ("cpp", "torch"):
        with gentk.use_backend(backend):
            kl = gentk.categorical_kl_uniform(logits, dim=1, reduction=reduction)
        w = torch.linspace(-1, 2, kl.numel(), dtype=kl.dtype).reshape(kl.shape)
        results.append(torch.autograd.grad(kl, logits, w)[0])
    torch.testing.assert_close(*results)


def _opcheck_samples():
    logits = _logits((7, 3), torch.float32)
    wide = _logits((4, 50), torch.float32)
    gumbels = ref.gumbel_noise((7, 3), torch.float32, "cpu")
    grad = torch.randn(7, 3)
    soft = torch.softmax(logits.detach(), -1)
    return [
        (ops.gumbel_softmax.default, (logits, None, SEED, 0.5, False)),
        (ops.gumbel_softmax.default, (logits, None, SEED, 0.5, True)),
        (ops.gumbel_softmax.default, (logits, gumbels.clone().requires_grad_(), None, 2.0, False)),
        (ops.gumbel_softmax.default, (wide, None, None, 1.0, True)),
        (ops.gumbel_softmax_backward.default, (grad, soft, None, None, None, 0.5)),
        (ops.gumbel_softmax_backward.default, (grad, None, logits.detach(), None, SEED, 0.5)),
        (ops.gumbel_softmax_backward.default, (grad, None, logits.detach(), gumbels, None, 0.5)),
        (ops.categorical_kl_uniform.default, (logits, True, 0.25)),
        (ops.categorical_kl_uniform.default, (wide, False, 1.0)),
        (ops.categorical_kl_uniform_backward.default, (torch.tensor(2.0), logits.detach(), 0.25)),
        (ops.categorical_kl_uniform_backward.default, (torch.randn(7), logits.detach(), 1.0)),
    ]


@pytest.mark.parametrize("index", range(len(_opcheck_samples())))
def test_opcheck(index):
    op, args = _opcheck_samples()[index]
    torch.library.opcheck(op, args)


def _joint_vae_step(x, w_enc, w_dec, gumbels=None, hard=False):
    """Encoder logits of one categorical latent, a Gumbel-Softmax sample, its KL to uniform."""
    logits = (x @ w_enc).view(x.shape[0], 2, 5)
    c = gentk.gumbel_softmax(logits, 0.67, hard, gumbels=gumbels)
    kl = gentk.categorical_kl_uniform(logits, reduction="sum") / x.shape[0]
    recon = torch.sigmoid(c.flatten(1) @ w_dec)
    return torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum") / x.shape[0] + kl



@pytest.mark.parametrize("op", ["gumbel_softmax", "categorical_kl_uniform"])
def test_double_backward_is_refused_with_a_clear_error(op):
    """The backward runs fused kernels that autograd cannot differentiate again: create_graph=True
    raises rather than hand back a gradient whose own derivative is silently zero."""
    logits = torch.randn(4, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    with gentk.use_backend("cpp"):
        out = getattr(gentk, op)(logits)
    (first,) = torch.autograd.grad(out.sum(), logits, retain_graph=True)  # first order still works
    assert torch.isfinite(first).all()
    with pytest.raises(RuntimeError, match=f"gentk.{op}: double backward .* not supported"):
        torch.autograd.grad(out.sum(), logits, create_graph=True)

def test_compile_fullgraph():
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 20, generator=g)
    w_enc = (0.3 * torch.randn(20, 10, generator=g)).requires_grad_()
    w_dec = (0.3 * torch.randn(10, 20, generator=g)).requires_grad_()
    gumbels = ref.gumbel_noise((16, 2, 5), torch.float32, "cpu", g)
    with gentk.use_backend("cpp"):
        compiled = torch.compile(_joint_vae_step, fullgraph=True)
        for hard in (False, True):
            loss = compiled(x, w_enc, w_dec, gumbels, hard)
            grads = torch.autograd.grad(loss, [w_enc, w_dec])
            loss_eager = _joint_vae_step(x, w_enc, w_dec, gumbels, hard)
            grads_eager = torch.autograd.grad(loss_eager, [w_enc, w_dec])
            torch.testing.assert_close(loss, loss_eager)
            for a, b in zip(grads, grads_eager):
                torch.testing.assert_close(a, b)
        # in-kernel noise under compile: reproducible under torch.manual_seed, and trains
        torch.manual_seed(5)
        noisy = compiled(x, w_enc, w_dec, None, True)
        other = compiled(x, w_enc, w_dec, None, True)
        torch.manual_seed(5)
        again = compiled(x, w_enc, w_dec, None, True)
        noisy.backward()
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)
    assert torch.isfinite(noisy) and torch.isfinite(w_enc.grad).all()


ISA_SCRIPT = textwrap.dedent("""
    import sys, torch, gentk
    ops = torch.ops.gentk
    g = torch.Generator().manual_seed(0)
    out = {}
    seed = torch.tensor([11, 22])
    for k in (3, 10, 100):
        for dtype in (torch.float32, torch.float64):
            l = torch.randn(67, k, generator=g, dtype=dtype) * 3
            grad = torch.randn(67, k, generator=g, dtype=dtype)
            key = f"{k}-{dtype}"
            out["soft" + key] = ops.gumbel_softmax(l, None, seed, 0.5, False)
            out["hard" + key] = ops.gumbel_softmax(l, None, seed, 0.5, True)
            out["bwd" + key] = ops.gumbel_softmax_backward(grad, None, l, None, seed, 0.5)
            out["kl" + key] = ops.categorical_kl_uniform(l, False, 1.0)
            out["klbwd" + key] = ops.categorical_kl_uniform_backward(grad[:, 0].contiguous(), l, 1.0)
    torch.save(out, sys.argv[1])
""")


def test_every_cpu_isa_build_agrees(tmp_path):
    """Each instruction-set build (forced with ATEN_CPU_CAPABILITY) draws the same noise and
    gives the same results."""
    assert_every_isa_agrees(tmp_path, ISA_SCRIPT, exact=lambda key: key.startswith("hard"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K", [5, 37, 1000])
def test_a_nan_anywhere_in_a_row_gives_the_references_row(K, dtype):
    """Wherever a NaN lands in a row (any vector lane, column or row layout), hard samples and
    the categorical KL give the reference's answer: that row NaN, the others untouched."""
    g = torch.Generator().manual_seed(K)
    for position in (0, 1, K // 2, K - 1):
        logits = torch.randn(3, K, generator=g, dtype=dtype)
        logits[1, position] = float("nan")
        gumbels = torch.randn(3, K, generator=g, dtype=dtype)
        results = {}
        for backend in ("torch", "cpp"):
            with gentk.use_backend(backend):
                results[backend] = (gentk.gumbel_softmax(logits, 0.5, hard=True, gumbels=gumbels),
                                    gentk.categorical_kl_uniform(logits, reduction="none"))
        for got, want in zip(results["cpp"], results["torch"]):
            torch.testing.assert_close(got, want, equal_nan=True)
        assert results["cpp"][0][1].isnan().all() and not results["cpp"][0][[0, 2]].isnan().any()
