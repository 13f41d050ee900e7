"""The gentk command end to end in a temporary folder, and its one-line errors."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, assert_cli_fails_in_one_line
import gentk
from gentk import cli

FAST = ["--arch", "mlp", "--resolution", "16", "--latent", "4", "--no-progress"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_help_lists_models_with_papers():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-m", "gentk.cli", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0
    assert "vae" in run.stdout and "Kingma & Welling" in run.stdout
    for command in ("train", "sample", "eval", "profile", "bench"):
        assert command in run.stdout


def test_train_resume_sample_eval_profile(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "vae", *FAST, "--steps", "6", "--batch-size", "32", "--out", out, "--eval-k", "4"]) == 0
    printed = capsys.readouterr().out
    assert "test_neg_elbo" in printed and "test_nll_k4" in printed
    assert os.path.isfile(os.path.join(out, "samples.png"))
    assert os.listdir(os.path.join(out, "checkpoints")) == ["step_00000006.pt"]
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert records[-1]["split"] == "test" and records[-1]["test_nll_k4"] > 0
    evaluator = os.path.join(out, "evaluator", "evaluator_digits16.pt")
    assert os.path.isfile(evaluator)

    # resume to 9 steps; the config (architecture, data) comes from the checkpoint
    assert cli.main(["train", "vae", "--steps", "9", "--resume", out, "--out", out, "--no-progress", "--no-eval"]) == 0
    assert "step_00000009.pt" in os.listdir(os.path.join(out, "checkpoints"))

    png = str(tmp_path / "s.png")
    assert cli.main(["sample", out, "--n", "9", "--out", png]) == 0
    from PIL import Image

    with Image.open(png) as img:
        assert img.size[0] == img.size[1] > 16 * 3

    stamp = os.path.getmtime(evaluator)
    assert cli.main(["eval", os.path.join(out, "checkpoints", "step_00000009.pt"), "--k", "3", "--max-examples", "40",
                     "--n-samples", "50"]) == 0
    result = json.load(open(os.path.join(out, "eval.json")))
    assert result["step"] == 9 and result["data"] == "digits"
    assert result["test_nll_k3"] < result["test_neg_elbo"] + 5
    assert 0 <= result["samples_coverage"] <= 1 and result["samples_frechet_distance"] > 0
    assert result["evaluator_test_accuracy"] > 0.8
    assert os.path.getmtime(evaluator) == stamp  # the cached evaluator was reused
    capsys.readouterr()
    assert cli.main(["eval", out, "--test-mode", "paper"]) == 2
    assert "--test-mode applies to pix2pix, not to model vae" in capsys.readouterr().err

    trace, report = str(tmp_path / "trace.json"), str(tmp_path / "profile.json")
    assert cli.main(["profile", "vae", *FAST[:-1], "--steps", "2", "--warmup", "1", "--batch-size", "16",
                     "--trace", trace, "--json", report, "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "speedup" in printed and "top operators" in printed
    assert "traceEvents" in json.load(open(trace))
    measured = json.load(open(report))
    assert measured["torch"]["backend"] == "torch" and measured["gentk"]["images_per_s"] > 0
    assert len(measured["gentk"]["top_ops"]) == 3 and measured["speedup"] > 0


BAD = [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["train", "gpt"], "unknown model 'gpt'; choose one of vae"),
    (["train", "vae", "--epochs", "0"], "--epochs: expected a positive integer, got 0"),
    (["train", "vae", "--lr", "-1"], "--lr: expected a positive number"),
    (["train", "vae", "--batch-size", "many"], "--batch-size: expected a positive integer, got 'many'"),
    (["train", "vae", "--epochs", "1", "--steps", "1"], "not allowed with argument"),
    (["train", "vae", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["train", "vae", "--arch", "resnet"], "invalid choice: 'resnet'"),
    (["train", "vae", "--data", "mnist"], "needs a directory"),
    (["train", "vae", "--data", "mnist", "--data-root", "/nonexistent/mnist"], "/nonexistent/mnist: no such directory"),
    (["train", "vae", "--data", "digits-edges"], "needs labelled data"),
    (["train", "vae", "--data", "cifar"], "unknown data set 'cifar'"),
    (["train", "vae", "--amp", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
    (["train", "vae", "--resume", "/nonexistent.pt"], "/nonexistent.pt: no such checkpoint file"),
    (["sample", "/nonexistent.pt"], "no such checkpoint file"),
    (["sample"], "the following arguments are required: CKPT"),
    (["eval", "/nonexistent"], "no such checkpoint file"),
    (["profile", "gan2"], "unknown model 'gan2'"),
    (["profile", "vae", "--steps", "-3"], "--steps: expected a positive integer"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line(argv, message, capsys):
    assert_cli_fails_in_one_line(argv, message, capsys)


def test_bad_checkpoints_and_labels(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    assert cli.main(["eval", str(tmp_path / "junk.pt")]) == 2
    assert "junk.pt: not a gentk checkpoint" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    assert cli.main(["sample", str(tmp_path / "foreign.pt")]) == 2
    assert "not a gentk checkpoint" in capsys.readouterr().err
    out = str(tmp_path / "run")
    assert cli.main(["train", "vae", *FAST, "--steps", "1", "--batch-size", "16", "--out", out, "--no-eval"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", out, "--labels", "1,2"]) == 2
    assert "unconditional" in capsys.readouterr().err


def test_bench_delegates_to_the_checkout(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, cwd: calls.append((cmd, cwd)) or 0)
    assert cli.main(["bench", "--quick"]) == 0
    assert calls == [([sys.executable, "-m", "benchmarks", "--quick"], ROOT)]
    monkeypatch.setattr(gentk, "__file__", str(tmp_path / "site-packages" / "gentk" / "__init__.py"))
    assert cli.main(["bench"]) == 2
    assert "source checkout" in capsys.readouterr().err
