"""Quality of the VAE family on real MNIST (8,000 train / 2,000 held out, benchmarks/quality/common.py):

- vae: importance-sampled NLL (k=100) on the held-out 2,000, next to the published 89.9 nats
  (full binarized MNIST, 60,000 training images). Both splits are binarized once
  (pixel ~ Bernoulli(grey level), seed 0) so that the number is a likelihood of binary
  images as in the published figure.
- beta_vae --variant B: trained exactly to the end of the capacity ramp; the held-out KL vs
  C = C_max there, and how closely the training KL followed C along the ramp.
- joint_vae: unsupervised accuracy of the categorical code on the held-out 2,000 (best
  one-to-one category -> label assignment); the paper reports 88.7% on full MNIST.

Each model's result is kept in benchmarks/results/quality_cache/quality_vae_<model>.json, so
models can run separately (``--models joint_vae``); the QUALITY.md section is rebuilt from all
of them.

    python -m benchmarks.quality.vae [--models vae,beta_vae,joint_vae] [--mnist-root DIR]
"""
import argparse
import json
import os
import sys

import torch
from torch.utils.data import TensorDataset

from benchmarks.quality.common import CACHE, N_TRAIN, Stopwatch, machine, mnist_split, write_section
from gentk import metrics
from gentk.models import build
from gentk.train import Trainer, seed_everything

SECTION = "vae"
BATCH = 64
# The papers' schedules rescaled to 8,000 images at batch 64 (same number of epochs):
#   Burgess: C 0 -> 25 nats over 100,000 steps on 737,280 dSprites images = 8.7 epochs -> 1,085 steps.
#   Dupont: both capacities over 25,000 steps on 60,000 MNIST images = 26.7 epochs -> 3,333 steps.
BETA_B_RAMP = round(100_000 * N_TRAIN / 737_280)
JOINT_RAMP = round(25_000 * N_TRAIN / 60_000)
BUDGETS = {
    "vae": dict(steps=4000, config=dict(arch="mlp")),
    "beta_vae": dict(steps=BETA_B_RAMP, config=dict(variant="B", c_stop=BETA_B_RAMP)),
    # tuned (see the notes): the VAE's MLP, the categorical ramp 3.6x slower than the epoch-scaled one
    # (0.0004 nats/step instead of 0.0015), the continuous one half as fast again
    "joint_vae": dict(steps=10_000, every=2000, config=dict(arch="mlp", disc_capacity_steps=12_000,
                                                            cont_capacity_steps=24_000)),
}
PUBLISHED_NLL = 89.9
PAPER_ACCURACY = 0.887


def binarized(dataset, seed=0):
    x, y = dataset.tensors
    return TensorDataset(torch.bernoulli(x, generator=torch.Generator().manual_seed(seed)), y)


def train(name, train_set, steps, config, out, seed=0):
    seed_everything(seed)
    model = build(name, **config)
    with Stopwatch() as clock:
        Trainer(model, train_set, out, steps=steps, batch_size=BATCH, seed=seed, progress=False,
                log_every=25, sample_every=steps, checkpoint_every=steps, keep_last=1).fit()
    return model, clock


