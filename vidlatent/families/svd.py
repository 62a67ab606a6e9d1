"""Stable Video Diffusion: image to video with a per-frame VAE, no text.

diffusers' ``StableVideoDiffusionPipeline``: a UNet (``UNetSpatioTemporalConditionModel``)
conditioned on a CLIP image embedding and the VAE latents of the image, Karras-spaced Euler
sampling, and ``AutoencoderKLTemporalDecoder``, whose latents are one per pixel frame at 1/8 of
the size, multiplied by the scaling factor 0.18215.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.families.base import (
    IMAGE_REQUIRED, ComfyAssumption, DecodeSettings, Family, ModelSpec, Progress, _no_progress, read_config,
)
from vidlatent.latentfile import SVD_LAYOUT, SVD_SCALING_FACTOR, FrameRule, LatentLayout, Normalization

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"
SIZE_MULTIPLE = 64
# SVD's native area, 1024x576; used when a folder's UNet config does not say.
DEFAULT_NATIVE_AREA = 1024 * 576
DEFAULT_FPS = 7.0  # the pipeline's default conditioning frame rate


def native_area(folder: Path) -> int:
    """The pixel area the model was trained at: (UNet sample_size x VAE factor)^2, else SVD's 1024x576."""
    unet, vae = read_config(folder, "unet"), read_config(folder, "vae")
    try:
        return int((unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)) ** 2)
    except (KeyError, TypeError, ValueError):
        return DEFAULT_NATIVE_AREA


class StableVideoDiffusion(Family):
    name = "svd"
    title = "Stable Video Diffusion"
    pipeline_classes = ("StableVideoDiffusionPipeline",)
    vae_class = "AutoencoderKLTemporalDecoder"
    components = ("vae", "image_encoder", "unet", "scheduler", "feature_extractor")
    aliases = {
        "svd": "stabilityai/stable-video-diffusion-img2vid",
        "svd-xt": "stabilityai/stable-video-diffusion-img2vid-xt",
    }
    tiny = ("tiny-random",)
    knob_arguments = {
        "frames": "num_frames",
        "steps": "num_inference_steps",
        "fps": "fps",
        "motion": "motion_bucket_id",
        "noise_aug": "noise_aug_strength",
        "min_guidance": "min_guidance_scale",
        "max_guidance": "max_guidance_scale",
    }
    comfyui = {
        (4, 4): ComfyAssumption(
            layout=SVD_LAYOUT, latent_space=f"AutoencoderKLTemporalDecoder/c4/s{SVD_SCALING_FACTOR:g}/fp:", model=DEFAULT_MODEL,
            fps=DEFAULT_FPS, description=f"Stable Video Diffusion latents (SVD's VAE, scaling {SVD_SCALING_FACTOR:g})",
        ),
    }
    has_forward_chunking = True
    default_overlap = 2
    minimum_overlap = 0
    # A UNet: no step cache or LoRA loader in diffusers' SVD pipeline, no tiled decode in its
    # temporal VAE; --compile compiles the whole UNet (the diffusers recipe).
    compile_target = "whole"

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

    def build_tiny(self, name: str) -> Any:
        from vidlatent.tiny import build_tiny_random

        return build_tiny_random()

    def layout(self, vae: Any) -> LatentLayout:
        return LatentLayout(
            family=self.name, spatial=2 ** (len(vae.config.block_out_channels) - 1), frame_rule=FrameRule(),
            normalization=Normalization(factor=float(vae.config.scaling_factor)),
        )

    def encode_frames(self, frames: Iterable[np.ndarray], vae: Any, *, device: torch.device, chunk: int = 8,
                      progress: Progress = _no_progress, note: Callable[[str], None] | None = None) -> torch.Tensor:
        from vidlatent import codec

        return codec.encode_frames(frames, vae, device=device, chunk=chunk, progress=progress)

    def decode_frames(self, latents: torch.Tensor, vae: Any, *, device: torch.device, chunk: int = 8,
                      settings: DecodeSettings | None = None) -> Iterator[np.ndarray]:
        from vidlatent import codec

        return codec.decode_frames(latents, vae, device=device, chunk=chunk)

    def default_decode_chunk(self, model: Any) -> int:
        # The pipeline decodes all its frames at once; a VAE-only model has no UNet to ask.
        return int(model.pipeline.unet.config.num_frames) if model.pipeline is not None and model.pipeline.unet is not None else 14

    def enable_forward_chunking(self, pipeline: Any) -> None:
        pipeline.unet.enable_forward_chunking()

    def decode_frame(self, latents: torch.Tensor, vae: Any, *, device: torch.device, index: int) -> np.ndarray:
        # Each latent frame decodes on its own (the temporal decoder's window is the chunk).
        frame = latents[index].unsqueeze(0)  # (1, C, h, w)
        return next(self.decode_frames(frame, vae, device=device, chunk=1))

    def resolve_knobs(self, pipeline: Any, values: dict[str, Any]) -> dict[str, Any]:
        # num_frames=None means the UNet's own frame count (14 for SVD, 25 for SVD-XT).
        return {"frames": int(pipeline.unet.config.num_frames)} if values.get("frames") is None else {}

    def continuation(self, model: Any, latents: torch.Tensor, overlap: int) -> tuple[Image.Image, torch.Tensor]:
        # A per-frame VAE: the last latent frames are pinned as they are, and the last one,
        # decoded on its own, is the conditioning image.
        from PIL import Image

        image = Image.fromarray(self.decode_frame(latents, model.vae, device=model.execution_device, index=-1))
        return image, latents[latents.shape[0] - overlap :]

    def pipeline_arguments(self, model: Any, *, image: Image.Image | None, last_image: Image.Image | None,
                           size: tuple[int, int], frames: int | None = None) -> dict[str, Any]:
        return {"image": image, "width": size[0], "height": size[1]}

    def pipeline_output(self, output: Any) -> torch.Tensor:
        return output.frames[0].float().cpu()  # (F, C, h, w)

    def to_pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents[None]  # (1, F, C, h, w)

    def from_pipeline_latents(self, tensor: torch.Tensor, *, size: tuple[int, int] | None = None) -> torch.Tensor:
        return tensor[0]

    def initial_noise(self, model: Any, size: tuple[int, int], latent_frames: int, seed: int) -> torch.Tensor:
        """The pipeline draws, from ``torch.Generator("cpu").manual_seed(seed)``, first the noise
        for the conditioning image's augmentation (1, 3, H, W), float32, then the latents; this
        draws the same two in the same order and returns the second, before the scheduler's
        scaling, in the model's dtype."""
        import torch

        from vidlatent.generation import cpu_generator

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

    def regenerate_tail(self, model: Any, call: Callable[..., torch.Tensor], clean: torch.Tensor,
                        noise: torch.Tensor, steps: int, kept: int) -> torch.Tensor:
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
