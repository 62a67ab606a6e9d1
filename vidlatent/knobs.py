"""Sampling knobs: what a command line can ask of a model's sampler, and the checks on them
(ranges, what a model takes, the frame counts and sizes it can make).

Torch-free, so the command line validates knobs (ranges in click callbacks, what a model
takes against its spec) before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError

if TYPE_CHECKING:
    from vidlatent.families.base import Family, ModelSpec


# Knobs field -> the command-line flag that sets it (for messages).
FLAGS = {
    "frames": "--frames", "steps": "--steps", "fps": "--fps", "motion": "--motion", "noise_aug": "--noise-aug",
    "min_guidance": "--min-guidance", "max_guidance": "--max-guidance", "prompt": "--prompt",
    "negative_prompt": "--negative-prompt", "guidance": "--guidance", "guidance_2": "--guidance-2",
    "decode_timestep": "--decode-timestep", "decode_noise_scale": "--decode-noise-scale",
    "timesteps": "timesteps (a model's own default schedule; no flag)",
}


@dataclass(frozen=True)
class Knobs:
    """Sampling knobs of every family, named for people. None means the pipeline's own default.

    Each family takes some of them (``Family.knob_arguments`` maps them to its pipeline's
    arguments) and refuses the others.

    Args:
        frames: pixel frames to generate (num_frames).
        steps: denoising steps (num_inference_steps).
        fps: SVD: the frame rate the model is conditioned on (fps).
        motion: SVD: motion bucket id, 1-255: more is more motion (motion_bucket_id).
        noise_aug: SVD: noise added to the conditioning image (noise_aug_strength).
        min_guidance, max_guidance: SVD: guidance, linear from the first frame to the last.
        prompt, negative_prompt: text models: what to show and what to avoid.
        guidance: text models: classifier-free guidance scale (guidance_scale).
        guidance_2: Wan 2.2 two-expert models: guidance of the low-noise expert (guidance_scale_2).
        decode_timestep, decode_noise_scale: LTX: the timestep its VAE decoder is conditioned on, and
            how much noise is mixed into the latents before decoding (recorded, used by decode).
        timesteps: LTX distilled models: the documented schedule (timesteps=), set as the model's
            default when --steps is not given; no flag.
    """

    frames: int | None = None
    steps: int | None = None
    fps: int | None = None
    motion: int | None = None
    noise_aug: float | None = None
    min_guidance: float | None = None
    max_guidance: float | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    guidance: float | None = None
    guidance_2: float | None = None
    decode_timestep: float | None = None
    decode_noise_scale: float | None = None
    timesteps: tuple[float, ...] | None = None

    def validate(self) -> None:
        """Raise UsageError for values no model can use (cheap, before loading)."""
        for name in RULES:
            check_knob(name, getattr(self, name))

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    def check_for(self, spec: ModelSpec, *, what: str = "") -> None:
        """Raise UsageError for knobs the model does not take, and frame counts it cannot make
        (before it loads). ``what`` names the model in messages."""
        self.validate()
        model = what or spec.title
        for name in self.given():
            if name not in spec.knobs:
                takes = ", ".join(FLAGS[knob] for knob in FLAGS if knob in spec.knobs)
                raise UsageError(f"{FLAGS[name]}: {model} does not take it; it takes {takes}")
        if self.frames is not None:
            check_frames(self.frames, spec)

    def pipeline_kwargs(self, family: Family) -> dict[str, Any]:
        """The knobs that were given, plus the family's own defaults, under its pipeline's names."""
        given = self.given()
        values = {**family.knob_defaults_for(given), **given}
        return {family.knob_arguments[name]: value for name, value in values.items() if name in family.knob_arguments}

    def resolved(self, pipeline: Any, family: Family | None = None) -> Knobs:
        """These knobs with the pipeline's defaults filled in (for the history); knobs the
        family does not take stay None."""
        from vidlatent import families

        family = family or families.for_pipeline(pipeline)
        defaults = inspect.signature(type(pipeline).__call__).parameters
        ours = family.knob_defaults_for(self.given())
        values: dict[str, Any] = {}
        for name, argument in family.knob_arguments.items():
            given = getattr(self, name)
            if given is not None:
                values[name] = given
            elif name in ours:
                values[name] = ours[name]
            elif argument in defaults:
                values[name] = defaults[argument].default
        return Knobs(**{**values, **family.resolve_knobs(pipeline, values)})

    def record(self) -> dict[str, Any]:
        """The knobs that have values, for a history entry."""
        return self.given()


def check_frames(frames: int, spec: ModelSpec) -> None:
    """Refuse a pixel frame count the model's VAE cannot make, naming the nearest that it can."""
    rule = spec.frame_rule
    if not rule.accepts(frames):
        below, above = rule.neighbours(frames)
        options = f"{below} or {above}" if below != above else str(below)
        raise UsageError(f"--frames {frames}: {spec.title} makes {rule.describe()} frames; use {options}")


# Knobs field -> (is the value usable, the rule in words).
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "frames": (lambda v: v >= 1, "at least 1"),
    "steps": (lambda v: v >= 1, "at least 1"),
    "fps": (lambda v: v >= 1, "at least 1"),
    "motion": (lambda v: 1 <= v <= 255, "between 1 and 255"),
    "noise_aug": (lambda v: v >= 0, "0 or more"),
    "min_guidance": (lambda v: v >= 0, "0 or more"),
    "max_guidance": (lambda v: v >= 0, "0 or more"),
    "guidance": (lambda v: v >= 0, "0 or more"),
    "guidance_2": (lambda v: v >= 0, "0 or more"),
    "decode_timestep": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "decode_noise_scale": (lambda v: 0 <= v <= 1, "between 0 and 1"),
}


def check_knob(name: str, value: Any) -> None:
    """Raise UsageError naming the flag, the value and the rule when ``value`` breaks it."""
    if value is not None and name in RULES and not RULES[name][0](value):
        raise UsageError(f"{FLAGS[name]} {value}: must be {RULES[name][1]}")


def check_size(size: tuple[int, int], spec: ModelSpec, *, flag: str = "--size") -> None:
    """Refuse a pixel size that is not a multiple of the model's size multiple, naming the nearest."""
    width, height = size
    multiple = spec.size_multiple
    if width % multiple or height % multiple or width < multiple or height < multiple:
        near = f"{max(multiple, round(width / multiple) * multiple)}x{max(multiple, round(height / multiple) * multiple)}"
        raise UsageError(f"{flag} {width}x{height}: {spec.title} needs sides that are multiples of {multiple}; use {near}")


def default_size(spec: ModelSpec, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """The size a generation gets without --size: the aspect ratio of the image (of
    ``image_size``, width and height) at the model's native area (rounded to its size multiple),
    or its native size for text only (None)."""
    if image_size is None:
        return spec.native_size
    from vidlatent import media

    return media.fit_size(*image_size, spec.native_area, spec.size_multiple)
