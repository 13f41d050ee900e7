"""The ``gentk`` command: train, sample, evaluate and profile gentk's models.

    gentk train MODEL [--data digits] [--epochs N | --steps N] [--out runs/MODEL] ...
    gentk sample CKPT [--n 64] [--labels 0,1,2]
    gentk eval CKPT [--k 100]
    gentk export CKPT OUT.pt
    gentk profile MODEL [--steps 20] [--trace trace.json]
    gentk bench [benchmark options]

CKPT is a checkpoint file or a run folder (its newest checkpoint). Errors are one line.
"""
import argparse
import dataclasses
import errno
import json
import math
import os
import re
import subprocess
import sys
import typing

from gentk.data.errors import DataError

EXIT_USAGE = 2
DEFAULT_EPOCHS = 25
_INT_MAX = 2**63 - 1  # seeds and sizes end up in int64


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Every numeric option of gentk is a count, a size, a seed or a weight, so a plain type=int or
        # type=float (the models' options included) takes a finite number >= 0; options that need
        # more (positive, bounded) give their own type or are checked by the model's constructor.
        self.register("type", int, _natural)
        self.register("type", float, _nonnegative_float)

    def error(self, message):
        raise CommandError(f"{self.prog}: {message}")


def _models_epilog():
    from gentk.models import MODELS

    lines = ["models:"] + [f"  {name:<10} {paper}" for name, (_, paper) in MODELS.items()]
    return "\n".join(lines)


def _datasets_help():
    from gentk.data import DATASETS

    return "; ".join(f"{name}: {desc}" for name, (_, _, desc) in DATASETS.items())


def _integer(text, minimum, noun):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if not minimum <= value <= _INT_MAX:
        raise argparse.ArgumentTypeError(f"expected {noun}" + (" below 2**63" if value > _INT_MAX else "")
                                         + f", got {value}")
    return value


def _number(text, minimum, strict, noun):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text} (not a finite number)")
    if not (value > minimum if strict else value >= minimum):
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text}")
    return value


def _positive_int(text):
    return _integer(text, 1, "a positive integer")


def _natural(text):
    return _integer(text, 0, "an integer >= 0")


def _threads(text):
    value, cpus = _positive_int(text), os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(f"expected at most the {cpus} CPUs of this machine, got {value}")
    return value


def _positive_float(text):
    return _number(text, 0, True, "a positive number")


def _nonnegative_float(text):
    return _number(text, 0, False, "a number >= 0")


def _device(text):
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: this machine has no CUDA device (or torch was built without "
                                         f"CUDA); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text


def _check_output(path, option, folder=True):
    """Refuse, before anything is written, an output that cannot be created: a folder (or a
    file's folder) under a file, a file where a folder should be or the reverse, no write access."""
    if not folder and os.path.isdir(path):
        raise CommandError(f"{option} {path}: is a folder; name a file")
    existing = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CommandError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"{option} {path}: {existing} is not writable")


def _model_class(name):
    from gentk.models import UnknownModel, model_class

    try:
        return model_class(name)
    except UnknownModel as e:
        raise CommandError(str(e)) from None


def _common_model_parser(prog, description, model_cls):
    import gentk

    p = _Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=model_cls.default_data, help=f"data set (default {model_cls.default_data}): "
                   + _datasets_help())
    p.add_argument("--data-root", default=None, help="folder of the data (mnist, aligned, unaligned, attributes)")
    p.add_argument("--download", action="store_true",
                   help="download MNIST into --data-root with torchvision (only when torchvision is installed)")
    p.add_argument("--resolution", type=_positive_int, default=28, help="image side in pixels (default 28)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="global batch size (default 64)")
    p.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: the paper's)")
    p.add_argument("--backend", default="auto", choices=gentk.BACKENDS, help="gentk kernel backend (default auto)")
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"),
                   help="mixed precision: bf16 autocast, or fp16 with a grad scaler (GPU only)")
    p.add_argument("--device", type=_device, default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_threads, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice; 1 is faster on a busy machine)")
    _add_model_options(p.add_argument_group(f"{model_cls.name} options"), model_cls)
    return p


