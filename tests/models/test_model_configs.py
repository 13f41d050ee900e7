"""Each model's hyperparameters and their defaults live in its config dataclass, and `gentk train
MODEL`'s model options are made from it: every flag offered changes the model it builds, no
flag is offered for a field the model lacks (or one the CLI fills from the data), and each
flag's help shows the config's default."""
import dataclasses
import functools

import pytest

from conftest import assert_cli_fails_in_one_line
from gentk import cli
from gentk.models import MODELS, build, model_class

RESOLUTION = "16"
#: the fields the CLI fills in from the data, or from the common --lr
FROM_DATA = {"channels", "resolution", "classes", "train_size", "c_dim", "total_steps", "lr"}
#: a non-default value for each free-form text field
TEXT_VALUES = {"categories": "4,3"}

pytestmark = pytest.mark.usefixtures("one_thread")


class _Parsed(Exception):
    pass


@functools.cache
def train_parser(name):
    """The parser `gentk train NAME` builds, caught before it parses anything."""
    def capture(self, args=None, namespace=None):
        raise _Parsed(self)

    real, cli._Parser.parse_args = cli._Parser.parse_args, capture
    try:
        cli.cmd_train([name])
    except _Parsed as e:
        return e.args[0]
    finally:
        cli._Parser.parse_args = real
    raise AssertionError(f"gentk train {name} parsed nothing")


@functools.cache
def train_data(name):
    cls = model_class(name)
    return cli._load_data(cls.default_data, "train", None, int(RESOLUTION))


def model_options(name):
    parser = train_parser(name)
    group = next(g for g in parser._action_groups if g.title == f"{name} options")
    return {action.dest: action for action in group._group_actions}


def flag_fields(name):
    return [f for f in dataclasses.fields(model_class(name).config_class) if "help" in f.metadata]


def built_config(name, argv):
    """model.config of the model `gentk train NAME --resolution 16 ARGV` builds."""
    cls = model_class(name)
    args = train_parser(name).parse_args(["--resolution", RESOLUTION, *argv])
    return cls(**cli._model_config(cls, args, train_data(name))).config


def other_value(field, action, current):
    """A valid value other than the default (``current``: the default model's value, resolved from
    the resolution where the field's default is None)."""
    if action.choices:
        return next(choice for choice in action.choices if choice != field.default)
    if action.type is None:
        return TEXT_VALUES[field.name]
    if action.type is float:
        return 0.5 if current is None else current / 2 if current else 1.0
    if current is None:
        return 2
    return current - 1 if current > 1 else current + 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_flag_changes_the_model(name):
    default = built_config(name, [])
    options = model_options(name)
    assert options, name
    for field in flag_fields(name):
        action = options[field.name]
        if action.nargs == 0:  # a switch: stores the opposite of the default
            argv = [action.option_strings[0]]
        else:
            argv = [action.option_strings[0], str(other_value(field, action, default[field.name]))]
        changed = built_config(name, argv)
        assert changed[field.name] != default[field.name], f"gentk train {name} {' '.join(argv)} changed nothing"
        assert {k for k in changed if changed[k] != default[k]} == {field.name}, (name, argv)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_flags_are_the_config_fields(name):
    fields = {f.name: f for f in dataclasses.fields(model_class(name).config_class)}
    options = model_options(name)
    assert set(options) == {f.name for f in flag_fields(name)}
    for dest, action in options.items():
        assert action.option_strings == [fields[dest].metadata["switch"] or "--" + dest.replace("_", "-")]
    data_fields = {f.name for f in fields.values() if f.metadata.get("from_data")}
    assert data_fields <= FROM_DATA, name


def test_a_flag_the_model_does_not_have_is_refused(capsys):
    offered = {name: {a.option_strings[0] for a in model_options(name).values()} for name in MODELS}
    everywhere = set().union(*offered.values())
    for name in MODELS:
        common = {flag for action in train_parser(name)._actions for flag in action.option_strings}
        fields = dataclasses.fields(model_class(name).config_class)
        unoffered = {"--" + f.name.replace("_", "-") for f in fields if "help" not in f.metadata} - common
        for flag in sorted((everywhere - offered[name]) | unoffered):
            assert_cli_fails_in_one_line(["train", name, flag, "4"], f"unrecognized arguments: {flag}", capsys)
    assert "--gp-chunk-size" in offered["stargan"] and "--gp-chunk-size" not in offered["pix2pix"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_help_shows_the_config_default(name):
    options = model_options(name)
    for field in flag_fields(name):
        action, said = options[field.name], field.metadata["default_help"]
        if action.nargs != 0:
            assert action.default == field.default
        shown = said if said is not None else f"{field.default:g}" if action.type is float else field.default
        assert action.help.endswith(f"(default{':' if said is not None else ''} {shown})"), (name, action.help)
        assert said is not None or field.default is not None, f"{name} --{field.name}: say what None means"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_unknown_keyword_is_refused(name):
    with pytest.raises(TypeError, match="unexpected keyword argument 'latnt'"):
        build(name, latnt=4)


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan"])
def test_configs_with_the_old_gp_chunk_size_entry_load(name):
    """Their configs used to hold gp_chunk_size=None, which their constructor refused."""
    cls = model_class(name)
    config = cls(resolution=16).config
    assert "gp_chunk_size" not in config
    assert cls(**cls.config_from_checkpoint({**config, "gp_chunk_size": None})).config == config
