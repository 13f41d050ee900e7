"""Quality of the VAE and beta-VAE (B) on the papers' MNIST protocol (benchmarks/quality/common.py):
train on the 60,000 training images, report on the 10,000 test images.

- vae: the MLP of the paper and pytorch/examples (400 hidden, 20 latents, Adam 1e-3) with
  dynamic binarization (every batch drawn anew as pixels ~ Bernoulli(grey level)); the
  importance-sampled NLL (k=200) on the test set binarized once (gentk.data.binarized, seed 0),
  next to the published figure. One run per seed.
- beta_vae --variant B: Burgess's capacity ramp kept at its number of epochs (100,000
  iterations on 737,280 dSprites images = 8.7 epochs = 8,138 steps on the 60,000), trained
  exactly to the end of the ramp; the test KL vs C = C_max there, and how closely the training
  KL followed C along the ramp's second half.

Joint-VAE has its own script (benchmarks/quality/joint_vae.py: gentk beside Dupont's code).
Each run's result is kept in benchmarks/results/quality_cache/quality_vae_<model>_s<seed>.json,
so models and seeds can run separately; the QUALITY.md section is rebuilt from all of them.
Seed 0's final weights go to benchmarks/results/weights/<model>.pt and its grid to docs/images/.

    python -m benchmarks.quality.vae [--models vae,beta_vae] [--seeds 0,1,2] [--mnist-root DIR]
"""
import argparse
import glob
import json
import os
import sys

import torch

from benchmarks.quality.common import (CACHE, IMAGES, MNIST_DATA, Stopwatch, keep_weights, machine, mnist_protocol,
                                       write_section)
from gentk import metrics
from gentk.data import binarized
from gentk.models import build
from gentk.train import Trainer, save_grid, seed_everything

SECTION = "vae"
BATCH = 64
K = 200
BETA_B_RAMP = round(100_000 * 60_000 / 737_280)
BUDGETS = {
    "vae": dict(epochs=40, config=dict(arch="mlp", binarize=True)),
    "beta_vae": dict(steps=BETA_B_RAMP, config=dict(variant="B", c_stop=BETA_B_RAMP)),
}
PUBLISHED = "89.9 nats (published, 60,000 training images), pythae 89.78"
TARGET_NLL = 95.0


