"""The shared GAN machinery: step schedule, objectives by name, initialisation."""
import pytest
import torch
from torch import nn

from gentk.models.adversarial import (ADVERSARIAL_LOSSES, AdversarialModel, critic_loss, generator_loss,
                                      init_normal, set_requires_grad)


class _Counting(AdversarialModel):
    name = "counting"

    def __init__(self, loss="bce", n_critic=1, lambda_gp=10.0, gp_chunk_size=None):
        super().__init__(loss=loss, n_critic=n_critic, lambda_gp=lambda_gp, gp_chunk_size=gp_chunk_size)

    def d_step(self, batch):
        return {"d": 1.0}

    def g_step(self, batch):
        return {"g": 2.0}


def test_generator_steps_every_n_critic_and_resumes():
    model = _Counting(n_critic=3)
    had_g = ["g" in model.train_step(None) for _ in range(7)]
    assert had_g == [False, False, True, False, False, True, False]
    resumed = _Counting(n_critic=3)
    resumed.load_extra_state(model.extra_state())
    assert ["g" in resumed.train_step(None) for _ in range(2)] == [False, True]  # steps 8 and 9


@pytest.mark.parametrize("bad, message", [(dict(loss="wgan"), "unknown loss"), (dict(n_critic=0), "n_critic"),
                                          (dict(lambda_gp=-1.0), "lambda_gp"), (dict(gp_chunk_size=0), "gp_chunk_size"),
                                          (dict(gp_chunk_size=2.5), "gp_chunk_size")])
def test_bad_settings_name_the_argument(bad, message):
    with pytest.raises(ValueError, match=message):
        _Counting(**bad)


@pytest.mark.parametrize("loss", ADVERSARIAL_LOSSES)
def test_objectives_match_the_formulas(loss):
    torch.manual_seed(0)
    real, fake = torch.randn(8, 1), torch.randn(8, 1)
    expected_d = {"bce": nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean(),
                  "lsgan": (real - 1).pow(2).mean() + fake.pow(2).mean(),
                  "hinge": torch.relu(1 - real).mean() + torch.relu(1 + fake).mean(),
                  "wgan-gp": fake.mean() - real.mean()}[loss]
    expected_g = {"bce": nn.functional.softplus(-fake).mean(), "lsgan": (fake - 1).pow(2).mean(),
                  "hinge": -fake.mean(), "wgan-gp": -fake.mean()}[loss]
    torch.testing.assert_close(critic_loss(loss, real, fake), expected_d)
    torch.testing.assert_close(generator_loss(loss, fake), expected_g)


def test_wgan_gp_objective_adds_the_weighted_penalty():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    model = _Counting(loss="wgan-gp", lambda_gp=10.0)
    total, parts = model.critic_objective(critic, real, fake, critic(real), critic(fake))
    # a linear critic's input gradient is its weight for every sample: the penalty is exact
    penalty = (critic[1].weight.norm() - 1).pow(2)
    torch.testing.assert_close(parts["gp"], penalty.item(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(total.item(), parts["d_adv"] + 10 * penalty.item(), rtol=1e-5, atol=1e-5)


def test_chunked_penalty_gives_the_same_critic_gradients():
    """gp_chunk_size runs the penalty's double backward a few samples at a time: the same
    value and the same gradients for the critic as the whole batch at once."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(16, 1)).double()
    real, fake = torch.randn(5, 3, 4, 4, dtype=torch.float64), torch.randn(5, 3, 4, 4, dtype=torch.float64)
    results = []
    for chunk in (None, 2):
        critic.zero_grad()
        model = _Counting(loss="wgan-gp", gp_chunk_size=chunk)
        torch.manual_seed(1)  # the same interpolation weights
        total, parts = model.critic_objective(lambda x: critic(x).view(-1), real, fake, critic(real), critic(fake))
        total.backward()
        results.append((parts["gp"], [p.grad.clone() for p in critic.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    for plain, chunked in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(chunked, plain)


def test_init_normal_and_requires_grad():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 64, 4), nn.BatchNorm2d(64), nn.Linear(64, 512))
    net.apply(init_normal)
    assert abs(net[0].weight.std().item() - 0.02) < 0.002 and net[0].bias.abs().max() == 0
    assert abs(net[1].weight.mean().item() - 1.0) < 0.01 and abs(net[2].weight.std().item() - 0.02) < 0.002
    set_requires_grad(net, False)
    assert not any(p.requires_grad for p in net.parameters())
    set_requires_grad([net], True)
    assert all(p.requires_grad for p in net.parameters())
