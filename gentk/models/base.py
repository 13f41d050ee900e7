"""The small protocol every gentk model follows, so one Trainer, one CLI and one profiler
serve them all.

A model holds its networks (``networks()``: name -> nn.Module, kept as attributes of the
same names), its optimizers and schedulers, does one training step on a batch
(``train_step(batch) -> {loss name: float}``) and draws samples (``sample(n)`` -> images in
[0, 1]). The trainer moves it to a device, sets mixed precision and, under torchrun, wraps
the networks in DistributedDataParallel; ``autocast()`` and ``backward_step()`` are what a
step uses so that mixed precision and gradient scaling need nothing else from the model.
"""
import contextlib
import dataclasses

import torch
from torch import nn

#: What a model can do beyond training and sampling: capability -> the methods it brings.
#: Each model class declares its own in ``capabilities``; the CLI and ``gentk.metrics.evaluate``
#: ask ``model_can(model, name)`` (tests/models/test_models_contract.py holds declarations and methods
#: together).
CAPABILITIES = {
    "elbo": ("negative_elbo",),                                 # test negative ELBO
    "importance_nll": ("log_importance_weights",),              # importance-sampled NLL
    "latent_kl": ("kl_per_dimension",),                         # KL of q(z|x) per latent dimension
    "capacity": ("capacity_targets",),                          # a scheduled KL capacity to track
    "categorical_codes": ("categorical_codes",),                # discrete codes to score against labels
    "traverse": ("traverse",),                                  # latent traversal grids
    "code_sweeps": ("code_sweeps",),                            # per-code sample sweeps (InfoGAN)
    "translation": ("translation_grid", "evaluate_translation"),  # image-to-image grids and metrics
}


class GenerativeModel:
    #: registry name, paper and data set kind ("labelled", "paired", "unpaired", "attributes")
    name = ""
    paper = ""
    data_kind = "labelled"
    default_data = "digits"
    #: whether sample() takes labels (class or attribute targets); ``classes``: how many class
    #: labels it takes (None: no class labels, e.g. attribute targets)
    conditional = False
    classes = None
    #: names from CAPABILITIES this model has
    capabilities = frozenset()
    #: the networks that sampling and evaluation need (None: all of them); a weights file
    #: (gentk.train.checkpoint.export_weights) keeps only these
    inference_networks = None
    #: the dataclass of the constructor's keyword arguments and their defaults (see ``option``)
    config_class = None

    def __init__(self, **config):
        self.config = dict(config)
        self.device = torch.device("cpu")
        self.amp_dtype = None
        self.scaler = None

    @classmethod
    def config_from_checkpoint(cls, config):
        """The constructor arguments for a checkpoint's saved config: a model whose defaults
        changed fills in, for checkpoints written before, the value they were trained with."""
        return dict(config)

    # --- what each model provides ---------------------------------------------------
    def networks(self):
        raise NotImplementedError

    def optimizers(self):
        raise NotImplementedError

    def schedulers(self):
        return {}

    def train_step(self, batch):
        raise NotImplementedError

    def sample(self, n, labels=None, generator=None):
        raise NotImplementedError

    def visuals(self, batch):
        """Extra image grids for a batch (for example reconstructions): name -> images."""
        return {}

    def extra_state(self):
        """Anything else a checkpoint must hold to resume exactly (image pools, counters)."""
        return {}

    def load_extra_state(self, state):
        pass

    @classmethod
    def can(cls, capability):
        """Whether the model declares ``capability`` (a key of CAPABILITIES)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown model capability {capability!r}; choose one of {', '.join(CAPABILITIES)}")
        return capability in cls.capabilities

    # --- shared machinery -------------------------------------------------------------
    def to(self, device):
        self.device = torch.device(device)
        for net in self.networks().values():
            net.to(self.device)
        return self

    def train(self, mode=True):
        for net in self.networks().values():
            net.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def parameters(self):
        for net in self.networks().values():
            yield from net.parameters()

    def unwrapped(self, name):
        net = getattr(self, name)
        return getattr(net, "module", net)

    def wrap_networks(self, wrap):
        """Replace each network that has parameters by wrap(network) (DDP under torchrun)."""
        for name, net in self.networks().items():
            if any(p.requires_grad for p in net.parameters()):
                setattr(self, name, wrap(net))

    def set_precision(self, amp):
        """amp: None/'none' (float32), 'bf16' (autocast) or 'fp16' (autocast + GradScaler, GPU only)."""
        if amp in (None, "none", "fp32"):
            self.amp_dtype, self.scaler = None, None
        elif amp == "bf16":
            self.amp_dtype, self.scaler = torch.bfloat16, None
        elif amp == "fp16":
            if self.device.type != "cuda":
                raise ValueError("--amp fp16 needs a CUDA device (use --amp bf16 on CPU)")
            self.amp_dtype, self.scaler = torch.float16, torch.amp.GradScaler("cuda")
        else:
            raise ValueError(f"unknown --amp {amp!r}; choose none, bf16 or fp16")

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def backward_step(self, loss, optimizer, retain_graph=False):
        """zero_grad, backward, step, with loss scaling when fp16 asks for it."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward(retain_graph=retain_graph)
            optimizer.step()
        else:
            self.scaler.scale(loss).backward(retain_graph=retain_graph)
            self.scaler.step(optimizer)
            self.scaler.update()


