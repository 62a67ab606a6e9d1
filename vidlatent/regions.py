"""Editing regions of a video with a model that conditions on a video and a mask (Wan VACE):
inpainting (``--mask``, ``--box``), outpainting (``--outpaint``, ``--size`` + ``--anchor``) and
reference images (``--reference``).

Everything here is pixels and PIL images, made before the model loads where it can be: the
masks (read, resized, inverted, grown, feathered, checked not to be empty), the larger canvas
of an outpaint, and then the two lists the pipeline takes, ``video`` and ``mask``, one image per
frame (``vace_inputs``, ``outpaint_inputs``). The model call is ``sample`` with those lists as
pipeline arguments, so a run equals ``WanVACEPipeline(video=..., mask=..., reference_images=...,
output_type="latent")`` given the same lists, bit for bit; docs/editing.md says how to build
them in a script. A family says whether it takes them (``Family.regions``) and how.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent import families
from vidlatent.errors import MediaError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from vidlatent.families.base import Family, ModelSpec
    from vidlatent.knobs import Knobs
    from vidlatent.models import LoadedModel
    from vidlatent.progress import Progress

Note = Callable[[str], None]
WHITE = 128  # a mask value at least this regenerates its pixel (diffusers: > 0.5 after /255)
# Where an outpaint's --size places the clip (edit's --anchor). The module imports numpy, PIL and
# vidlatent.media inside its functions, so that edit's options can read this at once.
ANCHORS = ("center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right")


def _quiet(_: str) -> None:
    pass


def require_regions(family: Family, spec: ModelSpec, flag: str) -> None:
    """Refuse, in one line, a model that cannot edit regions, naming the models that can."""
    if family.regions is not None:
        return
    able = [alias for each in families.all_families() if each.regions is not None for alias in each.aliases]
    placing = [each.title for each in families.all_families() if each.frame_conditions is not None]
    keyframes = f"; keyframes alone: {' or '.join(placing)} too" if flag == "--keyframe" and placing else ""
    raise UsageError(f"{flag}: {spec.title} cannot edit regions, keyframes or references; a VACE model can "
                     f"(--model {' | '.join(able)}){keyframes}")


def _numbers(text: str, flag: str, count: int, names: str) -> tuple[int, ...]:
    parts = text.split(",")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != count or any(value < 0 for value in values):
        raise UsageError(f"{flag} {text}: expected {names}, {count} whole numbers of pixels, 0 or more")
    return values


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``--box X,Y,W,H``: the rectangle to regenerate, in the frames' pixels."""
    x, y, width, height = _numbers(text, "--box", 4, "X,Y,W,H")
    if width == 0 or height == 0:
        raise UsageError(f"--box {text}: the rectangle is empty; give a width and height of at least 1")
    return x, y, width, height


def parse_margins(text: str) -> tuple[int, int, int, int]:
    """``--outpaint LEFT,RIGHT,TOP,BOTTOM``: pixels to add on each side."""
    margins = _numbers(text, "--outpaint", 4, "LEFT,RIGHT,TOP,BOTTOM")
    if not any(margins):
        raise UsageError(f"--outpaint {text}: every margin is 0, so there is nothing to add")
    return margins  # type: ignore[return-value]


@dataclass(frozen=True)
class MaskOptions:
    """Where the regenerated region comes from, and how it is shaped.

    Args:
        source: an image (one mask for every frame), a video or a folder of frames (a mask per
            frame); white (at least 128) is regenerated, black kept.
        box: (x, y, width, height): a rectangle to regenerate instead.
        invert: regenerate the black part instead.
        grow: dilate the white part by this many pixels.
        feather: blur the mask's edge (a Gaussian of this radius, in pixels): the pipeline keeps
            the video's pixels where the feathered mask is below 128 and passes its values on
            as the mask the model reads.
    """

    source: str | None = None
    box: tuple[int, int, int, int] | None = None
    invert: bool = False
    grow: int = 0
    feather: float = 0.0

    @property
    def flag(self) -> str:
        return "--box" if self.box is not None else "--mask"

    def record(self) -> dict[str, Any]:
        """For the history: the mask file (path and SHA-256) or the box, and the shaping."""
        source: dict[str, Any] = {"box": list(self.box)} if self.box is not None else {}
        if self.source is not None:
            path = Path(self.source)
            source = {"mask": str(path.resolve()), "mask_sha256": _sha256(path) if path.is_file() else None}
        return {**source, "mask_invert": self.invert, "mask_grow": self.grow, "mask_feather": self.feather}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_masks(options: MaskOptions, frames: int, size: tuple[int, int], note: Note = _quiet) -> list[np.ndarray]:
    """The ``frames`` masks, (H, W) uint8 at ``size`` (width, height), shaped as ``options`` says;
    a UsageError where the masks cannot fit the clip or regenerate nothing."""
    import numpy as np

    width, height = size
    if options.box is not None:
        x, y, box_width, box_height = options.box
        if x >= width or y >= height:
            raise UsageError(f"--box {x},{y},{box_width},{box_height}: starts outside the {width}x{height} frames")
        plane = np.zeros((height, width), np.uint8)
        plane[y : y + box_height, x : x + box_width] = 255
        masks = [plane] * frames
    else:
        assert options.source is not None
        masks = _read_mask_files(options.source, frames, size, note)
    shaped: dict[int, np.ndarray] = {}  # one mask image repeated over the frames is shaped once
    for mask in masks:
        if id(mask) not in shaped:
            shaped[id(mask)] = _shape(mask, options)
    result = [shaped[id(mask)] for mask in masks]
    if max(int(mask.max()) for mask in shaped.values()) < WHITE:
        raise UsageError(f"{options.flag}: nothing to regenerate: no pixel of the mask is white (at least {WHITE})"
                         + (" after --mask-invert" if options.invert else "") + "; the clip would come back as it is")
    return result


