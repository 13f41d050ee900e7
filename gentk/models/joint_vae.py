"""Joint-VAE (Dupont 2018, "Learning Disentangled Joint Continuous and Discrete Representations").

Continuous latents z (Gaussian, prior N(0, I)) and one or more categorical latents c_j
(K_j categories, uniform prior). While training each c_j is a Gumbel-Softmax sample at
temperature tau = 0.67 drawn on the log-probabilities; in evaluation (``model.eval()``) it
is the one-hot of the most probable category. The objective is

    recon + gamma_z * |KL(q(z|x) || p(z)) - C_z| + gamma_c * |sum_j KL(q(c_j|x) || U(K_j)) - C_c|

with each capacity rising linearly from 0 over its own number of steps, and C_c never above
sum_j log K_j (the most a categorical code can hold). Paper (MNIST): 10 continuous latents
and one 10-way categorical, C_z: 0 -> 5 nats and C_c: 0 -> 5 nats (capped at log 10 = 2.30)
over 25,000 iterations, gamma = 30 for both, Adam 5e-4, batch 64, 100 epochs of the 60,000
training images. ``*_capacity_steps=None`` keeps the ramp's length in epochs: 25,000 *
train_size / 60,000 steps (the CLI passes the training set's size), the paper's 25,000 when
train_size is not given.

``marginal_gamma`` (default 0; not in the paper) adds marginal_gamma * sum_j KL(q(c_j) || U(K_j))
of the batch's aggregate posterior q(c_j) = mean_x q(c_j|x), logged every step as
``kl_marginal``. The paper's KL_c is per example: it reaches log K whether or not every category
is used, and a category no example picks gets no gradient, so it can stay empty while two
clusters share another. The term keeps every category in use (on planted clusters: 80-81% ->
100% accuracy; on MNIST it does not help; QUALITY.md, Joint-VAE follow-ups).

Networks: the VAE's (gentk.models.vae.build_networks). ``arch="conv"`` is the paper's MNIST
network at 28x28 instead of 32x32 (two stride-2 4x4 convolutions 32 and 64 wide, a 256-unit
layer), ``arch="mlp"`` the VAE's one-hidden-layer MLP. All the latent arithmetic runs through
gentk ops: reparameterize_kl, gumbel_softmax, categorical_kl_uniform, bernoulli_recon.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F

import gentk
from gentk.models.base import GenerativeModel, first_tensor, from_data, host_floats, option
from gentk.models.beta_vae import linear_capacity, scaled_ramp, sweep
from gentk.models.checks import check_int, check_number
from gentk.models.vae import ARCHITECTURES, build_networks, reconstruction_grid

DUPONT_STEPS = 25_000
DUPONT_DATA = 60_000  # MNIST training images


def parse_categories(categories):
    """``"10"``, ``"10,5"``, 10 or [10, 5] -> [10, 5]; each categorical latent needs >= 2 categories."""
    if isinstance(categories, str):
        text = categories.strip()
        try:
            sizes = [int(v) for v in text.split(",")] if text else []
        except ValueError:
            raise ValueError(f"categories must be comma-separated integers such as '10' or '10,5', "
                             f"got {categories!r}") from None
    elif isinstance(categories, int) and not isinstance(categories, bool):
        sizes = [categories]
    elif isinstance(categories, (list, tuple)):
        sizes = list(categories)
    else:
        raise ValueError(f"categories must be a string like '10,5' or a list of integers, got {categories!r}")
    for k in sizes:
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"categories: every categorical latent needs an integer >= 2 categories, "
                             f"got {categories!r}")
    return sizes


def marginal_kl_uniform(logits):
    """KL(q(c) || U(K)) of the aggregate posterior q(c) = mean over the batch of softmax(logits):
    0 when the batch uses every category equally, log K when all of it picks one category."""
    log_q = F.log_softmax(logits, dim=-1)
    log_marginal = torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(logits.shape[0])
    return gentk.categorical_kl_uniform(log_marginal)


@dataclasses.dataclass
class JointVAEConfig:
    """Dupont's MNIST settings: 10 continuous latents, one 10-way code, tau 0.67, both capacities
    0 -> 5 nats over 25,000 steps at gamma 30, Adam 5e-4."""
    latent: int = option(10, "continuous latent dimensions")
    categories: str = option("10", "categories of each categorical latent, comma-separated")
    arch: str = option("conv", "the VAE's conv or mlp", choices=ARCHITECTURES)
    tau: float = option(0.67, "Gumbel-Softmax temperature")
    cont_capacity: float = option(5.0, "final C_z in nats")
    disc_capacity: float = option(5.0, "final C_c in nats, capped at sum log K")
    cont_capacity_steps: int | None = option(None, "steps of the C_z ramp",
                                             default_help="the paper's 25,000 scaled to the data size")
    disc_capacity_steps: int | None = option(None, "steps of the C_c ramp",
                                             default_help="the paper's 25,000 scaled to the data size")
    cont_gamma: float = option(30.0, "weight of |KL_z - C_z|")
    disc_gamma: float = option(30.0, "weight of |KL_c - C_c|")
    marginal_gamma: float = option(0.0, "weight of KL(q(c) || uniform) of the batch's aggregate posterior, which "
                                   "keeps every category in use (0: Dupont's objective)")
    train_size: int | None = from_data(None)
    resolution: int = from_data(28)
    channels: int = from_data(1)
    lr: float = from_data(5e-4)


class JointVAE(GenerativeModel):
    name = "joint_vae"
    capabilities = frozenset({"elbo", "importance_nll", "latent_kl", "capacity", "traverse", "categorical_codes"})
    paper = "Dupont 2018, Learning Disentangled Joint Continuous and Discrete Representations"
    data_kind = "labelled"
    config_class = JointVAEConfig

    def __init__(self, **config):
        cfg = JointVAEConfig(**config)
        sizes = parse_categories(cfg.categories)
        check_int("latent", cfg.latent, 0)
        if cfg.latent + len(sizes) == 0:
            raise ValueError("latent is 0 and categories is empty: the model needs at least one latent")
        if cfg.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be 'conv' or 'mlp', got {cfg.arch!r}")
        cfg.tau = check_number("tau", cfg.tau, 0.0, strictly=True)
        for name in ("cont_capacity", "disc_capacity", "cont_gamma", "disc_gamma", "marginal_gamma"):
            setattr(cfg, name, check_number(name, getattr(cfg, name), 0.0))
        for name in ("cont_capacity_steps", "disc_capacity_steps", "train_size"):
            if getattr(cfg, name) is not None:
                check_int(name, getattr(cfg, name), 1)
        check_number("lr", cfg.lr, 0.0, strictly=True)
        super().__init__(**dataclasses.asdict(cfg))
        latent = cfg.latent
        self.latent, self.categories, self.tau = latent, sizes, cfg.tau
        self.cont_capacity, self.disc_capacity = cfg.cont_capacity, cfg.disc_capacity
        self.cont_gamma, self.disc_gamma, self.marginal_gamma = cfg.cont_gamma, cfg.disc_gamma, cfg.marginal_gamma
        self.cont_steps = cfg.cont_capacity_steps or scaled_ramp(DUPONT_STEPS, DUPONT_DATA, cfg.train_size)
        self.disc_steps = cfg.disc_capacity_steps or scaled_ramp(DUPONT_STEPS, DUPONT_DATA, cfg.train_size)
        self.disc_limit = sum(math.log(k) for k in sizes)
        self.code_size = latent + sum(sizes)
        self.encoder, self.decoder = build_networks(cfg.arch, cfg.channels, cfg.resolution, self.code_size,
                                                    encoder_outputs=2 * latent + sum(sizes))
        self.optimizer = torch.optim.Adam(list(self.encoder.parameters()) + list(self.decoder.parameters()),
                                          lr=cfg.lr)
        self.step = 0
        # running mean of each continuous latent's KL: the traversal's default dimension
        self.kl_average = torch.zeros(latent)

    def networks(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def optimizers(self):
        return {"adam": self.optimizer}

    # --- capacities ----------------------------------------------------------------------
    def cont_capacity_at(self, step=None):
        return linear_capacity(self.step if step is None else step, self.cont_capacity, self.cont_steps)

    def disc_capacity_at(self, step=None):
        step = self.step if step is None else step
        return min(linear_capacity(step, self.disc_capacity, self.disc_steps), self.disc_limit)

    def capacity_targets(self):
        """What the KLs should measure now: {name: (C, latent-name prefix)}."""
        targets = {}
        if self.latent:
            targets["kl_cont"] = (self.cont_capacity_at(), "z")
        if self.categories:
            targets["kl_disc"] = (self.disc_capacity_at(), "c")
        return targets

    # --- the model -------------------------------------------------------------------------
    def encode(self, x):
        """(mu [B, latent], logvar [B, latent], [logits [B, K_j] per categorical latent])."""
        h = self.encoder(x).float()
        mu, logvar = h[:, :self.latent], h[:, self.latent:2 * self.latent]
        return mu, logvar, list(h[:, 2 * self.latent:].split(self.categories, dim=1))

    def decode(self, code):
        """Bernoulli logits of the pixels from [z, one-hot/relaxed c_1, c_2, ...]."""
        return self.decoder(code).float()

    def categorical(self, logits, hard_sample=False):
        """The code of one categorical latent: a Gumbel-Softmax sample on the log-probabilities
        while training, the argmax one-hot in evaluation (``hard_sample``: a one-hot sample)."""
        log_q = F.log_softmax(logits, dim=-1)
        if hard_sample:
            return gentk.gumbel_softmax(log_q, tau=self.tau, hard=True)
        if self.encoder.training:
            return gentk.gumbel_softmax(log_q, tau=self.tau)
        return gentk.gumbel_softmax(log_q, tau=self.tau, hard=True, sample=False)

    def losses(self, x):
        mu, logvar, logits = self.encode(x)
        parts = []
        kl_dims = torch.zeros(self.latent, device=x.device)
        if self.latent:
            z, kl = gentk.reparameterize_kl(mu, logvar, reduction="none")
            kl_dims = kl.mean(0)
            parts.append(z)
        kl_cats = [gentk.categorical_kl_uniform(l) for l in logits]
        parts += [self.categorical(l) for l in logits]
        recon = gentk.bernoulli_recon(self.decode(torch.cat(parts, dim=1)), x)
        kl_cont = kl_dims.sum()
        kl_disc = sum(kl_cats) if kl_cats else torch.zeros((), device=x.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and bool(self.marginal_gamma)):  # else only logged
            kl_marginal = sum(marginal_kl_uniform(l) for l in logits) if logits else torch.zeros((), device=x.device)
        loss = recon + self.cont_gamma * (kl_cont - self.cont_capacity_at()).abs() \
            + self.disc_gamma * (kl_disc - self.disc_capacity_at()).abs()
        if self.marginal_gamma:
            loss = loss + self.marginal_gamma * kl_marginal
        return loss, recon, kl_cont, kl_disc, kl_marginal, kl_dims, kl_cats

    def train_step(self, batch):
        x = first_tensor(batch)
        with self.autocast():
            loss, recon, kl_cont, kl_disc, kl_marginal, kl_dims, kl_cats = self.losses(x)
        self.backward_step(loss, self.optimizer)
        out = host_floats({"loss": loss, "recon": recon, "kl_cont": kl_cont, "kl_disc": kl_disc,
                           "kl_marginal": kl_marginal,
                           "C_cont": self.cont_capacity_at(), "C_disc": self.disc_capacity_at(), "kl/z": kl_dims,
                           "kl/c": torch.stack(kl_cats) if kl_cats else kl_dims.new_zeros(0)})
        kl_dims = torch.tensor([out[f"kl/z{i}"] for i in range(self.latent)], dtype=kl_dims.dtype)
        self.kl_average = kl_dims if self.step == 0 else 0.99 * self.kl_average + 0.01 * kl_dims
        self.step += 1
        return out

    def extra_state(self):
        return {"step": self.step, "kl_average": self.kl_average.tolist()}

    def load_extra_state(self, state):
        self.step = int(state.get("step", 0))
        if "kl_average" in state:
            self.kl_average = torch.tensor(state["kl_average"], dtype=torch.float32)

    def _prior_codes(self, n, generator):
        device = "cpu" if generator is None else generator.device
        parts = [torch.randn(n, self.latent, generator=generator, device=device)]
        for k in self.categories:
            index = torch.randint(k, (n,), generator=generator, device=device)
            parts.append(F.one_hot(index, k).float())
        return torch.cat(parts, dim=1).to(self.device)

    @torch.no_grad()
    def sample(self, n, labels=None, generator=None):
        return torch.sigmoid(self.decode(self._prior_codes(n, generator)))

    @torch.no_grad()
    def reconstruct(self, x):
        """Decoded posterior means: z = mu and each c_j the argmax one-hot (evaluation codes)."""
        mu, _, logits = self.encode(x)
        parts = [mu] + [gentk.gumbel_softmax(F.log_softmax(l, -1), tau=self.tau, hard=True, sample=False)
                        for l in logits]
        return torch.sigmoid(self.decode(torch.cat(parts, dim=1)))

    @torch.no_grad()
    def visuals(self, batch):
        return reconstruction_grid(first_tensor(batch), self.reconstruct)

    @torch.no_grad()
    def traverse(self, steps=10, dim=None, generator=None):
        """One row per category (of every categorical latent in turn, the others at their first
        category); along each row the continuous latent ``dim`` (default: the one with the
        largest running KL in training) sweeps ``steps`` values from -3 to +3 standard
        deviations, the other continuous latents at 0. Returns (images [sum K * steps, C, H, W],
        steps per row)."""
        if not self.categories:
            raise ValueError("traverse: this Joint-VAE has no categorical latent (categories is empty)")
        if dim is None:
            dim = int(self.kl_average.argmax()) if self.latent else None
        elif isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < self.latent:
            raise ValueError(f"dim must be a continuous latent dimension in [0, {self.latent}), got {dim!r}")
        values = sweep(steps, self.device)
        rows = []
        for j, k in enumerate(self.categories):
            for category in range(k):
                z = torch.zeros(steps, self.latent, device=self.device)
                if dim is not None:
                    z[:, dim] = values
                codes = [z]
                for j2, k2 in enumerate(self.categories):
                    index = torch.full((steps,), category if j2 == j else 0, device=self.device)
                    codes.append(F.one_hot(index, k2).float())
                rows.append(torch.cat(codes, dim=1))
        return torch.sigmoid(self.decode(torch.cat(rows))), steps

    # --- evaluation (per example, in nats) ---------------------------------------------------
    @torch.no_grad()
    def categorical_codes(self, x):
        """The most probable category of each categorical latent: [B, number of categorical latents]."""
        _, _, logits = self.encode(x)
        return torch.stack([l.argmax(1) for l in logits], dim=1)

    @torch.no_grad()
    def kl_per_dimension(self, x):
        """KL per example of each continuous latent ("z0", ...) and each categorical one ("c0", ...)."""
        mu, logvar, logits = self.encode(x)
        out = {}
        if self.latent:
            kl = gentk.gaussian_kl(mu, logvar, reduction="none")
            out.update({f"z{i}": kl[:, i] for i in range(self.latent)})
        out.update({f"c{j}": gentk.categorical_kl_uniform(l, reduction="none") for j, l in enumerate(logits)})
        return out

    @torch.no_grad()
    def negative_elbo(self, x):
        """-ELBO per example: one sample of z and a one-hot sample of each c_j from the
        posterior (the relaxation is a training device, not part of the model), analytic KLs."""
        mu, logvar, logits = self.encode(x)
        parts = [gentk.reparameterize(mu, logvar)] if self.latent else []
        parts += [self.categorical(l, hard_sample=True) for l in logits]
        recon = gentk.bernoulli_recon(self.decode(torch.cat(parts, dim=1)), x, reduction="none").flatten(1).sum(1)
        kl = sum(v for v in self.kl_per_dimension(x).values())
        return recon + kl

    @torch.no_grad()
    def log_importance_weights(self, x, k):
        """log p(x|z,c) + log p(z) + log p(c) - log q(z|x) - log q(c|x) for k posterior samples: [k, B]."""
        mu, logvar, logits = self.encode(x)
        b = x.shape[0]
        log_w = torch.zeros(k, b, device=x.device)
        parts = []
        if self.latent:
            eps = torch.randn((k,) + mu.shape, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps
            log_w += -0.5 * (z.pow(2) - eps.pow(2) - logvar).sum(-1)
            parts.append(z)
        for l, size in zip(logits, self.categories):
            log_q = F.log_softmax(l, dim=-1)
            index = torch.multinomial(log_q.exp(), k, replacement=True).t()  # [k, B]
            log_w += -math.log(size) - log_q.gather(1, index.t()).t()
            parts.append(F.one_hot(index, size).float())
        logits_x = self.decode(torch.cat(parts, dim=-1).flatten(0, 1))
        target = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
        log_px = -F.binary_cross_entropy_with_logits(logits_x, target, reduction="none").flatten(1).sum(1)
        return log_w + log_px.view(k, b)
