"""vidlatent calibrate-cache: measure a model's magnitude ratios for --cache mag:ratios=FILE."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import click

from vidlatent.atomic import atomic_output, check_output
from vidlatent.commands.generate import check_inputs, read_image_bytes
from vidlatent.commands.loading import LowMemory, describe_model, load_sampler
from vidlatent.commands.options import output_option, sampler_options
from vidlatent.commands.reporting import Reporter, State, announce_seed
from vidlatent.errors import UsageError


@click.command(
    epilog="""\b
Examples:
  vidlatent calibrate-cache photo.png --model ./my-wan-finetune --steps 40 --seed 1 -o ratios.json
  vidlatent generate photo.png --model ./my-wan-finetune --cache mag:ratios=ratios.json -o clip.mp4
  vidlatent calibrate-cache --model tiny-random-wan22 --prompt "a fox" --size 64x64 --frames 5 --steps 4 -o - | jq .ratios
"""
)
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@output_option("The ratios file to write (JSON), or - for stdout.")
@click.option("--size", metavar="WxH", help="Pixel size. Default: the image's aspect ratio at the model's native area.")
@click.option("--last-image", metavar="PATH", type=click.Path(dir_okay=False),
              help="First-last-frame models (Wan FLF2V, LTX-Video): the frame the video ends on.")
@sampler_options()
def command(state: State, image: str | None, output: str | None, knobs, seed: int | None,  # type: ignore[no-untyped-def]
            size: str | None, last_image: str | None, memory: LowMemory, load, model_given: bool) -> None:
    """Run one generation with diffusers' MagCache in calibration mode (nothing is skipped) and
    write the model's magnitude ratios: per step, how much the norm of the transformer's residual
    (its blocks' output minus their input) changes from the step before, averaged over the
    tokens and over the step's calls (conditional, unconditional). --cache mag:ratios=FILE
    reads them; vidlatent has them built in for the models whose ratios MagCache's authors
    published (Wan 2.1 I2V 480p and 720p).

    Calibrate with the settings you will generate with (the steps matter least: diffusers
    interpolates the ratios to a run's steps); a different prompt or image changes the ratios
    little.
    """
    from vidlatent import media
    from vidlatent.knobs import check_size, default_size
    from vidlatent.step_caches import CacheChoice, check_cache

    report = Reporter(state, "calibrate-cache")
    if output is None:
        raise UsageError("give -o FILE.json (or -o - for stdout) for the ratios")
    if output != "-" and Path(output).suffix != ".json":
        raise UsageError(f"-o {output}: the ratios are JSON; give a .json file (or - for stdout)")
    if load.acceleration.cache is not None:
        raise UsageError(f"--cache {load.acceleration.cache}: calibrate-cache measures the model without a cache; leave it out")
    if knobs.prompt is None and image is None:
        raise UsageError("give IMAGE, or --prompt TEXT for a text-to-video model")
    picture = media.load_image(read_image_bytes(image)) if image is not None else None
    end = media.load_image(last_image) if last_image is not None else None
    described = describe_model(load)
    spec = described.spec
    check_cache(CacheChoice("mag", None), described.family, spec, described.model_id, described.folder, calibrate=True)
    check_inputs(spec, knobs, with_image=picture is not None, last_image=end is not None)
    sampled = media.parse_dimensions(size) if size else default_size(spec, picture.size if picture is not None else None)
    check_size(sampled, spec)
    if output != "-":
        check_output(output, [path for path in (image, last_image) if path is not None and path != "-"])

    from vidlatent.acceleration import denoisers
    from vidlatent.generation import random_seed, sample
    from vidlatent.step_caches import calibrating, ratios_document

    model = load_sampler(load, memory, report, image=picture is not None, info=described)
    if seed is None:
        seed = random_seed()
        announce_seed(report, seed)
    measured = calibrating(model.pipeline, denoisers(model.pipeline), model.family)
    steps = knobs.resolved(model.pipeline, model.family).steps
    with report.timed("generate"), report.progress("calibrating", steps) as progress, \
            contextlib.redirect_stdout(io.StringIO()):  # diffusers prints the ratios; stdout is ours
        sample(model, media.resize_image(picture, sampled) if picture is not None else None, knobs=knobs, seed=seed,
               size=sampled, progress=progress, last_image=media.resize_image(end, sampled) if end is not None else None)
    ratios, calls = measured()
    document = ratios_document(ratios, calls, model=model.model_id, steps=len(ratios))
    text = json.dumps(document, indent=2) + "\n"
    if output == "-":
        click.echo(text, nl=False)
    else:
        with atomic_output(output) as temporary:
            temporary.write_text(text)
        report.note(f"wrote {output} ({len(ratios)} steps); use it with --cache mag:ratios={output}")
    entry = {"path": output if output == "-" else str(Path(output).resolve()), "kind": "ratios", "steps": len(ratios)}
    report.summary([entry], stdout_busy=output == "-", model=model.model_id, seed=seed, ratios=document["ratios"])
