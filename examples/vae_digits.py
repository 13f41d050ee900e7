"""Train a small VAE on scikit-learn's digits (embedded, offline) with gentk's fused
reparameterize + Gaussian KL, and compare its speed with the pure-PyTorch reference.

    python examples/vae_digits.py [--epochs 30] [--backend auto] [--out runs/vae_digits]

Writes samples.png (decoded draws from the prior, next to real test digits) and
metrics.json (per-epoch train ELBO, final test ELBO, seconds per epoch) to --out.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import gentk


class VAE(nn.Module):
    def __init__(self, pixels=64, hidden=256, latent=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, pixels))
        self.latent = latent

    def loss(self, x):
        """Negative ELBO per example: Bernoulli recon summed over pixels + KL (batchmean)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z, kl = gentk.reparameterize_kl(mu, logvar)
        logits = self.decoder(z)
        recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        return recon + kl


def load_digits(seed=0):
    from sklearn.datasets import load_digits as sk_digits

    images = torch.tensor(sk_digits().images / 16.0, dtype=torch.float32).reshape(-1, 64)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    images = images[perm]
    n_test = len(images) // 5
    return images[n_test:], images[:n_test]


def save_grid(path, rows):
    from PIL import Image

    grid = np.full((len(rows) * 9 + 1, len(rows[0]) * 9 + 1), 0.5)  # 1-pixel grey lines between digits
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            grid[1 + 9 * r:9 + 9 * r, 1 + 9 * c:9 + 9 * c] = img.reshape(8, 8)
    grid = (grid * 255).clip(0, 255).astype(np.uint8)
    Image.fromarray(grid).resize((grid.shape[1] * 8, grid.shape[0] * 8), Image.NEAREST).save(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--backend", default="auto", choices=gentk.BACKENDS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/vae_digits")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")

    torch.manual_seed(args.seed)
    gentk.set_backend(args.backend)
    train, test = load_digits(args.seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    os.makedirs(args.out, exist_ok=True)
    history = []
    bar = tqdm(range(args.epochs), desc=f"VAE on digits [{gentk.backend.resolve('gaussian', train.device)}]")
    for epoch in bar:
        start = time.perf_counter()
        perm = torch.randperm(len(train))
        total = 0.0
        for i in range(0, len(train), args.batch_size):
            x = train[perm[i:i + args.batch_size]]
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
        history.append({"epoch": epoch + 1, "train_neg_elbo": total / len(train),
                        "seconds": time.perf_counter() - start})
        bar.set_postfix(neg_elbo=f"{history[-1]['train_neg_elbo']:.2f}")

    with torch.no_grad():
        test_neg_elbo = model.loss(test).item()
        samples = torch.sigmoid(model.decoder(torch.randn(4 * 12, model.latent)))
    save_grid(os.path.join(args.out, "samples.png"),
              [test[:12].numpy(), test[12:24].numpy()] + [r.numpy() for r in samples.reshape(4, 12, 64)])
    metrics = {"backend": gentk.backend.resolve("gaussian", train.device), "test_neg_elbo_nats": test_neg_elbo,
               "history": history}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    print(f"test -ELBO {test_neg_elbo:.2f} nats per digit; samples (top two rows: real test digits) in "
          f"{os.path.join(args.out, 'samples.png')}")


if __name__ == "__main__":
    main()
