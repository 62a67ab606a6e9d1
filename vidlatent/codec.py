"""Pixels as the VAEs see them, and decoded frames as the commands write them.

Neutral ground below the families: ``pixels_to_tensor`` and ``tensor_to_pixels`` are diffusers'
image pre- and post-processing arithmetic (so the numbers agree with the pipelines), and
``decode_frames`` / ``decode_frame`` turn a family's one streamed decoder (``Family.decode``)
into uint8 frames, chunk by chunk: a caller that writes them out as they come never holds more
than one chunk of pixels, whatever the length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from vidlatent.errors import VidlatentError

if TYPE_CHECKING:
    import torch



def chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """``frames`` in lists of ``size`` (the last may be shorter)."""
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


def _finite(video: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """``video`` (a decoder's output), refused when any of it is NaN or infinite: such pixels would
    be written as garbage video (finite latents far outside the model's range decode to them)."""
    import torch

    # NaN and infinities show in the minimum or maximum: one pass, no tensor of booleans (as
    # latentfile checks latents).
    low, high = torch.aminmax(video)
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        largest = float(latents.abs().max())
        raise VidlatentError(
            f"the decoder made NaN or infinite pixels from these latents (largest |value| {largest:.3g}); they are far "
            "outside what this model's VAE decodes: check that the clip belongs to this model and was not scaled out of range"
        )
    return video


def decode_frames(family: Any, latents: torch.Tensor, vae: Any, *, device: torch.device, chunk: int = 8,
                  settings: Any = None) -> Iterator[np.ndarray]:
    """(T, C, h, w) latents -> (H, W, 3) uint8 frames, streamed in order, through ``family.decode``.

    Args:
        family: the clip's model family.
        latents: the clip's normalised latents.
        vae: the family's VAE.
        device: where to decode.
        chunk: latent frames per decoder call, where the family's decoder takes chunks.
        settings: a timestep-conditioned decoder's DecodeSettings (LTX); None for the others.
    """
    for video in family.decode(latents, vae, device=device, chunk=chunk, settings=settings):
        yield from video_to_pixels(_finite(video, latents))


def decode_frame(family: Any, latents: torch.Tensor, vae: Any, *, device: torch.device, index: int) -> np.ndarray:
    """The last pixel frame of latent frame ``index`` (negative counts from the end), decoded with
    what the family's decoder needs around it (causal VAEs: the frames before it)."""
    index = index % int(latents.shape[0])
    pixel = family.layout(vae).frame_rule.pixel_frames(index + 1) - 1
    frames = [frame for video in family.decode(latents, vae, device=device, first=pixel, last=pixel)
              for frame in video_to_pixels(_finite(video, latents))]
    return frames[-1]
