"""One clip's motion on another image's appearance: the library behind ``transfer-motion``.

Two methods:

- ``residual`` (the default): the motion clip's frames minus its first frame are added to the
  new appearance (``latent_ops.apply_motion``), then optionally refined: re-noised to strength
  S and denoised by the model conditioned on the appearance (``generation.regenerate``), to
  turn the sum into a plausible video. Without refinement it needs no model at all.
- ``inversion``: the motion clip's latents are run back to noise with the model's own ODE,
  conditioned on the clip's own first frame and recorded knobs (``inversion.invert``), and
  that noise is sampled conditioned on the appearance (``inversion.sample_from``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent import latent_ops
from vidlatent.errors import UsageError
from vidlatent.generation import Knobs, acceleration_record, frame_image, knobs_for_clip, regenerate
from vidlatent.inversion import check_invertible, invert, sample_from
from vidlatent.latentfile import LatentClip
from vidlatent.models import LoadedModel
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from vidlatent.families.base import ModelSpec

METHODS = ("residual", "inversion")
DEFAULT_METHOD = "residual"



@dataclass(frozen=True)
class TransferOptions:
    """How to transfer motion.

    Args:
        method: ``residual`` or ``inversion``.
        refine: residual only: strength (0-1) of the denoising that follows the sum; 0 = none.
        match_stats: residual only: scale the motion per channel to the appearance's contrast.
    """

    method: str = DEFAULT_METHOD
    refine: float = 0.0
    match_stats: bool = False

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--method {self.method!r}: expected one of {', '.join(METHODS)}")
        if not 0 <= self.refine <= 1:
            raise UsageError(f"--refine {self.refine}: must be between 0 and 1")
        if self.method == "inversion" and (self.refine or self.match_stats):
            raise UsageError("--refine and --match-stats belong to --method residual; inversion samples the whole clip anew")

    @property
    def needs_model(self) -> bool:
        return self.method == "inversion" or self.refine > 0


def recorded_knobs(clip: LatentClip, spec: ModelSpec) -> Knobs:
    """The knobs of ``spec``'s model that the clip was generated with, from its history (frames and
    steps left out: the clip's own frames are inverted, with the steps asked for)."""
    names = sorted(spec.knobs - {"frames", "steps"})
    return Knobs(**clip.recorded(*names, commands=("generate",)))


def merged_knobs(given: Knobs, recorded: Knobs) -> Knobs:
    """``given`` where set, else ``recorded``."""
    values = {field.name: getattr(given, field.name) for field in dataclasses.fields(Knobs)}
    return Knobs(**{name: value if value is not None else getattr(recorded, name) for name, value in values.items()})


def transfer(
    motion: LatentClip,
    appearance: torch.Tensor,
    *,
    options: TransferOptions = TransferOptions(),
    appearance_image: Image.Image | None = None,
    model: LoadedModel | None = None,
    knobs: Knobs = Knobs(),
    seed: int = 0,
    appearance_source: str = "",
    progress: Progress = no_progress,
) -> LatentClip:
    """Carry ``motion``'s motion onto ``appearance``.

    Args:
        motion: the clip whose motion to transfer.
        appearance: (C, h, w) latents of the new first frame, in the clip's latent space and size.
        options: method and its settings.
        appearance_image: the appearance as an RGB image at the clip's size, to condition the
            model on (decoded from ``appearance`` when None).
        model: a loaded pipeline; needed for inversion and for refinement.
        knobs: sampling knobs; for inversion, unset ones take the clip's recorded ones.
        seed: seeds the model's noise (the conditioning image's augmentation and, for
            refinement, the re-noising).
        appearance_source: recorded in the history.
    """
    options.validate()
    if options.needs_model and model is None:
        raise UsageError(f"--method {options.method} with --refine {options.refine} needs a model")
    if model is not None:
        motion.require_space(model.latent_space, what=f"--model {model.model_id}")
    if tuple(appearance.shape) != tuple(motion.latents.shape[1:]):
        raise UsageError(
            f"the appearance's latents are {tuple(appearance.shape)} but the motion clip's frames are "
            f"{tuple(motion.latents.shape[1:])}; give an appearance of the clip's size ({motion.width}x{motion.height})"
        )
    details: dict[str, Any] = {"method": options.method, "appearance": appearance_source, "seed": seed}
    if options.method == "residual":
        latents = latent_ops.apply_motion(appearance, motion.latents, match_stats=options.match_stats)
        details |= {"refine": options.refine, "match_stats": options.match_stats}
        if options.refine > 0:
            image = appearance_image or frame_image(latents, model, 0)
            knobs = knobs_for_clip(model, knobs, motion.frames)
            latents = regenerate(model, image, latents, strength=options.refine, knobs=knobs, seed=seed, progress=progress)
            details["knobs"] = knobs.resolved(model.pipeline, model.family).record()
    else:
        check_invertible(model.family, model.spec)
        knobs = knobs_for_clip(model, merged_knobs(knobs, recorded_knobs(motion, model.spec)), motion.frames)
        source_seed = motion.seed if motion.seed is not None else seed
        steps = knobs.resolved(model.pipeline, model.family).steps
        own_first_frame = frame_image(motion.latents, model, 0)
        noise = invert(model, motion.latents, own_first_frame, knobs=knobs, seed=source_seed, progress=progress)
        image = appearance_image or frame_image(appearance[None], model, 0)
        latents = sample_from(model, noise, image, knobs=knobs, seed=seed, progress=lambda done: progress(steps + done))
        details |= {"inversion_seed": source_seed, "knobs": knobs.resolved(model.pipeline, model.family).record()}
    if options.needs_model and model is not None:
        details |= acceleration_record(model)
    result = dataclasses.replace(motion, latents=latents, seed=seed if options.needs_model else motion.seed)
    return result.with_step("transfer-motion", details)
