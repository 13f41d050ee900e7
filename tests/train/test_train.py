"""Trainer and VAE: exact resume, checkpoint files and errors, logs, samples, mixed precision."""
import json
import os

import pytest
import torch

import gentk
from gentk import data
from gentk.models import build
from gentk.train import CheckpointError, Trainer, model_from_checkpoint, seed_everything
from gentk.train import checkpoint as ckpt

TRAIN = data.digits("train", 16)

pytestmark = pytest.mark.usefixtures("one_thread")


def make_vae(**kw):
    seed_everything(0)
    return build("vae", arch=kw.pop("arch", "mlp"), resolution=16, latent=kw.pop("latent", 4), **kw)


def params(model):
    return {f"{n}.{k}": v.clone() for n in model.networks() for k, v in model.unwrapped(n).state_dict().items()}


def fit(out, resume=None, **kw):
    model = make_vae(arch=kw.pop("arch", "mlp"))
    trainer = Trainer(model, TRAIN, str(out), batch_size=kw.pop("batch_size", 256), progress=False, **kw)
    trainer.fit(resume=resume)
    return model, trainer


@pytest.mark.parametrize("arch", ["mlp"])
def test_resume_is_exact_across_epochs(tmp_path, arch):
    straight, _ = fit(tmp_path / "a", epochs=2, arch=arch)
    fit(tmp_path / "b", epochs=1, arch=arch)
    resumed, _ = fit(tmp_path / "b", resume=str(tmp_path / "b"), epochs=2, arch=arch)
    p, q = params(straight), params(resumed)
    assert all(torch.equal(p[k], q[k]) for k in p)
    # and training did something (a different seed gives different parameters)
    assert not torch.equal(p["decoder.0.weight"], params(make_vae(arch=arch))["decoder.0.weight"])


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_resume_mid_epoch_with_steps(tmp_path, arch):
    straight, _ = fit(tmp_path / "a", steps=7, batch_size=128, arch=arch)
    fit(tmp_path / "b", steps=4, batch_size=128, checkpoint_every=2, arch=arch)
    resumed, trainer = fit(tmp_path / "b", resume=os.path.join(tmp_path, "b", "checkpoints", "step_00000004.pt"),
                           steps=7, batch_size=128, arch=arch)
    assert trainer.step == 7
    p, q = params(straight), params(resumed)
    assert all(torch.equal(p[k], q[k]) for k in p)


def test_checkpoint_files_logs_and_samples(tmp_path):
    model, trainer = fit(tmp_path, steps=12, batch_size=128, checkpoint_every=2, keep_last=2, sample_every=5,
                         log_every=4)
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["step_00000010.pt", "step_00000012.pt"]  # last 2 kept, no temporary files left
    state = ckpt.load(tmp_path / "checkpoints" / names[-1])
    assert state["format"] == ckpt.FORMAT and state["step"] == 12 and state["model"] == "vae"
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["config"]["model"]["arch"] == "mlp" and "adam" in state["optimizers"]
    lines = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in lines] == [4, 8, 11, 12]  # every 4 steps, the epoch end (11), the end
    assert all({"loss", "recon", "kl", "images_per_s"} <= set(r) for r in lines)
    assert lines[-1]["loss"] < lines[0]["loss"]
    samples = sorted(os.listdir(tmp_path / "samples"))
    assert samples == ["step_00000005.png", "step_00000010.png", "step_00000012.png"]
    from PIL import Image

    with Image.open(tmp_path / "samples.png") as img:
        assert img.mode == "RGB" and img.width > 64
    assert os.path.isfile(tmp_path / "reconstructions.png")
    rebuilt, _ = model_from_checkpoint(str(tmp_path))
    p, q = params(model), params(rebuilt)
    assert all(torch.equal(p[k], q[k]) for k in p)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = str(tmp_path / "step_00000001.pt")

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="cannot write .*step_00000001.pt: disk full"):
        ckpt.atomic_save({"x": 1}, path)
    assert os.listdir(tmp_path) == []


