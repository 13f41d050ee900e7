"""gentk.metrics: Frechet distance against scipy's matrix square root, the evaluator
classifier's sample statistics, and the VAE's importance-sampled NLL."""
import math

import pytest
import torch

from gentk import data
from gentk.metrics import (accuracy, frechet_distance, get_evaluator, importance_nll, negative_elbo,
                           sample_metrics)
from gentk.metrics import classifier
from gentk.models import build
from gentk.train import Trainer, seed_everything

pytestmark = pytest.mark.usefixtures("one_thread")


def test_frechet_distance_matches_scipy():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g) @ torch.randn(6, 6, generator=g)
    b = torch.randn(300, 6, generator=g) * 2 + 1
    ca, cb = torch.cov(a.double().T).numpy(), torch.cov(b.double().T).numpy()
    expected = ((a.double().mean(0) - b.double().mean(0)) ** 2).sum().item() + ca.trace() + cb.trace() \
        - 2 * scipy_linalg.sqrtm(ca @ cb).real.trace()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shift = torch.tensor([3.0, 0, 0, 4.0, 0, 0])
    assert frechet_distance(a, a + shift) == pytest.approx(25.0, rel=1e-6)


def test_evaluator_statistics_and_cache(tmp_path, monkeypatch):
    train, test = data.digits("train", 16), data.digits("test", 16)
    (x, y), (tx, ty) = train.tensors, test.tensors
    net = get_evaluator("digits16", x, y, str(tmp_path))
    acc = accuracy(net, tx, ty)
    assert acc > 0.85
    real = sample_metrics(net, tx, real_images=tx, labels=ty)
    assert real["accuracy"] == pytest.approx(acc)
    assert real["coverage"] == 1.0 and real["class_entropy"] > 0.95
    assert real["frechet_distance"] == pytest.approx(0, abs=1e-3)
    one = tx[ty == 1][:1].expand(200, -1, -1, -1)  # a generator that only ever draws one image
    collapsed = sample_metrics(net, one, real_images=tx)
    assert collapsed["coverage"] == pytest.approx(0.1) and collapsed["class_entropy"] == pytest.approx(0, abs=1e-9)
    assert collapsed["frechet_distance"] > 10 * max(real["frechet_distance"], 1e-3)
    monkeypatch.setattr(classifier, "train_evaluator", lambda *a, **k: pytest.fail("cache not used"))
    cached = get_evaluator("digits16", x, y, str(tmp_path))
    assert accuracy(cached, tx, ty) == acc


def test_importance_nll_bounds_elbo(tmp_path):
    seed_everything(0)
    model = build("vae", arch="mlp", resolution=16, latent=4)
    Trainer(model, data.digits("train", 16), str(tmp_path), steps=30, batch_size=64, progress=False).fit()
    test = data.digits("test", 16)
    torch.manual_seed(1)
    elbo = negative_elbo(model, test)
    nll_1 = importance_nll(model, test, k=1)
    nll_64 = importance_nll(model, test, k=64)
    assert math.isfinite(nll_64)
    assert abs(nll_1 - elbo) < 0.05 * elbo  # k = 1 is an ELBO estimate
    assert nll_64 < elbo  # more samples: a tighter bound
    with pytest.raises(ValueError, match="k must be at least 1"):
        importance_nll(model, test, k=0)
