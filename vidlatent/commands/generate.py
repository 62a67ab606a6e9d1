"""vidlatent generate: image(s) or a prompt to video, with any model family."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vidlatent.atomic import STDIO
from vidlatent.commands._shared import (
    LowMemory, Reporter, State, acceleration_options, announce_seed, common_options, describe_model, load_sampler,
    low_memory_options, model_options, output_entry, output_option, pass_state, prepare_output, sampling_options,
    seed_option, write_clip,
)
from vidlatent.errors import UsageError

LATENT_SUFFIX = ".safetensors"
TEXT_ONLY = ""  # the one "source" of a generation from the prompt alone


@click.command(
    epilog="""\b
Examples:
  vidlatent generate photo.png
  vidlatent generate photo.png --model tiny-random --frames 6 --seed 1 -o clip.mp4
  vidlatent generate photo.png --seed 7 -o - | vidlatent extend - -o - | vidlatent decode - -o long.mp4
  vidlatent generate shots/ --num-videos 2 -o out/{stem}-{index}.mp4
  vidlatent generate photo.png --model wan22-ti2v-5b --prompt "a fox runs through snow" -o fox.mp4
  vidlatent generate --model tiny-random-wan22 --prompt "a fox" --size 64x64 --frames 9 --steps 2 -o fox.mp4
