"""beta-VAE, two variants of the same model (the VAE's networks, a different weight on the KL).

- ``variant="H"`` (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
  Constrained Variational Framework"): recon + beta * KL, beta = 4.
- ``variant="B"`` (Burgess et al. 2018, "Understanding disentangling in beta-VAE"):
  recon + gamma * |KL - C|, the capacity C rising linearly from 0 to C_max over C_stop steps.
  Paper: gamma = 1000, C_max = 25 nats, C_stop = 100,000 iterations at batch 64 on dSprites
  (737,280 images), i.e. about 8.7 epochs. ``c_stop=None`` keeps that length in epochs:
  C_stop = 100,000 * train_size / 737,280 steps (the CLI passes the training set's size; at
  batch 64 that is the same number of passes over the data). Without ``train_size`` it is
  the paper's 100,000.

Both: Bernoulli reconstruction summed over pixels (gentk.bernoulli_recon), KL to N(0, I)
summed over the latents (gentk.reparameterize_kl), averaged over the batch; 10 latents;
Adam 5e-4 (Burgess). Each training step also reports the KL of every latent dimension
(``kl/0``, ``kl/1``, ... in metrics.jsonl), so one sees which latents carry information;
``traverse()`` sweeps each latent over +-3 prior standard deviations.
"""
import dataclasses

import torch

import gentk
from gentk.models.base import from_data, host_floats, option, override
from gentk.models.checks import check_int, check_number
from gentk.models.vae import ARCHITECTURES, VAE, VAEConfig

BURGESS_C_STOP = 100_000
BURGESS_DATA = 737_280  # dSprites images


