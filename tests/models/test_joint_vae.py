"""Joint-VAE through the CLI on tiny data; capacity schedules; Gumbel-Softmax in training and
argmax one-hot in evaluation; traversal grids; the unsupervised-accuracy metric on planted
cases; bad arguments."""
import itertools
import json
import math
import os

import pytest
import torch
from torch.utils.data import TensorDataset

from conftest import assert_cli_fails_in_one_line
from gentk import cli, metrics
from gentk.metrics import assignment_accuracy, best_assignment
from gentk.models import build
from gentk.models.joint_vae import marginal_kl_uniform
from gentk.train import make_grid, model_from_checkpoint

FAST = ["--arch", "mlp", "--resolution", "16", "--latent", "3", "--no-progress", "--batch-size", "32"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**config):
    return build("joint_vae", **{"arch": "mlp", "resolution": 16, "latent": 3, **config})


def test_trains_evaluates_and_traverses_through_the_cli(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "joint_vae", *FAST, "--categories", "4,3", "--steps", "6", "--log-every", "1",
                     "--cont-capacity-steps", "4", "--disc-capacity-steps", "8", "--out", out, "--no-eval"]) == 0
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["step"] for r in records] == list(range(1, 7))
    for r in records:
        keys = ("loss", "recon", "kl_cont", "kl_disc", "kl/z0", "kl/z1", "kl/z2", "kl/c0", "kl/c1")
        assert all(math.isfinite(r[k]) for k in keys)
        assert r["kl_cont"] == pytest.approx(r["kl/z0"] + r["kl/z1"] + r["kl/z2"], rel=1e-4)
        assert r["kl_disc"] == pytest.approx(r["kl/c0"] + r["kl/c1"], rel=1e-4)
        s = r["step"] - 1  # capacities used at step s + 1 are the ones after s steps
        assert r["C_cont"] == pytest.approx(min(5.0, 5.0 * s / 4))
        assert r["C_disc"] == pytest.approx(min(5.0 * s / 8, math.log(4) + math.log(3)))
        assert r["loss"] == pytest.approx(r["recon"] + 30 * abs(r["kl_cont"] - r["C_cont"])
                                          + 30 * abs(r["kl_disc"] - r["C_disc"]), rel=1e-4)

    assert cli.main(["eval", out, "--k", "4", "--n-samples", "0", "--max-examples", "64"]) == 0
    result = json.load(open(os.path.join(out, "eval.json")))
    assert math.isfinite(result["test_neg_elbo"]) and result["test_nll_k4"] < result["test_neg_elbo"] + 5
    assert 0 <= result["categorical_accuracy_c0"] <= 1 and 0 <= result["categorical_accuracy_c1"] <= 1
    assert result["capacity_kl_cont_target"] == 5.0  # the step counter came back with the checkpoint
    assert result["capacity_kl_disc_target"] == pytest.approx(math.log(4) + math.log(3))  # capped: 3.75 > log 12
    assert result["capacity_kl_disc_measured"] == pytest.approx(result["test_kl_c0"] + result["test_kl_c1"])

    png = str(tmp_path / "traverse.png")
    assert cli.main(["sample", out, "--traverse", "--traverse-steps", "6", "--out", png]) == 0
    from PIL import Image

    grid = make_grid(torch.zeros((4 + 3) * 6, 1, 16, 16), nrow=6)  # one row per category
    scale = max(1, 500 // grid.shape[1])
    with Image.open(png) as img:
        assert img.size == (grid.shape[1] * scale, grid.shape[0] * scale)
    capsys.readouterr()
    assert cli.main(["sample", out, "--traverse", "--traverse-dim", "-1"]) == 2
    assert "argument --traverse-dim: expected an integer >= 0, got -1" in capsys.readouterr().err
    assert cli.main(["sample", out, "--traverse", "--traverse-dim", "3"]) == 2
    assert "--traverse-dim: dim must be a continuous latent dimension in [0, 3), got 3" in capsys.readouterr().err
    assert cli.main(["sample", out, "--n", "4", "--out", png]) == 0

    assert cli.main(["train", "joint_vae", "--steps", "7", "--resume", out, "--out", out, "--no-progress",
                     "--no-eval", "--log-every", "1"]) == 0
    last = json.loads(open(os.path.join(out, "metrics.jsonl")).read().splitlines()[-1])
    assert last["step"] == 7 and last["C_cont"] == 5.0 and last["C_disc"] == pytest.approx(math.log(12))
    assert model_from_checkpoint(out)[0].step == 7
    capsys.readouterr()
    assert cli.main(["profile", "joint_vae", *FAST[:-3], "--steps", "1", "--warmup", "0", "--batch-size", "8"]) == 0
    assert "speedup" in capsys.readouterr().out


def test_capacity_schedules_match_the_formulas():
    model = _model(cont_capacity=5.0, disc_capacity=5.0, cont_capacity_steps=100, disc_capacity_steps=200,
                   categories="10")
    for step, cont, disc in [(0, 0.0, 0.0), (20, 1.0, 0.5), (50, 2.5, 1.25), (92, 4.6, 2.3), (100, 5.0, math.log(10)),
                             (200, 5.0, math.log(10)), (10_000, 5.0, math.log(10))]:
        assert model.cont_capacity_at(step) == pytest.approx(cont)
        assert model.disc_capacity_at(step) == pytest.approx(disc)
    two = _model(disc_capacity=10.0, disc_capacity_steps=10, categories="10,5")
    assert two.disc_capacity_at(10) == pytest.approx(math.log(10) + math.log(5))  # never above sum log K
    assert _model(disc_capacity=1.0, disc_capacity_steps=10).disc_capacity_at(50) == 1.0
    # defaults: Dupont's 25,000 steps on 60,000 images, kept at the same number of epochs
    assert _model(train_size=8000).cont_steps == _model(train_size=8000).disc_steps == 3333
    assert _model().cont_steps == 25_000


def test_gumbel_softmax_while_training_argmax_one_hot_in_evaluation():
    model = _model(categories="6")
    logits = torch.randn(50, 6)
    torch.manual_seed(0)
    soft = model.train().categorical(logits)
    assert torch.allclose(soft.sum(1), torch.ones(50), atol=1e-5)
    assert (soft.max(1).values < 1 - 1e-4).any()  # relaxed samples, not one-hots
    hard = model.eval().categorical(logits)
    torch.testing.assert_close(hard, torch.nn.functional.one_hot(logits.argmax(1), 6).float())
    # the evaluation codes are deterministic; the training ones are samples
    torch.testing.assert_close(model.categorical_codes(torch.rand(4, 1, 16, 16)).shape, torch.Size([4, 1]))


def test_traversal_rows_are_categories_and_the_sweep_is_three_sd():
    model = _model(categories="3,2").eval()
    model.kl_average = torch.tensor([0.1, 0.9, 0.2])  # the default swept latent: the one with the most KL
    seen = []
    decode = model.decode
    model.decode = lambda code: seen.append(code.clone()) or decode(code)
    images, nrow = model.traverse(5)
    assert images.shape == ((3 + 2) * 5, 1, 16, 16) and nrow == 5
    codes = seen[0].view(5, 5, 3 + 3 + 2)
    values = torch.linspace(-3, 3, 5)
    expected_cats = [(0, 0), (1, 0), (2, 0), (0, 0), (0, 1)]  # rows: c0 = 0,1,2 then c1 = 0,1
    for row, (c0, c1) in enumerate(expected_cats):
        torch.testing.assert_close(codes[row, :, 1], values)
        assert (codes[row, :, [0, 2]] == 0).all()
        assert (codes[row, :, 3:6].argmax(1) == c0).all() and (codes[row, :, 3:6].sum(1) == 1).all()
        assert (codes[row, :, 6:8].argmax(1) == c1).all() and (codes[row, :, 6:8].sum(1) == 1).all()
    seen.clear()
    model.traverse(4, dim=2)
    torch.testing.assert_close(seen[0][:4, 2], torch.linspace(-3, 3, 4))


def test_best_assignment_is_exact():
    g = torch.Generator().manual_seed(0)
    for rows, cols in [(1, 1), (3, 3), (4, 6), (6, 4), (7, 7)]:
        for _ in range(5):
            w = torch.randint(0, 20, (rows, cols), generator=g).double()
            pairs = best_assignment(w)
            assert len(pairs) == min(rows, cols)
            assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
            small, large = (rows, cols) if rows <= cols else (cols, rows)
            wt = w if rows <= cols else w.t()
            brute = max(sum(wt[i, p[i]].item() for i in range(small)) for p in itertools.permutations(range(large),
                                                                                                      small))
            assert sum(w[r, c].item() for r, c in pairs) == brute
    scipy = pytest.importorskip("scipy.optimize")
    w = torch.randint(0, 500, (12, 12), generator=g).double()
    r, c = scipy.linear_sum_assignment(w.numpy(), maximize=True)
    assert sum(w[i, j].item() for i, j in best_assignment(w)) == w[r, c].sum().item()


def test_accuracy_on_a_planted_case():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (1000,), generator=g)
    permutation = torch.randperm(10, generator=g)
    codes = permutation[labels]
    assert assignment_accuracy(codes, labels) == 1.0
    wrong = torch.arange(1000) % 10 == 0  # 100 examples moved to another category
    codes[wrong] = (codes[wrong] + 1) % 10
    assert assignment_accuracy(codes, labels) == pytest.approx(0.9)
    # labels 8 and 9 merged into one category: it is matched to the more frequent one, the other is lost
    merged = torch.where(labels == 9, permutation[8], permutation[labels])
    lost = min(int((labels == 8).sum()), int((labels == 9).sum()))
    assert assignment_accuracy(merged, labels) == pytest.approx(1 - lost / 1000)
    with pytest.raises(ValueError, match="codes has 3 entries but labels has 2"):
        assignment_accuracy([0, 1, 2], [0, 1])

    class Planted:  # a model whose categorical code is the planted one: evaluate must report 0.9
        device, categories = torch.device("cpu"), [10]

        def eval(self):
            return self

        def train(self):
            return self

        def categorical_codes(self, x):
            return codes[x.flatten(1)[:, 0].long()].unsqueeze(1)

    index_images = torch.arange(1000).float().view(-1, 1, 1, 1)
    result = metrics.evaluate(Planted(), TensorDataset(index_images, labels), n_samples=0)
    assert result == {"categorical_accuracy_c0": pytest.approx(0.9)}


