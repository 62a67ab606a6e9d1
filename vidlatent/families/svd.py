"""Stable Video Diffusion: image to video with a per-frame VAE, no text.

diffusers' ``StableVideoDiffusionPipeline``: a UNet (``UNetSpatioTemporalConditionModel``)
conditioned on a CLIP image embedding and the VAE latents of the image, Karras-spaced Euler
sampling, and ``AutoencoderKLTemporalDecoder``, whose latents are one per pixel frame at 1/8 of
the size, multiplied by the scaling factor 0.18215.

Besides the declarations: the per-frame codec (``encode_frames``, ``decode_video``), the sampler
run backwards (``Inversion``: SVD's is the one family that can), and ``tiny-random``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.families.base import (
    IMAGE_REQUIRED, ComfyAssumption, Continuation, DecodeSettings, DecodeWork, Family, ModelSpec, Workload, read_config,
)
from vidlatent.layout import FrameRule, LatentLayout, Normalization
from vidlatent.seeds import cpu_generator
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"
SIZE_MULTIPLE = 64
# SVD's native area, 1024x576; used when a folder's UNet config does not say.
DEFAULT_NATIVE_AREA = 1024 * 576
DEFAULT_FPS = 7.0  # the pipeline's default conditioning frame rate
SCALING_FACTOR = 0.18215  # SVD's VAE
LAYOUT = LatentLayout(family="svd", spatial=8, frame_rule=FrameRule(), normalization=Normalization(factor=SCALING_FACTOR))
TINY = "tiny-random"
TINY_SIZE, TINY_FRAMES = 64, 14  # its native size (UNet sample_size 8 x 8) and frames
SEED = 0  # the tiny model's weights
# Tensors of a decoder call's full-resolution size alive at its peak (decode_work), calibrated on
# the tiny model's measured peak host memory (vidlatent.planning, BENCHMARKS.md section 10).
DECODE_LIVE = 2.5
# The scheduler SVD ships with (stabilityai/stable-video-diffusion-img2vid-xt, scheduler_config.json).
SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}


def native_area(folder: Path) -> int:
    """The pixel area the model was trained at: (UNet sample_size x VAE factor)^2, else SVD's 1024x576."""
    unet, vae = read_config(folder, "unet"), read_config(folder, "vae")
    try:
        return int((unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)) ** 2)
    except (KeyError, TypeError, ValueError):
        return DEFAULT_NATIVE_AREA


def encode_frames(
    frames: Iterable[np.ndarray],
    vae: Any,
    *,
    device: torch.device,
    chunk: int = 8,
    progress: Progress = no_progress,
) -> torch.Tensor:
    """Encode frames to scaled latents, ``chunk`` frames at a time.

    Args:
        frames: (H, W, 3) uint8 RGB frames, all of one size (multiples of 8).
        vae: an AutoencoderKLTemporalDecoder (or any diffusers VAE with a latent_dist).
        device: where to run the encoder.
        chunk: frames per encoder call; bounds the pixel memory.
        progress: called with the number of frames done after each chunk.

    Returns:
        (F, C, H/8, W/8) float32 latents on the CPU, multiplied by the VAE's scaling factor.
        The encoder's mode (its mean) is used, so encoding is deterministic.
    """
    import torch

    from vidlatent.codec import chunks, pixels_to_tensor

    # An fp16 VAE that asks for it encodes in fp32, as the pipeline does (force_upcast).
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    dtype = torch.float32 if upcast else vae.dtype
    if upcast:
        vae.to(dtype=torch.float32)
    parts: list[torch.Tensor] = []
    done = 0
    try:
        with torch.inference_mode():
            for group in chunks(frames, chunk):
                pixels = pixels_to_tensor(group).to(device=device, dtype=dtype)  # (N, 3, H, W)
                latents = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor  # (N, C, h, w)
                parts.append(latents.float().cpu())
                done += len(group)
                progress(done)
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
    if not parts:
        raise ValueError("no frames to encode")
    return torch.cat(parts)


