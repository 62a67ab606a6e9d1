"""Pixels to latents and back, in chunks, with the VAE alone.

Both directions stream: ``encode_frames`` consumes an iterator of frames and keeps only one
chunk of pixels at a time; ``decode_frames`` yields frames chunk by chunk, so a caller that
writes them out as they come never holds more than one chunk of pixels, whatever the length.
The arithmetic follows diffusers' StableVideoDiffusionPipeline (``decode_latents`` and its
image pre- and post-processing), so the numbers agree with the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

Progress = Callable[[int], None]


def _no_progress(_: int) -> None:
    pass


def _chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def pixels_to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames -> (N, 3, H, W) float32 in [-1, 1], as diffusers' VaeImageProcessor does."""
    import torch

    batch = np.stack(frames).astype(np.float32) / 255.0  # (N, H, W, 3)
    return torch.from_numpy(batch).permute(0, 3, 1, 2) * 2.0 - 1.0  # (N, 3, H, W)


def tensor_to_pixels(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, as the pipeline's PIL post-processing does."""
    images = (images / 2 + 0.5).clamp(0, 1)
    array = images.cpu().permute(0, 2, 3, 1).float().numpy()  # (N, H, W, 3)
    return (array * 255).round().astype("uint8")


def video_to_pixels(video: torch.Tensor) -> np.ndarray:
    """A video VAE's output, (1, 3, N, H, W) in [-1, 1] -> (N, H, W, 3) uint8 frames."""
    return tensor_to_pixels(video[0].permute(1, 0, 2, 3).float())


def encode_frames(
    frames: Iterable[np.ndarray],
    vae: Any,
    *,
    device: torch.device,
    chunk: int = 8,
    progress: Progress = _no_progress,
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

    # An fp16 VAE that asks for it encodes in fp32, as the pipeline does (force_upcast).
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    dtype = torch.float32 if upcast else vae.dtype
    if upcast:
        vae.to(dtype=torch.float32)
    parts: list[torch.Tensor] = []
    done = 0
    try:
        with torch.inference_mode():
            for group in _chunks(frames, chunk):
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


def decode_frames(
    latents: torch.Tensor,
    vae: Any,
    *,
    device: torch.device,
    chunk: int = 8,
) -> Iterator[np.ndarray]:
    """Decode scaled latents to frames, ``chunk`` latent frames per temporal-decoder call.

    Args:
        latents: (F, C, h, w) latents, multiplied by the VAE's scaling factor.
        vae: an AutoencoderKLTemporalDecoder.
        device: where to run the decoder.
        chunk: frames per decoder call (the decoder's temporal window); bounds the memory.

    Yields:
        (H, W, 3) uint8 RGB frames, one at a time, in order.
    """
    import torch

    with torch.inference_mode():
        for start in range(0, latents.shape[0], chunk):
            # Same arithmetic as StableVideoDiffusionPipeline.decode_latents.
            part = 1 / vae.config.scaling_factor * latents[start : start + chunk].to(device=device, dtype=vae.dtype)
            images = vae.decode(part, num_frames=part.shape[0]).sample  # (N, 3, H, W)
            yield from tensor_to_pixels(images.float())
