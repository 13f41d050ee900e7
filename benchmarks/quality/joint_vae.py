"""Joint-VAE on the papers' MNIST protocol, gentk beside Dupont's own implementation.

Both train on the 60,000 training images with Dupont's configuration (his conv network, 10
continuous latents and one 10-way categorical, tau 0.67, C_z and C_c 0 -> 5 nats over 25,000
steps (26.7 epochs of batch 64) at gamma 30, Adam 5e-4) for the same number of epochs and the
same seeds, one thread each. Every ``--every`` epochs the categorical code's accuracy on the
10,000 test images is taken (best one-to-one map of categories to digits), so the table holds
accuracy against epochs for both. At the end each run's -ELBO on the training set is taken
(an unsupervised score: the seed it ranks first is what a user choosing among restarts would
keep). Nothing is tuned on the test images: both run the paper's settings.

Dupont's code (github.com/Schlumberger/joint-vae) is not part of gentk: fetch it yourself and
name the checkout with ``--dupont-repo``. It is imported as it is; its networks take 32x32
images, so its data is the same images resized 28 -> 32 (bilinear), as its own loader does.
Its training module imports imageio and torchvision only for GIFs and grids, which are never
called here; when they are not installed, empty stand-ins are put in their place.

Each run's result goes to benchmarks/results/quality_cache/quality_joint_vae_<impl>_s<seed>.json;
the QUALITY.md section (quality:joint_vae) is rebuilt from all of them.

    python -m benchmarks.quality.joint_vae [--impls gentk,dupont] [--seeds 0,1,2] [--epochs 27]
        [--every 3] [--dupont-repo DIR] [--mnist-root DIR] [--resume] [--write-only]
"""
import argparse
import contextlib
import glob
import json
import math
import os
import sys
import types

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.quality.common import (CACHE, IMAGES, MNIST_DATA, Stopwatch, keep_weights, machine, mnist_protocol,
                                       write_section)
from gentk import metrics
from gentk.metrics import assignment_accuracy
from gentk.models import build
from gentk.train import Trainer, model_from_checkpoint, save_grid, seed_everything

SECTION = "joint_vae"
BATCH = 64
LR = 5e-4
CAPACITY = [0.0, 5.0, 25_000, 30.0]  # Dupont's (min, max, steps, gamma), both latents
PAPER_ACCURACY = 0.887
TARGET = 0.80


def result_path(impl, seed):
    return os.path.join(CACHE, f"quality_joint_vae_{impl}_s{seed}.json")


# --- gentk -----------------------------------------------------------------------------------
def run_gentk(train, test, seed, epochs, every, out, previous=None):
    """``previous``: this run's stored result; its checkpoint is trained on to ``epochs``."""
    if previous is not None and previous["curve"][-1][0] >= epochs:
        return previous
    seed_everything(seed)
    model = build("joint_vae", arch="conv", train_size=len(train))  # every other setting: Dupont's
    per_epoch = len(train) // BATCH
    trainer = Trainer(model, train, out, steps=every * per_epoch, batch_size=BATCH, seed=seed, progress=False,
                      log_every=100, sample_every=10**9, checkpoint_every=every * per_epoch, keep_last=1,
                      tensorboard=False, overwrite=previous is None, config={"data": MNIST_DATA})
    curve, minutes, first, resume = [], 0.0, every, None
    if previous is not None:
        curve, minutes = [tuple(point) for point in previous["curve"]], previous["train_minutes"]
        first, resume = curve[-1][0] + every, previous["checkpoint"]
    for epoch in range(first, epochs + 1, every):
        trainer.total_steps = epoch * per_epoch
        with Stopwatch() as clock:
            trainer.fit(resume=resume)
        resume = trainer.last_checkpoint
        minutes += clock.minutes
        curve.append((epoch, metrics.categorical_accuracy(model, test)["categorical_accuracy_c0"]))
        print(f"gentk seed {seed} epoch {epoch}: accuracy {curve[-1][1]:.3f} ({minutes:.1f} min)", flush=True)
    torch.manual_seed(0)
    return {"curve": curve, "train_minutes": minutes, "steps": trainer.step,
            "train_neg_elbo": metrics.negative_elbo(model, train), "test_neg_elbo": metrics.negative_elbo(model, test),
            "checkpoint": trainer.last_checkpoint}


# --- Dupont's implementation ---------------------------------------------------------------
def import_dupont(repo):
    """jointvae.models.VAE and jointvae.training.Trainer from a checkout of Schlumberger/joint-vae."""
    if not os.path.isfile(os.path.join(repo or "", "jointvae", "training.py")):
        raise SystemExit(f"--dupont-repo: {repo!r} is not a checkout of github.com/Schlumberger/joint-vae "
                         f"(no jointvae/training.py)")
    for name in ("imageio", "torchvision", "torchvision.utils"):  # GIFs and grids only: never called here
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.modules["torchvision.utils"].__dict__.setdefault("make_grid", None)
    sys.path.insert(0, repo)
    from jointvae.models import VAE
    from jointvae.training import Trainer as DupontTrainer

    return VAE, DupontTrainer


