"""The registered gentk:: ops of the Gaussian family: gradcheck in float64, opcheck,
torch.compile(fullgraph=True), every CPU instruction-set build, and the fallback when
the compiled extension is missing."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import gentk
from conftest import assert_every_isa_agrees

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")
ops = torch.ops.gentk
SEED = torch.tensor([2**62 + 12345, -987654321], dtype=torch.int64)


def _inputs(shape=(5, 67), dtype=torch.float64, requires_grad=True):
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(shape, generator=g, dtype=dtype).requires_grad_(requires_grad)
    lv = torch.randn(shape, generator=g, dtype=dtype).requires_grad_(requires_grad)
    eps = torch.randn(shape, generator=g, dtype=dtype).requires_grad_(requires_grad)
    return mu, lv, eps


@pytest.mark.parametrize("op", ["reparameterize", "gaussian_kl", "reparameterize_kl"])
def test_double_backward_is_refused_with_a_clear_error(op):
    """The backward runs fused kernels that autograd cannot differentiate again: create_graph=True
    raises rather than hand back a gradient whose own derivative is silently zero."""
    mu, lv, _ = _inputs()
    with gentk.use_backend("cpp"):
        out = getattr(gentk, op)(mu, lv)
    out = out[0] if isinstance(out, tuple) else out
    (first,) = torch.autograd.grad(out.sum(), mu, retain_graph=True)  # first order still works
    assert torch.isfinite(first).all()
    with pytest.raises(RuntimeError, match=f"gentk.{op}: double backward .* not supported"):
        torch.autograd.grad(out.sum(), mu, create_graph=True)


def _autograd_kernel_source(qualname):
    lines = [l for l in torch._C._dispatch_dump(qualname).splitlines() if l.startswith("Autograd")]
    return lines[0] if lines else ""


@pytest.mark.parametrize("op", ["reparameterize", "gaussian_kl", "reparameterize_kl"])
def test_compiled_ops_have_cpp_autograd(op):
    """Their autograd is registered in C++ (csrc/gaussian_autograd.cpp), not through
    torch.library's Python registration, whose fixed cost per call outweighs the kernels at
    a VAE's latent sizes; the Triton twins keep the Python one."""
    source = _autograd_kernel_source(f"gentk::{op}")
    assert "gaussian_autograd.cpp" in source, source
    mu, lv, _ = _inputs((4, 3), torch.float32)
    out = getattr(gentk, op)(mu, lv) if op != "gaussian_kl" else gentk.gaussian_kl(mu, lv)
    out = out[0] if isinstance(out, tuple) else out
    assert type(out.grad_fn).__name__ == "CppFunction"


@pytest.mark.parametrize("needs", ["all", "mu", "logvar", "eps"])
@pytest.mark.parametrize("reduction", ["none", "batchmean"])
def test_cpp_autograd_matches_the_reference(needs, reduction):
    """Gradients of the C++ autograd against the pure-PyTorch reference, for every subset of
    inputs that require grad (eps given), and for the Philox noise regenerated in backward."""
    mu, lv, eps = _inputs((6, 5))
    for name, t in (("mu", mu), ("logvar", lv), ("eps", eps)):
        t.requires_grad_(needs in ("all", name))
    w = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    for op in ("reparameterize", "gaussian_kl", "reparameterize_kl"):
        kwargs = {} if op == "reparameterize" else {"reduction": reduction}
        if op != "gaussian_kl":
            kwargs["eps"] = eps
        results = []
        for backend in ("cpp", "torch"):
            with gentk.use_backend(backend):
                out = getattr(gentk, op)(mu, lv, **kwargs)
            outs = out if isinstance(out, tuple) else (out,)
            if not any(o.requires_grad for o in outs):
                results.append(None)
                continue
            grads = [w if o.dim() else torch.tensor(1.7, dtype=o.dtype) for o in outs]
            outs, grads = zip(*[(o, g) for o, g in zip(outs, grads) if o.requires_grad])
            wanted = [t for t in (mu, lv, eps) if t.requires_grad]
            got = torch.autograd.grad(outs, wanted, grads, allow_unused=True)
            results.append([torch.zeros_like(t) if g is None else g for g, t in zip(got, wanted)])
        if results[1] is None:
            assert results[0] is None
            continue
        for a, b in zip(*results):
            torch.testing.assert_close(a, b)
    # in-kernel noise: backward regenerates the forward's eps = (z - mu) exp(-logvar / 2)
    mu, lv, _ = _inputs((6, 5))
    z, kl = ops.reparameterize_kl(mu, lv, None, SEED, reduction != "none", 0.5)
    eps_used = ((z - mu) * torch.exp(-0.5 * lv)).detach()
    z_ref, kl_ref = ops.reparameterize_kl(mu, lv, eps_used, None, reduction != "none", 0.5)
    gk = torch.ones_like(kl)
    got = torch.autograd.grad((z, kl), (mu, lv), (w, gk))
    want = torch.autograd.grad((z_ref, kl_ref), (mu, lv), (w, gk))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_gradcheck_reparameterize():
    mu, lv, eps = _inputs()
    assert torch.autograd.gradcheck(lambda m, l: ops.reparameterize(m, l, None, SEED), (mu, lv))
    assert torch.autograd.gradcheck(lambda m, l, e: ops.reparameterize(m, l, e, None), (mu, lv, eps))


@pytest.mark.parametrize("reduce", [False, True])
def test_gradcheck_gaussian_kl(reduce):
    mu, lv, _ = _inputs()
    assert torch.autograd.gradcheck(lambda m, l: ops.gaussian_kl(m, l, reduce, 0.2), (mu, lv))


