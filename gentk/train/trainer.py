"""The training loop every gentk model shares.

Epochs or steps; a tqdm bar with the running losses; losses as JSON lines
(``OUT/metrics.jsonl``) and in TensorBoard when it is installed; sample grids
(``OUT/samples/step_*.png`` and ``OUT/samples.png``) at every epoch end or every
``sample_every`` steps; checkpoints (``OUT/checkpoints/step_*.pt``, last ``keep_last`` kept).

A run folder belongs to one run: a fresh run refuses a folder holding another run's
checkpoints or metrics unless ``overwrite`` (which deletes that run's files first); a resumed
run cuts ``metrics.jsonl`` back to the checkpoint's step; pruning deletes only checkpoints of
this run's lineage.

Data order: epoch e is a permutation drawn from (seed, e) by a DistributedSampler (with one
replica in a single process), so a resumed run sees exactly the batches the uninterrupted
run would have, and under torchrun every rank sees its share of the same global batch.
``batch_size`` is the global batch; each of W ranks takes batch_size / W.
"""
import json
import math
import os
import random
import re
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler
from torch.utils.data._utils.collate import default_collate

from gentk.train import checkpoint as ckpt
from gentk.train.images import save_grid

# a previous run's files, deleted by overwrite: (sub-folder, names)
_RUN_FILES = (("checkpoints", r"step_\d+\.pt"), ("samples", r"step_\d+\.png"),
              ("tensorboard", r"events\.out\.tfevents\..*"), ("", r"metrics\.jsonl|samples\.png"))


def fetch_batch(dataset, indices):
    """The examples at ``indices`` collated into one batch (a TensorDataset by indexing its tensors)."""
    if hasattr(dataset, "tensors"):
        index = torch.as_tensor(indices)
        return tuple(t[index] for t in dataset.tensors)
    return default_collate([dataset[i] for i in indices])


