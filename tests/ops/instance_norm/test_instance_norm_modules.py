"""gentk.nn instance-norm modules: InstanceNorm2d as a drop-in for torch's, the fused
InstanceNormAct2d and ResidualBlock, and gentk.patch / unpatch on a ResNet-9 CycleGAN
generator written in plain PyTorch."""
import copy
import io

import pytest
import torch
from torch import nn

import gentk
from gentk.nn import InstanceNorm2d, InstanceNormAct2d, ResidualBlock

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")


@pytest.fixture(autouse=True)
def _cpp_backend():
    with gentk.use_backend("cpp"):
        yield


@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_instance_norm2d_is_a_drop_in(affine, track, momentum):
    torch.manual_seed(0)
    ours = InstanceNorm2d(6, eps=1e-4, momentum=momentum, affine=affine, track_running_stats=track)
    theirs = nn.InstanceNorm2d(6, eps=1e-4, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())  # a torch module's state_dict loads as is
    assert repr(ours).replace("gentk.nn.", "").startswith("InstanceNorm2d(6, eps=0.0001")
    for step in range(2):
        x = torch.randn(3, 6, 7, 9).contiguous(memory_format=torch.channels_last if step else torch.contiguous_format)
        x.requires_grad_()
        xt = x.detach().clone().requires_grad_()
        y, yt = ours(x), theirs(xt)
        torch.testing.assert_close(y, yt, rtol=1e-5, atol=1e-5)
        cot = torch.randn_like(y)
        y.backward(cot)
        yt.backward(cot)
        torch.testing.assert_close(x.grad, xt.grad, rtol=1e-4, atol=1e-5)
        if affine:
            torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, rtol=1e-4, atol=1e-4)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        torch.testing.assert_close(a, b)
    ours.eval()
    theirs.eval()
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    # unbatched (C, H, W) input, as torch accepts
    torch.testing.assert_close(ours(x[0]), theirs(x[0]), rtol=1e-5, atol=1e-5)


def test_instance_norm2d_checks_channels_like_torch():
    with pytest.raises(ValueError, match="to match num_features"):
        InstanceNorm2d(4, affine=True)(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match="expected 3D or 4D input"):
        InstanceNorm2d(4)(torch.randn(4, 5))


