"""Spatial upscaling of LTX-Video clips: the library behind ``generate --upscale`` and ``upscale``.

LTX-Video's multi-scale workflow, as diffusers' LTX-Video documentation gives it: generate at half
the size, upsample the latents 2x with ``LTXLatentUpsamplePipeline`` (the latent upsampler of
``Lightricks/ltxv-spatial-upscaler-0.9.7``), refine them with a short pass of the same
``LTXConditionPipeline`` started from the upsampled latents (``latents=`` and
``denoise_strength``: 0.4 of 10 steps for the dev checkpoints; the documented timesteps for the
distilled ones), then decode. The latents equal those diffusers calls bit for bit (tested on
tiny models).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from vidlatent.families.base import Family, ModelSpec
    from vidlatent.knobs import Knobs
    from vidlatent.latentfile import LatentClip
    from vidlatent.models import LoadedModel

Progress = Callable[[int], None]
DEFAULT_UPSCALER = "Lightricks/ltxv-spatial-upscaler-0.9.7"
TINY_UPSCALER = "tiny-random-ltx-upscaler"
UPSCALER_ALIASES = {"ltxv-spatial-upscaler-0.9.7": DEFAULT_UPSCALER}
FACTOR = 2
SEED = 0


def _no_progress(_: int) -> None:
    pass


@dataclass
class Upsampler:
    """A loaded latent upsampler: its name (as recorded) and its ``LTXLatentUpsamplePipeline``."""

    name: str
    pipeline: Any


def check_model(family: Family, flag: str = "--upscale") -> None:
    """Refuse, before loading, a model without a latent upsampler."""
    if family.name != "ltx":
        raise UsageError(f"{flag}: {family.title} has no latent upsampler; LTX-Video has (--model ltx-0.9.7-dev, …)")


def default_upscaler(model_id: str) -> str:
    """The upsampler that goes with a model: the tiny one for tiny-random-ltx, else Lightricks' 0.9.7."""
    from vidlatent.families.ltx import TINY

    return TINY_UPSCALER if model_id == TINY else DEFAULT_UPSCALER


def choose_upscaler(name: str | None, model_id: str) -> str:
    """The upsampler ``--upscaler`` names, or the model's own (``default_upscaler``), once its folder
    is found: a missing one fails before the model loads."""
    name = name or default_upscaler(model_id)
    upscaler_folder(name)
    return name


def low_size(size: tuple[int, int], spec: ModelSpec) -> tuple[int, int]:
    """The size generated before a 2x upscale to ``size``; both must fit the model's size multiple."""
    width, height = size
    multiple = FACTOR * spec.size_multiple
    if width % multiple or height % multiple:
        near = f"{max(multiple, round(width / multiple) * multiple)}x{max(multiple, round(height / multiple) * multiple)}"
        raise UsageError(f"--size {width}x{height}: --upscale generates at half the size and upsamples 2x, so the sides "
                         f"must be multiples of {multiple}; use {near}")
    return width // FACTOR, height // FACTOR


