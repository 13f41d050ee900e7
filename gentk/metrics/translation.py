"""Image-to-image metrics: PSNR and SSIM of outputs against real images, and the scores of
predicted label maps drawn in a colour palette.

Label maps (the facades' B side) are colour images; each pixel is read as the class of the
nearest palette colour (``nearest_class``). ``derive_palette`` finds a palette in the maps
themselves: k-means over the pixels of flat regions (JPEG smears the colours along class
boundaries, so boundary pixels are left out), started from the most frequent colours that are
at least 60 apart. ``FACADES_PALETTE`` is what it gives on the CMP facades training maps 1-350
(the pairs gentk trains on; 351-400 are its validation pairs). The colours come close to a jet
colour map over the 12 CMP classes; the classes are numbered here by the order of the colours
(sorted by red, green, blue), not by the CMP class ids, which the maps do not carry.
"""
import torch
import torch.nn.functional as F

#: RGB (0-255) of the 12 classes of the CMP facades label maps, and each one's share of the
#: flat pixels of training maps 1-350 (derive_palette on them)
FACADES_PALETTE = (
    (0, 0, 222), (1, 48, 253), (2, 206, 255), (3, 126, 254), (35, 253, 227), (112, 253, 145),
    (173, 0, 2), (192, 254, 64), (249, 2, 3), (253, 80, 2), (253, 240, 4), (254, 159, 3),
)
PALETTES = {"facades": FACADES_PALETTE}


def psnr(output, target):
    """Peak signal-to-noise ratio per image, in dB, for images in [0, 1]."""
    mse = (output - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def ssim(output, target, window=11, sigma=1.5):
    """Structural similarity per image (Wang et al. 2004: an 11x11 Gaussian window of sd 1.5,
    K1 = 0.01, K2 = 0.03, data range 1), averaged over pixels and channels; images in [0, 1],
    [N, C, H, W]. Only windows that fit inside the image count (no padding)."""
    if output.shape != target.shape or output.dim() != 4:
        raise ValueError(f"ssim: expected two [N, C, H, W] tensors of one shape, got {tuple(output.shape)} and "
                         f"{tuple(target.shape)}")
    dtype = torch.float64 if output.dtype == torch.float64 else torch.float32
    x, y = output.to(dtype), target.to(device=output.device, dtype=dtype)
    size = min(window, x.shape[-1], x.shape[-2])
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    channels = x.shape[1]
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, size, size).to(device=x.device, dtype=dtype)

    def blur(t):
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return score.flatten(1).mean(1)


def _palette_tensor(palette, device=None):
    return torch.as_tensor(palette, dtype=torch.float32, device=device) / 255


def nearest_class(images, palette):
    """[N, H, W] class index of each pixel of RGB images [N, 3, H, W] in [0, 1]: its nearest colour."""
    colours = _palette_tensor(palette, images.device)
    pixels = images.float().permute(0, 2, 3, 1)
    distance = (pixels[..., None, :] - colours).pow(2).sum(-1)
    return distance.argmin(-1)


def flat_pixels(images, tolerance=10 / 255):
    """The RGB pixels [M, 3] of images [N, 3, H, W] whose four neighbours all have about their colour."""
    x = images.float()
    spread = torch.zeros(x.shape[0], x.shape[2], x.shape[3], device=x.device)
    for shift, dim in ((1, 2), (-1, 2), (1, 3), (-1, 3)):
        spread = torch.maximum(spread, (x - x.roll(shift, dims=dim)).abs().amax(1))
    return x.permute(0, 2, 3, 1)[spread < tolerance]


def derive_palette(label_maps, classes, separation=60, iterations=10, max_pixels=2_000_000):
    """A palette of ``classes`` RGB colours (0-255 integers, sorted) found in label maps
    [N, 3, H, W] in [0, 1] (see the module's docstring)."""
    pixels = flat_pixels(label_maps) * 255
    if len(pixels) > max_pixels:
        pixels = pixels[torch.linspace(0, len(pixels) - 1, max_pixels).long()]
    quantized = (pixels / 8).round().long()
    keys = (quantized[:, 0] * 64 + quantized[:, 1]) * 64 + quantized[:, 2]
    values, counts = torch.unique(keys, return_counts=True)
    colours = torch.stack([values // 4096, (values // 64) % 64, values % 64], 1).float() * 8
    centres = []
    for k in counts.argsort(descending=True).tolist():
        if all(float((colours[k] - c).norm()) > separation for c in centres):
            centres.append(colours[k])
            if len(centres) == classes:
                break
    if len(centres) < classes:
        raise ValueError(f"derive_palette: found only {len(centres)} colours at least {separation} apart in the "
                         f"flat regions of the maps, not {classes}")
    centres = torch.stack(centres)
    for _ in range(iterations):
        assignment = torch.cdist(pixels, centres).argmin(1)
        centres = torch.stack([pixels[assignment == j].mean(0) if bool((assignment == j).any()) else centres[j]
                               for j in range(classes)])
    return tuple(sorted(tuple(int(v) for v in c) for c in centres.round().clamp(0, 255).tolist()))


def label_map_scores(predicted, target, classes):
    """Scores of predicted class maps against target ones (both [N, H, W] integer tensors), the
    measures of the pix2pix paper's photo -> labels table: per-pixel accuracy, per-class accuracy
    (the mean over classes present in the targets of each class's recall) and class IoU (the mean
    over classes present in either of intersection / union), plus each class's IoU."""
    predicted, target = predicted.flatten().long(), target.flatten().long()
    confusion = torch.bincount(target * classes + predicted, minlength=classes * classes).view(classes, classes)
    confusion = confusion.double()
    true_positive = confusion.diagonal()
    in_target, in_predicted = confusion.sum(1), confusion.sum(0)
    union = in_target + in_predicted - true_positive
    present = in_target > 0
    iou = torch.where(union > 0, true_positive / union.clamp_min(1), torch.full_like(union, float("nan")))
    return {"pixel_accuracy": (true_positive.sum() / confusion.sum()).item(),
            "class_accuracy": (true_positive[present] / in_target[present]).mean().item(),
            "class_iou": iou[union > 0].mean().item(),
            "iou_by_class": iou.tolist()}


class TranslationScores:
    """Accumulates, batch by batch, the scores of outputs against targets (images in [0, 1]):
    mean L1, PSNR and SSIM, and with a ``palette`` (a name of PALETTES or RGB colours) the
    label-map scores of the outputs read as class maps."""

    def __init__(self, palette=None, prefix="test_"):
        self.palette = PALETTES.get(palette, palette) if palette not in (None, "none") else None
        self.prefix = prefix
        self.sums, self.count, self.maps = {"l1": 0.0, "psnr_db": 0.0, "ssim": 0.0}, 0, ([], [])

    def add(self, output, target):
        output, target = output.float().cpu(), target.float().cpu()
        self.sums["l1"] += (output - target).abs().flatten(1).mean(1).sum().item()
        self.sums["psnr_db"] += psnr(output, target).sum().item()
        self.sums["ssim"] += ssim(output, target).sum().item()
        self.count += len(output)
        if self.palette is not None:
            self.maps[0].append(nearest_class(output, self.palette).to(torch.uint8))
            self.maps[1].append(nearest_class(target, self.palette).to(torch.uint8))

    def result(self):
        out = {self.prefix + k: v / max(self.count, 1) for k, v in self.sums.items()}
        if self.palette is not None and self.count:
            scores = label_map_scores(torch.cat(self.maps[0]), torch.cat(self.maps[1]), len(self.palette))
            out.update({self.prefix + k: v for k, v in scores.items() if k != "iou_by_class"})
        return out
