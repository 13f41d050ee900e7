"""Image folders in the formats the image-to-image models' papers used.

- aligned pairs (pix2pix): ``ROOT/SPLIT/*.png|jpg``, each file A and B side by side (A|B);
- unaligned domains (CycleGAN): ``ROOT/SPLITA/`` and ``ROOT/SPLITB/`` (``trainA``, ``trainB``);
- images with attributes (StarGAN, CelebA's format): ``ROOT/list_attr_celeba.txt`` (line 1 the
  image count, line 2 the attribute names, then ``file.jpg 1 -1 ...``) with the images in
  ``ROOT/img_align_celeba/``, ``ROOT/images/`` or ROOT itself.

Images come back as float tensors [C, size, size] in [0, 1] (RGB unless ``channels=1``).
"""
import os

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


def list_images(folder, layout):
    if not os.path.isdir(folder):
        raise DataError(folder, "no such directory", layout)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
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


def to_tensor(img, size):
    from PIL import Image

    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    array = np.asarray(img, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def center_square(img):
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


class AlignedFolder(Dataset):
    """pix2pix pairs: item i is (A, B), each [C, size, size], cut from one A|B image."""

    def __init__(self, root, split="train", size=256, channels=3):
        self.layout = ALIGNED_LAYOUT.format(split=split)
        self.files = list_images(os.path.join(str(root), split), self.layout)
        self.size, self.channels = size, channels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        path = self.files[index]
        img = open_image(path, self.channels)
        w, h = img.size
        if w < 2 or w % 2:
            raise DataError(path, f"image is {w}x{h}; an aligned pair needs an even width", self.layout)
        a, b = img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w, h))
        return to_tensor(a, self.size), to_tensor(b, self.size)


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


class AttributeImages(Dataset):
    """StarGAN data: item i is (image [C, size, size], attributes as a {0, 1} float vector).
    Images are centre-cropped to a square, then resized."""

    def __init__(self, root, attributes=None, size=128, channels=3, list_name="list_attr_celeba.txt"):
        root = str(root)
        self.files, self.attributes, self.labels = read_attribute_list(os.path.join(root, list_name), attributes)
        for candidate in (os.path.join(root, "img_align_celeba"), os.path.join(root, "images"), root):
            if os.path.isdir(candidate) and os.path.isfile(os.path.join(candidate, self.files[0])):
                self.image_dir = candidate
                break
        else:
            raise DataError(root, f"image {self.files[0]} (first in the list) not found", ATTR_LAYOUT)
        check_images([os.path.join(self.image_dir, f) for f in self.files])
        self.size, self.channels = size, channels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        img = open_image(os.path.join(self.image_dir, self.files[index]), self.channels)
        return to_tensor(center_square(img), self.size), self.labels[index]
