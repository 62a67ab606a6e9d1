"""vidlatent interpolate: more frames, morphs and transitions, in latent space."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from vidlatent.atomic import STDIO
from vidlatent.commands.loading import LowMemory, load_sampler
from vidlatent.commands.options import (
    PROMPT_KNOBS, FiniteFloatRange, first_last_frame_models_in_words, frame_rules_in_words, output_option, refine_options,
    sampler_options,
)
from vidlatent.commands.outputs import ClipInput, default_output, output_entry, prepare_latent_output, prepare_output
from vidlatent.commands.reporting import Reporter, State, announce_seed
from vidlatent.errors import UsageError
from vidlatent.knobs import FLAGS
from vidlatent.progress import no_progress

METHODS = ("lerp", "slerp", "hybrid")  # vidlatent.latent_ops.METHODS, without importing torch for --help


@click.command(
    epilog="""\b
Examples:
  vidlatent interpolate clip.safetensors --factor 2 -o smooth.safetensors
  vidlatent interpolate clip.safetensors --factor 3 --loop --refine 0.3 --seed 1 -o loop.safetensors
  vidlatent interpolate a.safetensors b.safetensors --morphs 5 -o morph/
  vidlatent interpolate a.safetensors b.safetensors --transition 9 --join -o ab.safetensors
  vidlatent interpolate a.safetensors b.safetensors --transition 33 --keyframes --model wan21-flf2v --seed 1 -o bridge.safetensors
  vidlatent encode in.mp4 -o - | vidlatent interpolate - --factor 2 -o - | vidlatent decode - -o smoother.mp4
"""
)
@click.argument("clips", nargs=-1, required=True, type=click.Path(allow_dash=True), metavar="CLIP [B]")
@output_option(
    "Latent file to write (.safetensors, or - for stdout). Default: CLIP's name with -interpolated.safetensors "
    "(with --transition: A's name with -transition.safetensors). With --morphs: a folder, or a pattern with {index}."
)
@click.option("--factor", type=click.IntRange(min=2), metavar="K", help="One clip: K-1 new latent frames between neighbouring latent frames (K >= 2), about K times the pixel frames; fps is multiplied by K.")
@click.option("--method", type=click.Choice(METHODS), default="slerp", show_default=True,
              help="How frames are blended: lerp, slerp (spherical, keeps the norm), hybrid (slerp of the per-channel mean, lerp of the rest).")
@click.option("--loop", is_flag=True, help="With --factor: also fill the gap from the last frame to the first, so the clip loops.")
@click.option("--refine", type=FiniteFloatRange(0, 1), metavar="S",
              help="With --factor: re-noise the inserted frames to strength S (0-1) and denoise them with the model, "
                   "conditioned on the first frame, the original frames pinned; of a schedule of --steps N, S x N run.")
@click.option("--refine-steps", hidden=True, expose_value=False, callback=lambda ctx, param, value: _renamed(value),
              help="Renamed --steps.")
@click.option("--morphs", type=click.IntRange(min=2), metavar="N", help="Two clips A B: write N clips morphing A into B frame by frame (the first is A, the last B).")
@click.option("--transition", type=click.IntRange(min=1), metavar="F",
              help="Two clips A B: write a bridge of F frames from A's last frame to B's first (pixel frames, as --frames "
                   f"counts them: the bridge alone decodes to F, so F follows the clip's frame rule: {frame_rules_in_words()}).")
@click.option("--join", is_flag=True, help="With --transition: write A + transition + B as one clip.")
@click.option("--keyframes", is_flag=True,
              help="With --transition F: make the bridge with the model, conditioned on A's last frame and B's first "
                   f"(first-last-frame models: {first_last_frame_models_in_words()}); without it, blend the two frames.")
@click.option("--resample", is_flag=True,
              help="Two clips: resize B's latents to A's size, retime B to A's frame count (--morphs) or fps (--join), instead of refusing.")
@sampler_options(refine_options)
def command(state: State, clips: tuple[str, ...], output: str | None, factor: int | None, method: str, loop: bool,  # type: ignore[no-untyped-def]
            refine: float | None, morphs: int | None, transition: int | None, join: bool,
            keyframes: bool, resample: bool, prompts, seed: int | None, memory: LowMemory, load, model_given: bool) -> None:
    """Interpolate in latent space: more frames in one CLIP, or morphs and transitions from A to B.

    \b
    interpolate CLIP --factor K [--method M] [--loop] [--refine S]
    interpolate A B --morphs N -o DIR
    interpolate A B --transition F [--join] [--keyframes]

    Frames are counted in pixel frames, as a video has them (--transition F: the bridge decodes
    to F frames, with or without --keyframes).

    Original frames are kept exactly. Only --refine and --keyframes load the model (the clip's
    own, unless --model is given); everything else works on the latents alone. Inputs are latent files
    (or - for stdin); outputs are latents: pipe them to `vidlatent decode` for a video. See
    docs/editing.md.
    """
    report = Reporter(state, "interpolate")
    sampling = Sampling(knobs=prompts, seed=seed, memory=memory, load=load, model_given=model_given)
    if refine is None and not keyframes:
        if prompts.steps is not None and len(clips) == 2 and transition is None:
            raise UsageError(f"--steps is denoising steps (with --keyframes); for {prompts.steps} clips morphing A into B "
                             f"give --morphs {prompts.steps}")
        for flag, value in {"--steps": prompts.steps, "--seed": seed, **_prompt_flags(prompts)}.items():
            if value is not None:
                raise UsageError(f"{flag} applies only with --refine S (one clip) or --keyframes (two)")
    if len(clips) == 1:
        _one_clip(report, clips[0], output, factor, method, loop, refine, sampling,
                  two_clip_options={"--morphs": morphs, "--transition": transition, "--join": join, "--resample": resample,
                                    "--keyframes": keyframes})
    elif len(clips) == 2:
        for flag, value in {"--factor": factor, "--loop": loop, "--refine": refine}.items():
            if value not in (None, False):
                raise UsageError(f"{flag} works on one CLIP; with two clips give --morphs N or --transition F")
        if keyframes and transition is None:
            raise UsageError("--keyframes needs --transition F (the bridge's frames)")
        _two_clips(report, clips, output, method, morphs, transition, join, resample, sampling if keyframes else None)
    else:
        raise UsageError(f"interpolate takes one CLIP (with --factor) or two, A and B (with --morphs or --transition); got {len(clips)}")


@dataclass(frozen=True)
class Sampling:
    """What --refine and --keyframes sample with: knobs (steps, prompts), seed, memory, model."""

    knobs: Any
    seed: int | None
    memory: LowMemory
    load: Any
    model_given: bool

    def load_for(self, report: Reporter, path: str, clip: Any) -> Any:
        """Check the knobs against the clip's model (or --model), then load it."""
        load, described = ClipInput(path=path, clip=clip).describe(self.load, self.model_given)
        self.knobs_for(clip).check_for(described.spec)
        return load_sampler(load, self.memory, report, info=described)

    def knobs_for(self, clip: Any) -> Any:
        from vidlatent.generation import with_clip_prompts

        return with_clip_prompts(self.knobs, clip)


