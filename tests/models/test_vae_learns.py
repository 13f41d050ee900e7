"""The VAE learns real MNIST: on the shared MNIST test set (first 8,000 images to train,
last 2,000 held out), 200 Adam steps at batch 100 take the held-out -ELBO from ~550 nats
(untrained) below 200 nats (measured: 156 with the MLP). Skipped when the shared data is
absent."""
import os

import pytest
import torch
from torch.utils.data import TensorDataset

from gentk import data
from gentk.metrics import importance_nll, negative_elbo
from gentk.models import build
from gentk.train import Trainer, seed_everything

SHARED_MNIST = "/work/shared/data/mnist"
STEPS, BOUND = 200, 200.0


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="shared MNIST test set not present")
def test_vae_learns_mnist(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2 shared cores are busy; one thread avoids oversubscription stalls
    try:
        x, y = data.mnist(SHARED_MNIST, "test").tensors
        train, test = TensorDataset(x[:8000], y[:8000]), TensorDataset(x[8000:], y[8000:])
        seed_everything(0)
        model = build("vae", arch="mlp")
        before = negative_elbo(model, test)
        Trainer(model, train, str(tmp_path), steps=STEPS, batch_size=100, progress=False).fit()
        after = negative_elbo(model, test)
        nll = importance_nll(model, test, k=20, max_examples=500)
    finally:
        torch.set_num_threads(threads)
    assert before > 500
    assert after < BOUND, f"held-out -ELBO {after:.1f} nats after {STEPS} steps (bound {BOUND})"
    assert nll < negative_elbo(model, TensorDataset(x[8000:8500], y[8000:8500]))
