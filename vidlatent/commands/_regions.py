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


@dataclass
class RegionPlan:
    """A region edit, checked before the model loads: the input, the frames edited (count, size,
    rate), and either the masks or the outpaint's canvas."""

    source: ClipInput
    size: tuple[int, int]
    frames: int
    fps: float
    knobs: Any
    references: list[Any]
    mask_options: Any
    masks: list[Any] | None = None  # inpaint: a (H, W) uint8 mask per frame
    canvas: Any = None  # outpaint: vidlatent.regions.Canvas

    def record(self, path: str, keep_unmasked: bool) -> dict[str, Any]:
        """The edit's operation, for the history."""
        canvas = self.canvas
        shape = {"margins": list(canvas.margins(self.size)), "size": f"{canvas.size[0]}x{canvas.size[1]}"} if canvas else {
            **self.mask_options.record(), "keep_unmasked": keep_unmasked}
        return {"operation": "outpaint" if canvas else "inpaint", "source": path if path == STDIO else str(Path(path).resolve()),
                **shape, "references": [reference.record() for reference in self.references]}


def plan(report: Reporter, clip: str, options: RegionOptions, knobs: Any, described: Any, source: ClipInput) -> RegionPlan:
    """Every check a region edit needs before loading: the model edits regions; the frames, the
    size (or the outpaint's new size) and the masks fit it; the references are images."""
    from vidlatent import media, regions
    from vidlatent.knobs import check_frames, check_size

    family, spec = described.family, described.spec
    regions.require_regions(family, spec, options.flag)
    references = [regions.Reference.read(path) for path in options.references]
    if source.clip is not None:  # the frames edited: a latent clip's (decoded once the model is there), or the video's
        from vidlatent.generation import with_clip_prompts

        size, frames, fps = (source.clip.width, source.clip.height), source.clip.pixel_frames, source.clip.fps
        knobs = with_clip_prompts(knobs, source.clip)
        if knobs.frames not in (None, frames):
            raise UsageError(f"--frames {knobs.frames}: the clip has {frames} frames, and they are what is edited; leave --frames out")
    else:
        size, fps = _video_size(source.plan, spec, report), source.plan.fps
        frames = knobs.frames or _whole_groups(source.plan.frames or spec.frames, spec, report)
        if source.plan.frames is not None and frames > source.plan.frames:
            raise UsageError(f"--frames {frames}: {clip} has only {source.plan.frames} frames")
    check_frames(frames, spec)
    mask_options = regions.MaskOptions(source=options.mask, box=regions.parse_box(options.box) if options.box else None,
                                       invert=options.invert, grow=options.grow or 0, feather=options.feather or 0.0)
    planned = RegionPlan(source=source, size=size, frames=frames, fps=fps, knobs=knobs, references=references,
                         mask_options=mask_options)
    if options.outpaint or options.size:
        rounding: list[str] = []  # said once the size is known to be good: a refusal is one line
        planned.canvas = regions.plan_canvas(size, spec.size_multiple,
                                             margins=regions.parse_margins(options.outpaint) if options.outpaint else None,
                                             size=media.parse_dimensions(options.size) if options.size else None,
                                             anchor=options.anchor or "center", note=rounding.append)
        given = f"--outpaint {options.outpaint}" if options.outpaint else f"--size {options.size}"
        check_size(planned.canvas.size, spec, flag=f"{given}: the new size,")
        for line in rounding:
            report.note(line)
    else:
        check_size(size, spec, flag=f"{clip}: the clip's size")
        planned.masks = regions.read_masks(mask_options, frames, size, note=report.note)
    knobs.check_for(spec)
    return planned


def run(report: Reporter, clip: str, output: str | None, options: RegionOptions, knobs: Any, seed: int | None,
        memory: LowMemory, load: Any, model_given: bool) -> None:
    """edit CLIP with ``options``: everything checked before the model loads (``plan``), then the
    frames read or decoded, one VACE call, and the clip written."""
    from vidlatent import media, regions

    options.validate()
    output = output or default_output(clip, ".safetensors", tag="-edited")
    prepare_latent_output(output, "edit", [clip, *([options.mask] if options.mask else []), *options.references])
    source = ClipInput.open(clip)
    load, described = source.describe(load, model_given)
    planned = plan(report, clip, options, knobs, described, source)

    from vidlatent.codec import decode_frames
    from vidlatent.errors import MediaError
    from vidlatent.generation import acceleration_record, knobs_for_clip, random_seed
    from vidlatent.latentfile import LatentClip, write

    model = load_sampler(load, memory, report, image=False, info=described)
    family = model.family
    if seed is None:
        seed = random_seed()
        announce_seed(report, seed)  # once the model is there: a run that cannot start needs no seed
    if source.clip is not None:
        source.clip.require_space(model.latent_space, what=f"--model {model.model_id}")
        report.note(f"{clip}: a latent clip; decoded with {model.model_id}'s VAE first ({model.spec.title} edits pixels)")
        pictures = list(decode_frames(family, source.clip.latents, model.vae, device=model.execution_device))
    else:
        pictures = list(media.iter_frames(source.plan.source, media.FrameSelection(frames=planned.frames), size=planned.size))
        if len(pictures) < planned.frames:
            raise MediaError(f"{clip}: {len(pictures)} frames read, fewer than the {planned.frames} edited; give --frames")
    fill = family.regions.fill
    if planned.canvas is not None:
        video, mask = regions.outpaint_inputs(pictures, planned.canvas, fill)
        size = planned.canvas.size
    else:
        video, mask = regions.vace_inputs(pictures, planned.masks, fill)
        size = planned.size
    knobs = knobs_for_clip(model, planned.knobs, model.layout.frame_rule.latent_frames(planned.frames))
    steps = knobs.resolved(model.pipeline, family).steps
    with report.timed("edit"), report.progress("editing regions", steps) as progress:
        latents = regions.generate_regions(model, video=video, mask=mask, references=planned.references, knobs=knobs, seed=seed,
                                           size=size, progress=progress)
    if options.keep_unmasked:
        kept = source.clip.latents if source.clip is not None else family.encode_frames(
            pictures, model.vae, device=model.execution_device)
        latents = regions.keep_unmasked(latents, kept, planned.masks, model.layout)
    operation = planned.record(clip, options.keep_unmasked)
    base = source.clip.history if source.clip is not None else ()
    result = LatentClip(latents=latents, model=model.model_id, latent_space=model.latent_space, fps=planned.fps, height=size[1],
                        width=size[0], seed=seed, layout=model.layout, history=base)
    result = result.with_step("edit", {"operations": [operation], "seed": seed, **knobs.resolved(model.pipeline, family).record(),
                                       **acceleration_record(model)})
    write(result, output)
    report.note(f"wrote {output} ({operation['operation']}; {planned.frames} frames, {size[0]}x{size[1]})")
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
