"""vidlatent transfer-motion: one video's motion on another image's appearance."""

from __future__ import annotations

from pathlib import Path

import click

from vidlatent.commands.loading import LowMemory, describe_model, load_sampler
from vidlatent.commands.options import FiniteFloatRange, output_option, sampler_options
from vidlatent.commands.outputs import ClipInput, default_output, prepare_output, write_clip
from vidlatent.commands.reporting import Reporter, State, announce_seed


@click.command(
    name="transfer-motion",
    epilog="""\b
Examples:
  vidlatent transfer-motion bear.gif photo.png -o moving-photo.mp4
  vidlatent transfer-motion clip.safetensors photo.png --refine 0.4 --seed 1 -o out.mp4
  vidlatent generate a.png --seed 1 -o - | vidlatent transfer-motion - b.png --method inversion -o b.mp4
""",
)
@click.argument("motion_clip", metavar="MOTION", type=click.Path(allow_dash=True))
@click.argument("appearance", type=click.Path(allow_dash=False))
@output_option("Video (.mp4, .webm, .gif, folder) or latents (.safetensors, .latent, -). Default: APPEARANCE's name with -motion.mp4.")
@click.option("--method", type=click.Choice(("residual", "inversion")), default="residual", show_default=True,
              help="residual: add the motion's frame differences to the appearance (then --refine); "
                   "inversion: invert the motion clip to noise and sample it on the appearance.")
@click.option("--refine", type=FiniteFloatRange(0, 1), default=0.0, show_default=True,
              help="residual: denoise the sum at this strength, conditioned on the appearance (0 = exact sum, no model).")
@click.option("--match-stats", is_flag=True, help="residual: scale the motion per channel to the appearance's contrast.")
@sampler_options()
def command(state: State, motion_clip: str, appearance: str, output: str | None, method: str, refine: float, match_stats: bool,  # type: ignore[no-untyped-def]
            knobs, seed: int | None, memory: LowMemory, load, model_given: bool) -> None:
    """Apply MOTION's motion (a latent file, -, or a video, encoded first) to APPEARANCE (an
    image, a latent file or a video: its first frame).

    The default method is residual: its identities are exact (a static motion clip gives a
    still result; the motion clip's own first frame as appearance gives the clip back), it needs
    no model without --refine, and --refine re-noises the sum only as far as you ask.
    Inversion samples the whole clip anew from the inverted noise; on the tiny test model its
    round trip (invert, then sample on the same frame) is off by 14-27% of the clip's norm at
    25-50 steps and more with guidance above 1 (docs/transfer-motion.md), so it is the
    method to try when the residual sum looks pasted on, not the default.
    """
    from vidlatent import latentfile, media
    from vidlatent.atomic import STDIO
    from vidlatent.errors import UsageError
    from vidlatent.families.base import IMAGE_NONE
    from vidlatent.knobs import FLAGS

    report = Reporter(state, "transfer-motion")
    if output is None:
        output = default_output(appearance, ".mp4", tag="-motion")
    prepare_output(output, [motion_clip, appearance])
    from vidlatent.generation import random_seed  # torch: once the arguments are good
    from vidlatent.inversion import check_invertible
    from vidlatent.models import load_vae
    from vidlatent.motion_transfer import TransferOptions, transfer

    options = TransferOptions(method=method, refine=refine, match_stats=match_stats)
    options.validate()
    source = ClipInput.open(motion_clip)
    source.check_video_output(output, source.load_options(load, model_given))
    if options.needs_model:  # what the model cannot take, before it loads
        described = describe_model(source.load_options(load, model_given))
        spec = described.spec
        if options.method == "inversion":
            check_invertible(described.family, spec)
        if spec.image == IMAGE_NONE:
            raise UsageError(f"--method {method} --refine {refine}: {spec.title} takes no image to condition on the "
                             "appearance; use a model that animates images, or --refine 0")
        knobs.check_for(spec)
    elif knobs.given():
        flag = FLAGS[next(iter(knobs.given()))]
        raise UsageError(f"{flag} applies only with --refine S or --method inversion (without them no model samples)")
    kind = appearance_kind(appearance)
    appearance_clip = latentfile.read(appearance) if kind == "latents" else None
    image = media.load_image(appearance) if kind == "image" else None
    appearance_plan = None
    if kind == "video":
        from vidlatent.video import plan_encode

        appearance_plan = plan_encode(appearance, selection=media.FrameSelection(frames=1))

    needs_vae = source.clip is None or kind != "latents" or not latentfile.is_latent_path(output)
    model = None
    if options.needs_model:
        model = load_sampler(source.load_options(load, model_given), memory, report, info=described)
    elif needs_vae:
        with report.timed("load"):
            model = load_vae(source.load_options(load, model_given), note=report.note)
    clip = source.latents(model, report)
    if appearance_clip is not None:
        clip.require_space(appearance_clip.latent_space, what=f"the appearance {appearance}")
        latents = appearance_clip.latents[0]
    else:
        image, latents = encode_appearance(image, appearance_plan, clip, model)
    base_seed = seed if seed is not None else (random_seed() if options.needs_model else 0)
    if seed is None and options.needs_model:
        announce_seed(report, base_seed)
    with report.timed("transfer"), report.progress(f"transferring ({method})", progress_total(options, knobs, model)) as progress:
        result = transfer(clip, latents, options=options, appearance_image=image, model=model, knobs=knobs,
                          seed=base_seed, appearance_source=appearance if appearance == STDIO else str(Path(appearance).resolve()),
                          progress=progress)
    entry = write_clip(result, output, model, memory, report)
    report.note(f"wrote {output} ({result.pixel_frames} frames, {method})")
    report.summary([entry], stdout_busy=output == STDIO, model=result.model, seed=base_seed)


def appearance_kind(path: str) -> str:
    """``image``, ``latents`` or ``video``, by the path's suffix (a folder is a video of frames)."""
    from vidlatent import media
    from vidlatent.errors import UsageError

    suffix = Path(path).suffix.lower()
    if suffix in media.IMAGE_SUFFIXES:
        return "image"
    if suffix in (".safetensors", ".latent"):
        return "latents"
    if suffix in media.SUPPORTED_VIDEO_READ or Path(path).is_dir():
        return "video"
    raise UsageError(f"{path}: APPEARANCE must be an image ({', '.join(media.IMAGE_SUFFIXES)}), a latent file or a video")


def encode_appearance(image, plan, clip, model):  # type: ignore[no-untyped-def]
    """The appearance at the motion clip's size: (RGB image, (C, h, w) latents) through the VAE."""
    import numpy as np
    from PIL import Image

    from vidlatent import media

    size = (clip.width, clip.height)
    if image is None:
        frame = next(media.iter_frames(plan.source, plan.selection, size=size))
        image = Image.fromarray(frame)
    image = media.resize_image(image, size)
    latents = model.family.encode_frames([np.asarray(image)], model.vae, device=model.execution_device, chunk=1)
    return image, latents[0]


def progress_total(options, knobs, model) -> int:  # type: ignore[no-untyped-def]
    """Denoising steps the transfer will run: inversion runs the schedule up and down; none
    without the model (residual, no --refine)."""
    from vidlatent.generation import strength_steps

    if not options.needs_model:
        return 0
    steps = knobs.resolved(model.pipeline, model.family).steps
    return 2 * steps if options.method == "inversion" else strength_steps(options.refine, steps)
