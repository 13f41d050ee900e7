"""Generative adversarial network (Goodfellow et al. 2014, "Generative Adversarial Nets").

The minimax game with the non-saturating generator loss (-log D(G(z))) by default, or any
of ``--loss lsgan | hinge | wgan-gp`` through gentk's fused adversarial losses and gradient
penalty (:mod:`gentk.models.adversarial`). Defaults from the DCGAN recipe the issue asks
for: Adam lr 2e-4, betas (0.5, 0.999), N(0, 0.02) initialisation, images mapped to
[-1, 1] inside the model (``sample`` returns [0, 1]), 100 noise dimensions. ``arch="conv"``
(default) is the DCGAN-style pair of :mod:`gentk.models.dcgan_nets`; ``arch="mlp"`` is the
paper's MLP (two 1200-unit ReLU layers in G, two maxout layers in D).

One trainer step is one critic update on a real batch and as many fakes; every
``n_critic``-th step also updates G on a fresh batch of noise.
"""
import dataclasses

import torch

from gentk.models.adversarial import AdversarialModel, ChunkedPenaltyConfig, generator_loss, set_requires_grad
from gentk.models.base import first_tensor, from_data, host_floats, option, to_image_range, to_model_range
from gentk.models.dcgan_nets import Discriminator, Generator, check_arch, init_weights, noise_like


@dataclasses.dataclass
class GANConfig(ChunkedPenaltyConfig):
    """The DCGAN recipe: 100 noise dimensions, Adam 2e-4 with betas (0.5, 0.999), BCE."""
    arch: str = option("conv", "DCGAN-style conv G/D, or mlp: the paper's MLP", choices=("conv", "mlp"))
    noise: int = option(100, "noise dimensions")
    width: int = option(64, "conv channels of the first D layer")
    resolution: int = from_data(28)
    channels: int = from_data(1)
    lr: float = from_data(2e-4)
    lr_g: float | None = option(None, "generator learning rate",
                                default_help="--lr; InfoGAN's paper used 1e-3 with D at 2e-4")
    beta1: float = 0.5  # Adam's betas: from Python only, no flag
    beta2: float = 0.999


class GAN(AdversarialModel):
    name = "gan"
    paper = "Goodfellow et al. 2014, Generative Adversarial Nets"
    data_kind = "labelled"
    config_class = GANConfig
    inference_networks = ("generator",)

    def __init__(self, **config):
        cfg = self.config_class(**config)  # a subclass's config: its own fields pass through to self.config
        super().__init__(**dataclasses.asdict(cfg))
        check_arch(self.name, cfg.arch, cfg.resolution)
        if cfg.noise < 1:
            raise ValueError(f"{self.name}: noise must be at least 1, got {cfg.noise}")
        if cfg.width < 1:
            raise ValueError(f"{self.name}: width must be at least 1, got {cfg.width}")
        if not cfg.lr > 0:
            raise ValueError(f"{self.name}: lr must be positive, got {cfg.lr}")
        if cfg.lr_g is not None and not cfg.lr_g > 0:
            raise ValueError(f"{self.name}: lr_g must be positive, got {cfg.lr_g}")
        self.noise = cfg.noise
        self.generator = init_weights(Generator(self.generator_inputs(), cfg.channels, cfg.resolution, cfg.arch,
                                                cfg.width, **self.condition_args()))
        self.discriminator = init_weights(Discriminator(cfg.channels, cfg.resolution, cfg.arch, cfg.width,
                                                        norm=cfg.loss != "wgan-gp", **self.condition_args()))
        self.build_heads()
        betas = (cfg.beta1, cfg.beta2)
        self.optimizer_g = torch.optim.Adam(self.generator_parameters(), lr=cfg.lr if cfg.lr_g is None else cfg.lr_g,
                                            betas=betas)
        self.optimizer_d = torch.optim.Adam(self.critic_parameters(), lr=cfg.lr, betas=betas)

    # --- what conditional variants change -------------------------------------------------
    def generator_inputs(self):
        return self.noise

    def condition_args(self):
        return {}

    def build_heads(self):
        """Networks beyond G and D (InfoGAN's Q), made after D and before the optimizers."""

    def generator_parameters(self):
        return list(self.generator.parameters())

    def critic_parameters(self):
        return list(self.discriminator.parameters())

    def batch_labels(self, batch):
        """The conditioning labels of a batch (None for an unconditional GAN)."""
        return None

    # --- the protocol -----------------------------------------------------------------------
    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self):
        return {"adam_g": self.optimizer_g, "adam_d": self.optimizer_d}

    def d_step(self, batch):
        real = to_model_range(first_tensor(batch))
        labels = self.batch_labels(batch)
        z = torch.randn(len(real), self.noise, device=real.device)
        with self.autocast():
            with torch.no_grad():
                fake = self.generator(z, labels).to(real.dtype)
            real_logits = self.discriminator(real, labels)
            fake_logits = self.discriminator(fake, labels)
            total, parts = self.critic_objective(lambda x: self.discriminator(x, labels).view(-1), real, fake,
                                                 real_logits.float(), fake_logits.float())
        self.backward_step(total, self.optimizer_d)
        return host_floats({"d_loss": total, **parts})

    def g_step(self, batch):
        labels = self.batch_labels(batch)
        images = first_tensor(batch)
        z = torch.randn(len(images), self.noise, device=images.device)
        set_requires_grad(self.discriminator, False)
        try:
            with self.autocast():
                loss = generator_loss(self.loss, self.discriminator(self.generator(z, labels), labels).float())
            self.backward_step(loss, self.optimizer_g)
        finally:
            set_requires_grad(self.discriminator, True)
        return {"g_loss": loss.item()}

    @torch.no_grad()
    def generate(self, z, labels=None):
        """Images in [0, 1] for given noise (and labels)."""
        with self.autocast():
            return to_image_range(self.generator(z.to(self.device), labels).float())

    @torch.no_grad()
    def sample(self, n, labels=None, generator=None):
        return self.generate(noise_like(n, self.noise, generator, self.device))
