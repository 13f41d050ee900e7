"""Run folders, checkpoints and resume never lose or corrupt data: one run per folder, pruning
of this run's checkpoints only, checksummed checkpoints, resume to the run's own target and
options, a log cut back to the checkpoint, stale temporaries, full and read-only disks."""
import errno
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch

from conftest import assert_cli_fails_in_one_line
from gentk import cli, data
from gentk.models import build
from gentk.train import CheckpointError, Trainer, model_from_checkpoint, seed_everything
from gentk.train import checkpoint as ckpt

TRAIN = data.digits("train", 16)
FAST = ["--arch", "mlp", "--resolution", "16", "--latent", "4", "--batch-size", "32", "--threads", "1",
        "--no-progress", "--no-eval"]

pytestmark = pytest.mark.usefixtures("one_thread")


def trainer(out, **kw):
    seed_everything(0)
    model = build("vae", arch="mlp", resolution=16, latent=4)
    return Trainer(model, TRAIN, str(out), batch_size=128, progress=False, tensorboard=False, **kw)


def steps_logged(run):
    return [json.loads(line)["step"] for line in open(os.path.join(run, "metrics.jsonl"))]


def checkpoints(run):
    return sorted(os.listdir(os.path.join(run, "checkpoints")))


def test_a_run_folder_belongs_to_one_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "vae", *FAST, "--steps", "3", "--out", out]) == 0
    first_log = open(os.path.join(out, "metrics.jsonl")).read()
    open(os.path.join(out, "notes.txt"), "w").write("mine")
    assert_cli_fails_in_one_line(["train", "vae", *FAST, "--steps", "2", "--out", out], "folder holds another run",
                                 capsys)
    assert checkpoints(out) == ["step_00000003.pt"] and open(os.path.join(out, "metrics.jsonl")).read() == first_log
    assert cli.main(["train", "vae", *FAST, "--steps", "2", "--out", out, "--overwrite"]) == 0
    assert checkpoints(out) == ["step_00000002.pt"] and steps_logged(out) == [2]
    assert sorted(os.listdir(os.path.join(out, "samples"))) == ["step_00000002.png"]
    assert open(os.path.join(out, "notes.txt")).read() == "mine"  # not a run's file: kept


def test_pruning_spares_checkpoints_this_run_did_not_write(tmp_path, monkeypatch):
    foreign = tmp_path / "checkpoints" / "step_00000099.pt"
    open_logs = Trainer._open_logs

    def another_writer_appears(self):  # a second process writes into the folder once this run has started
        foreign.parent.mkdir(exist_ok=True)
        foreign.write_bytes(b"someone else's")
        open_logs(self)

    monkeypatch.setattr(Trainer, "_open_logs", another_writer_appears)
    trainer(tmp_path, steps=3, checkpoint_every=1, keep_last=1).fit()
    assert checkpoints(tmp_path) == ["step_00000003.pt", "step_00000099.pt"]


def test_resume_from_an_older_checkpoint_does_not_fork_the_run_silently(tmp_path):
    trainer(tmp_path, steps=4, checkpoint_every=2, log_every=1).fit()
    older = os.path.join(tmp_path, "checkpoints", "step_00000002.pt")
    with pytest.raises(CheckpointError, match="holds checkpoints after step 2"):
        trainer(tmp_path, steps=3).fit(resume=older)
    assert checkpoints(tmp_path) == ["step_00000002.pt", "step_00000004.pt"]
    trainer(tmp_path, steps=3, overwrite=True, log_every=1).fit(resume=older)
    assert checkpoints(tmp_path) == ["step_00000002.pt", "step_00000003.pt"]
    assert steps_logged(tmp_path) == [1, 2, 3]


def rewrite_member(path, change):
    """Rewrite the largest member (a tensor record) of a checkpoint's zip with change(bytes)."""
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    largest = max(range(len(members)), key=lambda i: members[i][0].file_size)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i, (info, raw) in enumerate(members):
            z.writestr(info, change(raw) if i == largest else raw)


def nan_in_the_middle(raw):
    middle = len(raw) // 2 // 4 * 4
    return raw[:middle] + b"\xff" * 8 + raw[middle + 8:]  # float32 NaNs in a weight


def test_damaged_tensor_bytes_are_refused_naming_the_file(tmp_path, capsys):
    path = trainer(tmp_path, steps=1).fit() and os.path.join(tmp_path, "checkpoints", "step_00000001.pt")
    rewrite_member(path, nan_in_the_middle)
    assert zipfile.ZipFile(path).testzip() is None  # the zip itself is intact
    with pytest.raises(CheckpointError, match=f"{path}: checkpoint is damaged"):
        ckpt.load(path)
    assert_cli_fails_in_one_line(["sample", path, "--out", str(tmp_path / "s.png")], f"{path}: checkpoint is damaged",
                                 capsys)
    assert_cli_fails_in_one_line(["train", "vae", "--resume", path, "--out", str(tmp_path / "r"), "--no-progress"],
                                 "checkpoint is damaged", capsys)


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    run = trainer(tmp_path, steps=1)
    run.fit()
    state = ckpt.load(run.last_checkpoint)
    state["networks"]["decoder"]["0.weight"][0, 0] = float("inf")
    ckpt.save(state, run.last_checkpoint)
    with pytest.raises(CheckpointError, match=r"step_00000001.pt: networks.decoder.0.weight holds NaN or infinite"):
        model_from_checkpoint(run.last_checkpoint)


