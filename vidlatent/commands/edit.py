"""vidlatent edit: SDEdit towards a new first frame, direction arithmetic and temporal filters."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from vidlatent.atomic import STDIO
from vidlatent.commands.loading import LowMemory, load_sampler
from vidlatent.commands.options import FiniteFloat, FiniteFloatRange, output_option, sampler_options
from vidlatent.commands.outputs import ClipInput, check_latent_targets, default_output, output_entry, prepare_latent_output
from vidlatent.commands.reporting import Reporter, State, announce_seed
from vidlatent.errors import UsageError
from vidlatent.regions import ANCHORS
from vidlatent.progress import no_progress


@click.command(
    epilog="""\b
Examples:
  vidlatent edit clip.safetensors --image new-first-frame.png --strength 0.6 --seed 1 -o edited.safetensors
  vidlatent edit clip.safetensors --direction smile.safetensors --scale 0.5 --smooth 1 -o happier.safetensors
  vidlatent edit clip.safetensors --trim 2:-2 --reverse --loop -o loop.safetensors
  vidlatent interpolate clip.safetensors --factor 2 -o - | vidlatent edit - --smooth 1 -o - | vidlatent decode - -o out.mp4
  vidlatent edit street.mp4 --model wan21-vace-1.3b --mask car.png --mask-grow 8 --prompt "an empty street" -o - | vidlatent decode - -o empty.mp4
  vidlatent edit clip.safetensors --model wan21-vace-1.3b --outpaint 208,208,0,0 --prompt "a wide beach" -o wide.safetensors
