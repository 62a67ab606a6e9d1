"""vidlatent generate: image(s) or a prompt to video, with any model family."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from vidlatent import distributed
from vidlatent.atomic import STDIO
from vidlatent.commands import _batch
from vidlatent.commands.loading import LowMemory, describe_model, join_launch, load_sampler
from vidlatent.commands.options import (first_last_frame_models_in_words, output_option, plan_options, sampler_options,
                                       segment_sampling_options, size_multiples_in_words)
from vidlatent.commands.outputs import (
    TEXT_ONLY, check_latent_targets, check_video_sizes, expand_inputs, output_entry, plan_outputs, prepare_output, write_clip,
)
from vidlatent.commands.reporting import Reporter, State, announce_seed
from vidlatent.commands.upscale import upscaler_option
from vidlatent.errors import Note, UsageError

LATENT_SUFFIX = ".safetensors"


@click.command(
    epilog="""\b
Examples:
  vidlatent generate photo.png
  vidlatent generate photo.png --model tiny-random --frames 6 --seed 1 -o clip.mp4
  vidlatent generate photo.png --seed 7 -o - | vidlatent extend - -o - | vidlatent decode - -o long.mp4
  vidlatent generate shots/ --num-videos 2 -o out/{stem}-{index}.mp4
  vidlatent generate photo.png --model wan22-ti2v-5b --prompt "a fox runs through snow" -o fox.mp4
  vidlatent generate --model tiny-random-wan22 --prompt "a fox" --size 64x64 --frames 9 --steps 2 -o fox.mp4
  vidlatent generate --model skyreels-v2-df-1.3b-540p --prompt "a fox runs" --prompt "the fox jumps" --frames 177 --history 17 -o fox.mp4
  vidlatent generate photo.png --model ltx-0.9.7-distilled --prompt "waves roll in" --upscale -o waves.mp4
  vidlatent generate --model wan21-vace-1.3b --keyframe 0:a.png --keyframe 2.5s:b.png --prompt "a dog runs" -o dog.mp4
  vidlatent generate --model ltx2 --keyframe 0:a.png --keyframe 57:b.png --prompt "a dog barks" --frames 97 -o dog.mp4
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
              help=f"First-last-frame models ({first_last_frame_models_in_words()}): the frame the video ends on.")
@click.option("--num-videos", type=click.IntRange(min=1), default=1, show_default=True, help="Videos per image; video i uses seed+i.")
@click.option("--context-parallel", type=int, metavar="N",
              help="Under torchrun --nproc-per-node N: split each Wan video over the N processes (diffusers' context "
                   "parallelism, Ulysses); the result equals one process's.")
@click.option("--size", metavar="WxH",
              help=f"Pixel size, multiples of the model's size multiple ({size_multiples_in_words()}). "
                   "Default: the image's aspect ratio at the model's native area (its native size for text only).")
@click.option("--upscale", is_flag=True,
              help="LTX, LTX-2: generate at half the size, upsample the latents 2x with the family's latent upsampler and "
                   "refine them (its multi-scale or two-stage workflow); --size is the final size.")
@upscaler_option
@click.option("--keyframe", "keyframes", multiple=True, metavar="INDEX:IMAGE",
              help="VACE, LTX-2: keep IMAGE as frame INDEX (a frame number, or a time in seconds: 2.5s) and generate the "
                   "frames between; repeatable, instead of IMAGE. LTX-2 places keyframes at frames 8k+1 (and 0): another "
                   "INDEX goes to the nearest, with a note.")
@click.option("--reference", "references", multiple=True, metavar="IMG",
              help="VACE: an image of a subject or style for the video to show (repeatable); the history records its path "
                   "and SHA-256.")