"""
)
@click.argument("images", nargs=-1, required=False, type=click.Path(allow_dash=True))
@output_option(
    "What to write: a video (.mp4, .webm, .gif, or a folder for PNG frames), a latent file (.safetensors), "
    "or - for latents on stdout. With several outputs: a folder, or a pattern with {stem} and {index}. "
    "Default: IMAGE's name with .mp4."
)
@click.option("--latent-out", metavar="PATH", help="Also write the latents here (a pattern or folder with several outputs).")
@click.option("--last-image", metavar="PATH", type=click.Path(dir_okay=False),
              help="First-last-frame models (Wan FLF2V): the frame the video ends on.")
@sampling_options
@seed_option
@click.option("--num-videos", type=click.IntRange(min=1), default=1, show_default=True, help="Videos per image; video i uses seed+i.")
@click.option("--size", metavar="WxH",
              help="Pixel size, multiples of the model's size multiple (SVD 64, Wan 2.1 16, Wan 2.2 TI2V 32). "
                   "Default: the image's aspect ratio at the model's native area (its native size for text only).")
@low_memory_options
@model_options
@acceleration_options
@common_options
@pass_state
def command(state: State, images: tuple[str, ...], output: str | None, latent_out: str | None, last_image: str | None,  # type: ignore[no-untyped-def]
            knobs, seed: int | None, num_videos: int, size: str | None, memory: LowMemory, load, model_given: bool) -> None:
    """Generate a video from each IMAGE (a file, a folder of images, or - for image bytes on
    stdin), or from --prompt alone (no IMAGE) on models that can (Wan 2.2 TI2V and T2V).

    Unset knobs take the diffusers pipeline's own defaults, and --seed N hands
    torch.Generator("cpu").manual_seed(N) to the pipeline: the latents equal, bit for bit, those
    of a diffusers script that does the same. Without --seed a random seed is drawn, printed on
    stderr and recorded in the latent file. Knobs a model does not take (--prompt on SVD,
    --motion on Wan) and frame counts or sizes it cannot make are refused before it loads.
    """
    from vidlatent import latentfile, media
    from vidlatent.generation import check_size, file_sha256, generate, random_seed

    report = Reporter(state, "generate")
    sources = expand_images(images)
    if not sources and knobs.prompt is None:
        raise UsageError("give IMAGE... to animate, or --prompt TEXT (without IMAGE) for text to video")
    explicit_size = media.parse_dimensions(size) if size else None
    outputs = plan_outputs(sources or [TEXT_ONLY], num_videos, output, ".mp4")
    latent_outputs = plan_outputs(sources or [TEXT_ONLY], num_videos, latent_out, LATENT_SUFFIX) if latent_out else None
    # Read every image now: a bad one fails in a blink, before the model loads.
    image_bytes = {source: read_image_bytes(source) for source in sources}
    for source, data in image_bytes.items():
        media.load_image(data if source == STDIO else source)
    end_image = media.load_image(last_image) if last_image is not None else None
    spec = describe_model(load).spec
    check_inputs(spec, knobs, with_image=bool(sources), last_image=end_image is not None)
    if explicit_size is not None:
        check_size(explicit_size, spec)
    inputs = [*sources, *([last_image] if last_image else [])]
    for path in [p for row in outputs + (latent_outputs or []) for p in row]:
        prepare_output(path, inputs)

    base_seed = random_seed() if seed is None else seed
    if seed is None:
        announce_seed(report, base_seed)
    model = load_sampler(load, memory, report, image=bool(sources))
    steps = knobs.resolved(model.pipeline, model.family).steps
    written: list[dict] = []  # type: ignore[type-arg]
    for source_index, source in enumerate(sources or [TEXT_ONLY]):
        data = image_bytes.get(source, b"")
        image = media.load_image(data) if source != TEXT_ONLY else None
        for index in range(num_videos):
            video_seed = base_seed + index
            label = {STDIO: "stdin", TEXT_ONLY: "from the prompt"}.get(source) or Path(source).name
            with report.timed("generate"), report.progress(f"generating {label}", steps) as progress:
                clip = generate(model, image, knobs=knobs, seed=video_seed, size=explicit_size,
                                source=source if source in (STDIO, TEXT_ONLY) else str(Path(source).resolve()),
                                image_sha256=file_sha256(data) if image is not None else "", progress=progress,
                                last_image=end_image)
            if latent_outputs:
                latentfile.write(clip, latent_outputs[source_index][index])
                written.append(output_entry(latent_outputs[source_index][index], clip))
            target = outputs[source_index][index]
            written.append(write_clip(clip, target, model, memory, report))
            report.note(f"wrote {target} ({clip.pixel_frames} frames, {clip.width}x{clip.height}, seed {video_seed})")
    report.summary(written, stdout_busy=STDIO in (entry["path"] for entry in written), model=model.model_id, seed=base_seed)


def check_inputs(spec, knobs, *, with_image: bool, last_image: bool) -> None:  # type: ignore[no-untyped-def]
    """Refuse, before the model loads, what the model cannot take: an image it does not use, no
    image where it needs one, a last frame, knobs and frame counts."""
    from vidlatent.families.base import IMAGE_NONE, IMAGE_REQUIRED

    if with_image and spec.image == IMAGE_NONE:
        raise UsageError(f"{spec.title} is text to video and takes no IMAGE; give --prompt TEXT alone")
    if not with_image and spec.image == IMAGE_REQUIRED:
        raise UsageError(f"{spec.title} animates an image: give IMAGE (text alone needs a text-to-video model)")
    if last_image and not spec.last_image:
        raise UsageError(f"--last-image: {spec.title} is not a first-last-frame model (Wan 2.1 FLF2V is)")
    if spec.last_image and with_image and not last_image:
        raise UsageError(f"{spec.title} is conditioned on a first and a last frame: give --last-image PATH too")
    if last_image and not with_image:
        raise UsageError("--last-image needs IMAGE, the first frame")
    knobs.check_for(spec)


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
        stem = {STDIO: "stdin", TEXT_ONLY: "prompt"}.get(source) or Path(source).stem
        row = []
        for index in range(count):
            name = stem if count == 1 else f"{stem}-{index}"
            if output is None:
                if source == STDIO:
                    raise UsageError("reading the image from stdin, there is no name to derive an output from; give -o PATH")
                if source == TEXT_ONLY:
                    raise UsageError("generating from the prompt alone, there is no input name to derive an output from; give -o PATH")
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