def test_checkpoints_written_before_the_checksum_still_load(tmp_path):
    """Version 1 files hold the state itself, with no digest: they load, and their weights are
    still checked for NaN."""
    run = trainer(tmp_path / "run", steps=1)
    run.fit()
    state = ckpt.load(run.last_checkpoint)
    legacy = str(tmp_path / "step_00000001.pt")
    torch.save(state, legacy)
    model, loaded = model_from_checkpoint(legacy)
    assert loaded["step"] == 1
    assert all(torch.equal(v, state["networks"]["encoder"][k]) for k, v in model.encoder.state_dict().items())
    rewrite_member(legacy, nan_in_the_middle)
    with pytest.raises(CheckpointError, match=f"{legacy}: networks.* holds NaN or infinite values"):
        ckpt.load(legacy)


def test_resume_continues_to_the_runs_own_target_seed_and_options(tmp_path):
    straight, half = str(tmp_path / "straight"), str(tmp_path / "half")
    common = [*FAST, "--seed", "3", "--batch-size=16"]
    assert cli.main(["train", "vae", *common, "--steps", "4", "--checkpoint-every", "2", "--out", straight]) == 0
    # resumed from step 2 with no --steps, --seed or --batch-size: the run's own 4 steps, seed 3, batch 16
    step2 = os.path.join(straight, "checkpoints", "step_00000002.pt")
    assert cli.main(["train", "vae", "--resume", step2, "--out", half, "--no-progress", "--no-eval"]) == 0
    a, b = ckpt.load(os.path.join(straight, "checkpoints", "step_00000004.pt")), ckpt.load(half)
    assert b["step"] == 4 and b["config"]["trainer"]["batch_size"] == 16
    assert all(torch.equal(v, b["networks"][n][k]) for n in a["networks"] for k, v in a["networks"][n].items())


def test_resume_honours_options_given_as_name_equals_value(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "vae", *FAST, "--steps", "1", "--out", out]) == 0
    assert_cli_fails_in_one_line(["train", "vae", "--resume", out, "--out", out, "--data=mnist", "--steps", "2"],
                                 "needs a directory", capsys)


def test_resume_cuts_the_log_back_to_the_checkpoint(tmp_path):
    trainer(tmp_path, steps=4, checkpoint_every=2, log_every=1).fit()
    # killed after logging step 3, before the checkpoint of step 4, in the middle of a line
    os.remove(os.path.join(tmp_path, "checkpoints", "step_00000004.pt"))
    lines = open(tmp_path / "metrics.jsonl").readlines()
    (tmp_path / "metrics.jsonl").write_text("".join(lines[:3]) + '{"step": 4, "lo')
    trainer(tmp_path, steps=4, log_every=1).fit(resume=str(tmp_path))
    assert steps_logged(tmp_path) == [1, 2, 3, 4]


def test_stale_checkpoint_temporaries_are_removed(tmp_path):
    trainer(tmp_path, steps=1).fit()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = tmp_path / "checkpoints"
    names = [f"step_00000002.pt.tmp.{gone.pid}", f"step_00000009.pt.tmp.{os.getppid()}", "step_2.pt.tmp.mine"]
    for name in names:
        (folder / name).write_bytes(b"partial")
    trainer(tmp_path, steps=2).fit(resume=str(tmp_path))
    # the killed writer's temporary is gone; a live process's and a file gentk never names are kept
    assert sorted(os.listdir(folder)) == sorted(["step_00000001.pt", "step_00000002.pt", *names[1:]])


KILLED_MID_WRITE = """
import io, os, signal, sys
import torch
from gentk import data
from gentk.models import build
from gentk.train import Trainer, seed_everything

save = torch.save


def killed_writing_step_4(obj, f):
    if not isinstance(f, io.BytesIO) and "step_00000004" in f.name:
        f.write(b"partial")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, f)


torch.save = killed_writing_step_4
torch.set_num_threads(1)
seed_everything(0)
model = build("vae", arch="mlp", resolution=16, latent=4)
Trainer(model, data.digits("train", 16), sys.argv[1], steps=6, checkpoint_every=2, log_every=1, batch_size=128,
        progress=False, tensorboard=False).fit()
"""


def test_resume_after_sigkill_mid_checkpoint_write_is_exact(tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    run = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(killed)],
                         env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert run.returncode == -9
    assert steps_logged(killed) == [1, 2, 3, 4] and len(checkpoints(killed)) == 2  # step 2 and a temporary
    resumed = trainer(killed, steps=6, checkpoint_every=2, log_every=1)
    resumed.fit(resume=str(killed))
    assert steps_logged(killed) == [1, 2, 3, 4, 5, 6]
    assert checkpoints(killed) == ["step_00000002.pt", "step_00000004.pt", "step_00000006.pt"]
    reference = trainer(straight, steps=6, checkpoint_every=2, log_every=1)
    reference.fit()
    for name in reference.model.networks():
        for key, value in reference.model.unwrapped(name).state_dict().items():
            assert torch.equal(resumed.model.unwrapped(name).state_dict()[key], value), f"{name}.{key}"


def test_a_full_disk_during_a_checkpoint_write_is_one_line(tmp_path, monkeypatch, capsys):
    save = torch.save

    def disk_fills(obj, f):
        if isinstance(f, io.BytesIO):
            return save(obj, f)
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_fills)
    out = str(tmp_path / "run")
    target = os.path.join(out, "checkpoints", "step_00000002.pt")
    assert_cli_fails_in_one_line(["train", "vae", *FAST, "--steps", "2", "--out", out],
                                 f"no space left on device writing {target}", capsys)
    assert os.listdir(os.path.join(out, "checkpoints")) == []  # the temporary is removed


def test_a_read_only_run_folder_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    out.mkdir()

    def read_only(self):
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(self.out, "metrics.jsonl"))

    monkeypatch.setattr(Trainer, "_open_logs", read_only)
    assert_cli_fails_in_one_line(["train", "vae", *FAST, "--steps", "1", "--out", str(out)],
                                 f"{out}: folder is not writable (Read-only file system)", capsys)
