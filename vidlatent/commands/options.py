"""The options commands share, as click decorators: --json/--quiet/--debug, the model and its
acceleration, the sampling knobs (read from ``vidlatent.knobs.Knobs``' fields), --seed and the
memory switches; ``sampler_options`` is all of them at once, for a command that samples.

Every float option is ``FiniteFloat`` (or ``FiniteFloatRange``): nan and infinities are refused
as they are parsed, before torch is imported. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import click

from vidlatent import families
from vidlatent.acceleration import QUANTIZE_CHOICES
from vidlatent.attention import BACKENDS, DEFAULT_BACKEND
from vidlatent.commands.loading import LowMemory
from vidlatent.commands.reporting import State, pass_state
from vidlatent.errors import UsageError
from vidlatent.knobs import KNOBS, Knobs, check_finite, check_knob, knob_help
from vidlatent.step_caches import METHODS
from vidlatent.models import ALIASES, DEFAULT_MODEL, DEVICES, DTYPES, OFFLOADS, TINY_MODELS, LoadOptions

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

PROMPT_KNOBS = ("prompt", "negative_prompt", "guidance")  # the knobs of prompt_options
DECODE_KNOBS = ("decode_timestep", "decode_noise_scale")  # the knobs of decode_options


# --- what each family does, in --help's words, from the families' declarations -----------------

def size_multiples_in_words() -> str:
    """--size's rule per family: "SVD 64; Wan 16 or 32; LTX 32"."""
    return families.per_family(lambda _, specs: families.each_of(sorted(spec.size_multiple for spec in specs)))


def frame_rules_in_words() -> str:
    """The pixel frame counts each family makes: "SVD any; Wan 4k+1; LTX 8k+1"."""
    return families.per_family(lambda _, specs: families.each_of(
        "any" if spec.frame_rule.temporal == 1 else spec.frame_rule.describe() for spec in specs))


def overlaps_in_words() -> str:
    """extend's default --overlap per family, and the clip's pixel frames it stands for: "SVD 2 (the
    clip's last 2 frames); Wan 1 (...1 frame); LTX 2 (...9 frames)"."""
    def overlap(family: Any, specs: Sequence[Any]) -> str:
        pixels = specs[0].frame_rule.pixel_frames(family.default_overlap) if specs else family.default_overlap
        return f"{family.default_overlap} (the clip's last {pixels} frames)" if pixels != 1 else "1 (the clip's last frame)"

    return families.per_family(overlap)


def first_last_frame_models_in_words() -> str:
    """The models that take a last frame: "Wan 2.1 first-last-frame-to-video (wan21-flf2v), LTX-Video
    (ltx-0.9.7-dev, ...)"."""
    described = []
    for each in families.all_families():
        able = [alias for alias, hub in each.aliases.items() if (spec := each.known_spec(hub)) is not None and spec.last_image]
        if able:
            title = next(spec.title for spec in families.declared_specs(each) if spec.last_image) if len(able) == 1 else each.title
            described.append(f"{title} ({able[0]}{', ...' if len(able) > 1 else ''})")
    return ", ".join(described)


def compose(*decorators: Decorator) -> Decorator:
    """The decorators as one, applied as they would be stacked in this order (the first on top)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return decorate


class FiniteFloat(click.types.FloatParamType):
    """click's FLOAT without nan and infinities (``float()`` reads "nan" and "inf"): they are
    refused with a one-line usage error naming the option, as the knobs' checks are."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        # Finite first, so that "inf" is not a range error in FiniteFloatRange.
        number = click.types.FloatParamType.convert(self, value, param, ctx)
        check_finite(_flag(param), number)
        return super().convert(number, param, ctx)


class FiniteFloatRange(FiniteFloat, click.FloatRange):
    """click's FloatRange (its range, messages and help), finite."""

    name = "float range"


def _flag(param: click.Parameter | None) -> str:
    """The option's long name (for messages): --output rather than -o."""
    names = param.opts if param is not None else []
    return max(names, key=len) if names else "value"


