"""vidlatent generate: image(s) to video with Stable Video Diffusion."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vidlatent.atomic import STDIO
from vidlatent.commands._shared import (
    LowMemory, Reporter, State, announce_seed, check_video_sizes, common_options, load_sampler, low_memory_options,
    model_options, native_area_before_loading, output_entry, output_option, pass_state, prepare_output,
    sampling_options, seed_option, write_clip,
)
from vidlatent.errors import UsageError

LATENT_SUFFIX = ".safetensors"


@click.command(
    epilog="""\b
Examples:
  vidlatent generate photo.png
  vidlatent generate photo.png --model tiny-random --frames 6 --seed 1 -o clip.mp4
  vidlatent generate photo.png --seed 7 -o - | vidlatent extend - -o - | vidlatent decode - -o long.mp4
  vidlatent generate shots/ --num-videos 2 -o out/{stem}-{index}.mp4
"""
)
@click.argument("images", nargs=-1, required=True, type=click.Path(allow_dash=True))
@output_option(
    "What to write: a video (.mp4, .webm, .gif, or a folder for PNG frames), a latent file (.safetensors), "
    "or - for latents on stdout. With several outputs: a folder, or a pattern with {stem} and {index}. "
    "Default: IMAGE's name with .mp4."
)
@click.option("--latent-out", metavar="PATH", help="Also write the latents here (a pattern or folder with several outputs).")
@sampling_options
@seed_option
@click.option("--num-videos", type=click.IntRange(min=1), default=1, show_default=True, help="Videos per image; video i uses seed+i.")
@click.option("--size", metavar="WxH", help="Pixel size, multiples of 64. Default: the image's aspect ratio at the model's native area.")
@low_memory_options
@model_options
@common_options
@pass_state
def command(state: State, images: tuple[str, ...], output: str | None, latent_out: str | None, knobs, seed: int | None,  # type: ignore[no-untyped-def]
            num_videos: int, size: str | None, memory: LowMemory, load, model_given: bool) -> None:
    """Generate a video from each IMAGE (a file, a folder of images, or - for image bytes on stdin).

    Unset knobs take the diffusers pipeline's own defaults, and --seed N hands
    torch.Generator("cpu").manual_seed(N) to the pipeline: the latents equal, bit for bit, those
    of a diffusers script that does the same. Without --seed a random seed is drawn, printed on
    stderr and recorded in the latent file.
    """
    from vidlatent import latentfile, media

    report = Reporter(state, "generate")
    sources = expand_images(images)
    explicit_size = media.parse_size(size) if size else None
    outputs = plan_outputs(sources, num_videos, output, ".mp4")
    latent_outputs = plan_outputs(sources, num_videos, latent_out, LATENT_SUFFIX) if latent_out else None
    for path in [p for row in latent_outputs or [] for p in row]:
        if not latentfile.is_latent_path(path):
            raise UsageError(f"--latent-out {path}: latents go to a .safetensors (or .latent) file, or - for stdout")
        if path == STDIO and STDIO in outputs[0]:
            raise UsageError("-o - and --latent-out - would both write to stdout; give one of them a file")
    # Read every image now: a bad one fails in a blink, before the model loads; so does a size
    # that the video encoder would refuse once the frames are made.
    image_bytes = {source: read_image_bytes(source) for source in sources}
    native_area = None
    for source, targets in zip(sources, outputs):
        picture = media.load_image(image_bytes[source] if source == STDIO else source)
        if not all(latentfile.is_latent_path(target) for target in targets):
            if explicit_size is None:
                native_area = native_area or native_area_before_loading(load)
            check_video_sizes(targets, explicit_size or media.fit_size(*picture.size, native_area))
    for path in [p for row in outputs + (latent_outputs or []) for p in row]:
        prepare_output(path, sources)
    from vidlatent.generation import file_sha256, generate, random_seed  # torch: only once the arguments are good

    base_seed = random_seed() if seed is None else seed
    model = load_sampler(load, memory, report)
    if seed is None:
        announce_seed(report, base_seed)  # once the model is there: a run that cannot start needs no seed
    steps = knobs.resolved(model.pipeline).steps
    written: list[dict] = []  # type: ignore[type-arg]
    for source_index, source in enumerate(sources):
        data = image_bytes[source]
        image = media.load_image(data)
        for index in range(num_videos):
            video_seed = base_seed + index
            label = Path(source).name if source != STDIO else "stdin"
            with report.timed("generate"), report.progress(f"generating {label}", steps) as progress:
                clip = generate(model, image, knobs=knobs, seed=video_seed, size=explicit_size,
                                source=source if source == STDIO else str(Path(source).resolve()),
                                image_sha256=file_sha256(data), progress=progress)
            latents_at = latent_outputs[source_index][index] if latent_outputs else None
            if latents_at:  # first, so that a failing video writer cannot lose them
                latentfile.write(clip, latents_at)
                written.append(output_entry(latents_at, clip))
            target = outputs[source_index][index]
            written.append(write_clip(clip, target, model, memory, report, latents_at=latents_at))
            report.note(f"wrote {target} ({clip.frames} frames, {clip.width}x{clip.height}, seed {video_seed})")
    report.summary(written, stdout_busy=STDIO in (entry["path"] for entry in written), model=model.model_id, seed=base_seed)


def read_image_bytes(source: str) -> bytes:
    """The bytes of an image file, or of standard input for ``-``."""
    from vidlatent.errors import MediaError

    if source == STDIO:
        if sys.stdin.isatty():
            raise UsageError("-: standard input is a terminal; pipe an image in (cat photo.png | vidlatent generate - -o …)")
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except FileNotFoundError as error:
        raise MediaError(f"{source}: no such image") from error
    except OSError as error:
        raise MediaError(f"{source}: cannot be read ({error.strerror})") from error


def expand_images(arguments: tuple[str, ...]) -> list[str]:
    """Image arguments as a list of files: folders become their images, in natural order."""
    from vidlatent.media import folder_images

    sources: list[str] = []
    for argument in arguments:
        if argument != STDIO and Path(argument).is_dir():
            sources.extend(str(image) for image in folder_images(Path(argument)))
        else:
            sources.append(argument)
    if sources.count(STDIO) > 1:
        raise UsageError("- (stdin) can be given only once")
    return sources


def plan_outputs(sources: list[str], count: int, output: str | None, suffix: str) -> list[list[str]]:
    """The output path of video ``index`` of each source: ``result[source][index]``.

    Args:
        sources: the input images.
        count: videos per image.
        output: -o as given: None (next to each input), a path (one output), a folder, or a
            pattern with {stem} (input name without suffix), {index} and {name} ({stem}, plus
            -{index} when there are several videos per image).
        suffix: the suffix of derived names.
    """
    several = len(sources) * count > 1
    planned: list[list[str]] = []
    for source in sources:
        stem = "stdin" if source == STDIO else Path(source).stem
        row = []
        for index in range(count):
            name = stem if count == 1 else f"{stem}-{index}"
            if output is None:
                if source == STDIO:
                    raise UsageError("reading the image from stdin, there is no name to derive an output from; give -o PATH")
                row.append(str(Path(source).with_name(name + suffix)))
            elif "{" in output:
                try:
                    row.append(output.format(stem=stem, index=index, name=name))
                except (KeyError, IndexError, ValueError) as error:
                    raise UsageError(f"-o {output}: a pattern may use {{stem}}, {{index}} and {{name}} only ({error})") from error
            elif not several:
                row.append(output)
            elif output == STDIO or Path(output).suffix:
                raise UsageError(
                    f"-o {output}: there are {len(sources) * count} outputs; give a folder or a pattern such as out/{{stem}}-{{index}}{suffix}"
                )
            else:
                row.append(str(Path(output) / (name + suffix)))
        planned.append(row)
    flat = [path for row in planned for path in row]
    if len(set(flat)) != len(flat):
        raise UsageError(f"-o {output}: several outputs would get the same name; use a pattern with {{index}} or {{stem}}")
    return planned
