"""Replaying a clip's history: the library behind ``replay``.

A latent file's history (and the tag of a video vidlatent wrote, ``vidlatent.provenance``)
records every step that made the clip: its command, its arguments with their seeds and resolved
knobs, the versions that ran it and the SHA-256 of the latents it produced. ``plan`` turns the
steps back into command lines (generate, extend and encode; anything else is refused with the
step named), ``replay`` runs them one by one into a scratch folder and compares each step's
latents with the recorded ones, stopping at the first that differs. The history is data: its
values become arguments of vidlatent's own commands, never anything a shell or Python runs.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidlatent import __version__, latentfile, provenance
from vidlatent.errors import InputError, VidlatentError
from vidlatent.knobs import KNOBS

REPLAYABLE = ("generate", "extend", "encode")


class ReplayError(VidlatentError):
    """A step that cannot be replayed (an input missing or changed, an unsupported command), or one
    that failed; exit status 1."""


@dataclass(frozen=True)
class Recording:
    """What is to be replayed: a clip's history and the latents it ended with.

    Args:
        source: the latent file or video it was read from.
        model: the clip's model (a generate step records none of its own).
        history: its steps, oldest first.
        latents_sha256: SHA-256 of its latents (``latentfile.latents_sha256``), None where unknown.
    """

    source: str
    model: str
    history: tuple[dict[str, Any], ...]
    latents_sha256: str | None


@dataclass(frozen=True)
class PlannedStep:
    """One recorded step as a vidlatent command line writing ``output``."""

    index: int  # 0-based, in the history
    command: str
    argv: tuple[str, ...]  # the words after ``vidlatent``
    output: str
    recorded: dict[str, Any]

    @property
    def shell(self) -> str:
        """The command line, shell-quoted."""
        return shlex.join(["vidlatent", *self.argv])


@dataclass(frozen=True)
class StepOutcome:
    """How one replayed step compares with its record."""

    index: int
    command: str
    shell: str
    identical: bool | None  # None: the step recorded no latents_sha256 (a file of an older vidlatent)
    recorded_versions: dict[str, str | None]
    current_versions: dict[str, str]

    def versions_differ(self) -> list[str]:
        """The names whose recorded version is not the current one (or was not recorded)."""
        return [name for name, version in self.current_versions.items() if self.recorded_versions.get(name) != version]

    def as_json(self) -> dict[str, Any]:
        return {"step": self.index + 1, "command": self.command, "shell": self.shell, "identical": self.identical,
                "recorded_versions": self.recorded_versions, "current_versions": self.current_versions}


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of a replay: ``identical`` when the final latents equal the clip's, bit for bit."""

    identical: bool
    steps: list[StepOutcome] = field(default_factory=list)
    first_difference: StepOutcome | None = None
    reason: str = ""  # one line: where and why it differs ("" when identical)
    final: str | None = None  # the last step's latent file, when every step ran


def open_recording(path: str) -> Recording:
    """The history of a latent file (``-``: stdin), or of a video's vidlatent tag; InputError (a bad
    input, exit 2, as for inspect) where there is nothing to replay."""
    if not latentfile.is_latent_path(path) and provenance.is_video_path(path):
        record = provenance.read_video_record(path)
        if record is None:
            raise InputError(f"{provenance.no_tag(path)}; there is nothing to replay")
        model = record.tag.get("model")
        recording = Recording(path, model if isinstance(model, str) else "", record.history, record.latents_sha256)
    else:
        clip = latentfile.read(path)
        recording = Recording(path, clip.model, clip.history, latentfile.latents_sha256(clip.latents))
    if not recording.history:
        raise InputError(f"{path}: its history is empty; there is nothing to replay")
    return recording


def current_versions() -> dict[str, str]:
    """The vidlatent, diffusers and torch versions installed."""
    return {"vidlatent": __version__, **latentfile.software_versions()}


def recorded_versions(step: dict[str, Any]) -> dict[str, str | None]:
    """The versions a history step records (None for each it does not: steps of vidlatent before 0.2)."""
    versions = step.get("versions") if isinstance(step.get("versions"), dict) else {}
    return {"vidlatent": step.get("vidlatent"), "diffusers": versions.get("diffusers"), "torch": versions.get("torch")}


