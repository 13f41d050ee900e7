"""Aligned folders as the facades use them: the held-out test pairs of a folder with no test/,
natural file order, the pix2pix jitter (one crop and mirror for both halves), decoding once, a
folder of test pairs named directly, and the unpaired view CycleGAN trains on."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import gentk.data as data
from gentk.data import folders


def pair_folder(folder, n, side=8):
    """n A|B pairs: A's pixels are the pair's number, B's 255 minus it; A has a bright left column."""
    os.makedirs(folder, exist_ok=True)
    for i in range(1, n + 1):
        a = np.full((side, side, 3), i, np.uint8)
        a[:, 0] = 250
        b = np.full((side, side, 3), 255 - i, np.uint8)
        Image.fromarray(np.concatenate([a, b], 1)).save(os.path.join(folder, f"{i}.png"))
    return folder


def number(image):
    return round(float(image[:, :, 1:].median()) * 255)


def test_a_folder_without_test_holds_out_its_last_pairs_in_natural_order(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(folders, "_told_held_out", set())
    monkeypatch.setattr(folders, "HELD_OUT", 3)
    pair_folder(tmp_path / "train", 12)
    train = data.load("aligned", "train", root=tmp_path, resolution=8)
    test = data.load("aligned", "test", root=tmp_path, resolution=8)
    assert [os.path.basename(f) for f in train.files] == [f"{i}.png" for i in range(1, 10)]
    assert [os.path.basename(f) for f in test.files] == ["10.png", "11.png", "12.png"]
    assert capsys.readouterr().err.count("last 3 pairs (10.png ... 12.png) are the test split") == 1
    assert train.jitter and not test.jitter and number(test[0][0]) == 10 and number(test[0][1]) == 245


def test_the_jitter_crops_and_mirrors_both_halves_alike(tmp_path):
    os.makedirs(tmp_path / "train")
    ramp = np.zeros((32, 32, 3), np.uint8)
    ramp[..., 0] = np.arange(32)[None, :] * 8  # red grows to the right, green downwards
    ramp[..., 1] = np.arange(32)[:, None] * 8
    Image.fromarray(np.concatenate([ramp, ramp], 1)).save(tmp_path / "train" / "1.png")
    pairs = data.AlignedFolder(tmp_path, "train", size=16)
    assert pairs.jitter and pairs.load_size == round(16 * 286 / 256)
    torch.manual_seed(0)
    corners, mirrored = set(), 0
    for _ in range(40):
        a, b = pairs[0]
        assert a.shape == (3, 16, 16) and torch.equal(a, b)
        mirrored += bool(a[0, 0, 0] > a[0, 0, -1])
        corners.add((round(float(a[0, 0, :].min()), 2), round(float(a[1, 0, 0]), 2)))
    assert 5 < mirrored < 35 and len(corners) > 3  # both mirrors, and crops at several offsets


def test_each_file_is_decoded_once(tmp_path, monkeypatch):
    pair_folder(tmp_path / "test", 3)
    pairs = data.AlignedFolder(tmp_path, "test", 8)
    opened = []
    original = folders.open_image
    monkeypatch.setattr(folders, "open_image", lambda path, channels: opened.append(path) or original(path, channels))
    for _ in range(3):
        [pairs[i] for i in range(3)]
    assert len(opened) == 3


def test_a_folder_of_test_pairs_can_be_named_directly(tmp_path):
    pair_folder(tmp_path / "pairs", 4)
    test = data.load("aligned", "test", root=tmp_path / "pairs", resolution=8)
    assert len(test) == 4 and number(test[3][0]) == 4
    with pytest.raises(data.DataError, match="no such directory"):
        data.load("aligned", "train", root=tmp_path / "pairs", resolution=8)


def test_the_unpaired_view_takes_a_from_the_first_half_and_b_from_the_second(tmp_path):
    pair_folder(tmp_path / "test", 10)
    view = data.UnpairedView(data.AlignedFolder(tmp_path, "test", 8))
    torch.manual_seed(0)
    seen_a, seen_b = set(), set()
    for i in range(40):
        a, b = view[i]
        seen_a.add(number(a))
        seen_b.add(255 - number(b))
    assert seen_a == {1, 2, 3, 4, 5} and seen_b <= {6, 7, 8, 9, 10} and len(seen_b) > 2
    pair_folder(tmp_path / "train", 10)
    assert isinstance(data.load("aligned-unpaired", "train", root=tmp_path, resolution=8), data.UnpairedView)
    assert data.load("aligned-unpaired", "test", root=tmp_path, resolution=8).paired
