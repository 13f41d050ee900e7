"""Image-to-image metrics (gentk.metrics.translation): PSNR and SSIM against direct formulas, the
palette reader on planted JPEG label maps (and on the CMP facades when the shared data is here),
label-map scores on planted maps, and the translation models' evaluation with a palette."""
import io
import itertools
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from gentk.metrics.translation import (FACADES_PALETTE, TranslationScores, derive_palette, label_map_scores,
                                       nearest_class, psnr, ssim)
from gentk.models import build

FACADES = os.path.join(ROOT, "..", "shared", "data", "facades")


def test_psnr_of_a_known_error():
    x = torch.zeros(2, 3, 4, 4)
    assert psnr(x + 0.1, x).tolist() == pytest.approx([20.0, 20.0])


def ssim_by_windows(x, y, size=11, sigma=1.5):
    """SSIM of one-channel images [H, W] in float64, window by window."""
    g = torch.tensor([math.exp(-(i - (size - 1) / 2) ** 2 / (2 * sigma ** 2)) for i in range(size)], dtype=torch.float64)
    w = torch.outer(g, g) / g.sum() ** 2
    scores = []
    for i, j in itertools.product(range(x.shape[0] - size + 1), range(x.shape[1] - size + 1)):
        a, b = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
        ma, mb = (w * a).sum(), (w * b).sum()
        va, vb, cov = (w * a * a).sum() - ma ** 2, (w * b * b).sum() - mb ** 2, (w * a * b).sum() - ma * mb
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        scores.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return torch.stack(scores).mean()


def test_ssim_matches_the_window_by_window_formula_and_is_one_for_equal_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 15, 14, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    expected = torch.stack([torch.stack([ssim_by_windows(x[n, c], y[n, c]) for c in range(3)]).mean()
                            for n in range(2)])
    torch.testing.assert_close(ssim(x, y), expected)
    torch.testing.assert_close(ssim(x.float(), x.float()), torch.ones(2))
    assert float(ssim(x, y)[0]) < float(ssim(x, (x + 0.05 * (y - x)))[0]) < 1
    with pytest.raises(ValueError, match="same shape|one shape"):
        ssim(x, y[:, :, :-1])


def planted_maps(palette, n=6, side=64, seed=0, quality=75):
    """Label maps of random rectangles in the palette's colours, JPEG-compressed, and their classes."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.zeros(n, side, side, dtype=torch.long)
    for k in range(n):
        for _ in range(30):
            top, left = (int(v) for v in torch.randint(0, side - 8, (2,), generator=g))
            h, w = (int(v) for v in torch.randint(6, 24, (2,), generator=g))
            classes[k, top:top + h, left:left + w] = int(torch.randint(len(palette), (), generator=g))
    colours = torch.tensor(palette, dtype=torch.uint8)[classes]  # [n, H, W, 3]
    maps = []
    for image in colours:
        buffer = io.BytesIO()
        Image.fromarray(image.numpy()).save(buffer, "JPEG", quality=quality)
        maps.append(torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1))
    return torch.stack(maps).float() / 255, classes


def test_derive_palette_recovers_planted_colours_through_jpeg():
    maps, classes = planted_maps(FACADES_PALETTE, n=12)
    found = torch.tensor(derive_palette(maps, 12), dtype=torch.float32)
    truth = torch.tensor(sorted(FACADES_PALETTE), dtype=torch.float32)
    assert (found - truth).norm(dim=1).max() < 8
    read = nearest_class(maps, derive_palette(maps, 12))
    expected = torch.tensor([sorted(FACADES_PALETTE).index(FACADES_PALETTE[c]) for c in range(12)])[classes]
    # away from the edges JPEG smears (pixels whose 5x5 neighbourhood is one class) all but a few read right
    one = classes.float()[:, None]
    interior = (torch.nn.functional.max_pool2d(one, 5, 1, 2) == -torch.nn.functional.max_pool2d(-one, 5, 1, 2))[:, 0]
    assert interior.float().mean() > 0.3 and (read == expected)[interior].float().mean() > 0.999
    with pytest.raises(ValueError, match="found only"):
        derive_palette(maps, 40)


@pytest.mark.skipif(not os.path.isdir(os.path.join(FACADES, "train")), reason="the shared facades are not here")
def test_the_facades_palette_is_what_the_training_maps_give():
    from gentk.data import AlignedFolder

    pairs = AlignedFolder(FACADES, "train", size=256, jitter=False)
    maps = torch.stack([pairs[i][1] for i in range(0, len(pairs), 5)])
    distance = torch.cdist(torch.tensor(derive_palette(maps, 12), dtype=torch.float32),
                           torch.tensor(FACADES_PALETTE, dtype=torch.float32))
    nearest = distance.min(1)
    assert sorted(nearest.indices.tolist()) == list(range(12)) and float(nearest.values.max()) < 10


def test_label_map_scores_on_planted_maps():
    target = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 2]])
    predicted = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 2]])
    scores = label_map_scores(predicted, target, classes=4)  # class 3 absent from both
    assert scores["pixel_accuracy"] == pytest.approx(6 / 8)
    assert scores["class_accuracy"] == pytest.approx((2 / 3 + 2 / 3 + 2 / 2) / 3)
    ious = [2 / 3, 2 / 4, 2 / 3]
    assert scores["iou_by_class"][:3] == pytest.approx(ious) and math.isnan(scores["iou_by_class"][3])
    assert scores["class_iou"] == pytest.approx(sum(ious) / 3)


def test_translation_scores_read_outputs_as_label_maps():
    maps, _ = planted_maps(FACADES_PALETTE, n=3, seed=1, quality=95)
    scores = TranslationScores("facades")
    scores.add(maps, maps)
    result = scores.result()
    assert result["test_pixel_accuracy"] == 1 and result["test_class_iou"] == 1 and result["test_l1"] == 0
    assert result["test_ssim"] == pytest.approx(1)
    assert "test_pixel_accuracy" not in TranslationScores().result()


def test_pix2pix_photo_to_labels_evaluation_scores_the_label_maps(monkeypatch):
    maps, _ = planted_maps(FACADES_PALETTE, n=2, side=32, seed=2)
    photos = torch.rand_like(maps)
    model = build("pix2pix", channels=3, resolution=32, direction="AtoB", label_palette="facades")
    monkeypatch.setattr(model, "translate", lambda source: maps[:len(source)])
    data = torch.utils.data.TensorDataset(photos, maps)
    result = model.evaluate_translation(data)
    assert result["test_pixel_accuracy"] == 1 and result["test_class_accuracy"] == 1 and "test_ssim" in result