@plan_options
@sampler_options(segment_sampling_options)
def command(state: State, images: tuple[str, ...], output: str | None, latent_out: str | None, last_image: str | None,  # type: ignore[no-untyped-def]
            knobs, segments, seed: int | None, num_videos: int, context_parallel: int | None, size: str | None, upscale: bool,
            upscaler: str | None, keyframes: tuple[str, ...], references: tuple[str, ...], show_plan: bool, vram: str | None,
            memory: LowMemory, load, model_given: bool) -> None:
    """Generate a video from each IMAGE (a file, a folder of images, or - for image bytes on
    stdin), or from --prompt alone (no IMAGE) on models that can (Wan 2.2 TI2V and T2V).

    Unset knobs take the diffusers pipeline's own defaults, and --seed N hands
    torch.Generator("cpu").manual_seed(N) to the pipeline: the latents equal, bit for bit, those
    of a diffusers script that does the same. Without --seed a random seed is drawn, printed on
    stderr and recorded in the latent file. Knobs a model does not take (--prompt on SVD,
    --motion on Wan) and frame counts or sizes it cannot make are refused before it loads.

    SkyReels-V2 DF makes a --frames longer than its --window natively, in overlapping windows,
    each continuing the last --history frames of the one before; --prompt repeated (or --prompts
    FILE) gives each window its own prompt, and the history records the frames each made.
    """
    from vidlatent import latentfile, media, upscaling
    from vidlatent.knobs import check_size, default_size
    from vidlatent.media import folder_images
    from vidlatent.prompts import check_window_prompts

    report = Reporter(state, "generate")
    ranks = distributed.launched()
    if context_parallel is not None:
        check_launch(context_parallel, ranks)  # the command line alone: before anything is read or loaded
    sources = expand_inputs(images, folder_files=folder_images)
    if keyframes and sources:
        raise UsageError(f"--keyframe {keyframes[0]} and IMAGE: give the first frame as --keyframe 0:IMAGE")
    if keyframes and last_image:
        raise UsageError(f"--keyframe {keyframes[0]} and --last-image: give the last frame as --keyframe INDEX:IMAGE")
    if not sources and knobs.prompt is None and not keyframes and not references:
        raise UsageError("give IMAGE... to animate, or --prompt TEXT (without IMAGE) for text to video")
    explicit_size = media.parse_dimensions(size) if size else None
    outputs = plan_outputs(sources or [TEXT_ONLY], num_videos, output, ".mp4")
    latent_outputs = plan_outputs(sources or [TEXT_ONLY], num_videos, latent_out, LATENT_SUFFIX) if latent_out else None
    for path in [p for row in latent_outputs or [] for p in row]:
        if not latentfile.is_latent_path(path):
            raise UsageError(f"--latent-out {path}: latents go to a .safetensors (or .latent) file, or - for stdout")
        if path == STDIO and STDIO in outputs[0]:
            raise UsageError("-o - and --latent-out - would both write to stdout; give one of them a file")
    # Read every image now: a bad one fails in a blink, before the model loads; in a batch it
    # fails its own outputs only (reported at the end), unless every image is bad.
    image_bytes, image_sizes, unreadable = read_images(sources)
    end_image = media.load_image(last_image) if last_image is not None else None
    described = describe_model(load)
    spec = described.spec
    conditioned = read_regions(described, keyframes, references, knobs)  # --keyframe, --reference: VACE
    check_inputs(spec, knobs, with_image=bool(sources), last_image=end_image is not None)
    # Keyframes stand for the image: the default size keeps the first one's aspect ratio.
    keyframe_size = next(iter(conditioned[0].values())).image.size if conditioned is not None and conditioned[0] else None
    windows = check_window_prompts(described.family, spec, knobs, segments)
    if upscaler is not None and not upscale:
        raise UsageError("--upscaler needs --upscale")
    plan = upscaling.plan_upscale(upscaler, described.family, described.model_id) if upscale else None
    if explicit_size is not None:
        check_size(explicit_size, spec)
    # Each source's size, once: the video's (--upscale: upsampled from the sampled one), which the
    # video encoder must take (checked now, not once the frames are made), and the size sampled.
    sizes: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}  # source -> (sampled, final)
    for source, targets in zip(sources or [TEXT_ONLY], outputs):
        image_size = image_sizes.get(source, keyframe_size)
        if plan is None:
            final = explicit_size or default_size(spec, image_size)
            sizes[source] = (final, final)
        else:
            final = plan.final_size(spec, explicit_size, image_size)
            sizes[source] = (plan.sampled_size(spec, final), final)
        if explicit_size is None:  # the image's aspect at the model's area: still within what it takes?
            check_size(sizes[source][0], spec, flag=f"{label_of(source)}: the size it gives,")
        check_video_sizes(targets, final)
        check_latent_targets(targets, described.family.name)
    if context_parallel is not None:
        check_context_parallel(context_parallel, ranks, described, image_sizes, explicit_size, knobs, load.acceleration.attention)
    if show_plan or vram is not None:
        from vidlatent.commands.plan import make_request, planned_flags, show

        # The largest size sampled bounds the run's memory (--upscale: its refining pass samples at the final size).
        largest = max((final if plan is not None else sampled for sampled, final in sizes.values()),
                      key=lambda pixels: pixels[0] * pixels[1])
        request = make_request(load, memory, knobs, largest, image=bool(sources), family=described.family)
        if show_plan:
            show(state, request, described, vram)
            return
        load, memory = planned_flags(request, described, vram, memory, report.note)
    inputs = [*sources, *([last_image] if last_image else [])]
    for path in [p for row in outputs + (latent_outputs or []) for p in row]:
        prepare_output(path, inputs)

    from vidlatent import regions
    from vidlatent.generation import file_sha256, generate, random_seed  # torch: only once the arguments are good

    load = join_launch(load, ranks)
    base_seed = distributed.broadcast(random_seed(), ranks) if seed is None else seed
    model = load_sampler(load, memory, report, image=bool(sources), last_image=end_image is not None, info=described)
    if seed is None:
        announce_seed(report, base_seed)  # once the model is there: a run that cannot start needs no seed
    if context_parallel is not None:
        model.family.enable_context_parallel(model.pipeline, context_parallel)
    steps = knobs.resolved(model.pipeline, model.family).steps * len(windows)  # a long DF video: each window's steps
    upsampler = upscaling.load_upsampler(plan.upscaler, model) if plan is not None else None
    # One job per video: (source's index, source, video index); video i of an image uses seed + i.
    jobs = [(row, source, index) for row, source in enumerate(sources or [TEXT_ONLY]) for index in range(num_videos)]

    def label(job: tuple[int, str, int]) -> str:
        return "the keyframes" if keyframes else label_of(job[1])

    def make(job: tuple[int, str, int]) -> list[dict]:  # type: ignore[type-arg]
        row, source, index = job
        if source in unreadable:
            raise unreadable[source]
        data = image_bytes.get(source, b"")
        image = media.load_image(data) if source != TEXT_ONLY else None
        video_seed = base_seed + index
        sampled, final = sizes[source]
        with report.timed("generate"), report.progress(f"generating from {label(job)}", steps) as progress:
            origin = source if source in (STDIO, TEXT_ONLY) else str(Path(source).resolve())
            if conditioned is not None:
                clip = regions.generate_clip(model, keyframes=conditioned[0], references=conditioned[1], knobs=knobs,
                                             seed=video_seed, size=sampled, image=image, progress=progress,
                                             record={"source": origin, "image_sha256": file_sha256(data) if image is not None else ""})
            else:
                clip = generate(model, image, knobs=knobs, seed=video_seed, size=sampled, source=origin,
                                image_sha256=file_sha256(data) if image is not None else "", progress=progress,
                                last_image=end_image, prompts=[segment.prompt for segment in segments])
        if upsampler is not None:
            with report.timed("upscale"), report.progress("upscaling", upscaling.refine_steps(model)) as progress:
                clip = upscaling.upscale(model, upsampler, clip, knobs=knobs, seed=video_seed,
                                         image=media.resize_image(image, final) if image is not None else None,
                                         progress=progress)
        if not ranks.main and context_parallel is not None:
            return []  # every process made this video together; rank 0 writes it
        written = []
        latents_at = latent_outputs[row][index] if latent_outputs else None
        if latents_at:  # first, so that a failing video writer cannot lose them
            latentfile.write(clip, latents_at)
            written.append(output_entry(latents_at, clip))
        target = outputs[row][index]
        written.append(write_clip(clip, target, model, memory, report, latents_at=latents_at))
        report.note(f"wrote {target} ({clip.pixel_frames} frames, {clip.width}x{clip.height}, seed {video_seed})")
        return written

    entries = _batch.run(jobs, make, label=label, ranks=ranks, share=context_parallel is None, note=report.note)
    report.summary(entries, stdout_busy=STDIO in (entry["path"] for entry in entries), model=model.model_id, seed=base_seed)


