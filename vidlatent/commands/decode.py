"""vidlatent decode: a latent clip into a video."""

from __future__ import annotations

import click

from vidlatent.commands._shared import (
    Reporter, State, common_options, decode_options, default_output, describe_model, model_options, output_entry,
    output_option, pass_state,
)


@click.command(
    epilog="""\b
Examples:
  vidlatent decode clip.safetensors -o clip.mp4
  vidlatent encode in.gif --model tiny-random -o - | vidlatent decode - -o out.mp4
  vidlatent decode ltx-clip.safetensors --decode-timestep 0.05 --decode-noise-scale 0.025 -o clip.mp4
"""
)
@click.argument("clip", type=click.Path(dir_okay=False, allow_dash=True))
@output_option("Video to write: .mp4 (H.264), .webm, .gif, or a folder for PNG frames. Default: CLIP's name with .mp4.")
@click.option("--chunk", type=click.IntRange(min=1), default=8, show_default=True,
              help="Latent frames per decoder call; bounds the memory (larger is smoother over time).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate of the video. Default: the clip's.")
@decode_options
@model_options
@common_options
@pass_state
def command(state: State, clip: str, output: str | None, chunk: int, fps: float | None, decode_timestep: float | None,  # type: ignore[no-untyped-def]
            decode_noise_scale: float | None, load, model_given: bool) -> None:
    """Decode CLIP (a latent file, or - for stdin) into a video.

    Without --model the clip's own model decodes it; a clip from another VAE is refused.
    Each decoded chunk is written as it comes, so memory does not grow with the length (LTX:
    each chunk is decoded with the latent frames around it that its non-causal decoder reaches).
    LTX's decoder is conditioned on a timestep: without --decode-timestep and
    --decode-noise-scale the clip's own recorded values are used, else 0.05 and 0.025.
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
    if not model_given:
        load = dataclasses.replace(load, model=latent_clip.model)
    family = describe_model(load).family
    if not family.timestep_decoder:  # refuses --decode-timestep and --decode-noise-scale before loading
        family.decode_settings(None, timestep=decode_timestep, noise_scale=decode_noise_scale)
    with report.timed("load"):
        model = load_vae(load, note=report.note)
    latent_clip.require_space(model.latent_space, what=f"--model {model.model_id}")  # before the progress bar shows
    settings = model.family.decode_settings(model.vae, latent_clip, timestep=decode_timestep, noise_scale=decode_noise_scale)
    with report.timed("decode"), report.progress("decoding", latent_clip.pixel_frames) as progress:
        written = decode_clip(latent_clip, model, output, chunk=chunk, fps=fps, progress=progress, settings=settings)
    entry = output_entry(output, latent_clip, frames=written) | {"fps": fps or latent_clip.fps}
    recorded = {"decode": settings.record()} if settings is not None else {}
    report.summary([entry], stdout_busy=False, model=model.model_id, **recorded)
    how = f", decode timestep {settings.timestep:g}, noise {settings.noise_scale:g}" if settings is not None else ""
    report.note(f"wrote {written} frames ({latent_clip.width}x{latent_clip.height} px{how}) to {output}")
