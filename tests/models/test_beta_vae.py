"""beta-VAE (H and B) through the CLI on tiny data; the capacity schedule; traversal grids;
per-dimension KL and capacity metrics; bad arguments."""
import json
import math
import os

import pytest
import torch

from conftest import assert_cli_fails_in_one_line
from gentk import cli, metrics
from gentk.models import build
from gentk.models.beta_vae import linear_capacity, scaled_ramp
from gentk.train import make_grid, model_from_checkpoint

FAST = ["--arch", "mlp", "--resolution", "16", "--latent", "3", "--no-progress", "--batch-size", "32"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _records(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


@pytest.mark.parametrize("variant", ["H", "B"])
def test_trains_through_the_cli_with_per_dimension_kl(variant, tmp_path, capsys):
    out = str(tmp_path / variant)
    argv = ["train", "beta_vae", *FAST, "--variant", variant, "--steps", "6", "--log-every", "1", "--out", out,
            "--no-eval"]
    if variant == "B":
        argv += ["--c-stop", "4", "--c-max", "8"]
    assert cli.main(argv) == 0
    assert cli.main(["eval", out, "--k", "3", "--n-samples", "0"]) == 0
    printed = capsys.readouterr().out
    assert "test_neg_elbo" in printed and "test_kl_z2" in printed
    train = _records(out)
    assert [r["step"] for r in train] == list(range(1, 7))
    for r in train:
        assert all(math.isfinite(r[k]) for k in ("loss", "recon", "kl", "kl/0", "kl/1", "kl/2"))
        assert r["kl"] == pytest.approx(r["kl/0"] + r["kl/1"] + r["kl/2"], rel=1e-4)
        if variant == "B":  # the C used at step s (1-based) is the capacity after s - 1 steps
            assert r["C"] == pytest.approx(linear_capacity(r["step"] - 1, 8.0, 4))
            assert r["loss"] == pytest.approx(r["recon"] + 1000.0 * abs(r["kl"] - r["C"]), rel=1e-4)
        else:
            assert "C" not in r
            assert r["loss"] == pytest.approx(r["recon"] + 4.0 * r["kl"], rel=1e-4)
    test = json.load(open(os.path.join(out, "eval.json")))
    assert test["step"] == 6 and test["test_nll_k3"] > 0 and test["test_kl_total"] == pytest.approx(
        sum(test[f"test_kl_z{i}"] for i in range(3)))
    if variant == "B":  # evaluated after 6 steps: C is at its maximum
        assert test["capacity_kl_target"] == 8.0
        assert test["capacity_kl_measured"] == pytest.approx(test["test_kl_total"])
        assert test["capacity_kl_relative_gap"] == pytest.approx(abs(test["test_kl_total"] - 8.0) / 8.0)
    else:
        assert not any(k.startswith("capacity_") for k in test)

    # the step counter comes back with the checkpoint: eval and resume see the same C
    model, _ = model_from_checkpoint(out)
    assert model.step == 6
    assert cli.main(["train", "beta_vae", "--steps", "8", "--resume", out, "--out", out, "--no-progress",
                     "--no-eval", "--log-every", "1"]) == 0
    resumed = _records(out)[-2:]
    assert [r["step"] for r in resumed] == [7, 8]
    if variant == "B":
        assert all(r["C"] == 8.0 for r in resumed)


def test_capacity_schedule_matches_the_formula():
    model = build("beta_vae", variant="B", arch="mlp", c_max=25.0, c_stop=1000, resolution=16)
    for step, expected in [(0, 0.0), (1, 0.025), (400, 10.0), (999, 24.975), (1000, 25.0), (5000, 25.0)]:
        assert model.capacity(step) == pytest.approx(expected)
    assert build("beta_vae", variant="H", arch="mlp", resolution=16).capacity(10) is None
    # c_stop's default: Burgess's 100,000 steps on 737,280 images, kept at the same number of epochs
    assert build("beta_vae", variant="B", arch="mlp", resolution=16, train_size=8000).c_stop == 1085
    assert build("beta_vae", variant="B", arch="mlp", resolution=16).c_stop == 100_000
    assert scaled_ramp(25_000, 60_000, 8000) == 3333
    assert linear_capacity(5, 3.0, 10, minimum=1.0) == pytest.approx(2.0)


def test_traversal_grid_rows_are_latents_swept_over_three_sd(tmp_path):
    model = build("beta_vae", arch="mlp", latent=4, resolution=16).eval()
    seen = []
    decode = model.decode
    model.decode = lambda z: seen.append(z.clone()) or decode(z)
    images, nrow = model.traverse(7)
    assert images.shape == (4 * 7, 1, 16, 16) and nrow == 7
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    z = seen[0].view(4, 7, 4)
    values = torch.linspace(-3, 3, 7)
    for row in range(4):
        expected = torch.zeros(7, 4)
        expected[:, row] = values
        torch.testing.assert_close(z[row], expected)
    one, nrow = model.traverse(5, dim=2)
    assert one.shape == (5, 1, 16, 16) and nrow == 5
    with pytest.raises(ValueError, match="dim must be a latent dimension in \\[0, 4\\), got 4"):
        model.traverse(5, dim=4)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        model.traverse(1)


def test_sample_traverse_writes_the_promised_grid(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "beta_vae", *FAST, "--steps", "2", "--out", out, "--no-eval"]) == 0
    png = str(tmp_path / "traverse.png")
    assert cli.main(["sample", out, "--traverse", "--traverse-steps", "9", "--out", png]) == 0
    from PIL import Image

    grid = make_grid(torch.zeros(3 * 9, 1, 16, 16), nrow=9)  # 3 latent rows of 9
    scale = max(1, 500 // grid.shape[1])
    with Image.open(png) as img:
        assert img.size == (grid.shape[1] * scale, grid.shape[0] * scale)
    capsys.readouterr()
    assert cli.main(["sample", out, "--traverse", "--traverse-dim", "3", "--out", png]) == 2
    assert "--traverse-dim: dim must be a latent dimension in [0, 3), got 3" in capsys.readouterr().err
    vae_out = str(tmp_path / "vae")
    assert cli.main(["train", "vae", *FAST, "--steps", "1", "--out", vae_out, "--no-eval"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", vae_out, "--traverse"]) == 2
    assert "model vae has no latent traversal" in capsys.readouterr().err


def test_profile_runs(tmp_path, capsys):
    assert cli.main(["profile", "beta_vae", *FAST[:-3], "--variant", "B", "--steps", "1", "--warmup", "0",
                     "--batch-size", "8"]) == 0
    assert "speedup" in capsys.readouterr().out


BAD = [
    (["train", "beta_vae", "--variant", "C"], "invalid choice: 'C'"),
    (["train", "beta_vae", "--gamma", "-1"], "argument --gamma: expected a number >= 0, got -1"),
    (["train", "beta_vae", "--beta", "nan"], "argument --beta: expected a number >= 0, got nan (not a finite"),
    (["train", "beta_vae", "--c-max", "-2"], "argument --c-max: expected a number >= 0, got -2"),
    (["train", "beta_vae", "--c-stop", "0"], "argument --c-stop: expected a positive integer, got 0"),
    (["train", "beta_vae", "--latent", "0"], "beta_vae: latent must be an integer >= 1, got 0"),
    (["train", "beta_vae", "--c-stop", "many"], "--c-stop: expected a positive integer, got 'many'"),
    (["profile", "beta_vae", "--gamma", "0"], "beta_vae: gamma must be > 0.0, got 0.0"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_name_themselves(argv, message, capsys):
    assert_cli_fails_in_one_line(argv, message, capsys)


def test_per_dimension_kl_metric_matches_the_formula():
    model = build("beta_vae", arch="mlp", latent=3, resolution=16)
    x = torch.rand(10, 1, 16, 16)
    data = torch.utils.data.TensorDataset(x, torch.zeros(10, dtype=torch.long))
    kls = metrics.per_dimension_kl(model, data, batch_size=4)
    mu, logvar = model.encode(x)
    expected = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(0)
    torch.testing.assert_close(torch.tensor([kls["z0"], kls["z1"], kls["z2"]], dtype=torch.float32),
                               expected.detach(), rtol=1e-4, atol=1e-5)
