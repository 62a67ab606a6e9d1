"""Image to video with Stable Video Diffusion, and continuing a clip: the library behind
``generate`` and ``extend``.

Both call diffusers' StableVideoDiffusionPipeline itself with ``output_type="latent"``, so a
``generate`` run equals, bit for bit, a diffusers script that passes the same image, the same
arguments and ``generator=torch.Generator("cpu").manual_seed(seed)``. ``extend`` adds two
things through the pipeline's step callback, not a fork of it: overlap frames pinned to the
previous segment (re-noised to the current sigma after every step), and drift correction.

``regenerate`` (behind ``edit --strength`` and ``interpolate --refine``) starts the same
pipeline part-way down its own sigma schedule, from a clip noised to that level, through the
pipeline's ``sigmas=`` and ``latents=`` arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from vidlatent import codec, latent_ops, media
from vidlatent.errors import UsageError
from vidlatent.latentfile import LatentClip
from vidlatent.models import LoadedModel

if TYPE_CHECKING:
    import torch
    from PIL import Image

Progress = Callable[[int], None]
MAX_SEED = 2**64 - 1


def _no_progress(_: int) -> None:
    pass


def _offset_progress(progress: Progress, offset: int, done: int) -> None:
    progress(offset + done)


def random_seed() -> int:
    """A fresh seed for runs without --seed; it is recorded so the run can be repeated."""
    return secrets.randbelow(2**32)


def cpu_generator(seed: int) -> torch.Generator:
    """The generator --seed stands for: on the CPU, so a seed gives the same noise on every device."""
    import torch

    return torch.Generator("cpu").manual_seed(seed)


@dataclass(frozen=True)
class Knobs:
    """SVD's sampling knobs, named for people. None means the pipeline's own default.

    Args:
        frames: frames to generate (num_frames; default the UNet's, 14 for SVD, 25 for SVD-XT).
        steps: denoising steps (num_inference_steps).
        fps: the frame rate the model is conditioned on (fps).
        motion: motion bucket id, 1-255: more is more motion (motion_bucket_id).
        noise_aug: noise added to the conditioning image (noise_aug_strength).
        min_guidance, max_guidance: classifier-free guidance, linear from the first frame to the last.
    """

    frames: int | None = None
    steps: int | None = None
    fps: int | None = None
    motion: int | None = None
    noise_aug: float | None = None
    min_guidance: float | None = None
    max_guidance: float | None = None

    PIPELINE_ARGUMENTS = {
        "frames": "num_frames",
        "steps": "num_inference_steps",
        "fps": "fps",
        "motion": "motion_bucket_id",
        "noise_aug": "noise_aug_strength",
        "min_guidance": "min_guidance_scale",
        "max_guidance": "max_guidance_scale",
    }

    def validate(self) -> None:
        """Raise UsageError for values the model cannot use (cheap, before loading)."""
        checks = [
            (self.frames, lambda v: v >= 1, "--frames", "at least 1"),
            (self.steps, lambda v: v >= 1, "--steps", "at least 1"),
            (self.fps, lambda v: v >= 1, "--fps", "at least 1"),
            (self.motion, lambda v: 1 <= v <= 255, "--motion", "between 1 and 255"),
            (self.noise_aug, lambda v: v >= 0, "--noise-aug", "0 or more"),
            (self.min_guidance, lambda v: v >= 0, "--min-guidance", "0 or more"),
            (self.max_guidance, lambda v: v >= 0, "--max-guidance", "0 or more"),
        ]
        for value, ok, flag, rule in checks:
            if value is not None and not ok(value):
                raise UsageError(f"{flag} {value}: must be {rule}")

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Only the knobs that were given, under the pipeline's argument names."""
        return {self.PIPELINE_ARGUMENTS[name]: value for name, value in asdict(self).items() if value is not None}

    def resolved(self, pipeline: Any) -> Knobs:
        """These knobs with the pipeline's defaults filled in (for the history)."""
        defaults = inspect.signature(type(pipeline).__call__).parameters
        values = {}
        for name, argument in self.PIPELINE_ARGUMENTS.items():
            given = getattr(self, name)
            values[name] = given if given is not None else defaults[argument].default
        if values["frames"] is None:
            values["frames"] = int(pipeline.unet.config.num_frames)
        return Knobs(**values)


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _step_reporter(progress: Progress, extra: Callable[[Any, int, dict[str, Any]], dict[str, Any]] | None = None):  # type: ignore[no-untyped-def]
    def on_step_end(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        changed = extra(pipeline, step, tensors) if extra else {}
        progress(step + 1)
        return changed

    return on_step_end


def sample(
    model: LoadedModel,
    image: Image.Image,
    *,
    knobs: Knobs,
    seed: int,
    progress: Progress = _no_progress,
    on_step: Callable[[Any, int, dict[str, Any]], dict[str, Any]] | None = None,
    latents: torch.Tensor | None = None,
    sigmas: list[float] | None = None,
) -> torch.Tensor:
    """One pipeline call; returns (F, C, h, w) float32 latents on the CPU.

    Args:
        model: a loaded pipeline (all five components).
        image: the conditioning image, already at the output size (multiples of 64).
        knobs: sampling knobs; None fields take the pipeline's defaults.
        seed: seeds ``torch.Generator("cpu")``.
        progress: called with the number of steps done.
        on_step: extra work after each step (pipeline, step, tensors) -> tensors to replace.
        latents: (F, C, h, w) starting latents, handed to the pipeline, which multiplies them by
            the scheduler's init_noise_sigma; None lets the pipeline draw them from the seed.
        sigmas: a custom sigma schedule (ending in 0) instead of ``knobs.steps`` steps.
    """
    width, height = image.size
    extra: dict[str, Any] = {}
    if latents is not None:
        extra["latents"] = latents[None].to(device=model.execution_device, dtype=model.dtype)  # (1, F, C, h, w)
    if sigmas is not None:
        extra["sigmas"] = sigmas
    result = model.pipeline(
        image,
        height=height,
        width=width,
        generator=cpu_generator(seed),
        output_type="latent",
        callback_on_step_end=_step_reporter(progress, on_step),
        **knobs.pipeline_kwargs(),
        **extra,
    )
    return result.frames[0].float().cpu()  # (F, C, h, w)


def generate(
    model: LoadedModel,
    image: Image.Image,
    *,
    knobs: Knobs = Knobs(),
    seed: int,
    size: tuple[int, int] | None = None,
    source: str = "",
    image_sha256: str = "",
    progress: Progress = _no_progress,
) -> LatentClip:
    """Generate a latent clip from ``image``.

    Args:
        model: a loaded pipeline.
        image: an RGB image; resized (cover, then centre-crop) to ``size``.
        knobs: sampling knobs.
        seed: the seed; video i of a batch uses seed + i.
        size: (width, height), multiples of 64; default keeps the image's aspect ratio at the
            model's native area.
        source, image_sha256: recorded in the history.
    """
    knobs.validate()
    size = size or media.fit_size(image.width, image.height, model.native_area)
    conditioning = media.resize_image(image, size)
    latents = sample(model, conditioning, knobs=knobs, seed=seed, progress=progress)
    effective = knobs.resolved(model.pipeline)
    clip = LatentClip(
        latents=latents,
        model=model.model_id,
        latent_space=model.latent_space,
        fps=float(effective.fps),
        height=size[1],
        width=size[0],
        seed=seed,
    )
    return clip.with_step(
        "generate",
        {"source": source, "image_sha256": image_sha256, "size": f"{size[0]}x{size[1]}", "seed": seed, **asdict(effective)},
    )


@dataclass(frozen=True)
class ExtendOptions:
    """How ``extend`` continues a clip.

    Args:
        times: how many segments to add.
        overlap: latent frames each new segment shares with the end of the clip so far.
        drift_correction: match each new segment's per-channel statistics to the first segment's.
    """

    times: int = 1
    overlap: int = 2
    drift_correction: bool = True

    def validate(self, segment_frames: int | None = None, clip_frames: int | None = None) -> None:
        if self.times < 1:
            raise UsageError(f"--times {self.times}: must be at least 1")
        if self.overlap < 0:
            raise UsageError(f"--overlap {self.overlap}: must be 0 or more")
        if segment_frames is not None and self.overlap >= segment_frames:
            raise UsageError(f"--overlap {self.overlap}: must be smaller than the segment's --frames ({segment_frames})")
        if clip_frames is not None and self.overlap > clip_frames:
            raise UsageError(f"--overlap {self.overlap}: the clip has only {clip_frames} frame(s)")


def frame_image(latents: torch.Tensor, model: LoadedModel, index: int) -> Image.Image:
    """Decode latent frame ``index`` of (F, C, h, w) ``latents`` to an RGB image to condition on."""
    from PIL import Image

    frame = latents[index].unsqueeze(0)  # (1, C, h, w)
    return Image.fromarray(next(codec.decode_frames(frame, model.vae, device=model.execution_device, chunk=1)))


def last_frame_image(latents: torch.Tensor, model: LoadedModel) -> Image.Image:
    """Decode the clip's last latent frame to the RGB image the next segment is conditioned on."""
    return frame_image(latents, model, -1)


def pin_frames(known: torch.Tensor, indices: Sequence[int], seed: int) -> Callable[[Any, int, dict[str, Any]], dict[str, Any]]:
    """A step callback that keeps the frames at ``indices`` on ``known`` (k, C, h, w), re-noised.

    After step i the latents sit at the scheduler's sigma[i + 1]; the pinned frames are set to
    known + sigma[i + 1] * noise (fresh noise each step, from a generator seeded by ``seed``),
    so at the end (sigma 0) they equal ``known`` exactly and the frames around them continue
    them (the replacement idea used for inpainting). ``extend`` pins its overlap this way,
    ``interpolate --refine`` the original frames.

    Args:
        known: (k, C, h, w) latents to pin.
        indices: the k frame positions, in the sampled clip, that they occupy.
        seed: seeds the re-noising.
    """
    import torch

    positions = list(indices)
    if len(positions) != known.shape[0]:
        raise ValueError(f"{known.shape[0]} known frames for {len(positions)} positions")
    noise_generator = torch.Generator("cpu").manual_seed((seed + 2**32) % MAX_SEED)

    def pin(pipeline: Any, step: int, tensors: dict[str, Any]) -> dict[str, Any]:
        latents = tensors["latents"]  # (B, F, C, h, w)
        sigma = float(pipeline.scheduler.sigmas[step + 1])
        noise = torch.randn(known.shape, generator=noise_generator)
        latents[:, positions] = (known + sigma * noise).to(device=latents.device, dtype=latents.dtype)
        return {"latents": latents}

    return pin


def _pin_overlap(known: torch.Tensor, seed: int) -> Callable[[Any, int, dict[str, Any]], dict[str, Any]]:
    """``pin_frames`` for extend's overlap, ``known`` in the first frames (the name tests/test_generate.py uses)."""
    return pin_frames(known, range(known.shape[0]), seed)


def strength_steps(strength: float, steps: int) -> int:
    """How many of ``steps`` denoising steps a strength in [0, 1] runs: round(strength * steps), halves up."""
    if not 0 <= strength <= 1:
        raise UsageError(f"strength {strength}: must be between 0 and 1")
    return math.floor(strength * steps + 0.5)


def strength_sigmas(model: LoadedModel, steps: int, strength: float) -> list[float]:
    """The tail of the model's own ``steps``-step sigma schedule that ``strength`` runs.

    The scheduler makes its usual schedule (sigma_0 > ... > sigma_steps = 0, Karras spacing for
    SVD); strength S starts at index steps - round(S * steps) and keeps the rest, the final 0
    included, so S = 1 is the whole schedule and S = 0 only the final 0.
    """
    scheduler = model.pipeline.scheduler
    scheduler.set_timesteps(steps, device="cpu")
    schedule = [float(sigma) for sigma in scheduler.sigmas]  # steps + 1 values, float32-exact
    return schedule[steps - strength_steps(strength, steps) :]


def initial_noise(model: LoadedModel, size: tuple[int, int], frames: int, seed: int) -> torch.Tensor:
    """The unit noise ``generate`` with this seed starts from: (frames, C, h, w), model dtype.

    The pipeline draws, from ``torch.Generator("cpu").manual_seed(seed)``, first the noise for
    the conditioning image's augmentation (1, 3, H, W), float32, then the latents; this draws the
    same two in the same order and returns the second, before the scheduler's scaling.
    """
    import torch

    width, height = size
    pipeline = model.pipeline
    generator = cpu_generator(seed)
    torch.randn((1, 3, height, width), generator=generator, dtype=torch.float32)
    channels = int(pipeline.unet.config.in_channels) // 2
    scale = int(pipeline.vae_scale_factor)
    shape = (1, frames, channels, height // scale, width // scale)
    return torch.randn(shape, generator=generator, dtype=model.dtype)[0]


def regenerate(
    model: LoadedModel,
    image: Image.Image,
    latents: torch.Tensor,
    *,
    strength: float,
    knobs: Knobs = Knobs(),
    seed: int,
    noise: torch.Tensor | None = None,
    progress: Progress = _no_progress,
    on_step: Callable[[Any, int, dict[str, Any]], dict[str, Any]] | None = None,
) -> torch.Tensor:
    """Re-noise ``latents`` to the level ``strength`` picks and denoise them conditioned on ``image``.

    With n = knobs.steps (the pipeline's default where unset) and k = round(strength * n), the
    clip is noised to sigma_(n-k) of the model's own n-step schedule, x0 + sigma * noise, and the
    last k steps of that schedule are run (SDEdit). So:

    - k = 0 (strength 0, or small enough to round to no step): ``latents`` come back exactly,
      and no model runs.
    - k = n (strength 1, or near enough to round to every step): exactly ``generate``'s
      pipeline call, bit for bit. At the top of the schedule SVD starts from pure noise of
      standard deviation sqrt(sigma_max^2 + 1) (~700); the clip would be 1/700 of that, so
      strength 1 is defined as a fresh generation rather than a version of it shifted by that
      sliver.
    - otherwise: one pipeline call with ``sigmas=`` the tail of the schedule and
      ``latents=`` the noised clip (divided by the scheduler's init_noise_sigma, which the
      pipeline multiplies back).

    The seed enters only through noise: the latent noise (``initial_noise``, the noise
    ``generate`` would start from, unless ``noise`` is given) and the pipeline's augmentation
    noise of the conditioning image.

    Args:
        model: a loaded pipeline.
        image: the conditioning image at the clip's pixel size.
        latents: (F, C, h, w) the clip, x0.
        strength: 0 to 1.
        knobs: sampling knobs; frames must be unset or F.
        seed: seeds the noise.
        noise: (F, C, h, w) unit noise to use instead of the seed's.
        progress: called with the number of steps done (k in all).
        on_step: extra work after each step, as for ``sample``.

    Returns:
        (F, C, h, w) float32 latents on the CPU.
    """
    frames = int(latents.shape[0])
    if knobs.frames not in (None, frames):
        raise UsageError(f"--frames {knobs.frames}: the clip has {frames} frames, and they are what is re-generated; leave --frames out")
    knobs = dataclasses.replace(knobs, frames=frames)
    steps = knobs.resolved(model.pipeline).steps
    count = strength_steps(strength, steps)
    if count == 0:
        return latents.float().clone()
    if count == steps:
        return sample(model, image, knobs=knobs, seed=seed, progress=progress, on_step=on_step, latents=noise)
    sigmas = strength_sigmas(model, steps, strength)
    if noise is None:
        noise = initial_noise(model, image.size, frames, seed)
    noised = latents.float() + sigmas[0] * noise.float()  # (F, C, h, w)
    model.pipeline.scheduler.set_timesteps(sigmas=sigmas, device="cpu")
    start = noised / float(model.pipeline.scheduler.init_noise_sigma)
    return sample(model, image, knobs=dataclasses.replace(knobs, steps=None), seed=seed, progress=progress,
                  on_step=on_step, latents=start, sigmas=sigmas)


def extend(
    model: LoadedModel,
    clip: LatentClip,
    *,
    knobs: Knobs = Knobs(),
    options: ExtendOptions = ExtendOptions(),
    seed: int,
    progress: Progress = _no_progress,
) -> LatentClip:
    """Continue ``clip`` ``options.times`` times; segment j uses seed + j.

    Each new segment is generated conditioned on the last frame so far; its first
    ``options.overlap`` latent frames are pinned to the clip's last ones and are not repeated in
    the result, so the clip grows by (frames - overlap) per segment.
    """
    import torch

    clip.require_space(model.latent_space, what=f"--model {model.model_id}")
    effective = knobs.resolved(model.pipeline)
    options.validate(effective.frames, clip.frames)
    reference = latent_ops.ChannelStats.of(clip.latents)
    latents = clip.latents.float()
    segments = []
    steps_done = 0
    for index in range(options.times):
        segment_seed = seed + index
        known = latents[latents.shape[0] - options.overlap :]
        segment = sample(
            model,
            last_frame_image(latents, model),
            knobs=knobs,
            seed=segment_seed,
            progress=functools.partial(_offset_progress, progress, steps_done),
            on_step=pin_frames(known, range(options.overlap), segment_seed) if options.overlap else None,
        )
        steps_done += effective.steps
        fresh = segment[options.overlap :]  # (frames - overlap, C, h, w)
        measured = latent_ops.drift(fresh, reference)
        if options.drift_correction:
            fresh = latent_ops.match_channel_stats(fresh, reference)
        latents = torch.cat([latents, fresh])
        segments.append(
            {"seed": segment_seed, "frames": int(fresh.shape[0]),
             "drift_before_correction": {"mean": round(measured.mean, 6), "std_ratio": round(measured.std_ratio, 6)}}
        )
    extended = LatentClip(
        latents=latents,
        model=clip.model,
        latent_space=clip.latent_space,
        fps=clip.fps,
        height=clip.height,
        width=clip.width,
        seed=clip.seed,
        history=clip.history,
    )
    return extended.with_step(
        "extend",
        {"times": options.times, "overlap": options.overlap, "drift_correction": options.drift_correction,
         "model": model.model_id, "segments": segments, **asdict(effective)},
    )
