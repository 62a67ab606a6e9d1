"""vidlatent extend: continue a clip, segment by segment, without drift."""

from __future__ import annotations

import click

from vidlatent.commands._shared import (
    ClipInput, LowMemory, Reporter, State, acceleration_options, announce_seed, common_options, default_output,
    describe_model, load_sampler, low_memory_options, model_options, output_option, pass_state, prepare_output,
    sampling_options, seed_option, write_clip,
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
@click.option("--overlap", type=click.IntRange(min=0),
              help="Latent frames each new segment shares with the clip's end (pinned, not repeated) "
                   "[SVD 2; Wan 1: the conditioning frame].")
@click.option("--drift-correction/--no-drift-correction", default=True, show_default=True,
              help="Match each new segment's per-channel latent mean and std to the first segment's.")
@sampling_options
@seed_option
@low_memory_options
@model_options
@acceleration_options
@common_options
@pass_state
def command(state: State, clip: str, output: str | None, times: int, overlap: int | None, drift_correction: bool, knobs,  # type: ignore[no-untyped-def]
            seed: int | None, memory: LowMemory, load, model_given: bool) -> None:
    """Continue CLIP (a latent file, - for stdin, or a video, encoded first) TIMES times.

    Each new segment is generated conditioned on the clip's current last frame. Its first
    OVERLAP latent frames start from the end of the clip (SVD: its last latent frames; Wan: its
    last frames re-encoded, the conditioning frame first), re-noised to the current noise level
    after every step and kept pinned, so the seam is continuous; they are not repeated, so the
    clip grows by a segment minus OVERLAP latent frames each time. Without --frames a segment
    is as long as the clip's own segments (from its history), else the model's default.
    Segment j uses seed + j; without --seed, the seed is the clip's own seed + 1 (so a seeded
    chain repeats exactly), or a random one. Wan prompts: without --prompt, the clip's own.
    """
    import dataclasses

    from vidlatent.atomic import STDIO
    from vidlatent.generation import ExtendOptions, extend, segment_frames, with_clip_prompts

    report = Reporter(state, "extend")
    options = ExtendOptions(times=times, overlap=overlap, drift_correction=drift_correction)
    options.validate()
    if output is None:
        output = default_output(clip, ".safetensors", tag="-extended")
    prepare_output(output, [clip])
    source = ClipInput.open(clip)
    load = source.load_options(load, model_given)
    if source.clip is not None:
        knobs = with_clip_prompts(knobs, source.clip)
    described = describe_model(load)
    described.family.check_extend(described.spec)
    knobs.check_for(described.spec)

    model = load_sampler(load, memory, report)
    start = source.latents(model, report)
    if knobs.frames is None and segment_frames(start) is not None:
        knobs = dataclasses.replace(knobs, frames=segment_frames(start))
    base_seed = default_seed(start.seed) if seed is None else seed
    if seed is None:
        announce_seed(report, base_seed)
    steps = knobs.resolved(model.pipeline, model.family).steps
    with report.timed("extend"), report.progress("extending", steps * times) as progress:
        result = extend(model, start, knobs=knobs, options=options, seed=base_seed, progress=progress)
    entry = write_clip(result, output, model, memory, report)
    report.note(f"wrote {output} ({start.pixel_frames} + {result.pixel_frames - start.pixel_frames} frames, seeds from {base_seed})")
    report.summary([entry], stdout_busy=output == STDIO, model=model.model_id, seed=base_seed)


def default_seed(clip_seed: int | None) -> int:
    """Without --seed: the clip's own seed + 1 where it has one (so a seeded chain repeats
    exactly), else a random seed."""
    from vidlatent.generation import MAX_SEED, random_seed

    return random_seed() if clip_seed is None else (clip_seed + 1) % MAX_SEED
