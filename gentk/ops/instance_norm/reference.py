"""Pure-PyTorch reference of the instance-norm family: the truth in tests, the ``torch``
backend, and what the benchmarks call ``eager`` (and ``compile``, under torch.compile).

It is ``F.instance_norm`` with two PyTorch 2.13 bugs worked around: the CPU kernel returns a
wrong input gradient when the incoming gradient is channels_last and N = 1 (so that gradient
is made contiguous first), and an empty batch with affine parameters raises an IndexError
(so the affine part is applied outside)."""
import torch.nn.functional as F


def activate(y, activation, negative_slope=0.01):
    if activation == "relu":
        return F.relu(y)
    if activation == "leaky_relu":
        return F.leaky_relu(y, negative_slope)
    return y


def _contiguous(grad):
    return grad.contiguous()


def instance_norm(x, weight=None, bias=None, running_mean=None, running_var=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5, activation=None, negative_slope=0.01, residual=None):
    if x.shape[0] == 0:
        y = F.instance_norm(x, running_mean, running_var, None, None, use_input_stats, momentum, eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = y if weight is None else y * weight.reshape(shape)
        y = y if bias is None else y + bias.reshape(shape)
    else:
        y = F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
        if x.shape[0] == 1 and y.requires_grad:
            y.register_hook(_contiguous)  # runs on the gradient of y, before F.instance_norm's backward
    y = activate(y, activation, negative_slope)
    return y if residual is None else y + residual
