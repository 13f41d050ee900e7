"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks").

Defaults from the paper: two ResNet generators (G_AB, G_BA; 9 residual blocks at 256 px,
6 at 128 px and below) whose norm + ReLU pairs and residual blocks are gentk's fused
InstanceNormAct2d / ResidualBlock (InstanceNorm without affine or running statistics);
two 70x70 PatchGAN discriminators with instance norm; LSGAN; lambda_cyc = 10 for both
cycles and the identity loss at 0.5 * lambda_cyc (``lambda_identity=0.5``), all L1 through
``gentk.l1_loss(weight=)``; each discriminator sees a pool of the last 50 generated images
(half the time an older one, :class:`ImagePool`; the pools are part of the checkpoint, so a
resumed run continues exactly); Adam 2e-4, betas (0.5, 0.999), weights ~ N(0, 0.02); the
learning rate constant for the first half of training and decaying linearly towards zero
over the second half (``total_steps``, which ``gentk train`` fills in).

CPU-sized defaults (documented departures): below 128 px the generator and discriminator
base width is 16 (the paper's 64 with ``--width 64 --d-width 64``) and the PatchGAN has 2
layers (34x34 patches) since a 70x70 patch covers a whole 28-32 px image (``--d-layers 3``).
One trainer step updates both discriminators, then both generators on the same fakes (the
reference code updates the generators first).
"""
import dataclasses

import torch

import gentk
from gentk.metrics.translation import TranslationScores
from gentk.models.adversarial import AdversarialConfig, AdversarialModel, generator_loss, init_normal, set_requires_grad
from gentk.models.base import from_data, host_floats, option, override, to_image_range, to_model_range
from gentk.models.image_nets import (ExampleInputs, PatchDiscriminator, ResnetGenerator, batches, default_width,
                                     patch_layers, translation_grid)


class ImagePool:
    """Shrivastava et al.'s history of generated images, as CycleGAN uses it: while fewer than
    ``size`` are stored each new image is stored and returned; afterwards each new image is,
    with probability 1/2, swapped for a random stored one (which is returned instead), else
    returned as is. Randomness comes from torch's global generator (checkpointed)."""

    def __init__(self, size=50):
        self.size = int(size)
        self.images = []

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                slot = int(torch.randint(self.size, ()))
                out.append(self.images[slot])
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state(self):
        return torch.cat(self.images).cpu() if self.images else torch.empty(0)

    def load(self, stored, device):
        self.images = [image.unsqueeze(0).to(device) for image in stored] if stored.numel() else []


def linear_decay(total_steps):
    """LambdaLR factor: 1 for the first half of ``total_steps``, then linearly towards 0 (the
    reference's 1 - max(0, t + 1 - n) / (n_decay + 1), per step instead of per epoch)."""
    half = total_steps // 2
    decay = total_steps - half

    def factor(step):
        return 1.0 - max(0, step + 1 - half) / (decay + 1)

    return factor


@dataclasses.dataclass
class CycleGANConfig(AdversarialConfig):
    """The paper's objective (LSGAN, lambda_cyc = 10, identity 0.5, a pool of 50, Adam 2e-4 decaying
    over the second half) at CPU-sized widths."""
    loss: str = override(AdversarialConfig, "loss", "lsgan")
    channels: int = from_data(1)
    resolution: int = from_data(28)
    width: int | None = option(None, "generator base width", default_help="64 from 128 px, 16 below")
    d_width: int | None = option(None, "discriminator base width", default_help="64 from 128 px, 16 below")
    n_blocks: int | None = option(None, "residual blocks", default_help="9 from 256 px, 6 below")
    d_layers: int | None = option(None, "PatchGAN layers (3: 70x70 patches, the paper's)",
                                  default_help="3 from 64 px, 2 below")
    lambda_cyc: float = option(10.0, "cycle weight")
    lambda_identity: float = option(0.5, "identity loss weight as a fraction of --lambda-cyc (0 turns it off)")
    pool_size: int = option(50, "generated images each discriminator draws from (0: no pool)")
    label_palette: str = option("none", "the palette of domain B when it is label maps: facades scores A -> B on "
                                "the test pairs by per-pixel and per-class accuracy and class IoU",
                                choices=("none", "facades"))
    total_steps: int | None = from_data(None)
    lr: float = from_data(2e-4)


class CycleGAN(AdversarialModel):
    name = "cyclegan"
    capabilities = frozenset({"translation"})
    paper = "Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks"
    data_kind = "unpaired"
    default_data = "digits-thickness"
    config_class = CycleGANConfig
    inference_networks = ("gen_ab", "gen_ba")

    def __init__(self, **config):
        cfg = CycleGANConfig(**config)
        cfg.width = cfg.width or default_width(cfg.resolution)
        cfg.d_width = cfg.d_width or default_width(cfg.resolution)
        cfg.n_blocks = cfg.n_blocks or (9 if cfg.resolution >= 256 else 6)
        cfg.d_layers = cfg.d_layers or patch_layers(cfg.resolution)
        super().__init__(**dataclasses.asdict(cfg))
        if cfg.resolution % 4:
            raise ValueError(f"the ResNet generator needs a resolution divisible by 4, got {cfg.resolution}")
        if not cfg.lambda_cyc >= 0 or not cfg.lambda_identity >= 0:
            raise ValueError(f"lambda_cyc and lambda_identity must be >= 0, got {cfg.lambda_cyc}, "
                             f"{cfg.lambda_identity}")
        if cfg.pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {cfg.pool_size}")
        if cfg.total_steps is not None and cfg.total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {cfg.total_steps}")
        self.lambda_cyc, self.lambda_identity = float(cfg.lambda_cyc), float(cfg.lambda_identity)
        self.gen_ab = ResnetGenerator(cfg.channels, cfg.channels, cfg.width, cfg.n_blocks, "cyclegan")
        self.gen_ba = ResnetGenerator(cfg.channels, cfg.channels, cfg.width, cfg.n_blocks, "cyclegan")
        self.disc_a = PatchDiscriminator(cfg.channels, cfg.d_width, cfg.d_layers, "instance")  # real A vs G_BA(B)
        self.disc_b = PatchDiscriminator(cfg.channels, cfg.d_width, cfg.d_layers, "instance")  # real B vs G_AB(A)
        for net in self.networks().values():
            net.apply(init_normal)
        self.opt_g = torch.optim.Adam(list(self.gen_ab.parameters()) + list(self.gen_ba.parameters()), lr=cfg.lr,
                                      betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(list(self.disc_a.parameters()) + list(self.disc_b.parameters()), lr=cfg.lr,
                                      betas=(0.5, 0.999))
        self.scheds = {}
        if cfg.total_steps:
            self.scheds = {name: torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(cfg.total_steps))
                           for name, opt in self.optimizers().items()}
        self.pool_a, self.pool_b = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)
        self.examples = ExampleInputs()
        self._fakes = None

    def networks(self):
        return {"gen_ab": self.gen_ab, "gen_ba": self.gen_ba, "disc_a": self.disc_a, "disc_b": self.disc_b}

    def optimizers(self):
        return {"generators": self.opt_g, "discriminators": self.opt_d}

    def schedulers(self):
        return self.scheds

    def d_step(self, batch):
        real_a, real_b = to_model_range(batch[0]), to_model_range(batch[1])
        self.examples.remember(batch[0], batch[1])
        with self.autocast():
            if self.generator_steps_next():
                fake_b, fake_a = self.gen_ab(real_a), self.gen_ba(real_b)
                self._fakes = fake_a, fake_b  # G is unchanged until g_step: no second forward
            else:
                with torch.no_grad():
                    fake_b, fake_a = self.gen_ab(real_a), self.gen_ba(real_b)
            total, parts = 0.0, {}
            for key, disc, real, fake in (("a", self.disc_a, real_a, self.pool_a.query(fake_a)),
                                          ("b", self.disc_b, real_b, self.pool_b.query(fake_b))):
                loss, terms = self.critic_objective(lambda x, d=disc: d(x).flatten(1).sum(1), real, fake,
                                                    disc(real).float(), disc(fake.detach()).float())
                total = total + 0.5 * loss  # halved, as the reference does for each discriminator
                parts.update({f"{name}_{key}": value for name, value in terms.items()})
        self.backward_step(total, self.opt_d)
        return parts

    def g_step(self, batch):
        real_a, real_b = to_model_range(batch[0]), to_model_range(batch[1])
        fakes, self._fakes = self._fakes, None
        set_requires_grad([self.disc_a, self.disc_b], False)
        with self.autocast():
            fake_a, fake_b = fakes if fakes is not None else (self.gen_ba(real_b), self.gen_ab(real_a))
            adv = generator_loss(self.loss, self.disc_b(fake_b).float()) + \
                generator_loss(self.loss, self.disc_a(fake_a).float())
            cycle = gentk.l1_loss(self.gen_ba(fake_b).float(), real_a.float(), weight=self.lambda_cyc) + \
                gentk.l1_loss(self.gen_ab(fake_a).float(), real_b.float(), weight=self.lambda_cyc)
            loss = adv + cycle
            identity = None
            if self.lambda_identity > 0:
                weight = self.lambda_cyc * self.lambda_identity
                identity = gentk.l1_loss(self.gen_ab(real_b).float(), real_b.float(), weight=weight) + \
                    gentk.l1_loss(self.gen_ba(real_a).float(), real_a.float(), weight=weight)
                loss = loss + identity
        self.backward_step(loss, self.opt_g)
        set_requires_grad([self.disc_a, self.disc_b], True)
        out = {"g_adv": adv, "cycle": cycle}
        if identity is not None:
            out["identity"] = identity
        return host_floats(out)

    def train_step(self, batch):
        losses = super().train_step(batch)
        for sched in self.scheds.values():
            sched.step()
        return losses

    @torch.no_grad()
    def translate(self, images, direction="AtoB"):
        """G_AB (``AtoB``) or G_BA (``BtoA``) of images in [0, 1], in [0, 1]."""
        gen = self.gen_ab if direction == "AtoB" else self.gen_ba
        return to_image_range(gen(to_model_range(images.to(self.device))).float())

    @torch.no_grad()
    def sample(self, n, labels=None, generator=None, inputs=None, direction="AtoB"):
        """Translations of ``inputs`` (in [0, 1]) by G_AB (or G_BA), or of the first training A images."""
        if inputs is None:
            a, b = self.examples.take(n, self.device, self.name)
            inputs = a if direction == "AtoB" else b
        return self.translate(inputs[:n], direction)

    def _rows(self, chunk):
        a, b = chunk[0], chunk[1]
        fake_b, fake_a = self.translate(a, "AtoB"), self.translate(b, "BtoA")
        return [a, fake_b, self.translate(fake_b, "BtoA"), b, fake_a, self.translate(fake_a, "AtoB")]

    @torch.no_grad()
    def translation_grid(self, batch, n=None, generator=None):
        """Rows of 8: A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B)). Returns (images, nrow)."""
        return translation_grid(self._rows, batch, n)

    def visuals(self, batch):
        images, _ = self.translation_grid(batch, 16)
        return {"translations": images} if len(images) else {}

    @torch.no_grad()
    def evaluate_translation(self, test_data, max_examples=None):
        """Mean cycle L1 (in [0, 1] pixel units) A -> B -> A and B -> A -> B on the test split; on
        paired test data the scores of A -> B against B as pix2pix's (L1, PSNR, SSIM and, with a
        label palette, the label-map scores)."""
        totals, count = {"test_cycle_l1_a": 0.0, "test_cycle_l1_b": 0.0}, 0
        scores = TranslationScores(self.config.get("label_palette"), prefix="test_ab_")
        for a, b in batches(test_data, max_examples=max_examples):
            fake_b = self.translate(a, "AtoB")
            rec_a = self.translate(fake_b, "BtoA").cpu()
            rec_b = self.translate(self.translate(b, "BtoA"), "AtoB").cpu()
            totals["test_cycle_l1_a"] += (rec_a - a).abs().flatten(1).mean(1).sum().item()
            totals["test_cycle_l1_b"] += (rec_b - b).abs().flatten(1).mean(1).sum().item()
            count += len(a)
            if getattr(test_data, "paired", False):
                scores.add(fake_b, b)
        result = {k: v / max(count, 1) for k, v in totals.items()}
        return {**result, **scores.result()} if scores.count else result

    def extra_state(self):
        return {**super().extra_state(), **self.examples.state(), "pool_a": self.pool_a.state(),
                "pool_b": self.pool_b.state()}

    def load_extra_state(self, state):
        super().load_extra_state(state)
        self.examples.load(state)
        for key, pool in (("pool_a", self.pool_a), ("pool_b", self.pool_b)):
            if key in state:
                pool.load(state[key], self.device)
