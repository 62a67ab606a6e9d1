"""Image to video with Stable Video Diffusion, and continuing a clip: the library behind
``generate`` and ``extend``.

Both call diffusers' StableVideoDiffusionPipeline itself with ``output_type="latent"``, so a
``generate`` run equals, bit for bit, a diffusers script that passes the same image, the same
arguments and ``generator=torch.Generator("cpu").manual_seed(seed)``. ``extend`` adds two
things through the pipeline's step callback, not a fork of it: overlap frames pinned to the
previous segment (re-noised to the current sigma after every step), and drift correction.
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
from collections.abc import Callable
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
) -> torch.Tensor:
    """One pipeline call; returns (F, C, h, w) float32 latents on the CPU.

    Args:
        model: a loaded pipeline (all five components).
        image: the conditioning image, already at the output size (multiples of 64).
        knobs: sampling knobs; None fields take the pipeline's defaults.
        seed: seeds ``torch.Generator("cpu")``.
        progress: called with the number of steps done.
        on_step: extra work after each step (pipeline, step, tensors) -> tensors to replace.
    """
    width, height = image.size
    result = model.pipeline(
        image,
        height=height,
        width=width,
        generator=cpu_generator(seed),
        output_type="latent",
        callback_on_step_end=_step_reporter(progress, on_step),
        **knobs.pipeline_kwargs(),
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


def last_frame_image(latents: torch.Tensor, model: LoadedModel) -> Image.Image:
    """Decode the clip's last latent frame to the RGB image the next segment is conditioned on."""
    from PIL import Image

    frame = next(codec.decode_frames(latents[-1:], model.vae, device=model.execution_device, chunk=1))
    return Image.fromarray(frame)


def _pin_overlap(known: torch.Tensor, seed: int) -> Callable[[Any, int, dict[str, Any]], dict[str, Any]]:
    """A step callback that keeps the first frames on ``known`` (k, C, h, w), re-noised.

    After step i the latents sit at the scheduler's sigma[i + 1]; the pinned frames are set to
    known + sigma[i + 1] * noise, so at the end (sigma 0) they equal ``known`` exactly and the
    seam is continuous (the replacement idea used for inpainting).
    """
    import torch

    noise_generator = torch.Generator("cpu").manual_seed((seed + 2**32) % MAX_SEED)
    count = known.shape[0]

    def pin(pipeline: Any, step: int, tensors: dict[str, Any]) -> dict[str, Any]:
        latents = tensors["latents"]  # (B, F, C, h, w)
        sigma = float(pipeline.scheduler.sigmas[step + 1])
        noise = torch.randn(known.shape, generator=noise_generator)
        latents[:, :count] = (known + sigma * noise).to(device=latents.device, dtype=latents.dtype)
        return {"latents": latents}

    return pin


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
        step_base = steps_done

        def segment_progress(done: int) -> None:
            progress(step_base + done)

        segment = sample(
            model,
            last_frame_image(latents, model),
            knobs=knobs,
            seed=segment_seed,
            progress=segment_progress,
            on_step=_pin_overlap(known, segment_seed) if options.overlap else None,
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
