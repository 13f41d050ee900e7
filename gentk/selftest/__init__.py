"""``gentk selftest``: the kernels prove themselves on the device they land on.

For every op family and backend the cases of :mod:`gentk.selftest.cases` (parity with the
reference, noise statistics, forward+backward timings) run in child processes
(:mod:`gentk.selftest.runner`), so a kernel that faults takes down only a child. The verdict
(pass/fail per case, timings, the backend ``auto`` picks per family) is written as JSON under
``$XDG_CACHE_HOME/gentk`` (or ``~/.cache/gentk``), keyed by everything that could change it:
the device (GPU name, compute capability, driver; on CPU the CPU model and ISA) and the CUDA,
torch, triton and gentk versions. A verdict whose key differs, or that cannot be read, is
ignored with one line on stderr and made again, never trusted.

``auto`` on a CUDA tensor (:func:`gentk.backend.resolve`) asks :func:`auto_choice`: the
fastest backend that passed for the family on this device, else the reference. CPU tensors
never get here.
"""
import datetime
import importlib.metadata
import importlib.util
import json
import os
import sys
import time

import torch

from gentk import _extension
from gentk.profile import cpu_model
from gentk.selftest import runner
from gentk.selftest.cases import FAMILIES

PROVIDER = "gentk.selftest.cases:build"
FORMAT = 1  # of the verdict file
GPU_BACKENDS = ("cuda", "triton")


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gentk")


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_key(device):
    """What the verdict for ``device`` depends on."""
    import gentk

    device = torch.device(device)
    key = {"torch": torch.__version__, "triton": _version("triton"), "gentk": gentk.__version__,
           "cuda_kernels": _extension.has_cuda_kernels()}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        driver = getattr(torch._C, "_cuda_getDriverVersion", lambda: None)()
        key.update(gpu=torch.cuda.get_device_name(device), capability=f"{major}.{minor}", driver=driver,
                   cuda=torch.version.cuda)
    else:
        key.update(cpu=cpu_model(), isa=torch.backends.cpu.get_cpu_capability())
    return key


def verdict_path(key):
    name = key.get("gpu") or "cpu"
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
    return os.path.join(cache_dir(), f"selftest-{slug}.json")


def load_verdict(key, quiet=False):
    """The stored verdict for ``key``, or None (no file; or a corrupt or stale one, which is
    ignored with one line on stderr)."""
    path = verdict_path(key)
    if not os.path.exists(path):
        return None
    why = None
    try:
        with open(path) as f:
            verdict = json.load(f)
        if not (isinstance(verdict, dict) and verdict.get("format") == FORMAT
                and isinstance(verdict.get("families"), dict)
                and all(isinstance(v, dict) and v.get("chosen") in ("torch", "cpp") + GPU_BACKENDS
                        for v in verdict["families"].values())):
            why = "not a gentk selftest verdict"
        elif verdict.get("key") != key:
            old = verdict.get("key") if isinstance(verdict.get("key"), dict) else {}
            field = next(k for k in sorted(set(key) | set(old)) if old.get(k) != key.get(k))
            why = f"made for another setup: {field} {old.get(field)!r}, now {key.get(field)!r}"
    except (OSError, ValueError) as e:
        why = f"corrupt ({type(e).__name__}: {e})"
    if why is None:
        return verdict
    if not quiet:
        print(f"gentk: ignoring the selftest verdict {path}: {why}; it will be made again", file=sys.stderr)
    return None