def decode_video(
    latents: torch.Tensor,
    vae: Any,
    *,
    device: torch.device,
    chunk: int = 8,
) -> Iterator[torch.Tensor]:
    """Decode scaled latents to video, ``chunk`` latent frames per temporal-decoder call.

    Args:
        latents: (F, C, h, w) latents, multiplied by the VAE's scaling factor.
        vae: an AutoencoderKLTemporalDecoder.
        device: where to run the decoder.
        chunk: frames per decoder call (the decoder's temporal window); bounds the memory.

    Yields:
        (1, 3, N, H, W) video in [-1, 1], a chunk at a time, in order (``codec.video_to_pixels``
        makes the pipeline's uint8 frames of it).
    """
    import torch

    with torch.inference_mode():
        for start in range(0, latents.shape[0], chunk):
            # Same arithmetic as StableVideoDiffusionPipeline.decode_latents.
            part = 1 / vae.config.scaling_factor * latents[start : start + chunk].to(device=device, dtype=vae.dtype)
            images = vae.decode(part, num_frames=part.shape[0]).sample  # (N, 3, H, W)
            yield images.permute(1, 0, 2, 3)[None]  # (N, 3, H, W) -> (1, 3, N, H, W)


@dataclasses.dataclass
class _Conditioning:
    """What the pipeline feeds its UNet besides the latents, for a batch of one."""

    embeddings: Any  # (1 or 2, 1, D) CLIP image embeddings (uncond first under guidance)
    image_latents: Any  # (1 or 2, F, C, h, w)
    time_ids: Any  # (1 or 2, 3)
    guidance: Any  # (1, F, 1, 1, 1), or None without guidance


def _conditioning(model: Any, image: Image.Image, knobs: Any, frames: int, seed: int) -> _Conditioning:
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


def _denoised(model: Any, latents: torch.Tensor, sigma: float, condition: _Conditioning) -> torch.Tensor:
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


