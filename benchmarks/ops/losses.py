"""Benchmark cases of the loss family: discriminator_loss on PatchGAN maps (real and fake
in one call), bernoulli_recon on MNIST-sized batches, l1_loss with a folded weight, and
the WGAN-GP gradient penalty of a small conv critic (time and saved memory).

Two extra measurements: `python -m benchmarks.ops.losses --memory` (the gradient penalty's
peak CPU memory, eager vs gentk plain and with chunk_size=8, exact allocator peaks from
torch.profiler's memory events, and their times taken in turns) and
`python -m benchmarks.ops.losses --strategy` (gradient
written in the forward pass and scaled in backward, vs recomputed in backward: the first
won on CPU, so the CPU autograd uses it)."""
import argparse

import torch

import gentk
from benchmarks.harness import Case
from gentk.ops.losses import reference as ref


def _logits(*shapes, target=False):
    def make(device, dtype):
        g = torch.Generator().manual_seed(0)
        out = {}
        names = ("real_logits", "fake_logits") if not target else ("logits",)
        for name, shape in zip(names, shapes):
            out[name] = (2 * torch.randn(shape, generator=g, dtype=dtype)).to(device).requires_grad_()
        if target:
            out["target"] = torch.rand(shapes[0], generator=g, dtype=dtype).to(device)
        return out

    return make


def _critic(device, dtype):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 4, 2, 1), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(16, 32, 4, 2, 1), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(32, 1, 4, 2, 1), torch.nn.Flatten(), torch.nn.Unflatten(1, (1, -1)),
    ).to(device=device, dtype=dtype)


class _GP:
    """WGAN-GP of a small critic on (16, 3, 128, 128); the critic's parameters get the gradient."""

    shape = (16, 3, 128, 128)

    def __init__(self):
        self.critic = None

    def make(self, device, dtype):
        g = torch.Generator().manual_seed(0)
        base = _critic(device, dtype)
        self.critic = lambda x: base(x).mean((1, 2))
        weight = base[0].weight
        return {"real": torch.randn(self.shape, generator=g, dtype=dtype).to(device),
                "fake": torch.randn(self.shape, generator=g, dtype=dtype).to(device),
                "weight": weight}

    # enable_grad: the penalty differentiates the critic even in the harness's no-grad
    # "forward" mode, which therefore times building the double-backward graph.
    def reference(self, real, fake, weight):
        with torch.enable_grad():
            return ref.gradient_penalty(self.critic, real, fake)

    def gentk(self, real, fake, weight, chunk_size=None):
        with torch.enable_grad():
            return gentk.gradient_penalty(self.critic, real, fake, chunk_size=chunk_size)


def cases(dtype=torch.float32):
    out = []
    for shape in [(16, 1, 30, 30), (256, 1, 64, 64)]:
        label = "x".join(map(str, shape))
        for mode in ("bce", "lsgan"):
            out.append(Case(
                "losses", f"discriminator_loss[{mode}]", label, _logits(shape, shape),
                reference=lambda real_logits, fake_logits, mode=mode: ref.discriminator_loss(
                    real_logits, fake_logits, mode),
                gentk=lambda real_logits, fake_logits, mode=mode: gentk.discriminator_loss(
                    real_logits, fake_logits, mode),
                dtype=dtype,
            ))
    out.append(Case(
        "losses", "generator_loss[bce]", "256x1x64x64", _logits((256, 1, 64, 64), (256, 1, 64, 64)),
        reference=lambda real_logits, fake_logits: ref.generator_loss(fake_logits, "bce"),
        gentk=lambda real_logits, fake_logits: gentk.generator_loss(fake_logits, "bce"),
        dtype=dtype,
    ))
    out.append(Case(
        "losses", "bernoulli_recon", "256x784", _logits((256, 784), target=True),
        reference=lambda logits, target: ref.bernoulli_recon(logits, target),
        gentk=lambda logits, target: gentk.bernoulli_recon(logits, target),
        dtype=dtype,
    ))
    out.append(Case(
        "losses", "l1_loss[w=100]", "16x3x128x128", _logits((16, 3, 128, 128), target=True),
        reference=lambda logits, target: ref.l1_loss(logits, target, weight=100.0),
        gentk=lambda logits, target: gentk.l1_loss(logits, target, weight=100.0),
        dtype=dtype,
    ))
    gp = _GP()
    out.append(Case(
        "losses", "gradient_penalty", "16x3x128x128", gp.make,
        reference=gp.reference, gentk=gp.gentk, dtype=dtype,
        variants={"chunk_size=8": lambda real, fake, weight: gp.gentk(real, fake, weight, chunk_size=8)},
        compile=False,  # torch.compile does not support double backward
    ))
    return out


# ---- peak CPU memory of the gradient penalty ----------------------------------------------

