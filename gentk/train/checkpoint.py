"""Checkpoints: models, optimizers, schedulers, grad scaler, step, config and every RNG
state, written atomically (temporary file, fsync, rename, fsync of the folder) so a crash
never leaves a half-written file under the final name.

A checkpoint file (version 2) holds the serialized state as bytes and their SHA-256:
loading checks the digest, so damaged bytes anywhere in the state are a CheckpointError
naming the file, never NaN weights. Files of version 1, written before the digest, hold the
state itself; they still load, without that check. Non-finite weights are refused in both.

Loading uses ``torch.load(weights_only=True)``: only tensors and plain Python values, so a
foreign or hostile pickle cannot run code, and anything unexpected is a CheckpointError.
"""
import contextlib
import errno
import hashlib
import io
import os
import random
import re
import zipfile

import numpy as np
import torch

FORMAT = "gentk-checkpoint"
VERSION = 1  # of the state's layout; a file holding the state itself (no digest) has this version too
CHECKSUMMED = 2  # a file holding the state's bytes and their SHA-256
_NAME = re.compile(r"^step_(\d+)\.pt$")
_TEMPORARY = re.compile(r"^step_\d+\.pt\.tmp\.(\d+)$")  # atomic_save's temporary names


class CheckpointError(Exception):
    """A checkpoint or run folder that cannot be read or written; the message names the file."""


def rng_state():
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def writing(path):
    """Turn an OSError met writing path into a one-line CheckpointError (a full disk says so)."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise CheckpointError(f"no space left on device writing {path}") from None
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            folder = os.path.dirname(os.path.abspath(path))
            while not os.path.isdir(folder):
                folder = os.path.dirname(folder)
            raise CheckpointError(f"{folder}: folder is not writable ({e.strerror}); needed for {path}") from None
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from None


def atomic_save(obj, path):
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp.{os.getpid()}"
    with writing(path):
        os.makedirs(folder, exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save(state, path):
    """Write a checkpoint: the state's serialized bytes and their SHA-256, atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = torch.frombuffer(buffer.getbuffer(), dtype=torch.uint8)
    atomic_save({"format": FORMAT, "version": CHECKSUMMED, "sha256": hashlib.sha256(payload.numpy()).hexdigest(),
                 "payload": payload}, path)


def _alive(pid):
    if os.name != "posix":
        return True  # no cheap check: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def remove_stale_temporaries(folder):
    """Delete the temporaries of checkpoint writes whose process is gone (killed mid-write)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        m = _TEMPORARY.match(name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))


def checkpoint_path(folder, step):
    return os.path.join(folder, f"step_{step:08d}.pt")


def list_checkpoints(folder):
    """(step, path) of the checkpoints in folder, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, name)) for name in os.listdir(folder)
             if (m := _NAME.match(name))]
    return sorted(found)


def prune(paths, keep):
    """Delete all but the last ``keep`` of paths (one run's checkpoints, oldest first; keep 0 deletes
    none); returns the paths kept."""
    for path in paths[:-keep] if keep > 0 else []:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    return paths[-keep:] if keep > 0 else paths


