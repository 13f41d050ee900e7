"""The benchmark harness every op family reuses.

A :class:`Case` names one op at one shape and dtype and gives the functions to time: the
pure-PyTorch reference and, per gentk backend, the gentk call. The harness times each
provider in three modes (forward, backward, forward+backward), takes the median over
repeats, records memory, and computes ratios against ``eager`` and ``compile`` measured in
the same run.

Memory: ``saved_MiB`` is what autograd keeps alive for backward (measured with
saved-tensor hooks; not observable inside a torch.compile graph, so blank there); on CUDA
``peak_MiB`` is the allocator's peak over one forward+backward.
"""
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

import gentk
from gentk.profile import cpu_model

MODES = ("forward", "backward", "forward+backward")


@dataclasses.dataclass
class Case:
    family: str                      # op family, e.g. "gaussian"
    op: str                          # public op name, e.g. "reparameterize"
    label: str                       # what the row shows, e.g. "4096x512"
    make_inputs: Callable[[torch.device, torch.dtype], Dict[str, torch.Tensor]]
    reference: Callable[..., object]  # pure PyTorch: eager, and compiled for `compile`
    gentk: Callable[..., object]      # the gentk call, run under gentk.use_backend(...)
    dtype: torch.dtype = torch.float32
    variants: Dict[str, Callable[..., object]] = dataclasses.field(default_factory=dict)
    # extra gentk providers, e.g. {"unfused": fn}: reported as gentk-<backend>-<name>
    bytes_moved: Optional[Callable[[Dict[str, torch.Tensor], str], int]] = None
    # minimal DRAM traffic of one call in a mode, for achieved bandwidth on GPU
    compile: bool = True              # False: no torch.compile provider (e.g. double backward)


def outputs_of(result):
    return [t for t in (result if isinstance(result, (tuple, list)) else (result,)) if t.requires_grad]


