"""The model-family interface: what plugs one kind of video model into every command.

A family is one small object (``Family``) per kind of model: Stable Video Diffusion, Wan, ...
It owns what differs between them and nothing else, mostly as declarations:

- which diffusers pipeline classes and components it loads, its hub ids, aliases and tiny
  random models (``tiny``: name -> version, built by ``build_tiny``);
- what a model folder can do (``ModelSpec``: native size and frame rate, the size multiple
  and frame-count rule, whether it takes an image, a prompt, a last frame), read from the
  folder's configs before any weights load;
- the latent layout (``LatentLayout``: spatial compression, frame rule, normalisation), and one
  streamed encoder (``encode_frames``) and one streamed decoder (``decode``) of frames;
- one pipeline call (``pipeline_arguments``; how the pipeline holds latents, as data), the noise it starts from, its
  own noise schedule, and how to start part-way down it (``regenerate_tail``);
- what a continuation of a clip is conditioned on (``continuation``: by default its last frames,
  re-encoded and pinned; LTX conditions natively on the clip's last frames);
- what it can do beyond sampling, as data: ``inversion`` (its sampler run backwards, for
  ``transfer-motion --method inversion``), ``upsampler`` (a latent upsampler, for
  ``--upscale``), ``regions`` (VACE's masked video), ``frame_conditions`` (``--keyframe``) and
  ``sound`` (LTX-2) are objects, or None where the family cannot; which of diffusers' speed and
  memory tools its models take (``supports_cache``, ``compile_target``, ``lora_layouts``,
  ``attention_dispatch``, ``vae_tiling``, ``forward_chunking``: see ``vidlatent.acceleration``).

Everything else (commands, the latent math, extend's segment loop, the SDEdit strength rule,
pinned frames, drift correction) is written once, against this interface, in
``vidlatent.generation`` and friends. Family modules import torch and diffusers only inside
their methods, so listing them stays cheap. A family imports another only to build on it (Wan
VACE and SkyReels DF subclass Wan: its VAE, text encoder and schedule); what unrelated families
share is in ``vidlatent.families.common``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vidlatent.errors import UsageError
from vidlatent.layout import FrameRule, LatentLayout
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image


IMAGE_REQUIRED = "required"
IMAGE_OPTIONAL = "optional"
IMAGE_NONE = "none"



@dataclass(frozen=True)
class ModelSpec:
    """What one model can do, read from its folder's configs (no weights).

    Args:
        family: the family's name.
        title: for messages, e.g. "Wan 2.1 image-to-video".
        native_size: (width, height) it was trained at; the default size keeps an image's
            aspect ratio at this area.
        size_multiple: width and height must be multiples of this.
        frame_rule: latent to pixel frames; --frames must be a count it accepts.
        fps: the frame rate its clips play at (SVD: its conditioning default).
        image: whether it takes a conditioning image: required, optional or none.
        last_image: it can be conditioned on a last frame too (keyframes).
        knobs: the vidlatent.generation.Knobs fields it takes.
        frames: the pixel frames it makes without --frames (its pipeline's default).
        experts: 2 for Wan 2.2's two-expert models (a second guidance scale).
        last_image_optional: the last frame may be left out (LTX conditions on whatever frames it
            is given); a first-last-frame model (Wan FLF2V) needs it whenever it gets an image.
        max_side: the longest side in pixels it can take, where its transformer has a bound
            (Wan: the positions its rotary embedding encodes); None for none.
        max_frames: likewise the most pixel frames.
        blocks: the denoiser's transformer blocks, where a knob names blocks (LTX-2's --stg-blocks); None: unknown.
    """

    family: str
    title: str
    native_size: tuple[int, int]
    size_multiple: int
    frame_rule: FrameRule
    fps: float
    image: str
    last_image: bool
    knobs: frozenset[str]
    frames: int
    experts: int = 1
    last_image_optional: bool = False
    max_side: int | None = None
    max_frames: int | None = None
    blocks: int | None = None

    @property
    def native_area(self) -> int:
        return self.native_size[0] * self.native_size[1]

    @property
    def takes_prompt(self) -> bool:
        return "prompt" in self.knobs

    def check_extend(self) -> None:
        """Raise UsageError when this model cannot continue a clip from its last frame."""
        if self.image == IMAGE_NONE:
            raise UsageError(f"{self.title} takes no image, so it cannot continue a clip from its last frame")
        if self.last_image and not self.last_image_optional:
            raise UsageError(f"{self.title} needs a last frame too; to bridge two clips use interpolate A B --transition F --keyframes")


@dataclass(frozen=True)
class ComfyAssumption:
    """What a ComfyUI latent of some shape is read as (ComfyUI files do not name their model)."""

    layout: LatentLayout
    latent_space: str
    model: str
    fps: float
    description: str


@dataclass(frozen=True)
class DecodeSettings:
    """How a timestep-conditioned VAE decoder (LTX's) decodes: the decoder's timestep, the share of
    noise mixed into the latents first, and the seed of that noise.

    Args:
        timestep: the decoder's timestep (diffusers' ``decode_timestep``).
        noise_scale: latents = (1 - noise_scale) * latents + noise_scale * noise, before decoding
            (diffusers' ``decode_noise_scale``).
        seed: seeds ``torch.Generator("cpu")`` for that noise.
    """

    timestep: float
    noise_scale: float
    seed: int = 0

    def record(self) -> dict[str, Any]:
        return {"decode_timestep": self.timestep, "decode_noise_scale": self.noise_scale, "decode_seed": self.seed}


@dataclass(frozen=True)
class Continuation:
    """What the next segment of a clip is conditioned on (``Family.continuation``).

    Args:
        image: the image it starts from (its first pixel frame), or None where ``arguments``
            condition it.
        pinned: (k, C, h, w) latent frames its first k frames are pinned to through the step
            callback (re-noised after every step); k may be 0.
        arguments: more pipeline arguments (LTX: ``conditions=``).
        size: (width, height) where there is no ``image`` to take it from.
    """

    image: Image.Image | None
    pinned: torch.Tensor
    arguments: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Workload:
    """The shapes one denoiser call works on at a given latent size (``Family.denoiser_workload``),
    for ``vidlatent.planning``: its largest attention and the residual stream around it.

    Args:
        tokens: the longest attention sequence (latent frames x latent pixels / patch, or a
            UNet's tokens per frame at its first attention level).
        sequences: sequences of that length per batch item (1; a UNet's spatial attention: one per frame).
        width: channels of the residual stream there (heads x head dim).
        feedforward: the inner width of its feed-forward layer (both halves of a gated one).
        heads: attention heads there.
        context: the keys of its cross-attention (text and image tokens); 0 for none.
        layers: transformer blocks (attention layers) per call.
    """

    tokens: int
    sequences: int
    width: int
    feedforward: int
    heads: int
    context: int
    layers: int


def patch_workload(latent: tuple[int, int, int], *, patch: tuple[int, int, int], heads: int, head_dim: int, context: int,
                   layers: int, feedforward: int | None = None) -> Workload:
    """A video transformer's ``Workload``: one token per ``patch`` (frames, height, width) of the
    ``latent`` (frames, height, width), one sequence, heads x head_dim wide, a feed-forward
    ``feedforward`` wide (4x by default), ``context`` keys in its cross-attention."""
    frames, height, width = latent
    hidden = heads * head_dim
    return Workload(tokens=(frames // patch[0]) * (height // patch[1]) * (width // patch[2]), sequences=1, width=hidden,
                    feedforward=feedforward or 4 * hidden, heads=heads, context=context, layers=layers)


@dataclass(frozen=True)
class DecodeWork:
    """What one call of the VAE's decoder works on (``Family.decode_work``), for ``vidlatent.planning``.

    Args:
        frames: pixel frames the call makes (or works on, with the context a non-causal decoder reads).
        pixels: pixels per frame in the call, at the resolution of ``channels`` (a tile's with tiling).
        channels: channels of the decoder's widest tensors at that resolution.
        live: how many such tensors are alive at the call's peak (calibrated, see BENCHMARKS.md).
    """

    frames: int
    pixels: int
    channels: int
    live: float


def decode_settings(family: Family, vae: Any, clip: Any = None, *, timestep: float | None = None,
                    noise_scale: float | None = None) -> DecodeSettings | None:
    """How ``family``'s ``vae`` decodes ``clip`` (a LatentClip, or None for defaults).

    For a timestep-conditioned decoder (``Family.timestep_decoder``, and the VAE's config says so;
    ``vae`` None: not loaded yet, taken as the family says): --decode-timestep / --decode-noise-scale
    where given, else the values the clip's history records (its generation's), else the family's
    defaults for those knobs (``knob_defaults``); the noise from the clip's seed. None for other
    decoders, which refuse the flags (a UsageError naming the one given).
    """
    if not family.timestep_decoder or (vae is not None and not getattr(vae.config, "timestep_conditioning", False)):
        if timestep is not None or noise_scale is not None:
            flag = "--decode-timestep" if timestep is not None else "--decode-noise-scale"
            raise UsageError(f"{flag}: {family.title}'s VAE decoder takes no timestep; leave {flag} out")
        return None
    recorded = clip.recorded("decode_timestep", "decode_noise_scale", commands=None, nested=True) if clip is not None else {}

    def first_given(name: str, given: float | None) -> float:
        return float(next(value for value in (given, recorded.get(name), family.knob_defaults[name]) if value is not None))

    return DecodeSettings(timestep=first_given("decode_timestep", timestep), noise_scale=first_given("decode_noise_scale", noise_scale),
                          seed=int(clip.seed) if clip is not None and clip.seed is not None else 0)


def onload(vae: Any) -> None:
    """Move an offloaded VAE to its execution device, as its own encode/decode would (accelerate's
    hook runs on those, not on the encoder and decoder called directly)."""
    hook = getattr(vae, "_hf_hook", None)
    if hook is not None:
        hook.pre_forward(vae)


def encode_held(frames: Iterable[np.ndarray], vae: Any, *, device: torch.device, title: str,
                progress: Progress = no_progress, note: Callable[[str], None] | None = None) -> torch.Tensor:
    """The raw encoding (the posterior's mode), (1, C, T, h, w), of the largest whole-latent prefix
    of ``frames`` (a causal VAE's 8k + 1 for LTX), in one call: for VAEs whose encoder is not
    streamed, so the frames are held together (``note`` says how many past it were left out)."""
    import torch

    from vidlatent.codec import pixels_to_tensor

    held = list(frames)
    if not held:
        raise ValueError("no frames to encode")
    rule = FrameRule(int(vae.temporal_compression_ratio), causal=True)
    count = rule.pixel_frames(rule.latent_frames(len(held)))
    with torch.inference_mode():
        onload(vae)
        pixels = pixels_to_tensor(held[:count]).permute(1, 0, 2, 3)[None].to(device=device, dtype=vae.dtype)  # (1, 3, N, H, W)
        raw = vae.encode(pixels).latent_dist.mode()  # (1, C, T, h, w)
    progress(count)
    if count < len(held) and note is not None:
        note(f"encoded {count} frames: {title}'s VAE takes {rule.describe()}, so the last {len(held) - count} frame(s) "
             "were left out")
    return raw


def read_config(folder: Path, name: str) -> dict[str, Any]:
    """A component's config.json (``name`` is its subfolder), or {} when absent or unreadable."""
    try:
        return json.loads((folder / name / "config.json").read_text())
    except (OSError, ValueError):
        return {}


class Family:
    """One family of video models. Subclasses set the class attributes and the methods marked
    "per family"; the rest has defaults that fit latents laid out (B, C, T, h, w) in the
    pipeline, as video VAEs lay them out.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    short_title: ClassVar[str]  # in --help's lists of defaults: "SVD 25; Wan 50"
    pipeline_classes: ClassVar[tuple[str, ...]]  # model_index.json _class_name values it runs
    vae_class: ClassVar[str]
    components: ClassVar[tuple[str, ...]]  # every component a pipeline of this family has
    default_model: ClassVar[str | None] = None  # the model vidlatent runs without --model (the registry's default family)
    aliases: ClassVar[dict[str, str]] = {}  # short name -> hub id
    tiny: ClassVar[dict[str, int]] = {}  # tiny random models (built by ``build_tiny``): name -> version (bump on change)
    knob_arguments: ClassVar[dict[str, str]] = {}  # Knobs field -> pipeline argument
    # Knobs fields that pick the scheduler rather than a pipeline argument (vidlatent.samplers:
    # --sampler, --shift), on flow-matching families; the pipeline's own scheduler by default.
    scheduler_knobs: ClassVar[tuple[str, ...]] = ()
    # Knobs field -> its pipeline argument's default when vidlatent passes nothing (the __call__
    # signature's; None: the pipeline decides), for --help; a test holds them to diffusers.
    pipeline_defaults: ClassVar[dict[str, Any]] = {}
    knob_defaults: ClassVar[dict[str, Any]] = {}  # where vidlatent's default differs from "not passed"
    default_notes: ClassVar[dict[str, str]] = {}  # Knobs field -> what --help says after its default
    comfyui: ClassVar[dict[tuple[int, int], ComfyAssumption]] = {}  # (ndim, channels) -> assumption
    preferred_gpu_dtype: ClassVar[str] = "fp16"  # --dtype auto on a GPU
    forward_chunking: ClassVar[str | None] = None  # the denoiser component with diffusers' enable_forward_chunking()
    # The diffusers class extend's segments run, made of the loaded pipeline's components, where it
    # is not the loaded one (SkyReels DF: its video-to-video pipeline); None: the loaded one.
    continuation_pipeline: ClassVar[str | None] = None
    default_overlap: ClassVar[int] = 1
    minimum_overlap: ClassVar[int] = 1
    maximum_overlap: ClassVar[int | None] = None  # where a segment can share only so many latent frames (LTX-2: 1)
    timestep_decoder: ClassVar[bool] = False  # its VAE's decoder takes --decode-timestep / --decode-noise-scale
    # What vidlatent.acceleration may apply (--cache, --compile, --lora, --vae-tiling):
    supports_cache: ClassVar[bool] = False  # the denoiser is a diffusers CacheMixin with transformer blocks
    compile_target: ClassVar[str] = "whole"  # "repeated-blocks": compile_repeated_blocks; "whole": torch.compile
    # The LoRA layouts its pipeline's diffusers loader reads (``lora_state_dict`` and its converters;
    # vidlatent.lora_files names them): "diffusers", "peft", "original" (diffusion_model. prefix;
    # ComfyUI's too), "kohya" (lora_unet_). Empty: the pipeline has no LoRA loader.
    lora_layouts: ClassVar[tuple[str, ...]] = ()
    # The denoiser's modules --cache taylorseer predicts between full steps (regular expressions on
    # their names: diffusers' cache_identifiers); diffusers' own default matches none of ours.
    taylorseer_modules: ClassVar[tuple[str, ...]] = ()
    # The denoiser's attention runs through diffusers' dispatch (set_attention_backend: --attention).
    attention_dispatch: ClassVar[bool] = False
    vae_tiling: ClassVar[bool] = False  # the VAE has a tiled decode (enable_tiling) that ``decode`` honours
    # The components --transformer FILE / --transformer-2 FILE may replace: those whose diffusers
    # class has a single-file loader (from_single_file) for the original and ComfyUI layouts.
    single_file_components: ClassVar[tuple[str, ...]] = ()
    # How its pipelines hold latents: "channels-first" (1, C, T, h, w), as video VAEs lay them out, or
    # "frames-first" (1, T, C, h, w); in float32 or (False) in the model's dtype; and whether step
    # callbacks see them packed as tokens (1, T * h * w, C) instead.
    pipeline_latents: ClassVar[str] = "channels-first"
    latents_in_float32: ClassVar[bool] = True
    callback_tokens: ClassVar[bool] = False
    # The VAE modules whose weights fingerprint its latent space (vidlatent.models.latent_space_of).
    fingerprint_modules: ClassVar[tuple[str, ...]] = ("encoder.conv_out", "decoder.conv_out")
    # ComfyUI's latent format for it keeps the normalised values (its VAE applies the statistics
    # itself), rather than raw VAE latents.
    comfyui_normalized: ClassVar[bool] = False
    # Why its clips cannot be written as ComfyUI .latent files (None: they can).
    comfyui_unwritable: ClassVar[str | None] = None
    # For vidlatent.planning: the knob whose value > 1 turns classifier-free guidance on (None:
    # never guided), whether the guided pipeline batches the two passes into one denoiser call
    # (else it makes two calls), and which component is the denoiser.
    guidance_knob: ClassVar[str | None] = None
    guidance_batched: ClassVar[bool] = True
    denoiser: ClassVar[str] = "transformer"
    # Optional capabilities: an object that does it, or None where the family cannot.
    inversion: Any = None  # its sampler run backwards (vidlatent.inversion): invert(...) and start(...)
    upsampler: Any = None  # a latent upsampler (vidlatent.upscaling): see families.ltx.LatentUpsampler
    regions: Any = None  # masked video conditioning (vidlatent.regions): see families.wan_vace.VaceConditioning
    # Images at any frame without a masked video (generate --keyframe; VACE keyframes go through
    # ``regions``): see families.ltx2.FrameConditions.
    frame_conditions: Any = None
    # Its sound stream, where its pipelines make sound with the video (LTX-2: families.ltx2.Sound):
    # components, audio layout, the pipeline's audio latents to and from a clip's, the decoder.
    sound: Any = None

    # --- configs (per family) ------------------------------------------------------------------

    def spec(self, folder: Path, model_index: dict[str, Any], model_id: str) -> ModelSpec:
        raise NotImplementedError

    def mag_ratios(self, model_id: str) -> tuple[float, ...] | None:
        """MagCache's magnitude ratios (one per step) published for the checkpoint ``model_id``
        (--cache mag without ratios=FILE); None where none are published."""
        return None

    def denoiser_blocks(self, folder: Path | None) -> int | None:
        """How many transformer blocks the denoiser has, from its config (the step caches hook
        the first and the last); None where unknown."""
        if folder is None:
            return None
        config = read_config(folder, "transformer") or read_config(folder, "transformer_2")
        blocks = config.get("num_layers")
        return int(blocks) if isinstance(blocks, int) else None

    def known_spec(self, hub_id: str) -> ModelSpec | None:
        """The spec of a checkpoint this family knows by hub id, without its folder (so that
        arguments are checked before a download); None for others."""
        return None

    def tiny_spec(self, name: str) -> ModelSpec:
        """The spec of the tiny random model ``name`` (one of ``tiny``), as its folder's configs will
        say, without building it: what offline hints choose a tiny model by (per family; a test
        holds it to the built folder's)."""
        raise NotImplementedError

    def for_model(self, model_id: str, folder: Path | None) -> Family:
        """The family object that runs this checkpoint: ``self``, or one that carries the
        checkpoint's own defaults (LTX's distilled models)."""
        return self

    def takes(self, knob: str) -> bool:
        """Whether the family takes the knob (a pipeline argument or a scheduler setting)."""
        return knob in self.knob_arguments or knob in self.scheduler_knobs

    def knob_defaults_for(self, given: dict[str, Any]) -> dict[str, Any]:
        """vidlatent's defaults for the knobs not given (where they differ from "not passed"); they
        may depend on the ones that are."""
        return self.knob_defaults

    def pipeline_class(self, spec: ModelSpec, *, image: bool, last_image: bool = False) -> str:
        """The diffusers class to run: with or without a conditioning image (and a last frame)."""
        return self.pipeline_classes[0]

    def check_knobs(self, knobs: Any, spec: ModelSpec, *, continuing: bool = False) -> None:
        """Refuse, before loading, knob values (a ``vidlatent.knobs.Knobs``) that this family's
        pipelines accept but mishandle, beyond each knob's own range (``Knobs.check_for`` calls it);
        ``continuing``: for the call that continues a clip (extend). Nothing by default."""

    def windows(self, knobs: Any, spec: ModelSpec) -> list[tuple[int, int]]:
        """The pixel frames [first, end) of the clip that each window of one generate call with
        ``knobs`` makes: one window by default; SkyReels DF makes a long video in several."""
        return [(0, knobs.frames if knobs.frames is not None else spec.frames)]

    def window_prompts(self, model: Any, prompts: list[str]) -> Callable[[Any, int, dict[str, Any]], dict[str, Any]] | None:
        """A step hook (as ``vidlatent.generation.sample``'s ``on_step``) that gives window i + 1 of a
        generate call the prompt ``prompts[i]`` as window i ends; None where one call makes one window."""
        return None

    def calling(self, pipeline: Any) -> contextlib.AbstractContextManager[None]:
        """A context around each pipeline call that undoes what the call leaves changed in the
        pipeline (SkyReels DF: the causal block written into its transformer's config), so that
        jobs of one process do not leak into each other. Nothing by default."""
        return contextlib.nullcontext()

    def sampling_components(self, spec: ModelSpec, *, image: bool) -> tuple[str, ...]:
        """The components a sampling call needs (the rest are not loaded)."""
        return self.components

    def build_tiny(self, name: str) -> Any:
        """The tiny random pipeline ``name`` in memory (real classes, tiny configs, fixed seeds)."""
        raise NotImplementedError

    # --- latents (per family) ------------------------------------------------------------------

    def layout(self, vae: Any) -> LatentLayout:
        raise NotImplementedError

    def encode_frames(self, frames: Iterable[np.ndarray], vae: Any, *, device: torch.device, chunk: int = 8,
                      progress: Progress = no_progress, note: Callable[[str], None] | None = None) -> torch.Tensor:
        """(H, W, 3) uint8 frames -> (T, C, h, w) float32 latents on the CPU, normalised."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor, vae: Any, *, device: torch.device, chunk: int = 8,
               settings: DecodeSettings | None = None, first: int = 0, last: int | None = None) -> Iterator[torch.Tensor]:
        """(T, C, h, w) normalised latents -> pixel frames ``first`` to ``last`` (default: all) of the
        clip, (1, 3, N, H, W) in [-1, 1], a few frames at a time, in order: the one decoder every
        command streams (``vidlatent.codec.decode_frames`` turns it into uint8 frames).

        ``settings``: for timestep-conditioned decoders (``timestep_decoder``); None for the others.
        """
        raise NotImplementedError


    # What default_decode_chunk is, in words, for --help's list of defaults.
    default_decode_chunk_words: ClassVar[str] = "8"

    def default_decode_chunk(self, model: Any) -> int:
        """Latent frames per decoder call when --decode-chunk is not given."""
        return 8

    def tiles_by_default(self, vae: Any, size: tuple[int, int]) -> bool:
        """Whether (width, height) frames are decoded in spatial tiles when --vae-tiling is not
        given (--no-vae-tiling still turns it off)."""
        return False

    def decode_working_bytes(self, vae: Any, size: tuple[int, int]) -> int | None:
        """An estimate of the memory an untiled decode of (width, height) frames works in, for
        turning VAE tiling on where it would not fit; None where the family has no estimate."""
        return None

    def decode_work(self, vae: Any, size: tuple[int, int], latent_frames: int, chunk: int, tiled: bool) -> DecodeWork | None:
        """What one decoder call of a clip of ``latent_frames`` (width, height) frames works on,
        ``chunk`` latent frames per call (where the family decodes in chunks), tiled or not; ``vae`` may be built on the meta device.
        None where the family has no estimate (vidlatent.planning then says so)."""
        return None

    def denoiser_workload(self, config: dict[str, Any], latent: tuple[int, int, int]) -> Workload | None:
        """The shapes of one denoiser call on latents of ``latent`` (frames, height, width), from the
        denoiser's config; None where the family has no estimate."""
        return None

    # --- sampling (per family) -----------------------------------------------------------------

    def pipeline_arguments(self, model: Any, *, image: Image.Image | None, last_image: Image.Image | None,
                           size: tuple[int, int], frames: int | None = None) -> dict[str, Any]:
        """The conditioning arguments of one pipeline call (image, last image, size; ``frames``, the
        pixel frames made, places a last frame for families that need to be told where)."""
        raise NotImplementedError

    def resolve_knobs(self, pipeline: Any, values: dict[str, Any]) -> dict[str, Any]:
        """Knob values that the pipeline derives from others or from its config (for the history)."""
        return {}

    def initial_noise(self, model: Any, size: tuple[int, int], latent_frames: int, seed: int) -> torch.Tensor:
        """(T, C, h, w): the unit noise a generation with ``seed`` starts from."""
        raise NotImplementedError

    @staticmethod
    def first_draw(model: Any, channels: int, size: tuple[int, int], latent_frames: int, seed: int) -> torch.Tensor:
        """(T, C, h, w) float32: the latents a pipeline draws first from ``torch.Generator("cpu").manual_seed(seed)``,
        channels first, (1, C, T, h, w), at ``size`` over the model's spatial compression (Wan,
        LTX-Video and LTX-2 draw so)."""
        import torch

        from vidlatent.seeds import cpu_generator

        width, height = size
        spatial = model.layout.spatial
        shape = (1, channels, latent_frames, height // spatial, width // spatial)
        return torch.randn(shape, generator=cpu_generator(seed), dtype=torch.float32)[0].permute(1, 0, 2, 3)

    def schedule(self, model: Any, steps: int) -> list[float]:
        """The model's own ``steps``-step noise schedule: steps + 1 levels ending in 0."""
        scheduler = model.pipeline.scheduler
        scheduler.set_timesteps(steps, device="cpu")
        return [float(sigma) for sigma in scheduler.sigmas]

    def noised(self, clean: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        """``clean`` at noise level ``sigma``: the flow-matching interpolation by default."""
        return (1.0 - sigma) * clean + sigma * noise

    def sigma_after_step(self, pipeline: Any, step: int) -> float:
        """The noise level the latents are at after denoising step ``step`` (0-based)."""
        return float(pipeline.scheduler.sigmas[step + 1])

    def regenerate_tail(self, model: Any, call: Callable[..., Any], clean: torch.Tensor,
                        noise: torch.Tensor, steps: int, kept: int) -> Any:
        """Denoise ``clean`` re-noised to the level of step ``steps - kept`` of the model's
        ``steps``-step schedule, running that schedule's last ``kept`` steps.

        ``call(latents=..., steps=...)`` makes one pipeline call with the given starting
        latents (T, C, h, w) and returns what it made (``generation.Sampled``: the (T, C, h, w)
        latents, and the sound where the family makes sound); return it.
        """
        raise NotImplementedError

    def tail_record(self, steps: int, kept: int) -> dict[str, Any]:
        """What ``regenerate_tail`` ran, where the knobs alone do not say it (for the history)."""
        return {}

    # --- model-level operations that families may do their own way -------------------------

    def continuation(self, model: Any, latents: torch.Tensor, overlap: int) -> Continuation:
        """What the next segment of ``latents`` (T, C, h, w) is conditioned on: its first pixel frame
        (the clip's last for an overlap of 1), and the ``overlap`` latent frames its start is pinned to.

        Default, for causal video VAEs: the clip is decoded in order (memory bounded by the
        streaming decoder) keeping its last (overlap - 1) * temporal + 1 pixel frames, and those
        frames are encoded on their own, so the new segment's first latent frame is the
        conditioning frame, as the model itself starts a clip.
        """
        from collections import deque

        from PIL import Image

        from vidlatent.codec import decode_frames

        device = model.execution_device
        rule = model.layout.frame_rule
        tail: deque[np.ndarray] = deque(maxlen=max(1, rule.pixel_frames(overlap)))
        tail.extend(decode_frames(self, latents, model.vae, device=device))
        known = self.encode_frames(list(tail), model.vae, device=device) if overlap else latents[:0]
        # The segment starts with these frames, so it is conditioned on the first of them (the
        # clip's last frame when overlap is 1 or 0): image and pinned frames agree.
        return Continuation(image=Image.fromarray(tail[0]), pinned=known[:overlap])

    def check_context_parallel(self, folder: Path | None, spec: ModelSpec, size: tuple[int, int], frames: int,
                               degree: int) -> None:
        """Raise UsageError unless one video of ``size`` and ``frames`` pixel frames can be split
        over ``degree`` processes by diffusers' context parallelism (Ulysses)."""
        raise UsageError(f"--context-parallel: {self.title}'s denoiser has no context-parallel plan in diffusers; "
                         "run one video per process instead (torchrun without --context-parallel)")

    def enable_context_parallel(self, pipeline: Any, degree: int) -> None:
        """Split the denoiser's attention over ``degree`` processes (after ``check_context_parallel``)."""
        raise NotImplementedError
