"""Backend selection: ``auto`` | ``cpp`` | ``cuda`` | ``triton`` | ``torch``.

- ``gentk.set_backend("cpp")`` sets it for the process,
- ``with gentk.use_backend("triton"): ...`` for a block,
- ``GENTK_BACKEND=torch`` in the environment sets the starting value.

``auto`` picks per device: CPU -> cpp (the reference when the extension is missing),
CUDA -> the fastest backend that passed ``gentk selftest`` for the op family on that GPU
(:func:`gentk.selftest.auto_choice`; the selftest runs once on the first call of a family
without a verdict, ``GENTK_SELFTEST=0`` keeps the reference untested).
"""
import contextlib
import os


from gentk import _extension

BACKENDS = ("auto", "cpp", "cuda", "triton", "torch")



def _check(name, argname="backend"):
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"gentk: unknown {argname} {name!r}; choose one of {', '.join(BACKENDS)}")
    return name.lower()


_current = _check(os.environ.get("GENTK_BACKEND", "auto"), "GENTK_BACKEND")


def get_backend():
    """The backend name currently set (possibly ``auto``)."""
    return _current


def set_backend(name):
    """Set the backend for this process; returns the previous one."""
    global _current
    previous, _current = _current, _check(name)
    return previous


@contextlib.contextmanager
def use_backend(name):
    """Context manager: run the block with ``name`` as backend."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def _triton_usable(device):
    if device.type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET") == "1"


def resolve(family, device):
    """The concrete backend that runs op family ``family`` on ``device``."""
    name = _current
    if name == "auto":
        if device.type == "cuda":
            from gentk import selftest  # only CUDA tensors pay for importing it

            return selftest.auto_choice_by_name(family, str(device))
        return "cpp" if device.type == "cpu" and _extension.available() else "torch"
    if name in ("cpp", "cuda"):
        if not _extension.available():
            raise RuntimeError(
                f"gentk: backend {name!r} needs the compiled extension, which failed to load "
                f"({_extension.load_error()}); use backend 'torch' or 'auto', or reinstall gentk"
            )
        if name == "cpp" and device.type != "cpu":
            raise ValueError(f"gentk: backend 'cpp' runs on CPU tensors, got tensors on {device}")
        if name == "cuda":
            if device.type != "cuda":
                raise ValueError(f"gentk: backend 'cuda' runs on CUDA tensors, got tensors on {device}")
            if not _extension.has_cuda_kernels():
                raise RuntimeError("gentk: backend 'cuda' asked for, but gentk was built without CUDA kernels")
    if name == "triton" and not _triton_usable(device):
        raise ValueError(
            "gentk: backend 'triton' runs on CUDA tensors, or on CPU tensors only under the Triton "
            "interpreter (set TRITON_INTERPRET=1 before triton is imported)"
        )
    return name
