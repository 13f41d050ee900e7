"""Benchmark cases of the Gumbel family: gumbel_softmax (in-kernel noise, soft and hard)
against ``torch.nn.functional.gumbel_softmax`` (eager, and torch.compile of it), and
categorical_kl_uniform (batchmean) against the pure-PyTorch reference."""
import torch
import torch.nn.functional as F

import gentk
from benchmarks.harness import Case
from gentk.ops.gumbel import reference as ref

TAU = 0.67  # Joint-VAE's temperature
# (64, 10): Joint-VAE's categorical code at batch 64, where the fixed cost per call dominates
GUMBEL_SHAPES = [(8192, 10), (1024, 1000), (64, 10)]
KL_SHAPES = [(8192, 10), (64, 10)]


def _inputs(shape):
    def make(device, dtype):
        g = torch.Generator().manual_seed(0)
        logits = (2 * torch.randn(shape, generator=g, dtype=dtype)).to(device).requires_grad_()
        return {"logits": logits}

    return make


def _bytes(n_fwd, n_bwd):
    """Tensors of logits' size moved: forward, backward."""

    def count(inputs, mode):
        t = inputs["logits"]
        elems = t.numel() * t.element_size()
        return {"forward": n_fwd * elems, "backward": n_bwd * elems, "forward+backward": (n_fwd + n_bwd) * elems}[mode]

    return count


def cases(dtype=torch.float32):
    out = []
    for shape in GUMBEL_SHAPES:
        label = "x".join(map(str, shape))
        for hard in (False, True):
            op = "gumbel_softmax_hard" if hard else "gumbel_softmax"
            out.append(Case(
                "gumbel", op, label, _inputs(shape),
                reference=lambda logits, hard=hard: F.gumbel_softmax(logits, tau=TAU, hard=hard),
                gentk=lambda logits, hard=hard: gentk.gumbel_softmax(logits, TAU, hard),
                dtype=dtype,
                # soft: fwd reads logits, writes y; bwd reads grad and the saved y, writes grad.
                # hard: the same traffic, with logits read again in place of y.
                bytes_moved=_bytes(2, 3),
            ))
    for shape in KL_SHAPES:
        label = "x".join(map(str, shape))
        out.append(Case(
            "gumbel", "categorical_kl_uniform", label, _inputs(shape),
            reference=lambda logits: ref.categorical_kl_uniform(logits),
            gentk=lambda logits: gentk.categorical_kl_uniform(logits),
            dtype=dtype,
            bytes_moved=_bytes(1, 2),
        ))
    return out
