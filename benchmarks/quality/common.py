"""What the model-quality scripts (benchmarks/quality/*.py) share: MNIST on the papers' protocol
(the 60,000 training images train, the 10,000 test images report), an evaluator classifier
trained on the 60,000 only (cached), the weights files each run leaves in
benchmarks/results/weights/, and QUALITY.md, where each script owns one section.

    python -m benchmarks.quality.<name> [--mnist-root DIR]   # writes its section of QUALITY.md
"""
import os
import re
import time

import torch
from torch.utils.data import TensorDataset

from gentk.data import mnist
from gentk.metrics import accuracy, get_evaluator
from gentk.profile import cpu_model
from gentk.train.checkpoint import export_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MNIST = os.path.join(os.path.dirname(ROOT), "shared", "data", "mnist")
QUALITY_MD = os.path.join(ROOT, "QUALITY.md")
CACHE = os.path.join(ROOT, "benchmarks", "results", "quality_cache")
WEIGHTS = os.path.join(ROOT, "benchmarks", "results", "weights")
IMAGES = os.path.join(ROOT, "docs", "images")
HEADER = ("# Model quality\n\nEach section is written by its script in `benchmarks/quality/` (command, budget and "
          "the minutes it took on the machine named there). Data: MNIST on the papers' protocol, the 60,000 "
          "training images for training and the 10,000 test images for every figure, unless a section says "
          "otherwise. Nothing was tuned on the test images.\n")
MNIST_DATA = {"name": "mnist", "root": None, "resolution": 28}  # the data a weights file names


def mnist_protocol(root=None):
    """The papers' protocol: (the 60,000 training images, the 10,000 test images) as TensorDatasets
    of (image [1, 28, 28] in [0, 1], label)."""
    root = root or DEFAULT_MNIST
    return mnist(root, "train"), mnist(root, "test")


def mnist_validation_split(root=None, validation=10_000):
    """For exploratory runs, which must not see the test images: (the first 50,000 training images,
    the last 10,000 as the validation set)."""
    images, labels = mnist(root or DEFAULT_MNIST, "train").tensors
    n = len(images) - validation
    return TensorDataset(images[:n], labels[:n]), TensorDataset(images[n:], labels[n:])


def mnist_evaluator(root=None, epochs=8):
    """The evaluator CNN trained on the 60,000 training images only, and its test accuracy."""
    train, test = mnist_protocol(root)
    net = get_evaluator(f"mnist-train{len(train)}-e{epochs}-decay", *train.tensors, CACHE, epochs=epochs,
                        lr_decay=True)
    return net, accuracy(net, *test.tensors)


def keep_weights(checkpoint, name, limit_mib=5):
    """benchmarks/results/weights/NAME.pt: the run's networks for sampling and evaluation and its
    config (gentk.train.checkpoint.export_weights), in float16 when float32 would pass
    ``limit_mib``; the file's size in MiB and whether it is float16."""
    path = os.path.join(WEIGHTS, f"{name}.pt")
    export_weights(checkpoint, path, data=MNIST_DATA)
    half = os.path.getsize(path) > limit_mib * 2**20
    if half:
        export_weights(checkpoint, path, half=True, data=MNIST_DATA)
    return os.path.getsize(path) / 2**20, half


def machine():
    return f"{os.cpu_count()}-core {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads"


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.minutes = (time.perf_counter() - self.start) / 60

    def __str__(self):
        return f"{self.minutes:.1f} min"


def write_section(name, markdown):
    """Replace (or append) this script's section of QUALITY.md, leaving the others alone."""
    start, end = f"<!-- quality:{name} -->", f"<!-- /quality:{name} -->"
    text = open(QUALITY_MD).read() if os.path.isfile(QUALITY_MD) else HEADER
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    with open(QUALITY_MD, "w") as f:
        f.write(text)