def final_size(spec: ModelSpec, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """The size --upscale makes without --size: as generate's default for an image of
    ``image_size`` (width, height), in multiples of twice the model's size multiple (the model's
    native size for text alone, None)."""
    from vidlatent import media

    if image_size is None:
        return spec.native_size
    return media.fit_size(*image_size, spec.native_area, FACTOR * spec.size_multiple)


def upscaler_folder(name: str) -> Path:
    """The diffusers folder of an upsampler: the tiny one (built on first use), a local folder or a hub id."""
    from vidlatent import tiny
    from vidlatent.models import model_folder

    if name == TINY_UPSCALER:
        return tiny.tiny_random_path(name, build_tiny_upsampler)
    return model_folder(UPSCALER_ALIASES.get(name, name), ("latent_upsampler",))


def load_upsampler(name: str, model: LoadedModel) -> Upsampler:
    """Load the latent upsampler ``name`` next to ``model``: its VAE, device and dtype."""
    from vidlatent.models import _load_component, _quiet_libraries

    folder = upscaler_folder(name)
    _quiet_libraries()
    from diffusers import LTXLatentUpsamplePipeline

    pipeline = _load_component(
        lambda: LTXLatentUpsamplePipeline.from_pretrained(folder, vae=model.vae, torch_dtype=model.dtype, use_safetensors=True),
        name,
    )
    pipeline.latent_upsampler.to(model.execution_device)
    pipeline.set_progress_bar_config(disable=True)
    return Upsampler(name=UPSCALER_ALIASES.get(name, name), pipeline=pipeline)


def upsample(upsampler: Upsampler, latents: torch.Tensor, *, device: torch.device, adain_factor: float = 0.0,
             tone_map_compression_ratio: float = 0.0) -> torch.Tensor:
    """(T, C, h, w) normalised latents -> (T, C, 2h, 2w), through ``LTXLatentUpsamplePipeline``."""
    video = latents.permute(1, 0, 2, 3)[None].to(device)  # (1, C, T, h, w)
    output = upsampler.pipeline(latents=video, adain_factor=adain_factor, tone_map_compression_ratio=tone_map_compression_ratio,
                                output_type="latent")
    return output.frames[0].permute(1, 0, 2, 3).float().cpu()


def upscale(model: LoadedModel, upsampler: Upsampler, clip: LatentClip, *, knobs: Knobs, seed: int,
            image: Image.Image | None = None, refine: bool = True, progress: Progress = _no_progress) -> LatentClip:
    """``clip`` at twice its size: upsampled, then (``refine``) refined by the documented short pass.

    Args:
        model: the clip's LTX model, loaded for sampling.
        upsampler: a latent upsampler (``load_upsampler``).
        clip: an LTX clip of ``model``'s latent space.
        knobs: sampling knobs of the refining pass (prompts: the clip's own where not given);
            its schedule is the checkpoint's documented one.
        seed: seeds the refining pass.
        image: the image to condition the refining pass on at frame 0 (resized to the new size);
            None: the prompt alone.
        refine: run the refining pass (else the upsampled latents as they are).
        progress: called with the refining steps done.
    """
    from vidlatent import generation, media

    check_model(model.family)
    clip.require_space(model.latent_space, what=f"--model {model.model_id}")
    knobs = _clip_knobs(generation.knobs_for_clip(model, generation.with_clip_prompts(knobs, clip), clip.frames), clip)
    filters = model.family.upsampler_filters()  # type: ignore[attr-defined]
    latents = upsample(upsampler, clip.latents.float(), device=model.execution_device, **filters)  # (T, C, 2h, 2w)
    size = (clip.width * FACTOR, clip.height * FACTOR)
    record: dict[str, Any] = {"upscaler": upsampler.name, "factor": FACTOR, **filters, "refine": refine}
    if refine:
        steps, arguments = model.family.refine_recipe()  # type: ignore[attr-defined]
        refined = dataclasses.replace(knobs, steps=steps)
        conditioning = media.resize_image(image, size) if image is not None else None
        latents = generation.sample(model, conditioning, knobs=refined, seed=seed, progress=progress, latents=latents,
                                    size=size, arguments=arguments)
        resolved = refined.resolved(model.pipeline, model.family).record()
        if "timesteps" in arguments:  # the pass runs the recipe's timesteps, not the checkpoint's default schedule
            resolved.pop("steps", None)
        record |= {"seed": seed, "model": model.model_id, "image": image is not None, **resolved, **arguments}
    upscaled = dataclasses.replace(clip, latents=latents, width=size[0], height=size[1], seed=seed if refine else clip.seed)
    return upscaled.with_step("upscale", record)


def refine_steps(model: LoadedModel) -> int:
    """The denoising steps the refining pass runs (for progress bars)."""
    steps, arguments = model.family.refine_recipe()  # type: ignore[attr-defined]
    count = len(arguments["timesteps"]) if "timesteps" in arguments else steps
    return int(count * arguments["denoise_strength"])


def _clip_knobs(knobs: Knobs, clip: LatentClip) -> Knobs:
    """The frame rate the clip was made at (LTX is conditioned on it), where --fps is not given."""
    if knobs.fps is not None:
        return knobs
    for step in reversed(clip.history):
        fps = step.get("arguments", {}).get("fps")
        if step.get("command") in ("generate", "extend") and isinstance(fps, int):
            return dataclasses.replace(knobs, fps=fps)
    return dataclasses.replace(knobs, fps=max(1, round(clip.fps)))


def build_tiny_upsampler() -> Any:
    """A tiny ``LTXLatentUpsamplePipeline`` (no VAE: it takes the model's) with a latent upsampler of
    the real class, 128 channels, ``mid_channels`` 32 (its GroupNorms have 32 groups), weights drawn
    under SEED."""
    import torch
    from diffusers import LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    torch.manual_seed(SEED)
    upsampler = LTXLatentUpsamplerModel(in_channels=128, mid_channels=32, num_blocks_per_stage=1, dims=3, spatial_upsample=True,
                                        temporal_upsample=False)
    return LTXLatentUpsamplePipeline(vae=None, latent_upsampler=upsampler)