def plan(recording: Recording, workdir: str) -> list[PlannedStep]:
    """The history's steps as command lines whose outputs go to ``workdir`` (step-1.safetensors, …).

    Raises:
        ReplayError: naming the first step that cannot be replayed, and why.
    """
    steps: list[PlannedStep] = []
    total = len(recording.history)
    for index, step in enumerate(recording.history):
        command = step.get("command")
        where = f"step {index + 1} of {total} ({command})"
        arguments = step.get("arguments")
        if not isinstance(arguments, dict):
            raise ReplayError(f"{where}: its record has no arguments; the history is damaged")
        if command not in REPLAYABLE:
            raise ReplayError(f"{where}: replay cannot re-run {command!r} steps; it replays {', '.join(REPLAYABLE)}")
        if arguments.get("acceleration"):
            raise ReplayError(f"{where}: it ran with acceleration ({', '.join(sorted(arguments['acceleration']))}), "
                              "which replay does not re-create")
        output = os.path.join(workdir, f"step-{index + 1}.safetensors")
        model = str(arguments.get("model") or recording.model)
        if command == "generate":
            argv = _generate_argv(arguments, model, where)
        elif command == "extend":
            if not steps:
                raise ReplayError(f"{where}: it extends a clip that the history does not make; replay cannot recreate it")
            argv = _extend_argv(arguments, model, steps[-1].output, where)
        else:
            argv = _encode_argv(arguments, model, where)
        steps.append(PlannedStep(index, command, (*argv, "-o", output), output, step))
    return steps


def _generate_argv(arguments: dict[str, Any], model: str, where: str) -> list[str]:
    source = arguments.get("source", "")
    argv = ["generate"]
    if source == "-":
        raise ReplayError(f"{where}: its image came from stdin, which was not kept; replay needs the image as a file")
    if source:
        _require_file(str(source), where, "source image")
        digest = arguments.get("image_sha256")
        # generate hashes the image's bytes as read (generation.file_sha256); an image is small.
        if digest and hashlib.sha256(Path(source).read_bytes()).hexdigest() != digest:
            raise ReplayError(f"{where}: its source image {source} has changed since (its SHA-256 is not the recorded one)")
        argv.append(str(source))
    argv += ["--model", model, "--size", str(arguments["size"]), "--seed", str(_seed(arguments.get("seed"), where))]
    # VACE's keyframes and references: files the record names by path and SHA-256.
    for flag, name in (("--keyframe", "keyframes"), ("--reference", "references")):
        for entry in arguments.get(name) or []:
            path = str(entry.get("path", "")) if isinstance(entry, dict) else ""
            _require_file(path, where, name[:-1])
            if hashlib.sha256(Path(path).read_bytes()).hexdigest() != entry.get("sha256"):
                raise ReplayError(f"{where}: its {name[:-1]} {path} has changed since (its SHA-256 is not the recorded one)")
            argv += [flag, f"{entry['frame']}:{path}" if flag == "--keyframe" else path]
    return argv + _knob_flags(arguments, _segment_prompts(arguments.get("segments"), where))


def _extend_argv(arguments: dict[str, Any], model: str, clip: str, where: str) -> list[str]:
    segments = arguments.get("segments")
    if not isinstance(segments, list) or not segments or not all(isinstance(s, dict) for s in segments):
        raise ReplayError(f"{where}: its record lists no segments; the history is damaged")
    seeds = [_seed(segment.get("seed"), where) for segment in segments]
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ReplayError(f"{where}: its segments' seeds {seeds} are not consecutive; extend makes segment j with seed + j, "
                          "so they cannot be repeated")
    argv = ["extend", clip, "--model", model, "--times", str(arguments.get("times", len(segments))), "--seed", str(seeds[0])]
    if arguments.get("overlap") is not None:
        argv += ["--overlap", str(arguments["overlap"])]
    argv.append("--drift-correction" if arguments.get("drift_correction", True) else "--no-drift-correction")
    return argv + _knob_flags(arguments, _segment_prompts(segments, where))


def _segment_prompts(segments: Any, where: str) -> list[str]:
    """The prompts of a step made a prompt per segment (or window), as recorded; [] for one prompt."""
    if not isinstance(segments, list) or not any(isinstance(each, dict) and "prompt" in each for each in segments):
        return []
    if any(isinstance(each, dict) and each.get("segment_frames") is not None for each in segments):
        raise ReplayError(f"{where}: its segments had their own frame counts (a prompts file's FRAMES:), which replay does "
                          "not re-create")
    return [str(each.get("prompt")) for each in segments]


