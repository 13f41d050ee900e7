"""CycleGAN: training through the CLI, exact resume (image pools in the checkpoint), the
image pool on a planted sequence, the learning-rate decay, and the fused generator against
the same generator built from plain torch layers."""
import json
import os

import pytest
import torch

from gentk import cli
from gentk.models.cyclegan import CycleGAN, ImagePool, linear_decay
from gentk.models.image_nets import PatchDiscriminator, ResnetGenerator
from gentk.train import checkpoint as ckpt

TINY = ["--resolution", "16", "--width", "4", "--d-width", "4", "--n-blocks", "1", "--batch-size", "4",
        "--threads", "1", "--no-progress"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_resume_exactly_sample_eval(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "cyclegan", *TINY, "--steps", "4", "--checkpoint-every", "2", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "test_cycle_l1_a" in printed
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    train = [r for r in records if "split" not in r]
    assert {"d_adv_a", "d_adv_b", "g_adv", "cycle", "identity"} <= set(train[-1])
    assert all(torch.isfinite(torch.tensor(v)) for r in records for v in r.values() if isinstance(v, float))
    assert os.path.isfile(os.path.join(out, "translations.png"))

    # resuming from step 2 reaches the same weights as the uninterrupted run (pools, RNG, schedule)
    resumed = str(tmp_path / "resumed")
    step2 = os.path.join(out, "checkpoints", "step_00000002.pt")
    assert cli.main(["train", "cyclegan", "--steps", "4", "--resume", step2, "--out", resumed, "--no-progress",
                     "--no-eval", "--threads", "1"]) == 0
    a = ckpt.load(os.path.join(out, "checkpoints", "step_00000004.pt"))
    b = ckpt.load(os.path.join(resumed, "checkpoints", "step_00000004.pt"))
    assert a["extra"]["pool_a"].shape[0] == 4 * 4 and torch.equal(a["extra"]["pool_b"], b["extra"]["pool_b"])
    for net in a["networks"]:
        for key, value in a["networks"][net].items():
            torch.testing.assert_close(b["networks"][net][key], value, rtol=0, atol=0, msg=f"{net}.{key}")

    png = str(tmp_path / "grid.png")
    assert cli.main(["sample", out, "--n", "8", "--out", png]) == 0
    from PIL import Image

    with Image.open(png) as img:  # rows of 8: A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B))
        width, height = img.size
    assert round(height / width * 8) == 6


def _images(values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def test_image_pool_planted_sequence():
    pool = ImagePool(3)
    # while filling, every image is stored and returned as is
    assert pool.query(_images([1, 2])).flatten().tolist() == [1, 2]
    assert pool.query(_images([3])).flatten().tolist() == [3]
    stored = [1.0, 2.0, 3.0]
    torch.manual_seed(7)
    out = pool.query(_images(list(range(4, 40)))).flatten().tolist()
    # replay the same draws: with probability 1/2 swap for a random stored image, else pass through
    torch.manual_seed(7)
    expected = []
    for value in range(4, 40):
        if torch.rand(()) < 0.5:
            slot = int(torch.randint(3, ()))
            expected.append(stored[slot])
            stored[slot] = float(value)
        else:
            expected.append(float(value))
    assert out == expected
    assert sorted(img.item() for img in pool.images) == sorted(stored)
    swapped = sum(o != v for o, v in zip(out, range(4, 40)))
    assert 8 <= swapped <= 28  # about half of 36
    assert all(o < v for o, v in zip(out, range(4, 40)) if o != v)  # an older image comes back

    copy = ImagePool(3)
    copy.load(pool.state(), "cpu")
    assert [img.item() for img in copy.images] == [img.item() for img in pool.images]
    assert torch.equal(ImagePool(0).query(_images([5, 6])), _images([5, 6]))


def test_learning_rate_constant_then_linear_to_zero():
    factor = linear_decay(100)
    assert [factor(s) for s in (0, 25, 48)] == [1.0, 1.0, 1.0]
    decay = [factor(s) for s in range(49, 100)]
    assert all(a > b for a, b in zip(decay, decay[1:])) and 0 < decay[-1] < 0.03
    model = CycleGAN(resolution=16, width=4, d_width=4, n_blocks=1, total_steps=10)
    batch = (torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))
    lrs = []
    for _ in range(10):
        lrs.append(model.opt_g.param_groups[0]["lr"])
        model.train_step(batch)
    assert lrs[:5] == [2e-4] * 5 and lrs[5] < 2e-4 and lrs[-1] < lrs[5]
    assert CycleGAN(resolution=16, width=4, d_width=4, n_blocks=1).schedulers() == {}


@pytest.mark.parametrize("train", [True, False])
def test_fused_generator_matches_plain_layers(train):
    torch.manual_seed(0)
    fused = ResnetGenerator(3, 3, width=8, n_blocks=2, style="cyclegan", fused=True)
    plain = ResnetGenerator(3, 3, width=8, n_blocks=2, style="cyclegan", fused=False)
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) and type(m) is torch.nn.InstanceNorm2d
                   for m in fused.modules())
    plain.load_state_dict(fused.state_dict())  # same keys, same weights
    fused.train(train), plain.train(train)
    x = torch.randn(2, 3, 20, 20, requires_grad=True)
    y_fused, y_plain = fused(x), plain(x)
    torch.testing.assert_close(y_fused, y_plain, rtol=1e-4, atol=1e-5)
    (g_fused,) = torch.autograd.grad(y_fused.square().sum(), x)
    (g_plain,) = torch.autograd.grad(y_plain.square().sum(), x)
    torch.testing.assert_close(g_fused, g_plain, rtol=1e-4, atol=1e-5)


def test_fused_patch_discriminator_matches_plain_layers():
    torch.manual_seed(0)
    fused = PatchDiscriminator(2, width=8, n_layers=3, norm="instance", fused=True)
    plain = PatchDiscriminator(2, width=8, n_layers=3, norm="instance", fused=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(3, 2, 70, 70)
    y = fused(x)
    assert y.shape == (3, 1, 6, 6)  # three stride-2 convs, two stride-1: one logit per 70x70 patch
    torch.testing.assert_close(y, plain(x), rtol=1e-4, atol=1e-5)
