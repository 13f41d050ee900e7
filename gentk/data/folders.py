"""Image folders in the formats the image-to-image models' papers used.

- aligned pairs (pix2pix): ``ROOT/SPLIT/*.png|jpg``, each file A and B side by side (A|B); a
  ROOT with a ``train/`` folder and no ``test/`` one holds out its last ``HELD_OUT`` pairs (in
  natural order: 351.jpg ... 400.jpg of the CMP facades) as the test split. Training pairs get
  the pix2pix paper's jitter: both halves resized to 286/256 of the size, one random crop of
  the size and one random mirror for the pair;
- unaligned domains (CycleGAN): ``ROOT/SPLITA/`` and ``ROOT/SPLITB/`` (``trainA``, ``trainB``);
- images with attributes (StarGAN, CelebA's format): ``ROOT/list_attr_celeba.txt`` (line 1 the
  image count, line 2 the attribute names, then ``file.jpg 1 -1 ...``) with the images in
  ``ROOT/img_align_celeba/``, ``ROOT/images/`` or ROOT itself.

Images come back as float tensors [C, size, size] in [0, 1] (RGB unless ``channels=1``). Each
file is decoded once and kept in memory at the size it is cropped from (as uint8), so JPEG
decoding is not paid again every epoch.
"""
import os
import re
import sys

import numpy as np
import torch
from torch.utils.data import Dataset

from gentk.data.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
ALIGNED_LAYOUT = "ROOT/{split}/*.png|jpg, each image A and B side by side (width = 2 x height)"
UNALIGNED_LAYOUT = "ROOT/{split}A/*.png|jpg and ROOT/{split}B/*.png|jpg"
ATTR_LAYOUT = ("ROOT/list_attr_celeba.txt (count, attribute names, then 'file.jpg 1 -1 ...' lines) "
               "and the images in ROOT/img_align_celeba/, ROOT/images/ or ROOT")
STARGAN_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


HELD_OUT = 50  # pairs held out as the test split of an aligned folder that has no test/
JITTER = 286 / 256  # pix2pix: resize to 286, random crop of 256