def _constructor_arguments(model_cls):
    """The fields of the model's config class by name: the keyword arguments its constructor takes."""
    return {f.name: f for f in dataclasses.fields(model_cls.config_class)}


def _flag_fields(model_cls):
    """The config fields offered as flags (made with gentk.models.base.option); the others are filled
    in from the data or set from Python only."""
    return [f for f in _constructor_arguments(model_cls).values() if "help" in f.metadata]


def _add_model_options(group, model_cls):
    """One flag per option field of the model's config, typed from its annotation, the default in its help."""
    types = typing.get_type_hints(model_cls.config_class)
    for field in _flag_fields(model_cls):
        meta, kind = field.metadata, types[field.name]
        kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # int | None -> int
        shown = meta["default_help"] or (f"{field.default:g}" if kind is float else field.default)
        help_ = f"{meta['help']} (default{':' if meta['default_help'] else ''} {shown})"
        flag = meta["switch"] or "--" + field.name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, dest=field.name, action="store_false" if field.default else "store_true",
                               help=help_)
            continue
        numeric = {}
        if kind is int:
            # a size computed when left out (from the resolution): 0 would silently mean "left out"
            numeric["type"] = _positive_int if field.default is None else int
        elif kind is float:
            numeric["type"] = float
        group.add_argument(flag, dest=field.name, default=field.default, choices=meta["choices"], help=help_,
                           **numeric)


