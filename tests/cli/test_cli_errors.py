"""Hostile and careless command lines: every option of every command and model is checked
before anything is loaded or written, and every failure is one line naming the option or
the file."""
import errno
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_cli_fails_in_one_line, write_idx
from gentk import cli
from gentk.models import MODELS

FAST = ["--arch", "mlp", "--resolution", "16", "--latent", "4", "--no-progress", "--steps", "1", "--no-eval"]
CHECKED_NUMBERS = {cli._natural: ["-1", "1.5", str(2**70)], cli._positive_int: ["0", "-3", "nan"],
                   cli._nonnegative_float: ["nan", "inf", "-inf", "-1", "1e999"],
                   cli._positive_float: ["0", "nan", "inf", "-1"], cli._threads: ["0", str(os.cpu_count() + 1)]}

pytestmark = pytest.mark.usefixtures("one_thread")


class _Parsed(Exception):
    pass


def parser_of(monkeypatch, command, argv):
    """The parser `gentk COMMAND ARGV` builds, caught at its parse_args."""
    built = []

    def capture(self, args=None, namespace=None):
        built.append(self)
        raise _Parsed

    with monkeypatch.context() as m:
        m.setattr(cli._Parser, "parse_args", capture)
        with pytest.raises(_Parsed):
            cli.COMMANDS[command][0](argv)
    return built[0]


def all_parsers(monkeypatch):
    for command in ("train", "profile"):
        for name in MODELS:
            yield f"{command} {name}", parser_of(monkeypatch, command, [name])
    for command in ("sample", "eval"):
        yield command, parser_of(monkeypatch, command, [])


def test_every_numeric_option_refuses_bad_numbers(monkeypatch):
    """Walks every option of every command and model, the models' own included: a number
    is finite and in range, or parsing fails in one line that names the option."""
    tried = 0
    for where, parser in all_parsers(monkeypatch):
        for action in parser._actions:
            kind = parser._registry_get("type", action.type, action.type)
            if action.type is None or kind is cli._device:
                continue
            assert kind in CHECKED_NUMBERS, f"gentk {where} {action.option_strings}: unchecked type {kind}"
            for bad in CHECKED_NUMBERS[kind]:
                with pytest.raises(cli.CommandError) as e:
                    parser.parse_args([action.option_strings[0], bad])
                assert f"argument {action.option_strings[0]}: expected" in str(e.value)
                assert len(str(e.value).splitlines()) == 1
                tried += 1
    assert tried > 500


def test_model_options_are_constructor_arguments(monkeypatch, capsys):
    """An option the model would drop is not offered (it was accepted and ignored before)."""
    for name in MODELS:
        accepted = cli._constructor_arguments(cli._model_class(name))
        parser = parser_of(monkeypatch, "train", [name])
        group = next(g for g in parser._action_groups if g.title == f"{name} options")
        assert group._group_actions and all(a.dest in accepted for a in group._group_actions), name
    for name in ("pix2pix", "cyclegan"):
        assert_cli_fails_in_one_line(["train", name, "--gp-chunk-size", "4"], "unrecognized arguments: --gp-chunk-size",
                                     capsys)
    assert parser_of(monkeypatch, "train", ["stargan"]).parse_args(["--gp-chunk-size", "4"]).gp_chunk_size == 4


@pytest.mark.parametrize("argv,message", [
    (["--lr", "inf"], "argument --lr: expected a positive number, got inf (not a finite number)"),
    (["--eval-k", "-5"], "argument --eval-k: expected an integer >= 0, got -5"),
    (["--device", "foo"], "argument --device: expected cpu, cuda or cuda:N, got 'foo'"),
    (["--resolution", "4"], "--resolution: data set 'digits' needs a resolution of at least 8, got 4"),
    (["--seed", str(2**64)], "argument --seed: expected an integer >= 0 below 2**63"),
])
def test_train_refuses_before_writing(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert_cli_fails_in_one_line(["train", "vae", *FAST, "--out", str(out), *argv], message, capsys)
    assert not out.exists()


def test_sizes_left_out_are_computed_and_zero_is_refused(capsys):
    assert_cli_fails_in_one_line(["train", "pix2pix", "--width", "0"], "argument --width: expected a positive integer",
                                 capsys)


def test_device_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for command in (["train", "vae"], ["sample", "RUN"], ["eval", "RUN"], ["profile", "gan"]):
        assert_cli_fails_in_one_line([*command, "--device", "cuda"], "--device: cuda: this machine has no CUDA device",
                                     capsys)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert_cli_fails_in_one_line(["train", "vae", "--device", "cuda:1"], "cuda:1: this machine has 1 CUDA device",
                                 capsys)


def test_output_that_cannot_be_written(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    for out in ("file", "file/run"):
        assert_cli_fails_in_one_line(["train", "vae", *FAST, "--out", str(tmp_path / out)],
                                     f"{tmp_path / 'file'} is a file, not a folder", capsys)
    assert_cli_fails_in_one_line(["sample", str(tmp_path), "--out", str(tmp_path)], "is a folder; name a file", capsys)
    # root ignores permission bits: the check is seen through os.access
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).startswith(str(tmp_path / "ro")))
    os.makedirs(tmp_path / "ro")
    assert_cli_fails_in_one_line(["train", "vae", *FAST, "--out", str(tmp_path / "ro" / "run")],
                                 f"--out {tmp_path / 'ro' / 'run'}: {tmp_path / 'ro'} is not writable", capsys)
    assert os.listdir(tmp_path / "ro") == []