def linear_capacity(step, maximum, ramp_steps, minimum=0.0):
    """The capacity after ``step`` optimizer steps: rises linearly from ``minimum`` to
    ``maximum`` over ``ramp_steps`` steps and stays at ``maximum`` afterwards."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return float(maximum)
    return float(minimum + (maximum - minimum) * step / ramp_steps)


def scaled_ramp(paper_steps, paper_data, train_size):
    """A paper's ramp length in steps, rescaled to ``train_size`` examples so that it spans the
    same number of epochs (the papers and gentk's default both use batch 64); the paper's own
    length when train_size is None."""
    if train_size is None:
        return int(paper_steps)
    return max(1, round(paper_steps * train_size / paper_data))


def sweep(steps, device):
    """The traversal values: ``steps`` points evenly from -3 to +3 prior standard deviations."""
    check_int("steps", steps, 2)
    return torch.linspace(-3.0, 3.0, steps, device=device)


@dataclasses.dataclass
class BetaVAEConfig(VAEConfig):
    """The VAE's fields (10 latents, Adam 5e-4 as Burgess et al.) and the KL's weighting: Higgins'
    beta = 4; Burgess' gamma = 1000 and C rising to 25 nats."""
    latent: int = override(VAEConfig, "latent", 10)
    lr: float = override(VAEConfig, "lr", 5e-4)
    variant: str = option("H", "H: recon + beta*KL (Higgins); B: recon + gamma*|KL - C| (Burgess)",
                          choices=("H", "B"))
    beta: float = option(4.0, "H: weight of the KL")
    gamma: float = option(1000.0, "B: weight of |KL - C|")
    c_max: float = option(25.0, "B: final capacity C in nats")
    c_stop: int | None = option(None, "B: steps over which C rises from 0 to C_max",
                                default_help="the paper's 100,000 scaled to the data size, same number of epochs")
    train_size: int | None = from_data(None)


class BetaVAE(VAE):
    name = "beta_vae"
    capabilities = frozenset({"elbo", "importance_nll", "latent_kl", "capacity", "traverse"})
    paper = "Higgins et al. 2017 (H, beta*KL); Burgess et al. 2018 (B, gamma*|KL - C|)"
    data_kind = "labelled"
    config_class = BetaVAEConfig

    def __init__(self, **config):
        cfg = BetaVAEConfig(**config)
        if cfg.variant not in ("H", "B"):
            raise ValueError(f"variant must be 'H' (Higgins) or 'B' (Burgess), got {cfg.variant!r}")
        if cfg.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be 'conv' or 'mlp', got {cfg.arch!r}")
        check_int("latent", cfg.latent, 1)
        cfg.beta = check_number("beta", cfg.beta, 0.0)
        cfg.gamma = check_number("gamma", cfg.gamma, 0.0, strictly=True)
        cfg.c_max = check_number("c_max", cfg.c_max, 0.0)
        if cfg.c_stop is not None:
            check_int("c_stop", cfg.c_stop, 1)
        if cfg.train_size is not None:
            check_int("train_size", cfg.train_size, 1)
        check_number("lr", cfg.lr, 0.0, strictly=True)
        super().__init__(arch=cfg.arch, latent=cfg.latent, resolution=cfg.resolution, channels=cfg.channels,
                         lr=cfg.lr)
        self.config = dataclasses.asdict(cfg)
        self.variant, self.beta, self.gamma, self.c_max = cfg.variant, cfg.beta, cfg.gamma, cfg.c_max
        self.c_stop = cfg.c_stop if cfg.c_stop is not None else scaled_ramp(BURGESS_C_STOP, BURGESS_DATA,
                                                                             cfg.train_size)
        self.step = 0  # optimizer steps taken: the capacity schedule's clock

    def capacity(self, step=None):
        """C after ``step`` steps (default: the steps taken so far); None for variant H."""
        if self.variant != "B":
            return None
        return linear_capacity(self.step if step is None else step, self.c_max, self.c_stop)

    def capacity_targets(self):
        """What the KL should measure now: {name: (C, latent-name prefix)} (variant B only)."""
        return {} if self.variant != "B" else {"kl": (self.capacity(), "z")}

    def losses(self, x):
        """(objective, reconstruction, total KL, per-dimension KL [latent]), batch-averaged."""
        mu, logvar = self.encode(x)
        z, kl = gentk.reparameterize_kl(mu, logvar, reduction="none")
        recon = gentk.bernoulli_recon(self.decode(z), x)
        kl_dims = kl.mean(0)
        kl_total = kl_dims.sum()
        if self.variant == "H":
            objective = recon + self.beta * kl_total
        else:
            objective = recon + self.gamma * (kl_total - self.capacity()).abs()
        return objective, recon, kl_total, kl_dims

    def train_step(self, batch):
        x = self.training_images(batch)
        with self.autocast():
            loss, recon, kl, kl_dims = self.losses(x)
        self.backward_step(loss, self.optimizer)
        out = {"loss": loss, "recon": recon, "kl": kl}
        if self.variant == "B":
            out["C"] = self.capacity()
        out = host_floats({**out, "kl/": kl_dims})
        self.step += 1
        return out

    def extra_state(self):
        return {"step": self.step}

    def load_extra_state(self, state):
        self.step = int(state.get("step", 0))

    # --- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def kl_per_dimension(self, x):
        """KL(q(z_i|x) || N(0, 1)) per example and latent: {"z0": [B], "z1": [B], ...}."""
        mu, logvar = self.encode(x)
        kl = gentk.gaussian_kl(mu, logvar, reduction="none")
        return {f"z{i}": kl[:, i] for i in range(kl.shape[1])}

    @torch.no_grad()
    def traverse(self, steps=10, dim=None, generator=None):
        """Decoded latent traversals from the prior's mean: one row per latent dimension (or
        only ``dim``), that dimension swept over ``steps`` values from -3 to +3 standard
        deviations, the others at 0. Returns (images [rows * steps, C, H, W], steps per row)."""
        dims = range(self.latent)
        if dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < self.latent:
                raise ValueError(f"dim must be a latent dimension in [0, {self.latent}), got {dim!r}")
            dims = [dim]
        values = sweep(steps, self.device)
        z = torch.zeros(len(dims), steps, self.latent, device=self.device)
        for row, d in enumerate(dims):
            z[row, :, d] = values
        return torch.sigmoid(self.decode(z.flatten(0, 1))), steps
