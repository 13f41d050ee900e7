"""Sample quality through an evaluator classifier: a small CNN trained once per data set
(and resolution) on its training split, cached under the output folder.

With it, for generated images: accuracy against their intended labels (conditional models),
class coverage, the entropy of the predicted-class histogram, and the Frechet distance
between Gaussians fitted to the evaluator's penultimate features of generated and real
test images (FID's formula on a feature net that fits digits, not Inception).
"""
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from gentk.train.checkpoint import atomic_save


class EvaluatorCNN(nn.Module):
    def __init__(self, channels=1, resolution=28, classes=10, features=128):
        super().__init__()
        side = resolution // 4
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * side * side, features), nn.ReLU(),
        )
        self.head = nn.Linear(features, classes)
        self.shape = dict(channels=channels, resolution=resolution, classes=classes, features=features)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


@torch.no_grad()
def predict(net, images, batch_size=1000):
    """(features, logits) of the evaluator ``net`` for ``images``, in batches."""
    net.eval()
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        f = net.features(images[i:i + batch_size].float())
        feats.append(f)
        logits.append(net.head(f))
    return torch.cat(feats), torch.cat(logits)


def train_evaluator(train_images, train_labels, classes=None, epochs=4, batch_size=64, seed=0, lr=2e-3,
                    lr_decay=False):
    """Train the evaluator CNN (Adam, a few epochs, fixed seed) on labelled images; ``lr_decay``:
    the rate falls linearly to 0 over the training (for long trainings on large sets)."""
    classes = classes or int(train_labels.max()) + 1
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # leave the caller's RNG stream alone
        torch.manual_seed(seed)
        net = EvaluatorCNN(train_images.shape[1], train_images.shape[-1], classes)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        total = epochs * ((len(train_images) + batch_size - 1) // batch_size)
        decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / total if lr_decay else 1.0)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(len(train_images), generator=g)
            for i in range(0, len(perm), batch_size):
                idx = perm[i:i + batch_size]
                loss = F.cross_entropy(net(train_images[idx]), train_labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                decay.step()
    net.eval()
    return net


def accuracy(net, images, labels):
    _, logits = predict(net, images)
    return (logits.argmax(1) == labels).float().mean().item()


def get_evaluator(key, train_images, train_labels, cache_dir, epochs=4, seed=0, lr_decay=False):
    """The evaluator for data set ``key``, loaded from cache_dir or trained and saved there
    (``seed`` fixes its initialization and batch order; give each seed its own key)."""
    path = os.path.join(cache_dir, f"evaluator_{key}.pt")
    if os.path.isfile(path):
        try:
            saved = torch.load(path, weights_only=True)
            net = EvaluatorCNN(**saved["shape"])
            net.load_state_dict(saved["state"])
            return net.eval()
        except Exception:
            pass  # stale or damaged cache: train again
    net = train_evaluator(train_images, train_labels, epochs=epochs, seed=seed, lr_decay=lr_decay)
    atomic_save({"shape": net.shape, "state": net.state_dict()}, path)
    return net


def frechet_distance(feats_a, feats_b):
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^1/2), in float64."""
    a, b = feats_a.double(), feats_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # Tr((C_a C_b)^1/2) = sum of sqrt eigenvalues of the symmetric C_a^1/2 C_b C_a^1/2
    w, v = torch.linalg.eigh(cov_a)
    sqrt_a = (v * w.clamp(min=0).sqrt()) @ v.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return ((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt).item()


def sample_metrics(net, samples, real_images=None, labels=None):
    """coverage: share of classes predicted for at least half their uniform share of samples;
    entropy: of the predicted-class histogram, divided by log(classes) (1 = uniform)."""
    feats, logits = predict(net, samples)
    classes = logits.shape[1]
    predicted = logits.argmax(1)
    counts = torch.bincount(predicted, minlength=classes).double()
    share = counts / counts.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum().item() / math.log(classes)
    result = {
        "coverage": (counts >= len(samples) / (2 * classes)).double().mean().item(),
        "class_entropy": entropy,
        "confidence": logits.softmax(1).max(1).values.mean().item(),
    }
    if labels is not None:
        result["accuracy"] = (predicted == labels.to(predicted.device)).float().mean().item()
    if real_images is not None:
        real_feats, _ = predict(net, real_images)
        result["frechet_distance"] = frechet_distance(feats, real_feats)
    return result