def _renamed(value: str | None) -> None:
    if value is not None:
        raise UsageError(f"--refine-steps is now --steps (denoising steps, as in every command): give --steps {value}")


def _prompt_flags(prompts: Any) -> dict[str, Any]:
    return {FLAGS[name]: getattr(prompts, name) for name in PROMPT_KNOBS}


def _one_clip(report: Reporter, path: str, output: str | None, factor: int | None, method: str, loop: bool,
              refine: float | None, sampling: Sampling, two_clip_options: dict[str, Any]) -> None:
    for flag, value in two_clip_options.items():
        if value not in (None, False):
            raise UsageError(f"{flag} needs two clips, A and B; with one CLIP give --factor K")
    if factor is None:
        raise UsageError("give --factor K (K - 1 new frames between neighbours), or two clips A B with --morphs or --transition")
    seed = sampling.seed
    output = output or default_output(path, ".safetensors", tag="-interpolated")
    prepare_latent_output(output, "interpolate", [path])

    from vidlatent import editing, latentfile  # torch: once the arguments are good
    from vidlatent.generation import random_seed, strength_steps

    editing.check_factor(factor)
    clip = editing.read_clip(path, command="interpolate")
    refinement = None
    if refine is not None:
        refinement = editing.Refinement(strength=refine, knobs=sampling.knobs_for(clip), seed=random_seed() if seed is None else seed)
        refinement.validate()

    model, steps = None, 0
    if refinement is not None:
        model = sampling.load_for(report, path, clip)
        if seed is None:
            announce_seed(report, refinement.seed)
        steps = strength_steps(refinement.strength, refinement.knobs.resolved(model.pipeline, model.family).steps)
    bar = report.progress("refining", steps) if model is not None else contextlib.nullcontext(no_progress)
    with report.timed("interpolate"), bar as progress:
        result = editing.interpolate(clip, factor, method=method, loop=loop, refine=refinement, model=model, progress=progress)
    latentfile.write(result, output)
    report.note(f"wrote {output} ({clip.pixel_frames} -> {result.pixel_frames} frames at {result.fps:g} fps)")
    seeded = {"seed": refinement.seed} if refinement is not None else {}
    report.summary([output_entry(output, result)], stdout_busy=output == STDIO, model=result.model, **seeded)



