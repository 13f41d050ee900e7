"""Sample quality of gan, cgan and infogan on real MNIST, measured by the evaluator classifier.

    python -m benchmarks.quality.gan [--models gan,cgan,infogan] [--steps N] [--mnist-root DIR]

Each model trains through gentk.train.Trainer on the first 8,000 images of the MNIST test
set (benchmarks/quality/common.py's split) for a fixed step budget, one thread, and is judged on
2,000 samples by the evaluator CNN trained on the same 8,000 (held-out accuracy reported):

- gan: every class's share of the samples (target: each >= 5%) and the Frechet distance of
  the evaluator's features, samples vs the 2,000 held-out images, next to real vs real
  (2,000 training images vs the 2,000 held out);
- cgan: the share of samples classified as the label they were drawn for (target >= 95%);
- infogan: samples drawn 200 per categorical code value; the codes are matched one-to-one
  to digit labels by the assignment that maximises agreement (Hungarian algorithm,
  scipy.optimize.linear_sum_assignment; scipy comes with scikit-learn, a gentk dependency);
  the share of samples whose evaluator label is their code's match (target >= 90%).

Each model writes its own section of QUALITY.md (quality:gan, quality:cgan, quality:infogan).
"""
import argparse
import fcntl
import os
import sys

import torch

from benchmarks.quality.common import CACHE, QUALITY_MD, Stopwatch, machine, mnist_evaluator, mnist_split, write_section
from gentk.metrics.classifier import frechet_distance, predict
from gentk.models import build
from gentk.train import Trainer, save_grid

N_SAMPLES = 2000
#: the budget and settings of each model's run: the conv G/D of gentk.models.dcgan_nets at a
#: quarter of the paper's width (16 instead of 64 channels), so that a run fits ~10 minutes
#: of one core on a machine shared with other jobs
SETTINGS = {
    "gan": dict(config=dict(arch="conv", width=16, loss="bce"), steps=1200, batch_size=64),
    "cgan": dict(config=dict(arch="conv", width=32, loss="bce"), steps=1400, batch_size=64),
    # lr_g 1e-3: the paper's generator rate; at 2e-4 for both players the generator collapsed
    # to near-black images carrying the codes invisibly (1,200 steps, agreement 10%). 1,500
    # steps gave 67.5% (codes still mixing digits), 5,000 steps 92.4%.
    "infogan": dict(config=dict(arch="conv", width=16, loss="bce", lr_g=1e-3), steps=5000, batch_size=64),
}


def train(name, settings, data, out, seed=0):
    model = build(name, resolution=28, channels=1, **settings["config"])
    trainer = Trainer(model, data, out, steps=settings["steps"], batch_size=settings["batch_size"], seed=seed,
                      log_every=50, sample_every=settings["steps"], checkpoint_every=settings["steps"],
                      keep_last=1, device="cpu", progress=False, tensorboard=False, overwrite=True)
    running = trainer.fit()
    model.eval()
    return model, running


def class_shares(predicted, classes=10):
    counts = torch.bincount(predicted, minlength=classes).double()
    return counts / counts.sum()


def hungarian_agreement(codes, predicted, classes=10):
    """Best one-to-one map code -> label, and the share of samples it gets right."""
    from scipy.optimize import linear_sum_assignment

    confusion = torch.zeros(classes, classes, dtype=torch.long)
    confusion.index_put_((codes, predicted), torch.ones_like(codes), accumulate=True)
    rows, cols = linear_sum_assignment(-confusion.numpy())
    mapping = dict(zip(rows.tolist(), cols.tolist()))
    return mapping, confusion[rows, cols].sum().item() / len(codes), confusion


