"""Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

Defaults follow pytorch/examples' VAE: Bernoulli likelihood (binary cross-entropy on the
decoder's logits, summed over pixels), KL to N(0, I) summed over the latent dimensions,
both averaged over the batch; Adam with lr 1e-3. ``binarize=True`` trains on binary images
drawn anew each batch (dynamic binarization) and reports likelihoods on a fixed binarized
test set, the protocol of the published MNIST likelihoods. ``arch="conv"`` (default) is a small
convolutional encoder/decoder; ``arch="mlp"`` is the original one-hidden-layer MLP (400
units, 20 latents). The reparameterization and the KL run as gentk's fused
``reparameterize_kl``, the reconstruction as ``bernoulli_recon``.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

import gentk
from gentk.models.base import GenerativeModel, first_tensor, from_data, host_floats, option


def _conv_encoder(channels, resolution, latent, width=32, hidden=256, outputs=None):
    side = resolution // 4
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * width * side * side, hidden), nn.ReLU(),
        nn.Linear(hidden, outputs or 2 * latent),
    )


def _conv_decoder(channels, resolution, latent, width=32, hidden=256):
    side = resolution // 4
    return nn.Sequential(
        nn.Linear(latent, hidden), nn.ReLU(),
        nn.Linear(hidden, 2 * width * side * side), nn.ReLU(),
        nn.Unflatten(1, (2 * width, side, side)),
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(width, channels, 4, 2, 1),
    )


def _mlp_encoder(channels, resolution, latent, hidden=400, outputs=None):
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * resolution * resolution, hidden), nn.ReLU(),
                         nn.Linear(hidden, outputs or 2 * latent))


def _mlp_decoder(channels, resolution, latent, hidden=400):
    return nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                         nn.Linear(hidden, channels * resolution * resolution),
                         nn.Unflatten(1, (channels, resolution, resolution)))


ARCHITECTURES = ("conv", "mlp")


@dataclasses.dataclass
class VAEConfig:
    """The VAE's hyperparameters: pytorch/examples' VAE, Adam at 1e-3."""
    arch: str = option("conv", "conv encoder/decoder, or mlp: the paper's one-hidden-layer MLP", choices=ARCHITECTURES)
    latent: int = option(20, "latent dimensions")
    binarize: bool = option(False, "dynamic binarization, as the likelihood papers train on MNIST: every batch "
                            "is drawn anew as pixels ~ Bernoulli(grey level); test likelihoods are taken on the "
                            "test set binarized once (gentk.data.binarized, seed 0)", default_help="off: grey levels")
    resolution: int = from_data(28)
    channels: int = from_data(1)
    lr: float = from_data(1e-3)


def build_networks(arch, channels, resolution, latent, encoder_outputs=None):
    """(encoder, decoder) of the VAE's architecture ``arch``, for the models built on it
    (beta-VAE, Joint-VAE): the encoder maps images to ``encoder_outputs`` features (default
    2 * latent: mean and log-variance), the decoder maps ``latent`` codes to pixel logits."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be 'conv' or 'mlp', got {arch!r}")
    if arch == "conv" and resolution % 4:
        raise ValueError(f"the conv architecture needs a resolution divisible by 4, got {resolution}")
    if arch == "conv":
        return (_conv_encoder(channels, resolution, latent, outputs=encoder_outputs),
                _conv_decoder(channels, resolution, latent))
    return (_mlp_encoder(channels, resolution, latent, outputs=encoder_outputs),
            _mlp_decoder(channels, resolution, latent))


