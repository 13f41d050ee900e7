"""Sample quality of gan, cgan and infogan on the papers' MNIST protocol, measured by the evaluator
classifier of benchmarks/quality/common.py (trained on the 60,000 training images only).

    python -m benchmarks.quality.gan [--models gan,cgan,infogan] [--seeds 0,1,2] [--steps N] [--mnist-root DIR]

Each model trains through gentk.train.Trainer on the 60,000 training images for a fixed step
budget, one thread, one run per seed, and is judged on 10,000 samples (1,000 per label or code
value for cgan and infogan):

- gan: every class's share of the samples (target: each >= 5%) and the Frechet distance of
  the evaluator's features, samples vs the 10,000 test images, next to real vs real
  (10,000 training images vs the 10,000 test images);
- cgan: the share of samples classified as the label they were drawn for (target >= 97%);
- infogan: the categorical codes are matched one-to-one to digit labels by the assignment that
  maximises agreement (Hungarian algorithm, scipy.optimize.linear_sum_assignment; scipy comes
  with scikit-learn, a gentk dependency); the share of samples whose evaluator label is their
  code's match (target >= 95%, the paper's 5% error).

Each run's result is kept in benchmarks/results/quality_cache/quality_gan_<model>_s<seed>.json;
each model's section of QUALITY.md (quality:gan, quality:cgan, quality:infogan) is rebuilt from
all its seeds. Seed 0's generator goes to benchmarks/results/weights/<model>.pt and its grid to
docs/images/.
"""
import argparse
import fcntl
import glob
import json
import os

import torch

from benchmarks.quality.common import (CACHE, IMAGES, MNIST_DATA, QUALITY_MD, Stopwatch, keep_weights, machine,
                                       mnist_evaluator, mnist_protocol, write_section)
from gentk.metrics.classifier import frechet_distance, predict
from gentk.models import build
from gentk.train import Trainer, save_grid

N_SAMPLES = 10_000
#: the budget and settings of each model's run: the conv G/D of gentk.models.dcgan_nets at a
#: quarter of the paper's width, so that a run fits 10-20 minutes of one core
SETTINGS = {
    "gan": dict(config=dict(arch="conv", width=16, loss="bce"), steps=3000, batch_size=64),
    # width 16 keeps the float16 generator at 3.2 MiB (width 32's was 6.5 MiB, over the 5 MB a
    # weights file may take); twice the steps make up its accuracy (97.3% mean at width 32)
    "cgan": dict(config=dict(arch="conv", width=16, loss="bce"), steps=6000, batch_size=64),
    # lr_g 1e-3: the paper's generator rate; at 2e-4 for both players the generator collapsed
    # to near-black images carrying the codes invisibly (on the earlier 8,000-image split)
    "infogan": dict(config=dict(arch="conv", width=16, loss="bce", lr_g=1e-3), steps=8000, batch_size=64),
}
TARGETS = {"gan": 0.05, "cgan": 0.97, "infogan": 0.95}


def train(name, settings, data, out, seed=0):
    model = build(name, resolution=28, channels=1, **settings["config"])
    trainer = Trainer(model, data, out, steps=settings["steps"], batch_size=settings["batch_size"], seed=seed,
                      log_every=50, sample_every=settings["steps"], checkpoint_every=settings["steps"],
                      keep_last=1, device="cpu", progress=False, tensorboard=False, overwrite=True,
                      config={"data": MNIST_DATA})
    running = trainer.fit()
    model.eval()
    return model, running, trainer.last_checkpoint


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


def code_agreement(model, evaluator):
    """An InfoGAN's categorical code against the evaluator's labels, as ``evaluate`` scores it:
    (code -> digit map, agreement, confusion) over N_SAMPLES samples, 1,000 per code value."""
    codes = torch.arange(N_SAMPLES) % 10
    samples = model.sample(N_SAMPLES, labels=codes, generator=torch.Generator().manual_seed(1))
    return hungarian_agreement(codes, predict(evaluator, samples)[1].argmax(1))


def evaluate(name, model, evaluator, train_set, test, real_feats, pictures_to=None):
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(N_SAMPLES) % 10
    with torch.no_grad():
        if name == "gan":
            samples = model.sample(N_SAMPLES, generator=gen)
        else:  # cgan: labels; infogan: the categorical code
            samples = model.sample(N_SAMPLES, labels=labels, generator=gen)
    feats, logits = predict(evaluator, samples)
    predicted = logits.argmax(1)
    shares = class_shares(predicted)
    result = {"min_class_share": shares.min().item(), "class_shares": shares.tolist(),
              "frechet_samples_vs_test": frechet_distance(feats, real_feats["test"]),
              "frechet_real_vs_real": frechet_distance(real_feats["train"], real_feats["test"])}
    if name == "cgan":
        result["label_accuracy"] = (predicted == labels).float().mean().item()
    if name == "infogan":
        mapping, agreement, confusion = hungarian_agreement(labels, predicted)
        result.update(code_to_digit=mapping, code_agreement=agreement, confusion=confusion.tolist())
    if pictures_to:
        if name == "infogan":
            grid = model.code_sweeps(generator=torch.Generator().manual_seed(0))["sweep_categorical"]
            save_grid(os.path.join(pictures_to, "infogan_categorical_sweep.png"), grid, nrow=8)
        elif name == "cgan":
            save_grid(os.path.join(pictures_to, "cgan_mnist.png"),
                      model.class_grid(generator=torch.Generator().manual_seed(0)), nrow=8)
        else:
            save_grid(os.path.join(pictures_to, "gan_mnist.png"), samples[:100], nrow=10)
    return result