def _set_state(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value:
            setattr(ctx.ensure_object(State), field, value)

    return callback


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--json, --quiet and --debug, accepted after any subcommand."""
    return compose(
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_state("quiet"),
                     help="No progress bars or notes on stderr."),
        click.option("--debug", is_flag=True, expose_value=False, callback=_set_state("debug"), help="Show tracebacks of errors."),
        click.option("--json", is_flag=True, expose_value=False, callback=_set_state("json"),
                     help="Print one JSON object describing the result (docs/json.md): on stdout, or on stderr when stdout "
                          "carries latents."),
    )(function)


def model_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--model/--device/--dtype/--offload, handed to the command as one ``load: LoadOptions``."""

    @functools.wraps(function)
    def wrapper(*args: Any, model: str | None, device: str, dtype: str, offload: str, **kwargs: Any) -> Any:
        load = LoadOptions(model=model or DEFAULT_MODEL, device=device, dtype=dtype, offload=offload)
        load.validate()
        return function(*args, load=load, model_given=model is not None, **kwargs)

    return compose(
        click.option(
            "--model",
            envvar="VIDLATENT_MODEL",
            show_envvar=True,
            metavar="ID|PATH",
            help=f"Hub id, alias ({', '.join(ALIASES)}), diffusers folder, or a tiny random model "
                 f"({', '.join(TINY_MODELS)}: offline, noise by design). Default: {DEFAULT_MODEL}.",
        ),
        click.option("--device", envvar="VIDLATENT_DEVICE", show_envvar=True, default="auto", show_default=True,
                     metavar="|".join(DEVICES) + "|cuda:N", help="Where to run: auto picks CUDA, then MPS, then CPU."),
        click.option("--dtype", envvar="VIDLATENT_DTYPE", show_envvar=True, default="auto", show_default=True,
                     type=click.Choice(DTYPES),
                     help="Weights' precision: auto is fp32 on a CPU and on a GPU the family's: "
                          f"{families.per_family(lambda family, _: family.preferred_gpu_dtype)} "
                          "(bf16 where the GPU has it, else fp16)."),
        click.option("--offload", envvar="VIDLATENT_OFFLOAD", show_envvar=True, default="auto", show_default=True,
                     type=click.Choice(OFFLOADS),
                     help="Keep weights on the CPU and bring them to the GPU as needed (diffusers): model (one component at a "
                          "time), group (the denoiser's blocks in turn, overlapped on CUDA streams), sequential (layer by "
                          "layer, slowest). auto: none if the weights fit in free GPU memory, model if the largest "
                          "component does, else group; a note says which."),
    )(wrapper)


def _vae_tiling_option() -> Decorator:
    return click.option("--vae-tiling/--no-vae-tiling", default=None,
                        help="Decode in overlapping spatial tiles (Wan; its decode streams frame by frame already). "
                             "Default: on where the estimated decode memory exceeds the free memory, with a note.")


def _with_acceleration(load: LoadOptions, **changes: Any) -> LoadOptions:
    load = dataclasses.replace(load, acceleration=dataclasses.replace(load.acceleration, **changes))
    load.validate()
    return load


def acceleration_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--cache, --compile, --quantize, --vae-tiling and --lora, folded into the command's
    ``load: LoadOptions`` (its ``acceleration``), and --transformer / --transformer-2 (its
    ``components``); goes below ``model_options``. A model family that cannot take one refuses it
    before it loads (``load_sampler``)."""

    @functools.wraps(function)
    def wrapper(*args: Any, load: LoadOptions, cache: str | None, attention: str | None, compile_denoiser: bool,
                quantize: str | None, vae_tiling: bool | None, lora: tuple[str, ...], lora_partial: bool,
                transformer: str | None, transformer_2: str | None, **kwargs: Any) -> Any:
        from vidlatent import attention as attention_backends
        from vidlatent.lora_files import parse_lora
        from vidlatent.component_files import component_file
        from vidlatent.step_caches import parse_cache

        if attention is not None:  # its package and this machine's device, before the model is described
            attention_backends.check(attention, load.device, load.dtype)
        load = _with_acceleration(load, cache=parse_cache(cache) if cache else None, attention=attention,
                                  compile=compile_denoiser, quantize=quantize, vae_tiling=vae_tiling,
                                  loras=tuple(parse_lora(each) for each in lora), lora_partial=lora_partial)
        files = {"transformer": transformer, "transformer_2": transformer_2}
        components = tuple(component_file(name, path) for name, path in files.items() if path is not None)
        return function(*args, load=dataclasses.replace(load, components=components), **kwargs)

    return compose(
        click.option("--transformer", metavar="FILE",
                     help="Load the transformer from this single .safetensors file (original Wan/LTX layout, ComfyUI's "
                          "including its fp8-scaled files, or diffusers') or .gguf quantisation (computed in --dtype; pip "
                          "install \"vidlatent[gguf]\"); --model supplies its config and the other components. A file "
                          "that does not fit the model is refused."),
        click.option("--transformer-2", metavar="FILE",
                     help="Wan 2.2 two-expert models: the low-noise expert (transformer_2) from one file, as --transformer."),
        click.option("--cache", metavar="METHOD[:SETTING=VALUE,...]",
                     help="Skip or predict denoiser work on steps that change little (transformer models: Wan, LTX); "
                          "settings take diffusers' names, METHOD:NUMBER sets the threshold. "
                          + "; ".join(f"{name}: {method.what} ({', '.join(_setting_help(method))})"
                                      for name, method in METHODS.items())
                          + ". mag needs the model's magnitude ratios: published ones for Wan 2.1 I2V 480p/720p, else "
                            "ratios=FILE from vidlatent calibrate-cache. The history records what was skipped."),
        click.option("--attention", type=click.Choice(tuple(BACKENDS)), metavar="BACKEND",
                     help=f"The denoiser's attention kernel, through diffusers' attention dispatch (Wan, LTX): "
                          f"{', '.join(BACKENDS)}. Default: {DEFAULT_BACKEND} (torch's scaled_dot_product_attention). "
                          "One this machine cannot run (its package or GPU) is refused before loading; vidlatent env "
                          "lists those that can."),
        click.option("--compile", "compile_denoiser", is_flag=True,
                     help="torch.compile the denoiser (Wan: its repeated blocks; SVD: the whole UNet). The first run "
                          "pays for the compilation."),
        click.option("--quantize", type=click.Choice(QUANTIZE_CHOICES),
                     help="Store the denoiser's weights in fp8 and compute in --dtype, layer by layer (half the memory "
                          "of bf16; norms and embeddings stay in --dtype)."),
        _vae_tiling_option(),
        click.option("--lora", multiple=True, metavar="PATH[:SCALE[:EXPERT]]",
                     help="A LoRA (.safetensors) at SCALE [1.0]; repeat to combine. Layouts: diffusers', PEFT's, the "
                          "original (diffusion_model.: lightx2v, Lightning, CausVid, ComfyUI's) and, on Wan, Kohya's/"
                          "musubi's (lora_unet_), read through diffusers' converters. Wan 2.2 two-expert models: into "
                          "both experts, or EXPERT high or low. One none of which fits the model is refused, and one "
                          "of which only part fits."),
        click.option("--lora-partial", is_flag=True,
                     help="Load the part of a --lora file that fits the model (the history counts what was left "
                          "out), instead of refusing it."),
    )(wrapper)


def _setting_help(method: Any) -> list[str]:
    """``name [default]`` of each setting of a --cache method, for --help."""
    return [f"{name} [{method.defaults[name]}]" if method.defaults.get(name) is not None else name
            for name in method.settings]


def vae_tiling_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--vae-tiling/--no-vae-tiling alone (decode), folded into ``load``; goes below ``model_options``."""

    @functools.wraps(function)
    def wrapper(*args: Any, load: LoadOptions, vae_tiling: bool | None, **kwargs: Any) -> Any:
        return function(*args, load=_with_acceleration(load, vae_tiling=vae_tiling), **kwargs)

    return _vae_tiling_option()(wrapper)


def vram_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--vram SIZE, handed over as ``vram`` (checked as it is parsed, before torch)."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            from vidlatent.planning import parse_memory

            parse_memory(value)
        return value

    return click.option("--vram", metavar="SIZE|auto", callback=check,
                        help="Fit the run into SIZE of memory (12G, 800M; auto: the device's free memory; on a CPU the "
                             "host's): the cheapest combination of --offload, --quantize fp8, --vae-tiling and "
                             "--decode-chunk among those not given that fits, by the plan's estimate, with a note saying "
                             "why; a run that cannot fit is refused before loading (exit 2), saying what is short.")(function)


def plan_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--plan and --vram, handed over as ``show_plan`` and ``vram``."""
    return compose(
        click.option("--plan", "show_plan", is_flag=True,
                     help="Print the run's plan (vidlatent plan: weights, activations and the peak memory of each stage, "
                          "estimated from the architecture) and load nothing."),
        vram_option,
    )(function)


def output_option(help_text: str) -> Decorator:
    return click.option("-o", "--output", metavar="PATH", help=help_text)


def seed_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--seed", type=click.IntRange(0, 2**63 - 1),
        help='Seed of torch.Generator("cpu"): the same on every device. Default: a random seed, printed and recorded.',
    )(function)


# --- the sampling knobs, from vidlatent.knobs.Knobs ------------------------------------------------

def _knob_option(name: str) -> Decorator:
    """The option of the knob ``name``, as its ``Knobs`` field declares it: its range is checked
    as it is parsed, so a bad value is refused before any model (or torch) loads, with the same
    one-line message as the library's."""
    declaration = KNOBS[name]

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for each in value if isinstance(value, tuple) else (value,):
            check_knob(name, each)
        return value

    # --prompt may be repeated: one per segment where a command makes segments (extend, a long
    # SkyReels DF generate); the others refuse more than one (_knob_options).
    repeated = name == "prompt"
    return click.option(declaration.flag, name, cls=KnobOption,
                        type=FiniteFloat() if declaration.type is float else declaration.type,
                        metavar=declaration.metavar, callback=check, multiple=repeated, help=knob_help(name))


class KnobOption(click.Option):
    """The option of a knob (a command's own option of the same name, interpolate's --steps, is not)."""


def _knob_options(names: Sequence[str], into: str | None, *, segments: bool = False) -> Decorator:
    """The options of the knobs ``names``; with ``into``, handed to the command as one ``Knobs``
    argument of that name, else each as its own argument.

    With ``segments``, also --prompts FILE, and the command gets ``segments``: a prompt per segment
    (``vidlatent.prompts.segment_prompts``; [] for one prompt), the first of them in the knobs.
    Without it, --prompt given more than once is refused.
    """
    options = compose(*(_knob_option(name) for name in names))
    if segments:
        options = compose(options, click.option(
            "--prompts", "prompts_file", metavar="FILE",
            help="A prompt per segment, one per line (- for stdin); a line may start with FRAMES: (extend: that "
                 "segment's frames). Blank lines and lines starting with # are left out."))
    if into is None:
        return options

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            given = tuple(values.get("prompt") or ())
            if segments:
                from vidlatent.prompts import segment_prompts

                kwargs["segments"] = segment_prompts(given, kwargs.pop("prompts_file"))
                given = tuple(each.prompt for each in kwargs["segments"]) or given
            elif len(given) > 1:
                raise UsageError(f"--prompt given {len(given)} times: a prompt per segment is for extend and a long "
                                 "SkyReels DF generate; give one --prompt")
            if "prompt" in values:
                values["prompt"] = given[0] if given else None
            return function(*args, **{into: Knobs(**values)}, **kwargs)

        return options(wrapper)

    return decorate


def sampling_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Every knob that has a flag, handed to the command as one ``knobs: Knobs``. A model refuses
    the knobs it does not take; left out, each takes the pipeline's own default (in brackets)."""
    return _knob_options([name for name, declaration in KNOBS.items() if declaration.flag], "knobs")(function)


def segment_sampling_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``sampling_options`` with a prompt per segment: --prompt repeated, or --prompts FILE; the
    command also gets ``segments`` (``vidlatent.prompts.SegmentPrompt``s; [] for one prompt)."""
    return _knob_options([name for name, declaration in KNOBS.items() if declaration.flag], "knobs",
                         segments=True)(function)


def prompt_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--prompt, --negative-prompt and --guidance alone, for commands that take no other knob
    (upscale); handed over as ``prompts`` (a Knobs with only those)."""
    return _knob_options(PROMPT_KNOBS, "prompts")(function)


def refine_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--steps (denoising steps, as everywhere) and the prompt knobs, for a command that samples
    only to refine (interpolate); handed over as ``prompts`` (a Knobs with only those)."""
    return _knob_options(["steps", *PROMPT_KNOBS], "prompts")(function)


def decode_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--decode-timestep and --decode-noise-scale (LTX's timestep-conditioned decoder), for decode:
    handed over as ``decode_timestep`` and ``decode_noise_scale``."""
    return _knob_options(DECODE_KNOBS, None)(function)


def low_memory_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--low-vram and its parts, handed to the command as one ``memory: LowMemory``.

    They change memory use and speed, never the result.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, low_vram: bool, forward_chunking: bool, decode_chunk: int | None, **kwargs: Any) -> Any:
        memory = LowMemory(
            offload_model=low_vram,
            forward_chunking=forward_chunking,
            decode_chunk=decode_chunk or (2 if low_vram else None),
            low_vram=low_vram,
        )
        return function(*args, memory=memory, **kwargs)

    return compose(
        click.option("--low-vram", is_flag=True,
                     help="All of: --offload model, --forward-chunking (where the model has it), --decode-chunk 2 "
                          "(SVD-XT in under 8 GB)."),
        click.option("--forward-chunking", is_flag=True, help="SVD: run the UNet's feed-forward layers in chunks: less memory, slower."),
        click.option("--decode-chunk", type=click.IntRange(min=1),
                     help="Latent frames per VAE decode call "
                          f"[{families.per_family(lambda family, _: family.default_decode_chunk_words)}]."),
    )(wrapper)