def _model_config(model_cls, args, data):
    """The model's constructor arguments from the parsed flags and the data's shape."""
    accepted = _constructor_arguments(model_cls)
    config = {field.name: getattr(args, field.name) for field in _flag_fields(model_cls)}
    first = data[0]
    image = first[0] if isinstance(first, (tuple, list)) else first
    if "channels" in accepted:
        config["channels"] = int(image.shape[0])
    if "resolution" in accepted:
        config["resolution"] = int(image.shape[-1])
    if args.lr is not None and "lr" in accepted:
        config["lr"] = args.lr
    labels = data.tensors[1] if hasattr(data, "tensors") and len(data.tensors) > 1 else None
    if "classes" in accepted and labels is not None and not labels.is_floating_point() and labels.dim() == 1:
        config["classes"] = _class_count(labels, args.data_root or args.data)  # conditional models
    if "train_size" in accepted:  # models that scale a paper's schedule to the data set
        config["train_size"] = len(data)
    if "c_dim" in accepted and isinstance(first, (tuple, list)) and len(first) > 1:
        config["c_dim"] = int(first[1].numel())  # attribute count (StarGAN)
    if "total_steps" in accepted and hasattr(args, "epochs"):  # training length (learning-rate schedules)
        config["total_steps"] = args.steps or (args.epochs or DEFAULT_EPOCHS) * max(1, len(data) // args.batch_size)
    return config


def _class_count(labels, source):
    """The classes of integer labels, which must be 0 to K-1 with every class present (a stray
    label of 100000 would otherwise make a model of 100001 classes)."""
    if len(labels) == 0 or int(labels.min()) < 0:
        raise CommandError(f"{source}: class labels must be integers >= 0")
    counts = labels.bincount()
    missing = int((counts == 0).sum())
    if missing:
        raise CommandError(f"{source}: class labels must run from 0 to K-1 with every class present; they go up "
                           f"to {len(counts) - 1} but {missing} of those classes have no example")
    return len(counts)


def _load_data(name, split, root, resolution, seed=0, download=False, whole_test=False):
    from gentk import data

    try:
        return data.load(name, split, root=root, resolution=resolution, seed=seed, download=download,
                         whole_test=whole_test)
    except data.DataError as e:
        raise CommandError(str(e)) from None


def _check_data_kind(model_cls, name):
    from gentk.data import DATASETS

    if name not in DATASETS:
        raise CommandError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if DATASETS[name][0] != model_cls.data_kind:
        fitting = [n for n, (kind, _, _) in DATASETS.items() if kind == model_cls.data_kind]
        raise CommandError(f"model {model_cls.name} needs {model_cls.data_kind} data; {name!r} is "
                           f"{DATASETS[name][0]} (use one of {', '.join(fitting)})")


def _print_metrics(title, metrics):
    print(title)
    for key, value in metrics.items():
        print(f"  {key:<28} {value + 0.0:.4f}" if isinstance(value, float) else f"  {key:<28} {value}")


# --- train ---------------------------------------------------------------------------------
def cmd_train(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: gentk train MODEL [options]   (gentk train MODEL --help for the options)\n")
        print(_models_epilog())
        return 0
    model_cls = _model_class(argv[0])
    p = _common_model_parser(f"gentk train {model_cls.name}", f"Train {model_cls.name} ({model_cls.paper}).",
                             model_cls)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, default=None, help=f"epochs (default {DEFAULT_EPOCHS})")
    length.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps instead of epochs")
    p.add_argument("--out", default=None, help="output folder (default runs/MODEL)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue from a checkpoint or run folder (its "
                   "data, batch size, seed, precision and length unless given here)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out folder that holds a run: "
                   "deletes that run's checkpoints, metrics.jsonl, sample grids and TensorBoard events")
    p.add_argument("--log-every", type=_positive_int, default=10, help="steps between metric lines")
    p.add_argument("--sample-every", type=_positive_int, default=None, help="steps between sample grids "
                   "(default: every epoch)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help="steps between checkpoints "
                   "(default: every epoch)")
    p.add_argument("--keep", type=_positive_int, default=3, help="checkpoints kept (default 3)")
    p.add_argument("--eval-k", type=int, default=100, help="importance samples for the final test NLL "
                   "(0 skips it; default 100)")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv[1:])
    unset = object()  # parsed again over placeholders: those replaced were given, as --x v or --x=v
    probe = p.parse_args(argv[1:], argparse.Namespace(**dict.fromkeys(vars(args), unset)))
    given = {option for option, value in vars(probe).items() if value is not unset}

    import torch

    import gentk
    from gentk import metrics
    from gentk.train import CheckpointError, Trainer, distributed_env, end_distributed, seed_everything
    from gentk.train import checkpoint as ckpt

    gentk.set_backend(args.backend)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or os.path.join("runs", model_cls.name)
    _check_output(out, "--out")
    saved = None
    if args.resume:
        try:
            saved = ckpt.load(args.resume)
        except CheckpointError as e:
            raise CommandError(str(e)) from None
        if saved["model"] != model_cls.name:
            raise CommandError(f"{args.resume}: checkpoint is for model {saved['model']!r}, not {model_cls.name!r}")
        # what the command line leaves out continues as the run was: its data, batch, seed, target length
        from_saved = {"data": ("data", "name"), "data_root": ("data", "root"),
                      "resolution": ("data", "resolution"), "batch_size": ("trainer", "batch_size"),
                      "seed": ("trainer", "seed"), "amp": ("trainer", "amp")}
        if not given & {"epochs", "steps"}:
            from_saved.update(epochs=("trainer", "epochs"), steps=("trainer", "steps"))
        for option, (section, key) in from_saved.items():
            if option not in given and key in saved["config"].get(section, {}):
                setattr(args, option, saved["config"][section][key])
    _check_data_kind(model_cls, args.data)
    train_data = _load_data(args.data, "train", args.data_root, args.resolution, args.seed, args.download)
    config = model_cls.config_from_checkpoint(saved["config"]["model"]) if saved else \
        _model_config(model_cls, args, train_data)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.amp == "fp16" and not device.startswith("cuda"):
        raise CommandError("--amp fp16 needs a CUDA device (use --amp bf16 on CPU)")
    rank, _ = distributed_env()
    seed_everything(args.seed + rank)
    try:
        model = model_cls(**config)
    except (TypeError, ValueError) as e:
        raise CommandError(f"{model_cls.name}: {e}") from None
    epochs = args.epochs if args.epochs or args.steps else DEFAULT_EPOCHS
    full_config = {
        "model": config,
        "data": {"name": args.data, "root": args.data_root, "resolution": args.resolution},
        "trainer": {"batch_size": args.batch_size, "seed": args.seed, "amp": args.amp, "epochs": epochs,
                    "steps": args.steps, "backend": args.backend},
    }
    try:
        trainer = Trainer(model, train_data, out, epochs=epochs, steps=args.steps, batch_size=args.batch_size,
                          seed=args.seed, log_every=args.log_every, sample_every=args.sample_every,
                          checkpoint_every=args.checkpoint_every, keep_last=args.keep, amp=args.amp,
                          device=device, progress=not args.no_progress, config=full_config,
                          overwrite=args.overwrite)
        trainer.fit(resume=args.resume)
    except CheckpointError as e:
        raise CommandError(str(e)) from None
    except ValueError as e:
        raise CommandError(str(e)) from None
    end_distributed()
    if rank != 0:
        return 0
    print(f"samples: {os.path.join(out, 'samples.png')}  checkpoint: {trainer.last_checkpoint}  "
          f"metrics: {os.path.join(out, 'metrics.jsonl')}")
    if not args.no_eval:
        test_data = _load_data(args.data, "test", args.data_root, args.resolution, args.seed)
        results = metrics.evaluate(model, test_data, train_data=train_data,
                                   dataset_key=f"{args.data}{args.resolution}",
                                   cache_dir=os.path.join(out, "evaluator"), k=args.eval_k)
        trainer_record = {"step": trainer.step, "split": "test", **results}
        with open(os.path.join(out, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(trainer_record) + "\n")
        _print_metrics(f"test metrics after {trainer.step} steps:", results)
    return 0


# --- sample --------------------------------------------------------------------------------
def _load_model(path, device):
    from gentk.train import CheckpointError, model_from_checkpoint

    try:
        return model_from_checkpoint(path, device)
    except CheckpointError as e:
        raise CommandError(str(e)) from None


def _run_dir(checkpoint_file):
    folder = os.path.dirname(os.path.abspath(checkpoint_file))
    return os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder


def cmd_sample(argv):
    p = _Parser(prog="gentk sample", description="Draw samples from a trained model into a PNG grid.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run folder")
    p.add_argument("--n", type=_positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--labels", default=None, help="comma-separated class labels, for conditional models "
                   "(the grid then has one row per label)")
    p.add_argument("--sweeps", action="store_true", help="also write the latent-code sweeps of models that "
                   "have them (infogan) next to the grid, as OUT_<sweep>.png")
    p.add_argument("--out", default=None, help="PNG to write (default RUN/sample_STEP.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=_device, default=None)
    p.add_argument("--traverse", action="store_true",
                   help="write latent traversals instead of samples (beta_vae: one row per latent swept over "
                        "+-3 sd; joint_vae: one row per category)")
    p.add_argument("--traverse-steps", type=_positive_int, default=10, help="images per traversal row (default 10)")
    p.add_argument("--traverse-dim", type=int, default=None,
                   help="beta_vae: only this latent; joint_vae: the continuous latent swept along the rows "
                        "(default: the one with the most KL in training)")
    args = p.parse_args(argv)
    if args.out:
        _check_output(args.out, "--out", folder=False)
    import torch

    from gentk.train import save_grid
    from gentk.train import checkpoint as ckpt

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, state = _load_model(args.checkpoint, device)
    labels = None
    if args.labels is not None:
        if not model.conditional:
            raise CommandError(f"model {model.name} is unconditional; --labels does not apply")
        try:
            labels = torch.tensor([int(v) for v in args.labels.split(",")], device=device)
        except ValueError:
            raise CommandError(f"--labels: expected comma-separated integers, got {args.labels!r}") from None
        classes = model.classes
        if isinstance(classes, int) and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            bad = next(int(v) for v in labels if not 0 <= int(v) < classes)
            raise CommandError(f"--labels: {bad} is not a class of this {model.name} model (it has {classes} "
                               f"classes: 0 to {classes - 1})")
        per_label = (args.n + len(labels) - 1) // len(labels)
        labels = labels.repeat_interleave(per_label)[:args.n]
    if args.sweeps and not model.can("code_sweeps"):
        raise CommandError(f"--sweeps: model {model.name} has no latent codes to sweep")
    model.eval()
    if args.traverse:
        if not model.can("traverse"):
            raise CommandError(f"model {model.name} has no latent traversal; --traverse applies to beta_vae and "
                               f"joint_vae")
        if args.traverse_steps < 2:
            raise CommandError(f"--traverse-steps: a traversal needs at least 2 steps, got {args.traverse_steps}")
        try:
            images, nrow = model.traverse(args.traverse_steps, dim=args.traverse_dim)
        except ValueError as e:
            raise CommandError(f"--traverse-dim: {e}" if args.traverse_dim is not None else str(e)) from None
        path = args.out or os.path.join(_run_dir(ckpt.resolve(args.checkpoint)), f"traverse_{state['step']:08d}.png")
        save_grid(path, images, nrow=nrow)
        print(path)
        return 0
    if model.can("translation"):  # image-to-image models translate the first test images
        from gentk.train import fetch_batch

        data_cfg = state["config"].get("data", {})
        test = _load_data(data_cfg.get("name", model.default_data), "test", data_cfg.get("root"),
                          data_cfg.get("resolution", 28), state["config"].get("trainer", {}).get("seed", 0))
        torch.manual_seed(args.seed)  # unpaired sets draw their B side at random
        images, nrow = model.translation_grid(fetch_batch(test, list(range(min(args.n, len(test))))))
        path = args.out or os.path.join(_run_dir(ckpt.resolve(args.checkpoint)), f"sample_{state['step']:08d}.png")
        save_grid(path, images, nrow=nrow)
        print(path)
        return 0
    images = model.sample(args.n, labels=labels, generator=torch.Generator().manual_seed(args.seed))
    path = args.out or os.path.join(_run_dir(ckpt.resolve(args.checkpoint)), f"sample_{state['step']:08d}.png")
    save_grid(path, images, nrow=per_label if labels is not None else None)
    print(path)
    if args.sweeps:
        stem = os.path.splitext(path)[0]
        for name, grid in model.code_sweeps(generator=torch.Generator().manual_seed(args.seed)).items():
            print(save_grid(f"{stem}_{name}.png", grid, nrow=8))
    return 0


# --- eval ----------------------------------------------------------------------------------
def cmd_eval(argv):
    p = _Parser(prog="gentk eval", description="Evaluate a trained model on its test split: VAE test -ELBO and "
                "importance-sampled NLL; per-latent KL, capacity tracking and categorical-code accuracy (beta_vae, "
                "joint_vae); sample coverage, class entropy and Frechet distance through an "
                "evaluator classifier (trained once per data set, cached in RUN/evaluator/).")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run folder")
    p.add_argument("--data", default=None, help="data set (default: the one it was trained on)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--k", type=int, default=100, help="importance samples per example for the NLL (default 100)")
    p.add_argument("--max-examples", type=_positive_int, default=None, help="evaluate on the first N test images")
    p.add_argument("--n-samples", type=int, default=1000, help="generated images for the sample metrics")
    p.add_argument("--out", default=None, help="JSON file to write (default RUN/eval.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=_device, default=None)
    p.add_argument("--test-mode", choices=("eval", "paper"), default=None,
                   help="pix2pix: run the generator in eval mode (the default: batch norm's running statistics, "
                        "no dropout) or as the paper tests it (each image's own batch-norm statistics, dropout on; "
                        "--seed fixes the dropout)")
    args = p.parse_args(argv)
    import torch

    from gentk import metrics
    from gentk.train import checkpoint as ckpt

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, state = _load_model(args.checkpoint, device)
    if args.test_mode is not None:
        if model.name != "pix2pix":
            raise CommandError(f"--test-mode applies to pix2pix, not to model {model.name}")
        model.test_mode = args.test_mode
        torch.manual_seed(args.seed)
    data_cfg = state["config"].get("data", {})
    name = args.data or data_cfg.get("name", "digits")
    root = args.data_root or data_cfg.get("root")
    resolution = state["config"]["model"].get("resolution", data_cfg.get("resolution", 28))
    # a folder of only MNIST test files is split 8,000 train / 2,000 test for a run trained there;
    # a run trained elsewhere is scored on all of its images
    trained_here = data_cfg.get("root") is not None and root is not None and \
        os.path.realpath(os.path.expanduser(root)) == os.path.realpath(os.path.expanduser(data_cfg["root"]))
    test_data = _load_data(name, "test", root, resolution, whole_test=not trained_here)
    try:
        train_data = _load_data(name, "train", root, resolution)
    except CommandError:
        train_data = None  # only a test split: no evaluator classifier, likelihoods still work
    run = _run_dir(ckpt.resolve(args.checkpoint))
    path = args.out or os.path.join(run, "eval.json")
    _check_output(path, "--out", folder=False)
    results = metrics.evaluate(model, test_data, train_data=train_data, dataset_key=f"{name}{resolution}",
                               cache_dir=os.path.join(run, "evaluator"), k=args.k, n_samples=args.n_samples,
                               max_examples=args.max_examples, seed=args.seed)
    results = {"step": state["step"], "data": name, **results}
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    _print_metrics(f"{model.name} at step {state['step']} on {name} (test):", results)
    print(f"written to {path}")
    return 0


# --- export --------------------------------------------------------------------------------
def cmd_export(argv):
    p = _Parser(prog="gentk export", description="Write the weights file of a checkpoint: the networks that "
                "sampling and evaluation need (a GAN's generator, a VAE's encoder and decoder), the config and "
                "the step; no optimizer or RNG state, so it is smaller, but a run cannot resume from it. "
                "`gentk sample` and `gentk eval` (with --data-root) take it as they take a checkpoint.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run folder")
    p.add_argument("out", metavar="OUT", help="weights file to write (.pt)")
    args = p.parse_args(argv)
    _check_output(args.out, "OUT", folder=False)
    from gentk.train import CheckpointError
    from gentk.train import checkpoint as ckpt

    try:
        ckpt.export_weights(args.checkpoint, args.out)
    except CheckpointError as e:
        raise CommandError(str(e)) from None
    print(f"{args.out} ({os.path.getsize(args.out) / 2**20:.2f} MiB)")
    return 0


# --- profile -------------------------------------------------------------------------------
def cmd_profile(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: gentk profile MODEL [options]   (gentk profile MODEL --help for the options)\n")
        print(_models_epilog())
        return 0
    model_cls = _model_class(argv[0])
    p = _common_model_parser(f"gentk profile {model_cls.name}",
                             "Time warm training steps of the same model, seed and batch with pure PyTorch "
                             "(--backend torch) and with gentk's kernels, taking turns step by step, and show "
                             "each one's peak memory and top operators.",
                             model_cls)
    p.add_argument("--steps", type=_positive_int, default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps (default 5)")
    p.add_argument("--top", type=_positive_int, default=10, help="operators listed (default 10)")
    p.add_argument("--trace", default=None, metavar="FILE", help="write a Chrome trace of the gentk run")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    args = p.parse_args(argv[1:])
    for option, path in (("--trace", args.trace), ("--json", args.json)):
        if path:
            _check_output(path, option, folder=False)
    import torch

    import gentk
    from gentk.train import seed_everything
    from gentk.train import fetch_batch, to_device

    _check_data_kind(model_cls, args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = _load_data(args.data, "train", args.data_root, args.resolution, args.seed, args.download)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if len(data) < args.batch_size:
        raise CommandError(f"--batch-size {args.batch_size} is larger than the data set ({len(data)})")
    config = _model_config(model_cls, args, data)
    try:
        model_cls(**config)  # bad hyperparameters: one line naming them, before anything is timed
    except (TypeError, ValueError) as e:
        raise CommandError(f"{model_cls.name}: {e}") from None
    batch = to_device(fetch_batch(data, list(range(args.batch_size))), device)
    from gentk.profile import interleaved_step_times

    gentk_backend = args.backend if args.backend != "torch" else "auto"
    backends = {"torch": "torch", "gentk": gentk_backend}
    steps = {}
    for label, backend in backends.items():
        seed_everything(args.seed)
        model = model_cls(**config).to(device)
        model.set_precision(args.amp)
        model.train()

        def step(model=model, backend=backend):
            with gentk.use_backend(backend):
                return model.train_step(batch)

        for _ in range(args.warmup):
            step()
        steps[label] = step
    # step times with the two models taking turns (a machine's drift hits both alike); then
    # each model's memory and operators under the profiler
    step_ms = interleaved_step_times(steps, steps=args.steps, device=device)
    runs = {}
    for label, step in steps.items():
        runs[label] = gentk.profile_step(step, steps=1, warmup=0, device=device, top=args.top,
                                         trace=args.trace if label == "gentk" else None)
        runs[label].update(backend=backends[label], step_ms=step_ms[label], steps=args.steps,
                           images_per_s=args.batch_size * 1000 / step_ms[label])
        runs[label].pop("step_ms_mean", None)
    speedup = runs["torch"]["step_ms"] / runs["gentk"]["step_ms"]
    print(f"{model_cls.name} on {args.data} ({args.resolution}x{args.resolution}), batch {args.batch_size}, "
          f"{device}, amp {args.amp}: {args.warmup} warm-up + {args.steps} timed steps each, the two in turns")
    print(f"{'':8} {'backend':8} {'step ms':>9} {'images/s':>10} {'peak memory MiB':>16}")
    for label, r in runs.items():
        print(f"{label:8} {r['backend']:8} {r['step_ms']:9.2f} {r['images_per_s']:10.3g} "
              f"{r['peak_memory_bytes'] / 2**20:16.1f}")
    print(f"speedup (torch / gentk step time): {speedup:.3f}x   peak memory: {runs['gentk']['memory_method']}")
    for label, r in runs.items():
        print(f"top operators, {label} ({r['backend']}), self time per step:")
        for row in r["top_ops"]:
            calls = row["calls"] // r["profile_steps"]
            print(f"  {row['self_ms']:9.3f} ms {100 * row['share']:5.1f}%  x{calls:<4} {row['name']}")
    if args.trace:
        print(f"Chrome trace of the gentk run: {args.trace}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"speedup": speedup, **runs}, f, indent=1)
    return 0


# --- bench ---------------------------------------------------------------------------------
def cmd_bench(argv):
    import gentk

    checkout = os.path.dirname(os.path.dirname(os.path.abspath(gentk.__file__)))
    if not os.path.isfile(os.path.join(checkout, "benchmarks", "__main__.py")):
        raise CommandError("gentk bench runs the benchmark suite of a source checkout (benchmarks/ next to "
                           "gentk/); this install has none: clone the repository and run it there")
    return subprocess.call([sys.executable, "-m", "benchmarks", *argv], cwd=checkout)


# --- selftest ------------------------------------------------------------------------------
def cmd_selftest(argv):
    from gentk.selftest.cases import FAMILIES

    p = argparse.ArgumentParser(
        prog="gentk selftest",
        description="Test gentk's kernels on this device, each op family and backend in child processes (a "
                    "kernel that faults cannot take this one down): parity with the pure-PyTorch reference over "
                    "odd, empty, non-contiguous and channels_last inputs and every dtype, with gradients; noise "
                    "statistics of the random ops; forward+backward timings against the reference (and "
                    "torch.compile of it). The verdict is kept under $XDG_CACHE_HOME/gentk (~/.cache/gentk); "
                    "backend 'auto' on a CUDA tensor runs the fastest backend that passed. Exit status 0 when "
                    "every tested backend passed.")
    p.add_argument("--device", type=_device, default=None,
                   help="cuda[:N] tests the cuda and triton backends, cpu the cpp one (default: cuda when available)")
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES), metavar="FAMILY",
                   help=f"op families to test (default: all of {', '.join(FAMILIES)})")
    p.add_argument("--backends", nargs="+", choices=("cpp", "cuda", "triton"), default=None, metavar="BACKEND",
                   help="backends to test (default: cuda and triton on a GPU; cpp on CPU, and triton when "
                        "TRITON_INTERPRET=1)")
    p.add_argument("--show", action="store_true", help="print the stored verdict for the device and exit")
    p.add_argument("--no-timing", action="store_true", help="parity and noise cases only")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time torch.compile of the reference (default: on a GPU only; compiling takes "
                        "minutes on a CPU)")
    args = p.parse_args(argv)
    import torch

    from gentk import selftest

    device = str(torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    if device == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"
    on_gpu = device.startswith("cuda")
    for backend, runs_on_gpu in (("cpp", False), ("cuda", True)):
        if backend in (args.backends or ()) and runs_on_gpu != on_gpu:
            raise CommandError(f"--backends {backend}: runs on {'CUDA' if runs_on_gpu else 'CPU'} tensors, "
                               f"not on {device}")
    compile_ = on_gpu if args.compile is None else args.compile
    return selftest.command(device, args.families, args.backends, args.show, timing=not args.no_timing,
                            compile=compile_ and not args.no_timing)


COMMANDS = {
    "train": (cmd_train, "train a model (gentk train MODEL --help)"),
    "sample": (cmd_sample, "draw samples from a checkpoint into a PNG grid"),
    "eval": (cmd_eval, "test ELBO/NLL and evaluator-classifier sample metrics of a checkpoint"),
    "export": (cmd_export, "write a checkpoint's weights file (networks and config; no optimizer state)"),
    "profile": (cmd_profile, "time training steps: pure PyTorch vs gentk kernels, top operators"),
    "bench": (cmd_bench, "run the kernel benchmarks (from a source checkout)"),
    "selftest": (cmd_selftest, "test gentk's kernels on this device; `auto` on CUDA uses what passed"),
}


def _usage():
    lines = [f"usage: gentk {{{','.join(COMMANDS)}}} ...", "",
             "Train, sample, evaluate and profile gentk's generative models.", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines) + "\n\n" + _models_epilog()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else EXIT_USAGE
    command = argv[0]
    if command not in COMMANDS:
        print(f"gentk: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[command][0](argv[1:])
    except CommandError as e:
        message = str(e)
        if not message.startswith("gentk"):
            message = f"gentk {command}: error: {message}"
    except DataError as e:  # also mid-run, from an image read only when its batch comes
        message = f"gentk {command}: error: {e}"
    except OSError as e:  # a read-only folder, a full disk: the file and the reason
        reason = "disk full (no space left on device)" if e.errno == errno.ENOSPC else e.strerror or str(e)
        message = f"gentk {command}: error: " + (f"{e.filename}: {reason}" if e.filename else reason)
    except RuntimeError as e:  # torch's allocators: sizes too large for this machine, from options or data
        if "can't allocate memory" not in str(e) and type(e).__name__ != "OutOfMemoryError":
            raise
        wanted = re.search(r"allocate (\d+) bytes", str(e))
        what = f"{int(wanted[1]) / 2**30:.3g} GiB asked for" if wanted else str(e).splitlines()[0]
        message = (f"gentk {command}: error: out of memory ({what}); lower --batch-size, --resolution or the "
                   f"model's sizes")
    except KeyboardInterrupt:
        print("gentk: interrupted", file=sys.stderr)
        return 130
    print(message, file=sys.stderr)
    return EXIT_USAGE

if __name__ == "__main__":
    sys.exit(main())