def grads_for(outputs):
    return [torch.ones_like(o) if o.dim() == 0 else torch.randn_like(o) for o in outputs]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Median wall time of a callable: perf_counter on CPU, CUDA events on GPU."""

    def __init__(self, device, min_repeats=10, max_repeats=200, budget_s=1.0, warmup=3):
        self.device = device
        self.min_repeats, self.max_repeats, self.budget_s, self.warmup = min_repeats, max_repeats, budget_s, warmup

    def __call__(self, setup, fn):
        """Median seconds of fn(state) where state = setup() is rebuilt, untimed, per call."""
        for _ in range(self.warmup):
            fn(setup())
        _sync(self.device)
        times = []
        start = time.perf_counter()
        while len(times) < self.max_repeats and (
            len(times) < self.min_repeats or time.perf_counter() - start < self.budget_s
        ):
            state = setup()
            _sync(self.device)
            if self.device.type == "cuda":
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                fn(state)
                end.record()
                torch.cuda.synchronize(self.device)
                times.append(begin.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn(state)
                times.append(time.perf_counter() - t0)
        return statistics.median(times)


def _saved_bytes(fn, inputs):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(**inputs)
    del out
    return total


def measure(case: Case, provider: str, fn: Callable, device: torch.device, timer: Timer, backend=None):
    """Times fn in the three modes; returns one result row per mode."""
    inputs = case.make_inputs(device, case.dtype)
    ctx = gentk.use_backend(backend) if backend else _null()

    def forward(_):
        with torch.no_grad():
            return fn(**inputs)

    def clear_grads():
        # as zero_grad(set_to_none=True) in training: accumulating into .grad is not the op's work
        for p in inputs.values():
            p.grad = None

    def make_graph():
        clear_grads()
        outs = outputs_of(fn(**inputs))
        return outs, grads_for(outs)

    def backward(state):
        outs, grads = state
        torch.autograd.backward(outs, grads)

    def forward_backward(_):
        outs = outputs_of(fn(**inputs))
        torch.autograd.backward(outs, _grads_for_cached(outs))

    cached = {}

    def _grads_for_cached(outs):
        key = tuple((o.shape, o.dtype) for o in outs)
        if key not in cached:
            cached[key] = grads_for(outs)
        return cached[key]

    rows = []
    with ctx:
        saved = None if provider == "compile" else _saved_bytes(fn, inputs)
        peak = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            forward_backward(None)
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device)
        for mode in MODES:
            if mode == "forward":
                seconds = timer(lambda: None, forward)
            elif mode == "backward":
                seconds = timer(make_graph, backward)
            else:
                seconds = timer(clear_grads, forward_backward)
            row = {
                "family": case.family, "op": case.op, "shape": case.label, "dtype": str(case.dtype).replace("torch.", ""),
                "provider": provider, "mode": mode, "median_ms": seconds * 1e3,
                "saved_MiB": None if saved is None else saved / 2**20,
                "peak_MiB": None if peak is None else peak / 2**20,
            }
            if case.bytes_moved is not None and device.type == "cuda":
                row["GBps"] = case.bytes_moved(inputs, mode) / seconds / 1e9
            rows.append(row)
        for p in inputs.values():
            p.grad = None
    return rows


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_case(case: Case, device: torch.device, backends: Sequence[str], timer: Timer, compile_reference=True,
             log=print):
    rows = []
    providers = [("eager", case.reference, None)]
    if compile_reference and case.compile:
        providers.append(("compile", torch.compile(case.reference, dynamic=False), None))
    for b in backends:
        providers.append((f"gentk-{b}", case.gentk, b))
        for name, fn in case.variants.items():
            providers.append((f"gentk-{b}-{name}", fn, b))
    for provider, fn, b in providers:
        torch.manual_seed(0)
        rows += measure(case, provider, fn, device, timer, backend=b)
        log(f"  {case.op:<22} {case.label:<10} {provider:<26} "
            + "  ".join(f"{r['mode']}={r['median_ms']:.3f}ms" for r in rows[-3:]))
    add_ratios(rows)
    return rows


def add_ratios(rows):
    """speedup_vs_eager / speedup_vs_compile of each row against the rows of the same case and mode."""
    index = {(r["op"], r["shape"], r["dtype"], r["mode"], r["provider"]): r["median_ms"] for r in rows}
    for r in rows:
        key = (r["op"], r["shape"], r["dtype"], r["mode"])
        for base in ("eager", "compile"):
            t = index.get(key + (base,))
            r[f"vs_{base}"] = t / r["median_ms"] if t and r["median_ms"] > 0 else None


def machine_info(device: torch.device):
    info = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__, "gentk": gentk.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=os.path.dirname(__file__)).stdout.strip() or None
    except OSError:
        info["git"] = None
    return info


def copy_bandwidth_GBps(device: torch.device, mib=1024, repeats=20):
    """Measured device-to-device copy bandwidth (read + write) of a ``mib`` MiB buffer: the
    ceiling a memory-bound kernel is held against, nearer to reach than the datasheet peak."""
    src = torch.empty(mib << 20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * src.numel() / statistics.median(times) / 1e9


def _fmt(x, digits=2):
    return "" if x is None else f"{x:.{digits}f}"


def render_markdown(results: List[dict]) -> str:
    """BENCHMARKS.md from result files (each {"machine", "command", "rows"})."""
    out = [
        "# gentk benchmarks",
        "",
        "Generated by `python -m benchmarks` from the JSON files in `benchmarks/results/`; do not edit by hand.",
        "Times are medians; `vs eager` / `vs compile` are speedups of the row's provider over the pure-PyTorch",
        "reference and over torch.compile of it, measured side by side in the same process (>1 = faster).",
        "`saved MiB` is what autograd keeps for backward (blank for compile: not observable inside its graph).",
        "CPU machines are noisy: trust the ratios more than the absolute times.",
        "",
    ]
    for res in results:
        m = res["machine"]
        where = m.get("gpu") or f"{m['cpu']} ({m['cores']} cores, {m['threads']} threads, {m['cpu_capability']})"
        if m.get("copy_GBps"):
            where += f"; measured device-to-device copy {m['copy_GBps']:.0f} GB/s (datasheet {m.get('peak_GBps')})"
        out += [f"## {res['title']}", "", f"- machine: {where}",
                f"- torch {m['torch']}, gentk {m['gentk']} (git {m.get('git')}), {m['date']}",
                f"- command: `{res['command']}`", ""]
        cols = ["op", "shape", "dtype", "mode", "provider", "median ms", "vs eager", "vs compile", "saved MiB"]
        if any(r.get("peak_MiB") is not None for r in res["rows"]):
            cols.append("peak MiB")
        ceiling = m.get("copy_GBps") or m.get("peak_GBps")
        if any(r.get("GBps") is not None for r in res["rows"]):
            cols += ["GB/s", "% copy BW" if m.get("copy_GBps") else "% peak BW"]
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        for r in res["rows"]:
            cells = [r["op"], r["shape"], r["dtype"], r["mode"], r["provider"], _fmt(r["median_ms"], 3),
                     _fmt(r.get("vs_eager")), _fmt(r.get("vs_compile")), _fmt(r.get("saved_MiB"), 1)]
            if "peak MiB" in cols:
                cells.append(_fmt(r.get("peak_MiB"), 1))
            if "GB/s" in cols:
                bw = r.get("GBps")
                cells += [_fmt(bw, 0), _fmt(100 * bw / ceiling if bw and ceiling else None, 0)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        if res.get("notes"):
            out += res["notes"] + [""]
    return "\n".join(out)


def write_results(path, title, command, machine, rows, notes=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"title": title, "command": command, "machine": machine, "rows": rows, "notes": notes or []},
                  f, indent=1)
    os.replace(tmp, path)


def render_all(results_dir, markdown_path):
    files = sorted(f for f in os.listdir(results_dir) if f.endswith(".json"))
    results = []
    for name in files:
        with open(os.path.join(results_dir, name)) as f:
            results.append(json.load(f))
    with open(markdown_path, "w") as f:
        f.write(render_markdown(results))
