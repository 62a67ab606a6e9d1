"""The knob table and the number options: each knob declared once (a Knobs field) and read by
the checks, the click options and --help; the families' declared defaults held to diffusers;
every float option of every command finite."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import subprocess
import sys

import click
import pytest

from vidlatent import families
from vidlatent.cli import main
from vidlatent.errors import UsageError
from vidlatent.knobs import FLAGS, KNOB, KNOBS, Knobs, check_knob, defaults_in_words, knob_help

NON_FINITE = ("nan", "inf", "-inf")


def _command(name: str) -> click.Command:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    return command


def test_every_knob_is_one_declared_field():
    """FLAGS and the checks are read from the fields; every field is a knob."""
    for field in dataclasses.fields(Knobs):
        assert KNOB in field.metadata, f"Knobs.{field.name} is not declared with knob(...)"
        assert field.default is None
    assert list(FLAGS) == [field.name for field in dataclasses.fields(Knobs)]
    assert FLAGS["steps"] == "--steps"
    assert FLAGS["timesteps"] == "timesteps (a model's own default schedule; no flag)"


def test_generate_has_an_option_per_flagged_knob():
    options = {param.name: param for param in _command("generate").params}
    for name, declaration in KNOBS.items():
        if declaration.flag is None:
            assert name not in options
            continue
        option = options[name]
        assert option.opts == [declaration.flag]
        assert option.help == knob_help(name)
        expected = click.types.FloatParamType if declaration.type is float else type(click.types.convert_type(declaration.type))
        assert isinstance(option.type, expected)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("guidance", float("nan"), "--guidance nan: must be a finite number"),
    ("noise_aug", float("inf"), "--noise-aug inf: must be a finite number"),
    ("guidance", -1.0, "--guidance -1.0: must be 0 or more"),
    ("steps", 0, "--steps 0: must be at least 1"),
    ("motion", 300, "--motion 300: must be between 1 and 255"),
    ("decode_timestep", 1.5, "--decode-timestep 1.5: must be between 0 and 1"),
])
def test_library_checks_come_from_the_table(name, value, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        check_knob(name, value)
    with pytest.raises(UsageError):
        Knobs(**{name: value}).validate()


def test_knobs_within_their_ranges_pass():
    Knobs(frames=1, steps=1, fps=1, motion=255, noise_aug=0.0, guidance=0.0, decode_timestep=1.0, prompt="x",
          timesteps=(1000.0, 0.5)).validate()


def test_pipeline_defaults_are_diffusers_own():
    """What each family declares as its pipelines' defaults is the default of every one of its
    pipeline classes' __call__, so that --help cannot go stale."""
    import diffusers

    for family in families.all_families():
        assert set(family.pipeline_defaults) == set(family.knob_arguments), family.name
        for class_name in family.pipeline_classes:
            parameters = inspect.signature(getattr(diffusers, class_name).__call__).parameters
            for name, declared in family.pipeline_defaults.items():
                argument = family.knob_arguments[name]
                assert argument in parameters, f"{class_name} takes no {argument}"
                actual = parameters[argument].default
                # None: the pipeline decides, or the argument is required and vidlatent always passes
                # it (its own default: SkyReels DF's prompt).
                required = actual is inspect.Parameter.empty and name in family.knob_defaults
                assert (actual is None or required) if declared is None else actual == declared, (
                    f"{family.name}.pipeline_defaults[{name!r}] is {declared!r}; {class_name}.{argument} defaults to {actual!r}")


def test_family_notes_and_defaults_name_known_knobs():
    for family in families.all_families():
        assert family.short_title
        taken = set(family.knob_arguments) | set(family.scheduler_knobs)  # the scheduler's: notes only
        for table in (family.pipeline_defaults, family.knob_defaults, family.default_notes):
            assert set(table) <= taken <= set(KNOBS), family.name
        assert set(family.pipeline_defaults) <= set(family.knob_arguments), family.name