def test_bad_checkpoints(tmp_path):
    _, trainer = fit(tmp_path / "run", steps=2, batch_size=128)
    good = trainer.last_checkpoint
    raw = open(good, "rb").read()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: not a gentk checkpoint: not a complete PyTorch"):
        ckpt.load(tmp_path / "truncated.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt: not a gentk checkpoint"):
        ckpt.load(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a complete PyTorch archive"):
        ckpt.load(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="no checkpoints found"):
        ckpt.load(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        ckpt.load(tmp_path / "missing.pt")
    # a checkpoint of another architecture does not fit
    conv = make_vae(arch="conv")
    trainer = Trainer(conv, TRAIN, str(tmp_path / "conv"), steps=1, batch_size=128, progress=False)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        trainer.fit(resume=good)


def test_trainer_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one of epochs and steps"):
        Trainer(make_vae(), TRAIN, str(tmp_path))
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(make_vae(), TRAIN, str(tmp_path), steps=1, batch_size=5000)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Trainer(make_vae(), TRAIN, str(tmp_path), steps=1, amp="fp16", device="cpu")


def test_bf16_autocast_trains(tmp_path):
    model, trainer = fit(tmp_path, steps=6, batch_size=128, amp="bf16")
    lines = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in lines)
    assert model.amp_dtype == torch.bfloat16
    x = TRAIN.tensors[0][:8]
    with model.autocast():
        assert model.encoder(x).dtype == torch.bfloat16  # autocast is really on
        loss, _, _ = model.losses(x)
    assert loss.dtype == torch.float32


def test_vae_loss_matches_reference_formula():
    model = make_vae()
    x = TRAIN.tensors[0][:10]
    torch.manual_seed(3)
    with gentk.use_backend("torch"):  # the same noise stream in both computations
        loss, recon, kl = model.losses(x)
        torch.manual_seed(3)
        mu, logvar = model.encode(x)
        z, _ = gentk.reparameterize_kl(mu, logvar)
    recon_ref = torch.nn.functional.binary_cross_entropy(torch.sigmoid(model.decode(z)), x, reduction="sum") / 10
    kl_by_hand = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum() / 10
    torch.testing.assert_close(kl, kl_by_hand, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(recon, recon_ref, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(loss, recon + kl)


def test_vae_rejects_bad_config():
    with pytest.raises(ValueError, match="arch"):
        build("vae", arch="resnet")
    with pytest.raises(ValueError, match="divisible by 4"):
        build("vae", resolution=30)
    with pytest.raises(ValueError, match="lr must be positive"):
        build("vae", lr=0.0)


def test_tensorboard_when_installed(tmp_path, monkeypatch):
    import sys
    import types

    written = []

    class FakeWriter:
        def __init__(self, log_dir):
            written.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            written.append((tag, step))

        def add_image(self, tag, image, step, dataformats):
            written.append((tag, step, image.shape[-1], dataformats))

        def close(self):
            written.append("closed")

    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    fit(tmp_path, steps=4, batch_size=100, log_every=2)
    assert written[0] == ("dir", str(tmp_path / "tensorboard"))
    assert ("train/loss", 2) in written and ("train/kl", 4) in written
    assert ("samples", 4, 3, "HWC") in written and written[-1] == "closed"


def test_small_batches_and_visuals(tmp_path):
    model, _ = fit(tmp_path, steps=2, batch_size=6)  # fewer than 8 images: no reconstruction grid, no error
    assert model.visuals(TRAIN.tensors[0][:6]) == {}
    assert model.visuals(TRAIN.tensors[0][:20])["reconstructions"].shape == (32, 1, 16, 16)


def test_host_floats_reads_every_logged_tensor_as_item_would():
    from gentk.models.base import host_floats

    loss, dims = torch.tensor(1.25, dtype=torch.float32) / 3, torch.tensor([0.1, 0.2, 0.3])
    out = host_floats({"loss": loss, "C": 2.5, "kl/z": dims, "kl/c": dims[:0]})
    assert list(out) == ["loss", "C", "kl/z0", "kl/z1", "kl/z2"]
    assert out["loss"] == loss.item() and out["C"] == 2.5
    assert [out[f"kl/z{i}"] for i in range(3)] == [v.item() for v in dims]
    assert all(type(v) is float for v in out.values())
