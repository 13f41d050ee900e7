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

    def _apply_instance_norm(self, input, residual=None, activation=None, negative_slope=None):
        """activation None: this module's own (InstanceNormAct2d's, or none)."""
        if activation is None:
            activation, negative_slope = self.activation, self.negative_slope
        return F_gentk.instance_norm(
            input, self.weight, self.bias, self.running_mean, self.running_var,
            use_input_stats=self.training or not self.track_running_stats,
            momentum=self.momentum if self.momentum is not None else 0.0,
            eps=self.eps, activation=activation, negative_slope=negative_slope, residual=residual,
        )

    def forward(self, input, residual=None):
        if residual is None:
            return super().forward(input)  # torch's checks, then _apply_instance_norm
        return self._checked_forward(input, residual)

    def _checked_forward(self, input, residual=None, activation=None, negative_slope=None):
        """forward with torch's checks written out, for a residual or an activation fused by patch."""
        self._check_input_dim(input)
        if input.size(input.dim() - 3) != self.num_features and self.affine:
            raise ValueError(
                f"expected input's size at dim={input.dim() - 3} to match num_features "
                f"({self.num_features}), but got: {input.size(input.dim() - 3)}."
            )
        if input.dim() == 3:
            residual = None if residual is None else residual.unsqueeze(0)
            return self._apply_instance_norm(input.unsqueeze(0), residual, activation, negative_slope).squeeze(0)
        return self._apply_instance_norm(input, residual, activation, negative_slope)


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


def _fusable(act):
    if type(act) is nn.ReLU:
        return "relu", 0.01
    if type(act) is nn.LeakyReLU:
        return "leaky_relu", float(act.negative_slope)
    return None


_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")


def _hooked(module):
    return (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
            or module._backward_pre_hooks or any(getattr(torch.nn.modules.module, name) for name in _GLOBAL_HOOKS))


def _fusion(norm, act):
    """(activation, negative_slope) when ``norm`` then ``act`` can run as one kernel unseen."""
    if type(norm) is not InstanceNorm2d or _hooked(norm) or _hooked(act):
        return None
    return _fusable(act)


class _FusingSequential(nn.Sequential):
    """The ``nn.Sequential`` :func:`patch` leaves where a norm is followed by a ReLU / LeakyReLU:
    its forward runs such a pair as one kernel while neither module has hooks. Both modules stay
    in place, so indexing, slicing (a slice fuses only the pairs it holds), hooks and a norm used
    elsewhere as well see what they saw before."""

    def forward(self, input):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            fused = _fusion(modules[i], modules[i + 1]) if i + 1 < len(modules) else None
            if fused is None:
                input = modules[i](input)
                i += 1
            else:
                input = modules[i]._checked_forward(input, None, *fused)
                i += 2
        return input


def _has_fusable_pair(sequential):
    children = list(sequential._modules.values())
    return any(type(a) is InstanceNorm2d and _fusable(b) for a, b in zip(children, children[1:]))


def patch(model):
    """Switch every ``nn.InstanceNorm2d`` of ``model`` (in place) to gentk's kernel. An
    ``nn.Sequential`` holding one directly followed by an ``nn.ReLU`` / ``nn.LeakyReLU`` runs
    the two as one kernel while neither has hooks; the modules stay where they were (see
    :class:`_FusingSequential`). Parameters and buffers stay the same objects, so state_dict
    keys, checkpoints and optimizers are unaffected. Returns model.
    """
    for module in model.modules():
        if type(module) is nn.InstanceNorm2d:
            _switch(module, InstanceNorm2d)
    for module in model.modules():
        if type(module) is nn.Sequential and _has_fusable_pair(module):
            _switch(module, _FusingSequential)
    return model


def unpatch(model):
    """Undo :func:`patch`: the original module classes come back, with the same parameters."""
    for module in model.modules():
        original = module.__dict__.pop("_gentk_original_class", None)
        if original is not None:
            module.__class__ = original
    return model


def _switch(module, cls):
    module.__dict__.setdefault("_gentk_original_class", type(module))
    module.__class__ = cls
