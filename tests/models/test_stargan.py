"""StarGAN: training through the CLI, label tiling, the classification losses and the test-time
domain targets on planted cases, and the fused generator (affine instance norm with running
statistics) against the same generator built from plain torch layers."""
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

import gentk
from gentk import cli
from gentk.models.image_nets import ResnetGenerator, StarDiscriminator
from gentk.models.stargan import StarGAN, classification_loss, tile_labels

TINY = ["--resolution", "16", "--width", "4", "--d-width", "4", "--n-blocks", "1", "--batch-size", "4",
        "--threads", "1", "--no-progress"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("mode", ["multi", "single"])
def test_train_sample_eval_through_the_cli(tmp_path, capsys, mode):
    out = str(tmp_path / "run")
    assert cli.main(["train", "stargan", *TINY, "--steps", "4", "--n-critic", "2", "--label-mode", mode,
                     "--out", out]) == 0
    assert "test_target_accuracy_by_d" in capsys.readouterr().out
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    train = [r for r in records if "split" not in r]
    assert {"d_adv", "gp", "d_cls", "g_adv", "g_cls", "g_rec"} <= set(train[-1])  # the G step ran
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    png = str(tmp_path / "grid.png")
    assert cli.main(["sample", out, "--n", "8", "--out", png]) == 0
    from PIL import Image

    with Image.open(png) as img:  # 8 inputs, then one row per target: 4 (multi: r, g, b, flip thick), 3 (single)
        rows = round(img.size[1] / img.size[0] * 8)
    assert rows == (5 if mode == "multi" else 4)


def test_chunked_gradient_penalty_through_the_cli(tmp_path, capsys):
    from conftest import assert_cli_fails_in_one_line
    from gentk.train.checkpoint import model_from_checkpoint

    out = str(tmp_path / "run")
    assert cli.main(["train", "stargan", *TINY, "--steps", "2", "--gp-chunk-size", "3", "--out", out]) == 0
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert all(math.isfinite(r["gp"]) for r in records if "gp" in r)
    model, _ = model_from_checkpoint(out)
    assert model.gp_chunk_size == 3  # kept in the checkpoint's config
    assert_cli_fails_in_one_line(["train", "stargan", *TINY, "--steps", "1", "--gp-chunk-size", "0", "--out", out],
                                 "argument --gp-chunk-size: expected a positive integer, got 0", capsys)


def test_checkpoints_from_before_n_down_still_load(tmp_path):
    """Configs written before n_down existed lack it; those runs had two downsamplings."""
    from gentk.train.checkpoint import atomic_save, list_checkpoints, load, model_from_checkpoint

    out = str(tmp_path / "run")
    assert cli.main(["train", "stargan", *TINY, "--steps", "1", "--n-down", "2", "--out", out]) == 0
    _, path = list_checkpoints(os.path.join(out, "checkpoints"))[-1]
    state = load(path)
    del state["config"]["model"]["n_down"]
    atomic_save(state, path)
    model, _ = model_from_checkpoint(out)
    assert model.config["n_down"] == 2
    assert cli.main(["train", "stargan", *TINY, "--steps", "2", "--resume", out, "--out", out]) == 0  # resumes


def test_label_tiling_planted():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    c = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    y = tile_labels(x, c)
    assert y.shape == (2, 7, 4, 5)
    assert torch.equal(y[:, :3], x)
    for n in range(2):
        for k in range(4):
            assert torch.equal(y[n, 3 + k], torch.full((4, 5), c[n, k].item()))


def test_classification_losses_planted():
    logits = torch.tensor([[2.0, -1.0, 0.0, 3.0], [-2.0, 0.5, 1.0, -3.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    # multi: BCE summed over the attributes, averaged over the 2 images
    per_attr = [[math.log1p(math.exp(-2)), math.log1p(math.exp(-1)), math.log(2), math.log1p(math.exp(-3))],
                [math.log1p(math.exp(-2)), math.log1p(math.exp(0.5)), math.log1p(math.exp(-1)),
                 math.log1p(math.exp(-3))]]
    expected = sum(map(sum, per_attr)) / 2
    torch.testing.assert_close(classification_loss(logits, target, "multi").item(), expected, rtol=1e-5, atol=1e-6)
    # single: cross-entropy of the target domain (one-hot or index)
    three = logits[:, :3]
    one_hot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    lse = torch.logsumexp(three, 1)
    expected = ((lse[0] - 2.0) + (lse[1] - 1.0)).item() / 2
    torch.testing.assert_close(classification_loss(three, one_hot, "single").item(), expected)
    torch.testing.assert_close(classification_loss(three, torch.tensor([0, 2]), "single").item(), expected)


def test_domain_targets_and_single_labels():
    model = StarGAN(resolution=16, width=4, d_width=4, n_blocks=1, c_dim=4, exclusive=3)
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    targets = model.domain_targets(labels)
    assert [t.tolist() for t in targets] == [
        [[1, 0, 0, 0], [1, 0, 0, 1]],  # red: the colour group set to red, thickness kept
        [[0, 1, 0, 0], [0, 1, 0, 1]],
        [[0, 0, 1, 0], [0, 0, 1, 1]],
        [[1, 0, 0, 1], [0, 0, 1, 0]],  # thick flipped
    ]
    single = StarGAN(resolution=16, width=4, d_width=4, n_blocks=1, c_dim=4, exclusive=3, label_mode="single")
    assert single.label_dim == 3
    assert single.labels_of(labels).tolist() == [[1, 0, 0], [0, 0, 1]]
    assert single.generator.model[0].in_channels == 3 + 3
    assert single.discriminator.conv_cls.out_channels == 3


def test_generator_downsamples_once_below_64_px_and_twice_from_64():
    def strides(model):
        return [m.stride[0] for m in model.generator.modules() if isinstance(m, torch.nn.Conv2d) and m.stride[0] > 1]

    small, paper = StarGAN(resolution=28, width=4, d_width=4, n_blocks=1), StarGAN(resolution=64, width=4,
                                                                                      d_width=4, n_blocks=1)
    assert strides(small) == [2] and strides(paper) == [2, 2]
    assert small.config["n_down"] == 1 and paper.config["n_down"] == 2
    chosen = StarGAN(resolution=28, width=4, d_width=4, n_blocks=1, n_down=2)
    assert strides(chosen) == [2, 2]
    x, c = torch.rand(2, 3, 28, 28), torch.tensor([[1.0, 0, 0, 1], [0, 1.0, 0, 0]])
    assert small.translate(x, c).shape == chosen.translate(x, c).shape == x.shape
    with pytest.raises(ValueError, match="2 stride-2 layers need a resolution divisible by 4, got 30"):
        StarGAN(resolution=30, n_down=2)


def test_gradient_penalty_is_taken_on_the_summed_patch_map():
    torch.manual_seed(0)
    model = StarGAN(resolution=16, width=4, d_width=4, n_blocks=1, c_dim=4)
    d = model.discriminator
    real, fake = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    src, cls = d(real)
    assert src.shape == (3, 1, 2, 2) and cls.shape == (3, 4)
    torch.manual_seed(1)
    _, parts = model.critic_objective(lambda x: d(x)[0].flatten(1).sum(1), real, fake, src, d(fake)[0])
    # the reference: grad of D(x_hat)[0] with grad_outputs=ones at x_hat = a*real + (1-a)*fake
    torch.manual_seed(1)
    alpha = torch.rand(3)  # what the torch backend draws
    x_hat = (alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake).requires_grad_()
    out = d(x_hat)[0]
    (grad,) = torch.autograd.grad(out, x_hat, torch.ones_like(out))
    expected = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean().item()
    with gentk.use_backend("torch"):
        torch.manual_seed(1)
        _, ref_parts = model.critic_objective(lambda x: d(x)[0].flatten(1).sum(1), real, fake, src, d(fake)[0])
    torch.testing.assert_close(ref_parts["gp"], expected, rtol=1e-4, atol=1e-6)
    assert math.isfinite(parts["gp"]) and parts["gp"] > 0


@pytest.mark.parametrize("train", [True, False])
def test_fused_generator_matches_plain_layers(train):
    torch.manual_seed(0)
    fused = ResnetGenerator(3 + 5, 3, width=8, n_blocks=2, style="stargan", fused=True)
    plain = ResnetGenerator(3 + 5, 3, width=8, n_blocks=2, style="stargan", fused=False)
    with torch.no_grad():  # affine weights and running statistics away from their defaults
        for m in fused.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    plain.load_state_dict(fused.state_dict())
    fused.train(train), plain.train(train)
    x = torch.randn(2, 8, 16, 16)
    torch.testing.assert_close(fused(x), plain(x), rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(fused.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)  # running statistics updated alike


def test_discriminator_heads_at_paper_size():
    d = StarDiscriminator(3, c_dim=5, resolution=128, width=4)
    assert len(d.main) == 12  # six stride-2 convs with LeakyReLU 0.01, no norm
    assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) for m in d.modules())
    src, cls = d(torch.randn(1, 3, 128, 128))
    assert src.shape == (1, 1, 2, 2) and cls.shape == (1, 5)
    assert F.leaky_relu(torch.tensor([-1.0]), 0.01).item() == d.main[1](torch.tensor([-1.0])).item()
