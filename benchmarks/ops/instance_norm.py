"""Benchmark cases of the instance-norm family: instance norm + ReLU (the CycleGAN /
pix2pix layer) in contiguous and channels_last memory formats, against F.instance_norm
followed by F.relu (eager and torch.compile)."""
import torch

import gentk
from benchmarks.harness import Case
from gentk.ops.instance_norm import reference as ref

SHAPES = [(8, 256, 64, 64), (1, 64, 256, 256)]
FORMATS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}


def _inputs(shape, fmt):
    def make(device, dtype):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g, dtype=dtype).to(device).contiguous(memory_format=fmt)
        return {"x": x.requires_grad_()}

    return make


def _bytes(inputs, mode):
    # fwd: read x, write y; bwd: read x, grad_y, write grad_x (the statistics are negligible)
    elems = inputs["x"].numel() * inputs["x"].element_size()
    return {"forward": 2 * elems, "backward": 3 * elems, "forward+backward": 5 * elems}[mode]


def cases(dtype=torch.float32):
    out = []
    for shape in SHAPES:
        for fmt_name, fmt in FORMATS.items():
            out.append(Case(
                "instance_norm", "instance_norm_relu", "x".join(map(str, shape)) + " " + fmt_name,
                _inputs(shape, fmt),
                reference=lambda x: ref.instance_norm(x, activation="relu"),
                gentk=lambda x: gentk.instance_norm(x, activation="relu"),
                dtype=dtype,
                bytes_moved=_bytes,
            ))
    return out


# ---- end to end: a ResNet-9 CycleGAN generator training step, patched vs plain ---------

class _ResnetBlock(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        nn = torch.nn
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


def resnet9_generator(ngf=64):
    """CycleGAN's ResNet-9 generator as written in plain PyTorch (instance norm, no affine)."""
    nn = torch.nn
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(2):
        m = 2 ** i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * m * 2),
                   nn.ReLU(True)]
    layers += [_ResnetBlock(ngf * 4) for _ in range(9)]
    for i in range(2):
        m = 2 ** (2 - i)
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


# Top-level profiler events of normalization and activation, counted with everything they
# call (F.instance_norm's reshapes and copies, batch_norm, the backward nodes' kernels).
# F.instance_norm returns a view, so the generator's in-place ReLU(True) after it records
# CopySlices and AsStridedBackward0 nodes: their backward time belongs to norm + ReLU too.
# gentk's fused op is counted the same way in the patched step: gentk::instance_norm, and the
# backward node of its C++ autograd (CppNode<gentk::...::InstanceNorm>) or, for the Triton
# twin, of its Python one.
NORM_ACT_FORWARD = ("aten::instance_norm", "aten::relu", "aten::relu_", "aten::leaky_relu", "aten::leaky_relu_",
                    "gentk::instance_norm")
NORM_ACT_BACKWARD = ("BatchNorm", "Relu", "Threshold", "LeakyRelu", "CopySlices", "AsStridedBackward",
                     "::InstanceNorm>", "gentk_instance_norm")
BACKWARD_NODE = "autograd::engine::evaluate_function: "


def _is_norm_act(key):
    if key in NORM_ACT_FORWARD:
        return True
    return key.startswith(BACKWARD_NODE) and any(k in key[len(BACKWARD_NODE):] for k in NORM_ACT_BACKWARD)


def _train_step(model, x):
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()


