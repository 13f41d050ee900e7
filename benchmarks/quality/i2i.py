"""Quality of the image-to-image models on their papers' data: pix2pix and CycleGAN on the CMP
facades, StarGAN on CelebA. Each model trains through the command a user runs (`gentk train`),
is scored through `gentk eval` where that is what a user would read, and writes its own
section of QUALITY.md and its picture in docs/images.

    python -m benchmarks.quality.i2i [--models pix2pix,cyclegan,stargan] [--facades-root DIR]
                                     [--celeba-root DIR] [--steps N]

- facades: the 400 training pairs of ``--facades-root``/train (photo A | label map B); with no
  test/ folder gentk holds out the last 50 (351-400) as the test split, and every figure here
  is on those 50 validation pairs. pix2pix runs both ways: labels -> photo (L1, PSNR, SSIM
  against the real photo, next to the mean training photo as a baseline) and photo -> labels
  (per-pixel and per-class accuracy and class IoU, each pixel read as the nearest colour of
  gentk.metrics.translation.FACADES_PALETTE, next to the majority class). CycleGAN trains on
  ``aligned-unpaired`` (photos of pairs 1-175, label maps of 176-350: no pair seen) and is
  scored photo -> labels like pix2pix.
- CelebA: the list's first 3,500 images train StarGAN (gentk's train split of ``attributes``);
  of the 1,500 held out, 3,501-4,500 train an attribute classifier and 4,501-5,000 are the
  evaluation images, each translated to each of the five target domains.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.quality.common import IMAGES, ROOT, Stopwatch, machine, write_section
from gentk.data import STARGAN_ATTRIBUTES, AlignedFolder, AttributeImages
from gentk.metrics.translation import FACADES_PALETTE, TranslationScores, label_map_scores, nearest_class
from gentk.models.image_nets import batches
from gentk.train import save_grid
from gentk.train.checkpoint import model_from_checkpoint

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
RUNS = os.path.join(ROOT, "runs", "quality_i2i")
#: each run's budget: what fits ~20 minutes of one core of the 2-core CPU. The paper's
#: networks at 128 px (width 64) take 0.75 s a pix2pix step and 3.6 s a CycleGAN step here, so
#: the widths are cut to buy epochs; `--resolution 256 --width 64 --d-width 64` is the paper's.
SETTINGS = {
    "pix2pix": dict(resolution=128, batch_size=1, steps=6000, options=["--width", "32", "--d-width", "32"]),
    "cyclegan": dict(resolution=128, batch_size=1, steps=3000, options=["--width", "16", "--d-width", "32"]),
    "stargan": dict(resolution=64, batch_size=16, steps=4000, options=[]),
}
DIRECTIONS = {"BtoA": "labels -> photo", "AtoB": "photo -> labels"}
CLASSIFIER_TRAIN = 1000  # of StarGAN's held-out images, the first train the attribute classifier


def _pct(x):
    return f"{100 * x:.1f}%"


def gentk(*argv):
    """Run a gentk command as a user would, on one thread, failing loudly."""
    shown = "gentk " + " ".join(argv).replace(SHARED, "../shared/data").replace(ROOT + os.sep, "")
    print("$ " + shown, flush=True)
    subprocess.run([sys.executable, "-m", "gentk.cli", *argv], check=True, cwd=ROOT)
    return shown


def train(model, run, data, root, settings, steps, extra=()):
    return gentk("train", model, "--data", data, "--data-root", root, "--resolution", str(settings["resolution"]),
                 "--batch-size", str(settings["batch_size"]), "--steps", str(steps), "--threads", "1",
                 "--out", run, "--overwrite", "--no-progress", "--no-eval", "--log-every", "100",
                 "--sample-every", str(steps), "--checkpoint-every", str(steps), "--keep", "1",
                 *settings["options"], *extra)


def evaluate(run, data, root, name="eval", extra=()):
    out = os.path.join(run, f"{name}.json")
    command = gentk("eval", run, "--data", data, "--data-root", root, "--out", out, *extra)
    with open(out) as f:
        return json.load(f), command


def relative(path):
    return os.path.relpath(path, ROOT)


# --- facades baselines ------------------------------------------------------------------------
def facade_baselines(root, resolution):
    """The mean training photo scored against every test photo, and the majority class of the
    training label maps predicted for every pixel of every test map."""
    train = AlignedFolder(root, "train", resolution, jitter=False)
    test = AlignedFolder(root, "test", resolution)
    photo_sum, class_counts = 0.0, torch.zeros(len(FACADES_PALETTE), dtype=torch.long)
    for a, b in batches(train, 50):
        photo_sum = photo_sum + a.double().sum(0)
        class_counts += torch.bincount(nearest_class(b, FACADES_PALETTE).flatten(), minlength=len(FACADES_PALETTE))
    mean_photo = (photo_sum / len(train)).float()
    majority = int(class_counts.argmax())
    photo_scores, targets = TranslationScores(), []
    for a, b in batches(test, 50):
        photo_scores.add(mean_photo.expand_as(a), a)
        targets.append(nearest_class(b, FACADES_PALETTE))
    targets = torch.cat(targets)
    labels = label_map_scores(torch.full_like(targets, majority), targets, len(FACADES_PALETTE))
    return photo_scores.result(), {"test_" + k: v for k, v in labels.items()}, majority, class_counts


def facade_grid(run, root, resolution, path, direction="AtoB", n=6):
    """inputs | outputs | targets of the first n test pairs, one row each."""
    model, _ = model_from_checkpoint(run)
    model.eval()
    a, b = next(iter(batches(AlignedFolder(root, "test", resolution), n)))
    source, target = (a, b) if direction == "AtoB" else (b, a)
    output = model.translate(source) if model.name == "pix2pix" else model.translate(source, direction)
    save_grid(path, torch.stack([source, output.cpu(), target], 1).flatten(0, 1), nrow=3)
    return relative(path)


LABEL_ROWS = (("per-pixel accuracy", "pixel_accuracy"), ("per-class accuracy", "class_accuracy"),
              ("class IoU", "class_iou"))
TEST_MODES_NOTE = ("Two test modes, both through `gentk eval`: eval mode (batch norm's running statistics, no "
              "dropout; the default) and the paper's test mode (`--test-mode paper`: each image's own batch-norm "
              "statistics and dropout on, as the paper and its code test; dropout seeded by `--seed`).")
PHOTO_ROWS = (("L1 (pixels in [0, 1])", "l1", "{:.4f}"), ("PSNR", "psnr_db", "{:.2f} dB"), ("SSIM", "ssim", "{:.3f}"))


def result_path(name):
    return os.path.join(RUNS, f"{name}_results.json")


def store(name, result):
    os.makedirs(RUNS, exist_ok=True)
    with open(result_path(name), "w") as f:
        json.dump({**result, "machine": machine()}, f, indent=1)


def stored(name):
    path = result_path(name)
    return json.load(open(path)) if os.path.isfile(path) else None


def run_pix2pix(args):
    settings = SETTINGS["pix2pix"]
    steps = args.steps or settings["steps"]
    for direction in args.directions.split(","):
        run = os.path.join(RUNS, f"pix2pix_{direction}")
        extra = ["--direction", direction] + (["--label-palette", "facades"] if direction == "AtoB" else [])
        with Stopwatch() as watch:
            command = train("pix2pix", run, "aligned", args.facades_root, settings, steps, extra)
            result, eval_command = evaluate(run, "aligned", args.facades_root)
        paper, paper_command = evaluate(run, "aligned", args.facades_root, "eval_paper", ("--test-mode", "paper"))
        name = f"pix2pix_facades_{'labels_to_photo' if direction == 'BtoA' else 'photo_to_labels'}.png"
        picture = facade_grid(run, args.facades_root, settings["resolution"], os.path.join(IMAGES, name), direction)
        store(f"pix2pix_{direction}", dict(result=result, paper_test_mode=paper, minutes=watch.minutes,
                                           commands=[command, eval_command, paper_command], picture=picture,
                                           steps=steps))
    photo_base, label_base, majority, counts = facade_baselines(args.facades_root, settings["resolution"])
    store("facades_baselines", dict(photo=photo_base, labels=label_base, majority=majority,
                                    majority_share=(counts[majority] / counts.sum()).item()))


def pix2pix_section():
    settings, runs, base = SETTINGS["pix2pix"], {d: stored(f"pix2pix_{d}") for d in DIRECTIONS}, \
        stored("facades_baselines")
    if None in runs.values() or base is None:
        return None
    steps = runs["BtoA"]["steps"]
    lines = [
        "## pix2pix (CMP facades)", "",
        f"pix2pix (U-Net G with batch norm and dropout, 70x70 PatchGAN, BCE + 100 L1, Adam 2e-4 / 0.5) on the "
        f"CMP facades at {settings['resolution']} px: trained on pairs 1-350 with the paper's jitter (resize to "
        f"286/256 of the size, random crop, mirror), scored on the held-out pairs 351-400. Budget: {steps:,} steps "
        f"of batch {settings['batch_size']} (the paper's batch for facades; {steps / 350:.0f} epochs where the paper "
        f"trains 200), base widths 32 for G and D (the paper's 64 took 0.75 s a step here, these 0.16 s), one "
        f"thread. Each direction is its own run.", "",
        "### labels -> photo", "",
        TEST_MODES_NOTE, "",
        "| metric | pix2pix, eval mode | pix2pix, paper's test mode | mean training photo (baseline) |",
        "| --- | --- | --- | --- |"]
    photo, photo_paper = runs["BtoA"]["result"], runs["BtoA"]["paper_test_mode"]
    lines += [f"| {label} | {fmt.format(photo['test_' + key])} | {fmt.format(photo_paper['test_' + key])} | "
              f"{fmt.format(base['photo']['test_' + key])} |" for label, key, fmt in PHOTO_ROWS]
    labels, labels_paper = runs["AtoB"]["result"], runs["AtoB"]["paper_test_mode"]
    lines += ["", "Commands: " + ", then ".join(f"`{c}`" for c in runs["BtoA"]["commands"])
              + f"; {runs['BtoA']['minutes']:.1f} min.", "",
              f"![labels -> photo on validation pairs: label map | pix2pix | real photo]({runs['BtoA']['picture']})",
              "", "### photo -> labels", "",
              "Each output pixel is read as the nearest of the 12 colours of the facades palette "
              "(`gentk.metrics.translation.FACADES_PALETTE`, derived from training maps 1-350 by "
              "`derive_palette`), and so is each pixel of the real map.", "",
              "| metric | pix2pix, eval mode | pix2pix, paper's test mode | majority class (baseline) |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {label} | {_pct(labels['test_' + key])} | {_pct(labels_paper['test_' + key])} | "
              f"{_pct(base['labels']['test_' + key])} |" for label, key in LABEL_ROWS]
    lines += [f"| L1 of the output image against the real map | {labels['test_l1']:.4f} | "
              f"{labels_paper['test_l1']:.4f} | |", "",
              f"The majority class is palette colour {base['majority']} {FACADES_PALETTE[base['majority']]}, "
              f"{_pct(base['majority_share'])} of the training maps' pixels.", "",
              "Commands: " + ", then ".join(f"`{c}`" for c in runs["AtoB"]["commands"])
              + f"; {runs['AtoB']['minutes']:.1f} min.", "",
              f"![photo -> labels on validation pairs: photo | pix2pix | real label map]({runs['AtoB']['picture']})",
              "", f"Machine: {runs['AtoB']['machine']}."]
    return "\n".join(lines)


def run_cyclegan(args):
    settings = SETTINGS["cyclegan"]
    steps = args.steps or settings["steps"]
    run = os.path.join(RUNS, "cyclegan")
    with Stopwatch() as watch:
        command = train("cyclegan", run, "aligned-unpaired", args.facades_root, settings, steps,
                        ["--label-palette", "facades"])
        result, eval_command = evaluate(run, "aligned-unpaired", args.facades_root)
    picture = facade_grid(run, args.facades_root, settings["resolution"], os.path.join(IMAGES, "cyclegan_facades.png"))
    store("cyclegan", dict(result=result, minutes=watch.minutes, commands=[command, eval_command], picture=picture,
                           steps=steps))


def cyclegan_section():
    settings, run, pix2pix, base = SETTINGS["cyclegan"], stored("cyclegan"), stored("pix2pix_AtoB"), \
        stored("facades_baselines")
    if run is None:
        return None
    result, steps = run["result"], run["steps"]
    beside = pix2pix is not None and base is not None
    lines = [
        "## CycleGAN (CMP facades, unpaired)", "",
        f"CycleGAN (two ResNet generators on gentk's fused instance-norm blocks, two 70x70 PatchGANs, LSGAN, "
        f"lambda_cyc 10, identity 0.5, image pools of 50, linear decay over the second half) on unpaired facades "
        f"at {settings['resolution']} px: domain A = the photos of pairs 1-175, domain B = the label maps of pairs "
        f"176-350 (`--data aligned-unpaired`: no pair is ever seen), scored photo -> labels on the validation "
        f"pairs 351-400 as pix2pix is. Budget: {steps:,} steps of batch {settings['batch_size']} "
        f"({steps / 175:.0f} epochs of the 175 images; the paper trains 200), G width 16 and D width 32 (the "
        f"paper's 64 for both took 3.6 s a step here, these 0.5 s), one thread.", "",
        "| metric | CycleGAN |" + (" pix2pix | majority class |" if beside else ""),
        "| --- " * (4 if beside else 2) + "|"]
    for label, key in LABEL_ROWS:
        row = f"| {label} | {_pct(result['test_ab_' + key])} |"
        if beside:
            row += f" {_pct(pix2pix['result']['test_' + key])} | {_pct(base['labels']['test_' + key])} |"
        lines.append(row)
    lines.append(f"| cycle L1 A -> B -> A / B -> A -> B | {result['test_cycle_l1_a']:.4f} / "
                 f"{result['test_cycle_l1_b']:.4f} |" + (" | |" if beside else ""))
    if beside:
        gap = pix2pix["result"]["test_pixel_accuracy"] - result["test_ab_pixel_accuracy"]
        lines += ["", f"Per-pixel accuracy: pix2pix, which sees the pairs, {_pct(pix2pix['result']['test_pixel_accuracy'])}; "
                      f"CycleGAN {_pct(result['test_ab_pixel_accuracy'])}, {abs(100 * gap):.1f} points "
                      f"{'below' if gap >= 0 else 'above'} it. (The CycleGAN paper's photo -> labels table, on "
                      f"Cityscapes, has CycleGAN at 0.58 per-pixel accuracy against pix2pix's 0.85.)"]
    lines += ["", "Commands: " + ", then ".join(f"`{c}`" for c in run["commands"])
              + f"; {run['minutes']:.1f} min on {run['machine']}.", "",
              f"![CycleGAN photo -> labels on validation pairs: photo | CycleGAN | real label map]({run['picture']})"]
    return "\n".join(lines)


# --- StarGAN ----------------------------------------------------------------------------------
class AttributeClassifier(nn.Module):
    """Five stride-2 conv blocks and a linear head: one logit per attribute."""

    def __init__(self, attributes, width=32):
        super().__init__()
        layers, channels = [], 3
        for i in range(5):
            out = width * 2 ** min(i, 3)
            layers += [nn.Conv2d(channels, out, 3, 2, 1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, attributes)

    def forward(self, x):
        return self.head(self.body(x * 2 - 1))


def train_attribute_classifier(images, labels, epochs=30, batch_size=32, seed=0):
    torch.manual_seed(seed)
    net = AttributeClassifier(labels.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(images) // batch_size))
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(images)).split(batch_size):
            x = images[idx]
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(-1), x)
            loss = F.binary_cross_entropy_with_logits(net(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            decay.step()
    return net.eval()


@torch.no_grad()
def read_attributes(net, images):
    return torch.cat([net(images[i:i + 250]) > 0 for i in range(0, len(images), 250)]).float()


def run_stargan(args):
    settings = SETTINGS["stargan"]
    steps = args.steps or settings["steps"]
    run = os.path.join(RUNS, "stargan")
    with Stopwatch() as watch:
        command = train("stargan", run, "attributes", args.celeba_root, settings, steps)
        held_out = AttributeImages(args.celeba_root, STARGAN_ATTRIBUTES, settings["resolution"], split="test")
        images, labels = (torch.cat(t) for t in zip(*batches(held_out, 500)))
        classifier = train_attribute_classifier(images[:CLASSIFIER_TRAIN], labels[:CLASSIFIER_TRAIN])
        x, c = images[CLASSIFIER_TRAIN:], labels[CLASSIFIER_TRAIN:]
        real = read_attributes(classifier, x)
        model, _ = model_from_checkpoint(run)
        model.eval()
        rows = []
        for i, (name, target) in enumerate(zip(STARGAN_ATTRIBUTES, model.domain_targets(c))):
            fake = torch.cat([model.translate(x[j:j + 100], target[j:j + 100]).cpu() for j in range(0, len(x), 100)])
            back = torch.cat([model.translate(fake[j:j + 100], c[j:j + 100]).cpu() for j in range(0, len(x), 100)])
            read = read_attributes(classifier, fake)
            rows.append(dict(target=("to " if i < model.exclusive else "flip ") + name,
                             attribute=(read[:, i] == target[:, i]).float().mean().item(),
                             all=(read == target).all(1).float().mean().item(),
                             rec_l1=(back - x).abs().mean().item()))
        grid, nrow = model.translation_grid((x[:8], c[:8]), 8)
        picture = relative(save_grid(os.path.join(IMAGES, "stargan_celeba.png"), grid, nrow=nrow))
    store("stargan", dict(rows=rows, real_attribute=(real == c).float().mean(0).tolist(),
                          real_all=(real == c).all(1).float().mean().item(), n=len(x), n_down=model.config["n_down"],
                          minutes=watch.minutes, command=command, picture=picture, steps=steps))


def stargan_section():
    settings, run = SETTINGS["stargan"], stored("stargan")
    if run is None:
        return None
    n, rows = run["n"], run["rows"]
    lines = [
        "## StarGAN (CelebA)", "",
        f"StarGAN (G: conv7, {run['n_down']} down, 6 residual blocks on gentk's fused instance-norm blocks, "
        f"{run['n_down']} up; D without norm with source and attribute heads; WGAN-GP lambda_gp 10 through "
        f"`gentk.gradient_penalty`, n_critic 5, lambda_cls 1, lambda_rec 10, Adam 1e-4 / 0.5) on the paper's five "
        f"CelebA attributes ({', '.join(STARGAN_ATTRIBUTES)}; the three hair colours exclusive) with its "
        f"preprocessing (centre crop 178, resize) at {settings['resolution']} px, where the paper works at 128 "
        f"(`--resolution 128`). Split of the 5,000 images: 000001-003500 train StarGAN (the train split of "
        f"`--data attributes`), 003501-004500 train the attribute classifier, 004501-005000 are the {n} "
        f"evaluation images. Budget: {run['steps']:,} steps (critic updates) of batch {settings['batch_size']}, "
        f"default (CPU-sized) widths, one thread.", "",
        f"The attribute classifier (five stride-2 conv blocks, one logit per attribute, 30 epochs with mirroring) "
        f"reads every image; each of the {n} evaluation images is translated to each target domain (a hair "
        f"colour set and the other two cleared, or Male or Young flipped) and back to its own labels.", "",
        "| target domain | target attribute read | all five attributes read as the target's | reconstruction L1 "
        "(x -> target -> x, pixels in [0, 1]) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['target']} | {_pct(r['attribute'])} | {_pct(r['all'])} | {r['rec_l1']:.4f} |" for r in rows]
    lines += ["| real evaluation images (the classifier's ceiling) | "
              + ", ".join(f"{a} {_pct(v)}" for a, v in zip(STARGAN_ATTRIBUTES, run["real_attribute"]))
              + f" | {_pct(run['real_all'])} | |", "",
              f"Command: `{run['command']}`, then this script's classifier; {run['minutes']:.1f} min on "
              f"{run['machine']}.", "",
              f"![StarGAN on evaluation images: inputs, then one row per target domain: "
              f"{', '.join(r['target'] for r in rows)}]({run['picture']})"]
    return "\n".join(lines)


RUNNERS = {"pix2pix": run_pix2pix, "cyclegan": run_cyclegan, "stargan": run_stargan}
SECTIONS = {"pix2pix": pix2pix_section, "cyclegan": cyclegan_section, "stargan": stargan_section}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="pix2pix,cyclegan,stargan")
    p.add_argument("--directions", default="BtoA,AtoB", help="pix2pix's runs (BtoA: labels -> photo)")
    p.add_argument("--facades-root", default=os.path.join(SHARED, "facades"))
    p.add_argument("--celeba-root", default=os.path.join(SHARED, "celeba"))
    p.add_argument("--steps", type=int, default=None, help="override every model's step budget (smoke runs)")
    p.add_argument("--write-only", action="store_true", help="rewrite the sections from the stored results only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = args.models.split(",")
    for name in names:
        if name not in RUNNERS:
            raise SystemExit(f"--models: unknown model {name!r}; choose from {', '.join(RUNNERS)}")
    for direction in args.directions.split(","):
        if direction not in DIRECTIONS:
            raise SystemExit(f"--directions: unknown direction {direction!r}; choose from {', '.join(DIRECTIONS)}")
    for name in names:
        if not args.write_only:
            RUNNERS[name](args)
    for name in SECTIONS:  # CycleGAN's section reads pix2pix's results: rewrite every section that has them
        text = SECTIONS[name]()
        if text is not None:
            write_section(name, text)
            print(text)


if __name__ == "__main__":
    main()
