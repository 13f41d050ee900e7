"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks").

Defaults from the paper: U-Net generator with skips and dropout 0.5 in the decoder levels
next to the bottleneck; 70x70 PatchGAN discriminator on concat(input, output); BCE
adversarial loss (non-saturating for G); lambda_L1 = 100 through ``gentk.l1_loss(weight=)``;
the discriminator's loss halved; Adam 2e-4, betas (0.5, 0.999); weights ~ N(0, 0.02).
``norm="batch"`` (the paper's) or ``"instance"`` (gentk's fused InstanceNormAct2d).

CPU-sized defaults (documented departures): below 128 px the base width is 16 (the paper's
64 with ``--width 64``) and the PatchGAN has 2 layers (34x34 patches; a 70x70 patch would
be the whole 28-32 px image; ``--d-layers 3`` for the paper's). ``direction`` ``BtoA`` is the
default because the embedded ``digits-edges`` pairs are (digit, edge map) and the task is
edges -> digit, as in the paper's edges2* sets; use ``AtoB`` for folders stored input|output.
"""
import dataclasses

import torch

import gentk
from gentk.metrics.translation import TranslationScores
from gentk.models.adversarial import AdversarialConfig, AdversarialModel, generator_loss, init_normal, set_requires_grad
from gentk.models.base import from_data, host_floats, option, to_image_range, to_model_range
from gentk.models.image_nets import (NORMS, ExampleInputs, PatchDiscriminator, UnetGenerator, batches,
                                     default_width, paper_test_mode, patch_layers, translation_grid)


@dataclasses.dataclass
class Pix2PixConfig(AdversarialConfig):
    """The paper's objective (BCE, lambda_L1 = 100, dropout 0.5, Adam 2e-4) at CPU-sized widths."""
    channels: int = from_data(1)
    resolution: int = from_data(28)
    direction: str = option("BtoA", "translate A to B or B to A (BtoA: edges -> digit on digits-edges)",
                            choices=("AtoB", "BtoA"))
    norm: str = option("batch", "batch (the paper's) or instance (gentk's fused kernel)", choices=NORMS)
    width: int | None = option(None, "generator base width", default_help="64 from 128 px, 16 below")
    d_width: int | None = option(None, "discriminator base width", default_help="64 from 128 px, 16 below")
    d_layers: int | None = option(None, "PatchGAN layers (3: 70x70 patches, the paper's)",
                                  default_help="3 from 64 px, 2 below")
    dropout: float = option(0.5, "decoder dropout")
    lambda_l1: float = option(100.0, "L1 weight")
    label_palette: str = option("none", "the palette of the outputs when they are label maps (photo -> labels): "
                                "facades adds per-pixel and per-class accuracy and class IoU, each pixel read as "
                                "its nearest palette colour", choices=("none", "facades"))
    lr: float = from_data(2e-4)


class Pix2Pix(AdversarialModel):
    name = "pix2pix"
    capabilities = frozenset({"translation"})
    paper = "Isola et al. 2017, Image-to-Image Translation with Conditional Adversarial Networks"
    data_kind = "paired"
    default_data = "digits-edges"
    config_class = Pix2PixConfig
    inference_networks = ("generator",)
    test_mode = "eval"  # or "paper" (see translate); gentk eval --test-mode sets it

    def __init__(self, **config):
        cfg = Pix2PixConfig(**config)
        cfg.width = cfg.width or default_width(cfg.resolution)
        cfg.d_width = cfg.d_width or default_width(cfg.resolution)
        cfg.d_layers = cfg.d_layers or patch_layers(cfg.resolution)
        super().__init__(**dataclasses.asdict(cfg))
        if cfg.direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {cfg.direction!r}")
        if cfg.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {cfg.norm!r}")
        if not 0 <= cfg.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
        if not cfg.lambda_l1 >= 0:
            raise ValueError(f"lambda_l1 must be >= 0, got {cfg.lambda_l1}")
        self.direction, self.lambda_l1 = cfg.direction, float(cfg.lambda_l1)
        self.generator = UnetGenerator(cfg.channels, cfg.channels, cfg.resolution, cfg.width, cfg.norm, cfg.dropout)
        self.discriminator = PatchDiscriminator(2 * cfg.channels, cfg.d_width, cfg.d_layers, cfg.norm)
        self.generator.apply(init_normal)
        self.discriminator.apply(init_normal)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.examples = ExampleInputs()
        self._fake = None

    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def split(self, batch):
        """(input, target) in [-1, 1] for the configured direction."""
        a, b = batch[0], batch[1]
        source, target = (a, b) if self.direction == "AtoB" else (b, a)
        return to_model_range(source), to_model_range(target)

    def d_step(self, batch):
        source, target = self.split(batch)
        self.examples.remember(batch[0] if self.direction == "AtoB" else batch[1])
        with self.autocast():
            if self.generator_steps_next():
                fake = self._fake = self.generator(source)  # reused by g_step: G is unchanged until then
            else:
                with torch.no_grad():
                    fake = self.generator(source)
            real_logits = self.discriminator(torch.cat([source, target], 1)).float()
            fake_logits = self.discriminator(torch.cat([source, fake.detach()], 1)).float()
            critic = lambda x: self.discriminator(torch.cat([source, x], 1)).flatten(1).sum(1)  # noqa: E731
            adv, parts = self.critic_objective(critic, target, fake, real_logits, fake_logits)
            loss = 0.5 * adv  # the paper halves D's objective to slow it relative to G
        self.backward_step(loss, self.opt_d)
        return parts

    def g_step(self, batch):
        source, target = self.split(batch)
        fake, self._fake = self._fake, None
        set_requires_grad(self.discriminator, False)
        with self.autocast():
            if fake is None:
                fake = self.generator(source)
            adv = generator_loss(self.loss, self.discriminator(torch.cat([source, fake], 1)).float())
            l1 = gentk.l1_loss(fake.float(), target.float(), weight=self.lambda_l1)
            loss = adv + l1
        self.backward_step(loss, self.opt_g)
        set_requires_grad(self.discriminator, True)
        out = host_floats({"g_adv": adv, "g_l1": l1})
        out["g_l1"] /= max(self.lambda_l1, 1e-12)
        return out

    @torch.no_grad()
    def translate(self, source):
        """Generator output in [0, 1] for inputs in [0, 1]. Outside training, ``test_mode``
        ``"paper"`` runs the generator as the paper tests it: batch norm on each image's own
        statistics (one image at a time) and dropout on, the running statistics left untouched."""
        x = to_model_range(source.to(self.device))
        if self.test_mode == "paper" and not self.generator.training:
            with paper_test_mode(self.generator):
                out = torch.cat([self.generator(x[i:i + 1]) for i in range(len(x))])
        else:
            out = self.generator(x)
        return to_image_range(out.float())

    @torch.no_grad()
    def sample(self, n, labels=None, generator=None, inputs=None):
        """Translations of ``inputs`` (in [0, 1], the direction's source side), or of the first
        training inputs when none are given."""
        if inputs is None:
            (inputs,) = self.examples.take(n, self.device, self.name)
        return self.translate(inputs[:n])

    def _rows(self, chunk):
        source, target = (chunk[0], chunk[1]) if self.direction == "AtoB" else (chunk[1], chunk[0])
        return [source, self.translate(source), target]

    @torch.no_grad()
    def translation_grid(self, batch, n=None, generator=None):
        """Rows of 8: inputs, outputs, targets (repeated). Returns (images, nrow)."""
        return translation_grid(self._rows, batch, n)

    def visuals(self, batch):
        images, _ = self.translation_grid(batch, 24)
        return {"translations": images} if len(images) else {}

    @torch.no_grad()
    def evaluate_translation(self, test_data, max_examples=None):
        """Mean L1, PSNR and SSIM (in [0, 1] pixel units) of outputs against targets on the test
        pairs; with a label palette, the label-map scores of the outputs too."""
        scores = TranslationScores(self.config.get("label_palette"))
        for chunk in batches(test_data, max_examples=max_examples):
            source, target = (chunk[0], chunk[1]) if self.direction == "AtoB" else (chunk[1], chunk[0])
            scores.add(self.translate(source), target)
        return scores.result()

    def extra_state(self):
        return {**super().extra_state(), **self.examples.state()}

    def load_extra_state(self, state):
        super().load_extra_state(state)
        self.examples.load(state)
