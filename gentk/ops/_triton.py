"""What every Triton op family shares: whether the kernels are interpreted, the launch guard
and the registration that goes with the interpreter, and in-kernel scalar helpers.

Under ``TRITON_INTERPRET=1`` (CPU tensors), :func:`torch.library.wrap_triton` hands back
the plain interpreted kernel instead of a traceable wrapper, so a launcher cannot be traced
with fake tensors the way ``triton_op`` expects. The families therefore (a) skip kernel
launches on fake / meta tensors (:func:`can_launch`; the launcher then only computes shapes,
which is what a fake implementation is) and (b) keep their ops opaque under
``FunctionalTensorMode`` instead of decomposing them (:func:`keep_whole`; a decomposed graph
would hold no kernel at all, since nothing was traced). With a real Triton backend both
behave as ``triton_op`` intends.
"""
import triton
import triton.language as tl


@triton.jit
def _probe(x_ptr):
    tl.store(x_ptr, 0)


def _interpreted() -> bool:
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - very old / unusual triton builds
        return False
    return isinstance(_probe, InterpretedFunction)


#: True when @triton.jit produces interpreter functions (TRITON_INTERPRET=1 at import).
INTERPRETED = _interpreted()


def can_launch(*tensors) -> bool:
    """False where an interpreted kernel would be handed fake / meta tensors."""
    if not INTERPRETED:
        return True  # wrap_triton traces or launches as appropriate
    from torch._subclasses.fake_tensor import is_fake

    return not any(t is not None and (t.is_meta or is_fake(t)) for t in tensors)


def keep_whole(ops):
    """Under the interpreter, keep ``ops`` whole under FunctionalTensorMode (AOT autograd,
    torch.compile) rather than decompose launchers whose kernels cannot be traced."""
    if not INTERPRETED:
        return
    from torch._subclasses.functional_tensor import FunctionalTensorMode

    def no_decomposition(mode, op, types, args, kwargs):
        return mode.__torch_dispatch__(op, types, args, kwargs)

    for op in ops:
        op.register_torch_dispatch(FunctionalTensorMode, no_decomposition)


@triton.jit
def load_math(ptr, offs, mask, F64: tl.constexpr):
    """Masked load (0 where masked) in the math type: float64 when F64, else float32."""
    x = tl.load(ptr + offs, mask=mask, other=0)
    if F64:
        return x.to(tl.float64)
    else:
        return x.to(tl.float32)


@triton.jit
def math_scalar(v, F64: tl.constexpr):
    """A float64 scalar argument (a Python float under the interpreter) in the math type:
    float64 when F64, else float32."""
    t = tl.zeros([], tl.float64) + v
    if F64:
        return t
    else:
        return t.to(tl.float32)
