"""cgan: the label reaches G and D, every loss trains through the CLI, `gentk sample --labels`
(one row per label; clear errors for bad values) and the one-row-per-class training grid."""
import json
import os

import pytest
import torch
from PIL import Image

from gentk import cli
from gentk.models import build
from gentk.models.adversarial import ADVERSARIAL_LOSSES
from gentk.train.images import make_grid

TINY = ["--resolution", "16", "--width", "8", "--noise", "8", "--batch-size", "16", "--no-progress", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cgan") / "run")
    assert cli.main(["train", "cgan", *TINY, "--steps", "2", "--out", out, "--no-eval", "--threads", "1"]) == 0
    return out


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_label_reaches_generator_and_discriminator(arch):
    torch.manual_seed(0)
    model = build("cgan", arch=arch, resolution=16, width=8, noise=8, classes=10).eval()
    z = torch.randn(4, 8)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    a, b = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8])
    with torch.no_grad():
        assert not torch.allclose(model.generator(z, a), model.generator(z, b))
        assert not torch.allclose(model.discriminator(x, a), model.discriminator(x, b))
        # and nothing else differs: the same label gives the same output
        torch.testing.assert_close(model.generator(z, a), model.generator(z, a.clone()))
    # D's logit depends on the label through the gradient too (the embedding is trained)
    model.discriminator(x, a).sum().backward()
    assert model.discriminator.embed.table.weight.grad[:4].abs().sum() > 0
    assert model.discriminator.embed.table.weight.grad[4:].abs().sum() == 0


@pytest.mark.parametrize("loss", ADVERSARIAL_LOSSES)
def test_each_loss_trains_through_the_cli(tmp_path, loss):
    out = str(tmp_path / "run")
    args = ["train", "cgan", *TINY, "--loss", loss, "--steps", "2", "--log-every", "1", "--out", out, "--no-eval"]
    if loss == "hinge":
        args += ["--arch", "mlp", "--n-critic", "2"]
    assert cli.main(args) == 0
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert all(torch.isfinite(torch.tensor(r["d_loss"])) for r in records)
    assert ("g_loss" in records[-1]) and (("g_loss" in records[0]) == (loss != "hinge"))
    # the training-time grid: 10 classes as 10 rows of 8
    grid = Image.open(os.path.join(out, "samples_by_class.png"))
    expected = make_grid(torch.zeros(80, 1, 16, 16), nrow=8).shape
    assert grid.height / grid.width == pytest.approx(expected[0] / expected[1])


def test_class_grid_has_one_row_per_class():
    torch.manual_seed(0)
    model = build("cgan", resolution=16, width=8, noise=8, classes=10).eval()
    grid = model.class_grid(columns=8, generator=torch.Generator().manual_seed(3))
    assert grid.shape == (80, 1, 16, 16)
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(3))
    for row in (0, 4, 9):
        expected = model.generate(z, torch.full((8,), row))
        torch.testing.assert_close(grid[row * 8:(row + 1) * 8], expected)


def test_sample_labels_one_row_per_label(trained_run, tmp_path, capsys):
    path = str(tmp_path / "s.png")
    assert cli.main(["sample", trained_run, "--labels", "0,1,2", "--n", "6", "--out", path]) == 0
    image = Image.open(path)
    expected = make_grid(torch.zeros(6, 1, 16, 16), nrow=2).shape  # 3 rows (labels) of 2
    assert image.height / image.width == pytest.approx(expected[0] / expected[1])


def test_sample_draws_the_chosen_classes(trained_run):
    from gentk.train import model_from_checkpoint

    model, _ = model_from_checkpoint(trained_run, "cpu")
    model.eval()
    gen = lambda: torch.Generator().manual_seed(0)
    same = model.sample(3, labels=torch.tensor([4, 4, 4]), generator=gen())
    other = model.sample(3, labels=torch.tensor([7, 7, 7]), generator=gen())
    assert not torch.allclose(same, other)
    torch.testing.assert_close(same, model.sample(3, labels=torch.tensor([4, 4, 4]), generator=gen()))


@pytest.mark.parametrize("labels, message", [("0,10", "10 is not a class"), ("-1", "-1 is not a class"),
                                             ("1,a", "comma-separated integers"), ("", "comma-separated")])
def test_bad_labels_give_one_clear_line(trained_run, capsys, labels, message):
    assert cli.main(["sample", trained_run, "--labels", labels]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_classes_come_from_the_data_and_eval_reports_label_accuracy(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "cgan", *TINY, "--steps", "1", "--out", out, "--eval-k", "0"]) == 0
    assert "samples_accuracy" in capsys.readouterr().out
    with open(os.path.join(out, "metrics.jsonl")) as f:
        final = [json.loads(line) for line in f][-1]
    assert 0 <= final["samples_accuracy"] <= 1


def test_bad_settings():
    with pytest.raises(ValueError, match="classes"):
        build("cgan", classes=1)
    model = build("cgan", resolution=16, width=8, noise=8, classes=3)
    with pytest.raises(ValueError, match="labels must lie in"):
        model.sample(2, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="batches must be"):
        model.train_step(torch.rand(4, 1, 16, 16))


def test_profile_runs(capsys):
    assert cli.main(["profile", "cgan", "--resolution", "16", "--width", "8", "--batch-size", "8", "--steps", "1",
                     "--warmup", "0", "--threads", "1"]) == 0
    assert "speedup" in capsys.readouterr().out
