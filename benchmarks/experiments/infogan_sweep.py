"""Short exploratory InfoGAN runs on a validation split of MNIST's training set (the first 50,000
training images train; the test images are never used, so nothing is tuned on them): a plain
loop of ``train_step`` on batches drawn with replacement, printing the categorical code's
agreement with the evaluator every ``every`` steps (10,000 samples, 1,000 per code value, the
best one-to-one map: what benchmarks/quality/gan.py reports) and, per step, the mean over seeds.

    python -m benchmarks.experiments.infogan_sweep STEPS [seeds=0,1,2,3] [every=1000] [batch=64]
        [prior=gaussian] [KEY=VALUE ...]

KEY=VALUE pairs set InfoGAN arguments over gan.py's quality settings (``width=32``,
``lambda_cont=1``, ``lambda_cat=2``). ``prior`` changes the distribution of G's 62 noise inputs,
the one input the model does not expose: ``uniform`` draws U(-1, 1) as the paper's code
(openai/InfoGAN) does, ``sigma:S`` draws N(0, S^2), which weighs the categorical code more
against the noise in G's first layer (ClusterGAN's argument for a narrow prior).

QUALITY.md's InfoGAN notes list what these runs found.
"""
import math
import sys
import time

import torch
from torch import nn

from benchmarks.quality.common import mnist_evaluator, mnist_validation_split
from benchmarks.quality.gan import SETTINGS, code_agreement
from benchmarks.experiments.joint_vae_sweep import parse_value
from gentk.models import build
from gentk.train import seed_everything

OPTIONS = {"seeds": "0,1,2,3", "every": 1000, "batch": SETTINGS["infogan"]["batch_size"], "prior": "gaussian"}


class NoisePrior(nn.Module):
    """G behind a map of its first ``noise`` inputs, drawn N(0, 1) by the model, to another prior:
    uniform (u = erf(z / sqrt 2) is U(-1, 1)) or N(0, sigma^2)."""

    def __init__(self, generator, noise, prior):
        super().__init__()
        self.inner, self.noise = generator, noise
        if prior == "uniform":
            self.transform = lambda z: torch.erf(z / math.sqrt(2))
        elif prior.startswith("sigma:") and isinstance(sigma := parse_value(prior[6:]), (int, float)) and sigma > 0:
            self.transform = lambda z: sigma * z
        else:
            raise SystemExit(f"prior must be gaussian, uniform or sigma:S with S > 0, got {prior!r}")

    def forward(self, x, labels=None):
        return self.inner(torch.cat([self.transform(x[:, :self.noise]), x[:, self.noise:]], 1), labels)


def run(config, seed, steps, every, batch, prior, train, evaluator):
    seed_everything(seed)
    model = build("infogan", resolution=28, channels=1, **config)
    if prior != "gaussian":
        model.generator = NoisePrior(model.generator, model.noise, prior)
    images, labels = train.tensors
    draw = torch.Generator().manual_seed(seed)
    agreement = {}
    model.train()
    for step in range(1, steps + 1):
        index = torch.randint(len(images), (batch,), generator=draw)
        model.train_step((images[index], labels[index]))
        if step % every == 0 or step == steps:
            agreement[step] = code_agreement(model.eval(), evaluator)[1]
            model.train()
    return agreement


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit(__doc__)
    steps, options, config = int(argv[0]), dict(OPTIONS), dict(SETTINGS["infogan"]["config"])
    for arg in argv[1:]:
        key, _, value = arg.partition("=")
        (options if key in OPTIONS else config)[key] = value if key in ("seeds", "prior") else parse_value(value)
    torch.set_num_threads(1)
    train, _ = mnist_validation_split()
    evaluator, _ = mnist_evaluator()
    label = " ".join(f"{k}={v}" for k, v in config.items()) + f" batch={options['batch']} prior={options['prior']}"
    results = []
    for seed in [int(s) for s in str(options["seeds"]).split(",")]:
        start = time.time()
        agreement = run(config, seed, steps, int(options["every"]), int(options["batch"]), options["prior"], train,
                        evaluator)
        results.append(agreement)
        print(f"{label} seed {seed}: " + " ".join(f"{s}:{100 * a:.1f}%" for s, a in agreement.items())
              + f" ({(time.time() - start) / 60:.1f} min)", flush=True)
    means = {s: sum(r[s] for r in results) / len(results) for s in results[0]}
    print(f"{label} mean of {len(results)} seeds: " + " ".join(f"{s}:{100 * a:.1f}%" for s, a in means.items()),
          flush=True)


if __name__ == "__main__":
    main()
