"""Networks the image-to-image models share, built from gentk's fused instance-norm blocks.

- :class:`ResnetGenerator`: CycleGAN's generator (reflect padding, InstanceNorm without
  affine or running statistics, conv bias) and StarGAN's (zero padding, InstanceNorm with
  affine weights and running statistics, no conv bias, 4x4 (de)convolutions): conv7, two
  stride-2 downsamplings, ``n_blocks`` :class:`gentk.nn.ResidualBlock`, two upsamplings, conv7, tanh.
- :class:`PatchDiscriminator`: pix2pix / CycleGAN's PatchGAN (``n_layers=3``: 70x70 patches).
- :class:`UnetGenerator`: pix2pix's U-Net (skips between mirrored levels, dropout in the
  decoder levels just outside the bottleneck).

Every norm + activation pair is one :class:`gentk.nn.InstanceNormAct2d` (and the last norm of
each residual block carries the skip) when ``fused=True``; ``fused=False`` builds the same
network from plain ``torch.nn`` layers with identical state_dict keys, so weights move
between the two (the tests compare their outputs).

Images enter and leave the networks in [-1, 1] (tanh output); :func:`gentk.models.base.to_model_range`
/ :func:`~gentk.models.base.to_image_range` convert from and to the data sets' [0, 1].
"""
import contextlib
import math

import torch
from torch import nn

from gentk.nn import InstanceNorm2d, InstanceNormAct2d, ResidualBlock

NORMS = ("batch", "instance")


def default_width(resolution, paper=64, small=16):
    """The papers' 64 base channels from 128 px up; ``small`` below (CPU-sized runs at 28-32 px)."""
    return paper if resolution >= 128 else small


@contextlib.contextmanager
def paper_test_mode(net):
    """Run an eval-mode ``net`` as the pix2pix paper tests: batch norm on the statistics of the
    batch it is given (per image, for a batch of one) and dropout on. Batch norm's running
    statistics and its batch counter stay untouched."""
    saved = [(m, m.training, getattr(m, "track_running_stats", None)) for m in net.modules()
             if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout))]
    for m, _, _ in saved:
        m.training = True
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
    try:
        yield net
    finally:
        for m, training, track in saved:
            m.training = training
            if track is not None:
                m.track_running_stats = track


class NormAct(nn.Module):
    """norm then activation (``relu``, ``leaky_relu`` or None). ``norm``: ``instance``
    (gentk's fused InstanceNormAct2d, or nn.InstanceNorm2d + activation when not fused),
    ``batch`` (nn.BatchNorm2d + activation) or ``none``. The state_dict has the norm's
    keys under ``norm.`` whichever way it is built."""

    def __init__(self, channels, norm="instance", activation="relu", negative_slope=0.2, affine=False,
                 track_running_stats=False, fused=True):
        super().__init__()
        self.fused = fused and norm == "instance"
        if norm == "instance":
            if self.fused and activation is not None:
                self.norm = InstanceNormAct2d(channels, affine=affine, track_running_stats=track_running_stats,
                                              activation=activation, negative_slope=negative_slope)
            elif self.fused:
                self.norm = InstanceNorm2d(channels, affine=affine, track_running_stats=track_running_stats)
            else:
                self.norm = nn.InstanceNorm2d(channels, affine=affine, track_running_stats=track_running_stats)
        elif norm == "batch":
            self.norm = nn.BatchNorm2d(channels)
        elif norm == "none":
            self.norm = nn.Identity()
        else:
            raise ValueError(f"norm must be one of batch, instance, none; got {norm!r}")
        if self.fused or activation is None:
            self.act = nn.Identity()
        elif activation == "relu":
            self.act = nn.ReLU()
        else:
            self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x):
        return self.act(self.norm(x))


class PlainResidualBlock(nn.Module):
    """:class:`gentk.nn.ResidualBlock` from plain torch layers (same state_dict keys)."""

    def __init__(self, channels, padding_mode="reflect", affine=False, track_running_stats=False, conv_bias=True):
        super().__init__()
        pad = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}.get(padding_mode)
        conv_pad = 1 if pad is None else 0
        self.pad1 = nn.Identity() if pad is None else pad(1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=conv_pad, bias=conv_bias)
        self.norm1 = nn.InstanceNorm2d(channels, affine=affine, track_running_stats=track_running_stats)
        self.act = nn.ReLU()
        self.pad2 = nn.Identity() if pad is None else pad(1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=conv_pad, bias=conv_bias)
        self.norm2 = nn.InstanceNorm2d(channels, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x):
        h = self.act(self.norm1(self.conv1(self.pad1(x))))
        return x + self.norm2(self.conv2(self.pad2(h)))


