"""Run under torchrun by tests/train/test_ddp.py (and in one process for the reference).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train/ddp_worker.py OUT
    python tests/train/ddp_worker.py OUT            # single process, same global batch

Trains a deterministic toy model (no noise, so one process and two must agree) and the
VAE, and saves each rank's parameters to OUT/{toy,vae}_rank{R}.pt.
"""
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from gentk import data  # noqa: E402
from gentk.models import build  # noqa: E402
from gentk.models.base import GenerativeModel, first_tensor  # noqa: E402
from gentk.train import Trainer, distributed_env, end_distributed, seed_everything  # noqa: E402


class ToyAutoencoder(GenerativeModel):
    """A deterministic model on the protocol: MSE autoencoder with plain SGD."""
    name = "toy"

    def __init__(self, resolution=16):
        super().__init__(resolution=resolution)
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(resolution * resolution, 12), nn.Tanh(),
                                 nn.Linear(12, resolution * resolution))
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.5)

    def networks(self):
        return {"net": self.net}

    def optimizers(self):
        return {"sgd": self.opt}

    def train_step(self, batch):
        x = first_tensor(batch)
        loss = (self.net(x) - x.flatten(1)).pow(2).sum(1).mean()
        self.backward_step(loss, self.opt)
        return {"loss": loss.item()}

    def sample(self, n, labels=None, generator=None):
        return torch.zeros(n, 1, 4, 4)


def params(model):
    return {f"{n}.{k}": v.detach().clone() for n in model.networks()
            for k, v in model.unwrapped(n).state_dict().items()}


def main(out):
    rank, _ = distributed_env()
    train = data.digits("train", 16)
    toy = ToyAutoencoder()
    Trainer(toy, train, os.path.join(out, "toy"), steps=6, batch_size=32, progress=False).fit()
    torch.save(params(toy), os.path.join(out, f"toy_rank{rank}.pt"))
    seed_everything(rank)
    vae = build("vae", arch="mlp", resolution=16, latent=4)
    Trainer(vae, train, os.path.join(out, "vae"), steps=4, batch_size=32, progress=False).fit()
    torch.save(params(vae), os.path.join(out, f"vae_rank{rank}.pt"))
    end_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
