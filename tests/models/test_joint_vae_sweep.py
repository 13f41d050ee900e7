"""The exploratory Joint-VAE sweep (benchmarks/experiments/joint_vae_sweep.py): the planted clusters, the
replacement MLPs, the category table, and a short run of each option on stand-in data."""
import pytest
import torch
from torch.utils.data import TensorDataset

from benchmarks.experiments import joint_vae_sweep as sweep
from gentk.models.joint_vae import JointVAE

pytestmark = pytest.mark.usefixtures("one_thread")


def _digits(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10)


def test_planted_examples_are_their_prototype_rolled_plus_noise():
    train = _digits()
    data = sweep.planted(train, 200, shift=1, generator=torch.Generator().manual_seed(1))
    x, cluster = data.tensors
    assert x.shape == (200, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(cluster.tolist()) == set(range(10))
    prototypes = torch.stack([train.tensors[0][d] for d in range(10)])  # the first image of digit d is index d
    rolls = [prototypes.roll((a, b), dims=(-2, -1)) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    distance = torch.stack([(x[:, None] - r[None]).flatten(2).norm(dim=2) for r in rolls]).amin(0)
    assert torch.equal(distance.argmin(1), cluster)


def test_use_hidden_builds_mlps_with_the_given_widths():
    model = JointVAE(latent=3, categories="4", arch="mlp")
    sweep.use_hidden(model, [32, 16])
    widths = [m.out_features for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 2 * 3 + 4]
    assert model.decoder(torch.zeros(2, 3 + 4)).shape == (2, 1, 28, 28)
    assert model.optimizer.param_groups[0]["params"][0] is next(model.encoder.parameters())


@pytest.mark.parametrize("options", [["hidden=24", "marginal_gamma=30"], ["data=planted", "shift=1"]])
def test_short_runs_print_the_accuracy_and_the_category_table(monkeypatch, capsys, options):
    monkeypatch.setattr(sweep, "mnist_validation_split", lambda: (_digits(), _digits(20, seed=1)))
    assert sweep.main(["4", "every=2", "batch=8", "latent=2", *options]) == 0
    out = capsys.readouterr().out
    assert out.count("validation accuracy") == 2 and "-ELBO" in out and "by category (rows)" in out


def test_category_table_counts_each_example_once_at_its_code_and_label():
    model = JointVAE(latent=2, categories="10", arch="mlp")
    data = _digits(30)
    table = sweep.category_table(model.eval(), data)
    codes = model.categorical_codes(data.tensors[0])[:, 0]
    expected = torch.zeros(10, 10, dtype=torch.long)
    for code, label in zip(codes.tolist(), data.tensors[1].tolist()):
        expected[code, label] += 1
    assert torch.equal(table, expected)


def test_bad_options_stop_with_the_usage_or_a_message():
    with pytest.raises(SystemExit, match="STEPS"):
        sweep.main([])
    with pytest.raises(SystemExit, match="data must be mnist or planted"):
        sweep.main(["4", "data=cifar"])