def test_help_lists_each_familys_default():
    """The brackets are the families' declarations: every family that takes a knob is there with
    its value (vidlatent's own default first), or the knob's one value where they agree."""
    for name, declaration in KNOBS.items():
        if declaration.flag is None:
            continue
        takers = [family for family in families.all_families() if name in family.knob_arguments]
        words = defaults_in_words(name)
        assert knob_help(name).endswith(f" [{words}].")
        said = {family: (family.knob_defaults.get(name, family.pipeline_defaults[name]), family.default_notes.get(name))
                for family in takers}
        for family, (value, note) in said.items():
            if value is not None:
                assert (json.dumps(value) if declaration.type is str else str(declaration.type(value))) in words, (name, words)
            if note:
                assert note in words, (name, words)
            if len({repr(value) for value in said.values()}) > 1:  # repr: a default may be a list (LTX-2's blocks)
                assert family.short_title in words, (name, words)
    assert knob_help("steps") == ("Denoising steps [SVD 25; Wan 50; LTX 50, distilled models 8, their documented schedule; "
                                  "SkyReels 50; LTX-2 30, distilled models 8, their documented schedule].")
    assert knob_help("frames") == ("Frames to generate [SVD: the model's own (14; SVD-XT 25); Wan 81, which makes 4k+1; "
                                   "LTX 161, which makes 8k+1; SkyReels 97, which makes 4k+1; beyond --window, in "
                                   "overlapping windows; LTX-2 121, which makes 8k+1].")
    assert knob_help("fps") == ("SVD, LTX, SkyReels, LTX-2: frame rate the model is conditioned on, and the clip's [SVD 7; "
                                "LTX 25; SkyReels 24, the model tells only 16 from other rates; LTX-2 24].")
    assert knob_help("motion") == "SVD: motion bucket id: higher means more motion (1-255) [127]."


# Every float option of every command, found by walking the CLI: nan, inf and -inf are usage
# errors, one line naming the option, before torch is imported. Run in a fresh interpreter so
# that "no torch" means something (other tests import it).
_PROBE = r"""
import json, sys
import click
from click.testing import CliRunner
from vidlatent.cli import COMMANDS, main

results = []
for name in sorted(COMMANDS):
    command = main.get_command(click.Context(main), name)
    positional = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            positional += ["x"] * max(param.nargs, 1)
    for param in command.params:
        if isinstance(param, click.Option) and isinstance(param.type, click.types.FloatParamType):
            flag = max(param.opts, key=len)
            for value in sys.argv[1:]:
                result = CliRunner().invoke(main, [name, *positional, flag, value])
                results.append({"command": name, "flag": flag, "value": value, "code": result.exit_code,
                                "stderr": result.stderr, "stdout": result.stdout})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers"))
print(json.dumps({"results": results, "heavy": heavy}))
"""


def test_every_float_option_refuses_non_finite_values():
    probe = subprocess.run([sys.executable, "-c", _PROBE, *NON_FINITE], capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)
    assert not report["heavy"], f"checking float options imported {report['heavy'][:5]}"
    found = {(each["command"], each["flag"]) for each in report["results"]}
    # The walk finds the options (a new one is checked without a line here): at least these.
    assert {("generate", "--guidance"), ("decode", "--fps"), ("edit", "--smooth"), ("edit", "--strength"),
            ("edit", "--scale"), ("encode", "--fps"), ("analyze", "--static-threshold"),
            ("transfer-motion", "--refine"), ("interpolate", "--refine"), ("upscale", "--guidance")} <= found
    for each in report["results"]:
        lines = each["stderr"].splitlines()
        where = f"{each['command']} {each['flag']} {each['value']}: {each['stderr']!r}"
        assert each["code"] == 2, where
        assert lines == [f"vidlatent: error: {each['flag']} {float(each['value'])}: must be a finite number"], where
        assert each["stdout"] == "", where


def test_finite_values_still_parse():
    """The finite check does not change what a good value becomes, nor click's range messages."""
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["edit", "x", "--strength", "1.5"])
    assert result.exit_code == 2
    assert "'--strength': 1.5 is not in the range 0<=x<=1" in result.stderr
    option = next(param for param in _command("decode").params if param.name == "fps")
    assert option.type.convert("12.5", option, None) == 12.5
    assert math.isfinite(option.type.convert("1e300", option, None))