def natural_key(path):
    """'2.jpg' before '10.jpg': numbers in a name compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", os.path.basename(path))]


def list_images(folder, layout):
    if not os.path.isdir(folder):
        raise DataError(folder, "no such directory", layout)
    files = sorted((os.path.join(folder, f) for f in os.listdir(folder)
                    if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")), key=natural_key)
    if not files:
        raise DataError(folder, "no images found", layout)
    check_images(files)
    return files


def check_images(files):
    """Fail now, naming the file, on one that is missing or is no image (only its header is
    read: a file damaged further in is named when its batch reads it)."""
    for path in files:
        with _open(path):
            pass


def _open(path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(path, f"cannot read image: {e}") from None


def open_image(path, channels):
    with _open(path) as img:
        try:
            return img.convert("L" if channels == 1 else "RGB")
        except OSError as e:
            raise DataError(path, f"cannot read image: {e}") from None


def resized(img, size):
    from PIL import Image

    return img if size is None or img.size == (size, size) else img.resize((size, size), Image.BICUBIC)


def to_uint8(img, size):
    """[C, size, size] uint8 tensor of a PIL image resized (bicubic) to size x size."""
    array = np.asarray(resized(img, size), dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def to_tensor(img, size):
    return to_uint8(img, size).float().div_(255)


def center_square(img):
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def aligned_files(root, split, held_out=None):
    """The pair files of ``split``: ROOT/SPLIT/*, or, for a ROOT with train/ and no test/, the
    training pairs split into all but the last ``held_out`` (train) and those (test)."""
    root, held_out = str(root), HELD_OUT if held_out is None else held_out
    if split in ("train", "test") and os.path.isdir(os.path.join(root, "train")) and \
            not os.path.isdir(os.path.join(root, "test")):
        files = list_images(os.path.join(root, "train"), ALIGNED_LAYOUT.format(split="train"))
        if len(files) > held_out:
            if root not in _told_held_out:
                _told_held_out.add(root)
                print(f"gentk: {root} has train/ and no test/: its last {held_out} pairs "
                      f"({os.path.basename(files[-held_out])} ... {os.path.basename(files[-1])}) are the test split",
                      file=sys.stderr)
            return files[:-held_out] if split == "train" else files[-held_out:]
    folder = os.path.join(root, split)
    if split == "test" and not os.path.isdir(folder) and not os.path.isdir(os.path.join(root, "train")) and \
            os.path.isdir(root) and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(root)):
        folder = root  # a folder of test pairs named directly
    return list_images(folder, ALIGNED_LAYOUT.format(split=split))


_told_held_out = set()


class AlignedFolder(Dataset):
    """pix2pix pairs: item i is (A, B), each [C, size, size], cut from one A|B image. ``jitter``
    (the training split's default): the paper's random resize-crop and mirror, the same for A and B."""
    paired = True  # A and B of an item belong together (a CycleGAN evaluation can score A -> B)

    def __init__(self, root, split="train", size=256, channels=3, jitter=None):
        self.layout = ALIGNED_LAYOUT.format(split=split)
        self.files = aligned_files(root, split)
        self.size, self.channels = size, channels
        self.jitter = split == "train" if jitter is None else jitter
        self.load_size = round(size * JITTER) if self.jitter else size
        self._decoded = {}

    def __len__(self):
        return len(self.files)

    def pair(self, index):
        """(A, B) of file ``index`` as uint8 [C, load size, load size], decoded once."""
        if index not in self._decoded:
            path = self.files[index]
            img = open_image(path, self.channels)
            w, h = img.size
            if w < 2 or w % 2:
                raise DataError(path, f"image is {w}x{h}; an aligned pair needs an even width", self.layout)
            self._decoded[index] = (to_uint8(img.crop((0, 0, w // 2, h)), self.load_size),
                                    to_uint8(img.crop((w // 2, 0, w, h)), self.load_size))
        return self._decoded[index]

    def __getitem__(self, index):
        a, b = self.pair(index)
        if self.jitter:
            top, left = (int(v) for v in torch.randint(self.load_size - self.size + 1, (2,)))
            a = a[:, top:top + self.size, left:left + self.size]
            b = b[:, top:top + self.size, left:left + self.size]
            if bool(torch.rand(()) < 0.5):
                a, b = a.flip(-1), b.flip(-1)
        return a.float().div_(255), b.float().div_(255)


class UnpairedView(Dataset):
    """CycleGAN on an aligned folder with no pair seen: domain A is the A halves of the first half
    of the pairs, domain B the B halves of the second half (CMP facades' 350 training pairs: photos
    of 1-175, label maps of 176-350), both read through the one AlignedFolder. Item i is (A[i], B[j]) with j drawn
    from torch's generator, as UnalignedFolders does."""

    def __init__(self, pairs):
        self.pairs, self.half = pairs, len(pairs) // 2
        if self.half == 0:
            raise DataError(pairs.layout, f"an unpaired view needs at least 2 pairs, got {len(pairs)}")

    def __len__(self):
        return len(self.pairs) - self.half

    def __getitem__(self, index):
        j = int(torch.randint(len(self.pairs) - self.half, ()))
        a = self.pairs[index % self.half][0]
        return a, self.pairs[self.half + j][1]


class UnalignedFolders(Dataset):
    """CycleGAN domains: item i is (A[i % len A], B[j]) with j drawn from torch's generator,
    so the pairing is random (and reproducible under ``torch.manual_seed``)."""

    def __init__(self, root, split="train", size=256, channels=3):
        layout = UNALIGNED_LAYOUT.format(split=split)
        self.files_a = list_images(os.path.join(str(root), split + "A"), layout)
        self.files_b = list_images(os.path.join(str(root), split + "B"), layout)
        self.size, self.channels = size, channels

    def __len__(self):
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, index):
        j = int(torch.randint(len(self.files_b), ()))
        a = to_tensor(open_image(self.files_a[index % len(self.files_a)], self.channels), self.size)
        b = to_tensor(open_image(self.files_b[j], self.channels), self.size)
        return a, b


def read_attribute_list(path, selected=None):
    """Parse a CelebA-style list: returns (file names, attribute names, {0,1} float tensor)."""
    if not os.path.isfile(path):
        raise DataError(path, "attribute list not found", ATTR_LAYOUT)
    with open(path) as f:
        lines = [line.split() for line in f if line.strip()]
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise DataError(path, "first line must be the image count, second the attribute names", ATTR_LAYOUT)
    names = lines[1]
    rows = lines[2:]
    if not rows:
        raise DataError(path, "lists no images", ATTR_LAYOUT)
    if int(lines[0][0]) != len(rows):
        raise DataError(path, f"header says {lines[0][0]} images but {len(rows)} rows follow", ATTR_LAYOUT)
    selected = list(selected) if selected else list(names)
    unknown = [a for a in selected if a not in names]
    if unknown:
        raise DataError(path, f"attribute(s) {', '.join(unknown)} not in the list "
                              f"(it has {', '.join(names)})", ATTR_LAYOUT)
    columns = [names.index(a) for a in selected]
    files, values = [], []
    for number, row in enumerate(rows, start=3):
        if len(row) != len(names) + 1 or any(v not in ("1", "-1", "0") for v in row[1:]):
            raise DataError(path, f"line {number}: expected a file name and {len(names)} values of 1 or -1",
                            ATTR_LAYOUT)
        files.append(row[0])
        values.append([1.0 if row[1 + c] == "1" else 0.0 for c in columns])
    return files, selected, torch.tensor(values, dtype=torch.float32).reshape(len(files), len(columns))


ATTR_HELD_OUT = 0.3  # share of an attribute list (its last images) held out as the test split


def attribute_split(count, split, held_out=ATTR_HELD_OUT):
    """The rows of ``split`` in a list of ``count`` images: 'train' all but the last
    ``held_out`` share, 'test' those, 'all' every row."""
    if split not in ("train", "test", "all"):
        raise DataError("split", f"expected 'train', 'test' or 'all', got {split!r}")
    cut = count - max(1, round(count * held_out)) if count > 1 else count
    return {"train": range(cut), "test": range(cut, count), "all": range(count)}[split]


class AttributeImages(Dataset):
    """StarGAN data: item i is (image [C, size, size], attributes as a {0, 1} float vector).
    Images are centre-cropped to a square (CelebA's 178x218 to 178x178, as the StarGAN code
    does), then resized (bicubic); each is decoded once and kept as uint8. ``split``: 'train'
    is the list's first 70%, 'test' its last 30% (CelebA's 5,000 here: 000001-003500 and
    003501-005000), 'all' the whole list."""

    def __init__(self, root, attributes=None, size=128, channels=3, list_name="list_attr_celeba.txt", split="all"):
        root = str(root)
        files, self.attributes, labels = read_attribute_list(os.path.join(root, list_name), attributes)
        rows = attribute_split(len(files), split)
        if not rows:
            raise DataError(os.path.join(root, list_name), f"lists {len(files)} image(s): too few for a {split} split",
                            ATTR_LAYOUT)
        self.files, self.labels = files[rows.start:rows.stop], labels[rows.start:rows.stop]
        for candidate in (os.path.join(root, "img_align_celeba"), os.path.join(root, "images"), root):
            if os.path.isdir(candidate) and os.path.isfile(os.path.join(candidate, self.files[0])):
                self.image_dir = candidate
                break
        else:
            raise DataError(root, f"image {self.files[0]} (first in the list) not found", ATTR_LAYOUT)
        check_images([os.path.join(self.image_dir, f) for f in self.files])
        self.size, self.channels = size, channels
        self._decoded = {}

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        if index not in self._decoded:
            img = open_image(os.path.join(self.image_dir, self.files[index]), self.channels)
            self._decoded[index] = to_uint8(center_square(img), self.size)
        return self._decoded[index].float().div_(255), self.labels[index]
