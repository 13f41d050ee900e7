"""gentk's trainer: the loop, checkpoints (atomic, resumable exactly), mixed precision,
DDP under torchrun, JSON-lines / TensorBoard logging and PNG sample grids."""
from gentk.train.checkpoint import CheckpointError, model_from_checkpoint
from gentk.train.images import make_grid, save_grid
from gentk.train.trainer import Trainer, distributed_env, end_distributed, fetch_batch, seed_everything, to_device

__all__ = ["CheckpointError", "Trainer", "distributed_env", "end_distributed", "fetch_batch", "make_grid",
           "model_from_checkpoint", "save_grid", "seed_everything", "to_device"]