def to_32(dataset):
    x, y = dataset.tensors
    return TensorDataset(F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).clamp_(0, 1), y)


@torch.no_grad()
def dupont_codes(model, x, batch_size=500):
    model.eval()
    codes = torch.cat([model.encode(x[i:i + batch_size])["disc"][0].argmax(1) for i in range(0, len(x), batch_size)])
    model.train()
    return codes


@torch.no_grad()
def dupont_negative_elbo(model, x, batch_size=500):
    """-ELBO per example, estimated as gentk's is: one posterior sample of z, a one-hot sample of c,
    analytic KLs to N(0, I) and to the uniform; Bernoulli likelihood of the decoder's means."""
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        dist = model.encode(xb)
        mean, logvar = dist["cont"]
        alpha = dist["disc"][0]
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        c = F.one_hot(torch.multinomial(alpha, 1).squeeze(1), alpha.shape[1]).float()
        recon = model.decode(torch.cat([z, c], dim=1)).clamp(1e-7, 1 - 1e-7)
        nll = F.binary_cross_entropy(recon, xb, reduction="none").flatten(1).sum(1)
        kl_z = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)
        kl_c = math.log(alpha.shape[1]) + (alpha * torch.log(alpha.clamp_min(1e-12))).sum(1)
        total += (nll + kl_z + kl_c).double().sum().item()
    model.train()
    return total / len(x)


def run_dupont(train, test, seed, epochs, every, out, repo):
    VAE, DupontTrainer = import_dupont(repo)
    train32, test32 = to_32(train), to_32(test)
    torch.manual_seed(seed)
    model = VAE(img_size=(1, 32, 32), latent_spec={"cont": 10, "disc": [10]})
    trainer = DupontTrainer(model, torch.optim.Adam(model.parameters(), lr=LR), cont_capacity=list(CAPACITY),
                            disc_capacity=list(CAPACITY))
    loader = DataLoader(train32, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed))
    os.makedirs(out, exist_ok=True)
    curve, minutes = [], 0.0
    with open(os.path.join(out, "train.log"), "w") as log:
        for epoch in range(1, epochs + 1):
            with Stopwatch() as clock, contextlib.redirect_stdout(log):
                trainer.train(loader, epochs=1)
            minutes += clock.minutes
            if epoch % every == 0:
                codes = dupont_codes(model, test32.tensors[0])
                curve.append((epoch, assignment_accuracy(codes, test32.tensors[1], n_codes=10)))
                print(f"dupont seed {seed} epoch {epoch}: accuracy {curve[-1][1]:.3f} ({minutes:.1f} min)", flush=True)
    torch.manual_seed(0)
    return {"curve": curve, "train_minutes": minutes, "steps": trainer.num_steps,
            "train_neg_elbo": dupont_negative_elbo(model, train32.tensors[0]),
            "test_neg_elbo": dupont_negative_elbo(model, test32.tensors[0])}


