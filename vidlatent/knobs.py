"""Sampling knobs: what a command line can ask of a model's sampler, and the checks on them
(ranges, what a model takes, the frame counts and sizes it can make).

Each knob is declared once, as a field of ``Knobs`` made by ``knob``: its flag, type, range,
metavar and help. The flags in messages (``FLAGS``), the range checks (``check_knob``) and the
command-line options (``vidlatent.commands.options``) are all read from those fields; which
families take a knob, and its default in each, the families declare (``Family.knob_arguments``,
``pipeline_defaults``, ``knob_defaults``, ``default_notes``), and ``knob_help`` puts them into
the help text.

Torch-free, so the command line validates knobs (ranges in click callbacks, what a model
takes against its spec) before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError
from vidlatent.samplers import SAMPLERS

if TYPE_CHECKING:
    from vidlatent.families.base import Family, ModelSpec

KNOB = "vidlatent.knob"  # the key of a Knobs field's metadata that holds its Knob


@dataclass(frozen=True)
class Knob:
    """One knob's declaration: all the command line and the checks know of it.

    Args:
        flag: the option that sets it, or None for a knob no flag sets.
        type: int, float or str (tuple: a schedule); floats must be finite.
        minimum, maximum: the range, inclusive (None: open on that side).
        metavar: the option's value in --help (None: click's name of the type).
        help: what it does, for --help, prefixed by the families that take it and followed by
            their defaults (``knob_help``); for a knob without a flag, what sets it instead.
        remark: said of its default after the families' ("extend and edit: the clip's own").
        choices: the values a str knob takes (empty: any).
        parse: turns the flag's text into the pipeline's value, raising UsageError for a bad one
            (--stg-blocks "28,29" -> [28, 29]); None passes the value as it is.
    """

    flag: str | None
    type: type
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None
    help: str = ""
    remark: str = ""
    choices: tuple[str, ...] = ()
    parse: Any = None

    def label(self, name: str) -> str:
        """How messages name the knob: its flag, else its name and what sets it."""
        return self.flag or f"{name} ({self.help}; no flag)"

    def rule(self) -> str:
        """The range in words ("at least 1", "between 0 and 1"), or "" for none."""
        return describe_range(self.minimum, self.maximum)

    def accepts(self, value: Any) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)


def knob(flag: str | None, type: type, *, minimum: float | None = None, maximum: float | None = None,
         metavar: str | None = None, help: str, remark: str = "", choices: tuple[str, ...] = (), parse: Any = None) -> Any:
    """A ``Knobs`` field (default None: the pipeline's own) that carries its declaration (``Knob``)."""
    declaration = Knob(flag=flag, type=type, minimum=minimum, maximum=maximum, metavar=metavar, help=help, remark=remark,
                       choices=choices, parse=parse)
    return dataclasses.field(default=None, metadata={KNOB: declaration})


def block_list(text: Any) -> list[int]:
    """--stg-blocks "28" or "28,29" -> [28, 29] (a list from a recorded history passes as it is);
    UsageError for anything else."""
    if isinstance(text, (list, tuple)):
        return [int(block) for block in text]
    try:
        blocks = [int(part) for part in str(text).split(",")]
    except ValueError:
        blocks = []
    if not blocks or any(block < 0 for block in blocks):
        raise UsageError(f"--stg-blocks {text}: expected transformer block numbers from 0, separated by commas (e.g. 28 or 28,29)")
    return blocks


@dataclass(frozen=True)
class Knobs:
    """Sampling knobs of every family, named for people. None means the pipeline's own default.

    Each field is one knob's whole declaration (``knob``). Each family takes some of them
    (``Family.knob_arguments`` maps them to its pipeline's arguments) and refuses the others.
    """

    frames: int | None = knob("--frames", int, minimum=1, help="Frames to generate.")
    steps: int | None = knob("--steps", int, minimum=1, help="Denoising steps.")
    fps: int | None = knob("--fps", int, minimum=1, help="Frame rate the model is conditioned on, and the clip's.")
    motion: int | None = knob("--motion", int, minimum=1, maximum=255,
                              help="Motion bucket id: higher means more motion.")
    noise_aug: float | None = knob("--noise-aug", float, minimum=0,
                                   help="Noise added to the conditioning image; more frees the motion.")
    min_guidance: float | None = knob("--min-guidance", float, minimum=0,
                                      help="Guidance at the first frame; it rises linearly over frames.")
    max_guidance: float | None = knob("--max-guidance", float, minimum=0, help="Guidance at the last frame.")
    prompt: str | None = knob("--prompt", str, metavar="TEXT",
                              help="What the video shows; repeated, a prompt per segment (extend, a long SkyReels DF "
                                   "generate).",
                              remark="extend and edit: the clip's own")
    negative_prompt: str | None = knob("--negative-prompt", str, metavar="TEXT", help="What to avoid.",
                                       remark="extend and edit: the clip's own")
    guidance: float | None = knob("--guidance", float, minimum=0, help="Classifier-free guidance scale.")
    guidance_2: float | None = knob("--guidance-2", float, minimum=0,
                                    help="Guidance of the low-noise expert, in two-expert models.")
    audio_guidance: float | None = knob("--audio-guidance", float, minimum=0,
                                        help="Classifier-free guidance scale of the sound.")
    stg: float | None = knob("--stg", float, minimum=0,
                             help="Spatio-temporal guidance scale (0: off; else one more transformer pass per step).")
    stg_blocks: str | None = knob("--stg-blocks", str, metavar="N[,N...]", parse=block_list,
                                  help="The transformer blocks spatio-temporal guidance perturbs (0-based).")
    modality_guidance: float | None = knob("--modality-guidance", float, minimum=0,
                                           help="Modality-isolation guidance scale: away from a pass with sound and picture "
                                                "blind to each other (1: off).")
    decode_timestep: float | None = knob("--decode-timestep", float, minimum=0, maximum=1, metavar="T",
                                         help="The timestep its VAE decoder is conditioned on.",
                                         remark="decode: the clip's own")
    decode_noise_scale: float | None = knob("--decode-noise-scale", float, minimum=0, maximum=1, metavar="S",
                                            help="Share of noise mixed into the latents before decoding.",
                                            remark="decode: the clip's own")
    sampler: str | None = knob("--sampler", str, metavar="|".join(SAMPLERS), choices=tuple(SAMPLERS),
                               help="The sampler: UniPC, DPM++ multistep or flow-matching Euler.")
    shift: float | None = knob("--shift", float, minimum=0.1, metavar="S",
                               help="Flow shift of the noise schedule: higher spends more steps at high noise.")
    timesteps: tuple[float, ...] | None = knob(None, tuple, help="a model's own default schedule")
    # Diffusion forcing (SkyReels-V2 DF): a video longer than the window, made in overlapping windows.
    window: int | None = knob("--window", int, minimum=1, metavar="FRAMES",
                              help="Frames denoised at once (base_num_frames); a longer --frames is made in windows, "
                                   "each continuing the one before.")
    history: int | None = knob("--history", int, minimum=1, metavar="FRAMES",
                               help="Frames of the previous window (extend: of the clip) that each window continues "
                                    "from, kept clean (overlap_history).")
    history_noise: float | None = knob("--history-noise", float, minimum=0, maximum=1000, metavar="N",
                                       help="Noise put back on the history frames, at timestep N (addnoise_condition): "
                                            "smooths the joins.")
    ar_step: int | None = knob("--ar-step", int, minimum=0, metavar="N",
                               help="Asynchronous schedule: each causal block runs N steps behind the one before "
                                    "(0: all frames at once).")
    causal_block: int | None = knob("--causal-block", int, minimum=1, metavar="N",
                                    help="Latent frames denoised as one causal block (causal_block_size); it must "
                                         "divide each window's latent frames.")

    def validate(self) -> None:
        """Raise UsageError for values no model can use (cheap, before loading)."""
        for name in KNOBS:
            check_knob(name, getattr(self, name))

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    def check_for(self, spec: ModelSpec, *, what: str = "", continuing: bool = False) -> None:
        """Raise UsageError for knobs the model does not take, and frame counts it cannot make
        (before it loads). ``what`` names the model in messages; ``continuing``: the knobs of
        extend's segments (``Family.check_knobs``)."""
        self.validate()
        model = what or spec.title
        for name in self.given():
            if name not in spec.knobs:
                takes = ", ".join(FLAGS[other] for other in FLAGS if other in spec.knobs)
                raise UsageError(f"{FLAGS[name]}: {model} does not take it; it takes {takes}")
        if self.frames is not None:
            check_frames(self.frames, spec)
        if self.stg_blocks is not None and spec.blocks is not None:
            lacking = [block for block in block_list(self.stg_blocks) if block >= spec.blocks]
            if lacking:
                raise UsageError(f"--stg-blocks {self.stg_blocks}: {model} has {spec.blocks} transformer block(s), 0 to "
                                 f"{spec.blocks - 1}; block {lacking[0]} would perturb nothing")
        from vidlatent.families import family

        family(spec.family).check_knobs(self, spec, continuing=continuing)

    def pipeline_kwargs(self, family: Family) -> dict[str, Any]:
        """The knobs that were given, plus the family's own defaults, under its pipeline's names."""
        given = self.given()
        values = {**family.knob_defaults_for(given), **given}
        return {family.knob_arguments[name]: _pipeline_value(name, value) for name, value in values.items()
                if name in family.knob_arguments}

    def resolved(self, pipeline: Any, family: Family | None = None, *, pipeline_class: str | None = None) -> Knobs:
        """These knobs with the pipeline's defaults filled in (for the history); knobs the
        family does not take stay None. ``pipeline_class``: the diffusers class the call runs,
        where it is not the loaded pipeline's (``Family.continuation_pipeline``)."""
        from vidlatent import families

        family = family or families.for_pipeline(pipeline)
        if pipeline_class is not None:
            import diffusers

            defaults = inspect.signature(getattr(diffusers, pipeline_class).__call__).parameters
        else:
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
        if family.scheduler_knobs:  # the pipeline's own scheduler where not given
            from vidlatent.samplers import settings

            own = settings(pipeline.scheduler)
            values |= {name: getattr(self, name) if getattr(self, name) is not None else own[name]
                       for name in family.scheduler_knobs}
        return Knobs(**{**values, **family.resolve_knobs(pipeline, values)})

    def record(self) -> dict[str, Any]:
        """The knobs that have values, for a history entry."""
        return self.given()


def _pipeline_value(name: str, value: Any) -> Any:
    parse = KNOBS[name].parse
    return parse(value) if parse is not None and value is not None else value


def check_frames(frames: int, spec: ModelSpec, *, flag: str = "--frames") -> None:
    """Refuse a pixel frame count the model's VAE cannot make, naming the nearest that it can;
    ``flag`` is the option that asked for it."""
    rule = spec.frame_rule
    if spec.max_frames is not None and frames > spec.max_frames:
        raise UsageError(f"{flag} {frames}: {spec.title} takes at most {spec.max_frames} frames (the positions its "
                         "transformer encodes); make a longer video with vidlatent extend")
    if not rule.accepts(frames):
        below, above = rule.neighbours(frames)
        options = f"{below} or {above}" if below != above else str(below)
        raise UsageError(f"{flag} {frames}: {spec.title} makes {rule.describe()} frames; use {options}")


# Knobs field -> its declaration; and the flag that sets it (for messages).
KNOBS: dict[str, Knob] = {field.name: field.metadata[KNOB] for field in dataclasses.fields(Knobs)}
FLAGS: dict[str, str] = {name: declaration.label(name) for name, declaration in KNOBS.items()}


def check_knob(name: str, value: Any) -> None:
    """Raise UsageError naming the flag, the value and the rule when ``value`` breaks it."""
    declaration = KNOBS[name]
    if value is not None and declaration.choices and value not in declaration.choices:
        raise UsageError(f"{FLAGS[name]} {value}: expected one of {', '.join(declaration.choices)}")
    if value is not None and declaration.parse is not None:
        declaration.parse(value)
    if value is None or declaration.type not in (int, float):
        return
    if declaration.type is float:
        check_finite(FLAGS[name], value)
    if not declaration.accepts(value):
        raise UsageError(f"{FLAGS[name]} {value}: must be {declaration.rule()}")


def check_finite(flag: str, value: float) -> None:
    """Refuse nan and infinities: no option takes them."""
    if not math.isfinite(value):
        raise UsageError(f"{flag} {value}: must be a finite number")


def describe_range(minimum: float | None, maximum: float | None) -> str:
    """An inclusive range in words, for messages: "between 1 and 255", "at least 1", "0 or more"."""
    if minimum is not None and maximum is not None:
        return f"between {minimum} and {maximum}"
    if minimum is not None:
        return "0 or more" if minimum == 0 else f"at least {minimum}"
    return f"at most {maximum}" if maximum is not None else ""


def knob_help(name: str) -> str:
    """A knob's --help text: the families that take it (unless all do), what it does, its range
    where it has both ends, and its default in each family, e.g. "SVD, LTX: frame rate ... [SVD 7;
    LTX 25]."."""
    from vidlatent.families import all_families

    declaration = KNOBS[name]
    every = all_families()
    takers = [family for family in every if family.takes(name)]
    text = declaration.help.rstrip(".")
    if len(takers) < len(every):
        text = f"{', '.join(dict.fromkeys(family.short_title for family in takers))}: {text[:1].lower()}{text[1:]}"  # Wan VACE is "Wan"
    if declaration.minimum is not None and declaration.maximum is not None:
        text += f" ({declaration.minimum}-{declaration.maximum})"
    return f"{text} [{defaults_in_words(name)}]."


def defaults_in_words(name: str) -> str:
    """What a knob is when not given, in each family that takes it, from the families'
    declarations: "SVD 25; Wan 50; LTX 50, distilled models 8, their documented schedule", or
    one value where they agree; then the knob's own remark."""
    from vidlatent.families import all_families

    declaration = KNOBS[name]
    said = {family.short_title: _default_in_words(family, name, declaration.type)
            for family in all_families() if family.takes(name)}
    if len(set(said.values())) == 1:
        parts = [text for text, _ in set(said.values())]
    else:  # "Wan 81, which makes 4k+1", and "SVD: the model's own" where a note stands for the value
        parts = [f"{title}{' ' if valued else ': '}{text}" for title, (text, valued) in said.items()]
    return "; ".join([*parts, *([declaration.remark] if declaration.remark else [])])


def _default_in_words(family: Family, name: str, kind: type) -> tuple[str, bool]:
    """One family's default of a knob, vidlatent's own else its pipeline's, with the family's
    note; and whether the words start with a value (else the note stands for it)."""
    value = family.knob_defaults.get(name, family.pipeline_defaults.get(name))
    note = family.default_notes.get(name, "")
    if value is None:
        return (note, False) if note else ("none", True)
    shown = json.dumps(value) if kind is str else str(kind(value))
    return (f"{shown}, {note}" if note else shown), True


def check_size(size: tuple[int, int], spec: ModelSpec, *, flag: str = "--size", sampled: bool = True) -> None:
    """Refuse a pixel size that is not a multiple of the model's size multiple, naming the nearest,
    or (``sampled``: the model samples at it, not only its VAE) larger than the model can take.
    ``flag`` says where the size came from."""
    width, height = size
    if sampled:
        check_sampled_size(size, spec, flag=flag)
    multiple = spec.size_multiple
    if width % multiple or height % multiple or width < multiple or height < multiple:
        near = f"{max(multiple, round(width / multiple) * multiple)}x{max(multiple, round(height / multiple) * multiple)}"
        raise UsageError(f"{flag} {width}x{height}: {spec.title} needs sides that are multiples of {multiple}; use {near}")


def check_sampled_size(size: tuple[int, int], spec: ModelSpec, *, flag: str = "--size") -> None:
    """Refuse a size beyond the model's bound (``ModelSpec.max_side``), where it declares one."""
    width, height = size
    if spec.max_side is not None and max(width, height) > spec.max_side:
        raise UsageError(f"{flag} {width}x{height}: {spec.title} takes at most {spec.max_side} px a side "
                         "(the positions its transformer encodes)")


def default_size(spec: ModelSpec, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """The size a generation gets without --size: the aspect ratio of the image (of
    ``image_size``, width and height) at the model's native area (rounded to its size multiple),
    or its native size for text only (None)."""
    if image_size is None:
        return spec.native_size
    from vidlatent import media

    return media.fit_size(*image_size, spec.native_area, spec.size_multiple)