def label_of(source: str) -> str:
    """An input as messages name it."""
    return {STDIO: "stdin", TEXT_ONLY: "the prompt"}.get(source) or Path(source).name


def check_launch(degree: int, ranks: distributed.Ranks) -> None:
    """--context-parallel N needs N processes of a launch: torch-free, answered at once."""
    if degree < 2:
        raise UsageError(f"--context-parallel {degree}: must be at least 2 (the processes that share one video)")
    if ranks.world != degree:
        raise UsageError(f"--context-parallel {degree}: run it under torchrun --nproc-per-node {degree} "
                         f"(this launch has {ranks.world} process(es))")


def check_context_parallel(degree, ranks, described, image_sizes, size, knobs, attention=None) -> None:  # type: ignore[no-untyped-def]
    """--context-parallel N: the model, the video and --attention can be split N ways, checked before loading."""
    import torch

    from vidlatent.attention import BACKENDS
    from vidlatent.knobs import default_size

    if attention is not None and not BACKENDS[attention].context_parallel:
        able = ", ".join(name for name, backend in BACKENDS.items() if backend.context_parallel)
        raise UsageError(f"--attention {attention}: diffusers cannot split it over processes (--context-parallel); "
                         f"use one of {able}")
    spec = described.spec
    frames = knobs.frames or spec.frames
    for image_size in list(image_sizes.values()) or [None]:
        described.family.check_context_parallel(described.folder, spec, size or default_size(spec, image_size), frames, degree)
    if torch.accelerator.device_count() == 0:
        # diffusers 0.42.1 places each rank on device rank % torch.accelerator.device_count().
        raise UsageError(f"--context-parallel {degree}: needs GPUs (diffusers places each process on an accelerator; "
                         "this machine has none)")