# --- QUALITY.md ------------------------------------------------------------------------------
def section(results, command):
    lines = ["## Joint-VAE: gentk beside Dupont's implementation", "",
             f"Command: `{command}`. Data: the 60,000 MNIST training images for training, the 10,000 test images "
             f"for the accuracy (grey levels in [0, 1], no binarization, as both implementations train). "
             f"Configuration, both: Dupont's conv network, 10 continuous latents + one 10-way categorical, "
             f"tau 0.67, C_z and C_c 0 -> 5 nats over 25,000 steps (26.7 epochs, his ramps; C_c capped at log 10), "
             f"gamma 30, Adam 5e-4, batch {BATCH}. Accuracy: categorical code vs digit label under the best "
             f"one-to-one map. Paper: {100 * PAPER_ACCURACY:.1f}%. Target: mean of 3 seeds >= {100 * TARGET:.0f}%. "
             f"The -ELBO columns compare seeds within one implementation only: Dupont's is taken on his 32x32 "
             f"images (1,024 pixels), gentk's on the 28x28 originals.",
             ""]
    impls = [i for i in ("gentk", "dupont") if any(k[0] == i for k in results)]
    epochs = sorted({e for r in results.values() for e, _ in r["curve"]})
    head = "| implementation | seed | " + " | ".join(f"ep {e}" for e in epochs) + \
        " | train -ELBO (at its last epoch) | test -ELBO | train min |"
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    common = max(e for e in epochs if all(e in dict(r["curve"]) for r in results.values()))
    summary = [f"Seeds compared at epoch {common}, the last epoch every run reached:"]
    for impl in impls:
        seeds = sorted(s for i, s in results if i == impl)
        for seed in seeds:
            r = results[impl, seed]
            acc = dict(r["curve"])
            cells = " | ".join(f"{100 * acc[e]:.1f}%" if e in acc else "" for e in epochs)
            lines.append(f"| {impl} | {seed} | {cells} | {r['train_neg_elbo']:.1f} | {r['test_neg_elbo']:.1f} | "
                         f"{r['train_minutes']:.1f} |")
        finals = [dict(results[impl, s]["curve"])[common] for s in seeds]
        best = min(seeds, key=lambda s: results[impl, s]["train_neg_elbo"])
        mean = sum(finals) / len(finals)
        summary.append(f"- {impl}: accuracy {', '.join(f'{100 * a:.1f}%' for a in finals)} (seeds "
                       f"{', '.join(map(str, seeds))}), mean **{100 * mean:.1f}%** "
                       f"({'meets' if mean >= TARGET and len(seeds) >= 3 else 'does not meet'} the "
                       f"{100 * TARGET:.0f}% target{'' if len(seeds) >= 3 else ': fewer than 3 seeds'}); the "
                       f"seed with the lowest training -ELBO, {best}, reads "
                       f"{100 * dict(results[impl, best]['curve'])[common]:.1f}%.")
    machines = sorted({r["machine"] for r in results.values()})
    lines += ["", *summary, "", f"Machine: {'; '.join(machines)}; one thread per run.", "",
              "![Joint-VAE traversal of the gentk seed with the lowest training -ELBO: one row per category, the "
              "continuous latent with the most KL swept along each row](docs/images/joint_vae_mnist.png)"]
    return "\n".join(lines)


def publish(results):
    """The gentk seed a user would keep without labels (lowest training -ELBO): its weights file and
    its traversal grid (one row per category, the continuous latent of most KL swept along it)."""
    seeds = [s for i, s in results if i == "gentk" and os.path.isfile(results[i, s].get("checkpoint", ""))]
    if not seeds:
        return
    best = min(seeds, key=lambda s: results["gentk", s]["train_neg_elbo"])
    keep_weights(results["gentk", best]["checkpoint"], "joint_vae")
    model, _ = model_from_checkpoint(results["gentk", best]["checkpoint"])
    images, nrow = model.eval().traverse(10)
    save_grid(os.path.join(IMAGES, "joint_vae_mnist.png"), images, nrow=nrow)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impls", default="gentk,dupont")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=27, help="epochs of the 60,000 (27: just past the 25,000-step ramps)")
    p.add_argument("--every", type=int, default=3, help="epochs between test-accuracy readings")
    p.add_argument("--dupont-repo", default=os.environ.get("JOINT_VAE_REPO"),
                   help="checkout of github.com/Schlumberger/joint-vae (or $JOINT_VAE_REPO)")
    p.add_argument("--mnist-root", default=None)
    p.add_argument("--max-train", type=int, default=None, help="first N training images only (smoke runs)")
    p.add_argument("--resume", action="store_true",
                   help="gentk runs go on from their stored checkpoint to --epochs (Dupont's code keeps none: its "
                        "runs start again)")
    p.add_argument("--write-only", action="store_true", help="rewrite the section from the stored results only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(CACHE, exist_ok=True)
    if not args.write_only:
        train, test = mnist_protocol(args.mnist_root)
        if args.max_train:
            train = TensorDataset(*(t[:args.max_train] for t in train.tensors))
        for seed in [int(s) for s in args.seeds.split(",")]:
            for impl in args.impls.split(","):
                out = os.path.join(CACHE, "runs", f"joint_vae_{impl}_s{seed}")
                previous = json.load(open(result_path(impl, seed))) if args.resume and impl == "gentk" and \
                    os.path.isfile(result_path(impl, seed)) else None
                if impl == "gentk":
                    result = run_gentk(train, test, seed, args.epochs, args.every, out, previous)
                elif impl == "dupont":
                    result = run_dupont(train, test, seed, args.epochs, args.every, out, args.dupont_repo)
                else:
                    raise SystemExit(f"--impls: unknown implementation {impl!r}; gentk or dupont")
                result.update(machine=machine(), epochs=args.epochs, train_size=len(train))
                with open(result_path(impl, seed), "w") as f:
                    json.dump(result, f, indent=1)
    results = {}
    for path in sorted(glob.glob(os.path.join(CACHE, "quality_joint_vae_*_s*.json"))):
        impl, seed = os.path.basename(path)[len("quality_joint_vae_"):-len(".json")].rsplit("_s", 1)
        r = json.load(open(path))
        if r.get("train_size") == 60_000:
            results[impl, int(seed)] = r
    if results:
        publish(results)
        write_section(SECTION, section(results, "python -m benchmarks.quality.joint_vae --dupont-repo DIR"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
