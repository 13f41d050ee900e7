"""Training-step time of a model with pure PyTorch vs gentk's kernels, interleaved.

    python -m benchmarks.model_steps cyclegan --data digits-thickness --resolution 128 --batch-size 1
    python -m benchmarks.model_steps stargan --data digits-colour --resolution 128 --batch-size 4

`gentk profile` times the two backends one after the other, and on a shared CPU the second
half can run 20-30% slower for reasons that have nothing to do with it (the identical
convolution kernels did). Here the two models (same seed, same batch) take turns step by
step, in alternating order, and the medians are compared.
"""
import argparse
import statistics
import time

import gentk
from gentk.data import load
from gentk.models import build
from gentk.train import seed_everything
from gentk.train.trainer import _fetch


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.model_steps", description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--data", required=True)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5, help="rounds of one step each (the first is warm-up)")
    args = p.parse_args(argv)
    data = load(args.data, "train", resolution=args.resolution)
    batch = _fetch(data, list(range(args.batch_size)))
    image, *rest = data[0]
    config = dict(resolution=args.resolution, channels=int(image.shape[0]))
    if args.model == "stargan":
        config["c_dim"] = int(rest[0].numel())
    models = {}
    for backend in ("torch", "auto"):
        seed_everything(0)
        models[backend] = build(args.model, **config)
        models[backend].train()
    times = {"torch": [], "auto": []}
    for r in range(args.rounds):
        for backend in ("torch", "auto") if r % 2 == 0 else ("auto", "torch"):
            with gentk.use_backend(backend):
                start = time.perf_counter()
                models[backend].train_step(batch)
                seconds = time.perf_counter() - start
            if r:
                times[backend].append(seconds)
    torch_s, gentk_s = statistics.median(times["torch"]), statistics.median(times["auto"])
    print(f"{args.model} {args.resolution}x{args.resolution} batch {args.batch_size}: step (median of "
          f"{args.rounds - 1}) torch {torch_s * 1e3:.0f} ms, gentk {gentk_s * 1e3:.0f} ms, "
          f"speedup {torch_s / gentk_s:.2f}x")


if __name__ == "__main__":
    main()