def resolve(path):
    """A checkpoint file, or a run / checkpoints folder (its newest checkpoint)."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        for folder in (path, os.path.join(path, "checkpoints")):
            found = list_checkpoints(folder)
            if found:
                return found[-1][1]
        raise CheckpointError(f"{path}: no checkpoints found (expected step_*.pt files here or in checkpoints/)")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    return path


def _torch_load(source, path, map_location):
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as e:  # damaged members, or pickled objects no gentk checkpoint holds
        text = str(e).strip()
        if "Weights only load failed" in text:
            reason = "it holds Python objects that a gentk checkpoint never contains (foreign file)"
        else:
            reason = text.splitlines()[0] if text else type(e).__name__
        raise CheckpointError(f"{path}: not a readable gentk checkpoint (corrupt or foreign file): {reason}") from None


def _tensors(obj, name):
    if isinstance(obj, torch.Tensor):
        yield name, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{name}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{name}.{i}")


def load(path, map_location="cpu"):
    """Load and validate a gentk checkpoint; raises CheckpointError with the reason."""
    path = resolve(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a gentk checkpoint: not a complete PyTorch archive (truncated, "
                              f"or another kind of file)")
    state = _torch_load(path, path, "cpu")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gentk checkpoint (no '{FORMAT}' marker); it may come from "
                              f"another program")
    if state.get("version") == CHECKSUMMED:
        payload, digest = state.get("payload"), state.get("sha256")
        if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8 or not isinstance(digest, str):
            raise CheckpointError(f"{path}: checkpoint is missing its payload or SHA-256")
        if hashlib.sha256(payload.numpy()).hexdigest() != digest:
            raise CheckpointError(f"{path}: checkpoint is damaged: its bytes do not match the SHA-256 they were "
                                  f"saved with")
        state = _torch_load(io.BytesIO(payload.numpy().tobytes()), path, map_location)
    elif map_location != "cpu":
        state = _torch_load(path, path, map_location)
    if not isinstance(state, dict) or state.get("version") != VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise CheckpointError(f"{path}: checkpoint format version {version} is not supported "
                              f"(this gentk reads versions {VERSION} and {CHECKSUMMED})")
    missing = [k for k in ("model", "config", "networks", "optimizers", "step") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    for kind in ("networks", "optimizers"):
        for name, tensor in _tensors(state[kind], kind):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"{path}: {name} holds NaN or infinite values (a diverged run or a "
                                      f"damaged file)")
    return state


def model_from_checkpoint(path, device="cpu"):
    """Rebuild the model a checkpoint was trained with, weights loaded; returns (model, state)."""
    from gentk import models

    state = load(path)
    try:
        model_cls = models.model_class(state["model"])
    except models.UnknownModel as e:
        raise CheckpointError(f"{resolve(path)}: {e}") from None
    model = model_cls(**model_cls.config_from_checkpoint(state["config"]["model"]))
    load_networks(model, state)
    model.load_extra_state(state.get("extra", {}))  # counters such as a capacity schedule's step
    return model.to(device), state


def load_networks(model, state):
    """Load the networks of a checkpoint (all of the model's) or of a weights file (those that
    sampling and evaluation need; the others keep their initialization)."""
    nets = model.networks()
    wanted = set(model.inference_networks or nets) if state.get("weights_only") else set(nets)
    if not wanted <= set(state["networks"]) <= set(nets):
        raise CheckpointError(f"checkpoint has networks {sorted(state['networks'])} but model "
                              f"{model.name} has {sorted(nets)}")
    for name in state["networks"]:
        try:
            model.unwrapped(name).load_state_dict(state["networks"][name])
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint network {name!r} does not fit the model: "
                                  f"{str(e).splitlines()[0]}") from None


def export_weights(path, out, half=False, data=None):
    """Write the weights file of checkpoint ``path`` to ``out``: the networks that sampling and
    evaluation need (the model's ``inference_networks``), its config and step, no optimizer,
    scheduler or RNG state and no data folder (``gentk eval --data-root`` names one). It loads
    wherever a checkpoint does for sampling and evaluation; training cannot resume from it.
    ``half``: floating-point tensors stored as float16 (half the size; loading casts them back);
    ``data``: the data set the file names (its config's "data" entry), instead of the run's."""
    from gentk import models

    state = load(path)
    model_cls = models.model_class(state["model"])
    keep = model_cls.inference_networks or list(state["networks"])
    config = {**state["config"], "data": {**(data or state["config"].get("data", {})), "root": None}}
    weights = {"format": FORMAT, "version": VERSION, "model": state["model"], "config": config,
               "step": state["step"], "weights_only": True,
               "networks": {name: {k: v.half() if half and v.is_floating_point() else v
                                   for k, v in state["networks"][name].items()} for name in keep},
               "optimizers": {}, "schedulers": {}, "scaler": None, "extra": state.get("extra", {})}
    save(weights, out)
    return out