class ResnetGenerator(nn.Module):
    """style ``cyclegan`` (Zhu et al. 2017) or ``stargan`` (Choi et al. 2018); see the module
    docstring. ``in_channels`` includes StarGAN's tiled label channels."""

    def __init__(self, in_channels, out_channels, width=64, n_blocks=9, style="cyclegan", fused=True, n_down=2):
        super().__init__()
        if style not in ("cyclegan", "stargan"):
            raise ValueError(f"ResnetGenerator: style must be 'cyclegan' or 'stargan', got {style!r}")
        stargan = style == "stargan"
        norm = dict(affine=stargan, track_running_stats=stargan, fused=fused)
        bias = not stargan
        layers = []
        if stargan:
            layers += [nn.Conv2d(in_channels, width, 7, 1, 3, bias=False)]
        else:
            layers += [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=True)]
        layers += [NormAct(width, "instance", "relu", **norm)]
        channels = width
        for _ in range(n_down):
            down = nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=False) if stargan else \
                nn.Conv2d(channels, channels * 2, 3, 2, 1, bias=True)
            layers += [down, NormAct(channels * 2, "instance", "relu", **norm)]
            channels *= 2
        block = ResidualBlock if fused else PlainResidualBlock
        layers += [block(channels, padding_mode="zero" if stargan else "reflect", affine=stargan,
                         track_running_stats=stargan, conv_bias=bias) for _ in range(n_blocks)]
        for _ in range(n_down):
            up = nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False) if stargan else \
                nn.ConvTranspose2d(channels, channels // 2, 3, 2, 1, output_padding=1, bias=True)
            layers += [up, NormAct(channels // 2, "instance", "relu", **norm)]
            channels //= 2
        if stargan:
            layers += [nn.Conv2d(channels, out_channels, 7, 1, 3, bias=False)]
        else:
            layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7)]
        layers += [nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def patch_layers(resolution):
    """PatchGAN depth: the paper's 3 (70x70 patches) from 64 px up; 2 (34x34) below, where a
    70x70 patch is the whole image."""
    return 3 if resolution >= 64 else 2


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): C64-C128-C256-C512 for ``n_layers=3`` (4x4 convs,
    LeakyReLU 0.2, no norm on the first), then a 1-channel conv: one logit per patch."""

    def __init__(self, in_channels, width=64, n_layers=3, norm="instance", fused=True):
        super().__init__()
        bias = norm != "batch"
        layers = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels = width
        for n in range(1, n_layers + 1):
            out = width * min(2 ** n, 8)
            layers += [nn.Conv2d(channels, out, 4, 2 if n < n_layers else 1, 1, bias=bias),
                       NormAct(out, norm, "leaky_relu", 0.2, fused=fused)]
            channels = out
        layers += [nn.Conv2d(channels, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class _UnetLevel(nn.Module):
    """One U-Net level: down (conv, norm + LeakyReLU 0.2), the inner levels, up (ReLU on the
    concatenation, transposed conv, norm, dropout). The skip carries the activated encoder
    features, as the reference implementation's in-place LeakyReLU makes it do."""

    def __init__(self, outer, inner, submodule=None, *, in_channels=None, out_channels=None, norm="batch",
                 dropout=0.0, outermost=False, fused=True):
        super().__init__()
        in_channels = in_channels or outer
        bias = norm != "batch"
        self.outermost, self.submodule = outermost, submodule
        self.down = nn.Conv2d(in_channels, inner, 4, 2, 1, bias=bias)
        innermost = submodule is None
        # no norm on the outermost encoder layer and on the bottleneck (as in the paper)
        self.down_act = NormAct(inner, "none" if outermost or innermost else norm, "leaky_relu", 0.2, fused=fused)
        up_in = inner if innermost else inner * 2
        if outermost:
            self.up = nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1)
            self.up_act = nn.Tanh()
        else:
            self.up = nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=bias)
            # the next level's ReLU is fused here: relu(cat(skip, u)) = cat(relu(skip), relu(u))
            self.up_act = NormAct(outer, norm, "relu", fused=fused)
        self.dropout = nn.Dropout(dropout) if dropout and not outermost else nn.Identity()

    def forward(self, x):
        h = self.down_act(self.down(x))
        if self.submodule is not None:
            h = torch.cat([torch.relu(h), self.submodule(h)], 1)
        else:
            h = torch.relu(h)
        return self.dropout(self.up_act(self.up(h)))


class UnetGenerator(nn.Module):
    """pix2pix's U-Net: ``depth`` stride-2 levels down to 1x1 at a power-of-two size
    (C64-C128-C256-C512-C512...), mirrored decoder with skips; dropout 0.5 in the three
    decoder levels after the bottleneck's (CD512 x3 at 256 px). Inputs whose side is not a
    multiple of 2**depth are zero-padded to it and the output cropped back."""

    def __init__(self, in_channels, out_channels, resolution, width=64, norm="batch", dropout=0.5, fused=True):
        super().__init__()
        self.depth = max(2, math.ceil(math.log2(resolution)))
        level = None
        for i in range(self.depth, 0, -1):  # i = 1 outermost ... depth innermost
            outer, inner = width * min(2 ** (i - 2), 8) if i > 1 else width, width * min(2 ** (i - 1), 8)
            drop = dropout if self.depth - 4 < i < self.depth else 0.0
            level = _UnetLevel(outer, inner, level, in_channels=in_channels if i == 1 else None,
                               out_channels=out_channels, norm=norm, dropout=drop, outermost=i == 1, fused=fused)
        self.model = level

    def forward(self, x):
        side = 2 ** self.depth
        h, w = x.shape[-2:]
        if h == w == side:
            return self.model(x)
        pad = (0, (-w) % side, 0, (-h) % side)
        return self.model(nn.functional.pad(x, pad))[..., :h, :w]


