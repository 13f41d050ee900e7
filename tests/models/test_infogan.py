"""infogan: every loss through the CLI, the mutual-information term falls on a tiny run, Q
shares D's body and reads raw logits, and the code sweeps have their promised layout."""
import os

import pytest
import torch
import torch.nn.functional as F

from conftest import read_metrics
from gentk import cli
from gentk.models import build
from gentk.models.adversarial import ADVERSARIAL_LOSSES

TINY = ["--resolution", "16", "--width", "8", "--noise", "8", "--batch-size", "32", "--no-progress", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(**kw):
    torch.manual_seed(0)
    return build("infogan", resolution=16, width=8, noise=8, **kw)


@pytest.mark.parametrize("loss", ADVERSARIAL_LOSSES)
def test_each_loss_trains_through_the_cli(tmp_path, loss):
    out = str(tmp_path / "run")
    assert cli.main(["train", "infogan", *TINY, "--loss", loss, "--steps", "2", "--log-every", "1", "--out", out,
                     "--no-eval"]) == 0
    for r in read_metrics(out):
        for key in ("d_loss", "d_adv", "info", "info_cat", "info_cont", "g_loss", "g_info"):
            assert torch.isfinite(torch.tensor(r[key])), (key, r)
        assert ("gp" in r) == (loss == "wgan-gp")
    for name in ("sweep_categorical", "sweep_continuous_1", "sweep_continuous_2"):
        assert os.path.isfile(os.path.join(out, f"{name}.png"))


def test_mutual_information_term_decreases(tmp_path):
    out = str(tmp_path / "run")
    assert cli.main(["train", "infogan", *TINY, "--steps", "20", "--log-every", "5", "--out", out,
                     "--no-eval"]) == 0
    info = [r["info_cat"] for r in read_metrics(out)]
    assert info[0] > 2.0  # log(10) = 2.30 at the start: Q knows nothing
    assert info[-1] < info[0] - 0.4, info


def test_q_head_shares_the_body_and_reads_raw_logits():
    model = tiny_model()
    assert set(model.networks()) == {"generator", "discriminator", "q_head"}
    assert model.q_head[0].in_features == model.discriminator.feature_dim
    d_params = {id(p) for p in model.optimizer_d.param_groups[0]["params"]}
    assert {id(p) for p in model.q_head.parameters()} <= d_params
    assert not {id(p) for p in model.q_head.parameters()} & {id(p) for p in model.generator.parameters()}
    # the info loss is the cross-entropy of Q's raw output (not of a softmax of it) + 0.1 x half squared error
    features = torch.randn(6, model.discriminator.feature_dim)
    category, cont = torch.tensor([0, 1, 2, 3, 4, 9]), torch.rand(6, 2) * 2 - 1
    model.eval()
    out = model.q_head(features)
    expected_cat = -out[:, :10].log_softmax(1)[torch.arange(6), category].mean()
    expected_cont = 0.5 * (out[:, 10:] - cont).pow(2).sum(1).mean()
    total, cat, cont_loss = model.information_loss(features, category, cont)
    torch.testing.assert_close(cat, expected_cat)
    torch.testing.assert_close(total, expected_cat + 0.1 * expected_cont)
    assert not torch.allclose(cat, F.cross_entropy(out[:, :10].softmax(1), category))


def test_info_term_trains_the_body_through_q():
    model = tiny_model()
    x = torch.rand(8, 1, 16, 16)
    model.d_step((x,))
    body_grads = [p.grad for p in model.discriminator.body.parameters()]
    assert all(g is not None for g in body_grads)


def test_default_codes_and_sweep_layout():
    model = build("infogan")
    assert (model.noise, model.categorical, model.continuous) == (62, 10, 2)
    assert (model.lambda_cat, model.lambda_cont) == (1.0, 0.1)
    assert model.generator.net[0].in_features == 74
    model = tiny_model().eval()
    sweeps = model.code_sweeps(columns=8, generator=torch.Generator().manual_seed(5))
    assert set(sweeps) == {"sweep_categorical", "sweep_continuous_1", "sweep_continuous_2"}
    assert all(s.shape == (80, 1, 16, 16) for s in sweeps.values())
    gen = torch.Generator().manual_seed(5)
    z_columns = torch.randn(8, 8, generator=gen)
    z_fixed = torch.randn(1, 8, generator=gen)
    # categorical: row r is category r, column c one noise vector, continuous codes 0
    row = 3
    expected = model.generate(model.generator_input(z_columns, torch.full((8,), row), torch.zeros(8, 2)))
    torch.testing.assert_close(sweeps["sweep_categorical"][row * 8:(row + 1) * 8], expected)
    # continuous 2: row r is category r, columns sweep c2 over [-2, 2], noise and c1 fixed
    cont = torch.zeros(8, 2)
    cont[:, 1] = torch.linspace(-2, 2, 8)
    expected = model.generate(model.generator_input(z_fixed.expand(8, -1), torch.full((8,), row), cont))
    torch.testing.assert_close(sweeps["sweep_continuous_2"][row * 8:(row + 1) * 8], expected)


def test_sample_sweeps_flag_and_labels_rejected(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "infogan", *TINY, "--steps", "1", "--out", out, "--no-eval"]) == 0
    path = str(tmp_path / "s.png")
    assert cli.main(["sample", out, "--n", "4", "--sweeps", "--out", path]) == 0
    for name in ("sweep_categorical", "sweep_continuous_1", "sweep_continuous_2"):
        assert os.path.isfile(tmp_path / f"s_{name}.png")
    capsys.readouterr()
    assert cli.main(["sample", out, "--labels", "1"]) == 2
    assert "unconditional" in capsys.readouterr().err
    assert cli.main(["profile", "infogan", "--resolution", "16", "--width", "8", "--batch-size", "8", "--steps",
                     "1", "--warmup", "0", "--threads", "1"]) == 0


@pytest.mark.parametrize("bad, message", [(dict(categorical=1), "categorical"), (dict(continuous=-1), "continuous"),
                                          (dict(lambda_cont=-0.1), "lambda_cont")])
def test_bad_settings(bad, message):
    with pytest.raises(ValueError, match=message):
        build("infogan", **bad)


def test_info_head_only_keeps_the_term_out_of_the_body():
    x = torch.rand(8, 1, 16, 16)

    def body_grads(**kw):
        model = tiny_model(**kw)
        torch.manual_seed(1)
        model.d_step((x,))
        return [p.grad.clone() for p in model.discriminator.body.parameters()], model

    head_only, model = body_grads(info_trains_body=False)
    assert model.q_head[0].weight.grad.abs().sum() > 0  # Q's head still learns
    without_info, _ = body_grads(lambda_cat=0.0, lambda_cont=0.0)
    with_info, _ = body_grads()
    for a, b in zip(head_only, without_info):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(head_only, with_info))