def read_regions(described, keyframes: tuple[str, ...], references: tuple[str, ...], knobs):  # type: ignore[no-untyped-def]
    """--keyframe and --reference, checked and read before the model loads: (frame -> keyframe,
    references), or None where neither is given. VACE models (``Family.regions``), and for
    keyframes alone the families that place images at any frame (``Family.frame_conditions``)."""
    if not keyframes and not references:
        return None
    from vidlatent import regions

    spec, conditions = described.spec, described.family.frame_conditions
    if references or conditions is None:
        regions.require_regions(described.family, spec, "--reference" if references else "--keyframe")
    parsed = [regions.parse_keyframe(text, spec.fps) for text in keyframes]
    frames = knobs.frames or spec.frames
    regions.check_keyframes([index for index, _ in parsed], keyframes, frames)
    if described.family.regions is None:  # images at frames the family places itself (LTX-2: by latent frame)
        for note in conditions.placements({index: text for (index, _), text in zip(parsed, keyframes)}, frames):
            warnings.warn(Note(note))
    known = {index: regions.Reference.read(path, "--keyframe") for index, path in parsed}
    return known, [regions.Reference.read(path) for path in references]


def check_inputs(spec, knobs, *, with_image: bool, last_image: bool) -> None:  # type: ignore[no-untyped-def]
    """Refuse, before the model loads, what the model cannot take: an image it does not use, no
    image where it needs one, a last frame, knobs and frame counts."""
    from vidlatent.families.base import IMAGE_NONE, IMAGE_REQUIRED

    if with_image and spec.image == IMAGE_NONE:
        raise UsageError(f"{spec.title} is text to video and takes no IMAGE; give --prompt TEXT alone")
    if not with_image and spec.image == IMAGE_REQUIRED:
        raise UsageError(f"{spec.title} animates an image: give IMAGE (text alone needs a text-to-video model)")
    if last_image and not spec.last_image:
        raise UsageError(f"--last-image: {spec.title} is not a first-last-frame model (Wan 2.1 FLF2V, LTX-Video and LTX-2 are)")
    if spec.last_image and not spec.last_image_optional and with_image and not last_image:
        raise UsageError(f"{spec.title} is conditioned on a first and a last frame: give --last-image PATH too")
    if last_image and not with_image:
        raise UsageError("--last-image needs IMAGE, the first frame")
    knobs.check_for(spec)


def read_images(sources: list[str]) -> tuple[dict[str, bytes], dict[str, tuple[int, int]], dict[str, Exception]]:
    """Every image's bytes and (width, height), from one decode that checks it is an image; with
    several, the unreadable ones apart.

    One image, or a batch whose every image is unreadable, fails here with the first error.
    """
    from vidlatent import media

    def read_image(source: str) -> tuple[bytes, tuple[int, int]]:
        data = read_image_bytes(source)
        return data, media.load_image(data if source == STDIO else source).size  # only an image that decodes

    opened, unreadable = _batch.open_inputs(sources, read_image)
    return ({source: data for source, (data, _) in opened.items()}, {source: size for source, (_, size) in opened.items()},
            unreadable)


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
