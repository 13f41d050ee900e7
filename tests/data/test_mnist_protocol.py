"""MNIST on the papers' protocol: a folder with train-* and t10k-* trains on the first and tests on
the second; a folder of only the test files is split 8,000 / the rest (scaled down here), unless
the whole test set is asked for; dynamic binarization for training and a fixed binarized test set
for likelihoods."""
import sys

import numpy as np
import pytest
import torch

from conftest import read_metrics, write_idx
import gentk.data as data
from gentk import cli, metrics
from gentk.data import DataError, binarized
from gentk.models import build
from gentk.train import seed_everything

mnist_module = sys.modules["gentk.data.mnist"]  # gentk.data.mnist is the loader function

pytestmark = pytest.mark.usefixtures("one_thread")


def mnist_folder(folder, train=None, test=None):
    """IDX files of `n` images whose every pixel is the image's index (so a split can be read back)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        if n:
            images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28)).copy()
            write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, gz=True)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8), gz=True)
    return folder


def indices(dataset):
    return (dataset.tensors[0][:, 0, 0, 0] * 255).round().long().tolist()


def test_train_files_train_and_t10k_files_test(tmp_path):
    root = mnist_folder(tmp_path / "mnist", train=30, test=12)
    train, test = data.load("mnist", "train", root=root), data.load("mnist", "test", root=root)
    assert len(train) == 30 and len(test) == 12 and indices(test) == list(range(12))


def test_only_test_files_split_first_train_rest_test_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mnist_module, "TEST_ONLY_TRAIN", 16)
    monkeypatch.setattr(mnist_module, "_told_test_only", set())
    root = mnist_folder(tmp_path / "mnist", test=20)
    train, test = data.load("mnist", "train", root=root), data.load("mnist", "test", root=root)
    assert indices(train) == list(range(16)) and indices(test) == list(range(16, 20))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only MNIST's test files" in err[0] and "first 16 images" in err[0]
    assert indices(data.load("mnist", "test", root=root, whole_test=True)) == list(range(20))


def test_a_small_folder_of_test_files_is_only_a_test_split(tmp_path):
    root = mnist_folder(tmp_path / "mnist", test=5)
    assert len(data.load("mnist", "test", root=root)) == 5
    with pytest.raises(DataError, match="no train-images"):
        data.load("mnist", "train", root=root)


def test_binarized_draws_each_pixel_once_from_its_grey_level():
    # not seed 0: grey levels drawn from binarized's own stream would be its uniforms, and u < u never holds
    grey = torch.rand(400, 1, 28, 28, generator=torch.Generator().manual_seed(12345))
    labels = torch.arange(400)
    first = binarized(torch.utils.data.TensorDataset(grey, labels))
    again = binarized(torch.utils.data.TensorDataset(grey, labels))
    other = binarized(torch.utils.data.TensorDataset(grey, labels), seed=1)
    x = first.tensors[0]
    assert set(x.unique().tolist()) == {0.0, 1.0} and torch.equal(first.tensors[1], labels)
    assert torch.equal(x, again.tensors[0]) and not torch.equal(x, other.tensors[0])
    # E[x] = grey: pixels of grey level near 0.1 and near 0.9 come out 1 about that often
    for level in (0.1, 0.9):
        near = (grey - level).abs() < 0.05
        assert x[near].mean().item() == pytest.approx(level, abs=0.03)


def test_vae_binarize_trains_on_fresh_binary_batches_and_scores_the_fixed_binary_test_set(monkeypatch):
    seed_everything(0)
    model = build("vae", arch="mlp", resolution=28, latent=4, binarize=True)
    seen = []
    losses = model.losses
    monkeypatch.setattr(model, "losses", lambda x: seen.append(x.clone()) or losses(x))
    batch = (torch.full((8, 1, 28, 28), 0.5),)
    model.train_step(batch)
    model.train_step(batch)
    assert all(set(x.unique().tolist()) == {0.0, 1.0} for x in seen)
    assert not torch.equal(seen[0], seen[1])  # drawn anew each batch
    test = torch.utils.data.TensorDataset(torch.rand(50, 1, 28, 28), torch.arange(50) % 10)
    assert torch.equal(model.likelihood_data(test).tensors[0], binarized(test).tensors[0])
    results = metrics.evaluate(model, test, k=3, seed=4)
    torch.manual_seed(4)
    assert results["test_neg_elbo"] == pytest.approx(metrics.negative_elbo(model, binarized(test)))
    plain = build("vae", arch="mlp", resolution=28, latent=4)
    assert plain.likelihood_data(test) is test and torch.equal(plain.training_images(batch), batch[0])


def test_cli_trains_on_train_files_evaluates_on_t10k_and_eval_takes_any_folder(tmp_path, capsys):
    root = mnist_folder(tmp_path / "mnist", train=64, test=24)
    other = mnist_folder(tmp_path / "other", test=7)
    run = str(tmp_path / "run")
    assert cli.main(["train", "vae", "--data", "mnist", "--data-root", str(root), "--arch", "mlp", "--latent", "4",
                     "--binarize", "--steps", "2", "--batch-size", "32", "--eval-k", "2", "--no-progress",
                     "--out", run]) == 0
    final = read_metrics(run)[-1]
    assert final["split"] == "test" and "test_nll_k2" in final
    capsys.readouterr()
    assert cli.main(["eval", run, "--data", "mnist", "--data-root", str(other), "--k", "2", "--n-samples", "0",
                     "--out", str(tmp_path / "other.json")]) == 0
    assert "on mnist (test)" in capsys.readouterr().out
