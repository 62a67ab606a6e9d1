"""vidlatent upscale: an LTX-Video or LTX-2 clip at twice its size, by the latent upsampler and a refining pass."""

from __future__ import annotations

import click

from vidlatent.commands.loading import LowMemory, describe_model, load_sampler
from vidlatent.commands.options import (
    common_options, low_memory_options, model_options, output_option, prompt_options, seed_option,
)
from vidlatent.commands.outputs import ClipInput, default_output, prepare_output, write_clip
from vidlatent.commands.reporting import Reporter, State, announce_seed, pass_state


def upscaler_option(function):  # type: ignore[no-untyped-def]
    return click.option(
        "--upscaler", metavar="ID|PATH",
        help="The latent upsampler: hub id, alias (ltxv-spatial-upscaler-0.9.7) or diffusers folder; LTX-2: a model "
             "or pipeline folder with a latent_upsampler subfolder, or the upsampler's own folder (config.json and "
             "weights) [LTX: Lightricks/ltxv-spatial-upscaler-0.9.7; LTX-2: the model's own latent_upsampler; for "
             "tiny-random-ltx, tiny-random-ltx-upscaler; for tiny-random-ltx2, tiny-random-ltx2-upscaler].",
    )(function)


@click.command(
    epilog="""\b
Examples:
  vidlatent upscale clip.safetensors -o big.safetensors
  vidlatent generate photo.png --model ltx-0.9.7-distilled --prompt "waves" --size 768x512 -o - | vidlatent upscale - --image photo.png -o waves.mp4
  vidlatent generate photo.png --model tiny-random-ltx --size 64x64 --frames 9 --steps 2 --seed 1 -o - | vidlatent upscale - -o - | vidlatent decode - -o big.mp4
  vidlatent generate --model tiny-random-ltx2 --prompt "a fox barks" --size 64x64 --frames 9 --steps 2 -o - | vidlatent upscale - -o fox-2x.mp4
"""
)
@click.argument("clip", type=click.Path(allow_dash=True))
@output_option("Latent file (.safetensors, or - for stdout) or video to write. Default: CLIP's name with -upscaled.safetensors.")
@upscaler_option
@click.option("--image", type=click.Path(dir_okay=False), metavar="PATH",
              help="Condition the refining pass on this image at frame 0 (the clip's source image, for a clip made from "
                   "one: as generate --upscale does). Default: the prompt alone.")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="Run the documented refining pass after the upsampler (LTX dev models: 0.4 of 10 steps; LTX distilled: "
                   "their timesteps; LTX-2: the 3 stage-2 sigmas at guidance 1, picture and sound).")
@prompt_options
@seed_option
@low_memory_options
@model_options
@common_options
@pass_state
def command(state: State, clip: str, output: str | None, upscaler: str | None, image: str | None, refine: bool,  # type: ignore[no-untyped-def]
            prompts, seed: int | None, memory: LowMemory, load, model_given: bool) -> None:
    """Upscale CLIP (an LTX-Video or LTX-2 latent file, - for stdin, or a video, encoded first) 2x.

    The latents are upsampled by the family's latent upsampler (LTXLatentUpsamplePipeline,
    LTX2LatentUpsamplePipeline) and refined by a short pass of the clip's own model started from
    them, as diffusers' documentation does it; the prompts are the clip's own unless given. An
    LTX-2 clip's sound keeps its length: the refining pass refines it with the picture, and with
    --no-refine it stays as it was. Without --seed the
    clip's own seed is used, so `generate IMG | upscale --image IMG` equals `generate IMG
    --upscale`.
    """
    from vidlatent import media
    from vidlatent.atomic import STDIO
    from vidlatent.upscaling import check_model, load_upsampler, plan_upscale, refine_steps, upscale

    report = Reporter(state, "upscale")
    if output is None:
        output = default_output(clip, ".safetensors", tag="-upscaled")
    prepare_output(output, [clip, *([image] if image else [])])
    from vidlatent.generation import random_seed  # torch: once the arguments are good

    picture = media.load_image(image) if image is not None else None
    source = ClipInput.open(clip)
    load = source.load_options(load, model_given)
    described = describe_model(load)
    check_model(described.family, "upscale")
    prompts.check_for(described.spec)
    plan = plan_upscale(upscaler, described.family, described.model_id)
    source.check_video_output(output, load, scale=plan.factor)

    model = load_sampler(load, memory, report, image=picture is not None, info=described)
    start = source.latents(model, report)
    base_seed = seed if seed is not None else (start.seed if start.seed is not None else random_seed())
    if seed is None and start.seed is None:
        announce_seed(report, base_seed)
    with report.timed("load"):
        upsampler = load_upsampler(plan.upscaler, model)
    with report.timed("upscale"), report.progress("upscaling", refine_steps(model) if refine else 0) as progress:
        result = upscale(model, upsampler, start, knobs=prompts, seed=base_seed, image=picture, refine=refine, progress=progress)
    entry = write_clip(result, output, model, memory, report)
    report.note(f"wrote {output} ({start.width}x{start.height} -> {result.width}x{result.height}, {result.pixel_frames} frames)")
    report.summary([entry], stdout_busy=output == STDIO, model=model.model_id, seed=base_seed)