def _read_mask_files(source: str, frames: int, size: tuple[int, int], note: Note) -> list[np.ndarray]:
    import numpy as np
    from PIL import Image, ImageOps

    from vidlatent import media

    path = Path(source)
    if not path.exists():
        raise MediaError(f"--mask {source}: no such file or folder")
    if path.is_file() and path.suffix.lower() in media.IMAGE_SUFFIXES:
        planes = [media.load_image(path)]
    elif path.is_dir() or path.suffix.lower() in media.SUPPORTED_VIDEO_READ:
        planes = [Image.fromarray(frame) for frame in media.iter_frames(path, media.FrameSelection(frames=frames))]
        if len(planes) < frames:
            raise UsageError(f"--mask {source}: has {len(planes)} frame(s) for a clip of {frames}; give a mask per frame, "
                             "or one image for every frame")
    else:
        raise UsageError(f"--mask {source}: expected an image ({', '.join(media.IMAGE_SUFFIXES)}), a video or a folder of frames")
    if planes[0].size != size:
        note(f"--mask {source}: {planes[0].size[0]}x{planes[0].size[1]} brought to the clip's {size[0]}x{size[1]} as its "
             "frames are (scaled to cover, centre crop)")
    fitted = [np.asarray(ImageOps.fit(plane.convert("L"), size, method=Image.Resampling.NEAREST)) for plane in planes]
    return fitted * frames if len(fitted) == 1 else fitted


def _shape(mask: np.ndarray, options: MaskOptions) -> np.ndarray:
    """Invert, grow (a max filter of 2 * grow + 1 pixels), then feather (a Gaussian blur)."""
    import numpy as np
    from PIL import Image, ImageFilter

    image = Image.fromarray(mask)
    if options.invert:
        image = Image.fromarray(255 - mask)
    if options.grow:
        image = image.filter(ImageFilter.MaxFilter(2 * options.grow + 1))
    if options.feather:
        image = image.filter(ImageFilter.GaussianBlur(options.feather))
    return np.asarray(image)


def vace_inputs(frames: Sequence[np.ndarray], masks: Sequence[np.ndarray], fill: tuple[int, int, int]
                ) -> tuple[list[Image.Image], list[Image.Image]]:
    """VACE's ``video`` and ``mask`` for inpainting: each frame with its regenerated pixels (mask at
    least 128) set to ``fill`` (as VACE's own inpainting preprocessing greys them), and each mask
    as an "L" image."""
    import numpy as np
    from PIL import Image

    if len(frames) != len(masks):
        raise ValueError(f"{len(frames)} frames and {len(masks)} masks")
    colour = np.array(fill, np.uint8)
    video = [Image.fromarray(np.where((mask >= WHITE)[..., None], colour, frame)) for frame, mask in zip(frames, masks)]
    return video, [Image.fromarray(mask, "L") for mask in masks]


