"""VAE likelihood metrics, in nats per example.

- ``negative_elbo``: the test -ELBO (analytic KL, one posterior sample per example).
- ``importance_nll``: -log p(x) estimated with k importance samples from q(z|x)
  (Burda et al. 2016): -log (1/k sum_i p(x, z_i) / q(z_i|x)); an upper bound on the true
  NLL that tightens as k grows and is never above the -ELBO in expectation.

Both take any model with ``negative_elbo(x)`` / ``log_importance_weights(x, k)``.
"""
import math

import torch

from gentk.models.base import first_tensor


def image_batches(data, batch_size, max_examples, device):
    """The images of ``data`` (its first tensor), at most ``max_examples``, in batches on ``device``."""
    if hasattr(data, "tensors"):
        images = data.tensors[0]
    else:
        images = torch.stack([first_tensor(data[i]) for i in range(len(data))])
    if max_examples is not None:
        images = images[:max_examples]
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size].to(device)


@torch.no_grad()
def negative_elbo(model, data, batch_size=500, max_examples=None):
    model.eval()
    total, count = 0.0, 0
    for x in image_batches(data, batch_size, max_examples, model.device):
        total += model.negative_elbo(x).double().sum().item()
        count += len(x)
    model.train()
    return total / count


@torch.no_grad()
def importance_nll(model, data, k=100, max_examples=None, budget=5000):
    """budget: examples x samples decoded at once (memory)."""
    if k < 1:
        raise ValueError(f"importance_nll: k must be at least 1, got {k}")
    model.eval()
    total, count = 0.0, 0
    for x in image_batches(data, max(1, budget // k), max_examples, model.device):
        log_w = model.log_importance_weights(x, k).double()
        total += -(torch.logsumexp(log_w, dim=0) - math.log(k)).sum().item()
        count += len(x)
    model.train()
    return total / count
