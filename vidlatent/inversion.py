"""Running SVD's sampler backwards: latents to the noise they would come from.

Sampling integrates the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma down
the model's sigma schedule with Euler steps (diffusers' EulerDiscreteScheduler). Inversion
takes the same steps upwards, from sigma 0 to sigma_max, evaluating the derivative at the
current latents and the next (higher) sigma, the usual DDIM-style approximation of an
implicit step. The denoiser D is the pipeline's own UNet with the pipeline's own
conditioning (CLIP image embedding, noise-augmented VAE image latents, added time ids and
linear classifier-free guidance), built by the pipeline's own methods, so inverting and then
sampling with the same conditioning lands back near the start; how near is measured in the
tests and docs/transfer-motion.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vidlatent.generation import Knobs, cpu_generator, sample
from vidlatent.models import LoadedModel

if TYPE_CHECKING:
    import torch
    from PIL import Image

Progress = Callable[[int], None]


def _no_progress(_: int) -> None:
    pass


@dataclasses.dataclass
class _Conditioning:
    """What the pipeline feeds its UNet besides the latents, for a batch of one."""

    embeddings: Any  # (1 or 2, 1, D) CLIP image embeddings (uncond first under guidance)
    image_latents: Any  # (1 or 2, F, C, h, w)
    time_ids: Any  # (1 or 2, 3)
    guidance: Any  # (1, F, 1, 1, 1), or None without guidance


def check_invertible(model: LoadedModel) -> None:
    """Inversion is written for SVD's sampler (Euler on its EDM sigma schedule, v-prediction)."""
    from vidlatent.errors import UsageError

    if model.family.name != "svd":
        raise UsageError(f"--method inversion: implemented for Stable Video Diffusion only, not {model.spec.title}; "
                         "use --method residual (with --refine S)")


def _conditioning(model: LoadedModel, image: Image.Image, knobs: Knobs, frames: int, seed: int) -> _Conditioning:
    # The same calls, in the same order and with the same random draw, as
    # StableVideoDiffusionPipeline.__call__ makes before its denoising loop.
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    pipeline, device = model.pipeline, model.execution_device
    guided = knobs.max_guidance > 1
    width, height = image.size
    embeddings = pipeline._encode_image(image, device, 1, guided)
    pixels = pipeline.video_processor.preprocess(image, height=height, width=width).to(device)
    noise = randn_tensor(pixels.shape, generator=cpu_generator(seed), device=device, dtype=pixels.dtype)
    pixels = pixels + knobs.noise_aug * noise
    upcast = pipeline.vae.dtype == torch.float16 and pipeline.vae.config.force_upcast
    if upcast:
        pipeline.vae.to(dtype=torch.float32)
    image_latents = pipeline._encode_vae_image(pixels, device, 1, guided).to(embeddings.dtype)
    if upcast:
        pipeline.vae.to(dtype=torch.float16)
    image_latents = image_latents.unsqueeze(1).repeat(1, frames, 1, 1, 1)
    time_ids = pipeline._get_add_time_ids(knobs.fps - 1, knobs.motion, knobs.noise_aug, embeddings.dtype, 1, 1, guided)
    guidance = None
    if guided:
        guidance = torch.linspace(knobs.min_guidance, knobs.max_guidance, frames).to(device, embeddings.dtype)
        guidance = guidance[None, :, None, None, None]
    return _Conditioning(embeddings, image_latents, time_ids.to(device), guidance)


def _denoised(model: LoadedModel, latents: torch.Tensor, sigma: float, condition: _Conditioning) -> torch.Tensor:
    """D(x, sigma): the pipeline's UNet's estimate of the clean latents, (1, F, C, h, w)."""
    import torch

    pipeline = model.pipeline
    guided = condition.guidance is not None
    batch = torch.cat([latents] * 2) if guided else latents
    batch = batch / math.sqrt(sigma**2 + 1)  # EulerDiscreteScheduler.scale_model_input
    batch = torch.cat([batch, condition.image_latents], dim=2)
    timestep = torch.tensor(0.25 * math.log(sigma), device=latents.device)  # SVD's continuous timestep
    prediction = pipeline.unet(
        batch, timestep, encoder_hidden_states=condition.embeddings, added_time_ids=condition.time_ids, return_dict=False
    )[0]
    if guided:
        unconditional, conditional = prediction.chunk(2)
        prediction = unconditional + condition.guidance * (conditional - unconditional)
    # v-prediction to the clean sample, as EulerDiscreteScheduler.step computes it.
    return prediction * (-sigma / math.sqrt(sigma**2 + 1)) + latents / (sigma**2 + 1)


def invert(
    model: LoadedModel,
    latents: torch.Tensor,
    image: Image.Image,
    *,
    knobs: Knobs = Knobs(),
    seed: int,
    progress: Progress = _no_progress,
) -> torch.Tensor:
    """The noise, at the top of the model's sigma schedule, that sampling would turn into ``latents``.

    Args:
        model: a loaded pipeline.
        latents: (F, C, h, w) the clip to invert.
        image: the conditioning image at the clip's pixel size (usually its own first frame).
        knobs: the knobs to condition on (frames must be unset or F); unset ones take the
            pipeline's defaults.
        seed: seeds the conditioning image's noise augmentation, as in sampling.
        progress: called with the number of steps done.

    Returns:
        (F, C, h, w) float32 latents at sigma_max, on the CPU: hand them to ``sample_from``
        with the same steps to sample.
    """
    import torch

    frames = int(latents.shape[0])
    knobs = dataclasses.replace(knobs, frames=frames).resolved(model.pipeline)
    scheduler = model.pipeline.scheduler
    scheduler.set_timesteps(knobs.steps, device="cpu")
    ascending = [float(sigma) for sigma in scheduler.sigmas.flip(0)]  # 0, sigma_min, ..., sigma_max
    with torch.inference_mode():
        condition = _conditioning(model, image, knobs, frames, seed)
        x = latents[None].to(device=model.execution_device, dtype=condition.embeddings.dtype)  # (1, F, C, h, w)
        for step, (current, target) in enumerate(zip(ascending[:-1], ascending[1:], strict=True)):
            level = current if current > 0 else target  # the derivative at sigma 0 is the one at sigma_min
            derivative = (x - _denoised(model, x, level, condition)) / level
            x = x + (target - current) * derivative
            progress(step + 1)
    return x[0].float().cpu()


def sample_from(
    model: LoadedModel,
    noise: torch.Tensor,
    image: Image.Image,
    *,
    knobs: Knobs = Knobs(),
    seed: int,
    progress: Progress = _no_progress,
) -> torch.Tensor:
    """Sample from ``noise`` (at sigma_max, as ``invert`` returns it) with the pipeline itself."""
    frames = int(noise.shape[0])
    knobs = dataclasses.replace(knobs, frames=frames)
    scheduler = model.pipeline.scheduler
    scheduler.set_timesteps(knobs.resolved(model.pipeline).steps, device="cpu")
    # The pipeline multiplies the latents it is given by init_noise_sigma (sqrt(sigma_max^2 + 1)).
    start = noise / float(scheduler.init_noise_sigma)
    return sample(model, image, knobs=knobs, seed=seed, progress=progress, latents=start)
