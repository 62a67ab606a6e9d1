"""vidlatent extend: continue a clip, segment by segment, without drift."""

from __future__ import annotations

import dataclasses

import click

from vidlatent.commands._shared import (
    Reporter, State, common_options, default_output, low_memory_options, model_options, output_option, pass_state,
    require_binary_stdout, sampling_options, seed_option,
)


@click.command(
    epilog="""\b
Examples:
  vidlatent extend clip.safetensors --times 3 -o long.safetensors
  vidlatent generate photo.png --model tiny-random --frames 6 --seed 1 -o - | vidlatent extend - --times 2 -o - | vidlatent decode - -o long.mp4
"""
)
@click.argument("clip", type=click.Path(allow_dash=True))
@output_option("Latent file (.safetensors, or - for stdout) or video to write. Default: CLIP's name with -extended.safetensors.")
@click.option("--times", type=click.IntRange(min=1), default=1, show_default=True, help="How many segments to add.")
@click.option("--overlap", type=click.IntRange(min=0), default=2, show_default=True,
              help="Latent frames each new segment shares with the clip's end (pinned, not repeated).")
@click.option("--drift-correction/--no-drift-correction", default=True, show_default=True,
              help="Match each new segment's per-channel latent mean and std to the first segment's.")
@sampling_options
@seed_option
@low_memory_options
@model_options
@common_options
@pass_state
def command(state: State, clip: str, output: str | None, times: int, overlap: int, drift_correction: bool, knobs,  # type: ignore[no-untyped-def]
            seed: int | None, low_vram: bool, forward_chunking: bool, decode_chunk: int | None, load, model_given: bool) -> None:
    """Continue CLIP (a latent file, - for stdin, or a video, encoded first) TIMES times.

    Each new segment is generated conditioned on the clip's current last frame. Its first
    OVERLAP latent frames start from the clip's last ones, re-noised to the current noise level
    after every step and kept pinned, so the seam is continuous; they are not repeated, so the
    clip grows by FRAMES - OVERLAP per segment. Segment j uses seed + j; without --seed, the
    seed is the clip's own seed + 1 (so a seeded chain repeats exactly), or a random one.
    """
    from pathlib import Path

    from vidlatent import latentfile, media
    from vidlatent.atomic import STDIO, check_output
    from vidlatent.generation import ExtendOptions, extend
    from vidlatent.models import load_pipeline
    from vidlatent.video import decode_clip, encode_video, plan_encode

    report = Reporter(state)
    options = ExtendOptions(times=times, overlap=overlap, drift_correction=drift_correction)
    options.validate(knobs.frames)
    is_video = clip != STDIO and Path(clip).suffix.lower() in media.SUPPORTED_VIDEO_READ
    if output is None:
        output = str(Path(default_output(clip, ".safetensors")).with_name(f"{Path(clip).stem}-extended.safetensors"))
    if latentfile.is_latent_path(output):
        require_binary_stdout(output)
    else:
        media.output_kind(output)
    check_output(output, [clip])
    source = None if is_video else latentfile.read(clip)
    plan = plan_encode(clip) if is_video else None

    if low_vram:
        load = dataclasses.replace(load, offload="model")
        forward_chunking = True
        decode_chunk = decode_chunk or 2
    if source is not None and not model_given:
        load = dataclasses.replace(load, model=source.model)
    model = load_pipeline(load, note=report.note)
    if forward_chunking:
        model.pipeline.unet.enable_forward_chunking()
    if plan is not None:
        with report.progress("encoding", plan.frames) as progress:
            source = encode_video(plan, model, progress=progress)
    base_seed = default_seed(source.seed) if seed is None else seed
    if seed is None:
        report.note(f"seed {base_seed} (pass --seed {base_seed} to repeat this run)")

    steps = knobs.resolved(model.pipeline).steps
    with report.progress("extending", steps * times) as progress:
        result = extend(model, source, knobs=knobs, options=options, seed=base_seed, progress=progress)
    if latentfile.is_latent_path(output):
        latentfile.write(result, output)
    else:
        with report.progress("decoding", result.frames) as progress:
            decode_clip(result, model, output, chunk=decode_chunk or model.pipeline.unet.config.num_frames, progress=progress)
    report.note(f"wrote {output} ({source.frames} + {result.frames - source.frames} frames, seeds from {base_seed})")


def default_seed(clip_seed: int | None) -> int:
    """Without --seed: the clip's own seed + 1 where it has one (so a seeded chain repeats
    exactly), else a random seed."""
    from vidlatent.generation import MAX_SEED, random_seed

    return random_seed() if clip_seed is None else (clip_seed + 1) % MAX_SEED
