"""Argument checks of the Triton ops, with the wording of ``csrc/checks.h``. Registered ops
are public (torch.compile, opcheck and users call them directly), so every tensor an op
reads is checked, forward and backward, with a one-line error naming the op and the argument.

Under the interpreter the ops take CPU tensors, otherwise GPU ones; meta tensors pass the
device-type check (they stand for either when shapes are traced)."""
import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def fail(op, msg):
    raise RuntimeError(f"gentk::{op}: {msg}")


def check_device_type(op, name, t, interpreted):
    kind = t.device.type
    if kind == "meta":
        return
    if interpreted and kind != "cpu":
        fail(op, f"expected tensors on cpu (Triton interpreter), got {name} on {t.device}")
    if not interpreted and kind == "cpu":
        fail(op, f"expected tensors on a GPU, got {name} on {t.device}")


def check_floating(op, name, t):
    if not t.dtype.is_floating_point:
        fail(op, f"{name} must be floating point, got {t.dtype}")
    if t.dtype not in FLOAT_DTYPES:
        fail(op, f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")


def check_same_device(op, name, t, ref_name, ref):
    if t.device != ref.device:
        fail(op, f"{name} is on {t.device} but {ref_name} is on {ref.device}")


def check_like(op, name, t, ref_name, ref, same_shape=True):
    """t on ref's device, in ref's dtype and (same_shape) of ref's shape."""
    check_same_device(op, name, t, ref_name, ref)
    if t.dtype != ref.dtype:
        fail(op, f"{name} has dtype {t.dtype} but {ref_name} has {ref.dtype}")
    if same_shape and t.shape != ref.shape:
        fail(op, f"{name} must have {ref_name}'s shape {list(ref.shape)}, got {list(t.shape)}")


def check_grad(op, name, grad, ref_name, ref, per_element_shape, per_element):
    """The upstream gradient: like ref (device, dtype), of ``per_element_shape`` or (not
    ``per_element``: a reduced output) one value."""
    check_like(op, name, grad, ref_name, ref, same_shape=False)
    if per_element and grad.shape != per_element_shape:
        fail(op, f"{name} must have shape {list(per_element_shape)} to match {ref_name}, got {list(grad.shape)}")
    if not per_element and grad.numel() != 1:
        fail(op, f"{name} of a reduced output must hold one value, got shape {list(grad.shape)} "
                 f"({ref_name} is {list(ref.shape)})")


def check_grad_either(op, name, grad, ref_name, ref, per_element_shape):
    """The upstream gradient of an output that may be reduced or not: of ``per_element_shape``
    or one value."""
    check_like(op, name, grad, ref_name, ref, same_shape=False)
    if grad.shape != per_element_shape and grad.numel() != 1:
        fail(op, f"{name} must have shape {list(per_element_shape)} to match {ref_name} or hold one value "
                 f"(a reduced output), got {list(grad.shape)}")


def check_seed(op, seed, ref_name, ref):
    """(seed, stream) of in-kernel Philox noise."""
    if seed.dtype != torch.int64 or seed.numel() != 2:
        fail(op, f"seed must be an int64 tensor of two elements (seed, stream), got {seed.dtype} of shape "
                 f"{list(seed.shape)}")
    check_same_device(op, "seed", seed, ref_name, ref)
