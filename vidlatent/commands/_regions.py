"""edit's region editing (--mask, --box, --outpaint, --size/--anchor, --reference) with a VACE
model: the checks before loading, the input's frames (a video read, or a latent clip decoded),
one pipeline call (``vidlatent.regions``) and the clip written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidlatent.atomic import STDIO
from vidlatent.commands.loading import LowMemory, load_sampler
from vidlatent.commands.outputs import ClipInput, default_output, output_entry, prepare_latent_output
from vidlatent.commands.reporting import Reporter, announce_seed
from vidlatent.errors import UsageError


@dataclass(frozen=True)
class RegionOptions:
    """edit's region options as given (None / empty: not given)."""

    mask: str | None = None
    box: str | None = None
    invert: bool = False
    grow: int | None = None
    feather: float | None = None
    outpaint: str | None = None
    size: str | None = None
    anchor: str | None = None
    references: tuple[str, ...] = ()
    keep_unmasked: bool = False

    @property
    def given(self) -> bool:
        return any((self.mask, self.box, self.invert, self.keep_unmasked, self.grow is not None, self.feather is not None,
                    self.outpaint, self.size, self.anchor, self.references))

    @property
    def flag(self) -> str:
        """The option that names the edit in messages."""
        return next(flag for flag, value in (("--mask", self.mask), ("--box", self.box), ("--outpaint", self.outpaint),
                                             ("--size", self.size), ("--reference", self.references)) if value)

    def validate(self) -> None:
        """The combinations that make one edit: a mask (file or box) or an outpaint, with shaping
        only for a mask, an anchor only with --size, references only with a region."""
        shaping = [flag for flag, value in (("--mask-invert", self.invert), ("--mask-grow", self.grow is not None),
                                            ("--mask-feather", self.feather is not None)) if value]
        if self.mask and self.box:
            raise UsageError(f"--mask {self.mask} and --box {self.box}: give one region, not both")
        if shaping and not (self.mask or self.box):
            raise UsageError(f"{shaping[0]} shapes a mask: give --mask MASK or --box X,Y,W,H")
        if self.outpaint and self.size:
            raise UsageError(f"--outpaint {self.outpaint} and --size {self.size}: give the margins or the new size, not both")
        if self.anchor and not self.size:
            raise UsageError(f"--anchor {self.anchor} places the clip in a larger frame: give --size WxH too")
        if (self.outpaint or self.size) and (self.mask or self.box):
            raise UsageError(f"{'--outpaint' if self.outpaint else '--size'} and {'--mask' if self.mask else '--box'}: "
                             "an outpaint regenerates the new border; edit other regions in a second edit")
        if self.keep_unmasked and not (self.mask or self.box):
            raise UsageError("--keep-unmasked keeps the source outside a mask: give --mask MASK or --box X,Y,W,H")
        if self.references and not (self.mask or self.box or self.outpaint or self.size):
            raise UsageError("--reference on edit puts the subject into a region: give --mask, --box or --outpaint too "
                             "(generate --reference makes a whole clip of it)")
        if STDIO in (self.mask, *self.references):
            raise UsageError("--mask and --reference take files; only CLIP may be - (stdin)")