def to_device(batch, device):
    """A batch (tensor, or tuple/list of tensors and others) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _keep_record(line, step):
    if not line.endswith("\n"):
        return False  # torn by a kill mid-write
    try:
        record = json.loads(line)
    except ValueError:
        return True
    return not (isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] > step)


def _truncate_log(path, step):
    """Drop the records logged after step (between the checkpoint resumed from and a kill)."""
    if not os.path.isfile(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if _keep_record(line, step)]
    if kept != lines:
        with open(f"{path}.tmp", "w") as f:
            f.writelines(kept)
        os.replace(f"{path}.tmp", path)


def _remove_previous_run(out):
    for sub, names in _RUN_FILES:
        folder = os.path.join(out, sub)
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if re.fullmatch(names, name):
                    os.remove(os.path.join(folder, name))


def distributed_env():
    """(rank, world size) from torchrun's environment; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def end_distributed():
    """Tear down torchrun's process group (when one is up). The barrier first lets gloo's
    worker thread finish releasing earlier collectives' tensors: destroying the group while
    it still needs the GIL for that deadlocks the destructor (pytorch/pytorch#75097)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class Trainer:
    def __init__(self, model, data, out_dir, *, epochs=None, steps=None, batch_size=64, seed=0,
                 log_every=10, sample_every=None, checkpoint_every=None, keep_last=3, amp=None,
                 device=None, progress=True, config=None, sample_count=64, tensorboard=True, overwrite=False):
        if (epochs is None) == (steps is None):
            raise ValueError("Trainer: give exactly one of epochs and steps")
        if (epochs is not None and epochs < 1) or (steps is not None and steps < 1):
            raise ValueError("Trainer: epochs / steps must be at least 1")
        if batch_size < 1:
            raise ValueError(f"Trainer: batch_size must be at least 1, got {batch_size}")
        self.rank, self.world = distributed_env()
        if self.world > 1 and batch_size % self.world:
            raise ValueError(f"Trainer: batch size {batch_size} is not divisible by the {self.world} processes")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.world > 1:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.model, self.data, self.out = model, data, out_dir
        self.epochs, self.steps, self.batch_size, self.seed = epochs, steps, batch_size, seed
        self.local_batch = batch_size // self.world
        self.log_every, self.sample_every = log_every, sample_every
        self.checkpoint_every, self.keep_last = checkpoint_every, keep_last
        self.progress, self.sample_count, self.use_tensorboard = progress, sample_count, tensorboard
        self.overwrite = overwrite
        self.config = dict(config or {})
        self.config.setdefault("model", dict(model.config))
        self.config.setdefault("trainer", {"batch_size": batch_size, "seed": seed, "amp": amp,
                                           "epochs": epochs, "steps": steps})
        self.sampler = DistributedSampler(data, num_replicas=self.world, rank=self.rank, shuffle=True, seed=seed)
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"Trainer: the data set has {len(data)} examples, fewer than one batch of "
                             f"{batch_size}; lower --batch-size")
        self.total_steps = steps if steps is not None else epochs * self.steps_per_epoch
        model.to(self.device)
        model.set_precision(amp)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            model.wrap_networks(lambda net: DDP(net, device_ids=ids, broadcast_buffers=False))
        self.step = 0
        self.is_writer = self.rank == 0
        self._sample_generator = torch.Generator().manual_seed(seed + 12345)
        self._sample_noise_state = self._sample_generator.get_state()
        self._last_checkpoint = None
        self._lineage = []  # this run's checkpoints, oldest first: the only ones pruning deletes

    # --- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_dir(self):
        return os.path.join(self.out, "checkpoints")

    def state_dict(self):
        rng = ckpt.rng_state()
        if self.world > 1:
            every = [None] * self.world
            dist.all_gather_object(every, rng)
            rng = every
        return {
            "format": ckpt.FORMAT, "version": ckpt.VERSION, "model": self.model.name, "config": self.config,
            "step": self.step, "world_size": self.world,
            "networks": {n: self.model.unwrapped(n).state_dict() for n in self.model.networks()},
            "optimizers": {n: o.state_dict() for n, o in self.model.optimizers().items()},
            "schedulers": {n: s.state_dict() for n, s in self.model.schedulers().items()},
            "scaler": self.model.scaler.state_dict() if self.model.scaler is not None else None,
            "extra": self.model.extra_state(),
            "rng": rng,
        }

    def save_checkpoint(self):
        state = self.state_dict()  # every rank joins the RNG gather
        if self.is_writer:
            path = ckpt.checkpoint_path(self.checkpoint_dir, self.step)
            ckpt.save(state, path)
            self._lineage = ckpt.prune(self._lineage + [path], self.keep_last)
            self._last_checkpoint = path
        self._saved_at = self.step

    def load_checkpoint(self, path):
        state = ckpt.load(path)
        if state["model"] != self.model.name:
            raise ckpt.CheckpointError(f"{ckpt.resolve(path)}: checkpoint is for model {state['model']!r}, "
                                       f"not {self.model.name!r}")
        if state.get("weights_only"):
            raise ckpt.CheckpointError(f"{ckpt.resolve(path)}: is a weights file (no optimizer state): it samples "
                                       f"and evaluates, but a run cannot resume from it")
        ckpt.load_networks(self.model, state)
        for kind, objects in (("optimizers", self.model.optimizers()), ("schedulers", self.model.schedulers())):
            saved = state.get(kind, {})
            if set(saved) != set(objects):
                raise ckpt.CheckpointError(f"{ckpt.resolve(path)}: checkpoint {kind} {sorted(saved)} do not match "
                                           f"the model's {sorted(objects)}")
            for name, obj in objects.items():
                obj.load_state_dict(saved[name])
        if self.model.scaler is not None and state.get("scaler"):
            self.model.scaler.load_state_dict(state["scaler"])
        self.model.load_extra_state(state.get("extra", {}))
        rng = state["rng"]
        if isinstance(rng, list):
            if len(rng) != self.world:
                raise ckpt.CheckpointError(f"{ckpt.resolve(path)}: saved by {len(rng)} processes, resumed with "
                                           f"{self.world}; resume with the same number")
            rng = rng[self.rank]
        elif self.world > 1:
            raise ckpt.CheckpointError(f"{ckpt.resolve(path)}: saved by 1 process, resumed with {self.world}")
        ckpt.set_rng_state(rng)
        self.step = int(state["step"])
        self._saved_at = self.step

    # --- output -----------------------------------------------------------------------------
    @property
    def metrics_path(self):
        return os.path.join(self.out, "metrics.jsonl")

    def _claim_run_folder(self, resumed_from):
        """Make OUT this run's folder (writer only): refuse another run's files, or delete them with
        overwrite; when resuming in place, cut the log back to the checkpoint's step."""
        found = ckpt.list_checkpoints(self.checkpoint_dir)
        in_place = resumed_from is not None and \
            os.path.realpath(os.path.dirname(resumed_from)) == os.path.realpath(self.checkpoint_dir)
        if in_place:
            later = [path for step, path in found if step > self.step]
            if later and not self.overwrite:
                raise ckpt.CheckpointError(
                    f"{self.out}: holds checkpoints after step {self.step} ({os.path.basename(later[-1])}); "
                    f"resuming from step {self.step} would fork the run: pass --overwrite to delete them, or "
                    f"give a new --out")
            for path in later:
                os.remove(path)
            _truncate_log(self.metrics_path, self.step)
            self._lineage = [path for step, path in found if step <= self.step]
        else:
            if (found or os.path.exists(self.metrics_path)) and not self.overwrite:
                raise ckpt.CheckpointError(
                    f"{self.out}: folder holds another run (checkpoints/, metrics.jsonl); give a new --out, "
                    f"continue that run with --resume {self.out}, or pass --overwrite to delete its files")
            _remove_previous_run(self.out)
            self._lineage = []
        os.makedirs(self.out, exist_ok=True)
        ckpt.remove_stale_temporaries(self.checkpoint_dir)

    def _prepare_run_folder(self, resumed_from):
        error = None
        if self.is_writer:
            try:
                with ckpt.writing(self.metrics_path):
                    self._claim_run_folder(resumed_from)
                    self._open_logs()
            except ckpt.CheckpointError as e:
                error = str(e)
        if self.world > 1:  # every rank stops when the writer refuses the folder
            box = [error]
            dist.broadcast_object_list(box, src=0)
            error = box[0]
        if error is not None:
            raise ckpt.CheckpointError(error)

    def _open_logs(self):
        self._metrics = open(self.metrics_path, "a")
        self._tb = None
        if self.use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(os.path.join(self.out, "tensorboard"))
            except ImportError:
                pass

    def log(self, record):
        if not self.is_writer:
            return
        with ckpt.writing(self.metrics_path):
            self._metrics.write(json.dumps(record) + "\n")
            self._metrics.flush()
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self._tb.add_scalar(f"{record.get('split', 'train')}/{key}", value, record["step"])

    def save_samples(self, batch):
        if not self.is_writer:
            return
        self.model.eval()
        self._sample_generator.set_state(self._sample_noise_state)  # same noise each time: progress is visible
        images = self.model.sample(self.sample_count, generator=self._sample_generator)
        path = os.path.join(self.out, "samples", f"step_{self.step:08d}.png")
        with ckpt.writing(path):
            save_grid(path, images)
            save_grid(os.path.join(self.out, "samples.png"), images)
            for name, grid in self.model.visuals(batch).items():
                save_grid(os.path.join(self.out, f"{name}.png"), grid, nrow=8)
        if self._tb is not None:
            from gentk.train.images import make_grid

            self._tb.add_image("samples", make_grid(images), self.step, dataformats="HWC")
        self.model.train()

    # --- the loop ---------------------------------------------------------------------------
    def fit(self, resume=None):
        """Train to the target step count; returns the last running losses."""
        self._saved_at = None
        resumed_from = None
        if resume is not None:
            resumed_from = ckpt.resolve(resume)
            self.load_checkpoint(resumed_from)
        else:
            seed_everything(self.seed + self.rank)
        self._prepare_run_folder(resumed_from)
        bar = None
        if self.is_writer and self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc=f"{self.model.name}", dynamic_ncols=True)
        running, pending, started, images_seen = {}, {}, time.perf_counter(), 0
        bar_start, bar_step = started, self.step
        batch = None
        self.model.train()
        try:
            while self.step < self.total_steps:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_epoch(epoch)
                order = list(self.sampler)
                for b in range(first, self.steps_per_epoch):
                    indices = order[b * self.local_batch:(b + 1) * self.local_batch]
                    batch = to_device(fetch_batch(self.data, indices), self.device)
                    losses = self.model.train_step(batch)
                    self.step += 1
                    images_seen += self.batch_size
                    for k, v in losses.items():
                        running[k] = v if k not in running else 0.9 * running[k] + 0.1 * v
                        pending.setdefault(k, []).append(v)
                    if not all(math.isfinite(v) for v in losses.values()):
                        raise FloatingPointError(f"non-finite loss at step {self.step}: {losses}")
                    if bar is not None:
                        bar.update(1)
                        # per-latent values ("kl/3") go to the logs only: the bar stays one line
                        rate = (self.step - bar_step) * self.batch_size / max(time.perf_counter() - bar_start, 1e-9)
                        bar.set_postfix({**{k: f"{v:.4g}" for k, v in running.items() if "/" not in k},
                                         "img/s": f"{rate:.3g}"}, refresh=False)
                    end_of_epoch = b == self.steps_per_epoch - 1
                    if self.step % self.log_every == 0 or self.step == self.total_steps or end_of_epoch:
                        elapsed = time.perf_counter() - started
                        self.log({"step": self.step, "epoch": self.step / self.steps_per_epoch,
                                  **{k: sum(v) / len(v) for k, v in pending.items()},
                                  "images_per_s": images_seen / max(elapsed, 1e-9)})
                        pending, started, images_seen = {}, time.perf_counter(), 0
                    done = self.step == self.total_steps
                    if done or (self.sample_every and self.step % self.sample_every == 0) or \
                            (end_of_epoch and not self.sample_every):
                        self.save_samples(batch)
                    if done or (self.checkpoint_every and self.step % self.checkpoint_every == 0) or \
                            (end_of_epoch and not self.checkpoint_every):
                        self.save_checkpoint()
                    if done:
                        break
        finally:
            if bar is not None:
                bar.close()
            if self.is_writer and hasattr(self, "_metrics"):
                self._metrics.close()
                if self._tb is not None:
                    self._tb.close()
        if self._saved_at != self.step:
            self.save_checkpoint()
        return running

    @property
    def last_checkpoint(self):
        return self._last_checkpoint
