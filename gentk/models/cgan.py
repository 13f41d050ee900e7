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
import torch

from gentk.models.dcgan_nets import noise_like
from gentk.models.gan import GAN

GRID_COLUMNS = 8


class CGAN(GAN):
    name = "cgan"
    paper = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets"
    conditional = True

    def __init__(self, arch="conv", noise=100, width=64, classes=10, embed_dim=None, resolution=28, channels=1,
                 lr=2e-4, lr_g=None, beta1=0.5, beta2=0.999, loss="bce", n_critic=1, lambda_gp=10.0,
                 gp_chunk_size=None):
        if not isinstance(classes, int) or classes < 2:
            raise ValueError(f"cgan: classes must be an integer >= 2, got {classes!r}")
        if embed_dim is not None and embed_dim < 1:
            raise ValueError(f"cgan: embed_dim must be at least 1, got {embed_dim}")
        self.classes, self.embed_dim = classes, embed_dim
        super().__init__(arch=arch, noise=noise, width=width, resolution=resolution, channels=channels, lr=lr,
                         lr_g=lr_g, beta1=beta1, beta2=beta2, loss=loss, n_critic=n_critic, lambda_gp=lambda_gp,
                         gp_chunk_size=gp_chunk_size, classes=classes, embed_dim=embed_dim)

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_argument("--embed-dim", dest="embed_dim", type=int, default=None,
                            help="label embedding size in G and D (default: the number of classes)")

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