def _encode_argv(arguments: dict[str, Any], model: str, where: str) -> list[str]:
    source = str(arguments.get("source", ""))
    _require_file(source, where, "source video", folder=True)
    argv = ["encode", source, "--model", model]
    for name in ("start", "frames", "stride", "fps", "size"):
        if arguments.get(name) is not None:
            argv += [f"--{name}", _word(arguments[name])]
    return argv


def _knob_flags(arguments: dict[str, Any], prompts: list[str] | None = None) -> list[str]:
    """The recorded knobs that a flag sets, as flags (knobs without one, a schedule, stay the model's own);
    ``prompts``: a --prompt per segment instead of the step's one."""
    flags = []
    for name, declaration in KNOBS.items():
        value = arguments.get(name)
        if name == "prompt" and prompts:
            flags += [item for prompt in prompts for item in ("--prompt", prompt)]
        elif value is not None and declaration.flag is not None:
            flags += [declaration.flag, _word(value)]
    return flags


def _word(value: Any) -> str:
    # repr of a float reads back as the same float: the knob is passed exactly as recorded.
    return repr(value) if isinstance(value, float) else str(value)


def _seed(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReplayError(f"{where}: its recorded seed {value!r} is not a seed (a whole number, 0 or more)")
    return value


def _require_file(path: str, where: str, what: str, *, folder: bool = False) -> None:
    if not path or not (os.path.isfile(path) or (folder and os.path.isdir(path))):
        raise ReplayError(f"{where}: its {what} {path or '(none recorded)'} is missing")


def replay(recording: Recording, steps: list[PlannedStep], run: Callable[[PlannedStep], int]) -> ReplayResult:
    """Run ``steps`` one by one with ``run`` (its exit status) and compare each step's latents with
    its record; stop at the first that differs.

    Raises:
        ReplayError: a step failed (its own error was reported by ``run``).
    """
    outcomes: list[StepOutcome] = []
    total = len(steps)
    now = current_versions()
    for step in steps:
        where = f"step {step.index + 1} of {total} ({step.command})"
        status = run(step)
        if status != 0:
            raise ReplayError(f"{where} failed (exit status {status}; its error is above): {step.shell}")
        made = latentfile.read(step.output).history
        recorded_hash = step.recorded.get("latents_sha256")
        identical = None if recorded_hash is None else bool(made) and made[-1].get("latents_sha256") == recorded_hash
        outcome = StepOutcome(step.index, step.command, step.shell, identical, recorded_versions(step.recorded), now)
        outcomes.append(outcome)
        if identical is False:
            return ReplayResult(False, outcomes, outcome, f"{where} does not reproduce its recorded latents{_why(outcome)}")
    final = steps[-1].output
    same = recording.latents_sha256 is not None and latentfile.latents_sha256(latentfile.read(final).latents) == recording.latents_sha256
    if same:
        return ReplayResult(True, outcomes, final=final)
    if recording.latents_sha256 is None:
        return ReplayResult(False, outcomes, outcomes[-1], f"{recording.source}: its tag records no latents_sha256 to compare with", final)
    unchecked = next((outcome for outcome in outcomes if outcome.identical is None), None)
    if unchecked is not None:  # an older file: its steps recorded no fingerprints of their own
        return ReplayResult(False, outcomes, unchecked, f"the replayed latents differ from the clip's; step {unchecked.index + 1} "
                            f"of {total} ({unchecked.command}) is the first that recorded no fingerprint to compare with"
                            f"{_why(unchecked)}", final)
    return ReplayResult(False, outcomes, None, "every replayed step matches its record, but the clip's latents do not: "
                        "they were changed after its last recorded step", final)


def _why(outcome: StepOutcome) -> str:
    """What differs between the versions the step recorded and the current ones, in words."""
    differ = outcome.versions_differ()
    if not differ:
        versions = ", ".join(f"{name} {version}" for name, version in outcome.current_versions.items())
        return (f" with the same versions ({versions}): its recorded arguments or inputs were changed, "
                "or it ran on another device")
    changes = ", ".join(f"{name} {outcome.recorded_versions.get(name) or 'unrecorded'} -> {outcome.current_versions[name]}"
                        for name in differ)
    return f"; versions differ: {changes}"
