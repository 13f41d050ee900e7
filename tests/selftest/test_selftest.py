"""gentk selftest without a GPU: the choice ``auto`` makes on CUDA tensors from planted
verdicts, the child-process runner against planted failing and crashing cases, and the real
cases on the cpp backend end to end."""
import json
import os
import subprocess
import sys

import pytest
import torch

import gentk
from gentk import backend, selftest

TESTS = os.path.dirname(os.path.abspath(__file__))
KEY = {"torch": torch.__version__, "triton": "3.0", "gentk": gentk.__version__, "cuda_kernels": True,
       "gpu": "NVIDIA Planted", "capability": "9.0", "driver": 13000, "cuda": "13.0"}
CUDA = torch.device("cuda:0")


def _family(chosen, passed=("cuda", "triton")):
    return {"chosen": chosen, "timings": {}, "backends": {
        b: {"passed": b in passed, "not_run": None, "cases": {}, "timings": {}} for b in ("cuda", "triton")}}


def _verdict(families, key=KEY):
    return {"format": selftest.FORMAT, "key": key, "device": "cuda:0", "families": families}


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A cache folder, the planted GPU's key, and a stand-in for the selftest run that records
    which families it was asked to redo (no GPU here to run them on)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("GENTK_SELFTEST", raising=False)
    monkeypatch.setattr(selftest, "device_key", lambda device: dict(KEY))
    monkeypatch.setattr(selftest, "_verdicts", {})
    monkeypatch.setattr(selftest._extension, "has_cuda_kernels", lambda: True)
    redone = []

    def fake_run(device, families, key=None, previous=None, **_):
        redone.extend(families)
        verdict = previous if previous and previous.get("key") == key else _verdict({}, key)
        verdict["families"].update({f: _family("torch", passed=()) for f in families})
        selftest.write_verdict(verdict)
        return verdict

    monkeypatch.setattr(selftest, "run", fake_run)
    path = selftest.verdict_path(KEY)
    os.makedirs(os.path.dirname(path))
    return path, redone


def _plant(path, verdict):
    with open(path, "w") as f:
        f.write(verdict if isinstance(verdict, str) else json.dumps(verdict))


def test_auto_on_cuda_runs_what_passed(planted, monkeypatch):
    path, redone = planted
    _plant(path, _verdict({"gaussian": _family("triton"), "gumbel": _family("cuda"),
                           "instance_norm": _family("torch", passed=()), "losses": _family("cuda")}))
    with gentk.use_backend("auto"):
        assert backend.resolve("gaussian", CUDA) == "triton"
        assert backend.resolve("gumbel", CUDA) == "cuda"
        assert backend.resolve("instance_norm", CUDA) == "torch"  # nothing passed: the reference
        monkeypatch.setattr(selftest._extension, "has_cuda_kernels", lambda: False)
        assert backend.resolve("losses", CUDA) == "torch"  # cuda chosen, but this build has no CUDA kernels
    assert redone == []


@pytest.mark.parametrize("planted_text, why", [
    ("{not json", "corrupt"),
    (json.dumps(_verdict({"gaussian": _family("triton")}, key=dict(KEY, driver=12000))), "driver 12000, now 13000"),
    (json.dumps(_verdict({"gaussian": _family("triton")}, key=dict(KEY, gentk="0.0.1"))), "gentk '0.0.1'"),
    (json.dumps({"format": selftest.FORMAT, "key": KEY, "families": {"gaussian": {"chosen": "rm -rf"}}}),
     "not a gentk selftest verdict"),
])
def test_a_corrupt_or_stale_verdict_is_ignored_and_redone(planted, capsys, planted_text, why):
    path, redone = planted
    _plant(path, planted_text)
    assert selftest.auto_choice("gaussian", CUDA) == "torch"  # the redone (planted-failing) verdict
    assert redone == ["gaussian"]
    err = capsys.readouterr().err
    assert f"ignoring the selftest verdict {path}" in err and why in err
    with open(path) as f:
        assert json.load(f)["key"] == KEY  # the redone verdict replaced it
    assert selftest.auto_choice("gaussian", CUDA) == "torch" and redone == ["gaussian"]  # once per process


def test_a_family_missing_from_the_verdict_is_tested_once_and_added(planted, capsys):
    path, redone = planted
    _plant(path, _verdict({"gaussian": _family("triton")}))
    assert selftest.auto_choice("gumbel", CUDA) == "torch"
    assert selftest.auto_choice("gumbel", CUDA) == "torch"
    assert selftest.auto_choice("gaussian", CUDA) == "triton"
    assert redone == ["gumbel"]
    assert "first gumbel call on NVIDIA Planted: testing gentk's kernels once" in capsys.readouterr().err
    with open(path) as f:
        assert set(json.load(f)["families"]) == {"gaussian", "gumbel"}