@pytest.mark.parametrize("reduce", [False, True])
def test_gradcheck_reparameterize_kl(reduce):
    mu, lv, eps = _inputs()
    assert torch.autograd.gradcheck(lambda m, l: ops.reparameterize_kl(m, l, None, SEED, reduce, 0.5), (mu, lv))
    assert torch.autograd.gradcheck(lambda m, l, e: ops.reparameterize_kl(m, l, e, None, reduce, 0.5), (mu, lv, eps))


def _opcheck_samples():
    mu, lv, eps = _inputs((7, 3), torch.float32)
    grad = torch.randn(7, 3)
    return [
        (ops.reparameterize.default, (mu, lv, None, SEED)),
        (ops.reparameterize.default, (mu, lv, eps, None)),
        (ops.reparameterize_backward.default, (grad, lv.detach(), None, SEED)),
        (ops.gaussian_kl.default, (mu, lv, True, 0.25)),
        (ops.gaussian_kl.default, (mu, lv, False, 1.0)),
        (ops.gaussian_kl_backward.default, (torch.tensor(2.0), mu.detach(), lv.detach(), 0.25)),
        (ops.gaussian_kl_backward.default, (grad, mu.detach(), lv.detach(), 1.0)),
        (ops.reparameterize_kl.default, (mu, lv, None, SEED, True, 0.5)),
        (ops.reparameterize_kl.default, (mu, lv, eps, None, False, 1.0)),
        (ops.reparameterize_kl_backward.default, (grad, torch.tensor(1.0), mu.detach(), lv.detach(), None, SEED, 0.5)),
        (ops.reparameterize_kl_backward.default, (None, grad, mu.detach(), lv.detach(), eps.detach(), None, 1.0)),
    ]


@pytest.mark.parametrize("op,args", _opcheck_samples(), ids=lambda x: getattr(x, "__name__", ""))
def test_opcheck(op, args):
    torch.library.opcheck(op, args)


def _vae_step(x, w_enc, w_dec, eps=None):
    h = x @ w_enc
    mu, logvar = h.chunk(2, dim=-1)
    z, kl = gentk.reparameterize_kl(mu, logvar, eps=eps)
    recon = torch.sigmoid(z @ w_dec)
    return torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum") / x.shape[0] + kl


def test_compile_fullgraph_vae_step():
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 20, generator=g)
    w_enc = (0.1 * torch.randn(20, 8, generator=g)).requires_grad_()
    w_dec = (0.1 * torch.randn(4, 20, generator=g)).requires_grad_()
    eps = torch.randn(16, 4, generator=g)
    with gentk.use_backend("cpp"):
        compiled = torch.compile(_vae_step, fullgraph=True)
        loss = compiled(x, w_enc, w_dec, eps)
        grads = torch.autograd.grad(loss, [w_enc, w_dec])
        loss_eager = _vae_step(x, w_enc, w_dec, eps)
        grads_eager = torch.autograd.grad(loss_eager, [w_enc, w_dec])
        # in-kernel noise under compile: runs, finite, trains
        noisy = compiled(x, w_enc, w_dec)
        noisy.backward()
    torch.testing.assert_close(loss, loss_eager)
    for a, b in zip(grads, grads_eager):
        torch.testing.assert_close(a, b)
    assert torch.isfinite(noisy) and torch.isfinite(w_enc.grad).all()


ISA_SCRIPT = textwrap.dedent("""
    import sys, torch, gentk
    from gentk.ops.gaussian import reference as ref
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(67, 129, generator=g); lv = torch.randn(67, 129, generator=g)
    eps = torch.randn(67, 129, generator=g)
    seed = torch.tensor([11, 22])
    z = torch.ops.gentk.reparameterize(mu, lv, None, seed)
    torch.save({"noise": z, "z_eps": torch.ops.gentk.reparameterize(mu, lv, eps, None),
                "kl": torch.ops.gentk.gaussian_kl(mu, lv, True, 1.0),
                "grads": torch.ops.gentk.reparameterize_kl_backward(mu, torch.tensor(1.0), mu, lv, None, seed, 0.5)},
               sys.argv[1])
""")


def test_every_cpu_isa_build_agrees(tmp_path):
    """Each instruction-set build (forced with ATEN_CPU_CAPABILITY) gives the same results."""
    assert_every_isa_agrees(tmp_path, ISA_SCRIPT)


FALLBACK_SCRIPT = textwrap.dedent("""
    import sys, warnings
    sys.modules["gentk._C"] = None  # as if the extension had not been built
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import torch, gentk
        from gentk.ops.gaussian import reference as ref
        mu, lv, eps = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
        z = gentk.reparameterize(mu, lv, eps=eps)
        kl = gentk.gaussian_kl(mu, lv)
    msgs = [str(w.message) for w in caught if "gentk" in str(w.message)]
    assert len(msgs) == 1 and "could not be loaded" in msgs[0], msgs
    assert not gentk.extension_available()
    assert torch.equal(z, ref.reparameterize(mu, lv, eps)) and torch.equal(kl, ref.gaussian_kl(mu, lv))
    try:
        with gentk.use_backend("cpp"):
            gentk.gaussian_kl(mu, lv)
    except RuntimeError as e:
        assert "needs the compiled extension" in str(e), e
    else:
        raise AssertionError("backend cpp without the extension must raise")
    print("fallback ok")
""")


def test_missing_extension_falls_back_with_one_warning():
    out = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fallback ok" in out.stdout


def test_gentk_backend_environment_variable():
    code = "import gentk, torch; print(gentk.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, GENTK_BACKEND="torch"))
    assert out.stdout.strip() == "torch", out.stderr
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, GENTK_BACKEND="fast"))
    assert bad.returncode != 0 and "unknown GENTK_BACKEND 'fast'" in bad.stderr
