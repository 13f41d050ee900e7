"""Weights files (gentk.train.checkpoint.export_weights, `gentk export`): the networks sampling and
evaluation need and the config, no optimizer state; they sample and evaluate as the checkpoint
does, and a run cannot resume from them."""
import os

import pytest
import torch

from conftest import assert_cli_fails_in_one_line
from gentk import cli, data
from gentk.models import build
from gentk.train import CheckpointError, Trainer, model_from_checkpoint, seed_everything
from gentk.train import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")


def trained(name, out, **config):
    seed_everything(0)
    model = build(name, resolution=16, channels=1, **config)
    trainer = Trainer(model, data.digits("train", 16), str(out), steps=2, batch_size=32, progress=False,
                      tensorboard=False)
    trainer.fit()
    return model, trainer.last_checkpoint


def test_a_gan_weights_file_holds_the_generator_and_samples_as_the_checkpoint(tmp_path):
    model, checkpoint = trained("gan", tmp_path / "run", arch="conv", width=8)
    path = ckpt.export_weights(checkpoint, str(tmp_path / "gan.pt"))
    state = ckpt.load(path)
    assert set(state["networks"]) == {"generator"} and state["optimizers"] == {} and state["weights_only"]
    assert "rng" not in state and state["config"]["data"]["root"] is None
    assert os.path.getsize(path) < os.path.getsize(checkpoint) / 2
    loaded, _ = model_from_checkpoint(path)
    model.eval(), loaded.eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(loaded.sample(6, generator=g()), model.sample(6, generator=g()), rtol=0, atol=0)


def test_half_weights_are_stored_in_float16_and_load_as_float32(tmp_path):
    model, checkpoint = trained("vae", tmp_path / "run", arch="mlp", latent=4)
    full = ckpt.export_weights(checkpoint, str(tmp_path / "full.pt"))
    half = ckpt.export_weights(checkpoint, str(tmp_path / "half.pt"), half=True)
    assert all(t.dtype == torch.float16 for net in ckpt.load(half)["networks"].values() for t in net.values())
    assert os.path.getsize(half) < 0.6 * os.path.getsize(full)
    loaded, _ = model_from_checkpoint(half)
    assert next(loaded.decoder.parameters()).dtype == torch.float32
    z = torch.randn(5, 4)
    torch.testing.assert_close(loaded.decode(z), model.decode(z), rtol=0, atol=2e-2)


def test_a_run_cannot_resume_from_a_weights_file(tmp_path, capsys):
    model, checkpoint = trained("vae", tmp_path / "run", arch="mlp", latent=4)
    path = ckpt.export_weights(checkpoint, str(tmp_path / "w.pt"))
    trainer = Trainer(model, data.digits("train", 16), str(tmp_path / "again"), steps=4, batch_size=32,
                      progress=False, tensorboard=False)
    with pytest.raises(CheckpointError, match="weights file"):
        trainer.fit(resume=path)
    assert_cli_fails_in_one_line(["train", "vae", "--resume", path, "--out", str(tmp_path / "cli"), "--steps", "4",
                                  "--no-progress"], "weights file", capsys)


def test_gentk_export_writes_a_file_that_sample_and_eval_take(tmp_path, capsys):
    _, checkpoint = trained("cgan", tmp_path / "run", arch="conv", width=8, classes=10)
    out = str(tmp_path / "cgan.pt")
    assert cli.main(["export", str(tmp_path / "run"), out]) == 0
    assert "MiB" in capsys.readouterr().out
    assert cli.main(["sample", out, "--labels", "0,1,2", "--n", "6", "--out", str(tmp_path / "s.png")]) == 0
    assert os.path.isfile(tmp_path / "s.png")
    assert cli.main(["eval", out, "--data", "digits", "--n-samples", "50", "--out", str(tmp_path / "e.json")]) == 0
    assert "samples_accuracy" in capsys.readouterr().out
    assert_cli_fails_in_one_line(["export", str(tmp_path / "nothing"), out], "no such checkpoint", capsys)
