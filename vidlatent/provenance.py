"""How a video was made: the history tag vidlatent writes into the videos it decodes, and its reader.

A video written by ``decode_clip`` (generate, extend, decode, …) carries, in its comment tag
(mp4, webm; a ``Comment`` text chunk in each PNG of a frames folder), one compact JSON object:

    {"format": "vidlatent.history", "format_version": 1, "vidlatent": "0.1.0", "model": …,
     "latent_space": …, "fps": …, "width": …, "height": …, "seed": …,
     "latents_sha256": "<the decoded latents>", "history": [<the clip's steps>]}

as ComfyUI and Wan2GP put their workflows into their outputs. The tag is data: it is parsed as
JSON and nothing in it is ever run. This module imports no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent import __version__, media
from vidlatent.errors import MediaError

if TYPE_CHECKING:
    from vidlatent.latentfile import LatentClip

TAG_FORMAT = "vidlatent.history"
TAG_VERSION = 1


@dataclass(frozen=True)
class VideoRecord:
    """What a video's vidlatent tag says: the clip it was decoded from, without the latents.

    Args:
        tag: the whole JSON object, as read.
        history: the clip's steps, oldest first.
        latents_sha256: SHA-256 of the latents decoded into the video (latentfile.latents_sha256).
    """

    tag: dict[str, Any]
    history: tuple[dict[str, Any], ...]
    latents_sha256: str | None


def video_tag(clip: LatentClip) -> str:
    """The compact JSON of ``clip``'s history and metadata, for the comment tag of its video."""
    from vidlatent.latentfile import latents_sha256

    tag = {
        "format": TAG_FORMAT,
        "format_version": TAG_VERSION,
        "vidlatent": __version__,
        "model": clip.model,
        "latent_space": clip.latent_space,
        "fps": clip.fps,
        "width": clip.width,
        "height": clip.height,
        "seed": clip.seed,
        "latents_sha256": latents_sha256(clip.latents),
        "history": list(clip.history),
    }
    return json.dumps(tag, separators=(",", ":"), sort_keys=True)


def read_video_record(path: str | os.PathLike[str]) -> VideoRecord | None:
    """The vidlatent tag of a video file or frames folder; None where it has none (another tool's
    comment, or no comment at all). A tag of a newer format version is refused with MediaError."""
    text = media.read_comment(path)
    if text is None:
        return None
    try:
        tag = json.loads(text)
    except ValueError:
        return None  # someone else's comment
    if not isinstance(tag, dict) or tag.get("format") != TAG_FORMAT:
        return None
    version = tag.get("format_version")
    if not isinstance(version, int) or version > TAG_VERSION:
        raise MediaError(f"{path}: its vidlatent tag has format version {version!r}; this vidlatent ({__version__}) "
                         f"reads version {TAG_VERSION}; upgrade vidlatent")
    history = tag.get("history")
    if not isinstance(history, list) or not all(isinstance(step, dict) for step in history):
        raise MediaError(f"{path}: its vidlatent tag has no readable history (a list of steps); the tag is damaged")
    digest = tag.get("latents_sha256")
    return VideoRecord(tag=tag, history=tuple(history), latents_sha256=digest if isinstance(digest, str) else None)


def no_tag(path: str | os.PathLike[str]) -> str:
    """The one line for a video that carries no vidlatent tag."""
    why = ("a .gif keeps no tags; decode to .mp4, .webm or PNG frames to keep the history" if str(path).lower().endswith(".gif")
           else "it was not written by vidlatent, or its tags were stripped")
    return f"{path}: carries no vidlatent history tag ({why})"


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True for a video file vidlatent reads, or a folder (of PNG frames)."""
    return os.path.isdir(path) or str(path).lower().endswith(media.SUPPORTED_VIDEO_READ)
