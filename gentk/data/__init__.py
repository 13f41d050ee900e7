"""Data sets for gentk's models.

``load(name, split, root=None, resolution=28)`` is what the trainer and CLI use; the
individual loaders are importable too. Every loader raises :class:`DataError` naming the
path and the expected layout when data is missing or malformed.
"""
from gentk.data.digits import MIN_RESOLUTION, digits
from gentk.data.errors import DataError
from gentk.data.folders import (STARGAN_ATTRIBUTES, AlignedFolder, AttributeImages, UnalignedFolders, UnpairedView,
                                read_attribute_list)
from gentk.data.mnist import binarized, mnist, read_idx
from gentk.data.synthetic import COLOUR_ATTRIBUTES, digits_colour, digits_edges, digits_thickness

# name -> (kind, needs a root, one-line description)
DATASETS = {
    "digits": ("labelled", False, "scikit-learn's handwritten digits, embedded (default)"),
    "mnist": ("labelled", True, "MNIST IDX files in --data-root: trains on train-*, tests on t10k-* (gzipped or not; a folder of only t10k-* is split 8,000 / 2,000)"),
    "digits-edges": ("paired", False, "digits paired with their edge maps (embedded)"),
    "digits-thickness": ("unpaired", False, "thin vs thick digits, unpaired (embedded)"),
    "digits-colour": ("attributes", False, "coloured digits with red/green/blue/thick attributes (embedded)"),
    "aligned": ("paired", True, "pix2pix A|B images in --data-root/{train,test}/ (no test/: the last 50 train "
                                "pairs are the test split)"),
    "aligned-unpaired": ("unpaired", True, "CycleGAN domains from an aligned folder: the A halves of the first half "
                                           "of the training pairs, the B halves of the second half; tests on pairs"),
    "unaligned": ("unpaired", True, "CycleGAN folders --data-root/trainA, trainB"),
    "attributes": ("attributes", True, "images + list_attr_celeba.txt in --data-root (CelebA's format); the "
                                       "list's last 30% are the test split"),
}


def load(name, split="train", root=None, resolution=28, seed=0, channels=None, attributes=None, download=False,
         whole_test=False):
    """The data set ``name`` (see DATASETS) for ``split`` ('train' or 'test'). ``download``:
    fetch MNIST into root with torchvision (only when it is installed); ``whole_test``: every
    image of a folder of only MNIST test files, not the last 2,000 (see gentk.data.mnist)."""
    if name not in DATASETS:
        raise DataError(name, "unknown data set", "one of " + ", ".join(DATASETS))
    if DATASETS[name][1] and root is None:
        raise DataError("--data-root", f"data set {name!r} needs a directory: {DATASETS[name][2]}")
    if not DATASETS[name][1] and resolution < MIN_RESOLUTION:  # the embedded sets: 8x8 digits scaled up
        raise DataError("--resolution", f"data set {name!r} needs a resolution of at least {MIN_RESOLUTION}, "
                                        f"got {resolution}")
    if name == "digits":
        return digits(split, resolution, seed)
    if name == "mnist":
        return mnist(root, split, resolution, download=download, whole_test=whole_test)
    if name == "digits-edges":
        return digits_edges(split, resolution, seed)
    if name == "digits-thickness":
        return digits_thickness(split, resolution, seed)
    if name == "digits-colour":
        return digits_colour(split, resolution, seed)
    if name == "aligned":
        return AlignedFolder(root, split, resolution, channels or 3)
    if name == "aligned-unpaired":
        pairs = AlignedFolder(root, split, resolution, channels or 3)
        return UnpairedView(pairs) if split == "train" else pairs
    if name == "unaligned":
        return UnalignedFolders(root, split, resolution, channels or 3)
    return AttributeImages(root, attributes or STARGAN_ATTRIBUTES, resolution, channels or 3, split=split)


__all__ = [
    "AlignedFolder", "AttributeImages", "COLOUR_ATTRIBUTES", "DATASETS", "DataError", "STARGAN_ATTRIBUTES",
    "UnalignedFolders", "UnpairedView", "binarized", "digits", "digits_colour", "digits_edges", "digits_thickness",
    "load", "mnist", "read_attribute_list", "read_idx",
]