def _norm_act_ms(model, x):
    """(milliseconds of normalization + activation, forward and backward, in one profiled
    training step; that step's total self time in milliseconds)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        _train_step(model, x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.cpu_time_total for e in events if _is_norm_act(e.key)) / 1e3, total / 1e3


def end_to_end(size=128, batch=1, ngf=64, repeats=15, fmt=torch.contiguous_format):
    """Training-step time of the generator with and without gentk.patch (medians, timed in
    turns), and the profiler's share of the plain step spent in normalization + activation
    (forward and backward): the most any norm kernel could save. The profiler also gives
    the norm + activation time of the patched step: the saving without the convolutions'
    step-to-step noise, which on this CPU is larger than the whole bound."""
    from gentk.profile import interleaved_step_times

    torch.manual_seed(0)
    plain = resnet9_generator(ngf).to(memory_format=fmt)
    patched = gentk.patch(resnet9_generator(ngf).to(memory_format=fmt))
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    with gentk.use_backend("cpp"):
        for model in (plain, patched, plain, patched):
            _train_step(model, x)
        plain_norm, plain_total = _norm_act_ms(plain, x)
        patched_norm, _ = _norm_act_ms(patched, x)
        t = interleaved_step_times({"plain": lambda: _train_step(plain, x), "patched": lambda: _train_step(patched, x)},
                                   steps=repeats, device="cpu")
    share = plain_norm / plain_total
    saved = (t["plain"] - t["patched"]) / t["plain"]
    return {"plain_s": t["plain"] / 1e3, "patched_s": t["patched"] / 1e3, "speedup": t["plain"] / t["patched"],
            "norm_act_share": share, "fraction_of_bound": saved / share if share > 0 else None,
            "norm_act_ms_plain": plain_norm, "norm_act_ms_patched": patched_norm,
            "norm_act_saved_fraction": 1 - patched_norm / plain_norm}


# ---- roofline: the norm + ReLU cases against this process's own memory bandwidth ----------

def _median_s(fn, repeats=15, warmup=3):
    import statistics
    import time
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def roofline(shape, fmt=torch.contiguous_format, repeats=15):
    """Forward+backward of norm + ReLU (eager and gentk cpp) against streaming passes over
    the same number of bytes, timed in the same process: a read pass (x.sum()), a write
    pass into a reused buffer, and a write into a fresh allocation (first-touch page
    faults where malloc maps it). The fused kernel's floor is 3 reads (x; x and grad_y)
    and 2 writes (y; grad_x) of x's size; `max_vs_eager` is the eager time over that floor:
    the most any kernel could gain over eager here."""
    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
    grad = torch.randn(shape).contiguous(memory_format=fmt)
    flat, out = torch.randn(x.numel()), torch.empty(x.numel())
    read = _median_s(lambda: flat.sum(), repeats)
    write = _median_s(lambda: out.fill_(1.0), repeats)
    fresh = _median_s(lambda: torch.empty(x.numel()).fill_(1.0), repeats)
    nbytes = x.numel() * x.element_size()
    r = {"MiB": nbytes / 2**20, "read_GBps": nbytes / read / 1e9, "write_GBps": nbytes / write / 1e9,
         "fresh_write_GBps": nbytes / fresh / 1e9, "floor_ms": (3 * read + 2 * write) * 1e3}

    def step(fn):
        def run():
            x.grad = None
            fn(x).backward(grad)
        return run

    with gentk.use_backend("cpp"):
        for name, fn in (("eager", lambda t: ref.instance_norm(t, activation="relu")),
                         ("gentk", lambda t: gentk.instance_norm(t, activation="relu"))):
            r[name + "_ms"] = _median_s(step(fn), repeats) * 1e3
            r[name + "_read_passes"] = r[name + "_ms"] / (read * 1e3)
    r["max_vs_eager"] = r["eager_ms"] / r["floor_ms"]
    r["vs_eager"] = r["eager_ms"] / r["gentk_ms"]
    r["gentk_of_floor"] = r["floor_ms"] / r["gentk_ms"]
    return r


PER_CALL_SHAPES = [(1, 3, 4, 4), (1, 256, 32, 32)]  # fixed costs alone; a ResNet-9 block's norm at 128 px


def per_call_us(calls=200, warmup=20):
    """Median microseconds of one norm + ReLU call, forward and forward+backward, eager and
    gentk, at sizes where the fixed cost per call (Python, dispatch, autograd) is a large
    part of the time."""
    def median_us(fn):
        return _median_s(fn, calls, warmup) * 1e6

    out = {}
    with gentk.use_backend("cpp"):
        for shape in PER_CALL_SHAPES:
            x = torch.randn(shape, requires_grad=True)
            grad = torch.randn(shape)
            for name, fn in (("eager", lambda t: ref.instance_norm(t, activation="relu")),
                             ("gentk", lambda t: gentk.instance_norm(t, activation="relu"))):
                def step(fn=fn):
                    fn(x).backward(grad)
                    x.grad = None
                out["x".join(map(str, shape)), name] = (median_us(lambda fn=fn: fn(x)), median_us(step))
    return out


def targets_in_turns(rounds=30):
    """The issue's norm + ReLU cases, forward+backward, eager / torch.compile / gentk cpp in
    both memory formats, timed in turns by gentk.profile.interleaved_step_times (all six
    providers of a shape in one rotation): the harness times one provider after another,
    and on this shared VM its figures for these cases have moved by 30% between runs.
    Returns {shape label: {provider label: median ms}}."""
    from gentk.profile import interleaved_step_times

    out = {}
    for shape in SHAPES:
        fns = {}
        for fmt_name, fmt in FORMATS.items():
            x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
            grad = torch.randn(shape).contiguous(memory_format=fmt)
            compiled = torch.compile(lambda t: ref.instance_norm(t, activation="relu"), dynamic=False)
            for name, fn in (("eager", lambda t: ref.instance_norm(t, activation="relu")), ("compile", compiled),
                             ("gentk", lambda t: gentk.instance_norm(t, activation="relu"))):
                def run(fn=fn, x=x, grad=grad):
                    x.grad = None
                    fn(x).backward(grad)
                fns[f"{name} {fmt_name}"] = run
        with gentk.use_backend("cpp"):
            for fn in fns.values():
                fn()
                fn()
            out["x".join(map(str, shape))] = interleaved_step_times(fns, steps=rounds, device="cpu")
    return out


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.ops.instance_norm",
                                description="ResNet-9 CycleGAN generator training step: gentk.patch vs plain")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--roofline", action="store_true",
                   help="also time the norm + ReLU cases against read / write passes over the same bytes")
    p.add_argument("--per-call", action="store_true",
                   help="also time single calls at small shapes, where the fixed cost per call shows")
    p.add_argument("--turns", action="store_true",
                   help="also time the norm + ReLU cases (eager, compile, gentk; both formats) in turns")
    args = p.parse_args()
    if args.per_call:
        for (label, name), (fwd, step) in per_call_us().items():
            print(f"{label} {name}: forward {fwd:.0f} us, forward+backward {step:.0f} us (medians of single calls)")
    if args.turns:
        for label, t in targets_in_turns().items():
            print(f"{label} fwd+bwd, median ms in turns: " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
            for f in FORMATS:
                print(f"  {f}: gentk {t['eager ' + f] / t['gentk ' + f]:.2f}x eager, "
                      f"{t['compile ' + f] / t['gentk ' + f]:.2f}x compile")
            print(f"  gentk NHWC / NCHW time: {t['gentk NHWC'] / t['gentk NCHW']:.2f}")
    if args.roofline:
        for shape in SHAPES:
            for name, fmt in FORMATS.items():
                r = roofline(shape, fmt)
                print(f"{'x'.join(map(str, shape))} {name} ({r['MiB']:.0f} MiB): read {r['read_GBps']:.1f} GB/s, "
                      f"write {r['write_GBps']:.1f} GB/s, fresh write {r['fresh_write_GBps']:.1f} GB/s; "
                      f"fwd+bwd eager {r['eager_ms']:.1f} ms ({r['eager_read_passes']:.1f} read passes), "
                      f"gentk {r['gentk_ms']:.1f} ms ({r['gentk_read_passes']:.1f}), floor (3 reads + 2 writes) "
                      f"{r['floor_ms']:.1f} ms: gentk {r['vs_eager']:.2f}x eager, at {100 * r['gentk_of_floor']:.0f}% "
                      f"of the floor; the floor is {r['max_vs_eager']:.2f}x eager")
    for name, fmt in FORMATS.items():
        r = end_to_end(args.size, args.batch, args.ngf, args.repeats, fmt)
        print(f"{name}: plain {r['plain_s'] * 1e3:.1f} ms, patched {r['patched_s'] * 1e3:.1f} ms, "
              f"speedup {r['speedup']:.2f}x; norm+activation share of the plain step "
              f"{100 * r['norm_act_share']:.1f}% (bound {1 / (1 - r['norm_act_share']):.2f}x); "
              f"reached {100 * r['fraction_of_bound']:.0f}% of the bound. Profiled norm+activation time "
              f"{r['norm_act_ms_plain']:.1f} ms plain, {r['norm_act_ms_patched']:.1f} ms patched: "
              f"{100 * r['norm_act_saved_fraction']:.0f}% of it saved")