@pytest.mark.parametrize("activation,torch_act", [("relu", nn.ReLU()), ("leaky_relu", nn.LeakyReLU(0.2))])
def test_instance_norm_act(activation, torch_act):
    torch.manual_seed(1)
    ours = InstanceNormAct2d(5, affine=True, track_running_stats=True, activation=activation, negative_slope=0.2)
    norm = nn.InstanceNorm2d(5, affine=True, track_running_stats=True)
    norm.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 8, 6, requires_grad=True)
    xt = x.detach().clone().requires_grad_()
    residual = torch.randn_like(x)
    y = ours(x, residual=residual)
    yt = torch_act(norm(xt)) + residual
    torch.testing.assert_close(y, yt, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    yt.sum().backward()
    torch.testing.assert_close(x.grad, xt.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.running_var, norm.running_var)
    assert f"activation={activation}" in repr(ours)
    with pytest.raises(ValueError, match="activation must be"):
        InstanceNormAct2d(5, activation="tanh")


def _reference_block(block):
    """The same block as torch modules (CycleGAN's ResnetBlock), sharing block's parameters."""
    pad = {"reflect": nn.ReflectionPad2d(1), "replicate": nn.ReplicationPad2d(1), "zero": nn.Identity()}
    n1 = nn.InstanceNorm2d(block.norm1.num_features, affine=block.norm1.affine,
                           track_running_stats=block.norm1.track_running_stats)
    n2 = copy.deepcopy(n1)
    n1.load_state_dict(block.norm1.state_dict())
    n2.load_state_dict(block.norm2.state_dict())
    body = nn.Sequential(copy.deepcopy(pad[block.padding_mode]), copy.deepcopy(block.conv1), n1, nn.ReLU(True),
                         copy.deepcopy(pad[block.padding_mode]), copy.deepcopy(block.conv2), n2)
    return body


@pytest.mark.parametrize("padding_mode,affine,track", [("reflect", False, False), ("zero", True, True),
                                                       ("replicate", False, False)])
def test_residual_block(padding_mode, affine, track):
    torch.manual_seed(2)
    block = ResidualBlock(8, padding_mode=padding_mode, affine=affine, track_running_stats=track,
                          conv_bias=not affine)
    body = _reference_block(block)
    x = torch.randn(2, 8, 9, 10, requires_grad=True)
    xt = x.detach().clone().requires_grad_()
    y, yt = block(x), xt + body(xt)
    torch.testing.assert_close(y, yt, rtol=1e-4, atol=1e-5)
    y.square().sum().backward()
    yt.square().sum().backward()
    torch.testing.assert_close(x.grad, xt.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(block.conv1.weight.grad, body[1].weight.grad, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="padding_mode"):
        ResidualBlock(4, padding_mode="circular")


# ---- a ResNet-9 CycleGAN generator, written the usual way in plain PyTorch -------------

class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


def resnet9_generator(ngf=8, norm=nn.InstanceNorm2d):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(2):
        mult = 2 ** i
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), norm(ngf * mult * 2),
                   nn.ReLU(True)]
    layers += [ResnetBlock(ngf * 4) for _ in range(9)]
    for i in range(2):
        mult = 2 ** (2 - i)
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                   norm(ngf * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def activations_run(monkeypatch):
    """The activation of every gentk.instance_norm call from now on (fused ones: not None)."""
    seen, real = [], gentk.functional.instance_norm

    def spy(*args, **kwargs):
        seen.append((kwargs.get("activation"), kwargs.get("negative_slope")))
        return real(*args, **kwargs)

    monkeypatch.setattr(gentk.functional, "instance_norm", spy)
    return seen


def _step(model, x):
    out = model(x)
    out.square().mean().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels_last"])
def test_patch_resnet9_generator(fmt, monkeypatch):
    torch.manual_seed(3)
    plain = resnet9_generator().to(memory_format=fmt)
    patched = copy.deepcopy(plain)
    keys = list(plain.state_dict())
    params_before = {n: id(p) for n, p in patched.named_parameters()}
    assert gentk.patch(patched) is patched
    norms = [m for m in patched.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 23 and all(isinstance(m, InstanceNorm2d) for m in norms)
    assert sum(type(m) is nn.ReLU for m in patched.modules()) == 14  # the ReLUs stay in place
    assert list(patched.state_dict()) == keys
    assert {n: id(p) for n, p in patched.named_parameters()} == params_before  # optimizers stay valid

    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=fmt)
    seen = activations_run(monkeypatch)
    out, grads = _step(patched, x)
    assert [a for a, _ in seen].count("relu") == 5 + 9  # 5 norm+ReLU in the trunk, one per residual block
    out_ref, grads_ref = _step(plain, x)
    torch.testing.assert_close(out, out_ref, rtol=1e-4, atol=1e-5)
    for name in grads_ref:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-3, atol=1e-5, msg=name)

    # checkpoints load both ways
    buf = io.BytesIO()
    torch.save(patched.state_dict(), buf)
    buf.seek(0)
    fresh = resnet9_generator()
    fresh.load_state_dict(torch.load(buf))
    gentk.patch(fresh).load_state_dict(plain.state_dict())

    assert gentk.unpatch(patched) is patched
    assert not any(isinstance(m, InstanceNorm2d) for m in patched.modules())
    assert all(type(m) is nn.Sequential for m in patched.modules() if isinstance(m, nn.Sequential))
    assert list(patched.state_dict()) == keys
    patched.zero_grad()
    plain.zero_grad()
    out2, _ = _step(patched, x)
    torch.testing.assert_close(out2, plain(x).detach())


def test_patch_stargan_style_norms_with_running_stats_and_leaky_relu(monkeypatch):
    torch.manual_seed(4)

    def norm(c):
        return nn.InstanceNorm2d(c, affine=True, track_running_stats=True)

    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), norm(8), nn.LeakyReLU(0.01),
                          nn.Conv2d(8, 8, 3, padding=1), norm(8), nn.ReLU())
    patched = gentk.patch(copy.deepcopy(plain))
    x = torch.randn(4, 3, 12, 12)
    seen = activations_run(monkeypatch)
    for _ in range(2):
        torch.testing.assert_close(patched(x), plain(x), rtol=1e-4, atol=1e-5)
    assert seen == [("leaky_relu", 0.01), ("relu", 0.01)] * 2
    for a, b in zip(patched.state_dict().values(), plain.state_dict().values()):
        torch.testing.assert_close(a, b)
    patched.eval()
    plain.eval()
    torch.testing.assert_close(patched(x), plain(x), rtol=1e-4, atol=1e-5)
    # a norm alone, not in a Sequential, is switched without fusion
    single = gentk.patch(nn.InstanceNorm2d(3))
    assert type(single) is InstanceNorm2d
    assert type(gentk.unpatch(single)) is nn.InstanceNorm2d
