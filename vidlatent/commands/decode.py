"""vidlatent decode: a latent clip into a video."""

from __future__ import annotations

import click

from vidlatent.commands._shared import (
    Reporter, State, check_video_sizes, common_options, default_output, model_options, output_entry, output_option,
    pass_state,
)


@click.command(
    epilog="""\b
Examples:
  vidlatent decode clip.safetensors -o clip.mp4
  vidlatent encode in.gif --model tiny-random -o - | vidlatent decode - -o out.mp4
"""
)
@click.argument("clip", type=click.Path(dir_okay=False, allow_dash=True))
@output_option("Video to write: .mp4 (H.264), .webm, .gif, or a folder for PNG frames. Default: CLIP's name with .mp4.")
@click.option("--chunk", type=click.IntRange(min=1), default=8, show_default=True,
              help="Latent frames per decoder call; bounds the memory (larger is smoother over time).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate of the video. Default: the clip's.")
@model_options
@common_options
@pass_state
def command(state: State, clip: str, output: str | None, chunk: int, fps: float | None, load, model_given: bool) -> None:  # type: ignore[no-untyped-def]
    """Decode CLIP (a latent file, or - for stdin) into a video.

    Without --model the clip's own model decodes it; a clip from another VAE is refused.
    Each decoded chunk is written as it comes, so memory does not grow with the length.
    """
    import dataclasses

    from vidlatent import latentfile, media
    from vidlatent.atomic import check_output
    from vidlatent.models import load_vae
    from vidlatent.video import decode_clip

    report = Reporter(state, "decode")
    output = output or default_output(clip, ".mp4")
    media.output_kind(output)
    check_output(output, [clip])
    latent_clip = latentfile.read(clip)
    check_video_sizes([output], (latent_clip.width, latent_clip.height))
    if not model_given:
        load = dataclasses.replace(load, model=latent_clip.model)
    with report.timed("load"):
        model = load_vae(load, note=report.note)
    with report.timed("decode"), report.progress("decoding", latent_clip.frames) as progress:
        written = decode_clip(latent_clip, model, output, chunk=chunk, fps=fps, progress=progress)
    entry = output_entry(output, latent_clip, frames=written) | {"fps": fps or latent_clip.fps}
    report.summary([entry], stdout_busy=False, model=model.model_id)
    report.note(f"wrote {written} frames ({latent_clip.width}x{latent_clip.height} px) to {output}")
