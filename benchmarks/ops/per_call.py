"""python -m benchmarks.ops.per_call [--rounds N] [--repeats 3] [--threads 1] [--no-models]

The fixed cost per call of the Gaussian and Gumbel ops, at the small shapes real VAEs use
((64, 20) and (256, 128) latents, Joint-VAE's (64, 10) code), where Python, dispatch and
autograd bookkeeping outweigh the arithmetic: forward+backward of each benchmark case
(benchmarks/ops/gaussian.py, benchmarks/ops/gumbel.py), eager against gentk's cpp backend, and one
training step of the MLP VAE and of Joint-VAE, gentk (auto) against use_backend("torch").

Each comparison is timed in turns (gentk.profile.interleaved_step_times: one call of each,
in alternating order), so a shared machine's drift hits both alike; it is repeated
``--repeats`` times and the median of the ratios is reported (ratio = gentk / eager time,
below 1 is faster than eager).
"""
import argparse
import os
import statistics

import torch

import gentk
from benchmarks.ops import gaussian, gumbel
from benchmarks.harness import grads_for, outputs_of
from gentk.profile import interleaved_step_times

SMALL = {"gaussian": ("64x20", "256x128"), "gumbel": ("64x10",)}


def _op_cases():
    out = []
    for family, make in (("gaussian", gaussian.cases), ("gumbel", gumbel.cases)):
        out += [c for c in make() if c.label in SMALL[family]]
    return out


def _fwd_bwd(fn, inputs, backend=None):
    grads = {}

    def step():
        for t in inputs.values():
            t.grad = None
        if backend is None:
            outs = outputs_of(fn(**inputs))
        else:
            with gentk.use_backend(backend):
                outs = outputs_of(fn(**inputs))
        key = tuple((o.shape, o.dtype) for o in outs)
        if key not in grads:
            grads[key] = grads_for(outs)
        torch.autograd.backward(outs, grads[key])

    return step


def op_rows(rounds, repeats):
    rows = []
    for case in _op_cases():
        inputs = case.make_inputs(torch.device("cpu"), case.dtype)
        fns = {"eager": _fwd_bwd(case.reference, inputs), "cpp": _fwd_bwd(case.gentk, inputs, "cpp")}
        for fn in fns.values():
            for _ in range(50):
                fn()
        runs = [interleaved_step_times(fns, steps=rounds, device="cpu") for _ in range(repeats)]
        rows.append(_row(f"{case.op}", case.label, runs, "eager", "cpp"))
    return rows


def _model_step(name, backend, **config):
    from gentk.models import build

    torch.manual_seed(0)
    model = build(name, **config)
    model.train()
    g = torch.Generator().manual_seed(1)
    batch = (torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))

    def step():
        with gentk.use_backend(backend):
            model.train_step(batch)

    return step


def model_rows(rounds, repeats):
    rows = []
    for name, config in (("vae", {"arch": "mlp"}), ("joint_vae", {"arch": "mlp"})):
        config = {"channels": 1, "resolution": 28, **config}
        fns = {"torch": _model_step(name, "torch", **config), "gentk": _model_step(name, "auto", **config)}
        for fn in fns.values():
            for _ in range(5):
                fn()
        runs = [interleaved_step_times(fns, steps=rounds, device="cpu") for _ in range(repeats)]
        rows.append(_row(f"{name} (mlp) train step", "batch 64", runs, "torch", "gentk"))
    return rows


def _row(op, shape, runs, base, other):
    ratios = [r[other] / r[base] for r in runs]
    med = statistics.median(ratios)
    pick = runs[ratios.index(med)] if med in ratios else runs[0]
    return {"op": op, "shape": shape, f"{base}_us": pick[base] * 1e3, f"{other}_us": pick[other] * 1e3,
            "ratio": med, "ratios": ratios, "base": base, "other": other}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ops.per_call", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=1000, help="calls of each provider per repeat (default 1000)")
    p.add_argument("--model-rounds", type=int, default=200, help="training steps of each per repeat (default 200)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-models", action="store_true", help="only the op rows")
    p.add_argument("--no-ops", action="store_true", help="only the training-step rows")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    isa = os.environ.get("ATEN_CPU_CAPABILITY") or "unset"
    print(f"gentk per-call benchmark: {args.threads} thread(s), ATEN_CPU_CAPABILITY={isa}, "
          f"torch {torch.backends.cpu.get_cpu_capability()}")
    rows = [] if args.no_ops else op_rows(args.rounds, args.repeats)
    if not args.no_models:
        rows += model_rows(args.model_rounds, args.repeats)
    print(f"{'op':32} {'shape':9} {'base us':>10} {'gentk us':>10} {'ratio':>7}  (ratios of the repeats)")
    for r in rows:
        print(f"{r['op']:32} {r['shape']:9} {r[r['base'] + '_us']:10.1f} {r[r['other'] + '_us']:10.1f} "
              f"{r['ratio']:7.3f}  {' '.join(f'{x:.3f}' for x in r['ratios'])}   ({r['base']} vs {r['other']})")
    return rows


if __name__ == "__main__":
    main()
