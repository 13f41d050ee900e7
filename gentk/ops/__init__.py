"""Op implementations, one package per op family (``gaussian``, ``gumbel``, ``instance_norm``,
``losses``), each with:

- ``functions``: the public functions (re-exported by :mod:`gentk.functional`): argument
  checks, backend choice, the call;
- ``reference``: pure PyTorch, the truth in tests and the ``torch`` backend;
- ``registration``: fake tensors of the registered ``gentk::`` ops and autograd of their
  Triton twins (same schemas, ``_triton`` suffix; the compiled ops' autograd is in C++);
- ``triton_kernels``: Triton kernels, registered with ``torch.library.triton_op``.

Shared once: ``_checks`` (argument checks of several families), ``_registration``,
``_triton`` / ``_triton_checks`` / ``_philox_triton`` (the Triton runtime, launch guards and
Philox), ``table`` (which op each backend runs). The compiled kernels live in ``csrc/`` and
load as ``gentk._C``.
"""
