"""gan: every adversarial loss trains through the CLI, the n_critic schedule, sampling and
profiling, and the shared DCGAN-style networks."""
import math
import os

import pytest
import torch

from conftest import read_metrics
from gentk import cli
from gentk.models import build
from gentk.models.adversarial import ADVERSARIAL_LOSSES

TINY = ["--resolution", "16", "--width", "8", "--noise", "8", "--batch-size", "16", "--no-progress", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("loss", ADVERSARIAL_LOSSES)
def test_each_loss_trains_through_the_cli(tmp_path, loss):
    out = str(tmp_path / "run")
    assert cli.main(["train", "gan", *TINY, "--loss", loss, "--steps", "3", "--log-every", "1", "--out", out,
                     "--no-eval"]) == 0
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("d_loss", "d_adv", "g_loss"))
        assert ("gp" in r) == (loss == "wgan-gp")
    assert os.path.isfile(os.path.join(out, "samples.png"))


def test_mlp_trains_samples_and_profiles(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "gan", *TINY, "--arch", "mlp", "--steps", "2", "--out", out, "--no-eval"]) == 0
    assert cli.main(["sample", out, "--n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert os.path.isfile(tmp_path / "s.png")
    assert cli.main(["profile", "gan", "--resolution", "16", "--width", "8", "--batch-size", "8", "--steps", "1",
                     "--warmup", "0", "--threads", "1"]) == 0
    assert "speedup" in capsys.readouterr().out


def test_n_critic_schedule_through_the_cli(tmp_path):
    out = str(tmp_path / "run")
    assert cli.main(["train", "gan", *TINY, "--loss", "wgan-gp", "--n-critic", "3", "--steps", "7", "--log-every",
                     "1", "--out", out, "--no-eval"]) == 0
    assert [("g_loss" in r) for r in read_metrics(out)] == [False, False, True, False, False, True, False]


def test_generator_only_moves_on_its_steps():
    torch.manual_seed(0)
    model = build("gan", resolution=16, width=8, noise=8, n_critic=2)
    batch = (torch.rand(8, 1, 16, 16), torch.zeros(8, dtype=torch.long))
    for step in range(1, 5):
        g_before = [p.clone() for p in model.generator.parameters()]
        d_before = [p.clone() for p in model.discriminator.parameters()]
        model.train_step(batch)
        g_moved = any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
        d_moved = any(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
        assert g_moved == (step % 2 == 0) and d_moved


def test_samples_in_unit_range_and_paper_defaults():
    model = build("gan", resolution=28)
    images = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    for opt in model.optimizers().values():
        assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)
    weights = torch.cat([m.weight.flatten() for m in model.generator.modules() if isinstance(m, torch.nn.Linear)])
    assert abs(weights.std().item() - 0.02) < 0.002
    # the critic of WGAN-GP has no batch norm (the penalty is per example)
    norms = lambda net: [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d)]
    assert norms(build("gan", loss="bce").discriminator)
    assert not norms(build("gan", loss="wgan-gp").discriminator)


def test_real_images_enter_in_minus_one_to_one():
    model = build("gan", resolution=16, width=8, noise=8)
    seen = []
    model.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    model.d_step((torch.ones(4, 1, 16, 16), torch.zeros(4, dtype=torch.long)))
    assert torch.equal(seen[0], torch.ones(4, 1, 16, 16))  # data 1 -> model 1
    model.d_step((torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.long)))
    assert torch.equal(seen[2], -torch.ones(4, 1, 16, 16))  # data 0 -> model -1


@pytest.mark.parametrize("bad, message", [(dict(arch="resnet"), "arch"), (dict(resolution=30), "divisible by 4"),
                                          (dict(noise=0), "noise"), (dict(loss="wgan"), "unknown loss")])
def test_bad_settings(bad, message):
    with pytest.raises(ValueError, match=message):
        build("gan", **bad)


def test_unconditional_sample_rejects_labels(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "gan", *TINY, "--steps", "1", "--out", out, "--no-eval"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", out, "--labels", "1"]) == 2
    assert "unconditional" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["gan", "cgan", "infogan"])
def test_bf16_autocast_with_the_gradient_penalty(name):
    torch.manual_seed(0)
    model = build(name, resolution=16, width=8, noise=8, loss="wgan-gp")
    model.set_precision("bf16")
    losses = model.train_step((torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))))
    assert "gp" in losses and all(math.isfinite(v) for v in losses.values())