def reconstruction_grid(x, reconstruct):
    """{"reconstructions": images} for up to 32 of x: rows alternate 8 originals, then their
    8 reconstructions (``reconstruct(x)`` -> images in [0, 1])."""
    x = x[:min(len(x), 32) // 8 * 8]
    if len(x) == 0:
        return {}
    recon = reconstruct(x)
    pairs = torch.stack([x.view(-1, 8, *x.shape[1:]), recon.view(-1, 8, *x.shape[1:])], dim=1)
    return {"reconstructions": pairs.reshape(-1, *x.shape[1:])}


class VAE(GenerativeModel):
    name = "vae"
    capabilities = frozenset({"elbo", "importance_nll"})
    paper = "Kingma & Welling 2014, Auto-Encoding Variational Bayes"
    data_kind = "labelled"
    config_class = VAEConfig

    def __init__(self, **config):
        cfg = VAEConfig(**config)
        super().__init__(**dataclasses.asdict(cfg))
        if cfg.arch not in ("conv", "mlp"):
            raise ValueError(f"vae: arch must be 'conv' or 'mlp', got {cfg.arch!r}")
        if cfg.arch == "conv" and cfg.resolution % 4:
            raise ValueError(f"vae: the conv architecture needs a resolution divisible by 4, got {cfg.resolution}")
        if cfg.latent < 1:
            raise ValueError(f"vae: latent must be at least 1, got {cfg.latent}")
        if not cfg.lr > 0:
            raise ValueError(f"vae: lr must be positive, got {cfg.lr}")
        make_encoder, make_decoder = (_conv_encoder, _conv_decoder) if cfg.arch == "conv" else \
            (_mlp_encoder, _mlp_decoder)
        self.latent, self.binarize = cfg.latent, cfg.binarize
        self.encoder = make_encoder(cfg.channels, cfg.resolution, cfg.latent)
        self.decoder = make_decoder(cfg.channels, cfg.resolution, cfg.latent)
        self.optimizer = torch.optim.Adam(list(self.encoder.parameters()) + list(self.decoder.parameters()),
                                          lr=cfg.lr)

    def networks(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def optimizers(self):
        return {"adam": self.optimizer}

    def encode(self, x):
        mu, logvar = self.encoder(x).float().chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z):
        """Bernoulli logits of the pixels."""
        return self.decoder(z).float()

    def losses(self, x):
        """(negative ELBO, reconstruction, KL), each summed per example and averaged over the batch."""
        mu, logvar = self.encode(x)
        z, kl = gentk.reparameterize_kl(mu, logvar)
        recon = gentk.bernoulli_recon(self.decode(z), x)
        return recon + kl, recon, kl

    def training_images(self, batch):
        """The batch's images, binarized anew (x ~ Bernoulli(x)) when the model was built with binarize."""
        x = first_tensor(batch)
        return torch.bernoulli(x.clamp(0, 1)) if self.binarize else x

    def likelihood_data(self, data):
        """What the test likelihoods are taken on: the data, binarized once (seed 0) under binarize."""
        from gentk.data import binarized

        return binarized(data) if self.binarize else data

    def train_step(self, batch):
        x = self.training_images(batch)
        with self.autocast():
            loss, recon, kl = self.losses(x)
        self.backward_step(loss, self.optimizer)
        return host_floats({"loss": loss, "recon": recon, "kl": kl})

    @torch.no_grad()
    def sample(self, n, labels=None, generator=None):
        z = torch.randn(n, self.latent, generator=generator, device="cpu" if generator is None else generator.device)
        return torch.sigmoid(self.decode(z.to(self.device)))

    @torch.no_grad()
    def visuals(self, batch):
        return reconstruction_grid(first_tensor(batch), lambda x: torch.sigmoid(self.decode(self.encode(x)[0])))

    # --- evaluation (per example, in nats) ----------------------------------------------
    @torch.no_grad()
    def negative_elbo(self, x):
        """-ELBO per example with the analytic KL and one posterior sample (a [B] tensor)."""
        mu, logvar = self.encode(x)
        z = gentk.reparameterize(mu, logvar)
        recon = gentk.bernoulli_recon(self.decode(z), x, reduction="none").flatten(1).sum(1)
        return recon + gentk.gaussian_kl(mu, logvar, reduction="none").sum(-1)

    @torch.no_grad()
    def log_importance_weights(self, x, k):
        """log p(x|z) + log p(z) - log q(z|x) for k posterior samples per example: [k, B]."""
        mu, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn((k,) + mu.shape, device=mu.device)
        z = mu + std * eps
        logits = self.decode(z.flatten(0, 1))
        target = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
        log_px_z = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1).view(k, -1)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_qz_x = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)
        return log_px_z + log_pz - log_qz_x
