"""StarGAN (Choi et al. 2018, "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation").

Defaults from the paper: one generator G(x, c) that sees the target label c tiled over the
image and concatenated to it as extra channels: conv7, two stride-2 downsamplings, 6
residual blocks, two upsamplings, conv7, tanh, with InstanceNorm (affine weights, running
statistics) — gentk's fused InstanceNormAct2d / ResidualBlock; a discriminator without
norm (LeakyReLU 0.01) with a source head (a patch map of real/fake scores) and a
domain-classification head; WGAN-GP through ``gentk.gradient_penalty`` on the source head
(the patch map summed per image: its gradient is the reference's ``grad_outputs=ones``),
lambda_gp = 10; lambda_cls = 1, lambda_rec = 10 (L1 through ``gentk.l1_loss(weight=)``);
n_critic = 5; Adam 1e-4, betas (0.5, 0.999). Training targets are the batch's own labels
in a random order, as in the reference code.

Labels: ``label_mode="multi"`` (CelebA-style binary attributes, the classification loss is
BCE summed over attributes through ``gentk.bernoulli_recon``) or ``"single"`` (RaFD-style
domains, cross-entropy; the domain is the argmax of the first ``exclusive`` attribute
columns, or of all when ``exclusive=0``). In multi mode the first ``exclusive`` attributes
form one mutually exclusive group (CelebA's hair colours, digits-colour's red/green/blue):
translating to one of them sets it and clears the others, any other attribute is flipped.

CPU-sized defaults (documented departures): below 128 px the generator and discriminator
base width is 16 (the paper's 64 with ``--width 64 --d-width 64``); the discriminator has
as many stride-2 layers as leave a map of at least 2x2 (6 at 128 px, the paper's). Below
64 px the generator downsamples once, not twice (``--n-down``): at 28 px two stride-2
layers leave a 7x7 map whose 3x3 residual blocks see the whole digit, and G learns to
redraw it as another digit that the reconstruction loss can still invert (measured: the
input's digit survived in under 1% of translations); with a 14x14 map it stays local and
the digit survives (QUALITY.md).
"""
import dataclasses

import torch
import torch.nn.functional as F

import gentk
from gentk.models.adversarial import AdversarialModel, ChunkedPenaltyConfig, generator_loss, set_requires_grad
from gentk.models.base import from_data, host_floats, option, override, to_image_range, to_model_range
from gentk.models.image_nets import (ExampleInputs, ResnetGenerator, StarDiscriminator, batches, default_width,
                                     instance_statistics, translation_grid)

LABEL_MODES = ("multi", "single")


def tile_labels(x, c):
    """x [N, C, H, W] with c [N, K] tiled over H x W appended as K more channels."""
    return torch.cat([x, c.to(x.dtype).view(*c.shape, 1, 1).expand(-1, -1, *x.shape[2:])], dim=1)


def classification_loss(logits, target, label_mode):
    """multi: BCE-with-logits summed over attributes, averaged over the batch (the reference's
    ``binary_cross_entropy_with_logits(..., size_average=False) / N``); single: cross-entropy
    against the target domain (one-hot or index)."""
    if label_mode == "multi":
        return gentk.bernoulli_recon(logits.float(), target.float(), reduction="batchsum")
    index = target if target.dtype == torch.long else target.argmax(1)
    return F.cross_entropy(logits.float(), index)


@dataclasses.dataclass
class StarGANConfig(ChunkedPenaltyConfig):
    """The paper's objective (WGAN-GP with lambda_gp = 10, n_critic = 5, lambda_cls = 1, lambda_rec = 10,
    6 residual blocks, Adam 1e-4) at CPU-sized widths."""
    loss: str = override(ChunkedPenaltyConfig, "loss", "wgan-gp")
    n_critic: int = override(ChunkedPenaltyConfig, "n_critic", 5)
    channels: int = from_data(3)
    resolution: int = from_data(28)
    c_dim: int = from_data(4)
    label_mode: str = option("multi", "multi: binary attributes with BCE; single: one domain per image, CE",
                             choices=LABEL_MODES)
    exclusive: int = option(3, "the first N attributes are mutually exclusive (hair colours, digit colours; 0: "
                            "none) and, in single mode, the domains")
    width: int | None = option(None, "generator base width", default_help="64 from 128 px, 16 below")
    d_width: int | None = option(None, "discriminator base width", default_help="64 from 128 px, 16 below")
    n_blocks: int = option(6, "residual blocks")
    n_down: int | None = option(None, "generator stride-2 layers", default_help="2 from 64 px, the paper's; 1 below")
    d_layers: int | None = option(None, "discriminator stride-2 layers", default_help="down to a 2x2 map, 6 at 128 px")
    lambda_cls: float = option(1.0, "domain classification loss weight")
    lambda_rec: float = option(10.0, "reconstruction loss weight")
    lr: float = from_data(1e-4)


