"""Loads the compiled kernels (gentk._C) once, or records why they are missing.

A missing or broken extension never breaks ``import gentk``: the ``auto`` backend falls
back to the pure-PyTorch reference with one warning, and asking for ``cpp`` or ``cuda``
by name raises an error that says why.
"""
import warnings

import torch

_loaded = False
_error = None


def _load():
    global _loaded, _error
    try:
        from gentk import _C  # noqa: F401  (registers the gentk:: ops)
    except Exception as exc:  # ImportError, or an undefined symbol from a stale build
        _error = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            "gentk: the compiled kernels (gentk._C) could not be loaded, so the 'auto' backend "
            f"falls back to the pure-PyTorch reference ({_error}). Reinstall with "
            "`pip install --no-build-isolation .` to build them.",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    from gentk.ops.gaussian import registration as gaussian

    gaussian.register_fakes()  # its autograd is in C++
    from gentk.ops.gumbel import registration as gumbel

    gumbel.register_fakes()  # its autograd is in C++
    from gentk.ops.instance_norm import registration as instance_norm

    instance_norm.register_fakes()  # its autograd is in C++
    from gentk.ops.losses import registration as losses

    losses.register_fakes()  # its autograd is in C++
    _loaded = True


def available():
    """True when gentk._C loaded and its ops are registered."""
    return _loaded


def load_error():
    """Why gentk._C is missing, or None."""
    return _error


def has_cuda_kernels():
    """True when the extension was built with its CUDA kernels."""
    if not _loaded:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key("gentk::reparameterize", "CUDA")


_load()
