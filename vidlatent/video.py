"""Videos to latent clips and back: the library behind ``encode`` and ``decode``.

Frames stream from the reader through the VAE and into the writer chunk by chunk; no
function here holds a whole video of pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidlatent import media
from vidlatent.codec import decode_frames
from vidlatent.errors import MediaError
from vidlatent.families.base import DecodeSettings, decode_settings
from vidlatent.latentfile import LatentClip
from vidlatent.knobs import check_size
from vidlatent.models import LoadedModel, plan_vae_tiling
from vidlatent.progress import Progress, no_progress
from vidlatent.provenance import video_tag




@dataclass(frozen=True)
class EncodePlan:
    """What ``encode_video`` will read, decided (and validated) before any model is loaded."""

    source: str
    info: media.VideoInfo
    selection: media.FrameSelection
    size: tuple[int, int] | None  # (width, height); None: fit to the model's native area
    fps: float
    frames: int | None  # expected number of frames, where the source's length is known

    def size_for(self, native_area: int, multiple: int = media.SIZE_MULTIPLE) -> tuple[int, int]:
        """The pixel size to encode at: the one asked for, else the aspect ratio kept at
        ``native_area``, each side a multiple of ``multiple``."""
        return self.size or media.fit_size(self.info.width, self.info.height, native_area, multiple)


def plan_encode(
    source: str | os.PathLike[str],
    *,
    selection: media.FrameSelection = media.FrameSelection(),
    size: tuple[int, int] | None = None,
) -> EncodePlan:
    """Probe ``source`` and check the frame selection, so bad input fails before a model loads.

    Args:
        source: a video file or a folder of images.
        selection: which frames to keep.
        size: (width, height) to resize to; None keeps the aspect ratio at the model's native area.
    """
    selection.validate()
    info = media.probe(source)
    frames = None
    if info.frame_count is not None and selection.fps is None:
        available = max(0, math.ceil((info.frame_count - selection.start) / selection.stride))
        frames = available if selection.frames is None else min(available, selection.frames)
        if frames == 0:
            raise MediaError(
                f"{source}: no frames selected: the source has {info.frame_count} frame(s) and the selection "
                f"starts at frame {selection.start}; choose a smaller --start"
            )
    return EncodePlan(
        source=str(source), info=info, selection=selection, size=size, fps=media.selected_fps(info, selection), frames=frames
    )


def encode_video(plan: EncodePlan, model: LoadedModel, *, chunk: int = 8, progress: Progress = no_progress,
                 note: Callable[[str], None] | None = None) -> LatentClip:
    """Encode the frames ``plan`` selects into a latent clip with ``model``'s VAE.

    A VAE that makes whole latent frames of several pixel frames (Wan: 4k+1) encodes the
    largest count of the frames read that it accepts; ``note`` is told how many were left out.
    The pictures only: a sound track is not encoded, and for a family that makes sound (LTX-2)
    ``note`` says so.
    """
    size = plan.size_for(model.native_area, model.spec.size_multiple)
    check_size(size, model.spec, sampled=False)  # the VAE alone: no transformer's bound
    width, height = size
    frames = media.iter_frames(plan.source, plan.selection, size=(width, height))
    latents = model.family.encode_frames(frames, model.vae, device=model.execution_device, chunk=chunk, progress=progress,
                                         note=note)
    if plan.info.sound is not None and model.family.sound is not None and note is not None:
        # diffusers 0.42.1 has no waveform-to-mel front end for LTX-2's audio VAE encoder (README, "LTX-2").
        note(f"{plan.source}: its sound track ({plan.info.sound}) is not encoded (vidlatent cannot encode sound into "
             f"{model.family.title}'s audio latents yet): the clip is silent")
    clip = LatentClip(
        latents=latents,
        model=model.model_id,
        latent_space=model.latent_space,
        fps=plan.fps,
        height=height,
        width=width,
        layout=model.layout,
    )
    selection = plan.selection
    return clip.with_step(
        "encode",
        {
            "source": os.path.abspath(plan.source),
            "start": selection.start,
            "frames": selection.frames,
            "stride": selection.stride,
            "fps": selection.fps,
            "size": f"{width}x{height}",
            "model": model.model_id,
        },
    )


def decode_clip(
    clip: LatentClip,
    model: LoadedModel,
    output: str | os.PathLike[str],
    *,
    chunk: int = 8,
    fps: float | None = None,
    progress: Progress = no_progress,
    settings: DecodeSettings | None = None,
    sound: bool = True,
) -> int:
    """Decode ``clip`` with ``model``'s VAE and stream the frames into ``output``, with the clip's
    sound as its sound track where it has one (``sound``; .mp4 and .webm: see ``media.holds_sound``;
    ``model`` loaded with its sound decoder).

    Args:
        clip: the latent clip; refused unless it belongs to the model's latent space.
        model: a loaded model with a VAE.
        output: .mp4, .webm, .gif, or a folder for PNG frames; written atomically.
        chunk: latent frames per decoder call.
        fps: frame rate of the output; default the clip's.
        settings: a timestep-conditioned decoder's timestep and noise (LTX); default the clip's own
            (``families.base.decode_settings``).
        sound: put the clip's sound in the video (False: --no-audio).

    Returns:
        The number of frames written.
    """
    import tempfile

    clip.require_space(model.latent_space, what=f"--model {model.model_id}")
    settings = settings if settings is not None else decode_settings(model.family, model.vae, clip)
    plan_vae_tiling(model, (clip.width, clip.height))
    writer: Any
    with tempfile.TemporaryDirectory(prefix="vidlatent-sound-") as folder:
        track = None
        if sound and clip.audio is not None and media.holds_sound(output):
            track = os.path.join(folder, "sound.wav")
            write_sound(clip, model, track)  # the sound is small: decoded whole, then muxed as the frames stream
        # The video says how it was made: the clip's history in its comment tag (vidlatent.provenance).
        with media.VideoWriter(output, fps=fps or clip.fps, comment=video_tag(clip), sound=track) as writer:
            for frame in decode_frames(model.family, clip.latents, model.vae, device=model.execution_device, chunk=chunk,
                                       settings=settings):
                writer.write(frame)
                progress(writer.frames_written)
    return writer.frames_written


def write_sound(clip: LatentClip, model: LoadedModel, output: str | os.PathLike[str]) -> float:
    """Decode the clip's sound with ``model``'s sound decoder (its audio VAE and vocoder, as the
    pipelines decode it) and write it as a WAV file at the decoder's own rate; returns its seconds.

    Raises IncompatibleLatentsError (one line) when the clip has no sound or ``model``'s family makes none.
    """
    from vidlatent.errors import IncompatibleLatentsError

    if clip.audio is None or clip.audio_layout is None:
        raise IncompatibleLatentsError(f"{output}: the clip has no sound to write (it is a silent {clip.family} clip); "
                                       "write a video instead")
    family, decoder = model.family, model.sound_decoder()
    if family.sound is None or clip.audio_layout.family != family.name:
        raise IncompatibleLatentsError(f"the clip's sound ({clip.audio_layout.family} family) cannot be decoded by "
                                       f"--model {model.model_id} ({family.title} makes no sound); use --model {clip.model}")
    if decoder is None:
        raise ValueError("write_sound needs a model loaded with its sound decoder (load_vae(sound=True), or a pipeline)")
    samples = family.sound.decode(clip.audio, **decoder, device=model.execution_device)  # (N, channels)
    rate = family.sound.rate(**decoder)
    media.write_wav(output, samples, rate)
    return samples.shape[0] / rate