def test_likelihood_terms():
    torch.manual_seed(0)
    model = _model(categories="4").eval()
    x = torch.rand(6, 1, 16, 16)
    log_w = model.log_importance_weights(x, 50)
    assert log_w.shape == (50, 6) and torch.isfinite(log_w).all()
    nll = -(torch.logsumexp(log_w, 0) - math.log(50))
    elbo = torch.stack([model.negative_elbo(x) for _ in range(50)]).mean(0)
    assert (nll <= elbo + 1.0).all()  # the importance-sampled bound is the tighter one
    only_categorical = build("joint_vae", arch="mlp", resolution=16, latent=0, categories="5")
    loss = only_categorical.train_step(x)
    assert math.isfinite(loss["loss"]) and loss["kl_cont"] == 0.0


def test_marginal_kl_is_the_kl_of_the_batch_average_to_the_uniform():
    logits = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    q = logits.softmax(-1).mean(0)
    got = marginal_kl_uniform(logits)
    torch.testing.assert_close(got, (q * q.log()).sum() + math.log(5))
    got.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    balanced = torch.eye(5, dtype=torch.float64).repeat(2, 1) * 50.0  # every category picked equally often
    assert float(marginal_kl_uniform(balanced)) == pytest.approx(0.0, abs=1e-9)
    assert float(marginal_kl_uniform(balanced[:1].repeat(10, 1))) == pytest.approx(math.log(5), abs=1e-9)