def logged(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def run_vae(train_set, held_out, out):
    budget = BUDGETS["vae"]
    train_bin, held_bin = binarized(train_set, 0), binarized(held_out, 1)
    model, clock = train("vae", train_bin, budget["steps"], budget["config"], out)
    with Stopwatch() as eval_clock:
        torch.manual_seed(0)
        nll = metrics.importance_nll(model, held_bin, k=100)
        elbo = metrics.negative_elbo(model, held_bin)
    return {"steps": budget["steps"], "train_minutes": clock.minutes, "eval_minutes": eval_clock.minutes,
            "nll_k100": nll, "neg_elbo": elbo, "config": dict(model.config)}


def run_beta_vae(train_set, held_out, out):
    budget = BUDGETS["beta_vae"]
    model, clock = train("beta_vae", train_set, budget["steps"], budget["config"], out)
    torch.manual_seed(0)
    kls = metrics.per_dimension_kl(model, held_out)
    elbo = metrics.negative_elbo(model, held_out)
    records = [r for r in logged(out) if "C" in r]
    second_half = [r for r in records if r["step"] > budget["steps"] // 2]
    follow = sum(abs(r["kl"] - r["C"]) / r["C"] for r in second_half) / len(second_half)
    kl = sum(kls.values())
    c = model.capacity()
    return {"steps": budget["steps"], "train_minutes": clock.minutes, "C": c, "held_out_kl": kl,
            "relative_gap": abs(kl - c) / c, "train_kl_last_log": records[-1]["kl"], "train_follow_gap": follow,
            "per_dim_kl": kls, "neg_elbo": elbo, "config": dict(model.config)}


def run_joint_vae(train_set, held_out, out, seed=0):
    budget = BUDGETS["joint_vae"]
    seed_everything(seed)
    model = build("joint_vae", **budget["config"])
    trainer = Trainer(model, train_set, out, steps=budget["every"], batch_size=BATCH, seed=seed, progress=False,
                      log_every=25, sample_every=budget["every"], checkpoint_every=budget["every"], keep_last=1)
    curve, minutes = [], 0.0
    for target in range(budget["every"], budget["steps"] + 1, budget["every"]):  # the accuracy along the way
        trainer.total_steps = target
        with Stopwatch() as clock:
            trainer.fit(resume=trainer.last_checkpoint)
        minutes += clock.minutes
        curve.append((target, metrics.categorical_accuracy(model, held_out)["categorical_accuracy_c0"]))
        print("joint_vae", target, f"{minutes:.1f} min", f"accuracy {curve[-1][1]:.3f}", flush=True)
    clock.minutes = minutes
    torch.manual_seed(0)
    acc = curve[-1][1]
    kls = metrics.per_dimension_kl(model, held_out)
    elbo = metrics.negative_elbo(model, held_out)
    return {"steps": budget["steps"], "train_minutes": clock.minutes, "accuracy": acc, "curve": curve,
            "neg_elbo": elbo,
            "kl_cont": sum(v for k, v in kls.items() if k.startswith("z")), "kl_disc": kls.get("c0"),
            "per_dim_kl": kls, "config": dict(model.config)}


RUNS = {"vae": run_vae, "beta_vae": run_beta_vae, "joint_vae": run_joint_vae}


def result_path(name):
    return os.path.join(CACHE, f"quality_vae_{name}.json")


def section(results, command):
    rows = ["| model | budget | measured (held-out 2,000) | target / reference | train min |",
            "| --- | --- | --- | --- | --- |"]
    if "vae" in results:
        r = results["vae"]
        rows.append(f"| vae (MLP 400 hidden, 20 latents), binarized | {r['steps']:,} steps x {BATCH} | NLL (k=100) "
                    f"**{r['nll_k100']:.1f}** nats, -ELBO {r['neg_elbo']:.1f} | published {PUBLISHED_NLL} nats "
                    f"(60,000 training images) | {r['train_minutes']:.1f} |")
    if "beta_vae" in results:
        r = results["beta_vae"]
        ok = "yes" if r["relative_gap"] <= 0.10 else "NO"
        rows.append(f"| beta_vae B (conv, 10 latents, gamma 1000) | {r['steps']:,} steps (= C_stop) | KL at the end "
                    f"of the ramp **{r['held_out_kl']:.2f}** nats vs C = {r['C']:.1f}: gap "
                    f"{100 * r['relative_gap']:.1f}%; training KL within {100 * r['train_follow_gap']:.1f}% of C "
                    f"on average over the ramp's second half, {r['train_kl_last_log']:.2f} nats over the last 25 steps | within 10% of C: {ok} | {r['train_minutes']:.1f} |")
    if "joint_vae" in results:
        r = results["joint_vae"]
        cfg = r["config"]
        ok = "yes" if r["accuracy"] >= 0.80 else "NO"
        curve = ", ".join(f"{100 * a:.0f}% at {step:,}" for step, a in r.get("curve", []))
        rows.append(f"| joint_vae ({cfg['arch']}, 10 cont + 1x10 cat; C_c ramp {cfg['disc_capacity_steps']:,}, C_z "
                    f"ramp {cfg['cont_capacity_steps']:,} steps) | {r['steps']:,} steps x {BATCH} | categorical "
                    f"code accuracy **{100 * r['accuracy']:.1f}%** ({curve}), -ELBO {r['neg_elbo']:.1f}, KL_z "
                    f"{r['kl_cont']:.2f}, KL_c {r['kl_disc']:.2f} nats | >= 80% (paper 88.7%, full MNIST): {ok} | "
                    f"{r['train_minutes']:.1f} |")
    machines = sorted({r["machine"] for r in results.values()})
    notes = [
        "## VAE, beta-VAE (B), Joint-VAE",
        "",
        f"Command: `{command}` (each model can be rerun alone with `--models NAME`). "
        f"Machine: {'; '.join(machines)}; one thread per run, on the 2-core machine shared with other "
        "engineers' jobs, so the minutes were taken under load.",
        "",
        *rows,
        "",
        "Budgets and scaling: Adam and batch 64 throughout. Burgess's capacity ramp is kept at the same number "
        "of epochs on 8,000 images: C 0 -> 25 nats over 100,000 iterations on dSprites (737,280 images, 8.7 "
        f"epochs) becomes {BETA_B_RAMP:,} steps, and the beta-VAE B row is measured right at the end of that "
        "ramp (the conv network, gamma 1000, Adam 5e-4). The VAE row is the MLP of pytorch/examples (400 hidden, "
        "20 latents, Adam 1e-3) on data binarized once (pixel ~ Bernoulli(grey)); the gap to the published "
        "figure is mostly the 7.5x smaller training set (the held-out -ELBO stops improving after a few "
        "thousand steps) and the short budget.",
        "",
        "Joint-VAE, what was tried (held-out accuracy, one run each, exploratory runs with the same split): "
        "the paper's settings (Adam 5e-4, gamma 30 for both terms, tau 0.67, 10 continuous + one 10-way latent, "
        f"C_z 0 -> 5 and C_c 0 -> 5 capped at log 10) with Dupont's 25,000-iteration ramps scaled by epochs to "
        f"{JOINT_RAMP:,} steps reached 21% after 750 steps on the conv network (stopped: ~0.5 steps/s under "
        "load) and plateaued at 34-35% from 2,000 to 6,000 steps on the MLP, with only 5 of the 10 "
        "categories ever chosen. A 4x slower C_z ramp (13,332 steps) gave 48% at 8,000 steps, still 5 "
        "categories; C_z over 40,000 steps 42% at 5,000. The diagnosis: the KL of q(c|x) to the uniform "
        "can be raised without carrying any information, by shifting every input's logits towards a few "
        "categories; when C_c rises 0.0015 nats per step (the epoch-scaled ramp; the paper's is 0.0002 per "
        "step) that is the quickest way to meet the capacity and the dropped categories never come back. "
        "With the C_c ramp over 12,000 steps (0.0004 nats/step, log 10 reached at step 5,520) all 10 "
        "categories stayed in use (checked at 3,000 and 6,000 steps), and the C_z ramp is kept twice as slow "
        "(24,000 steps) so that the continuous code does not take the digit identity first. That is the "
        "configuration in the table; its accuracy rises to 53% and levels off from 6,000 steps (an exploratory "
        "run of it with another seed: 48% at 3,000, 55% at 8,000, 56% at 10,000 steps). What is left are merged "
        "digits (in the final run 2 and 6 share a category, the 9s go to the 4 and the 7 categories, 3/5/8 "
        "share two) and one category of mixed leftovers. The minutes are over the ~10 min aim because the "
        "machine was loaded (about 1/7 of a core per process). Adam 1e-3 instead of 5e-4 changed nothing (56% at 8,000 steps). The same "
        "schedule on the conv network (the paper's architecture; one exploratory run, 29 min under load) "
        "reached 36%, 44%, 48%, 50%, 59%, 65% at 1,000 ... 6,000 steps, still rising 5 points per 1,000 steps "
        "when it stopped, where the MLP stands at 53-55% from 6,000 steps on; at 0.5-3 steps/s on this shared "
        "machine it could not be trained further here, so the **80% target is not met**. The next step is that "
        "conv configuration (arch='conv' in BUDGETS, then `--models joint_vae`) for 15,000-25,000 steps on a quiet core or a "
        "GPU.",
    ]
    return "\n".join(notes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="vae,beta_vae,joint_vae")
    p.add_argument("--mnist-root", default=None)
    p.add_argument("--out", default=os.path.join(CACHE, "runs"))
    p.add_argument("--write-only", action="store_true", help="rewrite the section from the stored results only")
    args = p.parse_args(argv)
    names = [] if args.write_only else [n for n in args.models.split(",") if n]
    for n in names:
        if n not in RUNS:
            raise SystemExit(f"--models: unknown model {n!r}; choose from {', '.join(RUNS)}")
    torch.set_num_threads(1)
    train_set, held_out = mnist_split(args.mnist_root)
    os.makedirs(CACHE, exist_ok=True)
    for name in names:
        out = os.path.join(args.out, name)
        if os.path.isdir(out):
            import shutil

            shutil.rmtree(out)
        result = RUNS[name](train_set, held_out, out)
        result["machine"] = machine()
        with open(result_path(name), "w") as f:
            json.dump(result, f, indent=1)
        print(name, {k: v for k, v in result.items() if k not in ("per_dim_kl", "config")}, flush=True)
    results = {n: json.load(open(result_path(n))) for n in RUNS if os.path.isfile(result_path(n))}
    write_section(SECTION, section(results, "python -m benchmarks.quality.vae"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
