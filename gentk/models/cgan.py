"""Conditional GAN (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets").

The GAN of :mod:`gentk.models.gan` with the class label fed to both players: G and D each
hold a label embedding (``embed_dim`` values, default one per class) that is concatenated
to G's noise and to D's input (as constant channel maps for the conv D, to the flattened
image for the MLP D). During training the fakes carry the real batch's labels, so D sees
the same label distribution on both sides.

``sample(n, labels)`` draws the given classes (``gentk sample --labels 0,1,2``); without
labels it cycles through the classes. ``visuals`` adds ``samples_by_class.png``: one row
per class, one column per noise vector shared down the column.
"""
import dataclasses

import torch

from gentk.models.base import from_data, option
from gentk.models.dcgan_nets import noise_like
from gentk.models.gan import GAN, GANConfig

GRID_COLUMNS = 8


@dataclasses.dataclass
class CGANConfig(GANConfig):
    """The GAN's fields and the label embedding."""
    classes: int = from_data(10)
    embed_dim: int | None = option(None, "label embedding size in G and D", default_help="the number of classes")


class CGAN(GAN):
    name = "cgan"
    paper = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets"
    conditional = True

    config_class = CGANConfig

    def __init__(self, **config):
        cfg = CGANConfig(**config)
        if not isinstance(cfg.classes, int) or cfg.classes < 2:
            raise ValueError(f"cgan: classes must be an integer >= 2, got {cfg.classes!r}")
        if cfg.embed_dim is not None and cfg.embed_dim < 1:
            raise ValueError(f"cgan: embed_dim must be at least 1, got {cfg.embed_dim}")
        self.classes, self.embed_dim = cfg.classes, cfg.embed_dim
        super().__init__(**dataclasses.asdict(cfg))

    def condition_args(self):
        return {"classes": self.classes, "embed_dim": self.embed_dim}

    def batch_labels(self, batch):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("cgan: batches must be (images, labels)")
        return self.check_labels(batch[1])

    def check_labels(self, labels):
        labels = torch.as_tensor(labels, device=self.device).long().view(-1)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.classes):
            raise ValueError(f"cgan: labels must lie in [0, {self.classes - 1}], got values from "
                             f"{int(labels.min())} to {int(labels.max())}")
        return labels

    @torch.no_grad()
    def sample(self, n, labels=None, generator=None):
        if labels is None:
            labels = torch.arange(n) % self.classes
        labels = self.check_labels(labels)
        if len(labels) != n:
            raise ValueError(f"cgan: sample needs {n} labels, got {len(labels)}")
        return self.generate(noise_like(n, self.noise, generator, self.device), labels)

    @torch.no_grad()
    def class_grid(self, columns=GRID_COLUMNS, generator=None):
        """[classes * columns] images: row r is class r, column c the same noise in every row."""
        z = noise_like(columns, self.noise, generator, self.device).repeat(self.classes, 1)
        labels = torch.arange(self.classes, device=self.device).repeat_interleave(columns)
        return self.generate(z, labels)

    @torch.no_grad()
    def visuals(self, batch):
        return {"samples_by_class": self.class_grid(generator=torch.Generator().manual_seed(0))}