def evaluate(name, model, evaluator, train_set, held_out, out):
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(N_SAMPLES) % 10
    with torch.no_grad():
        if name == "gan":
            samples = model.sample(N_SAMPLES, generator=gen)
        else:  # cgan: labels; infogan: the categorical code
            samples = model.sample(N_SAMPLES, labels=labels, generator=gen)
    feats, logits = predict(evaluator, samples)
    predicted = logits.argmax(1)
    held_feats, _ = predict(evaluator, held_out.tensors[0])
    train_feats, _ = predict(evaluator, train_set.tensors[0][:len(held_out)])
    shares = class_shares(predicted)
    result = {
        "min_class_share": shares.min().item(),
        "class_shares": shares.tolist(),
        "frechet_samples_vs_held_out": frechet_distance(feats, held_feats),
        "frechet_real_vs_real": frechet_distance(train_feats, held_feats),
    }
    if name == "cgan":
        result["label_accuracy"] = (predicted == labels).float().mean().item()
    if name == "infogan":
        mapping, agreement, confusion = hungarian_agreement(labels, predicted)
        result.update(code_to_digit=mapping, code_agreement=agreement, confusion=confusion.tolist())
        for grid_name, grid in model.code_sweeps(generator=torch.Generator().manual_seed(0)).items():
            save_grid(os.path.join(out, f"{grid_name}.png"), grid, nrow=8)
    if name == "cgan":
        grid = model.class_grid(generator=torch.Generator().manual_seed(0))
        save_grid(os.path.join(out, "samples_by_class.png"), grid, nrow=8)
    save_grid(os.path.join(out, "quality_samples.png"), samples[:100], nrow=10)
    return result


def section(name, settings, result, running, evaluator_accuracy, minutes, command, load_note):
    cfg = ", ".join(f"{k}={v}" for k, v in settings["config"].items())
    shares = " ".join(f"{100 * s:.1f}" for s in result["class_shares"])
    lines = [f"## {name}", "",
             f"Budget: {settings['steps']} steps of batch {settings['batch_size']} ({cfg}; other settings the "
             f"model's defaults), one thread. Evaluator held-out accuracy {100 * evaluator_accuracy:.1f}%.", "",
             "| metric | value | target |", "| --- | --- | --- |"]
    if name == "cgan":
        lines.append(f"| samples classified as their conditioning label | {100 * result['label_accuracy']:.1f}% "
                     f"| >= 95% |")
    if name == "infogan":
        lines.append(f"| categorical code agrees with the evaluator (one-to-one map) | "
                     f"{100 * result['code_agreement']:.1f}% | >= 90% |")
        lines.append(f"| code -> digit map | {result['code_to_digit']} | |")
    lines += [
        f"| smallest class share of samples | {100 * result['min_class_share']:.1f}% | >= 5% (gan) |",
        f"| class shares 0-9 (%) | {shares} | |",
        f"| Frechet distance, samples vs held-out (evaluator features) | "
        f"{result['frechet_samples_vs_held_out']:.2f} | |",
        f"| Frechet distance, real vs real (2,000 train vs 2,000 held-out) | {result['frechet_real_vs_real']:.2f} | |",
        "", f"Final running losses: {', '.join(f'{k} {v:.3f}' for k, v in running.items())}.", "",
        f"Command: `{command}`; {minutes:.1f} min on {machine()}{load_note}.",
    ]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="gan,cgan,infogan")
    p.add_argument("--steps", type=int, default=None, help="override every model's step budget")
    p.add_argument("--mnist-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print the sections instead of writing QUALITY.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    train_set, held_out = mnist_split(args.mnist_root)
    evaluator, evaluator_accuracy = mnist_evaluator(args.mnist_root)
    load = os.getloadavg()[0]
    load_note = f" (taken under load: 1-minute load average {load:.1f} on 2 shared cores at the start)" \
        if load > 1.5 else ""
    command = "python -m benchmarks.quality.gan " + " ".join(argv if argv is not None else sys.argv[1:])
    for name in args.models.split(","):
        settings = dict(SETTINGS[name])
        if args.steps:
            settings["steps"] = args.steps
        out = os.path.join(CACHE, "runs", name)
        with Stopwatch() as watch:
            model, running = train(name, settings, train_set, out, seed=args.seed)
            result = evaluate(name, model, evaluator, train_set, held_out, out)
        print(name, {k: v for k, v in result.items() if k != "confusion"}, flush=True)
        text = section(name, settings, result, running, evaluator_accuracy, watch.minutes, command.strip(),
                       load_note)
        if args.no_write:
            print(text)
            continue
        with open(QUALITY_MD + ".lock", "w") as lock:  # parallel runs of this script write one file
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_section(name, text)


if __name__ == "__main__":
    main()
