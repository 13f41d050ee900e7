"""gentk benchmarks: every gentk op against the pure-PyTorch reference (``eager``) and
torch.compile of that reference (``compile``), side by side in one process.
Run ``python -m benchmarks --help``."""
