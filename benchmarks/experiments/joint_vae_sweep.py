"""Exploratory Joint-VAE runs on a validation split of MNIST's training set (the first 50,000
training images train, the last 10,000 are the validation set; the test images are never
used here, so nothing is tuned on them): a plain loop of ``train_step`` on batches drawn with
replacement, printing the validation accuracy of the categorical code every ``every`` steps,
then the training set's accuracy and -ELBO (the unsupervised score a seed could be chosen by)
and the validation category x digit table. One thread unless told otherwise.

    python -m benchmarks.experiments.joint_vae_sweep STEPS [seed=0] [threads=1] [every=1000] [batch=64]
        [hidden=512,512] [data=planted] [shift=0] [KEY=VALUE ...]

KEY=VALUE pairs set JointVAE arguments over Dupont's configuration on the MLP (``arch=conv``
for his network), e.g. ``disc_capacity_steps=12000``, ``tau=1.0`` or ``marginal_gamma=30``.
The other options change what is trained, to test explanations of the accuracy:

- ``hidden=512,512``: MLP encoder and decoder with these hidden widths instead of the VAE's.
- ``data=planted``: instead of MNIST, planted clusters with a known answer: the first image
  of each digit as a prototype, every example a prototype rolled by up to ``shift`` pixels
  in each direction plus N(0, 0.15^2) pixel noise, clamped to [0, 1] (8,000 / 2,000 examples).

QUALITY.md's Joint-VAE notes list what these runs found.
"""
import sys
import time

import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from benchmarks.quality.common import mnist_validation_split
from gentk import metrics
from gentk.models import build
from gentk.train import seed_everything

BASE_CONFIG = {"arch": "mlp"}
OPTIONS = {"seed": 0, "threads": 1, "every": 1000, "batch": 64, "hidden": "", "data": "mnist", "shift": 0}


def parse_value(text):
    """An int, a float, True or False, else the text itself."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def mlp(sizes, last=None):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1], *([last] if last else []))


def use_hidden(model, widths, pixels=28 * 28):
    """Replace the model's networks by MLPs with these hidden widths (and a fresh optimizer)."""
    outputs = 2 * model.latent + sum(model.categories)
    model.encoder = nn.Sequential(nn.Flatten(), mlp([pixels, *widths, outputs]))
    model.decoder = mlp([model.code_size, *widths[::-1], pixels], last=nn.Unflatten(1, (1, 28, 28)))
    model.optimizer = torch.optim.Adam(list(model.encoder.parameters()) + list(model.decoder.parameters()),
                                       lr=model.optimizer.defaults["lr"])


def planted(train_set, n, shift, generator):
    """n examples of 10 planted clusters (see the module's docstring) with their cluster labels."""
    images, labels = train_set.tensors
    prototypes = torch.stack([images[(labels == d).nonzero()[0, 0]] for d in range(10)])
    cluster = torch.randint(0, 10, (n,), generator=generator)
    offsets = torch.randint(-shift, shift + 1, (n, 2), generator=generator).tolist()
    x = torch.stack([prototypes[c].roll(tuple(o), dims=(-2, -1)) for c, o in zip(cluster.tolist(), offsets)])
    return TensorDataset((x + 0.15 * torch.randn(x.shape, generator=generator)).clamp(0, 1), cluster)


def category_table(model, data):
    """[category, label] counts of the examples of data."""
    codes = torch.cat([model.categorical_codes(x)[:, 0] for x in data.tensors[0].split(500)])
    table = torch.zeros(model.categories[0], 10, dtype=torch.long)
    table.index_put_((codes, data.tensors[1].long()), torch.ones_like(codes), accumulate=True)
    return table


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or not argv[0].isdigit():
        raise SystemExit(__doc__)
    steps, options, config = int(argv[0]), dict(OPTIONS), dict(BASE_CONFIG)
    for pair in argv[1:]:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {pair!r}")
        (options if key in OPTIONS else config)[key] = parse_value(value)
    if options["data"] not in ("mnist", "planted"):
        raise SystemExit(f"data must be mnist or planted, got {options['data']!r}")
    torch.set_num_threads(options["threads"])
    train_set, validation = mnist_validation_split()
    g = torch.Generator().manual_seed(options["seed"])
    if options["data"] == "planted":
        train_set, validation = planted(train_set, 8000, options["shift"], g), planted(train_set, 2000,
                                                                                     options["shift"], g)
    seed_everything(options["seed"])
    model = build("joint_vae", **{"train_size": len(train_set), **config})
    if options["hidden"]:
        use_hidden(model, [int(w) for w in str(options["hidden"]).split(",")])
    images = train_set.tensors[0]
    start = time.time()
    for step in range(1, steps + 1):
        logged = model.train_step((images[torch.randint(0, len(images), (options["batch"],), generator=g)],))
        if step % options["every"] == 0:
            accuracy = metrics.categorical_accuracy(model, validation)["categorical_accuracy_c0"]
            print(f"step {step}: validation accuracy {100 * accuracy:.1f}%, recon {logged['recon']:.1f}, "
                  f"KL_z {logged['kl_cont']:.2f}, KL_c {logged['kl_disc']:.2f} "
                  f"({(time.time() - start) / 60:.1f} min)", flush=True)
    train_all = TensorDataset(*train_set.tensors)
    accuracy = metrics.categorical_accuracy(model, train_all)["categorical_accuracy_c0"]
    print(f"training set: accuracy {100 * accuracy:.1f}%, -ELBO {metrics.negative_elbo(model, train_all):.2f}")
    model.eval()
    print(f"validation examples by category (rows) and label (columns):\n{category_table(model, validation)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
