"""The generator and discriminator networks gentk's image GANs (gan, cgan, infogan) share.

``arch="conv"`` (default) is the DCGAN-style pair InfoGAN used for MNIST (Chen et al. 2016,
appendix C.1), sized for any resolution divisible by 4 (28 and 32 px):

- G: FC 1024-BN-ReLU, FC (2w x R/4 x R/4)-BN-ReLU, up-conv 4x4/2 w-BN-ReLU, up-conv 4x4/2 C, tanh.
- D body: conv 4x4/2 w-LReLU(0.2), conv 4x4/2 2w-BN-LReLU, FC 1024-BN-LReLU; head: FC 1.

``arch="mlp"`` is Goodfellow et al. 2014's MNIST pair: G with two 1200-unit ReLU layers, D
with two 240-unit maxout layers (5 pieces) and dropout.

Conditioning (cgan, ``classes > 0``): each network holds its own label embedding
(``embed_dim`` values, N(0, 1) init); G concatenates it to the noise, the conv D to the
image as constant channel maps, the MLP D to the flattened image.

``norm=False`` drops D's batch norm: WGAN-GP penalises per-example input gradients, which
batch statistics would couple across the batch (Gulrajani et al. 2017).
"""
import torch
from torch import nn

from gentk.models.adversarial import init_normal


def check_arch(model, arch, resolution):
    if arch not in ("conv", "mlp"):
        raise ValueError(f"{model}: arch must be 'conv' or 'mlp', got {arch!r}")
    if arch == "conv" and resolution % 4:
        raise ValueError(f"{model}: the conv architecture needs a resolution divisible by 4, got {resolution}")


class Maxout(nn.Module):
    def __init__(self, in_features, out_features, pieces):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.out_features, self.pieces).amax(-1)


class _LabelEmbedding(nn.Module):
    def __init__(self, classes, embed_dim):
        super().__init__()
        self.classes, self.dim = classes, (embed_dim or classes) if classes else 0
        self.table = nn.Embedding(classes, self.dim) if classes else None

    def reset_parameters(self):
        if self.table is not None:
            nn.init.normal_(self.table.weight)  # the scale of the noise it joins, not DCGAN's 0.02

    def forward(self, labels):
        if self.table is None:
            return None
        if labels is None:
            raise ValueError("this network is conditional: it needs labels")
        return self.table(labels)


class Generator(nn.Module):
    """(noise [B, in_dim], labels [B] or None) -> images [B, C, R, R] in [-1, 1]."""

    def __init__(self, in_dim, channels, resolution, arch="conv", width=64, classes=0, embed_dim=None,
                 hidden=1024):
        super().__init__()
        self.embed = _LabelEmbedding(classes, embed_dim)
        total = in_dim + self.embed.dim
        if arch == "conv":
            side = resolution // 4
            self.net = nn.Sequential(
                nn.Linear(total, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                nn.Linear(hidden, 2 * width * side * side), nn.BatchNorm1d(2 * width * side * side), nn.ReLU(),
                nn.Unflatten(1, (2 * width, side, side)),
                nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh(),
            )
        else:
            self.net = nn.Sequential(
                nn.Linear(total, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(),
                nn.Linear(1200, channels * resolution * resolution), nn.Tanh(),
                nn.Unflatten(1, (channels, resolution, resolution)),
            )

    def forward(self, z, labels=None):
        cond = self.embed(labels)
        return self.net(z if cond is None else torch.cat([z, cond], 1))


class Discriminator(nn.Module):
    """(images [B, C, R, R], labels [B] or None) -> logits [B, 1]; with ``features=True``
    also the body's output (the last hidden layer), which InfoGAN's Q head shares."""

    def __init__(self, channels, resolution, arch="conv", width=64, classes=0, embed_dim=None, hidden=1024,
                 norm=True):
        super().__init__()
        self.arch = arch
        self.embed = _LabelEmbedding(classes, embed_dim)
        cond_dim = self.embed.dim
        if arch == "conv":
            side = resolution // 4
            self.body = nn.Sequential(
                nn.Conv2d(channels + cond_dim, width, 4, 2, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width) if norm else nn.Identity(),
                nn.LeakyReLU(0.2), nn.Flatten(),
                nn.Linear(2 * width * side * side, hidden), nn.BatchNorm1d(hidden) if norm else nn.Identity(),
                nn.LeakyReLU(0.2),
            )
            self.feature_dim = hidden
        else:
            self.body = nn.Sequential(
                nn.Flatten(), Maxout(channels * resolution * resolution + cond_dim, 240, 5), nn.Dropout(0.2),
                Maxout(240, 240, 5), nn.Dropout(0.2),
            )
            self.feature_dim = 240
        self.head = nn.Linear(self.feature_dim, 1)

    def forward(self, x, labels=None, features=False):
        cond = self.embed(labels)
        if cond is not None:
            if self.arch == "conv":
                x = torch.cat([x, cond[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
            else:
                x = torch.cat([x.flatten(1), cond], 1)
        h = self.body(x)
        logits = self.head(h)
        return (logits, h) if features else logits


def init_weights(net):
    """DCGAN's N(0, 0.02) everywhere except the label tables."""
    net.apply(init_normal)
    for module in net.modules():
        if isinstance(module, _LabelEmbedding):
            module.reset_parameters()
    return net


def noise_like(n, dim, generator, device):
    """N(0, I) noise [n, dim] drawn on the generator's device (CPU when none) and moved to ``device``."""
    return torch.randn(n, dim, generator=generator,
                       device="cpu" if generator is None else generator.device).to(device)
