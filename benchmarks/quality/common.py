"""What the model-quality scripts (benchmarks/quality/*.py) share: the real MNIST test set
from the shared data folder split 8,000 train / 2,000 held out, an evaluator classifier
trained on the 8,000 (cached), and QUALITY.md, where each script owns one section.

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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MNIST = os.path.join(os.path.dirname(ROOT), "shared", "data", "mnist")
QUALITY_MD = os.path.join(ROOT, "QUALITY.md")
CACHE = os.path.join(ROOT, "benchmarks", "results", "quality_cache")
N_TRAIN = 8000
HEADER = ("# Model quality\n\nEach section is written by its script in `benchmarks/` (command and the minutes "
          "it took on the machine named there). Data: the real MNIST test set (10,000 images) split into "
          f"the first {N_TRAIN:,} for training and the last {10000 - N_TRAIN:,} held out, unless a section "
          "says otherwise.\n")


def mnist_split(root=None):
    """(train, held_out) TensorDatasets of (image [1, 28, 28] in [0, 1], label)."""
    images, labels = mnist(root or DEFAULT_MNIST, "test").tensors
    return TensorDataset(images[:N_TRAIN], labels[:N_TRAIN]), TensorDataset(images[N_TRAIN:], labels[N_TRAIN:])


def mnist_evaluator(root=None, epochs=6):
    """The evaluator CNN trained on the 8,000 training images, and its held-out accuracy."""
    train, held_out = mnist_split(root)
    net = get_evaluator(f"mnist-quality-{N_TRAIN}-e{epochs}", *train.tensors, CACHE, epochs=epochs)
    return net, accuracy(net, *held_out.tensors)


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