class Inversion:
    """SVD's sampler run backwards: latents to the noise they would come from.

    Sampling integrates the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma down the
    model's sigma schedule with Euler steps (diffusers' EulerDiscreteScheduler). Inversion takes
    the same steps upwards, from sigma 0 to sigma_max, evaluating the derivative at the current
    latents and the next (higher) sigma, the usual DDIM-style approximation of an implicit step.
    The denoiser D is the pipeline's own UNet with the pipeline's own conditioning (CLIP image
    embedding, noise-augmented VAE image latents, added time ids and linear classifier-free
    guidance), built by the pipeline's own methods, so inverting and then sampling with the same
    conditioning lands back near the start (measured in tests and docs/transfer-motion.md).
    """

    def invert(self, model: Any, latents: torch.Tensor, image: Image.Image, *, knobs: Any, seed: int,
               progress: Progress = no_progress) -> torch.Tensor:
        """(F, C, h, w) latents -> the (F, C, h, w) float32 noise at sigma_max, on the CPU.

        ``knobs``: resolved (every value set), frames = F; ``seed`` seeds the conditioning image's
        noise augmentation, as in sampling."""
        import torch

        frames = int(latents.shape[0])
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

    def start(self, model: Any, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """What the pipeline's ``latents=`` takes to sample ``steps`` steps from ``noise`` at sigma_max:
        the pipeline multiplies its latents by init_noise_sigma (sqrt(sigma_max^2 + 1))."""
        scheduler = model.pipeline.scheduler
        scheduler.set_timesteps(steps, device="cpu")
        return noise / float(scheduler.init_noise_sigma)


class StableVideoDiffusion(Family):
    name = "svd"
    title = "Stable Video Diffusion"
    short_title = "SVD"
    pipeline_classes = ("StableVideoDiffusionPipeline",)
    vae_class = "AutoencoderKLTemporalDecoder"
    components = ("vae", "image_encoder", "unet", "scheduler", "feature_extractor")
    default_model = DEFAULT_MODEL
    aliases = {
        "svd": "stabilityai/stable-video-diffusion-img2vid",
        "svd-xt": "stabilityai/stable-video-diffusion-img2vid-xt",
    }
    tiny = {TINY: 1}
    knob_arguments = {
        "frames": "num_frames",
        "steps": "num_inference_steps",
        "fps": "fps",
        "motion": "motion_bucket_id",
        "noise_aug": "noise_aug_strength",
        "min_guidance": "min_guidance_scale",
        "max_guidance": "max_guidance_scale",
    }
    pipeline_defaults = {"frames": None, "steps": 25, "fps": DEFAULT_FPS, "motion": 127, "noise_aug": 0.02,
                         "min_guidance": 1.0, "max_guidance": 3.0}
    default_notes = {"frames": "the model's own (14; SVD-XT 25)"}  # num_frames None: the UNet config's
    comfyui = {
        (4, 4): ComfyAssumption(
            layout=LAYOUT, latent_space=f"AutoencoderKLTemporalDecoder/c4/s{SCALING_FACTOR:g}/fp:", model=DEFAULT_MODEL,
            fps=DEFAULT_FPS, description=f"Stable Video Diffusion latents (SVD's VAE, scaling {SCALING_FACTOR:g})",
        ),
    }
    forward_chunking = "unet"
    denoiser = "unet"
    guidance_knob = "max_guidance"  # guided when max_guidance_scale > 1, both passes in one UNet call
    default_overlap = 2
    minimum_overlap = 0
    # A UNet: no step cache or LoRA loader in diffusers' SVD pipeline, no tiled decode in its
    # temporal VAE; --compile compiles the whole UNet (the diffusers recipe).
    compile_target = "whole"
    inversion = Inversion()
    pipeline_latents = "frames-first"  # (1, F, C, h, w): a UNet over frames
    latents_in_float32 = False

    def spec(self, folder: Path, model_index: dict[str, Any], model_id: str) -> ModelSpec:
        return self._spec(native_area(folder), int(read_config(folder, "unet").get("num_frames", 25)))

    def known_spec(self, hub_id: str) -> ModelSpec | None:
        if hub_id not in self.aliases.values():
            return None
        # Both SVD checkpoints: UNet sample_size 96, VAE factor 8; SVD-XT makes 25 frames, SVD 14.
        return self._spec(DEFAULT_NATIVE_AREA, 25 if hub_id.endswith("-xt") else 14)

    def _spec(self, area: int, frames: int) -> ModelSpec:
        side = round(area**0.5)
        return ModelSpec(
            family=self.name, title=self.title, native_size=(side, side), size_multiple=SIZE_MULTIPLE,
            frame_rule=FrameRule(), fps=DEFAULT_FPS, image=IMAGE_REQUIRED, last_image=False,
            knobs=frozenset(self.knob_arguments), frames=frames,
        )

    def tiny_spec(self, name: str) -> ModelSpec:
        return self._spec(TINY_SIZE * TINY_SIZE, TINY_FRAMES)

    def build_tiny(self, name: str) -> Any:
        return build_tiny_svd()

    def layout(self, vae: Any) -> LatentLayout:
        return LatentLayout(
            family=self.name, spatial=2 ** (len(vae.config.block_out_channels) - 1), frame_rule=FrameRule(),
            normalization=Normalization(factor=float(vae.config.scaling_factor)),
        )

    def encode_frames(self, frames: Iterable[np.ndarray], vae: Any, *, device: torch.device, chunk: int = 8,
                      progress: Progress = no_progress, note: Callable[[str], None] | None = None) -> torch.Tensor:
        return encode_frames(frames, vae, device=device, chunk=chunk, progress=progress)

    def decode(self, latents: torch.Tensor, vae: Any, *, device: torch.device, chunk: int = 8,
               settings: DecodeSettings | None = None, first: int = 0, last: int | None = None) -> Iterator[torch.Tensor]:
        # A per-frame VAE: pixel frame i is latent frame i, decoded in windows of ``chunk`` from ``first``
        # (the temporal decoder's window is the chunk).
        return decode_video(latents[first : None if last is None else last + 1], vae, device=device, chunk=chunk)

    default_decode_chunk_words = "14 or 25, the model's frame count"

    def decode_work(self, vae: Any, size: tuple[int, int], latent_frames: int, chunk: int, tiled: bool) -> DecodeWork:
        """A temporal-decoder call: ``chunk`` frames at full resolution with the decoder's last
        (widest-resolution) channels."""
        width, height = size
        return DecodeWork(frames=min(chunk, latent_frames), pixels=width * height, channels=int(vae.config.block_out_channels[0]), live=DECODE_LIVE)

    def denoiser_workload(self, config: dict[str, Any], latent: tuple[int, int, int]) -> Workload:
        """The UNet's first level with attention: its spatial attention runs one sequence per
        frame over that level's pixels (its temporal attention, one per pixel over the frames, is
        shorter), a GEGLU feed-forward (2 x 4 x its width); the image embedding is one context token."""
        frames, height, width = latent
        blocks = list(config.get("down_block_types") or ["CrossAttnDownBlockSpatioTemporal"])
        level = next((index for index, name in enumerate(blocks) if "CrossAttn" in name), 0)
        channels = int((config.get("block_out_channels") or [320])[level])
        heads = config.get("num_attention_heads", 5)
        heads = int(heads[level] if isinstance(heads, (list, tuple)) else heads)
        layers = sum(2 * int(config.get("layers_per_block", 2)) + 1 for name in blocks if "CrossAttn" in name)
        return Workload(tokens=(height >> level) * (width >> level), sequences=frames, width=channels,
                        feedforward=8 * channels, heads=heads, context=1, layers=layers)

    def default_decode_chunk(self, model: Any) -> int:
        # The pipeline decodes all its frames at once; a VAE-only model has no UNet to ask.
        return int(model.pipeline.unet.config.num_frames) if model.pipeline is not None and model.pipeline.unet is not None else 14

    def resolve_knobs(self, pipeline: Any, values: dict[str, Any]) -> dict[str, Any]:
        # num_frames=None means the UNet's own frame count (14 for SVD, 25 for SVD-XT).
        return {"frames": int(pipeline.unet.config.num_frames)} if values.get("frames") is None else {}

    def continuation(self, model: Any, latents: torch.Tensor, overlap: int) -> Continuation:
        # A per-frame VAE: the last latent frames are pinned as they are, and the last one,
        # decoded on its own, is the conditioning image.
        from PIL import Image

        from vidlatent.codec import decode_frame

        image = Image.fromarray(decode_frame(self, latents, model.vae, device=model.execution_device, index=-1))
        return Continuation(image=image, pinned=latents[latents.shape[0] - overlap :])

    def pipeline_arguments(self, model: Any, *, image: Image.Image | None, last_image: Image.Image | None,
                           size: tuple[int, int], frames: int | None = None) -> dict[str, Any]:
        return {"image": image, "width": size[0], "height": size[1]}

    def initial_noise(self, model: Any, size: tuple[int, int], latent_frames: int, seed: int) -> torch.Tensor:
        """The pipeline draws, from ``torch.Generator("cpu").manual_seed(seed)``, first the noise
        for the conditioning image's augmentation (1, 3, H, W), float32, then the latents; this
        draws the same two in the same order and returns the second, before the scheduler's
        scaling, in the model's dtype."""
        import torch


        width, height = size
        pipeline = model.pipeline
        generator = cpu_generator(seed)
        torch.randn((1, 3, height, width), generator=generator, dtype=torch.float32)
        channels = int(pipeline.unet.config.in_channels) // 2
        scale = int(pipeline.vae_scale_factor)
        shape = (1, latent_frames, channels, height // scale, width // scale)
        return torch.randn(shape, generator=generator, dtype=model.dtype)[0]

    def noised(self, clean: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        return clean + sigma * noise  # EDM-style: x = x0 + sigma * noise

    def regenerate_tail(self, model: Any, call: Callable[..., Any], clean: torch.Tensor,
                        noise: torch.Tensor, steps: int, kept: int) -> Any:
        # The pipeline's own sigmas= and latents= arguments: the tail of the schedule (the final
        # 0 included), and the noised clip divided by the scheduler's init_noise_sigma, which the
        # pipeline multiplies back.
        sigmas = self.schedule(model, steps)[steps - kept :]
        noised = self.noised(clean.float(), noise.float(), sigmas[0])  # (F, C, h, w)
        scheduler = model.pipeline.scheduler
        scheduler.set_timesteps(sigmas=sigmas, device="cpu")
        start = noised / float(scheduler.init_noise_sigma)
        return call(latents=start, steps=None, sigmas=sigmas)




FAMILY = StableVideoDiffusion()


def build_tiny_svd(seed: int = SEED) -> Any:
    """``tiny-random``: the real SVD classes (UNetSpatioTemporalConditionModel, AutoencoderKLTemporalDecoder
    with a real 8x downsampling, CLIPVisionModelWithProjection, CLIPImageProcessor and an
    EulerDiscreteScheduler configured as SVD's) with tiny configs, weights drawn under ``seed``."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        # sample_size * 8 = 64: the native area of this model is 64x64 pixels.
        sample_size=TINY_SIZE // 8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96,  # 3 added time ids x addition_time_embed_dim
        layers_per_block=1,
        cross_attention_dim=32,
        num_attention_heads=(2, 4),
        num_frames=TINY_FRAMES,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(
        # Four blocks, so the latents are 1/8 of the pixels as in SVD's VAE.
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    )
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            # The pipeline resizes the conditioning image to 224x224 for CLIP.
            image_size=224,
            patch_size=32,
        )
    )
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    scheduler = EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG)
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=feature_extractor,
    )