def option(default, help, *, choices=None, default_help=None, switch=None):
    """A config field that ``gentk train MODEL`` offers as ``--NAME`` (underscores as hyphens), typed
    from the field's annotation; its help ends with the default, or with ``default_help`` (what a
    None default stands for, or a bool's default in words). A bool field is a ``switch`` flag that
    stores the opposite of the default (``--NAME`` when the switch is not named)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices,
                                                        "default_help": default_help, "switch": switch})


def from_data(default):
    """A config field the CLI fills in from the data (its shape, classes, size, training length)
    or from the common ``--lr``, so the model has no flag of its own for it."""
    return dataclasses.field(default=default, metadata={"from_data": True})


def override(config_class, name, default):
    """A subclass config's field ``name`` as in ``config_class`` with another default."""
    return dataclasses.field(default=default, metadata=config_class.__dataclass_fields__[name].metadata)


def model_can(model, capability):
    """``model.can(capability)`` for a gentk model; a model of the user's own that does not derive
    from GenerativeModel has a capability when it has all of its methods."""
    if isinstance(model, GenerativeModel):
        return model.can(capability)
    return all(callable(getattr(model, method, None)) for method in CAPABILITIES[capability])


def to_model_range(x):
    """Data images in [0, 1] -> the networks' [-1, 1] (tanh outputs)."""
    return x * 2 - 1


def to_image_range(x):
    """A tanh network's [-1, 1] -> images in [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


def first_tensor(batch):
    """The images of a batch that may be a tensor or an (images, labels, ...) tuple."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def host_floats(values):
    """{name: number or tensor} -> {name: float}, for a train_step's return. A 0-d tensor
    keeps its name; a 1-d tensor v under name k becomes k0, k1, ... (e.g. "kl/z" gives
    "kl/z0", "kl/z1"). Every tensor is read in one device-to-host copy, where .item() per
    value waits for the device once each."""
    out, names, tensors = {}, [], []
    for k, v in values.items():
        if not isinstance(v, torch.Tensor):
            out[k] = v
            continue
        keys = [k] if v.dim() == 0 else [f"{k}{i}" for i in range(v.numel())]
        out.update(dict.fromkeys(keys))  # keeps the order the caller gave
        names += keys
        tensors.append(v.detach().double().reshape(-1))
    if tensors:
        out.update(zip(names, torch.cat(tensors).tolist()))
    return out


def count_parameters(module: nn.Module):
    return sum(p.numel() for p in module.parameters())