def allocator_peak_mib(provider, phase="forward+backward", chunk_size=None):
    """Exact CPU allocator figures of one gradient penalty, from torch.profiler's memory
    events (every allocation and free, in order): the peak of live bytes above what was
    live before the call, and the bytes allocated in all. ``phase`` "forward" stops after
    the penalty value (graph built, nothing freed by backward yet). Returns (peak MiB,
    allocated MiB). The critic's parameters exist before the call and do not count.
    ``chunk_size`` goes to gentk.gradient_penalty."""
    import json
    import os
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    gp = _GP()
    inputs = gp.make(torch.device("cpu"), torch.float32)
    fn = gp.reference if provider == "eager" else lambda **kw: gp.gentk(**kw, chunk_size=chunk_size)

    def step():
        out = fn(**inputs)
        if phase == "forward+backward":
            out.backward()
        return out

    with gentk.use_backend("cpp") if provider != "eager" else _Null():
        step()  # warm (first-call allocations of the libraries)
        inputs["weight"].grad = None
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = step()
        del out
        inputs["weight"].grad = None
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("name") == "[memory]"]
    finally:
        os.remove(path)
    live = peak = allocated = 0
    for e in sorted(events, key=lambda e: e["ts"]):
        change = e["args"]["Bytes"]
        live += change
        peak = max(peak, live)
        allocated += max(change, 0)
    return peak / 2**20, allocated / 2**20


def penalty_times_in_turns(rounds=40):
    """Forward+backward of the penalty, eager vs gentk (plain and chunk_size=8), timed in
    turns by gentk.profile.interleaved_step_times: on this shared VM the speed drifts over
    seconds, and the harness's one-provider-after-another figures for this case have moved
    by 20% between runs."""
    from gentk.profile import interleaved_step_times

    gp = _GP()
    inputs = gp.make(torch.device("cpu"), torch.float32)

    def step(fn):
        def run():
            fn(**inputs).backward()
            inputs["weight"].grad = None
        return run

    with gentk.use_backend("cpp"):
        fns = {"eager": step(gp.reference), "gentk-cpp": step(gp.gentk),
               "gentk-cpp chunk_size=8": step(lambda **kw: gp.gentk(**kw, chunk_size=8))}
        for fn in fns.values():
            fn()
        return interleaved_step_times(fns, steps=rounds, device="cpu")


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- gradient in forward vs recomputed in backward ----------------------------------------

def gradient_strategies(shape=(256, 1, 64, 64), mode="bce", repeats=50):
    """Op-level forward+backward of discriminator_loss on CPU both ways: (a) the loss op, then
    the backward op recomputing the gradient from the logits; (b) the *_with_grad op writing
    the gradient in the same pass, then scaling it by the upstream gradient (what the CPU
    autograd does; an upstream 1 skips the scaling). Returns median milliseconds."""
    import statistics
    import time

    ops = torch.ops.gentk
    g = torch.Generator().manual_seed(0)
    real, fake = 3 * torch.randn(shape, generator=g), 3 * torch.randn(shape, generator=g)
    upstream = torch.tensor(0.5)

    def recompute():
        ops.discriminator_loss(real, fake, mode, 1.0, 0.0, "mean")
        ops.discriminator_loss_backward(upstream, real, fake, mode, 1.0, 0.0, "mean")

    def in_forward():
        _, gr, gf = ops.discriminator_loss_with_grad(real, fake, mode, 1.0, 0.0, "mean")
        gr.mul(upstream), gf.mul(upstream)

    times = {"recompute": [], "in_forward": []}
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for name, fn in (("recompute", recompute), ("in_forward", in_forward)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ops.losses")
    p.add_argument("--memory", action="store_true", help="print the gradient penalty's peak CPU memory")
    p.add_argument("--strategy", action="store_true",
                   help="time gradient-in-forward against recompute-in-backward (CPU discriminator_loss)")
    args = p.parse_args(argv)
    if args.strategy:
        for shape in [(16, 1, 30, 30), (256, 1, 64, 64)]:
            for mode in ("bce", "lsgan"):
                t = gradient_strategies(shape, mode)
                print(f"discriminator_loss[{mode}] {'x'.join(map(str, shape))}: recompute {t['recompute']:.3f} ms, "
                      f"gradient in forward {t['in_forward']:.3f} ms ({t['recompute'] / t['in_forward']:.2f}x)")
    if args.memory:
        print("gradient_penalty 16x3x128x128, forward+backward, median ms timed in turns (40 rounds): "
              + ", ".join(f"{k} {v:.1f}" for k, v in penalty_times_in_turns().items()))
        for phase in ("forward", "forward+backward"):
            for name, chunk_size in (("eager", None), ("gentk-cpp", None), ("gentk-cpp", 8)):
                peak, allocated = allocator_peak_mib(name, phase, chunk_size)
                name += f" chunk_size={chunk_size}" if chunk_size else ""
                print(f"gradient_penalty 16x3x128x128 {name:<23} {phase:<16} allocator peak {peak:6.2f} MiB, "
                      f"allocated in all {allocated:7.2f} MiB (torch.profiler memory events, exact)")


if __name__ == "__main__":
    main()