def test_marginal_gamma_adds_the_aggregate_kl_of_every_categorical_latent():
    x = torch.rand(6, 1, 16, 16)
    model = _model(categories="4,3", marginal_gamma=7.0)
    assert model.config["marginal_gamma"] == 7.0
    torch.manual_seed(0)
    loss_weighted, *_ = model.losses(x)
    model.marginal_gamma = 0.0
    torch.manual_seed(0)  # the same Gumbel noise
    loss, *_, kl_marginal, _, _ = model.losses(x)
    model.marginal_gamma = 7.0
    _, _, logits = model.encode(x)
    torch.testing.assert_close(kl_marginal, marginal_kl_uniform(logits[0]) + marginal_kl_uniform(logits[1]))
    torch.testing.assert_close(loss_weighted, loss + 7.0 * kl_marginal)
    assert 0 < kl_marginal.item() < math.log(4) + math.log(3)
    assert math.isfinite(model.train_step(x)["kl_marginal"])


BAD = [
    (["train", "joint_vae", "--categories", "1"], "joint_vae: categories: every categorical latent needs an integer "
                                                  ">= 2 categories, got '1'"),
    (["train", "joint_vae", "--categories", "ten"], "joint_vae: categories must be comma-separated integers"),
    (["train", "joint_vae", "--tau", "0"], "joint_vae: tau must be > 0.0, got 0.0"),
    (["train", "joint_vae", "--latent", "-1"], "argument --latent: expected an integer >= 0, got -1"),
    (["train", "joint_vae", "--cont-gamma", "inf"], "argument --cont-gamma: expected a number >= 0, got inf"),
    (["train", "joint_vae", "--disc-capacity", "-1"], "argument --disc-capacity: expected a number >= 0, got -1"),
    (["train", "joint_vae", "--marginal-gamma", "-1"], "argument --marginal-gamma: expected a number >= 0, got -1"),
    (["train", "joint_vae", "--cont-capacity-steps", "0"],
     "argument --cont-capacity-steps: expected a positive integer, got 0"),
    (["train", "joint_vae", "--latent", "0", "--categories", ""], "the model needs at least one latent"),
    (["sample", "/nonexistent", "--traverse"], "no such checkpoint file"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_name_themselves(argv, message, capsys):
    assert_cli_fails_in_one_line(argv, message, capsys)
