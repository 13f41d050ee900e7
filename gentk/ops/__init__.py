"""Op implementations, one file per op family per backend:

- ``reference/``: pure PyTorch, the truth in tests and the fallback;
- ``registration/``: fake tensors and autograd of the registered ``gentk::`` ops, shared by
  the compiled (cpp / cuda) ops and their Triton twins (same schemas, ``_triton`` suffix);
- ``triton/``: Triton kernels, registered with ``torch.library.triton_op``.

The compiled kernels themselves live in ``csrc/`` and load as ``gentk._C``.
"""