def recipe_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--recipe FILE.toml: its values become the command's defaults (``vidlatent.recipes``), read
    before the other options, so that flags given win."""

    def load(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
        if value is not None:
            from vidlatent.recipes import read_recipe

            # A recipe's knobs go to knob options only (not to a command's own option of a knob's name:
            # decode's --fps is the video's frame rate).
            recipe = read_recipe(value, {param.name for param in ctx.command.params
                                         if param.name and (param.name not in KNOBS or isinstance(param, KnobOption))})
            repeated = {param.name for param in ctx.command.params if getattr(param, "multiple", False)}
            recipe = {name: [value] if name in repeated and isinstance(value, str) else value for name, value in recipe.items()}
            ctx.default_map = {**(ctx.default_map or {}), **recipe}

    return click.option("--recipe", metavar="FILE.toml", is_eager=True, expose_value=False, callback=load,
                        help="Model, component files, LoRAs and knobs from a TOML file (examples/recipes/); flags given "
                             "win.")(function)


def sampler_options(knobs: Decorator = sampling_options) -> Decorator:
    """All that a command which samples with a model takes besides its own options, in one:
    ``knobs`` (``sampling_options``, or fewer: ``prompt_options``, ``refine_options``),
    --seed, the memory switches, the model and its acceleration, --json/--quiet/--debug, and the
    shared ``state``. The command receives ``state``, ``knobs`` (or ``prompts``), ``seed``,
    ``memory``, ``load`` and ``model_given``; --recipe fills in the defaults of any of them."""
    return compose(knobs, seed_option, low_memory_options, model_options, acceleration_options, recipe_option,
                   common_options, pass_state)