class StarDiscriminator(nn.Module):
    """StarGAN's D: ``n_layers`` 4x4 stride-2 convs (width doubling, LeakyReLU 0.01, no norm),
    a 3x3 source head (a patch map of real/fake scores) and a domain-classification head
    whose kernel covers the remaining map (one logit per attribute)."""

    def __init__(self, in_channels, c_dim, resolution, width=64, n_layers=None):
        super().__init__()
        if n_layers is None:  # halve while the map stays at least 2x2: 6 layers at 128 px (the paper's)
            n_layers = max(1, int(math.floor(math.log2(resolution / 2))))
        side = resolution >> n_layers
        if side < 1:
            raise ValueError(f"StarDiscriminator: {n_layers} layers leave no pixels of a {resolution} px image")
        layers, channels = [], in_channels
        for n in range(n_layers):
            out = width * 2 ** n
            layers += [nn.Conv2d(channels, out, 4, 2, 1), nn.LeakyReLU(0.01)]
            channels = out
        self.main = nn.Sequential(*layers)
        self.conv_src = nn.Conv2d(channels, 1, 3, 1, 1, bias=False)
        self.conv_cls = nn.Conv2d(channels, c_dim, side, bias=False)

    def forward(self, x):
        h = self.main(x)
        return self.conv_src(h), self.conv_cls(h).flatten(1)


@contextlib.contextmanager
def instance_statistics(net):
    """Normalize with each image's own statistics (as in training) even in eval mode, leaving
    the running statistics untouched: what StarGAN's reference test does (it never switches
    G to eval mode). Running averages pool images whose tiled label channels differ, and
    translations made with them fall apart."""
    saved = []
    for m in net.modules():
        if isinstance(m, nn.InstanceNorm2d) and m.track_running_stats:
            saved.append((m, m.training, m.momentum))
            m.training, m.momentum = True, 0.0
    try:
        yield net
    finally:
        for m, training, momentum in saved:
            m.training, m.momentum = training, momentum


def batches(dataset, batch_size=256, max_examples=None):
    """(tensors...) batches of a data set in order (TensorDataset slices, or collated items)."""
    from torch.utils.data._utils.collate import default_collate

    n = len(dataset) if max_examples is None else min(len(dataset), max_examples)
    for start in range(0, n, batch_size):
        index = range(start, min(n, start + batch_size))
        if hasattr(dataset, "tensors"):
            yield tuple(t[start:index.stop] for t in dataset.tensors)
        else:
            yield default_collate([dataset[i] for i in index])


def grid_rows(*rows):
    """Stack rows of images (each [k, C, H, W], the same k) into one tensor for a grid of
    ``nrow=k``; 1-channel rows are expanded when others are RGB."""
    channels = max(r.shape[1] for r in rows)
    return torch.cat([r.expand(-1, channels, -1, -1) if r.shape[1] != channels else r for r in rows]).cpu()


def translation_grid(rows_of, batch, n=None, per_row=8):
    """A grid of ``rows_of(chunk) -> [input, output, (target) ...]`` for consecutive chunks of
    ``per_row`` examples of ``batch``: returns (images, nrow)."""
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    n = len(first) if n is None else min(n, len(first))
    per_row = max(1, min(per_row, n))
    n -= n % per_row
    images = []
    for start in range(0, n, per_row):
        chunk = [t[start:start + per_row] for t in batch] if isinstance(batch, (tuple, list)) else \
            batch[start:start + per_row]
        images.append(grid_rows(*rows_of(chunk)))
    return torch.cat(images), per_row


class ExampleInputs:
    """The first training inputs a model saw (up to 64), kept so ``sample(n)`` without inputs
    (the trainer's sample grids) has something to translate; saved in extra_state."""

    limit = 64

    def __init__(self):
        self.tensors = None

    def remember(self, *tensors):
        if self.tensors is None:
            self.tensors = tuple(t[:self.limit].detach().clone() for t in tensors)

    def take(self, n, device, what):
        if self.tensors is None:
            raise ValueError(f"{what}: sample() translates images: pass inputs=, or train at least one step first")
        index = torch.arange(n) % len(self.tensors[0])
        return tuple(t[index].to(device) for t in self.tensors)

    def state(self):
        return {} if self.tensors is None else {"example_inputs": list(self.tensors)}

    def load(self, state):
        saved = state.get("example_inputs")
        self.tensors = tuple(saved) if saved is not None else None
