"""gentk.profile_step on a user's own training step, and step times taken in turns."""
import json
import time

import pytest
import torch

import gentk


def test_profile_step_reports_time_memory_ops_and_trace(tmp_path):
    net = torch.nn.Linear(256, 256)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(32, 256)
    calls = []

    def step():
        calls.append(1)
        scratch = torch.ones(1024, 1024)  # 4 MiB the step allocates and frees
        loss = net(x).pow(2).mean() + scratch.mean() * 0
        opt.zero_grad()
        loss.backward()
        opt.step()

    trace = str(tmp_path / "t.json")
    r = gentk.profile_step(step, steps=4, warmup=2, images_per_step=32, device="cpu", trace=trace, top=5)
    assert len(calls) == 2 + 4 + 3  # warm-up, timed, profiled
    assert r["step_ms"] > 0 and r["images_per_s"] == pytest.approx(32 / (r["step_ms"] / 1000))
    assert r["peak_memory_bytes"] >= 4 * 2**20 and "profiler" in r["memory_method"]
    assert len(r["top_ops"]) == 5 and any("addmm" in op["name"] or "mm" in op["name"] for op in r["top_ops"])
    assert all(0 <= op["share"] <= 1 for op in r["top_ops"])
    assert "traceEvents" in json.load(open(trace)) and r["trace"] == trace
    with pytest.raises(ValueError, match="steps must be >= 1"):
        gentk.profile_step(step, steps=0)


def test_interleaved_step_times_take_turns():
    from gentk.profile import interleaved_step_times

    calls = []
    fns = {"slow": lambda: (calls.append("slow"), time.sleep(0.02)), "fast": lambda: calls.append("fast")}
    ms = interleaved_step_times(fns, steps=3, device="cpu")
    assert calls == ["slow", "fast", "fast", "slow", "slow", "fast"]
    assert ms["slow"] >= 20 and ms["fast"] < ms["slow"]
    with pytest.raises(ValueError, match="steps"):
        interleaved_step_times(fns, steps=0)