def run(report: Reporter, clip: str, output: str | None, options: RegionOptions, knobs: Any, seed: int | None,
        memory: LowMemory, load: Any, model_given: bool) -> None:
    """edit CLIP with ``options``: everything checked before the model loads, then one VACE call."""
    from vidlatent import media, regions
    from vidlatent.knobs import check_frames, check_size

    options.validate()
    output = output or default_output(clip, ".safetensors", tag="-edited")
    prepare_latent_output(output, "edit", [clip, *([options.mask] if options.mask else []), *options.references])
    source = ClipInput.open(clip)
    load, described = source.describe(load, model_given)
    family, spec = described.family, described.spec
    regions.require_regions(family, spec, options.flag)
    references = [regions.Reference.read(path) for path in options.references]

    # The frames edited: a latent clip's (decoded once the model is there), or the video's.
    if source.clip is not None:
        size, frames, fps = (source.clip.width, source.clip.height), source.clip.pixel_frames, source.clip.fps
        from vidlatent.generation import with_clip_prompts

        knobs = with_clip_prompts(knobs, source.clip)
        if knobs.frames not in (None, frames):
            raise UsageError(f"--frames {knobs.frames}: the clip has {frames} frames, and they are what is edited; leave --frames out")
    else:
        plan = source.plan
        size, fps = _video_size(plan, spec, report), plan.fps
        frames = knobs.frames or _whole_groups(plan.frames or spec.frames, spec, report)
        if plan.frames is not None and frames > plan.frames:
            raise UsageError(f"--frames {frames}: {clip} has only {plan.frames} frames")
    check_frames(frames, spec)
    mask_options = regions.MaskOptions(source=options.mask, box=regions.parse_box(options.box) if options.box else None,
                                       invert=options.invert, grow=options.grow or 0, feather=options.feather or 0.0)
    canvas = None
    if options.outpaint or options.size:
        rounding: list[str] = []  # said once the size is known to be good: a refusal is one line
        canvas = regions.plan_canvas(size, spec.size_multiple,
                                     margins=regions.parse_margins(options.outpaint) if options.outpaint else None,
                                     size=media.parse_dimensions(options.size) if options.size else None,
                                     anchor=options.anchor or "center", note=rounding.append)
        given = f"--outpaint {options.outpaint}" if options.outpaint else f"--size {options.size}"
        check_size(canvas.size, spec, flag=f"{given}: the new size,")
        for line in rounding:
            report.note(line)
        masks = None
    else:
        check_size(size, spec, flag=f"{clip}: the clip's size")
        masks = regions.read_masks(mask_options, frames, size, note=report.note)
    knobs.check_for(spec)

    from vidlatent.codec import decode_frames
    from vidlatent.generation import acceleration_record, knobs_for_clip, random_seed
    from vidlatent.latentfile import LatentClip, write

    model = load_sampler(load, memory, report, image=False, info=described)
    if seed is None:
        seed = random_seed()
        announce_seed(report, seed)  # once the model is there: a run that cannot start needs no seed
    if source.clip is not None:
        source.clip.require_space(model.latent_space, what=f"--model {model.model_id}")
        report.note(f"{clip}: a latent clip; decoded with {model.model_id}'s VAE first ({spec.title} edits pixels)")
        pictures = list(decode_frames(family, source.clip.latents, model.vae, device=model.execution_device))
    else:
        pictures = list(media.iter_frames(source.plan.source, media.FrameSelection(frames=frames), size=size))
    fill = family.regions.fill
    if canvas is not None:
        video, mask = regions.outpaint_inputs(pictures, canvas, fill)
        out_size = canvas.size
    else:
        video, mask = regions.vace_inputs(pictures, masks, fill)
        out_size = size
    steps = knobs.resolved(model.pipeline, family).steps
    knobs = knobs_for_clip(model, knobs, model.layout.frame_rule.latent_frames(frames))
    with report.timed("edit"), report.progress("editing regions", steps) as progress:
        latents = regions.generate_regions(model, video=video, mask=mask, references=references, knobs=knobs, seed=seed,
                                           size=out_size, progress=progress)
    if options.keep_unmasked:
        kept = source.clip.latents if source.clip is not None else family.encode_frames(
            pictures, model.vae, device=model.execution_device)
        latents = regions.keep_unmasked(latents, kept, masks, model.layout)
    operation = {"operation": "outpaint" if canvas is not None else "inpaint",
                 "source": clip if clip == STDIO else str(Path(clip).resolve()),
                 **(mask_options.record() if canvas is None else {}), "keep_unmasked": options.keep_unmasked,
                 **({"margins": list(canvas.margins(size)), "size": f"{canvas.size[0]}x{canvas.size[1]}"} if canvas else {}),
                 "references": [reference.record() for reference in references]}
    effective = knobs.resolved(model.pipeline, family)
    base = source.clip.history if source.clip is not None else ()
    result = LatentClip(latents=latents, model=model.model_id, latent_space=model.latent_space, fps=fps, height=out_size[1],
                        width=out_size[0], seed=seed, layout=model.layout, history=base)
    result = result.with_step("edit", {"operations": [operation], "seed": seed, **effective.record(), **acceleration_record(model)})
    write(result, output)
    report.note(f"wrote {output} ({operation['operation']}; {frames} frames, {out_size[0]}x{out_size[1]})")
    report.summary([output_entry(output, result)], stdout_busy=output == STDIO, model=result.model, seed=seed)


def _video_size(plan: Any, spec: Any, report: Reporter) -> tuple[int, int]:
    """A video's own size where the model takes it (multiples of its size multiple, at most its
    native area), else its aspect ratio at the native area, with a note."""
    own = (plan.info.width, plan.info.height)
    multiple = spec.size_multiple
    if own[0] % multiple == 0 and own[1] % multiple == 0 and own[0] * own[1] <= spec.native_area:
        return own
    size = plan.size_for(spec.native_area, multiple)
    report.note(f"{plan.source}: {own[0]}x{own[1]} read at {size[0]}x{size[1]} (its aspect ratio at {spec.title}'s native "
                f"area, sides multiples of {multiple})")
    return size


def _whole_groups(count: int, spec: Any, report: Reporter) -> int:
    """The most frames of ``count`` that the model makes (Wan: 4k+1), with a note when fewer."""
    rule = spec.frame_rule
    frames = rule.pixel_frames(rule.latent_frames(count))
    frames = min(frames, spec.max_frames) if spec.max_frames else frames
    if frames != count:
        report.note(f"edits the first {frames} of {count} frames ({spec.title} makes {rule.describe()}); --frames picks fewer")
    return frames
