"""Benchmark cases of the instance-norm family: instance norm + ReLU (the CycleGAN /
pix2pix layer) in contiguous and channels_last memory formats, against F.instance_norm
followed by F.relu (eager and torch.compile)."""
import torch

import gentk
from benchmarks.harness import Case
from gentk.ops.reference import instance_norm as ref

SHAPES = [(8, 256, 64, 64), (1, 64, 256, 256)]
FORMATS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}


def _inputs(shape, fmt):
    def make(device, dtype):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g, dtype=dtype).to(device).contiguous(memory_format=fmt)
        return {"x": x.requires_grad_()}

    return make


def _bytes(inputs, mode):
    # fwd: read x, write y; bwd: read x, grad_y, write grad_x (the statistics are negligible)
    elems = inputs["x"].numel() * inputs["x"].element_size()
    return {"forward": 2 * elems, "backward": 3 * elems, "forward+backward": 5 * elems}[mode]


def cases(dtype=torch.float32):
    out = []
    for shape in SHAPES:
        for fmt_name, fmt in FORMATS.items():
            out.append(Case(
                "instance_norm", "instance_norm_relu", "x".join(map(str, shape)) + " " + fmt_name,
                _inputs(shape, fmt),
                reference=lambda x: ref.instance_norm(x, activation="relu"),
                gentk=lambda x: gentk.instance_norm(x, activation="relu"),
                dtype=dtype,
                bytes_moved=_bytes,
            ))
    return out