@dataclass(frozen=True)
class Canvas:
    """An outpaint's frame: ``size`` (width, height) with the clip at ``offset`` (x, y)."""

    size: tuple[int, int]
    offset: tuple[int, int]

    def margins(self, clip: tuple[int, int]) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) pixels around a clip of size ``clip``."""
        (width, height), (x, y) = self.size, self.offset
        return x, width - clip[0] - x, y, height - clip[1] - y


def plan_canvas(clip: tuple[int, int], multiple: int, *, margins: tuple[int, int, int, int] | None = None,
                size: tuple[int, int] | None = None, anchor: str = "center", note: Note = _quiet) -> Canvas:
    """Where an outpaint puts the clip (``clip``: its width, height): ``margins`` (left, right,
    top, bottom), the canvas rounded up to the model's size ``multiple`` (the extra pixels go
    right and bottom, with a note), or a canvas of ``size`` with the clip at ``anchor``."""
    width, height = clip
    if margins is not None:
        left, right, top, bottom = margins
        wide, tall = width + left + right, height + top + bottom
        rounded = (-(-wide // multiple) * multiple, -(-tall // multiple) * multiple)
        if rounded != (wide, tall):
            note(f"--outpaint {left},{right},{top},{bottom}: {wide}x{tall} rounded up to {rounded[0]}x{rounded[1]}, a multiple of "
                 f"{multiple} (margins {left},{right + rounded[0] - wide},{top},{bottom + rounded[1] - tall})")
        return Canvas(rounded, (left, top))
    assert size is not None
    if anchor not in ANCHORS:
        raise UsageError(f"--anchor {anchor}: expected one of {', '.join(ANCHORS)}")
    if size[0] < width or size[1] < height or size == clip:
        raise UsageError(f"--size {size[0]}x{size[1]}: an outpaint needs a larger frame than the clip's {width}x{height}")
    spare_x, spare_y = size[0] - width, size[1] - height
    x = 0 if "left" in anchor else spare_x if "right" in anchor else spare_x // 2
    y = 0 if "top" in anchor else spare_y if "bottom" in anchor else spare_y // 2
    return Canvas(size, (x, y))


def outpaint_inputs(frames: Sequence[np.ndarray], canvas: Canvas, fill: tuple[int, int, int]
                    ) -> tuple[list[Image.Image], list[Image.Image]]:
    """VACE's ``video`` and ``mask`` for an outpaint: each frame placed on a ``fill`` canvas, the
    border white (regenerated), the clip's own pixels black (kept)."""
    import numpy as np
    from PIL import Image

    (width, height), (x, y) = canvas.size, canvas.offset
    rows, columns = frames[0].shape[:2]
    plane = np.full((height, width), 255, np.uint8)
    plane[y : y + rows, x : x + columns] = 0
    mask = Image.fromarray(plane, "L")
    video = []
    for frame in frames:
        picture = np.empty((height, width, 3), np.uint8)
        picture[:] = np.array(fill, np.uint8)
        picture[y : y + rows, x : x + columns] = frame
        video.append(Image.fromarray(picture))
    return video, [mask] * len(video)


@dataclass(frozen=True)
class Reference:
    """An image given by path (``--reference``, ``--keyframe``): the picture and, for the history,
    where it came from."""

    image: Image.Image
    path: str
    sha256: str

    @classmethod
    def read(cls, path: str, flag: str = "--reference") -> Reference:
        from vidlatent import media

        if not Path(path).is_file():
            raise MediaError(f"{flag} {path}: no such image")
        return cls(image=media.load_image(path), path=str(Path(path).resolve()), sha256=_sha256(Path(path)))

    def record(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256}


def parse_keyframe(text: str, fps: float) -> tuple[int, str]:
    """``--keyframe INDEX:IMAGE``: (frame index, image path); INDEX a frame number, or a time in
    seconds with ``s`` (2.5s), the nearest frame at ``fps``."""
    index, separator, path = text.partition(":")
    try:
        frame = round(float(index[:-1]) * fps) if index.endswith("s") else int(index)
    except ValueError:
        frame = -1
    if not separator or not path or frame < 0:
        raise UsageError(f"--keyframe {text}: expected INDEX:IMAGE, INDEX a frame number (0 or more) or a time in seconds (2.5s)")
    return frame, path


def check_keyframes(indices: Sequence[int], texts: Sequence[str], frames: int) -> None:
    """Each keyframe inside the ``frames`` frames made, and at most one per frame."""
    seen: dict[int, str] = {}
    for index, text in zip(indices, texts):
        if index >= frames:
            raise UsageError(f"--keyframe {text}: frame {index} is past the video's last, {frames - 1} ({frames} frames: --frames)")
        if index in seen:
            raise UsageError(f"--keyframe {text} and --keyframe {seen[index]}: both are frame {index}; give one image a frame")
        seen[index] = text