def _two_clips(report: Reporter, paths: tuple[str, ...], output: str | None, method: str, morphs: int | None,
               transition: int | None, join: bool, resample: bool, keyframes: Sampling | None) -> None:
    if (morphs is None) == (transition is None):
        raise UsageError("with two clips A B give one of --morphs N (N clips morphing A into B) or --transition F (F frames from A to B)")
    if join and transition is None:
        raise UsageError("--join needs --transition F")
    if paths.count(STDIO) > 1:
        raise UsageError("- (stdin) can be given only once")
    names = (paths[0], paths[1])
    if morphs is not None:
        _morph_outputs(paths, output, morphs, first=2)  # -o as such, before anything is read
        from vidlatent import editing, latentfile  # torch: once the arguments are good

        a, b = (editing.read_clip(path, command="interpolate") for path in paths)
        editing.check_result_memory(f"--morphs {morphs}", a.frames, a, clips=morphs)  # before a name per clip is made
        targets = _morph_outputs(paths, output, morphs)
        for target in targets:
            prepare_output(target, list(paths))
        with report.timed("interpolate"):
            results = editing.morph(a, b, morphs, method=method, resample=resample, names=names)
        for result, target in zip(results, targets):
            latentfile.write(result, target)
        report.note(f"wrote {len(targets)} clips morphing {paths[0]} into {paths[1]}: {targets[0]} … {targets[-1]}")
        report.summary([output_entry(t, r) for r, t in zip(results, targets)], stdout_busy=False, model=a.model)
        return
    assert transition is not None
    output = output or default_output(paths[0], ".safetensors", tag="-transition")
    prepare_latent_output(output, "interpolate", list(paths))
    from vidlatent import editing, latentfile  # torch: once the arguments are good

    a, b = (editing.read_clip(path, command="interpolate") for path in paths)
    if keyframes is not None:
        result = _keyframes(report, paths, output, a, b, transition, join, resample, keyframes)
    else:
        with report.timed("interpolate"):
            result = editing.transition(a, b, transition, method=method, join=join, resample=resample, names=names)
    latentfile.write(result, output)
    report.note(f"wrote {output} ({result.pixel_frames} frames{', A + transition + B' if join else ''})")
    seeded = {"seed": result.seed} if keyframes is not None else {}
    report.summary([output_entry(output, result)], stdout_busy=output == STDIO, model=result.model, **seeded)


def _keyframes(report: Reporter, paths: tuple[str, ...], output: str, a: Any, b: Any, frames: int, join: bool,
               resample: bool, sampling: Sampling) -> Any:
    """The model-made bridge of --keyframes (A's model, unless --model is given)."""
    from vidlatent import editing
    from vidlatent.generation import random_seed

    seed = random_seed() if sampling.seed is None else sampling.seed
    # What the bridge needs of the model and of the clips, checked before the model loads.
    load, described = ClipInput(path=paths[0], clip=a).describe(sampling.load, sampling.model_given)
    knobs = editing.keyframe_knobs(described.spec, sampling.knobs_for(a), frames)
    editing.fit_pair(a, b, names=(paths[0], paths[1]), resample=resample, same_fps=join)
    model = load_sampler(load, sampling.memory, report, last_image=True, info=described)
    if sampling.seed is None:
        announce_seed(report, seed)
    steps = knobs.resolved(model.pipeline, model.family).steps
    with report.timed("interpolate"), report.progress("bridging", steps) as progress:
        return editing.keyframes(a, b, frames, model=model, knobs=knobs, seed=seed, join=join, resample=resample,
                                 names=(paths[0], paths[1]), progress=progress)


def _morph_outputs(paths: tuple[str, ...], output: str | None, count: int, *, first: int | None = None) -> list[str]:
    """The files of a morph: -o DIR gives DIR/A-B-00.safetensors …, a pattern fills in {index};
    with ``first``, only that many of them (checking -o costs no name per clip)."""
    from vidlatent import latentfile

    made = range(count if first is None else min(first, count))

    if output is None or output == STDIO:
        raise UsageError(f"--morphs {count} writes {count} clips; give -o DIR (a folder) or a pattern such as -o morph/{{index}}.safetensors")
    if "{" in output:
        try:
            targets = [output.format(index=index) for index in made]
        except (KeyError, IndexError, ValueError) as error:
            raise UsageError(f"-o {output}: a pattern may use {{index}} only ({error})") from None
        if len(set(targets)) != len(targets):
            raise UsageError(f"-o {output}: every clip would get the same name; put {{index}} in the pattern")
        for target in targets:
            if not latentfile.is_latent_path(target):
                raise UsageError(f"-o {output}: interpolate writes latents; end the pattern in .safetensors")
        return targets
    if latentfile.is_latent_path(output) or Path(output).suffix:
        raise UsageError(f"-o {output}: --morphs {count} writes {count} clips; give a folder or a pattern with {{index}}")
    stems = "-".join("stdin" if path == STDIO else Path(path).stem for path in paths)
    width = len(str(count - 1))
    return [str(Path(output) / f"{stems}-{index:0{width}d}.safetensors") for index in made]
