"""What the op families' registration modules share (``gentk/ops/<family>/registration.py``): the
first-order guard of fused backward formulas and the device-checked fake registration."""
import functools

import torch


def first_order(op, what="op"):
    """Marks a registered backward whose formula runs gentk's fused kernels, which autograd
    cannot differentiate again: under create_graph=True it raises, as the compiled losses' C++
    autograd does, instead of returning gradients whose own derivative would silently be zero."""

    def decorate(backward):
        @functools.wraps(backward)
        def checked(ctx, *grads):
            if torch.is_grad_enabled():
                raise RuntimeError(f"gentk.{op}: double backward (create_graph=True) through the compiled {what} is "
                                   f"not supported; compute it with gentk.use_backend('torch')")
            return backward(ctx, *grads)

        return checked

    return decorate


def register_fake(qualname):
    """``torch.library.register_fake`` with the device check the compiled ops make: every
    tensor argument on one device. A meta tensor among CPU ones dispatches to the fake, which
    would otherwise hand back an uninitialized CPU tensor."""
    namespace, op = qualname.split("::")
    names = [a.name for a in getattr(getattr(torch.ops, namespace), op).default._schema.arguments]

    def decorate(fake):
        @functools.wraps(fake)
        def checked(*args, **kwargs):
            given = {**dict(zip(names, args)), **kwargs}
            tensors = [(name, t) for name, t in given.items() if isinstance(t, torch.Tensor)]
            for name, t in tensors[1:]:
                first, ref = tensors[0]
                if t.device != ref.device:
                    raise RuntimeError(f"gentk::{op}: {name} is on {t.device} but {first} is on {ref.device}")
            return fake(*args, **kwargs)

        return torch.library.register_fake(qualname)(checked)

    return decorate