class StarGAN(AdversarialModel):
    name = "stargan"
    capabilities = frozenset({"translation"})
    paper = "Choi et al. 2018, StarGAN: Unified GANs for Multi-Domain Image-to-Image Translation"
    data_kind = "attributes"
    default_data = "digits-colour"
    config_class = StarGANConfig
    inference_networks = ("generator",)

    def __init__(self, **config):
        cfg = StarGANConfig(**config)
        cfg.width = cfg.width or default_width(cfg.resolution)
        cfg.d_width = cfg.d_width or default_width(cfg.resolution)
        cfg.n_down = cfg.n_down or (2 if cfg.resolution >= 64 else 1)
        super().__init__(**dataclasses.asdict(cfg))
        label_mode, c_dim, exclusive, n_down, resolution = (cfg.label_mode, cfg.c_dim, cfg.exclusive, cfg.n_down,
                                                            cfg.resolution)
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be 'multi' or 'single', got {label_mode!r}")
        if c_dim < 1 or not 0 <= exclusive <= c_dim:
            raise ValueError(f"need c_dim >= 1 and 0 <= exclusive <= c_dim, got c_dim={c_dim}, exclusive={exclusive}")
        if label_mode == "single" and exclusive == 1:
            raise ValueError("label_mode 'single' needs at least 2 domains (exclusive >= 2, or 0 for all)")
        if n_down < 1 or resolution % 2 ** n_down:
            raise ValueError(f"the generator's {n_down} stride-2 layers need a resolution divisible by "
                             f"{2 ** n_down}, got {resolution}")
        self.label_mode, self.c_dim, self.exclusive = label_mode, c_dim, exclusive
        self.label_dim = (exclusive or c_dim) if label_mode == "single" else c_dim
        self.lambda_cls, self.lambda_rec = float(cfg.lambda_cls), float(cfg.lambda_rec)
        self.generator = ResnetGenerator(cfg.channels + self.label_dim, cfg.channels, cfg.width, cfg.n_blocks,
                                         "stargan", n_down=n_down)
        self.discriminator = StarDiscriminator(cfg.channels, self.label_dim, resolution, cfg.d_width, cfg.d_layers)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.examples = ExampleInputs()
        self._cached = None

    @classmethod
    def config_from_checkpoint(cls, config):
        # checkpoints from before n_down existed were trained with the paper's two downsamplings
        # at every resolution (every newer config records n_down)
        return {"n_down": 2, **super().config_from_checkpoint(config)}

    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    # --- labels ------------------------------------------------------------------------------
    def labels_of(self, attributes):
        """The label the networks use: the attribute vector (multi) or a one-hot domain (single)."""
        if self.label_mode == "multi":
            return attributes.float()
        index = attributes if attributes.dtype == torch.long else attributes[:, :self.label_dim].argmax(1)
        return F.one_hot(index, self.label_dim).float()

    def domain_targets(self, labels):
        """For labels [N, K]: one target label set per domain, as the reference's test grids:
        each exclusive attribute set alone in its group, then each other attribute flipped."""
        if self.label_mode == "single":
            return [F.one_hot(torch.full((len(labels),), i, dtype=torch.long, device=labels.device),
                              self.label_dim).float() for i in range(self.label_dim)]
        targets = []
        for i in range(self.c_dim):
            t = labels.clone()
            if i < self.exclusive:
                t[:, :self.exclusive] = 0
                t[:, i] = 1
            else:
                t[:, i] = 1 - t[:, i]
            targets.append(t)
        return targets

    # --- training ----------------------------------------------------------------------------
    def d_step(self, batch):
        real, c_org = to_model_range(batch[0]), self.labels_of(batch[1])
        self.examples.remember(batch[0], batch[1])
        c_trg = c_org[torch.randperm(len(c_org), device=c_org.device)]
        with self.autocast():
            if self.generator_steps_next():
                fake = self.generator(tile_labels(real, c_trg))
                self._cached = fake, c_org, c_trg  # G is unchanged until g_step: no second forward
            else:
                with torch.no_grad():
                    fake = self.generator(tile_labels(real, c_trg))
            real_src, real_cls = self.discriminator(real)
            fake_src, _ = self.discriminator(fake.detach())
            adv, parts = self.critic_objective(lambda x: self.discriminator(x)[0].flatten(1).sum(1), real, fake,
                                               real_src.float(), fake_src.float())
            cls = classification_loss(real_cls, c_org, self.label_mode)
            loss = adv + self.lambda_cls * cls
        self.backward_step(loss, self.opt_d)
        return host_floats({**parts, "d_cls": cls})

    def g_step(self, batch):
        real = to_model_range(batch[0])
        cached, self._cached = self._cached, None
        set_requires_grad(self.discriminator, False)
        with self.autocast():
            if cached is None:
                c_org = self.labels_of(batch[1])
                c_trg = c_org[torch.randperm(len(c_org), device=c_org.device)]
                fake = self.generator(tile_labels(real, c_trg))
            else:
                fake, c_org, c_trg = cached
            fake_src, fake_cls = self.discriminator(fake)
            adv = generator_loss(self.loss, fake_src.float())
            cls = classification_loss(fake_cls, c_trg, self.label_mode)
            rec = gentk.l1_loss(self.generator(tile_labels(fake, c_org)).float(), real.float(),
                                weight=self.lambda_rec)
            loss = adv + self.lambda_cls * cls + rec
        self.backward_step(loss, self.opt_g)
        set_requires_grad(self.discriminator, True)
        out = host_floats({"g_adv": adv, "g_cls": cls, "g_rec": rec})
        out["g_rec"] /= max(self.lambda_rec, 1e-12)
        return out

    # --- translation -------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, images, target, running_stats=False):
        """G(images, target) in [0, 1]: images in [0, 1], target labels as the networks use them.
        Each image is normalized by its own statistics, as in the reference's test code;
        ``running_stats=True`` uses the running averages instead (in eval mode), which mix
        domains and wreck the translations (see :func:`instance_statistics`)."""
        images, target = images.to(self.device), target.to(self.device)
        if running_stats:
            return to_image_range(self.generator(tile_labels(to_model_range(images), target)).float())
        with instance_statistics(self.generator):
            return to_image_range(self.generator(tile_labels(to_model_range(images), target)).float())

    @torch.no_grad()
    def sample(self, n, labels=None, generator=None, inputs=None, attributes=None):
        """Translations of ``inputs`` (in [0, 1], with their ``attributes``; default: the first
        training images) to ``labels`` (target labels [n, K] or domain indices); without
        labels, input i goes to target domain i modulo the number of domains."""
        if inputs is None:
            inputs, attributes = self.examples.take(n, self.device, self.name)
        inputs = inputs[:n]
        if labels is None:
            if attributes is None:
                raise ValueError("stargan: sample(inputs=...) needs attributes= or labels=")
            targets = self.domain_targets(self.labels_of(attributes[:n].to(self.device)))
            index = torch.arange(len(inputs), device=self.device) % len(targets)
            labels = torch.stack(targets)[index, torch.arange(len(inputs), device=self.device)]
        elif labels.dtype == torch.long:
            labels = F.one_hot(labels.to(self.device), self.label_dim).float()
        return self.translate(inputs, labels[:len(inputs)])

    def _rows(self, chunk):
        x = chunk[0].to(self.device)
        targets = self.domain_targets(self.labels_of(chunk[1].to(self.device)))
        return [x, *[self.translate(x, t) for t in targets]]

    @torch.no_grad()
    def translation_grid(self, batch, n=None, generator=None, per_row=8):
        """Each input translated to every domain: in columns of ``per_row`` inputs, a row of
        the inputs then one row per target domain. Returns (images, nrow)."""
        return translation_grid(self._rows, batch, n, per_row)

    def visuals(self, batch):
        images, _ = self.translation_grid(batch, 16)
        return {"translations": images} if len(images) else {}

    @torch.no_grad()
    def evaluate_translation(self, test_data, max_examples=None):
        """On the test split: how often D's classifier reads every target attribute in
        translations to each domain (and in the real images, for scale), and the
        reconstruction L1 (in [0, 1] pixel units) after translating back."""
        hits = real_hits = rec = count = translations = 0
        for images, attributes in batches(test_data, max_examples=max_examples):
            images = images.to(self.device)
            c_org = self.labels_of(attributes.to(self.device))
            _, real_cls = self.discriminator(to_model_range(images))
            real_hits += self._matches(real_cls, c_org).sum().item()
            for target in self.domain_targets(c_org):
                fake = self.translate(images, target)
                _, cls = self.discriminator(to_model_range(fake))
                hits += self._matches(cls, target).sum().item()
                rec += (self.translate(fake, c_org) - images).abs().flatten(1).mean(1).sum().item()
                translations += len(images)
            count += len(images)
        return {"test_target_accuracy_by_d": hits / max(translations, 1),
                "test_real_accuracy_by_d": real_hits / max(count, 1), "test_rec_l1": rec / max(translations, 1)}

    def _matches(self, logits, target):
        if self.label_mode == "single":
            return logits.argmax(1) == target.argmax(1)
        return ((logits > 0).float() == target).all(1)

    def extra_state(self):
        return {**super().extra_state(), **self.examples.state()}

    def load_extra_state(self, state):
        super().load_extra_state(state)
        self.examples.load(state)
