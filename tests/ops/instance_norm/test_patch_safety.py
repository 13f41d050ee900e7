"""gentk.patch fuses a ReLU / LeakyReLU into the norm before it only where nothing can tell:
slicing the Sequential, hooks on the norm or the activation, and a norm used elsewhere as well
see what they saw before patching."""
import copy

import pytest
import torch
from torch import nn

import gentk
from test_instance_norm_modules import activations_run

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")


@pytest.fixture(autouse=True)
def _cpp_backend():
    with gentk.use_backend("cpp"):
        yield


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.InstanceNorm2d(4, affine=True), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), nn.InstanceNorm2d(4), nn.LeakyReLU(0.2))


X = torch.randn(2, 3, 6, 5)


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_unobserved_pairs_are_fused(monkeypatch):
    plain = _model()
    patched = gentk.patch(copy.deepcopy(plain))
    seen = activations_run(monkeypatch)
    _close(patched(X), plain(X))
    assert seen == [("relu", 0.01), ("leaky_relu", 0.2)]
    assert type(gentk.unpatch(patched)) is nn.Sequential


@pytest.mark.parametrize("stop", [2, 5])
def test_slices_give_the_unpatched_output(stop):
    plain = _model()
    patched = gentk.patch(copy.deepcopy(plain))
    _close(patched[:stop](X), plain[:stop](X))
    assert patched[:stop](X).min() < 0  # the norm's own output, not the activation's
    _close(patched[1:3](plain[0](X)), plain[1:3](plain[0](X)))


@pytest.mark.parametrize("where", [1, 2])
def test_forward_hooks_on_the_norm_or_the_activation_see_the_same_tensors(where, monkeypatch):
    seen = {}
    plain = _model()
    patched = gentk.patch(copy.deepcopy(plain))  # hooks registered after patching count too
    for name, model in (("plain", plain), ("patched", patched)):
        model[where].register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, (args[0], out)))
    fused = activations_run(monkeypatch)
    _close(patched(X), plain(X))
    for a, b in zip(seen["patched"], seen["plain"]):
        _close(a, b)
    assert [a for a, _ in fused] == [None, "leaky_relu"]  # only the pair nothing watches


def test_backward_and_global_hooks_stop_fusion(monkeypatch):
    plain = _model()
    patched = gentk.patch(copy.deepcopy(plain))
    grads = {}
    for name, model in (("plain", plain), ("patched", patched)):
        model[2].register_full_backward_hook(lambda m, gi, go, name=name: grads.__setitem__(name, go[0]))
    fused = activations_run(monkeypatch)
    patched(X).sum().backward()
    plain(X).sum().backward()
    _close(grads["patched"], grads["plain"])
    assert [a for a, _ in fused] == [None, "leaky_relu"]
    handle = nn.modules.module.register_module_forward_hook(lambda m, args, out: None)
    try:
        fused.clear()
        patched(X)
        assert [a for a, _ in fused] == [None, None]
    finally:
        handle.remove()


class _Shared(nn.Module):
    """A norm used in a Sequential (before a ReLU) and on its own."""

    def __init__(self):
        super().__init__()
        self.norm = nn.InstanceNorm2d(3)
        self.block = nn.Sequential(self.norm, nn.ReLU())

    def forward(self, x):
        return self.block(x) + 2 * self.norm(x)


def test_a_shared_norm_is_not_fused_where_it_is_used_alone():
    plain = _Shared()
    patched = gentk.patch(copy.deepcopy(plain))
    _close(patched(X), plain(X))
    _close(patched.norm(X), plain.norm(X))