def headline(name, r):
    if name == "cgan":
        return r["label_accuracy"]
    if name == "infogan":
        return r["code_agreement"]
    return r["min_class_share"]


HEADLINES = {"gan": "smallest class share of the samples", "cgan": "samples classified as their conditioning label",
             "infogan": "categorical code agrees with the evaluator (one-to-one map)"}
PICTURES = {"gan": ("gan_mnist.png", "GAN samples, seed 0"),
            "cgan": ("cgan_mnist.png", "CGAN samples, one row per label, seed 0"),
            "infogan": ("infogan_categorical_sweep.png", "InfoGAN categorical sweep: one row per code value, one "
                                                         "noise vector per column, seed 0")}


def section(name, runs, command):
    settings = runs[min(runs)]["settings"]
    cfg = ", ".join(f"{k}={v}" for k, v in settings["config"].items())
    seeds = sorted(runs)
    values = [headline(name, runs[s]) for s in seeds]
    mean = sum(values) / len(values)
    ok = "met" if mean >= TARGETS[name] and (name != "gan" or min(values) >= TARGETS[name]) else "NOT met"
    lines = [f"## {name}", "",
             f"Budget: {settings['steps']:,} steps of batch {settings['batch_size']} on the 60,000 training images "
             f"({cfg}; other settings the model's defaults), one thread, seeds {', '.join(map(str, seeds))}. "
             f"{N_SAMPLES:,} samples per seed. Evaluator (trained on the 60,000 only) test accuracy "
             f"{100 * runs[seeds[0]]['evaluator_test_accuracy']:.2f}%.", "",
             "| seed | " + ("" if name == "gan" else HEADLINES[name] + " | ") + "smallest class share | class "
             "shares 0-9 (%) | Frechet distance, samples vs test | Frechet distance, real vs real | train + eval min |",
             "| --- " * (6 if name == "gan" else 7) + "|"]
    for s in seeds:
        r = runs[s]
        shares = " ".join(f"{100 * v:.1f}" for v in r["class_shares"])
        first = "" if name == "gan" else f"{100 * headline(name, r):.1f}% | "
        lines.append(f"| {s} | {first}{100 * r['min_class_share']:.1f}% | {shares} | "
                     f"{r['frechet_samples_vs_test']:.2f} | {r['frechet_real_vs_real']:.2f} | {r['minutes']:.1f} |")
    lines += ["", f"Mean over the seeds: **{100 * mean:.1f}%**; target {'every class' if name == 'gan' else 'mean'} "
                  f">= {100 * TARGETS[name]:.0f}%: {ok}."]
    if name == "infogan":
        lines.append("Code -> digit maps: " + "; ".join(f"seed {s}: {runs[s]['code_to_digit']}" for s in seeds) + ".")
    lines += ["", "Real vs real: the Frechet distance between the evaluator's features of the 10,000 test images "
                  "and of the first 10,000 training images, the scale to read the samples' figure against.",
              "", f"Command: `{command}`; {runs[seeds[0]]['machine']}.", "",
              f"![{PICTURES[name][1]}](docs/images/{PICTURES[name][0]})"]
    return "\n".join(lines)


def result_path(name, seed):
    return os.path.join(CACHE, f"quality_gan_{name}_s{seed}.json")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="gan,cgan,infogan")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=None, help="override every model's step budget")
    p.add_argument("--mnist-root", default=None)
    p.add_argument("--write-only", action="store_true", help="rewrite the sections from the stored results only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = args.models.split(",")
    for name in names:
        if name not in SETTINGS:
            raise SystemExit(f"--models: unknown model {name!r}; choose from {', '.join(SETTINGS)}")
    if not args.write_only:
        train_set, test = mnist_protocol(args.mnist_root)
        evaluator, evaluator_accuracy = mnist_evaluator(args.mnist_root)
        real_feats = {"test": predict(evaluator, test.tensors[0])[0],
                      "train": predict(evaluator, train_set.tensors[0][:len(test)])[0]}
        for name in names:
            for seed in [int(s) for s in args.seeds.split(",")]:
                settings = dict(SETTINGS[name])
                if args.steps:
                    settings["steps"] = args.steps
                out = os.path.join(CACHE, "runs", f"{name}_s{seed}")
                with Stopwatch() as watch:
                    model, running, checkpoint = train(name, settings, train_set, out, seed=seed)
                    result = evaluate(name, model, evaluator, train_set, test, real_feats,
                                      pictures_to=IMAGES if seed == 0 else None)
                result.update(settings=settings, running=running, minutes=watch.minutes, machine=machine(),
                              evaluator_test_accuracy=evaluator_accuracy)
                if seed == 0:
                    result["weights_mib"], result["weights_half"] = keep_weights(checkpoint, name)
                with open(result_path(name, seed), "w") as f:
                    json.dump(result, f, indent=1)
                print(name, seed, {k: v for k, v in result.items() if k not in ("confusion", "running")}, flush=True)
    for name in names:
        runs = {}
        for path in glob.glob(os.path.join(CACHE, f"quality_gan_{name}_s*.json")):
            runs[int(path[:-len(".json")].rsplit("_s", 1)[1])] = json.load(open(path))
        if runs:
            with open(QUALITY_MD + ".lock", "w") as lock:  # parallel runs of this script write one file
                fcntl.flock(lock, fcntl.LOCK_EX)
                write_section(name, section(name, runs, "python -m benchmarks.quality.gan --models " + name))


if __name__ == "__main__":
    main()
