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
import torch

from gentk.models.adversarial import AdversarialModel, generator_loss, set_requires_grad
from gentk.models.base import first_tensor, host_floats, to_image_range, to_model_range
from gentk.models.dcgan_nets import Discriminator, Generator, check_arch, init_weights, noise_like


class GAN(AdversarialModel):
    name = "gan"
    paper = "Goodfellow et al. 2014, Generative Adversarial Nets"
    data_kind = "labelled"
    default_noise = 100

    def __init__(self, arch="conv", noise=100, width=64, resolution=28, channels=1, lr=2e-4, lr_g=None, beta1=0.5,
                 beta2=0.999, loss="bce", n_critic=1, lambda_gp=10.0, gp_chunk_size=None, **extra):
        super().__init__(arch=arch, noise=noise, width=width, resolution=resolution, channels=channels, lr=lr,
                         lr_g=lr_g, beta1=beta1, beta2=beta2, loss=loss, n_critic=n_critic, lambda_gp=lambda_gp,
                         gp_chunk_size=gp_chunk_size, **extra)
        check_arch(self.name, arch, resolution)
        if noise < 1:
            raise ValueError(f"{self.name}: noise must be at least 1, got {noise}")
        if width < 1:
            raise ValueError(f"{self.name}: width must be at least 1, got {width}")
        if not lr > 0:
            raise ValueError(f"{self.name}: lr must be positive, got {lr}")
        if lr_g is not None and not lr_g > 0:
            raise ValueError(f"{self.name}: lr_g must be positive, got {lr_g}")
        self.noise = noise
        self.generator = init_weights(Generator(self.generator_inputs(), channels, resolution, arch, width,
                                                **self.condition_args()))
        self.discriminator = init_weights(Discriminator(channels, resolution, arch, width, norm=loss != "wgan-gp",
                                                        **self.condition_args()))
        self.build_heads()
        self.optimizer_g = torch.optim.Adam(self.generator_parameters(), lr=lr if lr_g is None else lr_g,
                                            betas=(beta1, beta2))
        self.optimizer_d = torch.optim.Adam(self.critic_parameters(), lr=lr, betas=(beta1, beta2))

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--arch", choices=("conv", "mlp"), default="conv",
                            help="DCGAN-style conv G/D (default) or the paper's MLP")
        parser.add_argument("--noise", type=int, default=cls.default_noise,
                            help=f"noise dimensions (default {cls.default_noise})")
        parser.add_argument("--width", type=int, default=64, help="conv channels of the first D layer (default 64)")
        parser.add_argument("--lr-g", dest="lr_g", type=float, default=None,
                            help="generator learning rate (default: --lr; InfoGAN's paper used 1e-3 with D at 2e-4)")
        super().add_arguments(parser)

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
