"""Generating clips and continuing them, for every model family: the library behind
``generate`` and ``extend``, and the partial denoising behind ``edit --strength`` and
``interpolate --refine``.

Every call goes through the family's own diffusers pipeline with ``output_type="latent"``, so a
``generate`` run equals, bit for bit, a diffusers script that passes the same image (or
prompt), the same arguments and ``generator=torch.Generator("cpu").manual_seed(seed)``.
``extend`` adds two things through the pipeline's step callback, not a fork of it: overlap
frames pinned to the end of the clip so far (re-noised to the current noise level after every
step), and drift correction.

``regenerate`` starts part-way down the model's own noise schedule from a clip noised to that
level (SDEdit); how a pipeline is made to start there is the family's (``regenerate_tail``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent import families, latent_ops, media, samplers
from vidlatent.codec import decode_frame
from vidlatent.errors import Note, UsageError
from vidlatent.knobs import FLAGS, Knobs, check_frames, check_size, default_size
from vidlatent.latentfile import AudioLayout, LatentClip
from vidlatent.models import LoadedModel, plan_vae_tiling
from vidlatent.progress import Progress, no_progress
from vidlatent.prompts import SegmentPrompt
from vidlatent.seeds import MAX_SEED, cpu_generator, random_seed

__all__ = ["FLAGS", "Knobs", "check_frames", "check_size", "cpu_generator", "default_size", "random_seed"]

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from vidlatent.families.base import Family, ModelSpec

StepHook = Callable[[Any, int, dict[str, Any]], dict[str, Any]]



def _offset_progress(progress: Progress, offset: int, done: int) -> None:
    progress(offset + done)


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _step_reporter(progress: Progress, extra: StepHook | None = None, end_step: Callable[[], None] | None = None):  # type: ignore[no-untyped-def]
    done = 0  # steps of the whole call: a long SkyReels DF call counts each window's from 0

    def on_step_end(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        nonlocal done
        changed = extra(pipeline, step, tensors) if extra else {}
        if end_step is not None:
            end_step()
        done += 1
        progress(done)
        return changed

    return on_step_end


@dataclass(frozen=True)
class Sampled:
    """What one pipeline call made: the video's latents (T, C, h, w) and, for a family with sound
    (``Family.sound``), the sound's (L, C, M); float32 on the CPU."""

    latents: torch.Tensor
    audio: torch.Tensor | None = None


def sample(model: LoadedModel, image: Image.Image | None, **arguments: Any) -> torch.Tensor:
    """``sample_streams``' video latents, (T, C, h, w) float32 on the CPU (the calls that keep only
    the picture: regenerate, inversion, upscaling, interpolate's refining)."""
    return sample_streams(model, image, **arguments).latents


