"""pix2pix: training through the CLI with batch and instance norm, the translation grid, the
U-Net's shapes and skips, and the fused (instance-norm) networks against plain torch layers."""
import copy
import json
import math
import os

import pytest
import torch

from gentk import cli
from gentk.models.image_nets import UnetGenerator
from gentk.models.pix2pix import Pix2Pix

TINY = ["--resolution", "16", "--width", "4", "--d-width", "4", "--batch-size", "4", "--threads", "1",
        "--no-progress"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_train_sample_eval_through_the_cli(tmp_path, capsys, norm):
    out = str(tmp_path / "run")
    assert cli.main(["train", "pix2pix", *TINY, "--norm", norm, "--steps", "3", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "test_l1" in printed and "test_psnr_db" in printed
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert {"d_adv", "g_adv", "g_l1"} <= set(records[0])
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    assert 0 < records[-1]["test_l1"] < 1
    png = str(tmp_path / "grid.png")
    assert cli.main(["sample", out, "--n", "16", "--out", png]) == 0
    from PIL import Image

    with Image.open(png) as img:  # two blocks of 3 rows of 8: inputs, outputs, targets
        assert round(img.size[1] / img.size[0] * 8) == 6
    if norm == "batch":
        assert cli.main(["eval", out, "--max-examples", "20"]) == 0
        saved = json.load(open(os.path.join(out, "eval.json")))
        assert saved["step"] == 3 and 0 < saved["test_l1"] < 1 and saved["test_psnr_db"] > 0
        paper = [str(tmp_path / f"paper{i}.json") for i in range(3)]
        for path, seed in zip(paper, (0, 0, 1)):
            assert cli.main(["eval", out, "--max-examples", "20", "--test-mode", "paper", "--seed", str(seed),
                             "--out", path]) == 0
        first, again, other = (json.load(open(p))["test_l1"] for p in paper)
        assert first == again and first != saved["test_l1"] and other != first  # the seed fixes the dropout


def test_direction_picks_the_input_side():
    a, b = torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    source, target = Pix2Pix(resolution=16, direction="BtoA").split((a, b))
    assert source.min() == 1 and target.max() == -1  # B (ones) in, A out, both in [-1, 1]
    source, target = Pix2Pix(resolution=16, direction="AtoB").split((a, b))
    assert source.max() == -1 and target.min() == 1
    with pytest.raises(ValueError, match="direction"):
        Pix2Pix(direction="sideways")


def test_paper_test_mode_normalizes_each_image_by_itself_and_keeps_running_statistics():
    torch.manual_seed(0)
    model = Pix2Pix(resolution=16, width=4, d_width=4, dropout=0.0)
    model.train()
    for _ in range(3):  # running statistics that differ from any one image's
        model.generator(torch.randn(4, 1, 16, 16) * 3 + 1)
    model.eval()
    buffers = {k: v.clone() for k, v in model.generator.state_dict().items()}
    x = torch.rand(3, 1, 16, 16)
    eval_out = model.translate(x)
    model.test_mode = "paper"
    together = model.translate(x)
    for k, v in model.generator.state_dict().items():  # running statistics and batch counters untouched
        assert torch.equal(v, buffers[k]), k
    assert not any(m.training for m in model.generator.modules())  # eval mode restored
    alone = torch.cat([model.translate(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone)  # independent of the batch it comes in
    assert (together - eval_out).abs().max() > 1e-3
    reference = copy.deepcopy(model.generator).train()  # batch norm on one image's own statistics
    with torch.no_grad():
        torch.testing.assert_close(together[1:2], ((reference(x[1:2] * 2 - 1) + 1) / 2).clamp(0, 1))


def test_unet_depth_padding_dropout_and_skips():
    net = UnetGenerator(1, 1, 28, width=4, norm="batch", dropout=0.5)
    assert net.depth == 5  # padded to 32, down to 1x1
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert net(x).shape == (3, 1, 28, 28)
    paper = UnetGenerator(3, 3, 256, width=2)
    drops = [m.p for m in paper.modules() if isinstance(m, torch.nn.Dropout)]
    assert paper.depth == 8 and drops == [0.5, 0.5, 0.5]  # CD512 x3 next to the bottleneck
    # the outermost level's up-convolution sees its own features and the inner output (skip)
    assert paper.model.up.in_channels == 2 * 2


def test_fused_instance_norm_unet_matches_plain_layers():
    torch.manual_seed(0)
    fused = UnetGenerator(2, 2, 32, width=4, norm="instance", dropout=0.0, fused=True)
    plain = UnetGenerator(2, 2, 32, width=4, norm="instance", dropout=0.0, fused=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 2, 32, 32)
    torch.testing.assert_close(fused(x), plain(x), rtol=1e-4, atol=1e-5)
