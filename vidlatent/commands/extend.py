"""vidlatent extend: continue a clip, segment by segment, without drift."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from vidlatent.commands import _batch
from vidlatent.commands.loading import LowMemory, describe_model, join_launch, load_sampler
from vidlatent.commands.options import output_option, overlaps_in_words, plan_options, sampler_options, segment_sampling_options
from vidlatent.commands.outputs import ClipInput, expand_inputs, plan_outputs, prepare_output, write_clip
from vidlatent.commands.reporting import Reporter, State, announce_seed
from vidlatent.errors import UsageError


@click.command(
    epilog="""\b
Examples:
  vidlatent extend clip.safetensors --times 3 -o long.safetensors
  vidlatent generate photo.png --model tiny-random --frames 6 --seed 1 -o - | vidlatent extend - --times 2 -o - | vidlatent decode - -o long.mp4
  vidlatent extend ltx-clip.safetensors --times 2 --overlap 2 -o longer.safetensors
  vidlatent extend fox.safetensors --prompt "the fox stops" --prompt "the fox jumps" -o fox-long.safetensors
  vidlatent extend df-clip.safetensors --model skyreels-v2-df-1.3b-540p --history 17 --history-noise 20 --prompts shots.txt -o long.mp4
"""
)
@click.argument("clips", nargs=-1, required=True, type=click.Path(allow_dash=True), metavar="CLIP...")
@output_option("Latent file (.safetensors, or - for stdout) or video to write. Default: CLIP's name with -extended.safetensors. "
               "With several clips: a folder, or a pattern with {stem}.")
@click.option("--times", type=click.IntRange(min=1),
              help="How many segments to add [1; with a prompt per segment (--prompt repeated, --prompts FILE), one per prompt].")
@click.option("--overlap", type=click.IntRange(min=0),
              help="Latent frames each new segment shares with the clip's end (pinned, not repeated) "
                   f"[{overlaps_in_words()}].")
@click.option("--drift-correction/--no-drift-correction", default=True, show_default=True,
              help="Pull each new segment's per-channel latent mean and std back to within the change real footage "
                   "shows (0.15 of a channel's std, 12 %) of the first segment's; drift inside that is kept (docs/extend.md).")
@plan_options
@sampler_options(segment_sampling_options)
def command(state: State, clips: tuple[str, ...], output: str | None, times: int | None, overlap: int | None,  # type: ignore[no-untyped-def]
            drift_correction: bool, show_plan: bool, vram: str | None, knobs, segments, seed: int | None, memory: LowMemory,
            load, model_given: bool) -> None:
    """Continue CLIP (a latent file, a folder of them, - for stdin, or a video, encoded first)
    TIMES times; several clips each (shared among the processes of a torchrun launch).

    Each new segment is generated conditioned on the clip's end. Its first OVERLAP latent frames
    start from the end of the clip (SVD: its last latent frames, conditioned on its last frame;
    Wan: its last frames re-encoded, conditioned on the first of them), re-noised to the current noise level
    after every step and kept pinned, so the seam is continuous; they are not repeated, so the
    clip grows by a segment minus OVERLAP latent frames each time. LTX-Video is conditioned
    natively instead: the clip's last (OVERLAP - 1) x 8 + 1 frames are its condition at frame 0.
    Without --frames a segment is as long as the clip's own segments (from its history), else
    the model's default. Segment j uses seed + j; without --seed, the seed is the clip's own
    seed + 1 (so a seeded chain repeats exactly), or a random one. Prompts: without --prompt, the
    clip's own; --prompt A --prompt B (or --prompts FILE) makes one segment per prompt, and the
    history records the frames each made.

    SkyReels-V2 DF continues with its video-to-video pipeline: the clip's last --history frames
    ((OVERLAP - 1) x 4 + 1; default 17, less for short segments) are its history.
    """
    from vidlatent import distributed, latentfile
    from vidlatent.atomic import STDIO
    from vidlatent.knobs import check_sampled_size

    report = Reporter(state, "extend")
    sources = expand_inputs(clips, folder_files=latentfile.folder_latents)
    outputs = [row[0] for row in plan_outputs(sources, 1, output, ".safetensors", tag="-extended")]
    for target in outputs:
        prepare_output(target, sources)
    from vidlatent.generation import ExtendOptions, resolve_segments, segment_frames  # torch: once the arguments are good

    if segments and times is not None and times != len(segments):
        raise UsageError(f"--times {times} and {len(segments)} prompts: one segment per prompt; leave --times out")
    options = ExtendOptions(times=len(segments) or times or 1, overlap=overlap, drift_correction=drift_correction,
                            segments=tuple(segments))
    options.validate()

    def open_clip(source: str) -> ClipInput:
        clip_input = ClipInput.open(source)
        clip_input.check_video_output(outputs[sources.index(source)], clip_input.load_options(load, model_given))
        return clip_input

    inputs, unreadable = _batch.open_inputs(sources, open_clip)
    loads = {source: clip_input.load_options(load, model_given) for source, clip_input in inputs.items()}
    described = {model_load.model: describe_model(model_load) for model_load in loads.values()}
    for info in described.values():
        info.spec.check_extend()
        knobs.check_for(info.spec, continuing=True)
        if segments and not info.spec.takes_prompt:
            raise UsageError(f"--prompt per segment: {info.spec.title} takes no prompt")
    for source, clip_input in inputs.items():  # an overlap too long for the segments, before anything loads
        if clip_input.clip is not None:
            info = described[loads[source].model]
            clip_input.clip.require_family(info.family.name, what=f"--model {info.model_id}")  # before its frame rule is used
            check_sampled_size((clip_input.clip.width, clip_input.clip.height), info.spec, flag=f"{source}: the clip's size")
            frames = knobs.frames or segment_frames(clip_input.clip) or info.spec.frames
            resolve_segments(options, info.family, info.spec, knobs, frames, clip_input.clip.frames)
    if show_plan or vram is not None:
        loads, memory = plan_segments(state, inputs, loads, described, knobs, memory, show_plan, vram, report.note)
        if show_plan:
            return
    ranks = distributed.launched()
    samplers: dict[str, Any] = {}  # model id -> its pipeline, loaded once per process

    def extend_one(job: tuple[str, str]) -> list[dict[str, Any]]:
        source, target = job
        if source in unreadable:
            raise unreadable[source]
        model_load = loads[source]
        if model_load.model not in samplers:
            samplers[model_load.model] = load_sampler(join_launch(model_load, ranks), memory, report,
                                                      info=described[model_load.model])
        model = samplers[model_load.model]
        return [extend_clip(report, inputs[source], model, target, knobs, options, seed, memory)]

    entries = _batch.run(list(zip(sources, outputs)), extend_one, label=lambda job: "stdin" if job[0] == STDIO else job[0],
                         ranks=ranks, note=report.note)
    seeds = sorted({entry["seed"] for entry in entries if entry.get("seed") is not None})
    report.summary(entries, stdout_busy=STDIO in outputs, model=entries[0]["model"] if entries else load.model,
                   seed=seeds[0] if len(seeds) == 1 else (seed if seed is not None else None))


def plan_segments(state: State, inputs: dict[str, Any], loads: dict[str, Any], described: dict[str, Any], knobs: Any,  # type: ignore[no-untyped-def]
                  memory: LowMemory, show_plan: bool, vram: str | None, note) -> tuple[dict[str, Any], LowMemory]:
    """--plan and --vram: each model's segments planned at its largest clip (a segment is sampled at
    the clip's size, and the clip decoded in the same chunks); with --vram the flags that fit."""
    from vidlatent.commands.plan import make_request, planned_flags, show
    from vidlatent.generation import segment_frames

    largest: dict[str, tuple[int, int, int]] = {}  # model -> (width, height, frames) of its largest segment
    for source, clip_input in inputs.items():
        info = described[loads[source].model]
        clip = clip_input.clip
        size = (clip.width, clip.height) if clip is not None else clip_input.plan.size_for(info.spec.native_area, info.spec.size_multiple)
        frames = knobs.frames or (segment_frames(clip) if clip is not None else None) or info.spec.frames
        current = largest.get(loads[source].model)
        if current is None or size[0] * size[1] * frames > current[0] * current[1] * current[2]:
            largest[loads[source].model] = (*size, frames)
    fitted: dict[str, Any] = {}
    for model, (width, height, frames) in largest.items():
        load = next(loads[source] for source in inputs if loads[source].model == model)
        request = make_request(load, memory, dataclasses.replace(knobs, frames=frames), (width, height), image=True,
                               family=described[model].family)
        if show_plan:
            show(state, request, described[model], vram)
        else:
            fitted[model], memory = planned_flags(request, described[model], vram, memory, note)
    return {source: fitted.get(load.model, load) for source, load in loads.items()}, memory