def sample_streams(
    model: LoadedModel,
    image: Image.Image | None,
    *,
    knobs: Knobs,
    seed: int,
    progress: Progress = no_progress,
    on_step: StepHook | None = None,
    latents: torch.Tensor | None = None,
    sigmas: list[float] | None = None,
    last_image: Image.Image | None = None,
    size: tuple[int, int] | None = None,
    arguments: dict[str, Any] | None = None,
    pipeline_class: str | None = None,
) -> Sampled:
    """One pipeline call; returns its (T, C, h, w) float32 latents on the CPU, and its sound's.

    Args:
        model: a loaded pipeline.
        image: the conditioning image, already at the output size; None for text only.
        knobs: sampling knobs; None fields take the pipeline's defaults.
        seed: seeds ``torch.Generator("cpu")``.
        progress: called with the number of steps done.
        on_step: extra work after each step (pipeline, step, tensors) -> tensors to replace.
        latents: (T, C, h, w) starting latents for the pipeline's ``latents=`` (SVD multiplies
            them by the scheduler's init_noise_sigma); None lets the pipeline draw them.
        sigmas: SVD: a custom sigma schedule (ending in 0) instead of ``knobs.steps`` steps.
        last_image: a last frame to condition on (first-last-frame models), at the output size.
        size: (width, height) for text only; default the image's size.
        arguments: more pipeline arguments, the family's own (LTX: conditions=, timesteps=,
            denoise_strength=); they take precedence over the knobs' arguments.
        pipeline_class: call this diffusers class, made of the loaded pipeline's components,
            instead of the loaded one (``Family.continuation_pipeline``).
    """
    family = model.family
    size = image.size if image is not None else size
    if size is None:
        raise ValueError("sample needs an image or a size")
    extra: dict[str, Any] = {}
    if latents is not None:
        import torch

        dtype = torch.float32 if family.latents_in_float32 else model.dtype
        extra["latents"] = to_pipeline_latents(family, latents).to(device=model.execution_device, dtype=dtype)
    if sigmas is not None:
        extra["sigmas"] = sigmas
    frames = knobs.resolved(model.pipeline, family).frames
    call = {
        **family.pipeline_arguments(model, image=image, last_image=last_image, size=size, frames=frames),
        "generator": cpu_generator(seed),
        "output_type": "latent",
        "callback_on_step_end": _step_reporter(progress, on_step, model.accelerated.end_step),
        **knobs.pipeline_kwargs(family),
        **extra,
        **(arguments or {}),
    }
    with samplers.scheduled(model.pipeline, knobs.sampler, knobs.shift), family.calling(model.pipeline):
        pipeline = model.pipeline if pipeline_class is None else same_components(model.pipeline, pipeline_class)
        output = pipeline(**call)
    latents = from_pipeline_latents(family, output.frames).float().cpu()
    audio = getattr(output, "audio", None)
    return Sampled(latents, family.sound.from_pipeline(audio) if family.sound is not None and audio is not None else None)


def audio_layout(model: LoadedModel) -> AudioLayout | None:
    """How the sound ``model`` makes lines up with its frames, or None for a family without sound."""
    sound, decoder = model.family.sound, model.sound_decoder()
    if sound is None or decoder is None:
        return None
    return sound.layout(**decoder, family=model.family.name)


def same_components(pipeline: Any, class_name: str) -> Any:
    """A pipeline of the diffusers class ``class_name`` made of ``pipeline``'s components (shared,
    with whatever offloading and acceleration they carry): no weights load."""
    import inspect

    import diffusers

    cls = getattr(diffusers, class_name)
    parameters = [parameter for parameter in inspect.signature(cls.__init__).parameters.values() if parameter.name != "self"]
    # An optional component the loaded pipeline lacks (LTX-2's audio_scheduler) takes the class's default.
    other = cls(**{parameter.name: getattr(pipeline, parameter.name) if parameter.default is inspect.Parameter.empty
                   else getattr(pipeline, parameter.name, parameter.default) for parameter in parameters})
    other.set_progress_bar_config(**getattr(pipeline, "_progress_bar_config", {}))
    return other


def to_pipeline_latents(family: Family, latents: torch.Tensor) -> torch.Tensor:
    """(T, C, h, w) -> the layout the family's pipelines take as ``latents=`` (``Family.pipeline_latents``)."""
    return latents[None] if family.pipeline_latents == "frames-first" else latents.permute(1, 0, 2, 3)[None]