def generate_clip(model: LoadedModel, *, keyframes: dict[int, Reference], references: Sequence[Reference] = (), knobs: Knobs,
                  seed: int, size: tuple[int, int], image: Image.Image | None = None, record: dict[str, Any],
                  progress: Progress | None = None) -> Any:
    """``generate`` with keyframes (frame index -> image, brought to ``size``: kept, the frames
    between generated; ``image``, generate's IMAGE, is frame 0) and reference images: a
    LatentClip whose history records both (path and SHA-256) besides ``record``. A family without
    ``regions`` places the keyframes itself (``Family.frame_conditions``: LTX-2's conditions,
    picture and sound in one call)."""
    import dataclasses

    from vidlatent import media
    from vidlatent.generation import acceleration_record, audio_layout, clip_fps, sample_streams
    from vidlatent.latentfile import LatentClip
    from vidlatent.progress import no_progress

    frames = knobs.resolved(model.pipeline, model.family).frames
    knobs = dataclasses.replace(knobs, frames=frames)
    known = {index: keyframe.image for index, keyframe in keyframes.items()} | ({0: image} if image is not None else {})
    known = {index: media.resize_image(picture, size) for index, picture in sorted(known.items())}
    audio = None
    if model.family.regions is None:  # images the family places itself (Family.frame_conditions): picture and sound
        conditions = model.family.frame_conditions
        made = sample_streams(model, None, knobs=knobs, seed=seed, size=size, arguments=conditions.arguments(known, frames),
                              pipeline_class=conditions.pipeline_class, progress=progress or no_progress)
        latents, audio = made.latents, made.audio
    else:
        video, mask = model.family.regions.keyframes(known, frames, size) if known else (None, None)
        latents = generate_regions(model, video=video, mask=mask, references=references, knobs=knobs, seed=seed, size=size,
                                   progress=progress)
    effective = knobs.resolved(model.pipeline, model.family)
    clip = LatentClip(latents=latents, model=model.model_id, latent_space=model.latent_space, fps=clip_fps(effective, model.spec),
                      height=size[1], width=size[0], seed=seed, layout=model.layout, audio=audio,
                      audio_layout=audio_layout(model) if audio is not None else None)
    keyframed = [{"frame": index, **keyframe.record()} for index, keyframe in sorted(keyframes.items())]
    return clip.with_step("generate", {**record, "size": f"{size[0]}x{size[1]}", "seed": seed, "keyframes": keyframed,
                                       "references": [reference.record() for reference in references], **effective.record(),
                                       **acceleration_record(model)})


def generate_regions(model: LoadedModel, *, video: list[Image.Image] | None, mask: list[Image.Image] | None,
                     references: Sequence[Reference] = (), knobs: Knobs, seed: int, size: tuple[int, int],
                     progress: Progress | None = None) -> torch.Tensor:
    """One pipeline call conditioned on ``video`` and ``mask`` (or neither: text and references
    alone) and the reference images: the clip's own frames, (T, C, h, w) float32 latents, the
    reference frames the pipeline puts first left out."""
    import dataclasses

    from vidlatent.generation import sample
    from vidlatent.progress import no_progress

    conditioning = model.family.regions
    frames = len(video) if video is not None else knobs.frames
    arguments = conditioning.arguments(video, mask, [reference.image for reference in references])
    latents = sample(model, None, knobs=dataclasses.replace(knobs, frames=frames), seed=seed, size=size,
                     arguments=arguments, progress=progress or no_progress)
    return latents[conditioning.reference_frames(len(references)) :]


def kept_latents(masks: Sequence[np.ndarray], spatial: int, frame_rule: Any) -> torch.Tensor:
    """(T, 1, h, w) bool: the latent pixels none of whose pixels is regenerated, in any of the
    pixel frames its latent frame stands for (``frame_rule``; ``spatial`` pixels a side)."""
    import numpy as np
    import torch

    regenerated = np.stack(masks) >= WHITE  # (F, H, W)
    count, height, width = regenerated.shape
    blocks = regenerated.reshape(count, height // spatial, spatial, width // spatial, spatial).any(axis=(2, 4))  # (F, h, w)
    latent_frames = frame_rule.latent_frames(count)
    touched = np.stack([blocks[first : last + 1].any(axis=0)
                        for first, last in (frame_rule.pixel_span(index) for index in range(latent_frames))])  # (T, h, w)
    return torch.from_numpy(~touched)[:, None]


def keep_unmasked(edited: torch.Tensor, source: torch.Tensor, masks: Sequence[np.ndarray], layout: Any) -> torch.Tensor:
    """``edited`` (T, C, h, w) with ``source``'s latents put back wherever ``kept_latents`` says
    nothing was regenerated: the kept region then decodes as the source does (up to the decoder's
    reach across the mask's edge), not as the model redrew it."""
    import torch

    keep = kept_latents(masks, layout.spatial, layout.frame_rule)
    return torch.where(keep, source.to(edited.dtype), edited)
