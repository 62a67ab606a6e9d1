"""vidlatent encode: a video into a latent clip."""

from __future__ import annotations

import click

from vidlatent.commands._shared import (
    Reporter, State, common_options, default_output, model_options, output_entry, output_option, pass_state,
    require_binary_stdout,
)


def frame_selection_options(function):  # type: ignore[no-untyped-def]
    """--start/--frames/--stride/--fps/--size: which frames of a video to read, at what size."""
    for option in reversed(
        [
            click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First frame to read (0-based)."),
            click.option("--frames", type=click.IntRange(min=1), help="Read at most this many frames."),
            click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True, help="Keep every Nth frame."),
            click.option("--fps", type=click.FloatRange(min=0, min_open=True),
                         help="Resample to this frame rate instead of --stride (by the frames' timestamps)."),
            click.option("--size", metavar="WxH", help="Resize to this size (multiples of 64). Default: keep the aspect ratio at the model's native area."),
        ]
    ):
        function = option(function)
    return function


@click.command(
    epilog="""\b
Examples:
  vidlatent encode clip.mp4 -o clip.safetensors
  vidlatent encode clip.mp4 --model tiny-random --frames 14 -o - | vidlatent decode - -o back.mp4
"""
)
@click.argument("video", type=click.Path(dir_okay=True, allow_dash=False))
@output_option("Latent file to write (.safetensors), or - for stdout. Default: VIDEO's name with .safetensors.")
@frame_selection_options
@click.option("--chunk", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per VAE call; bounds the memory.")
@model_options
@common_options
@pass_state
def command(state: State, video: str, output: str | None, start: int, frames: int | None, stride: int,
            fps: float | None, size: str | None, chunk: int, load, model_given: bool) -> None:  # type: ignore[no-untyped-def]
    """Encode VIDEO (mp4, webm, mov, avi, gif, or a folder of images) into a latent clip.

    Frames stream through the model's VAE CHUNK at a time, so memory does not grow with the
    video's length. Only the VAE is loaded.
    """
    from vidlatent import media
    from vidlatent.atomic import check_output
    from vidlatent.latentfile import is_latent_path, write
    from vidlatent.errors import UsageError
    from vidlatent.models import load_vae
    from vidlatent.video import encode_video, plan_encode

    report = Reporter(state, "encode")
    output = output or default_output(video, ".safetensors")
    if not is_latent_path(output):
        raise UsageError(f"-o {output}: encode writes a latent file; name it *.safetensors or - for stdout")
    require_binary_stdout(output)
    check_output(output, [video])
    selection = media.FrameSelection(start=start, frames=frames, stride=stride, fps=fps)
    plan = plan_encode(video, selection=selection, size=media.parse_size(size) if size else None)
    media.check_frames_folder(video, same_size=size is None)
    with report.timed("load"):
        model = load_vae(load, note=report.note)
    with report.timed("encode"), report.progress("encoding", plan.frames) as progress:
        clip = encode_video(plan, model, chunk=chunk, progress=progress)
    write(clip, output)
    report.note(f"wrote {clip.frames} latent frames ({clip.width}x{clip.height} px, {clip.fps:g} fps) to {output}")
    report.summary([output_entry(output, clip)], stdout_busy=output == "-", model=model.model_id)  # the last line
