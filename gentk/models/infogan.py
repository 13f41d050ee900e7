"""InfoGAN (Chen et al. 2016, "InfoGAN: Interpretable Representation Learning by
Information Maximizing Generative Adversarial Nets").

G reads 62 noise dimensions plus latent codes: one categorical code (10 values, one-hot)
and 2 continuous codes ~ U(-1, 1). A Q head on D's shared body predicts the codes of a
fake image; the mutual-information lower bound is maximised by minimising

    info = lambda_cat * CE(Q's categorical logits, c_cat) + lambda_cont * 0.5 * ||c_cont - Q's mean||^2

with lambda_cat = 1, lambda_cont = 0.1. The cross-entropy takes Q's raw logits (no softmax
before it: F.cross_entropy applies log-softmax itself). The continuous codes' posterior is a
unit-variance Gaussian, whose negative log-likelihood is the squared error above up to a
constant. As in the paper's code, the info term is added to both players' losses: D's step
trains D's body, its head and Q on the fakes' codes (``info_trains_body=False``,
``--info-head-only``: only Q's head, so the information term does not shape D's features);
G's step trains G.

``visuals`` (saved at every sample point) and ``gentk sample --sweeps`` write the code
sweeps: ``sweep_categorical`` (row = category, column = one noise vector shared down the
column) and ``sweep_continuous_k`` (row = category, column = c_k from -2 to 2; noise and
the other code fixed).
"""
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from gentk.models.adversarial import generator_loss, set_requires_grad
from gentk.models.base import first_tensor, host_floats, option, override, to_model_range
from gentk.models.dcgan_nets import init_weights, noise_like
from gentk.models.gan import GAN, GANConfig

SWEEP_COLUMNS = 8
SWEEP_RANGE = 2.0


@dataclasses.dataclass
class InfoGANConfig(GANConfig):
    """The paper's MNIST codes: 62 noise dimensions, one 10-way categorical and 2 continuous codes,
    lambda_cat = 1, lambda_cont = 0.1."""
    noise: int = override(GANConfig, "noise", 62)
    categorical: int = option(10, "values of the categorical code")
    continuous: int = option(2, "continuous codes")
    lambda_cat: float = option(1.0, "weight of the categorical information term")
    lambda_cont: float = option(0.1, "weight of the continuous information term")
    info_trains_body: bool = option(True, "D's step trains only Q's head on the information term, not D's shared "
                                    "body", switch="--info-head-only",
                                    default_help="both, as in the paper's code")