@pytest.mark.parametrize("code,reason", [(errno.EACCES, "Permission denied"),
                                         (errno.ENOSPC, "disk full (no space left on device)")])
def test_write_failures_are_one_line(monkeypatch, capsys, code, reason):
    def write(argv):
        raise OSError(code, os.strerror(code), "/runs/x/samples.png")

    monkeypatch.setitem(cli.COMMANDS, "sample", (write, ""))
    assert_cli_fails_in_one_line(["sample"], f"gentk sample: error: /runs/x/samples.png: {reason}", capsys)


def test_out_of_memory_is_one_line(monkeypatch, capsys):
    def allocate(argv):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 3200000000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setitem(cli.COMMANDS, "train", (allocate, ""))
    assert_cli_fails_in_one_line(["train"], "gentk train: error: out of memory (2.98e+06 GiB asked for); lower "
                                 "--batch-size", capsys)


def _mnist_folder(folder, labels, images=None):
    os.makedirs(folder, exist_ok=True)
    images = np.zeros((len(labels), 16, 16), dtype=np.uint8) if images is None else images
    write_idx(os.path.join(folder, "train-images-idx3-ubyte"), images)
    write_idx(os.path.join(folder, "train-labels-idx1-ubyte"), np.asarray(labels, dtype=">i4"))


def test_data_folders(tmp_path, capsys):
    out = tmp_path / "run"
    train = ["train", "cgan", "--arch", "mlp", "--resolution", "16", "--batch-size", "4", "--steps", "1", "--no-eval",
             "--no-progress", "--out", str(out), "--data", "mnist", "--data-root"]
    stray = [0, 1, 2, 100000]  # a class of 100000 would make a model of 100001 classes (a 40 GB embedding)
    _mnist_folder(tmp_path / "stray", stray)
    assert_cli_fails_in_one_line([*train, str(tmp_path / "stray")], "they go up to 100000 but 99997 of those "
                                 "classes have no example", capsys)
    images = np.zeros((4, 16, 16), dtype=">f4")
    images[1, 0, 0] = np.nan
    _mnist_folder(tmp_path / "nan", [0, 1, 0, 1], images)
    assert_cli_fails_in_one_line([*train, str(tmp_path / "nan")], "train-images-idx3-ubyte: image 1 has NaN", capsys)
    _mnist_folder(tmp_path / "none", [])
    assert_cli_fails_in_one_line([*train, str(tmp_path / "none")], "train-images-idx3-ubyte: holds no pixels", capsys)
    assert not out.exists()


def test_unreadable_image(tmp_path, capsys):
    os.makedirs(tmp_path / "train")
    for i in range(4):
        Image.new("RGB", (32, 16), (60 * i, 0, 0)).save(tmp_path / "train" / f"{i}.png")
    train = ["train", "pix2pix", "--resolution", "16", "--width", "4", "--d-width", "4", "--batch-size", "4",
             "--steps", "1", "--no-progress", "--no-eval", "--data", "aligned", "--data-root", str(tmp_path),
             "--out", str(tmp_path / "run")]
    raw = (tmp_path / "train" / "2.png").read_bytes()
    (tmp_path / "train" / "2.png").write_bytes(raw[:len(raw) // 2])  # read only when its batch comes
    assert_cli_fails_in_one_line(train, "2.png: cannot read image", capsys)
    (tmp_path / "train" / "2.png").write_bytes(b"\x89PNG garbage")  # refused before anything is written
    train[-1] = str(tmp_path / "run2")
    assert_cli_fails_in_one_line(train, "2.png: cannot read image", capsys)
    assert not (tmp_path / "run2").exists()
