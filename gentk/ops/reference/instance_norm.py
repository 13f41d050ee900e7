"""Pure-PyTorch reference of the instance-norm family: the truth in tests, the ``torch``
backend, and what the benchmarks call ``eager`` (and ``compile``, under torch.compile)."""
import torch.nn.functional as F


def activate(y, activation, negative_slope=0.01):
    if activation == "relu":
        return F.relu(y)
    if activation == "leaky_relu":
        return F.leaky_relu(y, negative_slope)
    return y


def instance_norm(x, weight=None, bias=None, running_mean=None, running_var=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5, activation=None, negative_slope=0.01, residual=None):
    y = F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
    y = activate(y, activation, negative_slope)
    return y if residual is None else y + residual
