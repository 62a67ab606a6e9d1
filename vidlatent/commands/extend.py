"""vidlatent extend: continue a clip, segment by segment, without drift."""

from __future__ import annotations

import click

from vidlatent.commands._shared import (
    ClipInput, LowMemory, Reporter, State, announce_seed, common_options, default_output, load_sampler,
    low_memory_options, model_options, output_option, pass_state, prepare_output, sampling_options, seed_option,
    write_clip,
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
            seed: int | None, memory: LowMemory, load, model_given: bool) -> None:
    """Continue CLIP (a latent file, - for stdin, or a video, encoded first) TIMES times.

    Each new segment is generated conditioned on the clip's current last frame. Its first
    OVERLAP latent frames start from the clip's last ones, re-noised to the current noise level
    after every step and kept pinned, so the seam is continuous; they are not repeated, so the
    clip grows by FRAMES - OVERLAP per segment. Segment j uses seed + j; without --seed, the
    seed is the clip's own seed + 1 (so a seeded chain repeats exactly), or a random one.
    """

    from vidlatent.atomic import STDIO
    from vidlatent.generation import ExtendOptions, extend

    report = Reporter(state, "extend")
    options = ExtendOptions(times=times, overlap=overlap, drift_correction=drift_correction)
    options.validate(knobs.frames)
    if output is None:
        output = default_output(clip, ".safetensors", tag="-extended")
    prepare_output(output, [clip])
    source = ClipInput.open(clip)
    source.check_video_output(output, source.load_options(load, model_given))

    model = load_sampler(source.load_options(load, model_given), memory, report)
    start = source.latents(model, report)
    base_seed = default_seed(start.seed) if seed is None else seed
    if seed is None:
        announce_seed(report, base_seed)
    steps = knobs.resolved(model.pipeline).steps
    with report.timed("extend"), report.progress("extending", steps * times) as progress:
        result = extend(model, start, knobs=knobs, options=options, seed=base_seed, progress=progress)
    entry = write_clip(result, output, model, memory, report)
    report.note(f"wrote {output} ({start.frames} + {result.frames - start.frames} frames, seeds from {base_seed})")
    report.summary([entry], stdout_busy=output == STDIO, model=model.model_id, seed=base_seed)


def default_seed(clip_seed: int | None) -> int:
    """Without --seed: the clip's own seed + 1 where it has one (so a seeded chain repeats
    exactly), else a random seed."""
    from vidlatent.generation import MAX_SEED, random_seed

    return random_seed() if clip_seed is None else (clip_seed + 1) % MAX_SEED
