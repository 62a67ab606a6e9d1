"""Spatial upscaling by a family's latent upsampler: the library behind ``generate --upscale`` and ``upscale``.

The multi-scale workflow: generate at 1/factor of the size, upsample the latents with the family's
latent upsampler (``Family.upsampler``: LTX-Video's ``LTXLatentUpsamplePipeline`` and LTX-2's
``LTX2LatentUpsamplePipeline``, 2x; None for the families that have none, refused here in one line),
refine them with a short pass of the same pipeline started from the upsampled latents (the
upsampler's documented recipe; LTX-2's refines the sound latents with the picture), then decode.
The latents equal those diffusers calls bit for bit (tested on tiny models).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent import families
from vidlatent.errors import UsageError
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    from PIL import Image

    from vidlatent.families.base import Family, ModelSpec
    from vidlatent.knobs import Knobs
    from vidlatent.latentfile import LatentClip
    from vidlatent.models import LoadedModel


@dataclass
class Upsampler:
    """A loaded latent upsampler: its name (as recorded), its pipeline, and what its family declares
    of it (``Family.upsampler``: factor, recipe, how to call it)."""

    name: str
    pipeline: Any
    declared: Any


def check_model(family: Family, flag: str = "--upscale") -> None:
    """Refuse, before loading, a model whose family declares no latent upsampler."""
    if family.upsampler is None:
        able = " or ".join(each.title for each in families.all_families() if each.upsampler is not None)
        models = families.able_models_in_words(lambda other: families.family(other.family).upsampler is not None)
        raise UsageError(f"{flag}: {family.title} has no latent upsampler; {able} has one: {models}")


@dataclass(frozen=True)
class UpscalePlan:
    """``--upscale``, checked before the model loads: the upsampler (its folder found) and its factor."""

    upscaler: str
    factor: int

    def final_size(self, spec: ModelSpec, explicit: tuple[int, int] | None, image_size: tuple[int, int] | None) -> tuple[int, int]:
        """The size the upscaled video has: ``explicit`` (--size), else as generate's default for an
        image of ``image_size`` (width, height), in multiples of ``factor`` times the model's size
        multiple (the model's native size for text alone, None)."""
        from vidlatent import media

        if explicit is not None:
            return explicit
        if image_size is None:
            return spec.native_size
        return media.fit_size(*image_size, spec.native_area, self.factor * spec.size_multiple)

    def sampled_size(self, spec: ModelSpec, final: tuple[int, int]) -> tuple[int, int]:
        """The size sampled before the upsampler makes ``final`` of it; both must fit the model's size multiple."""
        width, height = final
        multiple = self.factor * spec.size_multiple
        if width % multiple or height % multiple:
            near = f"{max(multiple, round(width / multiple) * multiple)}x{max(multiple, round(height / multiple) * multiple)}"
            raise UsageError(f"--size {width}x{height}: --upscale generates at 1/{self.factor} of the size and upsamples "
                             f"{self.factor}x, so the sides must be multiples of {multiple}; use {near}")
        return width // self.factor, height // self.factor


def plan_upscale(name: str | None, family: Family, model_id: str) -> UpscalePlan:
    """The upsampler ``--upscaler`` names, or the model's own, once its folder is found: a model
    without one, or a missing folder, fails before the model loads."""
    check_model(family)
    name = name or family.upsampler.default_for(model_id)
    upscaler_folder(name, family)
    return UpscalePlan(upscaler=name, factor=family.upsampler.factor)


def upscaler_folder(name: str, family: Family) -> Path:
    """The diffusers folder of one of ``family``'s upsamplers: a tiny one (built on first use), a
    local folder (a pipeline folder, or the upsampler model's own: its config.json and weights),
    an alias or a hub id."""
    from vidlatent.models import model_folder
    from vidlatent.tiny import tiny_random_path

    declared = family.upsampler
    if name in declared.tiny:
        return tiny_random_path(name)
    path = Path(name).expanduser()
    bare = path.is_dir() and not (path / "model_index.json").is_file()  # not a pipeline folder: its family says
    folder = path if bare else model_folder(declared.aliases.get(name, name), (declared.component,))
    declared.check_folder(folder, name)
    return folder


def load_upsampler(name: str, model: LoadedModel) -> Upsampler:
    """Load the latent upsampler ``name`` next to ``model``: its VAE, device and dtype."""
    from vidlatent.models import load_component
    from vidlatent.tiny import quiet_libraries

    declared = model.family.upsampler
    folder = upscaler_folder(name, model.family)
    quiet_libraries()
    pipeline = load_component(lambda: declared.load(folder, model.vae, model.dtype), name)
    getattr(pipeline, declared.component).to(model.execution_device)
    pipeline.set_progress_bar_config(disable=True)
    return Upsampler(name=declared.aliases.get(name, name), pipeline=pipeline, declared=declared)


def upscale(model: LoadedModel, upsampler: Upsampler, clip: LatentClip, *, knobs: Knobs, seed: int,
            image: Image.Image | None = None, refine: bool = True, progress: Progress = no_progress) -> LatentClip:
    """``clip`` at ``factor`` times its size: upsampled, then (``refine``) refined by the documented short pass.

    Args:
        model: the clip's model, loaded for sampling.
        upsampler: a latent upsampler of its family (``load_upsampler``).
        clip: a clip of ``model``'s latent space.
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
    declared = upsampler.declared
    latents = declared.upsample(upsampler.pipeline, clip.latents.float(), device=model.execution_device)  # (T, C, 2h, 2w)
    size = (clip.width * declared.factor, clip.height * declared.factor)
    record: dict[str, Any] = {"upscaler": upsampler.name, "factor": declared.factor, **declared.filters(), "refine": refine}
    if refine:
        steps, arguments = declared.refine_recipe()
        refined = dataclasses.replace(knobs, steps=steps, **declared.knob_changes)
        conditioning = media.resize_image(image, size) if image is not None else None
        sampled = generation.sample_streams(model, conditioning, knobs=refined, seed=seed, progress=progress, latents=latents,
                                            size=size, arguments={**arguments, **declared.refine_arguments(clip.audio)})
        latents, audio = sampled.latents, sampled.audio if sampled.audio is not None else clip.audio
        resolved = refined.resolved(model.pipeline, model.family).record()
        if "timesteps" in arguments:  # the pass runs the recipe's timesteps, not the checkpoint's default schedule
            resolved.pop("steps", None)
        record |= {"seed": seed, "model": model.model_id, "image": image is not None, **resolved, **arguments}
    else:
        audio = clip.audio  # the same duration: the sound's latents stay as they are
    upscaled = dataclasses.replace(clip, latents=latents, audio=audio, width=size[0], height=size[1],
                                   seed=seed if refine else clip.seed)
    return upscaled.with_step("upscale", record)


def refine_steps(model: LoadedModel) -> int:
    """The denoising steps the refining pass runs (for progress bars)."""
    steps, arguments = model.family.upsampler.refine_recipe()
    count = len(arguments["timesteps"]) if "timesteps" in arguments else steps
    return int(count * arguments.get("denoise_strength", 1.0))


def _clip_knobs(knobs: Knobs, clip: LatentClip) -> Knobs:
    """The frame rate the clip was made at (LTX is conditioned on it), where --fps is not given."""
    if knobs.fps is not None:
        return knobs
    fps = clip.recorded("fps").get("fps")
    return dataclasses.replace(knobs, fps=fps if isinstance(fps, int) else max(1, round(clip.fps)))