def extend_clip(report: Reporter, source: ClipInput, model: Any, target: str, knobs: Any, options: Any, seed: int | None,
                memory: LowMemory) -> dict[str, Any]:
    """Extend one clip (a latent file, or a video encoded with ``model``) and write it to ``target``."""
    import dataclasses

    from vidlatent.generation import extend, segment_frames, with_clip_prompts

    start = source.latents(model, report)
    knobs = with_clip_prompts(knobs, start)
    if knobs.frames is None and segment_frames(start) is not None:
        knobs = dataclasses.replace(knobs, frames=segment_frames(start))
    base_seed = default_seed(start.seed) if seed is None else seed
    if seed is None:
        announce_seed(report, base_seed, derived=f"the clip's seed {start.seed} + 1" if start.seed is not None else "")
    steps = knobs.resolved(model.pipeline, model.family).steps
    with report.timed("extend"), report.progress("extending", steps * options.times) as progress:
        result = extend(model, start, knobs=knobs, options=options, seed=base_seed, progress=progress)
    entry = write_clip(result, target, model, memory, report)
    report.note(f"wrote {target} ({start.pixel_frames} + {result.pixel_frames - start.pixel_frames} frames, seeds from {base_seed})")
    return entry


def default_seed(clip_seed: int | None) -> int:
    """Without --seed: the clip's own seed + 1 where it has one (so a seeded chain repeats
    exactly), else a random seed."""
    from vidlatent.generation import MAX_SEED, random_seed

    return random_seed() if clip_seed is None else (clip_seed + 1) % MAX_SEED
