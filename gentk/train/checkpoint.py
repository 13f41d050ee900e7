"""Checkpoints: models, optimizers, schedulers, grad scaler, step, config and every RNG
state, written atomically (temporary file, fsync, rename, fsync of the folder) so a crash
never leaves a half-written file under the final name; the last N are kept.

Loading uses ``torch.load(weights_only=True)``: only tensors and plain Python values, so a
foreign or hostile pickle cannot run code, and anything unexpected is a CheckpointError.
"""
import os
import random
import re
import zipfile

import numpy as np
import torch

FORMAT = "gentk-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(Exception):
    pass


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


def atomic_save(obj, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
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


def checkpoint_path(folder, step):
    return os.path.join(folder, f"step_{step:08d}.pt")


def list_checkpoints(folder):
    """(step, path) of the checkpoints in folder, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, name)) for name in os.listdir(folder)
             if (m := _NAME.match(name))]
    return sorted(found)


def prune(folder, keep):
    for _, path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        os.remove(path)


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


def load(path, map_location="cpu"):
    """Load and validate a gentk checkpoint; raises CheckpointError with the reason."""
    path = resolve(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a gentk checkpoint: not a complete PyTorch archive (truncated, "
                              f"or another kind of file)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # damaged members, or pickled objects no gentk checkpoint holds
        text = str(e).strip()
        if "Weights only load failed" in text:
            reason = "it holds Python objects that a gentk checkpoint never contains (foreign file)"
        else:
            reason = text.splitlines()[0] if text else type(e).__name__
        raise CheckpointError(f"{path}: not a readable gentk checkpoint (corrupt or foreign file): {reason}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gentk checkpoint (no '{FORMAT}' marker); it may come from "
                              f"another program")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('version')} is not supported "
                              f"(this gentk reads version {VERSION})")
    missing = [k for k in ("model", "config", "networks", "optimizers", "step") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
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
    nets = model.networks()
    if set(nets) != set(state["networks"]):
        raise CheckpointError(f"checkpoint has networks {sorted(state['networks'])} but model "
                              f"{model.name} has {sorted(nets)}")
    for name in nets:
        try:
            model.unwrapped(name).load_state_dict(state["networks"][name])
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint network {name!r} does not fit the model: "
                                  f"{str(e).splitlines()[0]}") from None
