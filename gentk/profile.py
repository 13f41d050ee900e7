"""Profile a training step: ``profile_step(fn, ...)`` times warm calls of ``fn`` and
reports step time, images per second, peak memory and torch.profiler's top operators,
optionally writing a Chrome trace (chrome://tracing, Perfetto).
``interleaved_step_times(fns)`` compares several step functions with their steps taken in
turns (what ``gentk profile`` uses for the torch-vs-gentk speedup).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over the timed steps minus what
was allocated before them. On CPU PyTorch keeps no allocator statistics, so it is the
largest rise of torch.profiler's "Total Allocated" memory events during the profiled
steps: the bytes a step allocates beyond the tensors alive before it (parameters,
optimizer state); with ``profile_steps=0`` it falls back to the peak growth of the resident set size
sampled every millisecond from /proc/self/statm. ``memory_method`` in the result says which.
"""
import json
import os
import platform
import statistics
import tempfile
import threading
import time

import torch


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo where there is one), for reports and keys."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class _RssSampler:
    def __init__(self, interval=0.001):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self):
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            return 0

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def top_operators(prof, top=10):
    """[(name, self time ms per profiled run, calls, share of total self time)] sorted by self time."""
    events = prof.key_averages()
    use_cuda = any(getattr(e, "self_device_time_total", 0) for e in events)
    key = "self_device_time_total" if use_cuda else "self_cpu_time_total"
    total = sum(getattr(e, key) for e in events) or 1
    rows = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:top]
    return [{"name": e.key, "self_ms": getattr(e, key) / 1000, "calls": e.count,
             "share": getattr(e, key) / total} for e in rows]


def interleaved_step_times(fns, *, steps=20, device=None):
    """Median milliseconds per call of each of ``fns`` (label -> callable), timed in turns:
    round r calls them in order, round r + 1 in reverse order. On a shared machine the speed
    drifts over seconds; timing one function's steps after the other's charges the drift to
    whichever runs second, turns charge it to both alike. Call each once beforehand to warm up."""
    if steps < 1:
        raise ValueError(f"interleaved_step_times: steps must be >= 1, got {steps}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    labels = list(fns)
    times = {label: [] for label in labels}
    for r in range(steps):
        for label in labels if r % 2 == 0 else labels[::-1]:
            _sync(device)
            start = time.perf_counter()
            fns[label]()
            _sync(device)
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) * 1000 for label, t in times.items()}


def profile_step(fn, *, steps=20, warmup=5, images_per_step=None, device=None, trace=None, top=10,
                 profile_steps=3):
    """Call fn() warmup times, then time `steps` calls; then profile `profile_steps` more calls.

    Returns a dict: step_ms (median), step_ms_mean, images_per_s (when images_per_step is
    given), peak_memory_bytes, memory_method, top_ops (torch.profiler, by self time) and
    trace (the path written, when asked)."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"profile_step: steps must be >= 1 and warmup >= 0, got {steps}, {warmup}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        for _ in range(steps):
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
        peak, method = torch.cuda.max_memory_allocated(device) - before, "cuda max_memory_allocated"
    else:
        with _RssSampler() as rss:
            for _ in range(steps):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
        peak, method = rss.peak - rss.base, "peak RSS growth (/proc/self/statm, 1 ms samples)"
    result = {
        "step_ms": statistics.median(times) * 1000,
        "step_ms_mean": statistics.fmean(times) * 1000,
        "steps": steps,
        "peak_memory_bytes": int(peak),
        "memory_method": method,
    }
    if images_per_step:
        result["images_per_s"] = images_per_step / statistics.median(times)
    if profile_steps:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities, profile_memory=device.type == "cpu") as prof:
            for _ in range(profile_steps):
                fn()
            _sync(device)
        result["top_ops"] = top_operators(prof, top)
        result["profile_steps"] = profile_steps
        for row in result["top_ops"]:
            row["self_ms"] /= profile_steps
        path = trace
        if device.type == "cpu" and not trace:
            handle, path = tempfile.mkstemp(suffix=".json")
            os.close(handle)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            prof.export_chrome_trace(path)
        if device.type == "cpu":
            with open(path) as f:
                events = json.load(f).get("traceEvents", [])
            allocated = [e["args"]["Total Allocated"] for e in events
                         if e.get("name") == "[memory]" and "Total Allocated" in e.get("args", {})]
            if allocated:
                # the largest rise from a low point to a later high point: a step's working memory,
                # insensitive to frees of blocks allocated before profiling (which never count)
                low, rise = allocated[0], 0
                for value in allocated:
                    low = min(low, value)
                    rise = max(rise, value - low)
                result["peak_memory_bytes"] = int(rise)
                result["memory_method"] = ("CPU allocator: largest rise of allocated bytes within the profiled "
                                           "steps (torch.profiler memory events)")
            if not trace:
                os.remove(path)
        if trace:
            result["trace"] = trace
    return result
