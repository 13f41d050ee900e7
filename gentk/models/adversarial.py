"""What gentk's GANs share: the adversarial objective chosen by name (through gentk's fused
losses and gradient penalty), the critic/generator step schedule (``n_critic``), DCGAN's
N(0, 0.02) initialisation and switching a network's gradients off while the other trains.

A model subclasses :class:`AdversarialModel`, derives its config class from
:class:`AdversarialConfig` (``loss``, ``n_critic``, ``lambda_gp``; :class:`ChunkedPenaltyConfig`
adds ``gp_chunk_size``), passes its config's fields to ``AdversarialModel.__init__`` and
implements ``d_step(batch)`` and ``g_step(batch)``, each returning ``{loss name: float}``.
One trainer step is one critic update; every ``n_critic``-th step also updates the generator.
"""
import dataclasses

from torch import nn

import gentk
from gentk.models.base import GenerativeModel, host_floats, option

#: --loss choices: the original minimax with the non-saturating generator, least squares,
#: hinge, and Wasserstein with the gradient penalty (Gulrajani et al. 2017)
ADVERSARIAL_LOSSES = ("bce", "lsgan", "hinge", "wgan-gp")
_CRITIC_MODE = {"bce": "bce", "lsgan": "lsgan", "hinge": "hinge", "wgan-gp": "wgan"}
_GENERATOR_MODE = {"bce": "nonsaturating", "lsgan": "lsgan", "hinge": "hinge", "wgan-gp": "wgan"}


@dataclasses.dataclass
class AdversarialConfig:
    """The adversarial objective and step schedule (a model's config class may override the defaults)."""
    loss: str = option("bce", "adversarial loss", choices=ADVERSARIAL_LOSSES)
    n_critic: int = option(1, "critic updates per generator update")
    lambda_gp: float = option(10.0, "gradient-penalty weight for --loss wgan-gp")


@dataclasses.dataclass
class ChunkedPenaltyConfig(AdversarialConfig):
    """AdversarialConfig and the penalty's chunk size, for the models whose critic takes it."""
    gp_chunk_size: int | None = option(None, "--loss wgan-gp: take the penalty's double backward this many samples "
                                       "at a time, for less peak memory and the same penalty",
                                       default_help="the whole batch at once")


def check_adversarial(model, loss, n_critic, lambda_gp, gp_chunk_size=None):
    if loss not in ADVERSARIAL_LOSSES:
        raise ValueError(f"{model}: unknown loss {loss!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}")
    if not isinstance(n_critic, int) or n_critic < 1:
        raise ValueError(f"{model}: n_critic must be a positive integer, got {n_critic!r}")
    if not lambda_gp >= 0:
        raise ValueError(f"{model}: lambda_gp must be >= 0, got {lambda_gp!r}")
    if gp_chunk_size is not None and (isinstance(gp_chunk_size, bool) or not isinstance(gp_chunk_size, int)
                                      or gp_chunk_size < 1):
        raise ValueError(f"{model}: gp_chunk_size must be a positive integer or None, got {gp_chunk_size!r}")


def critic_loss(loss, real_logits, fake_logits, *, real_label=1.0, fake_label=0.0):
    """The critic's adversarial term for ``loss`` (one fused call over real and fake)."""
    labels = dict(real_label=real_label, fake_label=fake_label) if loss in ("bce", "lsgan") else {}
    return gentk.discriminator_loss(real_logits, fake_logits, _CRITIC_MODE[loss], **labels)


def generator_loss(loss, fake_logits):
    """The generator's adversarial term for ``loss``."""
    return gentk.generator_loss(fake_logits, _GENERATOR_MODE[loss])


def gradient_penalty(critic, real, fake, chunk_size=None):
    """WGAN-GP's penalty; ``critic`` maps images to one value per sample (wrap a
    conditional critic or a patch map: ``lambda x: D(x, y).flatten(1).sum(1)``).
    ``chunk_size``: see :func:`gentk.gradient_penalty` (less peak memory)."""
    return gentk.gradient_penalty(critic, real.detach(), fake.detach(), kind="wgan-gp", chunk_size=chunk_size)


def init_normal(module, std=0.02):
    """DCGAN's initialisation: conv / linear weights ~ N(0, std), norm scales ~ N(1, std),
    biases 0. Use as ``net.apply(init_normal)``."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, std)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and \
            getattr(module, "weight", None) is not None:
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)


def set_requires_grad(nets, flag):
    """Switch parameter gradients of one or more networks (the critic's while G trains)."""
    for net in nets if isinstance(nets, (list, tuple)) else [nets]:
        for p in net.parameters():
            p.requires_grad_(flag)


class AdversarialModel(GenerativeModel):
    config_class = AdversarialConfig

    def __init__(self, *, loss, n_critic, lambda_gp, **config):
        super().__init__(loss=loss, n_critic=n_critic, lambda_gp=lambda_gp, **config)
        gp_chunk_size = config.get("gp_chunk_size")
        check_adversarial(self.name, loss, n_critic, lambda_gp, gp_chunk_size)
        self.loss, self.n_critic, self.lambda_gp, self.gp_chunk_size = loss, n_critic, lambda_gp, gp_chunk_size
        self.critic_steps = 0

    @classmethod
    def config_from_checkpoint(cls, config):
        # before the config classes, every adversarial model's config held gp_chunk_size (None for the
        # models that do not take it, which then refused their own checkpoints)
        config = super().config_from_checkpoint(config)
        if "gp_chunk_size" not in {f.name for f in dataclasses.fields(cls.config_class)}:
            config.pop("gp_chunk_size", None)
        return config

    def d_step(self, batch):
        raise NotImplementedError

    def generator_steps_next(self):
        """Whether the critic step now running is followed by a generator step (d_step can
        then keep its fakes' graph for g_step instead of generating twice)."""
        return (self.critic_steps + 1) % self.n_critic == 0

    def g_step(self, batch):
        raise NotImplementedError

    def train_step(self, batch):
        losses = self.d_step(batch)
        self.critic_steps += 1
        if self.critic_steps % self.n_critic == 0:
            losses.update(self.g_step(batch))
        return losses

    def critic_objective(self, critic, real, fake, real_logits, fake_logits, **labels):
        """The critic's adversarial loss plus, for wgan-gp, lambda_gp times the penalty
        (``critic`` as for :func:`gradient_penalty`). Returns (total, {name: float})."""
        adv = critic_loss(self.loss, real_logits, fake_logits, **labels)
        if self.loss != "wgan-gp" or self.lambda_gp == 0:
            return adv, host_floats({"d_adv": adv})
        gp = gradient_penalty(critic, real, fake, self.gp_chunk_size)
        return adv + self.lambda_gp * gp, host_floats({"d_adv": adv, "gp": gp})

    def extra_state(self):
        return {"critic_steps": self.critic_steps}

    def load_extra_state(self, state):
        self.critic_steps = int(state.get("critic_steps", 0))
