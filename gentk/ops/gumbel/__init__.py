"""The gumbel op family: ``functions`` (public, re-exported by gentk.functional), ``reference``
(pure PyTorch), ``registration`` (fakes and autograd of the registered ops), ``triton_kernels``."""
