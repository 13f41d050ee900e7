"""InfoGAN's categorical-code agreement against training steps, for choosing a budget or a setting
without looking at the test images: trains on the first 50,000 training images (the last 10,000
are held out) and scores every checkpoint as benchmarks/quality/gan.py scores its final one
(10,000 samples, 1,000 per code value, read by the evaluator, one-to-one map).

    python -m benchmarks.quality.infogan_steps OUT [--steps 16000] [--every 2000] [--seed 0]
        [--batch-size 64] [--set key=value ...] [--resume]

--set overrides a setting of gan.py's infogan run (say lambda_cat=2); --resume continues the run
in OUT to --steps. One line per checkpoint goes to stdout.
"""
import argparse
import ast
import os
import time

import torch

from benchmarks.quality.common import mnist_evaluator, mnist_validation_split
from benchmarks.quality.gan import SETTINGS, code_agreement
from gentk.models import build
from gentk.train import Trainer
from gentk.train.checkpoint import list_checkpoints, model_from_checkpoint


def parse_setting(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set: expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=16000)
    p.add_argument("--every", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=SETTINGS["infogan"]["batch_size"])
    p.add_argument("--set", type=parse_setting, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = {**SETTINGS["infogan"]["config"], **dict(args.set)}
    train, _ = mnist_validation_split()
    evaluator, _ = mnist_evaluator()
    checkpoints = os.path.join(args.out, "checkpoints")
    start = time.time()
    trainer = Trainer(build("infogan", resolution=28, channels=1, **config), train, args.out, steps=args.steps,
                      batch_size=args.batch_size, seed=args.seed, log_every=500,
                      sample_every=args.steps, checkpoint_every=args.every, keep_last=10 ** 6, device="cpu",
                      progress=False, tensorboard=False, overwrite=not args.resume)
    trainer.fit(resume=list_checkpoints(checkpoints)[-1][1] if args.resume else None)
    minutes = (time.time() - start) / 60
    for _, path in list_checkpoints(checkpoints):
        model, state = model_from_checkpoint(path)
        _, agreement, _ = code_agreement(model.eval(), evaluator)
        print(f"{config} batch {args.batch_size} seed {args.seed} step {state['step']}: "
              f"agreement {100 * agreement:.1f}% (this call trained {minutes:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
