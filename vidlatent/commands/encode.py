"""vidlatent encode: a video into a latent clip."""

from __future__ import annotations

from typing import Any

import click

from vidlatent.commands import _batch
from vidlatent.commands.loading import describe_model, join_launch
from vidlatent.commands.options import FiniteFloatRange, common_options, model_options, output_option, size_multiples_in_words
from vidlatent.commands.outputs import (
    expand_inputs, output_entry, plan_outputs, prepare_output,
)
from vidlatent.commands.reporting import Reporter, State, pass_state


def frame_selection_options(function):  # type: ignore[no-untyped-def]
    """--start/--frames/--stride/--fps/--size: which frames of a video to read, at what size."""
    for option in reversed(
        [
            click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First frame to read (0-based)."),
            click.option("--frames", type=click.IntRange(min=1), help="Read at most this many frames of the video."),
            click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True, help="Keep every Nth frame."),
            click.option("--fps", type=FiniteFloatRange(min=0, min_open=True),
                         help="Resample to this frame rate instead of --stride (by the frames' timestamps)."),
            click.option("--size", metavar="WxH", help="Resize to this size (multiples of the model's size multiple: "
                                                       f"{size_multiples_in_words()}). Default: keep the aspect ratio at the model's native area."),
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
@click.argument("videos", nargs=-1, required=True, type=click.Path(dir_okay=True, allow_dash=False), metavar="VIDEO...")
@output_option("Latent file to write (.safetensors), or - for stdout. Default: VIDEO's name with .safetensors. "
               "With several videos: a folder, or a pattern with {stem}.")
@frame_selection_options
@click.option("--chunk", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per VAE call; bounds the memory.")
@model_options
@common_options
@pass_state
def command(state: State, videos: tuple[str, ...], output: str | None, start: int, frames: int | None, stride: int,
            fps: float | None, size: str | None, chunk: int, load, model_given: bool) -> None:  # type: ignore[no-untyped-def]
    """Encode VIDEO (mp4, webm, mov, avi, gif, or a folder of images) into a latent clip; several
    videos into one clip each (shared among the processes of a torchrun launch).

    Frames stream through the model's VAE CHUNK at a time (Wan: its causal groups of 4), so
    memory does not grow with the video's length. Only the VAE is loaded. Wan's VAE encodes
    4k+1 frames: frames past the last whole group are left out, with a note.
    """
    from vidlatent import distributed, media
    from vidlatent.errors import UsageError
    from vidlatent.knobs import check_size
    from vidlatent.latentfile import is_latent_path, write
    from vidlatent.models import load_vae
    from vidlatent.video import encode_video, plan_encode

    report = Reporter(state, "encode")
    sources = expand_inputs(videos)
    outputs = [row[0] for row in plan_outputs(sources, 1, output, ".safetensors")]
    for target in outputs:
        if not is_latent_path(target):
            raise UsageError(f"-o {target}: encode writes a latent file; name it *.safetensors or - for stdout")
        prepare_output(target, sources)
    selection = media.FrameSelection(start=start, frames=frames, stride=stride, fps=fps)
    explicit_size = media.parse_dimensions(size) if size else None

    def open_video(source: str) -> Any:
        plan = plan_encode(source, selection=selection, size=explicit_size)
        media.check_frames_folder(source, same_size=size is None)
        return plan

    plans, unreadable = _batch.open_inputs(sources, open_video)
    if explicit_size is not None:
        check_size(explicit_size, describe_model(load).spec, sampled=False)
    ranks = distributed.launched()
    model: Any = None

    def encode(job: tuple[str, str]) -> list[dict[str, Any]]:
        nonlocal model
        source, target = job
        if source in unreadable:
            raise unreadable[source]
        if model is None:
            with report.timed("load"):
                model = load_vae(join_launch(load, ranks), note=report.note)
        plan = plans[source]
        with report.timed("encode"), report.progress("encoding", plan.frames) as progress:
            clip = encode_video(plan, model, chunk=chunk, progress=progress, note=report.note)
        write(clip, target)
        report.note(f"wrote {clip.frames} latent frames ({clip.pixel_frames} frames, {clip.width}x{clip.height} px, "
                    f"{clip.fps:g} fps) to {target}")
        return [output_entry(target, clip)]

    entries = _batch.run(list(zip(sources, outputs)), encode, label=lambda job: job[0], ranks=ranks, note=report.note)
    report.summary(entries, stdout_busy="-" in outputs, model=model.model_id if model is not None else load.model)
