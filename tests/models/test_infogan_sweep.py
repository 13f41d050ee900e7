"""The exploratory InfoGAN sweep (benchmarks/experiments/infogan_sweep.py): the noise priors it puts
in front of G, and a short run on stand-in data."""
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from benchmarks.experiments import infogan_sweep as sweep
from benchmarks.quality import gan as quality_gan
from gentk.metrics.classifier import EvaluatorCNN

pytestmark = pytest.mark.usefixtures("one_thread")


class Recorder(nn.Module):
    def forward(self, x, labels=None):
        self.seen = x
        return x


def _through(prior, x, noise=62):
    inner = Recorder()
    sweep.NoisePrior(inner, noise, prior)(x)
    return inner.seen


def test_uniform_prior_maps_the_noise_to_uniform_and_leaves_the_codes():
    x = torch.randn(200_000, 62 + 12, generator=torch.Generator().manual_seed(0))
    seen = _through("uniform", x)
    u = seen[:, :62]
    assert float(u.min()) > -1 and float(u.max()) < 1
    quartiles = torch.quantile(u[:, 0], torch.tensor([0.25, 0.5, 0.75]))
    assert torch.allclose(quartiles, torch.tensor([-0.5, 0.0, 0.5]), atol=0.01)
    assert abs(float(u.var()) - 1 / 3) < 0.005
    assert torch.equal(seen[:, 62:], x[:, 62:])


def test_sigma_prior_scales_only_the_noise():
    x = torch.randn(8, 62 + 12)
    seen = _through("sigma:0.25", x)
    assert torch.allclose(seen[:, :62], 0.25 * x[:, :62]) and torch.equal(seen[:, 62:], x[:, 62:])


@pytest.mark.parametrize("prior", ["laplace", "sigma:0", "sigma:wide"])
def test_an_unknown_prior_is_refused_by_name(prior):
    with pytest.raises(SystemExit, match="prior"):
        sweep.NoisePrior(Recorder(), 62, prior)


def test_switches_parse_as_booleans():
    assert sweep.parse_value("False") is False and sweep.parse_value("True") is True
    assert sweep.parse_value("3") == 3 and sweep.parse_value("0.5") == 0.5 and sweep.parse_value("conv") == "conv"


def test_a_short_run_prints_each_seed_and_the_mean(monkeypatch, capsys):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(64, 1, 28, 28, generator=g), torch.arange(64) % 10)
    monkeypatch.setattr(sweep, "mnist_validation_split", lambda: (data, data))
    monkeypatch.setattr(sweep, "mnist_evaluator", lambda: (EvaluatorCNN().eval(), None))
    monkeypatch.setattr(quality_gan, "N_SAMPLES", 50)
    sweep.main(["4", "seeds=0,1", "every=2", "batch=8", "prior=uniform", "width=4"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "width=4" in lines[0] and "prior=uniform" in lines[0]
    assert [line.split(":", 1)[0].rsplit(" ", 2)[-2:] for line in lines[:2]] == [["seed", "0"], ["seed", "1"]]
    assert lines[2].count("%") == 2 and "mean of 2 seeds" in lines[2]