class InfoGAN(GAN):
    name = "infogan"
    capabilities = frozenset({"code_sweeps"})
    paper = "Chen et al. 2016, InfoGAN: Interpretable Representation Learning by Information Maximizing GANs"
    config_class = InfoGANConfig
    inference_networks = ("generator",)

    def __init__(self, **config):
        cfg = InfoGANConfig(**config)
        if not isinstance(cfg.categorical, int) or cfg.categorical < 2:
            raise ValueError(f"infogan: categorical must be an integer >= 2, got {cfg.categorical!r}")
        if not isinstance(cfg.continuous, int) or cfg.continuous < 0:
            raise ValueError(f"infogan: continuous must be an integer >= 0, got {cfg.continuous!r}")
        for key in ("lambda_cat", "lambda_cont"):
            if not getattr(cfg, key) >= 0:
                raise ValueError(f"infogan: {key} must be >= 0, got {getattr(cfg, key)!r}")
        self.categorical, self.continuous = cfg.categorical, cfg.continuous
        self.lambda_cat, self.lambda_cont = cfg.lambda_cat, cfg.lambda_cont
        self.info_trains_body = bool(cfg.info_trains_body)
        self.q_head = None
        super().__init__(**dataclasses.asdict(cfg))

    def generator_inputs(self):
        return self.noise + self.categorical + self.continuous

    def build_heads(self):
        # Q: FC 128-BN-LReLU-FC on D's last hidden layer (the paper's Q for MNIST)
        self.q_head = init_weights(nn.Sequential(
            nn.Linear(self.discriminator.feature_dim, 128), nn.BatchNorm1d(128), nn.LeakyReLU(0.2),
            nn.Linear(128, self.categorical + self.continuous)))

    def critic_parameters(self):
        return list(self.discriminator.parameters()) + list(self.q_head.parameters())

    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator, "q_head": self.q_head}

    # --- codes --------------------------------------------------------------------------------
    def draw_codes(self, n, device, categories=None, generator=None):
        """(category [n], continuous [n, continuous]) drawn from the priors: uniform categories
        and U(-1, 1) codes; ``categories`` fixes the categorical code."""
        gen_device = "cpu" if generator is None else generator.device
        if categories is None:
            categories = torch.randint(self.categorical, (n,), generator=generator, device=gen_device)
        cont = torch.rand(n, self.continuous, generator=generator, device=gen_device) * 2 - 1
        return torch.as_tensor(categories).to(device).long(), cont.to(device)

    def generator_input(self, z, category, cont):
        return torch.cat([z, F.one_hot(category, self.categorical).to(z.dtype), cont.to(z.dtype)], 1)

    def information_loss(self, features, category, cont):
        """(weighted total, categorical CE, continuous NLL) from D's body features of the fakes."""
        out = self.q_head(features).float()
        cat_loss = F.cross_entropy(out[:, :self.categorical], category)  # raw logits in
        cont_loss = 0.5 * (out[:, self.categorical:] - cont).pow(2).sum(1).mean() if self.continuous else \
            out.new_zeros(())
        return self.lambda_cat * cat_loss + self.lambda_cont * cont_loss, cat_loss, cont_loss

    # --- steps --------------------------------------------------------------------------------
    def d_step(self, batch):
        real = to_model_range(first_tensor(batch))
        n, device = len(real), real.device
        z = torch.randn(n, self.noise, device=device)
        category, cont = self.draw_codes(n, device)
        with self.autocast():
            with torch.no_grad():
                fake = self.generator(self.generator_input(z, category, cont)).to(real.dtype)
            real_logits = self.discriminator(real)
            fake_logits, fake_features = self.discriminator(fake, features=True)
            adv, parts = self.critic_objective(lambda x: self.discriminator(x).view(-1), real, fake,
                                               real_logits.float(), fake_logits.float())
            info, cat_loss, cont_loss = self.information_loss(
                fake_features if self.info_trains_body else fake_features.detach(), category, cont)
            total = adv + info
        self.backward_step(total, self.optimizer_d)
        return host_floats({"d_loss": total, **parts, "info": info, "info_cat": cat_loss, "info_cont": cont_loss})

    def g_step(self, batch):
        images = first_tensor(batch)
        n, device = len(images), images.device
        z = torch.randn(n, self.noise, device=device)
        category, cont = self.draw_codes(n, device)
        set_requires_grad([self.discriminator, self.q_head], False)
        try:
            with self.autocast():
                logits, features = self.discriminator(self.generator(self.generator_input(z, category, cont)),
                                                      features=True)
                adv = generator_loss(self.loss, logits.float())
                info, _, _ = self.information_loss(features, category, cont)
                loss = adv + info
            self.backward_step(loss, self.optimizer_g)
        finally:
            set_requires_grad([self.discriminator, self.q_head], True)
        return host_floats({"g_loss": adv, "g_info": info})

    # --- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n, labels=None, generator=None):
        """n images with codes from the priors; ``labels`` fixes the categorical code."""
        z = noise_like(n, self.noise, generator, self.device)
        category, cont = self.draw_codes(n, self.device, labels, generator)
        return self.generate(self.generator_input(z, category, cont))

    @torch.no_grad()
    def predict_codes(self, images):
        """Q's categorical logits and continuous means for images in [0, 1]."""
        _, features = self.discriminator(to_model_range(images.to(self.device)), features=True)
        out = self.q_head(features).float()
        return out[:, :self.categorical], out[:, self.categorical:]

    @torch.no_grad()
    def code_sweeps(self, columns=SWEEP_COLUMNS, generator=None):
        """name -> images laid out ``columns`` per row (see the module docstring)."""
        k = self.categorical
        rows = torch.arange(k, device=self.device)
        grids = {}
        z = noise_like(columns, self.noise, generator, self.device).repeat(k, 1)
        zeros = torch.zeros(k * columns, self.continuous, device=self.device)
        grids["sweep_categorical"] = self.generate(self.generator_input(z, rows.repeat_interleave(columns), zeros))
        z = noise_like(1, self.noise, generator, self.device).expand(k * columns, -1)
        sweep = torch.linspace(-SWEEP_RANGE, SWEEP_RANGE, columns, device=self.device).repeat(k)
        for j in range(self.continuous):
            cont = torch.zeros(k * columns, self.continuous, device=self.device)
            cont[:, j] = sweep
            grids[f"sweep_continuous_{j + 1}"] = self.generate(
                self.generator_input(z, rows.repeat_interleave(columns), cont))
        return grids

    @torch.no_grad()
    def visuals(self, batch):
        return self.code_sweeps(generator=torch.Generator().manual_seed(0))
