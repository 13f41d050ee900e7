"""Exploratory Joint-VAE runs on the quality split (8,000 train / 2,000 held out of the MNIST
test set): a plain loop of ``train_step`` on batches drawn with replacement, printing the
held-out categorical accuracy every ``every`` steps, then the training set's accuracy and
-ELBO (the unsupervised score a seed could be chosen by). One thread unless told otherwise.

    python -m benchmarks.joint_vae_sweep STEPS [seed=0] [threads=1] [every=1000] [batch=64] [KEY=VALUE ...]

KEY=VALUE pairs set JointVAE arguments over the quality budget's configuration (the MLP,
C_c over 12,000 steps, C_z over 24,000), e.g. ``disc_capacity_steps=25000`` or ``tau=1.0``.
QUALITY.md's Joint-VAE notes list what these runs found.
"""
import sys
import time

import torch
from torch.utils.data import TensorDataset

from benchmarks.quality import mnist_split
from benchmarks.quality_vae import BATCH, BUDGETS
from gentk import metrics
from gentk.models import build
from gentk.train import seed_everything

OPTIONS = {"seed": 0, "threads": 1, "every": 1000, "batch": BATCH}


def parse_value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or not argv[0].isdigit():
        raise SystemExit(__doc__)
    steps, options, config = int(argv[0]), dict(OPTIONS), dict(BUDGETS["joint_vae"]["config"])
    for pair in argv[1:]:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {pair!r}")
        (options if key in OPTIONS else config)[key] = parse_value(value)
    torch.set_num_threads(options["threads"])
    train_set, held_out = mnist_split()
    seed_everything(options["seed"])
    model = build("joint_vae", **config)
    images = train_set.tensors[0]
    g = torch.Generator().manual_seed(options["seed"])
    start = time.time()
    for step in range(1, steps + 1):
        logged = model.train_step((images[torch.randint(0, len(images), (options["batch"],), generator=g)],))
        if step % options["every"] == 0:
            accuracy = metrics.categorical_accuracy(model, held_out)["categorical_accuracy_c0"]
            print(f"step {step}: held-out accuracy {100 * accuracy:.1f}%, recon {logged['recon']:.1f}, "
                  f"KL_z {logged['kl_cont']:.2f}, KL_c {logged['kl_disc']:.2f} "
                  f"({(time.time() - start) / 60:.1f} min)", flush=True)
    train_all = TensorDataset(*train_set.tensors)
    accuracy = metrics.categorical_accuracy(model, train_all)["categorical_accuracy_c0"]
    print(f"training set: accuracy {100 * accuracy:.1f}%, -ELBO {metrics.negative_elbo(model, train_all):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
