"""The weights of the MNIST quality runs kept in benchmarks/results/weights/ (QUALITY.md): each
loads right after install, samples digits, and `gentk sample` / `gentk eval` take it offline."""
import os

import pytest
import torch

from conftest import ROOT
from gentk import cli
from gentk.train import checkpoint as ckpt
from gentk.train import model_from_checkpoint

WEIGHTS = os.path.join(ROOT, "benchmarks", "results", "weights")
RELEASED = ("vae", "beta_vae", "joint_vae", "gan", "cgan", "infogan")
SHARED_MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist")

LIMIT_BYTES = 5 * 10**6  # issue 16: at most 5 MB each

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", RELEASED)
def test_each_weights_file_loads_and_samples_digits(name):
    path = os.path.join(WEIGHTS, f"{name}.pt")
    assert os.path.getsize(path) <= LIMIT_BYTES
    state = ckpt.load(path)
    assert state["weights_only"] and state["optimizers"] == {} and state["config"]["data"]["name"] == "mnist"
    model, _ = model_from_checkpoint(path)
    model.eval()
    labels = torch.arange(10) if model.conditional else None
    images = model.sample(10, labels=labels, generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 1, 28, 28) and bool(torch.isfinite(images).all())
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert float(images.std()) > 0.1  # digits, not a flat field


def test_gentk_sample_draws_cgan_digits_by_label(tmp_path):
    out = str(tmp_path / "cgan.png")
    assert cli.main(["sample", os.path.join(WEIGHTS, "cgan.pt"), "--labels", "0,1,2", "--n", "9", "--out", out]) == 0
    assert os.path.getsize(out) > 0


def test_gentk_eval_scores_the_vae_weights_on_a_folder(tmp_path, capsys):
    if not os.path.isdir(SHARED_MNIST):
        pytest.skip("the shared MNIST folder is not here")
    out = str(tmp_path / "eval.json")
    assert cli.main(["eval", os.path.join(WEIGHTS, "vae.pt"), "--data-root", SHARED_MNIST, "--max-examples", "300",
                     "--k", "20", "--n-samples", "0", "--out", out]) == 0
    text = capsys.readouterr().out
    nll = float(next(line.split()[-1] for line in text.splitlines() if "test_nll_k20" in line))
    assert nll < 100  # nats on binarized test digits (QUALITY.md: about 90 on all 10,000 with k=200)