def train(name, data, budget, out, seed):
    seed_everything(seed)
    model = build(name, **budget["config"])
    steps = budget.get("steps") or budget["epochs"] * (len(data) // BATCH)
    trainer = Trainer(model, data, out, steps=steps, batch_size=BATCH, seed=seed, progress=False, log_every=50,
                      sample_every=steps, checkpoint_every=steps, keep_last=1, tensorboard=False, overwrite=True,
                      config={"data": MNIST_DATA})
    with Stopwatch() as clock:
        trainer.fit()
    return model, trainer, clock


def logged(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def run_vae(train_set, test, out, seed):
    model, trainer, clock = train("vae", train_set, BUDGETS["vae"], out, seed)
    test_bin = binarized(test)  # what model.likelihood_data(test) gives: the fixed binary test set
    with Stopwatch() as eval_clock:
        torch.manual_seed(0)
        nll = metrics.importance_nll(model, test_bin, k=K)
        elbo = metrics.negative_elbo(model, test_bin)
    return model, trainer, {"steps": trainer.step, "train_minutes": clock.minutes, "eval_minutes": eval_clock.minutes,
                            "nll": nll, "neg_elbo": elbo, "config": dict(model.config)}


def run_beta_vae(train_set, test, out, seed):
    model, trainer, clock = train("beta_vae", train_set, BUDGETS["beta_vae"], out, seed)
    torch.manual_seed(0)
    kls = metrics.per_dimension_kl(model, test)
    records = [r for r in logged(out) if "C" in r]
    second_half = [r for r in records if r["step"] > trainer.step // 2]
    follow = sum(abs(r["kl"] - r["C"]) / r["C"] for r in second_half) / len(second_half)
    kl, c = sum(kls.values()), model.capacity()
    return model, trainer, {"steps": trainer.step, "train_minutes": clock.minutes, "C": c, "test_kl": kl,
                            "relative_gap": abs(kl - c) / c, "train_kl_last_log": records[-1]["kl"],
                            "train_follow_gap": follow, "per_dim_kl": kls,
                            "neg_elbo": metrics.negative_elbo(model, test), "config": dict(model.config)}


RUNS = {"vae": run_vae, "beta_vae": run_beta_vae}


def result_path(name, seed):
    return os.path.join(CACHE, f"quality_vae_{name}_s{seed}.json")


def mean(values):
    return sum(values) / len(values)


def minutes(runs):
    return ", ".join(f"{runs[s]['train_minutes']:.1f}" for s in sorted(runs))


def section(results, command):
    rows = ["| model | budget | measured on the 10,000 test images, per seed | mean | target / reference | "
            "train min (each) |", "| --- | --- | --- | --- | --- | --- |"]
    vae = results.get("vae", {})
    if vae:
        seeds = sorted(vae)
        nlls = [vae[s]["nll"] for s in seeds]
        per_seed = "; ".join(f"seed {s}: NLL {vae[s]['nll']:.2f}, -ELBO {vae[s]['neg_elbo']:.2f}" for s in seeds)
        ok = "met" if mean(nlls) <= TARGET_NLL else "NOT met"
        rows.append(f"| vae (MLP 400 hidden, 20 latents), dynamic binarization | {BUDGETS['vae']['epochs']} epochs "
                    f"({vae[seeds[0]]['steps']:,} steps x {BATCH}) | NLL (k={K}) in nats: {per_seed} | "
                    f"**{mean(nlls):.2f}** | <= {TARGET_NLL:g}: {ok}; {PUBLISHED} | "
                    f"{minutes(vae)} |")
    beta = results.get("beta_vae", {})
    if beta:
        seeds = sorted(beta)
        gaps = [beta[s]["relative_gap"] for s in seeds]
        per_seed = "; ".join(f"seed {s}: KL {beta[s]['test_kl']:.2f} vs C = {beta[s]['C']:.1f} (gap "
                             f"{100 * beta[s]['relative_gap']:.1f}%; training KL within "
                             f"{100 * beta[s]['train_follow_gap']:.1f}% of C over the ramp's second half)"
                             for s in seeds)
        ok = "met" if max(gaps) <= 0.10 else "NOT met"
        rows.append(f"| beta_vae B (conv, 10 latents, gamma 1000, Adam 5e-4) | {BETA_B_RAMP:,} steps x {BATCH} "
                    f"(= the ramp, C 0 -> 25 nats) | {per_seed} | gap {100 * mean(gaps):.1f}% | KL within 10% of C "
                    f"at the end of the ramp: {ok} | {minutes(beta)} |")
    machines = sorted({r["machine"] for runs in results.values() for r in runs.values()})
    return "\n".join([
        "## VAE, beta-VAE (B)",
        "",
        f"Command: `{command}` (a model or seed alone: `--models NAME --seeds S`). Machine: {'; '.join(machines)}; "
        "one thread per run.",
        "",
        *rows,
        "",
        "Binarization, as the likelihood papers do it: training batches are binarized anew each time they are "
        "drawn (`gentk train vae --binarize`: pixels ~ Bernoulli(grey level)), and the NLL and -ELBO are taken on "
        "the 10,000 test images binarized once with a fixed seed (`gentk.data.binarized(test, seed=0)`, what "
        "`gentk eval` uses for a model trained with `--binarize`). The NLL is the importance-sampled bound of "
        f"Burda et al. with k={K} posterior samples per image. Burgess's ramp keeps its number of epochs: "
        f"C 0 -> 25 nats over 100,000 iterations on 737,280 dSprites images is {BETA_B_RAMP:,} steps on the "
        "60,000, and the beta-VAE row is measured at its last step.",
        "",
        "![VAE samples, seed 0](docs/images/vae_mnist.png)",
        "",
        "![beta-VAE B latent traversals](docs/images/beta_vae_mnist.png)",
    ])


def pictures(name, model):
    model.eval()
    gen = torch.Generator().manual_seed(0)
    if name == "vae":
        images = model.sample(64, generator=gen)
        save_grid(os.path.join(IMAGES, "vae_mnist.png"), images, nrow=16)
    else:
        images, nrow = model.traverse(10)
        save_grid(os.path.join(IMAGES, "beta_vae_mnist.png"), images, nrow=nrow)
    model.train()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="vae,beta_vae")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--mnist-root", default=None)
    p.add_argument("--write-only", action="store_true", help="rewrite the section from the stored results only")
    args = p.parse_args(argv)
    names = [] if args.write_only else [n for n in args.models.split(",") if n]
    for n in names:
        if n not in RUNS:
            raise SystemExit(f"--models: unknown model {n!r}; choose from {', '.join(RUNS)}")
    torch.set_num_threads(1)
    os.makedirs(CACHE, exist_ok=True)
    if names:
        train_set, test = mnist_protocol(args.mnist_root)
    for name in names:
        for seed in [int(s) for s in args.seeds.split(",")]:
            out = os.path.join(CACHE, "runs", f"{name}_s{seed}")
            model, trainer, result = RUNS[name](train_set, test, out, seed)
            result.update(machine=machine(), seed=seed)
            if seed == 0:
                result["weights_mib"], result["weights_half"] = keep_weights(trainer.last_checkpoint, name)
                pictures(name, model)
            with open(result_path(name, seed), "w") as f:
                json.dump(result, f, indent=1)
            print(name, seed, {k: v for k, v in result.items() if k not in ("per_dim_kl", "config")}, flush=True)
    results = {}
    for path in glob.glob(os.path.join(CACHE, "quality_vae_*_s*.json")):
        name, seed = os.path.basename(path)[len("quality_vae_"):-len(".json")].rsplit("_s", 1)
        results.setdefault(name, {})[int(seed)] = json.load(open(path))
    write_section(SECTION, section(results, "python -m benchmarks.quality.vae"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