def write_verdict(verdict):
    path = verdict_path(verdict["key"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(verdict, f, indent=1)
    os.replace(tmp, path)  # atomic: a reader sees the old verdict or the new one
    return path


def default_backends(device):
    if torch.device(device).type == "cuda":
        return list(GPU_BACKENDS)
    return ["cpp"] + (["triton"] if os.environ.get("TRITON_INTERPRET") == "1" else [])


def _unavailable(backend, device):
    """Why ``backend`` cannot run on ``device`` (so it is not tested), or None."""
    if backend == "triton":
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed"
        if torch.device(device).type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
            return "Triton runs on CPU only under TRITON_INTERPRET=1"
        return None
    if not _extension.available():
        return f"the compiled extension did not load ({_extension.load_error()})"
    if backend == "cuda" and not _extension.has_cuda_kernels():
        return "gentk was built without CUDA kernels"
    return None


def run(device, families=FAMILIES, backends=None, timing=True, compile=False, key=None, previous=None,
        provider=PROVIDER, stall_timeout_s=300.0):
    """Runs the selftest of ``families`` on ``device`` and writes the verdict (keeping the
    other families of ``previous``, a verdict with the same key); returns it."""
    device = str(torch.device(device))
    key = key or device_key(device)
    backends = list(backends or default_backends(device))
    skipped = {b: _unavailable(b, device) for b in backends}
    runnable = [b for b in backends if skipped[b] is None]
    spec = {"device": device, "families": list(families), "backends": runnable, "timing": timing,
            "compile": compile}
    module, _, attr = provider.partition(":")
    cases = getattr(importlib.import_module(module), attr)(**spec)
    results = runner.run_cases(provider, spec, cases, stall_timeout_s=stall_timeout_s)
    verdict = previous if previous and previous.get("key") == key else {"format": FORMAT, "key": key, "families": {}}
    verdict.update(device=device, date=datetime.datetime.now().isoformat(timespec="seconds"))
    for family in families:
        verdict["families"][family] = _family_verdict(family, backends, skipped, cases, results)
    verdict["path"] = write_verdict(verdict)
    return verdict


def _family_verdict(family, backends, skipped, cases, results):
    entry = {"backends": {}, "timings": {}}
    for b in backends:
        entry["backends"][b] = {"passed": False, "not_run": skipped[b], "cases": {}, "timings": {}}
    for case, result in zip(cases, results):
        if case.family != family:
            continue
        op = case.name.split("/", 2)[2]
        if case.backend == "torch":
            for provider, field in (("eager", "ms"), ("compile", "compile_ms")):
                if result["status"] == "pass" and result["detail"] and field in result["detail"]:
                    entry["timings"].setdefault(provider, {})[op] = result["detail"][field]
            continue
        b = entry["backends"][case.backend]
        if case.kind == "timing" and result["status"] == "pass":
            b["timings"][op] = result["detail"]["ms"]
        else:
            b["cases"][op] = {"status": result["status"], "message": result["message"]}
    for b in entry["backends"].values():
        b["passed"] = b["not_run"] is None and bool(b["cases"]) and all(
            c["status"] == "pass" for c in b["cases"].values())
    entry["chosen"] = _fastest(entry)
    return entry


def _fastest(entry):
    """The fastest backend that passed, over the forward+backward times of the family's
    timed ops; the reference (``torch``) when none passed or none is faster than it.
    Without timings: the first backend that passed."""
    passed = [name for name, b in entry["backends"].items() if b["passed"]]
    if not passed:
        return "torch"
    totals = {name: entry["backends"][name]["timings"] for name in passed}
    totals["torch"] = entry["timings"].get("eager", {})
    ops = set().union(*totals.values())
    if not ops or any(set(t) != ops for t in totals.values()):
        return passed[0]
    return min(totals, key=lambda name: sum(totals[name].values()))


# ---- auto on CUDA tensors ---------------------------------------------------------------------

_verdicts = {}  # device -> verdict, loaded (or made) once per process


def auto_choice(family, device):
    """The backend ``auto`` runs ``family`` with on the CUDA ``device``. Without a verdict for
    the family, the selftest runs once (without torch.compile timings), saying so on stderr;
    ``GENTK_SELFTEST=0`` keeps the reference untested."""
    if os.environ.get("GENTK_SELFTEST") == "0":
        return "torch"
    name = str(device)
    if name not in _verdicts:
        _verdicts[name] = load_verdict(device_key(device))
    verdict = _verdicts[name]
    if verdict is None or family not in verdict["families"]:
        key = device_key(device)
        print(f"gentk: first {family} call on {key.get('gpu', name)}: testing gentk's kernels once "
              "(gentk selftest; GENTK_SELFTEST=0 skips it) ...", end="", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        verdict = run(device, [family], key=key, previous=verdict)
        _verdicts[name] = verdict
        print(f" {time.perf_counter() - begin:.1f} s: auto uses {verdict['families'][family]['chosen']} "
              f"(gentk selftest --show)", file=sys.stderr)
    choice = verdict["families"][family]["chosen"]
    if choice == "cuda" and not _extension.has_cuda_kernels():
        return "torch"
    return choice


@torch.compiler.assume_constant_result
def auto_choice_by_name(family, device):
    """:func:`auto_choice` as torch.compile sees it: run once at trace time, its answer a
    constant of the graph (tracing cannot follow the verdict's file or the selftest's children)."""
    return auto_choice(family, torch.device(device))


# ---- the command ------------------------------------------------------------------------------

def table(verdict):
    """The verdict as a text table: per family and backend, cases passed, forward+backward
    time of the timed ops and speedups over the reference and torch.compile; then the
    cases that did not pass."""
    key = verdict["key"]
    where = (f"{key['gpu']} (compute capability {key['capability']}, driver {key['driver']}, CUDA {key['cuda']})"
             if "gpu" in key else f"{key['cpu']} ({key['isa']})")
    lines = [f"gentk selftest on {where}; torch {key['torch']}, triton {key['triton']}, gentk {key['gentk']}; "
             f"{verdict.get('date', '')}",
             f"{'family':<14} {'backend':<8} {'cases':>9} {'fwd+bwd ms':>11} {'vs eager':>9} {'vs compile':>11}  auto"]
    failures = []
    for family, entry in verdict["families"].items():
        eager, compiled = entry["timings"].get("eager", {}), entry["timings"].get("compile", {})
        rows = [("torch", None, eager)] + [(name, b, b["timings"]) for name, b in entry["backends"].items()]
        for name, b, timings in rows:
            if b is None:
                cases = "reference"
            elif b["not_run"]:
                cases = "not run"
            else:
                cases = f"{sum(c['status'] == 'pass' for c in b['cases'].values())}/{len(b['cases'])}"
            total = sum(timings.values()) if timings else None
            vs_eager = sum(eager.values()) / total if total and eager and set(eager) == set(timings) else None
            vs_compile = sum(compiled.values()) / total if total and compiled and set(compiled) == set(timings) \
                else None
            lines.append(f"{family:<14} {name:<8} {cases:>9} {_fmt(total, '.3f'):>11} {_fmt(vs_eager, '.2f', 'x'):>9} "
                         f"{_fmt(vs_compile, '.2f', 'x'):>11}  {'<-' if entry['chosen'] == name else ''}")
            if b is not None:
                if b["not_run"]:
                    failures.append(f"{family}/{name}: not run: {b['not_run']}")
                failures += [f"{family}/{name}/{op}: {c['status']}: {c['message']}"
                             for op, c in b["cases"].items() if c["status"] != "pass"]
    if failures:
        lines += ["", "not passed:"] + [f"  {f}" for f in failures]
    return "\n".join(lines)


def _fmt(value, spec, suffix=""):
    return "" if value is None else f"{value:{spec}}{suffix}"


def command(device, families, backends, show, timing, compile):
    """``gentk selftest``: run (or with ``show`` print) the verdict for ``device``; 0 when
    every tested backend passed, 1 otherwise."""
    key = device_key(device)
    if show:
        verdict = load_verdict(key)
        if verdict is None:
            print(f"gentk selftest: no verdict for {device} yet ({verdict_path(key)}); run `gentk selftest`")
            return 1
        print(table(verdict))
        return 0
    begin = time.perf_counter()
    verdict = run(device, families, backends, timing=timing, compile=compile, key=key,
                  previous=load_verdict(key, quiet=True))
    print(table(verdict))
    print(f"\n{time.perf_counter() - begin:.1f} s; verdict in {verdict['path']}")
    ok = all(b["passed"] for f in families for b in verdict["families"][f]["backends"].values() if not b["not_run"])
    return 0 if ok else 1