def from_pipeline_latents(family: Family, tensor: torch.Tensor, *, size: tuple[int, int] | None = None,
                          callback: bool = False) -> torch.Tensor:
    """The family's pipeline latents (its ``output_type="latent"`` result, or with ``callback`` what a
    step callback sees) -> a (T, C, h, w) view of them.

    ``size``: the latent (h, w), for pipelines whose callbacks see tokens (``Family.callback_tokens``:
    LTX, (1, T * h * w, C) in (t, h, w) order; conditions at later frames would add tokens first, so
    vidlatent pins frames only in calls without them).
    """
    if callback and family.callback_tokens:
        if size is None:
            raise ValueError(f"{family.title}'s step callbacks see tokens: the latent (h, w) is needed to find the frames")
        height, width = size
        tokens = tensor[0]  # (S, C)
        return tokens.view(tokens.shape[0] // (height * width), height, width, tokens.shape[1]).permute(0, 3, 1, 2)
    return tensor[0] if family.pipeline_latents == "frames-first" else tensor[0].permute(1, 0, 2, 3)


def acceleration_record(model: LoadedModel) -> dict[str, Any]:
    """``{"acceleration": ...}`` for a history entry of a sampling step when the model was loaded
    with anything that changes its latents (cache, compile, fp8, LoRA), with the cache's counts
    since the last such record; {} on the default path."""
    record = model.accelerated.record()
    return {"acceleration": record} if record else {}


def generate(
    model: LoadedModel,
    image: Image.Image | None,
    *,
    knobs: Knobs = Knobs(),
    seed: int,
    size: tuple[int, int] | None = None,
    source: str = "",
    image_sha256: str = "",
    progress: Progress = no_progress,
    last_image: Image.Image | None = None,
    prompts: Sequence[str] = (),
) -> LatentClip:
    """Generate a latent clip from ``image`` (and the knobs' prompt), or from the prompt alone.

    Args:
        model: a loaded pipeline (loaded for text only when ``image`` is None).
        image: an RGB image, resized (cover, then centre-crop) to ``size``; None for text only.
        knobs: sampling knobs.
        seed: the seed; video i of a batch uses seed + i.
        size: (width, height), multiples of the model's size multiple; default keeps the
            image's aspect ratio at the model's native area (the native size for text only).
        source, image_sha256: recorded in the history.
        last_image: a last frame to condition on (first-last-frame models).
        prompts: a prompt per window, where the model makes the video in several (a long SkyReels
            DF video: ``Family.windows``); the history records the frames each made.
    """
    from vidlatent.prompts import check_window_prompts

    spec = model.spec
    knobs.check_for(spec)
    windows = check_window_prompts(model.family, spec, knobs, [SegmentPrompt(prompt) for prompt in prompts])
    size = size or default_size(spec, image.size if image is not None else None)
    check_size(size, spec)
    conditioning = media.resize_image(image, size) if image is not None else None
    last = media.resize_image(last_image, size) if last_image is not None else None
    if prompts:
        knobs = dataclasses.replace(knobs, prompt=prompts[0])
    on_step = model.family.window_prompts(model, list(prompts[1:])) if prompts else None
    made = sample_streams(model, conditioning, knobs=knobs, seed=seed, progress=progress, last_image=last, size=size,
                          on_step=on_step)
    effective = knobs.resolved(model.pipeline, model.family)
    segments = [{**({"prompt": prompts[index]} if prompts else {}), "frames_made": [first, end - 1]}
                for index, (first, end) in enumerate(windows)] if len(windows) > 1 else []
    clip = LatentClip(
        latents=made.latents,
        model=model.model_id,
        latent_space=model.latent_space,
        fps=clip_fps(effective, spec),
        height=size[1],
        width=size[0],
        seed=seed,
        layout=model.layout,
        audio=made.audio,
        audio_layout=audio_layout(model) if made.audio is not None else None,
    )
    return clip.with_step(
        "generate",
        {"source": source, "image_sha256": image_sha256, "size": f"{size[0]}x{size[1]}", "seed": seed, **effective.record(),
         **({"segments": segments} if segments else {}), **acceleration_record(model)},
    )


def clip_fps(effective: Knobs, spec: ModelSpec) -> float:
    """The frame rate a generated clip plays at: the conditioning fps where the model takes
    one (SVD), else the model's own."""
    return float(effective.fps) if effective.fps is not None else float(spec.fps)


@dataclass(frozen=True)
class ExtendOptions:
    """How ``extend`` continues a clip.

    Args:
        times: how many segments to add.
        overlap: latent frames each new segment shares with the end of the clip so far;
            None for the family's default (SVD 2, Wan 1, LTX 2; shorter where a segment is).
        drift_correction: bring each new segment's per-channel statistics back within the band of
            natural change around the first segment's (latent_ops.limit_drift, docs/extend.md).
        segments: a prompt per segment (``vidlatent.prompts.SegmentPrompt``, with its frame count
            where it has one), as many as ``times``; () for the knobs' prompt throughout.
    """

    times: int = 1
    overlap: int | None = None
    drift_correction: bool = True
    segments: tuple[SegmentPrompt, ...] = ()

    def validate(self, segment_frames: int | None = None, clip_frames: int | None = None, *, minimum: int = 0) -> None:
        """Check the options; frame counts are latent frames."""
        if self.times < 1:
            raise UsageError(f"--times {self.times}: must be at least 1")
        if self.segments and len(self.segments) != self.times:
            raise UsageError(f"--times {self.times} and {len(self.segments)} prompts: one segment per prompt; "
                             "leave --times out")
        overlap = self.overlap
        if overlap is None:
            return
        if overlap < minimum:
            raise UsageError(f"--overlap {overlap}: must be at least {minimum} for this model (its segments start with the "
                             "conditioning frame, which the overlap includes)")
        if segment_frames is not None and overlap >= segment_frames:
            raise UsageError(f"--overlap {overlap}: must be smaller than a segment's {segment_frames} latent frames")
        if clip_frames is not None and overlap > clip_frames:
            raise UsageError(f"--overlap {overlap}: the clip has only {clip_frames} latent frame(s)")


def frame_image(latents: torch.Tensor, model: LoadedModel, index: int) -> Image.Image:
    """Decode latent frame ``index`` of (T, C, h, w) ``latents`` to an RGB image to condition on
    (its last pixel frame, for VAEs with several pixel frames per latent frame)."""
    from PIL import Image

    spatial = model.layout.spatial
    plan_vae_tiling(model, (int(latents.shape[-1]) * spatial, int(latents.shape[-2]) * spatial))
    return Image.fromarray(decode_frame(model.family, latents, model.vae, device=model.execution_device, index=index))


def last_frame_image(latents: torch.Tensor, model: LoadedModel) -> Image.Image:
    """Decode the clip's last pixel frame: the image the next segment is conditioned on."""
    return frame_image(latents, model, -1)


def pin_frames(known: torch.Tensor, indices: Sequence[int], seed: int, family: Family | None = None) -> StepHook:
    """A step callback that keeps the frames at ``indices`` on ``known`` (k, C, h, w), re-noised.

    After step i the latents sit at the noise level of step i + 1; the pinned frames are set to
    ``known`` noised to that level (fresh noise each step, from a generator seeded by
    ``seed``), so at the end (noise 0) they equal ``known`` exactly and the frames around them
    continue them (the replacement idea used for inpainting). ``extend`` pins its overlap this
    way, ``interpolate --refine`` the original frames.

    Args:
        known: (k, C, h, w) latents to pin.
        indices: the k latent frame positions, in the sampled clip, that they occupy.
        seed: seeds the re-noising.
        family: the pipeline's family; None finds it from the pipeline.
    """
    import torch

    positions = list(indices)
    if len(positions) != known.shape[0]:
        raise ValueError(f"{known.shape[0]} known frames for {len(positions)} positions")
    noise_generator = torch.Generator("cpu").manual_seed((seed + 2**32) % MAX_SEED)

    def pin(pipeline: Any, step: int, tensors: dict[str, Any]) -> dict[str, Any]:
        own = family or families.for_pipeline(pipeline)
        latents = tensors["latents"]
        frames = from_pipeline_latents(own, latents, size=tuple(known.shape[-2:]), callback=True)  # a view of the pipeline's tensor
        sigma = own.sigma_after_step(pipeline, step)
        noise = torch.randn(known.shape, generator=noise_generator)
        frames[positions] = own.noised(known, noise, sigma).to(device=latents.device, dtype=latents.dtype)
        return {"latents": latents}

    return pin


def _pin_overlap(known: torch.Tensor, seed: int) -> StepHook:
    """``pin_frames`` for extend's overlap, ``known`` in the first frames (the name tests/test_generate.py uses)."""
    return pin_frames(known, range(known.shape[0]), seed)


def strength_steps(strength: float, steps: int) -> int:
    """How many of ``steps`` denoising steps a strength in [0, 1] runs: round(strength * steps), halves up."""
    if not 0 <= strength <= 1:
        raise UsageError(f"strength {strength}: must be between 0 and 1")
    return math.floor(strength * steps + 0.5)


def strength_sigmas(model: LoadedModel, steps: int, strength: float) -> list[float]:
    """The tail of the model's own ``steps``-step noise schedule that ``strength`` runs.

    The scheduler makes its usual schedule (level_0 > ... > level_steps = 0); strength S starts at
    index steps - round(S * steps) and keeps the rest, the final 0 included, so S = 1 is the
    whole schedule and S = 0 only the final 0.
    """
    schedule = model.family.schedule(model, steps)
    return schedule[steps - strength_steps(strength, steps) :]


def initial_noise(model: LoadedModel, size: tuple[int, int], frames: int, seed: int) -> torch.Tensor:
    """The unit noise ``generate`` with this seed starts from: (frames, C, h, w), ``frames`` latent frames."""
    return model.family.initial_noise(model, size, frames, seed)


def knobs_for_clip(model: LoadedModel, knobs: Knobs, latent_frames: int) -> Knobs:
    """``knobs`` for re-generating a clip of ``latent_frames`` latent frames: its pixel frame
    count; a --frames that says otherwise is refused."""
    frames = model.layout.frame_rule.pixel_frames(latent_frames)
    if knobs.frames not in (None, frames):
        raise UsageError(f"--frames {knobs.frames}: the clip has {frames} frames, and they are what is re-generated; leave --frames out")
    return dataclasses.replace(knobs, frames=frames)


def regenerate(model: LoadedModel, image: Image.Image | None, latents: torch.Tensor, **options: Any) -> torch.Tensor:
    """``regenerate_streams``' video latents, (T, C, h, w) float32 on the CPU (``options``: its keywords)."""
    return regenerate_streams(model, image, latents, **options).latents


def regenerate_streams(
    model: LoadedModel,
    image: Image.Image | None,
    latents: torch.Tensor,
    *,
    strength: float,
    knobs: Knobs = Knobs(),
    seed: int,
    noise: torch.Tensor | None = None,
    progress: Progress = no_progress,
    on_step: StepHook | None = None,
    size: tuple[int, int] | None = None,
    audio: torch.Tensor | None = None,
) -> Sampled:
    """Re-noise ``latents`` to the level ``strength`` picks and denoise them conditioned on ``image``;
    the clip's sound ``audio`` with them, where the family makes sound.

    With n = knobs.steps (the pipeline's default where unset) and k = round(strength * n), the
    clip is noised to level n - k of the model's own n-step schedule and the last k steps of that
    schedule are run (SDEdit). So:

    - k = 0 (strength 0, or small enough to round to no step): ``latents`` come back exactly,
      and no model runs.
    - k = n (strength 1, or near enough to round to every step): exactly ``generate``'s
      pipeline call, bit for bit. (At the top of SVD's schedule the clip would be 1/700 of the
      noise; strength 1 is defined as a fresh generation rather than a version of it shifted
      by that sliver.)
    - otherwise: one pipeline call started part-way down the schedule from the noised clip, the
      family's way (SVD: the pipeline's ``sigmas=`` and ``latents=``; Wan: the scheduler's
      last k steps; LTX: noise level S itself, its own k-step schedule scaled into [0, S]
      through ``timesteps=``, since its ``denoise_strength`` cuts steps rather than noise).

    The seed enters only through noise: the latent noise (``initial_noise``, the noise
    ``generate`` would start from, unless ``noise`` is given) and any noise the pipeline draws
    for its conditioning.

    Args:
        model: a loaded pipeline.
        image: the conditioning image at the clip's pixel size; None for text only.
        latents: (T, C, h, w) the clip, x0.
        strength: 0 to 1.
        knobs: sampling knobs; frames must be unset or the clip's.
        seed: seeds the noise.
        noise: (T, C, h, w) unit noise to use instead of the seed's.
        progress: called with the number of steps done (k in all).
        on_step: extra work after each step, as for ``sample``.
        size: (width, height) for text only.
        audio: (L, C, M) the clip's sound (a family with ``sound``): passed as the pipeline's
            ``audio_latents=``, so that a partial strength re-noises and denoises it with the
            picture (at strength 1 both are generated afresh, as ``generate`` does).

    Returns:
        (T, C, h, w) float32 latents on the CPU, and the sound's (L, C, M) where the family makes
        sound (``audio`` itself at strength 0).
    """
    knobs = knobs_for_clip(model, knobs, int(latents.shape[0]))
    steps = knobs.resolved(model.pipeline, model.family).steps
    count = strength_steps(strength, steps)
    if count == 0:
        return Sampled(latents.float().clone(), audio.float().clone() if audio is not None else None)
    if count == steps:
        return sample_streams(model, image, knobs=knobs, seed=seed, progress=progress, on_step=on_step, latents=noise, size=size)
    if noise is None:
        size = image.size if image is not None else size
        noise = initial_noise(model, size, int(latents.shape[0]), seed)

    sound = model.family.sound
    given = {"audio_latents": sound.to_pipeline(audio)} if sound is not None and audio is not None else {}

    def call(*, latents: torch.Tensor, steps: int | None, sigmas: list[float] | None = None, **arguments: Any) -> Sampled:
        return sample_streams(model, image, knobs=dataclasses.replace(knobs, steps=steps), seed=seed, progress=progress,
                              on_step=on_step, latents=latents, sigmas=sigmas, size=size, arguments={**given, **arguments})

    # The tail's schedule (and the tail's own scheduler, made from it) is the knobs' sampler's.
    with samplers.scheduled(model.pipeline, knobs.sampler, knobs.shift):
        return model.family.regenerate_tail(model, call, latents, noise, steps, count)


def regeneration_record(model: LoadedModel, knobs: Knobs, strength: float) -> dict[str, Any]:
    """The history record of a ``regenerate`` with ``knobs`` at ``strength``: the steps it ran,
    the knobs, and what the family's tail ran that the knobs do not say (LTX: its timesteps)."""
    effective = knobs.resolved(model.pipeline, model.family)
    kept = strength_steps(strength, effective.steps)
    tail = model.family.tail_record(effective.steps, kept) if 0 < kept < effective.steps else {}
    return {"denoising_steps": kept, **effective.record(), **tail, **acceleration_record(model)}


def with_clip_prompts(knobs: Knobs, clip: LatentClip) -> Knobs:
    """``knobs`` with the prompts of the clip's own generation where none are given, so that
    continuing or editing a Wan clip keeps describing the same video."""
    recorded = clip.recorded("prompt", "negative_prompt")
    return dataclasses.replace(
        knobs,
        prompt=knobs.prompt if knobs.prompt is not None else recorded.get("prompt"),
        negative_prompt=knobs.negative_prompt if knobs.negative_prompt is not None else recorded.get("negative_prompt"),
    )


def segment_frames(clip: LatentClip) -> int | None:
    """The pixel frames of the segments the clip was made of (its generate or extend step), if recorded."""
    frames = clip.recorded("frames").get("frames")
    return int(frames) if isinstance(frames, int) else None


def resolve_overlap(options: ExtendOptions, family: Family, spec: ModelSpec, frames: int, clip_frames: int,
                    knobs: Knobs | None = None) -> ExtendOptions:
    """``options`` with the overlap filled in (the family's default, where segments of ``frames``
    pixel frames are long enough for it: LTX 2, SkyReels DF 5, or 1) and checked against a
    segment's and the clip's latent frames; commands call it before the model loads.

    Where the family continues from a history of pixel frames (SkyReels DF's ``--history``, its
    ``overlap_history``), ``knobs.history`` is the same overlap in pixel frames: it sets the overlap,
    and the segment's knobs are checked with it (``Family.check_knobs``).
    """
    rule = spec.frame_rule
    segment_latents = rule.latent_frames(frames)
    overlap = options.overlap
    history = knobs.history if knobs is not None else None
    if history is not None:
        if overlap is not None and overlap != rule.latent_frames(history):
            raise UsageError(f"--overlap {overlap} and --history {history}: two lengths for the same history "
                             f"({history} frames are {rule.latent_frames(history)} latent frames); give one of them")
        overlap = rule.latent_frames(history)
    if overlap is None:
        overlap = min(family.default_overlap, max(family.minimum_overlap, segment_latents - 1))
    options = dataclasses.replace(options, overlap=overlap)
    if family.maximum_overlap is not None and overlap > family.maximum_overlap:
        raise UsageError(f"--overlap {overlap}: {spec.title} continues a clip from its last frame, so a segment shares "
                         f"{family.maximum_overlap} latent frame with it; use --overlap {family.maximum_overlap}")
    options.validate(segment_latents, clip_frames, minimum=family.minimum_overlap)
    if knobs is not None and family.takes("history"):
        family.check_knobs(dataclasses.replace(knobs, frames=frames, history=rule.pixel_frames(overlap)), spec, continuing=True)
    return options


def segment_knobs(knobs: Knobs, options: ExtendOptions) -> list[Knobs]:
    """The knobs of each of extend's segments: ``knobs``, with each segment's own prompt and frames
    where ``options.segments`` gives them."""
    if not options.segments:
        return [knobs] * options.times
    return [dataclasses.replace(knobs, prompt=segment.prompt, frames=segment.frames or knobs.frames)
            for segment in options.segments]


def resolve_segments(options: ExtendOptions, family: Family, spec: ModelSpec, knobs: Knobs, default_frames: int,
                     clip_frames: int) -> ExtendOptions:
    """``resolve_overlap`` for every segment: the overlap fits the shortest (``default_frames``
    where a segment gives no frame count), and each segment's knobs are checked."""
    every = segment_knobs(knobs, options)
    frames = [each.frames or default_frames for each in every]
    for each in every:
        each.check_for(spec, continuing=True)
    shortest = min(range(len(frames)), key=frames.__getitem__)
    options = resolve_overlap(options, family, spec, frames[shortest], clip_frames, every[shortest])
    for each, count in zip(every, frames):
        resolve_overlap(options, family, spec, count, clip_frames, each)
    return options


def extend_segment(model: LoadedModel, latents: torch.Tensor, overlap: int, *, knobs: Knobs, seed: int,
                   progress: Progress = no_progress) -> Sampled:
    """One new segment continuing ``latents`` (T, C, h, w): (T', C, h, w) float32 latents whose first
    ``overlap`` latent frames stand for the clip's end (``extend`` leaves them out), and its sound.

    Conditioned on what the family's ``continuation`` says (by default the segment's first pixel
    frame, with the overlap frames pinned through the step callback, re-noised after every step).
    """
    continuation = model.family.continuation(model, latents, overlap)
    pinned = continuation.pinned
    on_step = pin_frames(pinned, range(int(pinned.shape[0])), seed, model.family) if pinned.shape[0] else None
    return sample_streams(model, continuation.image, knobs=knobs, seed=seed, progress=progress, on_step=on_step,
                          size=continuation.size, arguments=continuation.arguments or None,
                          pipeline_class=model.family.continuation_pipeline)


def _join_sound(sound: torch.Tensor | None, segment: torch.Tensor, layout: AudioLayout, pixel_frames: int,
                fps: float) -> torch.Tensor:
    """The clip's sound so far (L, C, M) continued by a segment's (L', C, M) to the length of
    ``pixel_frames`` frames: the segment's last steps, those after the frames it shares with the
    clip, so that the new sound ends with the new picture. The pipelines take no sound to continue
    from, so the seam is where the two sounds meet (extend measures it)."""
    import torch

    before = 0 if sound is None else int(sound.shape[0])
    wanted = max(0, layout.steps_for(pixel_frames, fps) - before)
    tail = segment[max(0, int(segment.shape[0]) - wanted):]
    return tail if sound is None else torch.cat([sound, tail])


def _sound_seam(sound: torch.Tensor, join: int) -> float:
    """How abrupt the join of two sounds (L, C, M) at step ``join`` is: the RMS change from step
    join - 1 to join over the mean RMS change between neighbouring steps (1: as smooth as usual)."""
    steps = sound.float().diff(dim=0).pow(2).mean(dim=(1, 2)).sqrt()  # (L - 1,) RMS change per step
    if join < 1 or join >= int(sound.shape[0]) or float(steps.mean()) == 0:
        return 0.0
    return float(steps[join - 1] / steps.mean())


def extend(
    model: LoadedModel,
    clip: LatentClip,
    *,
    knobs: Knobs = Knobs(),
    options: ExtendOptions = ExtendOptions(),
    seed: int,
    progress: Progress = no_progress,
) -> LatentClip:
    """Continue ``clip`` ``options.times`` times; segment j uses seed + j.

    Each new segment is made by ``extend_segment``: by default its first ``overlap``
    latent frames pinned to the end of the clip and conditioned on the clip's end (SVD: its last
    latent frames, and its last pixel frame; for causal VAEs, the encoding of the last
    (overlap - 1) * 4 + 1 pixel frames, and the first of them); LTX conditions natively on the
    clip's last (overlap - 1) * 8 + 1 pixel frames. Those frames are not repeated in the result, so
    the clip grows by (segment frames - overlap) latent frames per segment.
    """
    import torch

    family, spec = model.family, model.spec
    clip.require_space(model.latent_space, what=f"--model {model.model_id}")
    spec.check_extend()
    if clip.audio is None and family.sound is not None:
        warnings.warn(Note(f"the clip has no sound, so the extended clip has none either ({spec.title}'s segments make "
                           "sound, but there is none to continue it from)"), stacklevel=2)
    effective = knobs.resolved(model.pipeline, family, pipeline_class=family.continuation_pipeline)
    options = resolve_segments(options, family, spec, knobs, effective.frames, clip.frames)
    overlap = options.overlap
    plan_vae_tiling(model, (clip.width, clip.height))  # the clip's end is decoded for each segment
    reference = latent_ops.ChannelStats.of(clip.latents)
    latents = clip.latents.float()
    rule = model.layout.frame_rule
    sound = clip.audio.float() if clip.audio is not None else None
    segments = []
    steps_done = 0
    for index, own in enumerate(segment_knobs(knobs, options)):
        segment_seed = seed + index
        made = extend_segment(model, latents, overlap, knobs=own, seed=segment_seed,
                              progress=functools.partial(_offset_progress, progress, steps_done))
        steps_done += effective.steps
        segment = made.latents
        fresh = segment[overlap:]  # (T - overlap, C, h, w)
        measured = latent_ops.drift(fresh, reference)
        if options.drift_correction:
            fresh = latent_ops.limit_drift(fresh, reference)
        first = rule.pixel_frames(int(latents.shape[0]))  # the pixel frame the segment's new frames start at
        latents = torch.cat([latents, fresh])
        seam: dict[str, Any] = {}
        if made.audio is not None and clip.audio_layout is not None and sound is not None:
            before = int(sound.shape[0])
            sound = _join_sound(sound, made.audio, clip.audio_layout, model.layout.frame_rule.pixel_frames(int(latents.shape[0])),
                                clip.fps)
            seam = {"sound_seam": round(_sound_seam(sound, before), 6)}
        segments.append(
            {"seed": segment_seed, "frames": int(fresh.shape[0]), "frames_made": [first, rule.pixel_frames(int(latents.shape[0])) - 1],
             **({"prompt": own.prompt} if options.segments else {}),
             **({"segment_frames": options.segments[index].frames} if options.segments and options.segments[index].frames else {}),
             "drift_before_correction": {"mean": round(measured.mean, 6), "std_ratio": round(measured.std_ratio, 6)}, **seam}
        )
    extended = dataclasses.replace(clip, latents=latents, audio=sound if clip.audio_layout is not None else None)
    # With a prompt per segment the step's prompt is the last one: what the clip ends on, and what a
    # further extend without --prompt continues with.
    record = effective.record() | ({"prompt": options.segments[-1].prompt} if options.segments else {})
    if family.takes("history"):  # the overlap as the pipeline took it: pixel frames of history (SkyReels DF)
        record["history"] = rule.pixel_frames(overlap)
    return extended.with_step(
        "extend",
        {"times": options.times, "overlap": overlap, "drift_correction": options.drift_correction,
         "model": model.model_id, "segments": segments, **record, **acceleration_record(model)},
    )
