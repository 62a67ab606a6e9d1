"""Running a model's sampler backwards: latents to the noise they would come from.

A family that can declares an ``inversion`` object (``Family.inversion``; Stable Video
Diffusion's, in ``vidlatent.families.svd``, runs its Euler ODE upwards); one that cannot
declares None and is refused here in one line, before it loads (this module imports no torch).
It resolves the knobs, then hands the noise back to the model's own pipeline to sample from.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from vidlatent import families
from vidlatent.errors import UsageError
from vidlatent.knobs import Knobs
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from vidlatent.families.base import Family, ModelSpec
    from vidlatent.models import LoadedModel


def check_invertible(family: Family, spec: ModelSpec) -> None:
    """Refuse, in one line, a model whose family declares no inversion (before it loads)."""
    if family.inversion is None:
        able = " and ".join(each.title for each in families.all_families() if each.inversion is not None)
        models = families.able_models_in_words(lambda other: families.family(other.family).inversion is not None)
        raise UsageError(f"--method inversion: implemented for {able} only, not {spec.title}; "
                         f"use --method residual (with --refine S), or a model that inverts: {models}")


def invert(
    model: LoadedModel,
    latents: torch.Tensor,
    image: Image.Image,
    *,
    knobs: Knobs = Knobs(),
    seed: int,
    progress: Progress = no_progress,
) -> torch.Tensor:
    """The noise, at the top of the model's noise schedule, that sampling would turn into ``latents``.

    Args:
        model: a loaded pipeline of a family that can invert.
        latents: (F, C, h, w) the clip to invert.
        image: the conditioning image at the clip's pixel size (usually its own first frame).
        knobs: the knobs to condition on (frames must be unset or F); unset ones take the
            pipeline's defaults.
        seed: seeds the conditioning's noise, as in sampling.
        progress: called with the number of steps done.

    Returns:
        (F, C, h, w) float32 latents at the top of the schedule, on the CPU: hand them to
        ``sample_from`` with the same steps to sample.
    """
    check_invertible(model.family, model.spec)
    resolved = dataclasses.replace(knobs, frames=int(latents.shape[0])).resolved(model.pipeline, model.family)
    return model.family.inversion.invert(model, latents, image, knobs=resolved, seed=seed, progress=progress)


def sample_from(
    model: LoadedModel,
    noise: torch.Tensor,
    image: Image.Image,
    *,
    knobs: Knobs = Knobs(),
    seed: int,
    progress: Progress = no_progress,
) -> torch.Tensor:
    """Sample from ``noise`` (as ``invert`` returns it) with the pipeline itself."""
    from vidlatent.generation import sample  # torch: not needed to check a model before it loads

    check_invertible(model.family, model.spec)
    knobs = dataclasses.replace(knobs, frames=int(noise.shape[0]))
    start = model.family.inversion.start(model, noise, knobs.resolved(model.pipeline, model.family).steps)
    return sample(model, image, knobs=knobs, seed=seed, progress=progress, latents=start)