"""
)
@click.argument("clip", type=click.Path(allow_dash=True))
@output_option("Latent file to write (.safetensors, or - for stdout). Default: CLIP's name with -edited.safetensors.")
@click.option("--trim", metavar="START:END", help="Keep latent frames START to END-1 (either may be left out; negative counts from the end; "
                                                 "`vidlatent inspect CLIP` shows how many latent frames a clip has).")
@click.option("--reverse", is_flag=True, help="Play the clip backwards.")
@click.option("--image", type=click.Path(dir_okay=False), metavar="PATH",
              help="Re-generate the clip towards this new first frame (needs --strength; loads the model).")
@click.option("--strength", type=FiniteFloatRange(0, 1), metavar="S",
              help="With --image: 0 keeps the clip exactly, 1 is a fresh generate from the image; S x STEPS steps run.")
@click.option("--direction", "direction_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="Add this direction (made by vidlatent direction) to every frame.")
@click.option("--scale", type=FiniteFloat(), metavar="A", help="With --direction: add A times the direction [1.0].")
@click.option("--pca-shift", metavar="COMPONENT:AMOUNT",
              help="Move every frame along a principal component (1 = PC1) by AMOUNT standardised units; needs --components.")
@click.option("--components", "components_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="With --pca-shift: the components file written by vidlatent analyze --save-components.")
@click.option("--smooth", type=FiniteFloatRange(min=0), metavar="SIGMA", help="Temporal Gaussian smoothing, SIGMA in latent frames.")
@click.option("--loop", is_flag=True, help="Crossfade the tail into the head so the clip loops (it gets shorter by the crossfade).")
@click.option("--loop-frames", type=click.IntRange(min=1), metavar="N", help="With --loop: latent frames of the crossfade [a quarter of the clip's].")
@click.option("--mask", metavar="MASK",
              help="VACE: regenerate the white part of MASK (an image for every frame, or a video or folder with a mask per "
                   "frame), keep the black; CLIP may be a video. See \"Editing regions\" in the README.")
@click.option("--box", metavar="X,Y,W,H", help="VACE: regenerate this rectangle (pixels of the clip's frames) instead of --mask.")
@click.option("--mask-invert", is_flag=True, help="Regenerate the black part of the mask instead.")
@click.option("--mask-grow", type=click.IntRange(min=1), metavar="PIXELS", help="Dilate the mask's white part by PIXELS.")
@click.option("--mask-feather", type=FiniteFloatRange(min=0, min_open=True), metavar="RADIUS",
              help="Blur the mask's edge (Gaussian, RADIUS pixels).")
@click.option("--keep-unmasked", is_flag=True,
              help="With a mask: put the source's own latents back wherever a latent pixel is wholly outside the mask, so "
                   "the kept region decodes as the source does (the file then differs from VACE's output there).")
@click.option("--outpaint", metavar="LEFT,RIGHT,TOP,BOTTOM",
              help="VACE: place the clip in a larger frame with these margins (pixels, rounded up to the model's size "
                   "multiple) and generate the new border.")
@click.option("--size", "canvas_size", metavar="WxH", help="VACE: outpaint to this size, the clip placed at --anchor.")
@click.option("--anchor", type=click.Choice(ANCHORS), metavar="POSITION",
              help=f"With --size: where the clip sits in the new frame: {', '.join(ANCHORS)} [center].")
@click.option("--reference", "references", multiple=True, metavar="IMG",
              help="VACE, with a region: an image of the subject or style to put there (repeatable); the history "
                   "records its path and SHA-256.")
@sampler_options()
def command(state: State, clip: str, output: str | None, trim: str | None, reverse: bool, image: str | None,  # type: ignore[no-untyped-def]
            strength: float | None, direction_path: str | None, scale: float | None, pca_shift: str | None,
            components_path: str | None, smooth: float | None, loop: bool,
            loop_frames: int | None, mask: str | None, box: str | None, mask_invert: bool, mask_grow: int | None,
            mask_feather: float | None, keep_unmasked: bool, outpaint: str | None, canvas_size: str | None, anchor: str | None,
            references: tuple[str, ...], knobs, seed: int | None, memory: LowMemory, load, model_given: bool) -> None:
    """Edit CLIP (a latent file, or - for stdin) in latent space.

    The operations given apply in this order, whatever the order on the command line:
    --trim, --reverse, --image/--strength, --direction/--scale, --pca-shift, --smooth, --loop. The history
    records them, in order, in one edit step.

    --image IMG --strength S re-generates the clip towards a new first frame (SDEdit): the
    clip is noised to the level that S picks in the model's own sigma schedule and denoised by
    the model conditioned on IMG. S = 0 returns the clip exactly; S = 1 equals `vidlatent
    generate IMG` with the same --seed, --steps and size; a Wan clip keeps its own prompt
    unless --prompt is given. Only --image loads a model (the clip's own, unless --model is
    given); the other operations work on the latents alone.

    --mask, --box, --outpaint and --size/--anchor edit a region of the frames with a VACE model
    (--model wan21-vace-1.3b, ...): the region is regenerated, the rest kept. CLIP may then be a
    video too; a latent clip is decoded first. They are an edit of their own: the latent
    operations go in a second edit. See docs/editing.md.
    """
    from vidlatent.commands._regions import RegionOptions, run
    from vidlatent.knobs import Knobs

    report = Reporter(state, "edit")
    region = RegionOptions(mask=mask, box=box, invert=mask_invert, grow=mask_grow, feather=mask_feather, outpaint=outpaint,
                           size=canvas_size, anchor=anchor, references=references, keep_unmasked=keep_unmasked)
    if region.given:
        latent_operations = [flag for flag, value in (("--trim", trim), ("--reverse", reverse), ("--image", image),
                                                      ("--direction", direction_path), ("--pca-shift", pca_shift),
                                                      ("--smooth", smooth), ("--loop", loop)) if value]
        if latent_operations:
            raise UsageError(f"{region.flag} and {latent_operations[0]}: a region edit is an edit of its own; "
                             f"run {latent_operations[0]} in a second edit (vidlatent edit - …)")
        run(report, clip, output, region, knobs, seed, memory, load, model_given)
        return
    if image is None:
        if strength is not None:
            raise UsageError("--strength applies only with --image PATH")
        if seed is not None:
            raise UsageError("--seed applies only with --image PATH")
        if knobs != Knobs():
            raise UsageError("the sampling knobs (--steps, --motion, …) apply only with --image PATH")
    elif strength is None:
        raise UsageError("--image needs --strength S (0-1): how much of the clip to re-generate")
    if scale is not None and direction_path is None:
        raise UsageError("--scale needs --direction PATH")
    if STDIO in (image, direction_path, components_path):
        raise UsageError("--image, --direction and --components take files; only CLIP may be - (stdin)")
    output = output or default_output(clip, ".safetensors", tag="-edited")
    prepare_latent_output(output, "edit", [path for path in (clip, image, direction_path, components_path) if path])

    from vidlatent import editing, latentfile, media  # torch: once the arguments are good
    from vidlatent.analysis import load_components
    from vidlatent.families.base import IMAGE_NONE
    from vidlatent.generation import file_sha256, random_seed, strength_steps, with_clip_prompts

    picture = media.load_image(image) if image is not None else None  # a missing or unreadable image fails here, named
    source = editing.read_clip(clip, command="edit")
    check_latent_targets([output], source.layout.family)
    regeneration = None
    if image is not None:
        assert strength is not None
        regeneration = editing.Regeneration(image=picture, strength=strength, knobs=with_clip_prompts(knobs, source),
                                            seed=random_seed() if seed is None else seed,
                                            source=str(Path(image).resolve()), image_sha256=file_sha256(Path(image).read_bytes()))
    direction = editing.read_clip(direction_path, kind="direction", command="edit") if direction_path else None
    plan = editing.EditPlan(
        trim=editing.parse_trim(trim) if trim is not None else None, reverse=reverse, regeneration=regeneration,
        direction=direction, scale=1.0 if scale is None else scale, smooth=smooth or 0.0, loop=loop, loop_frames=loop_frames,
        direction_source=str(Path(direction_path).resolve()) if direction_path else "",
        pca_shift=editing.parse_pca_shift(pca_shift) if pca_shift is not None else None,
        components=load_components(components_path) if components_path else None,
        components_source=str(Path(components_path).resolve()) if components_path else "",
    )
    plan.validate(source)

    model = None
    if plan.needs_model:
        assert regeneration is not None
        load, described = ClipInput(path=clip, clip=source).describe(load, model_given)
        spec = described.spec
        if spec.image == IMAGE_NONE:
            raise UsageError(f"--image: {spec.title} takes no image, so it cannot re-generate towards one; "
                             "use a model that animates images (--model …)")
        regeneration.knobs.check_for(spec)
        model = load_sampler(load, memory, report, info=described)
    if regeneration is not None and seed is None:
        announce_seed(report, regeneration.seed)
    steps = strength_steps(strength or 0.0, knobs.resolved(model.pipeline, model.family).steps) if model is not None else 0
    bar = report.progress("re-generating", steps) if model is not None else contextlib.nullcontext(no_progress)
    with report.timed("edit"), bar as progress:
        result = editing.edit(source, plan, model=model, progress=progress)
    latentfile.write(result, output)
    names = ", ".join(step["operation"] for step in result.history[-1]["arguments"]["operations"])
    report.note(f"wrote {output} ({names}; {source.pixel_frames} -> {result.pixel_frames} frames)")
    seeded = {"seed": regeneration.seed} if regeneration is not None else {}
    report.summary([output_entry(output, result)], stdout_busy=output == STDIO, model=result.model, **seeded)
