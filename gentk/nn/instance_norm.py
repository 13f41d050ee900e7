"""Instance-norm modules on gentk's fused kernel, and :func:`patch` / :func:`unpatch` for
existing models.

- :class:`InstanceNorm2d` is a drop-in for ``torch.nn.InstanceNorm2d`` (it subclasses it:
  same constructor, parameters, buffers, state_dict keys and train/eval behaviour).
- :class:`InstanceNormAct2d` adds the activation (``relu`` or ``leaky_relu``) to the
  same kernel; both take an optional ``residual`` added after the activation.
- :class:`ResidualBlock` is the CycleGAN / StarGAN block: pad, conv, norm + ReLU, pad,
  conv, norm + skip, with the last norm and the skip fused.
"""
import torch
from torch import nn

from gentk import functional as F_gentk


class InstanceNorm2d(nn.InstanceNorm2d):
    """``torch.nn.InstanceNorm2d`` computed by :func:`gentk.functional.instance_norm`.

    ``forward(input, residual=None)``: ``residual`` (x's shape) is added to the output in
    the same pass.
    """

    activation = None
    negative_slope = 0.01

    def _apply_instance_norm(self, input, residual=None):
        return F_gentk.instance_norm(
            input, self.weight, self.bias, self.running_mean, self.running_var,
            use_input_stats=self.training or not self.track_running_stats,
            momentum=self.momentum if self.momentum is not None else 0.0,
            eps=self.eps, activation=self.activation, negative_slope=self.negative_slope, residual=residual,
        )

    def forward(self, input, residual=None):
        if residual is None:
            return super().forward(input)  # torch's checks, then _apply_instance_norm
        self._check_input_dim(input)
        if input.size(input.dim() - 3) != self.num_features and self.affine:
            raise ValueError(
                f"expected input's size at dim={input.dim() - 3} to match num_features "
                f"({self.num_features}), but got: {input.size(input.dim() - 3)}."
            )
        if input.dim() == 3:
            return self._apply_instance_norm(input.unsqueeze(0), residual.unsqueeze(0)).squeeze(0)
        return self._apply_instance_norm(input, residual)


class InstanceNormAct2d(InstanceNorm2d):
    """Instance norm followed by ``activation`` (``"relu"`` or ``"leaky_relu"``) in one kernel.

    The state_dict is that of ``nn.InstanceNorm2d`` with the same arguments.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None, *, activation="relu", negative_slope=0.01, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)
        if activation not in ("relu", "leaky_relu"):
            raise ValueError(f"InstanceNormAct2d: activation must be 'relu' or 'leaky_relu', got {activation!r}")
        self.activation = activation
        self.negative_slope = float(negative_slope)

    def extra_repr(self):
        extra = f", activation={self.activation}"
        if self.activation == "leaky_relu":
            extra += f", negative_slope={self.negative_slope}"
        return super().extra_repr() + extra


_PADDINGS = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}


class ResidualBlock(nn.Module):
    """x + norm(conv(pad(relu(norm(conv(pad(x))))))): the ResNet block of CycleGAN
    (affine=False, no running stats, reflect padding) and StarGAN (affine=True,
    track_running_stats=True, zero padding, no conv bias).

    padding_mode: ``"reflect"``, ``"replicate"`` or ``"zero"``.
    """

    def __init__(self, channels, padding_mode="reflect", affine=False, track_running_stats=False, conv_bias=True,
                 eps=1e-5, momentum=0.1):
        super().__init__()
        if padding_mode not in ("reflect", "replicate", "zero"):
            raise ValueError(f"ResidualBlock: padding_mode must be 'reflect', 'replicate' or 'zero', got {padding_mode!r}")
        self.padding_mode = padding_mode
        conv_pad = 1 if padding_mode == "zero" else 0
        self.pad1 = nn.Identity() if padding_mode == "zero" else _PADDINGS[padding_mode](1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=conv_pad, bias=conv_bias)
        self.norm1 = InstanceNormAct2d(channels, eps, momentum, affine, track_running_stats, activation="relu")
        self.pad2 = nn.Identity() if padding_mode == "zero" else _PADDINGS[padding_mode](1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=conv_pad, bias=conv_bias)
        self.norm2 = InstanceNorm2d(channels, eps, momentum, affine, track_running_stats)

    def forward(self, x):
        h = self.norm1(self.conv1(self.pad1(x)))
        return self.norm2(self.conv2(self.pad2(h)), residual=x)


class FusedActivation(nn.Identity):
    """Placeholder :func:`patch` leaves where an activation was fused into the norm before
    it; :func:`unpatch` puts the original module back."""

    def __init__(self, original):
        super().__init__()
        self._original = [original]  # a list, so the module is not registered as a child

    @property
    def original(self):
        return self._original[0]

    def extra_repr(self):
        return f"fused into the preceding norm: {self.original!r}"


def _fusable(act):
    if type(act) is nn.ReLU:
        return "relu", 0.01
    if type(act) is nn.LeakyReLU:
        return "leaky_relu", float(act.negative_slope)
    return None


def patch(model):
    """Switch every ``nn.InstanceNorm2d`` of ``model`` (in place) to gentk's kernel; a
    ``nn.ReLU`` / ``nn.LeakyReLU`` directly after it in an ``nn.Sequential`` is fused into
    it (its slot keeps a :class:`FusedActivation`). Parameters and buffers stay the same
    objects, so state_dict keys, checkpoints and optimizers are unaffected. Returns model.
    """
    if type(model) is nn.InstanceNorm2d:
        _switch(model, InstanceNorm2d)
        return model
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (name, child), nxt in zip(children, children[1:] + [(None, None)]):
                if type(child) is not nn.InstanceNorm2d:
                    continue
                fused = _fusable(nxt[1]) if nxt[1] is not None else None
                if fused is None:
                    _switch(child, InstanceNorm2d)
                else:
                    _switch(child, InstanceNormAct2d)
                    child.activation, child.negative_slope = fused
                    module._modules[nxt[0]] = FusedActivation(nxt[1])
    for module in model.modules():
        if type(module) is nn.InstanceNorm2d:
            _switch(module, InstanceNorm2d)
    return model


def unpatch(model):
    """Undo :func:`patch`: the original modules come back, with the same parameters."""
    for module in list(model.modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, FusedActivation):
                module._modules[name] = child.original
    for module in model.modules():
        original = module.__dict__.pop("_gentk_original_class", None)
        if original is not None:
            module.__class__ = original
            for attr in ("activation", "negative_slope"):
                module.__dict__.pop(attr, None)
    return model


def _switch(module, cls):
    module.__dict__.setdefault("_gentk_original_class", type(module))
    module.__class__ = cls
