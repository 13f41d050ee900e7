"""Every public op compiles with torch.compile(fullgraph=True, dynamic=True) on the cpp
backend (CPU) and survives a change of batch size, forward and backward, matching eager.
The aot_eager compiler backend traces exactly what inductor would be handed (dynamo,
fake tensors with symbolic sizes, AOTAutograd's joint graph) without compiling C++ for
every graph, which keeps the test fast."""
import pytest
import torch

import gentk

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")


def _sigmoid_target(t):
    return torch.sigmoid(t)


# name: (function of the inputs, input shapes per batch size n, inputs that require grad)
CASES = {
    "reparameterize": (lambda mu, lv, eps: gentk.reparameterize(mu, lv, eps=eps),
                       lambda n: [(n, 4), (n, 4), (n, 4)], (0, 1, 2)),
    "reparameterize_noise": (lambda mu, lv: gentk.reparameterize(mu, lv) * 0 + mu, lambda n: [(n, 4), (n, 4)], (0, 1)),
    "gaussian_kl": (lambda mu, lv: gentk.gaussian_kl(mu, lv), lambda n: [(n, 4), (n, 4)], (0, 1)),
    "reparameterize_kl": (lambda mu, lv, eps: gentk.reparameterize_kl(mu, lv, eps=eps),
                          lambda n: [(n, 4), (n, 4), (n, 4)], (0, 1)),
    "gumbel_softmax": (lambda x, g: gentk.gumbel_softmax(x, 0.5, gumbels=g), lambda n: [(n, 5), (n, 5)], (0,)),
    "gumbel_softmax_hard": (lambda x, g: gentk.gumbel_softmax(x, 0.5, hard=True, gumbels=g),
                            lambda n: [(n, 5), (n, 5)], (0,)),
    "categorical_kl_uniform": (lambda x: gentk.categorical_kl_uniform(x), lambda n: [(n, 5)], (0,)),
    "instance_norm": (lambda x, w, b: gentk.instance_norm(x, w, b, activation="relu"),
                      lambda n: [(n, 3, 4, 4), (3,), (3,)], (0, 1, 2)),
    "discriminator_loss": (lambda r, f: gentk.discriminator_loss(r, f, "bce"), lambda n: [(n, 1, 3, 3), (n, 1, 3, 3)],
                           (0, 1)),
    "generator_loss": (lambda f: gentk.generator_loss(f, "lsgan"), lambda n: [(n, 1, 3, 3)], (0,)),
    "bernoulli_recon": (lambda x, t: gentk.bernoulli_recon(x, _sigmoid_target(t)), lambda n: [(n, 6), (n, 6)], (0,)),
    "bernoulli_recon_target_grad": (lambda x, t: gentk.bernoulli_recon(x, _sigmoid_target(t)),
                                    lambda n: [(n, 6), (n, 6)], (0, 1)),
    "bernoulli_recon_mean_target_grad": (lambda x, t: gentk.bernoulli_recon(x, _sigmoid_target(t), "mean"),
                                         lambda n: [(n, 6), (n, 6)], (0, 1)),
    "l1_loss": (lambda x, t: gentk.l1_loss(x, t, weight=2.0), lambda n: [(n, 6), (n, 6)], (0, 1)),
}


def _inputs(shapes, grads, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_(i in grads) for i, s in enumerate(shapes)]


def _result(fn, inputs, grads):
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    upstream = [torch.ones_like(o) for o in outs]
    return [o.detach() for o in outs], torch.autograd.grad(outs, [inputs[i] for i in grads], upstream)


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiles_dynamic_and_survives_a_new_batch_size(case):
    fn, shapes, grads = CASES[case]
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    with gentk.use_backend("cpp"):
        for n in (3, 5, 2):
            inputs = _inputs(shapes(n), grads, n)
            torch.manual_seed(n)
            got_out, got_grad = _result(compiled, inputs, grads)
            torch.manual_seed(n)
            want_out, want_grad = _result(fn, inputs, grads)
            for a, b in zip((*got_out, *got_grad), (*want_out, *want_grad)):
                torch.testing.assert_close(a, b)