def test_gentk_selftest_0_keeps_the_reference_untested(planted, monkeypatch):
    path, redone = planted
    monkeypatch.setenv("GENTK_SELFTEST", "0")
    assert selftest.auto_choice("gaussian", CUDA) == "torch"
    assert redone == [] and not os.path.exists(path)


def test_fastest_that_passed_is_chosen():
    entry = _family(None)
    entry["timings"] = {"eager": {"a": 1.0, "b": 1.0}}
    entry["backends"]["cuda"]["timings"] = {"a": 0.5, "b": 0.6}
    entry["backends"]["triton"]["timings"] = {"a": 0.3, "b": 0.4}
    assert selftest._fastest(entry) == "triton"
    entry["backends"]["triton"]["passed"] = False
    assert selftest._fastest(entry) == "cuda"
    entry["backends"]["cuda"]["timings"] = {"a": 1.5, "b": 1.6}
    assert selftest._fastest(entry) == "torch"  # passed, but slower than the reference


def test_the_runner_survives_a_failing_and_an_aborting_case(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    verdict = selftest.run("cpu", ["gaussian"], backends=["cpp"], timing=False, provider="selftest_planted:build")
    cases = verdict["families"]["gaussian"]["backends"]["cpp"]["cases"]
    assert {op: c["status"] for op, c in cases.items()} == {
        "ok": "pass", "mismatch": "fail", "raises": "error", "aborts": "crash", "after": "pass"}
    assert "planted mismatch" in cases["mismatch"]["message"]
    assert "RuntimeError: planted kernel error" in cases["raises"]["message"]
    assert "SIGABRT" in cases["aborts"]["message"]
    assert verdict["families"]["gaussian"]["chosen"] == "torch"  # a backend with a failing case is never chosen
    with open(verdict["path"]) as f:
        assert json.load(f)["families"]["gaussian"]["backends"]["cpp"]["cases"]["aborts"]["status"] == "crash"


@pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")
def test_gentk_selftest_on_cpu_passes(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop("TRITON_INTERPRET", None)
    run = subprocess.run([sys.executable, "-m", "gentk.cli", "selftest", "--device", "cpu", "--no-timing"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(tmp_path / "gentk" / "selftest-cpu.json") as f:
        verdict = json.load(f)
    for family in selftest.FAMILIES:
        cpp = verdict["families"][family]["backends"]["cpp"]
        assert cpp["passed"] and len(cpp["cases"]) >= 40, family
        assert any("float64" in op for op in cpp["cases"]) and any("noise" in op or "0x" in op
                                                                    for op in cpp["cases"]), family
    show = subprocess.run([sys.executable, "-m", "gentk.cli", "selftest", "--device", "cpu", "--show"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert show.returncode == 0 and "instance_norm  cpp" in show.stdout, show.stdout + show.stderr


def test_a_cpu_user_pays_nothing():
    """CPU tensors under auto: no selftest import, no CUDA initialization, no child process."""
    script = ("import sys, torch, gentk\n"
              "mu = torch.randn(8, 4, requires_grad=True)\n"
              "z, kl = gentk.reparameterize_kl(mu, torch.zeros(8, 4)); (z.sum() + kl).backward()\n"
              "gentk.instance_norm(torch.randn(2, 3, 4, 4)); gentk.gumbel_softmax(torch.randn(4, 5), 0.5)\n"
              "gentk.discriminator_loss(torch.randn(4), torch.randn(4), 'hinge')\n"
              "assert 'gentk.selftest' not in sys.modules, 'selftest imported'\n"
              "assert not torch.cuda.is_initialized(), 'CUDA initialized'\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "GENTK_BACKEND"})
    assert run.returncode == 0, run.stderr[-2000:]


def test_auto_on_cuda_compiles_into_the_graph(planted):
    """Under torch.compile(fullgraph=True) the choice is made once at trace time."""
    path, redone = planted
    _plant(path, _verdict({"gaussian": _family("triton")}))

    def f(x):
        return x + len(backend.resolve("gaussian", CUDA)) + len(backend.resolve("gumbel", CUDA))

    x = torch.zeros(3)
    with gentk.use_backend("auto"):
        assert torch.equal(torch.compile(f, fullgraph=True, backend="eager")(x), x + len("triton") + len("torch"))
    assert redone == ["gumbel"]  # the missing family was tested at trace time
