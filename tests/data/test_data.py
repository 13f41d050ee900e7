"""gentk.data: loaders on tiny files written here, the embedded sets, and the real MNIST
test set from the shared folder when it is present."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, write_idx

import gentk.data as data
from gentk.data import DataError

SHARED_MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist")
if not os.path.isdir(SHARED_MNIST):
    SHARED_MNIST = "/work/shared/data/mnist"


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_roundtrip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    ext = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{ext}", images, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{ext}", labels, gz)
    ds = data.mnist(tmp_path, "test")
    x, y = ds.tensors
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images).float() / 255)
    assert y.tolist() == [3, 1, 4, 1, 5]
    with pytest.raises(DataError, match=r"train-images.*expected ROOT/train-images-idx3-ubyte"):
        data.mnist(tmp_path, "train")
    assert data.mnist(tmp_path, "test", resolution=32).tensors[0].shape == (5, 1, 32, 32)


def test_mnist_malformed(tmp_path):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match="one label per image"):
        data.mnist(tmp_path, "train")
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: IDX body .*truncated"):
        data.mnist(tmp_path, "train")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="bad magic"):
        data.mnist(tmp_path, "train")
    with pytest.raises(DataError, match="no such directory"):
        data.mnist(tmp_path / "nope", "train")
    with pytest.raises(DataError, match="needs a directory"):
        data.load("mnist")


def test_mnist_bad_contents(tmp_path):
    labels = np.zeros(4, dtype=np.uint8)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    images = np.full((4, 6, 6), 0.5, dtype=">f4")
    images[2, 1, 3] = np.nan
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: image 2 has NaN or infinite pixels"):
        data.mnist(tmp_path, "train")
    images[2, 1, 3] = np.inf
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with pytest.raises(DataError, match="image 2 has NaN"):
        data.mnist(tmp_path, "train")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 6, 6), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, -1, 2], dtype=np.int8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: labels must be integers >= 0"):
        data.mnist(tmp_path, "train")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((0, 6, 6), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: holds no pixels"):
        data.mnist(tmp_path, "train")


@pytest.mark.parametrize("name", ["digits", "digits-edges", "digits-thickness", "digits-colour"])
def test_embedded_sets_name_a_too_small_resolution(name):
    with pytest.raises(DataError, match=rf"--resolution: data set '{name}' needs a resolution of at least 8, got 4"):
        data.load(name, resolution=4)


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="shared MNIST test set not present")
def test_real_mnist_test_set():
    x, y = data.mnist(SHARED_MNIST, "test").tensors
    assert x.shape == (10000, 1, 28, 28)
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels
    assert torch.bincount(y).min() > 850
    assert 0.12 < x.mean().item() < 0.14  # MNIST's mean pixel is 0.1325


@pytest.mark.parametrize("resolution", [28, 32])
def test_digits_embedded(resolution):
    train, test = data.digits("train", resolution), data.digits("test", resolution)
    assert len(train) + len(test) == 1797 and len(test) == 359
    x, y = train.tensors
    assert x.shape[1:] == (1, resolution, resolution)
    assert x.min() >= 0 and x.max() <= 1
    assert x[:, :, :2].abs().max() == 0  # dark border, as in MNIST
    assert set(y.tolist()) == set(range(10))
    # fixed split: the same on every call, and train and test are disjoint
    assert torch.equal(data.digits("train", resolution).tensors[0], x)
    flat_train = {tuple(r) for r in x.flatten(1)[:, ::7].tolist()}
    assert not any(tuple(r) in flat_train for r in test.tensors[0].flatten(1)[:, ::7].tolist())


def test_synthetic_sets():
    a, b = data.digits_edges().tensors
    assert a.shape == b.shape and not torch.equal(a, b)
    assert (b > 0.3).sum() > (a > 0.3).sum() * 0.5  # edges exist where strokes are
    unpaired = data.digits_thickness()
    thin, thick = unpaired[0]
    assert thin.shape == thick.shape == (1, 28, 28)
    assert unpaired.b.mean() > unpaired.a.mean()
    rgb, attrs = data.digits_colour().tensors
    assert rgb.shape[1] == 3 and attrs.shape[1] == len(data.COLOUR_ATTRIBUTES)
    assert torch.equal(attrs[:, :3].sum(1), torch.ones(len(attrs)))
    dominant = rgb.flatten(2).sum(-1).argmax(1)
    assert torch.equal(dominant, attrs[:, :3].argmax(1))


def _png(path, w, h, colour):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (w, h), colour).save(path)


def test_aligned_folder(tmp_path):
    img = Image.new("RGB", (16, 8), (255, 0, 0))
    img.paste((0, 0, 255), (8, 0, 16, 8))
    os.makedirs(tmp_path / "train")
    img.save(tmp_path / "train" / "0.png")
    ds = data.load("aligned", root=tmp_path, resolution=4)
    a, b = ds[0]
    assert a.shape == b.shape == (3, 4, 4)
    assert a[0].min() > 0.9 and a[2].max() < 0.1 and b[2].min() > 0.9 and b[0].max() < 0.1
    Image.new("RGB", (7, 8)).save(tmp_path / "train" / "1.png")
    with pytest.raises(DataError, match=r"1\.png: .*even width"):
        ds = data.AlignedFolder(tmp_path, "train", 4)
        ds[1]
    with pytest.raises(DataError, match=r"test: no such directory \(expected ROOT/test/"):
        data.AlignedFolder(tmp_path, "test")
    (tmp_path / "train" / "2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"2\.png: cannot read image"):
        data.AlignedFolder(tmp_path, "train", 4)  # when the set is made, not when its batch comes


def test_unaligned_folders(tmp_path):
    for i in range(3):
        _png(str(tmp_path / "trainA" / f"{i}.png"), 6, 6, (255, 255, 255))
    _png(str(tmp_path / "trainB" / "x.jpg"), 6, 6, (0, 0, 0))
    ds = data.load("unaligned", root=tmp_path, resolution=6)
    assert len(ds) == 3
    a, b = ds[2]
    assert a.min() > 0.9 and b.max() < 0.1
    os.makedirs(tmp_path / "testA")
    with pytest.raises(DataError, match=r"testA: no images found \(expected ROOT/testA/"):
        data.UnalignedFolders(tmp_path, "test")
    (tmp_path / "trainB" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"trainB/empty\.png: cannot read image"):
        data.UnalignedFolders(tmp_path, "train")


def test_attribute_images(tmp_path):
    os.makedirs(tmp_path / "img_align_celeba")
    for i in range(2):
        _png(str(tmp_path / "img_align_celeba" / f"{i:06d}.jpg"), 10, 12, (200, 100, 0))
    (tmp_path / "list_attr_celeba.txt").write_text(
        "2\nBlack_Hair Blond_Hair Brown_Hair Male Young Smiling\n"
        "000000.jpg  1 -1 -1  1  1 -1\n000001.jpg -1  1 -1 -1  1  1\n")
    ds = data.AttributeImages(tmp_path, data.STARGAN_ATTRIBUTES, size=8)  # split="all"
    x, attrs = ds[1]
    assert x.shape == (3, 8, 8)
    assert attrs.tolist() == [0, 1, 0, 0, 1]  # StarGAN's five default attributes
    ds = data.AttributeImages(tmp_path, ["Smiling"], size=8)
    assert ds.labels.squeeze(1).tolist() == [0, 1]
    with pytest.raises(DataError, match="Bald"):
        data.AttributeImages(tmp_path, ["Bald"])
    (tmp_path / "list_attr_celeba.txt").write_text("3\nA B\n000000.jpg 1 -1\n")
    with pytest.raises(DataError, match="header says 3 images"):
        data.AttributeImages(tmp_path)
    (tmp_path / "list_attr_celeba.txt").write_text("1\nA B\n000000.jpg 1 yes\n")
    with pytest.raises(DataError, match="line 3"):
        data.AttributeImages(tmp_path)
    (tmp_path / "list_attr_celeba.txt").write_text("0\nA B\n")
    with pytest.raises(DataError, match="list_attr_celeba.txt: lists no images"):
        data.AttributeImages(tmp_path)
    (tmp_path / "list_attr_celeba.txt").write_text("2\nA B\n000000.jpg 1 -1\n000009.jpg 1 -1\n")
    with pytest.raises(DataError, match=r"000009\.jpg: cannot read image"):  # a listed image that is missing
        data.AttributeImages(tmp_path, ["A"])
    with pytest.raises(DataError, match=r"list_attr_celeba.txt: attribute list not found"):
        data.AttributeImages(tmp_path / "nowhere")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set.*digits"):
        data.load("cifar")


def test_download_needs_torchvision(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("no torchvision")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(DataError, match="torchvision is not installed"):
        data.load("mnist", root=tmp_path, download=True)


def test_attribute_splits_hold_out_the_last_share_of_the_list(tmp_path):
    os.makedirs(tmp_path / "images")
    rows = []
    for i in range(10):
        _png(str(tmp_path / "images" / f"{i + 1:06d}.jpg"), 10, 12, (25 * i, 0, 0))
        rows.append(f"{i + 1:06d}.jpg " + ("1 -1" if i % 2 else "-1 1"))
    (tmp_path / "list_attr_celeba.txt").write_text("10\nA B\n" + "\n".join(rows) + "\n")
    train = data.load("attributes", "train", root=tmp_path, resolution=8, attributes=["B"])
    test = data.load("attributes", "test", root=tmp_path, resolution=8, attributes=["B"])
    assert train.files == [f"{i:06d}.jpg" for i in range(1, 8)] and test.files == ["000008.jpg", "000009.jpg",
                                                                                     "000010.jpg"]
    assert test.labels.squeeze(1).tolist() == [0, 1, 0]  # rows 8-10 carry their own labels
    assert abs(test[2][0][0].mean().item() - 225 / 255) < 0.02  # and their own images
    with pytest.raises(DataError, match="split"):
        data.AttributeImages(tmp_path, split="validation")


CELEBA = os.path.join(ROOT, "..", "shared", "data", "celeba")


@pytest.mark.skipif(not os.path.isfile(os.path.join(CELEBA, "list_attr_celeba.txt")),
                    reason="the shared CelebA faces are not here")
def test_the_stargan_attributes_of_the_real_celeba_list():
    files, names, values = data.read_attribute_list(os.path.join(CELEBA, "list_attr_celeba.txt"),
                                                    data.STARGAN_ATTRIBUTES)
    assert names == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"] and files[0] == "000001.jpg"
    # 000001.jpg in CelebA's list: Brown_Hair, not Male, Young (columns 9, 10, 12, 21, 40 of the 40)
    assert values[0].tolist() == [0, 0, 1, 0, 1]
    test = data.load("attributes", "test", root=CELEBA, resolution=64)
    assert len(test) == round(0.3 * len(files)) and test.files[0] == files[len(files) - len(test)]
    x, c = test[0]
    assert x.shape == (3, 64, 64) and c.tolist() == values[len(files) - len(test)].tolist()
