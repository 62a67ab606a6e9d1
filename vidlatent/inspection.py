"""What is in a latent clip, or how a video was made: the library behind ``inspect``."""

from __future__ import annotations

from typing import Any

from vidlatent.latentfile import LatentClip


def describe(clip: LatentClip) -> dict[str, Any]:
    """A JSON-ready summary: metadata, shape, dtype, per-channel statistics and history."""
    import torch

    latents = clip.latents.float()  # (T, C, h, w)
    per_channel = latents.transpose(0, 1).flatten(1)  # (C, T*h*w)
    return {
        "kind": clip.kind,
        "model": clip.model,
        "latent_space": clip.latent_space,
        "family": clip.family,
        "frames": clip.pixel_frames,
        "latent_frames": clip.frames,
        "spatial_compression": clip.layout.spatial,
        "frame_rule": str(clip.layout.frame_rule),
        "shape": list(clip.latents.shape),
        "dtype": str(clip.latents.dtype).removeprefix("torch."),
        "fps": clip.fps,
        "duration_s": round(clip.pixel_frames / clip.fps, 6),
        "width": clip.width,
        "height": clip.height,
        "seed": clip.seed,
        "channels": [
            {
                "channel": index,
                "mean": float(values.mean()),
                "std": float(values.std()) if values.numel() > 1 else 0.0,
                "min": float(values.min()),
                "max": float(values.max()),
            }
            for index, values in enumerate(per_channel)
        ],
        "audio": _describe_audio(clip),
        "history": list(clip.history),
        "torch": torch.__version__,
    }


def _describe_audio(clip: LatentClip) -> dict[str, Any] | None:
    """The clip's sound (latent file v3), or None for a silent clip: its shape, rate, timing and range."""
    if clip.audio is None or clip.audio_layout is None:
        return None
    audio, layout = clip.audio.float(), clip.audio_layout
    steps = int(audio.shape[0])
    return {
        "shape": list(clip.audio.shape),
        "dtype": str(clip.audio.dtype).removeprefix("torch."),
        "sample_rate": layout.sample_rate,
        "latents_per_second": layout.latents_per_second,
        "offset_s": layout.offset,
        "duration_s": round(layout.seconds(steps), 6),
        "values": layout.values,
        "mean": float(audio.mean()),
        "std": float(audio.std()) if audio.numel() > 1 else 0.0,
    }


def describe_video(path: str) -> dict[str, Any]:
    """The vidlatent tag of a video file or PNG frames folder, with ``kind: video`` and its ``path``;
    MediaError (one line, exit status 2) where it has none (``vidlatent.provenance``)."""
    from vidlatent.errors import MediaError
    from vidlatent.provenance import no_tag, read_video_record

    record = read_video_record(path)
    if record is None:
        raise MediaError(f"{no_tag(path)}; there is nothing to inspect but its pixels")
    # A tag is data: its own "kind" or "path", if any, cannot stand in for these.
    return {"kind": "video", "path": path, **{key: value for key, value in record.tag.items() if key not in ("kind", "path")}}
