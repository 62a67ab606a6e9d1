"""Interpolation, transitions, blends and edits of latent clips: the library behind
``interpolate``, ``edit`` and ``direction``.

The latent math lives in the pure ``vidlatent.latent_ops``; this module applies it to
LatentClips: it checks that clips fit together (one latent space, one size), keeps their
metadata right (fps, size, kind) and records every step in the history. Only the two
diffusion-refined operations, ``interpolate(..., refine=...)`` and an edit with a
``Regeneration``, take a loaded model; they go through ``generation.regenerate``.

Two-clip results (morphs, transitions) carry clip A's metadata and history, with one step
appended that names B and how it was used.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent import families, generation, latent_ops, latentfile, media
from vidlatent.analysis import pca_shift
from vidlatent.atomic import STDIO
from vidlatent.errors import IncompatibleLatentsError, Note, UsageError
from vidlatent.families.base import IMAGE_NONE
from vidlatent.knobs import Knobs, check_frames
from vidlatent.latentfile import LatentClip, LatentSpace
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from vidlatent.families.base import ModelSpec
    from vidlatent.models import LoadedModel

METHODS = tuple(latent_ops.METHODS)
DEFAULT_METHOD = "slerp"



# --- reading and checking clips -------------------------------------------------------------------


def read_clip(path: str, *, kind: str = "clip", command: str = "edit") -> LatentClip:
    """Read a latent file (or - for stdin) and check its kind.

    Args:
        path: the file, or - for standard input.
        kind: the kind it must be: ``clip``, or ``direction`` for a --direction file.
        command: the command reading it, for the hint given for a video.
    """
    if path != STDIO and (Path(path).suffix.lower() in media.SUPPORTED_VIDEO_READ or Path(path).is_dir()):
        raise UsageError(
            f"{path}: is a video; {command} works on latents: vidlatent encode {path} -o - | vidlatent {command} - …"
        )
    clip = latentfile.read(path)
    if clip.kind != kind:
        hint = "give it to edit --direction" if clip.kind == "direction" else "make one with vidlatent direction"
        raise UsageError(f"{path}: is a latent file of kind {clip.kind!r}, expected {kind!r}; {hint}")
    return clip


def require_same_space(clip: LatentClip, reference: LatentClip, *, names: tuple[str, str]) -> None:
    """Raise IncompatibleLatentsError unless ``clip`` and ``reference`` share a latent space.

    Args:
        names: how to call (clip, reference) in the message, e.g. their paths.
    """
    if not LatentSpace.parse(clip.latent_space).matches(LatentSpace.parse(reference.latent_space)):
        raise IncompatibleLatentsError(
            f"{names[0]} and {names[1]} belong to different latent spaces ({clip.latent_space} from {clip.model}; "
            f"{reference.latent_space} from {reference.model}); their latents cannot be mixed: encode both with one model"
        )


def _size(clip: LatentClip) -> str:
    return f"{clip.width}x{clip.height}"


def check_method(method: str) -> None:
    if method not in METHODS:
        raise UsageError(f"--method {method!r}: expected one of {', '.join(METHODS)}")


# --- interpolate: one clip, more frames ------------------------------------------------------------


@dataclass(frozen=True)
class Refinement:
    """How ``interpolate`` refines its inserted frames with the model.

    Args:
        strength: 0 to 1: how far down the model's sigma schedule the inserted frames are
            re-noised before being denoised again (0 keeps them as interpolated).
        knobs: sampling knobs (frames is the interpolated clip's).
        seed: seeds the noise.
    """

    strength: float
    knobs: Knobs
    seed: int

    def validate(self) -> None:
        if not 0 <= self.strength <= 1:
            raise UsageError(f"--refine {self.strength}: must be between 0 and 1")
        self.knobs.validate()


def check_factor(factor: int) -> None:
    if factor < 2:
        raise UsageError(f"--factor {factor}: must be at least 2 (K - 1 frames are inserted between neighbours)")


def check_result_memory(flag: str, frames: int, clip: LatentClip, *, clips: int = 1) -> None:
    """Refuse, before any of it is made, a result of ``clips`` clips of ``frames`` latent frames of
    ``clip``'s size (float32) that this machine's memory cannot hold; ``flag`` names the option
    (and its value) that asked for it."""
    channels, height, width = clip.latents.shape[1:]
    size = 4 * clips * frames * channels * height * width
    memory = _physical_memory()
    if memory and size > memory:
        raise UsageError(f"{flag}: the result would be {clips * frames} latent frames, {size / 2**30:.1f} GiB in memory, "
                         f"more than this machine's {memory / 2**30:.1f} GiB; ask for fewer frames")


def _physical_memory() -> int:
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0  # not known here: no bound


def original_positions(frames: int, factor: int) -> list[int]:
    """Where the original frames sit in a clip upsampled by ``factor``."""
    return [index * factor for index in range(frames)]


def interpolate(
    clip: LatentClip,
    factor: int,
    *,
    method: str = DEFAULT_METHOD,
    loop: bool = False,
    refine: Refinement | None = None,
    model: LoadedModel | None = None,
    progress: Progress = no_progress,
) -> LatentClip:
    """Upsample ``clip`` in time: ``factor - 1`` new frames between neighbours, fps times ``factor``.

    The original frames keep their values exactly, at positions i * factor. With ``refine``
    the new frames are re-noised to ``refine.strength`` and denoised by ``model`` conditioned
    on the clip's first frame while the originals stay pinned (re-noised to the current sigma
    after each step, restored exactly at the end): keyframes first, then interpolation.

    Args:
        clip: the clip.
        factor: 2 or more.
        method: lerp, slerp or hybrid (see latent_ops).
        loop: also fill the gap from the last frame back to the first.
        refine: refine the new frames with the model (needs ``model``).
        model: a loaded pipeline, for ``refine``.
        progress: called with the denoising steps done.
    """
    check_factor(factor)
    check_method(method)
    check_result_memory(f"--factor {factor}", clip.frames * factor if loop else (clip.frames - 1) * factor + 1, clip)
    latents = latent_ops.upsample(clip.latents.float(), factor, method, loop=loop)  # (F', C, h, w)
    arguments: dict[str, Any] = {"mode": "factor", "factor": factor, "method": method, "loop": loop,
                                 "frames_before": clip.frames, "frames_after": int(latents.shape[0])}
    if refine is not None:
        if model is None:
            raise ValueError("refine needs a loaded model")
        latents, record = _refine(model, clip, latents, original_positions(clip.frames, factor), refine, progress)
        arguments["refine"] = record
    return clip.with_step("interpolate", arguments, latents=latents, fps=clip.fps * factor)


def _refine(model: LoadedModel, clip: LatentClip, latents: torch.Tensor, originals: list[int], refine: Refinement,
            progress: Progress) -> tuple[torch.Tensor, dict[str, Any]]:
    refine.validate()
    clip.require_space(model.latent_space, what=f"--model {model.model_id}")
    known = clip.latents.float()  # (T, C, h, w): the originals, in order
    image = conditioning_image(model, known)
    knobs = generation.knobs_for_clip(model, refine.knobs, int(latents.shape[0]))
    refined = generation.regenerate(
        model, image, latents, strength=refine.strength, knobs=knobs, seed=refine.seed, progress=progress,
        on_step=generation.pin_frames(known, originals, refine.seed, model.family), size=(clip.width, clip.height),
    )
    # Pinned frames end at noise 0, equal to the originals in the model's dtype; in fp16 that
    # rounds them, so the float32 originals are put back.
    refined[originals] = known
    record = {"strength": refine.strength, "seed": refine.seed, "model": model.model_id,
              **generation.regeneration_record(model, knobs, refine.strength)}
    return refined, record


def conditioning_image(model: LoadedModel, latents: torch.Tensor) -> Image.Image | None:
    """The image a re-generation of ``latents`` is conditioned on: its first frame, decoded, for
    models that take an image (None for text-only models)."""
    return None if model.spec.image == IMAGE_NONE else generation.frame_image(latents, model, 0)


# --- two clips: morphs and transitions -----------------------------------------------------------------


def fit_pair(a: LatentClip, b: LatentClip, *, names: tuple[str, str], resample: bool, same_frames: bool = False,
             same_fps: bool = False, method: str = DEFAULT_METHOD) -> LatentClip:
    """``b`` checked against ``a``, or brought to it with ``resample``.

    Latent spaces must match (never resampled). Sizes must match, or with ``resample`` b's
    latents are resized to a's. With ``same_frames`` the frame counts must match (or b is
    retimed to a's count), with ``same_fps`` the frame rates (or b is retimed to a's rate).
    """
    require_same_space(b, a, names=(names[1], names[0]))
    if (a.width, a.height) != (b.width, b.height) or a.latents.shape[1:] != b.latents.shape[1:]:
        if not resample:
            raise UsageError(f"{names[0]} is {_size(a)} and {names[1]} is {_size(b)}; give --resample to resize {names[1]}'s latents to {_size(a)}")
        b = dataclasses.replace(b, latents=latent_ops.resize(b.latents.float(), tuple(a.latents.shape[2:])), width=a.width, height=a.height)
    if same_fps and b.fps != a.fps:
        if not resample:
            raise UsageError(f"{names[0]} plays at {a.fps:g} fps and {names[1]} at {b.fps:g} fps; give --resample to retime {names[1]} to {a.fps:g} fps")
        frames = max(1, round(b.frames * a.fps / b.fps))
        b = dataclasses.replace(b, latents=latent_ops.retime(b.latents.float(), frames, method), fps=a.fps)
    if same_frames and b.frames != a.frames:
        if not resample:
            raise UsageError(f"{names[0]} has {a.frames} frames and {names[1]} has {b.frames}; give --resample to retime {names[1]} to {a.frames} frames")
        b = dataclasses.replace(b, latents=latent_ops.retime(b.latents.float(), a.frames, method))
    return b


def morph(a: LatentClip, b: LatentClip, count: int, *, method: str = DEFAULT_METHOD, resample: bool = False,
          names: tuple[str, str] = ("A", "B")) -> list[LatentClip]:
    """``count`` clips morphing ``a`` into ``b``, frame by frame.

    Clip j blends every frame of a with the same frame of b by t = j / (count - 1): the first
    clip is a and the last is b, exactly.

    Args:
        a, b: clips of one latent space and size (or ``resample``) and frame count (or ``resample``).
        count: 2 or more.
        method: lerp, slerp or hybrid.
        resample: resize and retime b to a where they differ.
        names: what to call a and b in messages and the history (their paths).
    """
    if count < 2:
        raise UsageError(f"--morphs {count}: must be at least 2 (the first clip is A, the last B)")
    check_method(method)
    check_result_memory(f"--morphs {count}", a.frames, a, clips=count)
    b = fit_pair(a, b, names=names, resample=resample, same_frames=True, method=method)
    results = []
    for index in range(count):
        weight = index / (count - 1)
        latents = latent_ops.blend(a.latents.float(), b.latents.float(), weight, method)
        results.append(a.with_step("interpolate", {"mode": "morph", "a": names[0], "b": names[1], "index": index,
                                                   "count": count, "t": weight, "method": method, "resample": resample},
                                   latents=latents))
    return results


def transition(a: LatentClip, b: LatentClip, frames: int, *, method: str = DEFAULT_METHOD, join: bool = False,
               resample: bool = False, names: tuple[str, str] = ("A", "B")) -> LatentClip:
    """A bridge of ``frames`` pixel frames from a's last frame to b's first, or A + bridge + B.

    ``frames`` counts pixel frames, as --frames and --keyframes do: the bridge on its own decodes
    to that many, so it follows a's frame rule (``bridge_latent_frames``). Its latent frame i
    blends a's last and b's first by t = (i + 1) / (n + 1) for its n latent frames; neither end
    frame is repeated.

    Args:
        a, b: clips of one latent space and size (or ``resample``); for ``join``, one fps too
            (or ``resample``, which retimes b).
        frames: the bridge's pixel frames, 1 or more, a count a's frame rule makes.
        method: lerp, slerp or hybrid.
        join: return a + bridge + b as one clip (a and b unchanged in it).
        resample: resize (and for ``join`` retime) b to a where they differ.
        names: what to call a and b in messages and the history.
    """
    import torch

    count = bridge_latent_frames(a, frames, name=names[0])
    check_method(method)
    check_result_memory(f"--transition {frames}", count + (a.frames + b.frames if join else 0), a)
    b = fit_pair(a, b, names=names, resample=resample, same_fps=join, method=method)
    bridge = latent_ops.frames_between(a.latents[-1].float(), b.latents[0].float(), count, method)  # (count, C, h, w)
    latents = torch.cat([a.latents.float(), bridge, b.latents.float()]) if join else bridge
    arguments = {"mode": "transition", "a": names[0], "b": names[1], "frames": frames, "join": join, "method": method,
                 "resample": resample}
    return a.with_step("interpolate", arguments, latents=latents)


def bridge_latent_frames(clip: LatentClip, frames: int, *, name: str = "A") -> int:
    """The latent frames of a bridge of ``frames`` pixel frames in ``clip``'s latent space; a count
    its frame rule does not make is refused, naming the nearest that it does (--transition)."""
    rule = clip.layout.frame_rule
    if frames < 1:
        raise UsageError(f"--transition {frames}: must be at least 1 frame")
    if not rule.accepts(frames):
        below, above = rule.neighbours(frames)
        options = f"{below} or {above}" if below != above else str(below)
        raise UsageError(f"--transition {frames}: {name}'s latents make {rule.describe()} frames (its VAE's rule); "
                         f"use {options}")
    return rule.latent_frames(frames)


def keyframe_knobs(spec: ModelSpec, knobs: Knobs, frames: int) -> Knobs:
    """The knobs of a keyframe bridge of ``frames`` pixel frames, checked against the model's spec
    (it must take a last frame, and ``frames`` must follow its rule): before the model loads."""
    if not spec.last_image:
        able = families.able_models_in_words(lambda other: other.last_image, prefer=spec.family)
        raise UsageError(f"--keyframes: {spec.title} cannot be conditioned on a last frame; a first-last-frame model "
                         f"can: {able}")
    knobs.check_for(spec)
    check_frames(frames, spec, flag="--transition")
    return dataclasses.replace(knobs, frames=frames)


def keyframes(a: LatentClip, b: LatentClip, frames: int, *, model: LoadedModel, knobs: Knobs, seed: int, join: bool = False,
              resample: bool = False, names: tuple[str, str] = ("A", "B"), progress: Progress = no_progress) -> LatentClip:
    """A bridge of ``frames`` pixel frames made by the model, conditioned on a's last frame and
    b's first (``last_image``: first-last-frame models), or A + bridge + B.

    The bridge's first frame repeats a's last and its last frame b's first, so ``join`` leaves
    out the bridge's first latent frame and b's first: for causal VAEs that keeps the frame
    rule ((T - 1) * 4 + 1 for Wan, (T - 1) * 8 + 1 for LTX) true of the joined clip.

    Args:
        a, b: clips of the model's latent space, one size (or ``resample``); for ``join``, one
            fps too (or ``resample``, which retimes b).
        frames: the bridge's pixel frames (the model's --frames rule: 4k+1 for Wan, 8k+1 for LTX).
        model: a loaded first-last-frame model.
        knobs: sampling knobs (frames is ``frames``).
        seed: seeds the bridge.
        join: return A + bridge + B as one clip.
        resample: resize (and for ``join`` retime) b to a where they differ.
        names: what to call a and b in messages and the history.
    """
    import torch

    knobs = keyframe_knobs(model.spec, knobs, frames)
    a.require_space(model.latent_space, what=f"--model {model.model_id}")
    b = fit_pair(a, b, names=names, resample=resample, same_fps=join)
    first = generation.frame_image(a.latents.float(), model, -1)
    last = generation.frame_image(b.latents.float(), model, 0)
    made = generation.sample_streams(model, first, knobs=knobs, seed=seed, last_image=last, progress=progress)
    bridge = made.latents  # (T, C, h, w)
    latents = torch.cat([a.latents.float(), bridge[1:], b.latents.float()[1:]]) if join else bridge
    # The bridge's own sound (LTX-2); joined clips are silent, said in a note.
    sound = None if join else made.audio
    if join and (made.audio is not None or a.audio is not None):
        warnings.warn(Note("interpolate --keyframes --join: the joined clip is silent (vidlatent does not join "
                           "sounds across keyframes yet); write the bridge alone to keep its sound"), stacklevel=2)
    effective = knobs.resolved(model.pipeline, model.family)
    arguments = {"mode": "keyframes", "a": names[0], "b": names[1], "frames": frames, "join": join, "resample": resample,
                 "seed": seed, "model": model.model_id, **effective.record(), **generation.acceleration_record(model)}
    layout = generation.audio_layout(model) if sound is not None else None
    return a.with_step("interpolate", arguments, latents=latents, seed=seed, audio=sound, audio_layout=layout)


# --- direction ---------------------------------------------------------------------------------------


def make_direction(positives: list[LatentClip], negatives: list[LatentClip], *, names: tuple[list[str], list[str]]) -> LatentClip:
    """An edit direction: the mean latent frame of ``positives`` minus that of ``negatives``.

    Every clip's frames are averaged, then the clips (each counts once, whatever its length).
    The result is a latent file of kind ``direction`` with one frame, in the clips' latent space.

    Args:
        positives, negatives: clips of one latent space and latent size; at least one each.
        names: their paths, for messages and the history.
    """
    if not positives or not negatives:
        raise UsageError("a direction needs at least one POS clip and one --minus NEG clip")
    reference, reference_name = positives[0], names[0][0]
    for clip, name in zip([*positives, *negatives], [*names[0], *names[1]]):
        require_same_space(clip, reference, names=(name, reference_name))
        if clip.latents.shape[1:] != reference.latents.shape[1:]:
            raise UsageError(f"{name} is {_size(clip)} and {reference_name} is {_size(reference)}; a direction needs clips of one size")
    latents = latent_ops.direction([clip.latents for clip in positives], [clip.latents for clip in negatives])
    made = LatentClip(latents=latents, model=reference.model, latent_space=reference.latent_space, fps=reference.fps,
                      height=reference.height, width=reference.width, kind="direction", layout=reference.layout)
    return made.with_step("direction", {"positives": list(names[0]), "negatives": list(names[1])})


# --- edit ----------------------------------------------------------------------------------------------


ORDER = ("trim", "reverse", "image", "direction", "smooth", "loop")


def parse_trim(text: str) -> tuple[int | None, int | None]:
    """``START:END`` as two optional integers (negative counts from the end, as in Python)."""
    start, colon, end = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return (int(start) if start.strip() else None, int(end) if end.strip() else None)
    except ValueError:
        raise UsageError(f"--trim {text!r}: expected START:END, e.g. 2:10, 2: or :-1 (latent frames START to END-1)") from None


def resolve_trim(trim: tuple[int | None, int | None], frames: int) -> tuple[int, int]:
    """The frame range a parsed --trim keeps of a clip of ``frames`` frames; UsageError if empty or outside it."""
    start, end = trim
    first = 0 if start is None else (start + frames if start < 0 else start)
    last = frames if end is None else (end + frames if end < 0 else end)
    if not 0 <= first < last <= frames:
        text = f"{'' if start is None else start}:{'' if end is None else end}"
        raise UsageError(f"--trim {text}: the clip has {frames} latent frames; need 0 <= START < END <= {frames} (negative counts from the end)")
    return first, last


@dataclass(frozen=True)
class Regeneration:
    """``edit --image``: re-generate the clip towards a new first frame (SDEdit).

    Args:
        image: the new first frame (any size; resized to the clip's by cover and centre-crop).
        strength: 0 keeps the clip exactly, 1 is a fresh generation from ``image``.
        knobs: sampling knobs (frames, if given, must be the clip's).
        seed: seeds the noise.
        source, image_sha256: recorded in the history.
    """

    image: Image.Image
    strength: float
    knobs: Knobs
    seed: int
    source: str = ""
    image_sha256: str = ""

    def validate(self) -> None:
        if not 0 <= self.strength <= 1:
            raise UsageError(f"--strength {self.strength}: must be between 0 and 1")
        self.knobs.validate()


@dataclass(frozen=True)
class EditPlan:
    """The operations of one ``edit``, applied in the order of ``ORDER``.

    trim, reverse, image, direction, pca_shift, smooth, loop: first choose the frames and their order
    (so the new first frame of ``--image`` is the first frame of what is kept), then change
    the content with the model (which would wash out finer changes made before it), then add
    the direction (exactly scale x direction, on the final content) and the principal-component
    shift (likewise exact arithmetic), then filter in time, and
    close the loop last (the crossfade must be the last thing to touch the seam).

    Args:
        trim: (start, end) as parse_trim gives, or None.
        reverse: play backwards.
        regeneration: re-generate towards a new first frame, or None.
        direction: a latent file of kind direction, or None.
        scale: the direction's factor.
        smooth: temporal Gaussian sigma in frames; 0 for none.
        loop: crossfade the tail into the head.
        loop_frames: the crossfade's length; None for a quarter of the frames (at least 1).
        direction_source: the direction's path, for the history.
        pca_shift: (component, amount), component counted from 1 (PC1), or None.
        components: the components file's contents (vidlatent.analysis.Components) for pca_shift.
        components_source: its path, for the history.
    """

    trim: tuple[int | None, int | None] | None = None
    reverse: bool = False
    regeneration: Regeneration | None = None
    direction: LatentClip | None = None
    scale: float = 1.0
    smooth: float = 0.0
    loop: bool = False
    loop_frames: int | None = None
    direction_source: str = ""
    pca_shift: tuple[int, float] | None = None
    components: Any = None
    components_source: str = ""

    @property
    def empty(self) -> bool:
        return not (self.trim or self.reverse or self.regeneration or self.direction is not None or self.pca_shift
                    or self.smooth or self.loop)

    @property
    def needs_model(self) -> bool:
        """True when the plan re-generates (strength 0 keeps the clip exactly and needs no model)."""
        return self.regeneration is not None and self.regeneration.strength > 0

    def validate(self, clip: LatentClip) -> None:
        """Check every operation against ``clip`` (cheap, before any model loads)."""
        if self.empty:
            raise UsageError("nothing to do: give at least one of --trim, --reverse, --image, --direction, --pca-shift, --smooth, --loop")
        frames = clip.frames
        if self.trim is not None:
            first, last = resolve_trim(self.trim, frames)
            frames = last - first
        if self.regeneration is not None:
            self.regeneration.validate()
            pixel_frames = clip.layout.frame_rule.pixel_frames(frames)
            if self.regeneration.knobs.frames not in (None, pixel_frames):
                raise UsageError(f"--frames {self.regeneration.knobs.frames}: edit re-generates the clip's {pixel_frames} frames; leave --frames out")
        if self.direction is not None:
            require_same_space(self.direction, clip, names=(self.direction_source or "the direction", "the clip"))
            if self.direction.latents.shape[1:] != clip.latents.shape[1:]:
                raise UsageError(f"the direction is {_size(self.direction)} and the clip {_size(clip)}; make the direction from clips of the clip's size")
            if self.direction.frames not in (1, frames):
                raise UsageError(f"the direction has {self.direction.frames} latent frames; it needs 1 (for every frame) or the clip's {frames}")
        if (self.pca_shift is None) != (self.components is None):
            raise UsageError("--pca-shift COMPONENT:AMOUNT and --components P.safetensors go together")
        if self.pca_shift is not None:
            count = int(self.components.components.shape[0])
            if not 1 <= self.pca_shift[0] <= count:
                raise UsageError(f"--pca-shift {self.pca_shift[0]}:…: the components file has components 1 to {count}")
            self.components.check_clip(clip.latents, clip.latent_space, name="the clip")
        if self.smooth < 0:
            raise UsageError(f"--smooth {self.smooth:g}: must be 0 or more (a standard deviation in frames)")
        if self.loop_frames is not None and not self.loop:
            raise UsageError("--loop-frames needs --loop")
        if self.loop:
            crossfade = self.crossfade_frames(frames)
            if not 1 <= crossfade <= frames // 2:
                raise UsageError(f"--loop-frames {crossfade}: must be between 1 and half the clip's {frames} latent frames ({frames // 2})")

    def crossfade_frames(self, frames: int) -> int:
        return self.loop_frames if self.loop_frames is not None else max(1, frames // 4)


def edit(clip: LatentClip, plan: EditPlan, *, model: LoadedModel | None = None, progress: Progress = no_progress) -> LatentClip:
    """Apply ``plan`` to ``clip``, in the documented order; one ``edit`` step in the history lists them.

    Args:
        clip: a clip (kind ``clip``).
        plan: the operations.
        model: a loaded pipeline, needed when the plan has a ``regeneration``.
        progress: called with the denoising steps done.
    """
    plan.validate(clip)
    latents = clip.latents.float()  # (F, C, h, w)
    sound = clip.audio  # (L, C, M) or None: trim and reverse keep it in line; a loop's crossfade drops it (a note)
    operations: list[dict[str, Any]] = []
    if plan.trim is not None:
        first, last = resolve_trim(plan.trim, int(latents.shape[0]))
        latents = latent_ops.trim(latents, first, last)
        sound = _trim_sound(clip, first, last)
        operations.append({"operation": "trim", "start": first, "end": last})
    if plan.reverse:
        latents = latent_ops.reverse(latents)
        if sound is not None:
            sound = sound.flip(0)
            warnings.warn(Note("reverse: the clip's sound is reversed with its frames (its latent steps in reverse order, "
                               "so it plays backwards to the audio VAE's resolution)"), stacklevel=2)
        operations.append({"operation": "reverse"})
    if plan.regeneration is not None:
        latents, sound, record = _regenerate(clip, latents, sound, plan.regeneration, model, progress)
        operations.append(record)
    if plan.direction is not None:
        latents = latent_ops.add_direction(latents, plan.direction.latents.float(), plan.scale)
        operations.append({"operation": "direction", "source": plan.direction_source, "scale": plan.scale})
    if plan.pca_shift is not None:
        component, amount = plan.pca_shift
        latents = pca_shift(latents, plan.components, component - 1, amount)
        operations.append({"operation": "pca_shift", "component": component, "amount": amount, "source": plan.components_source})
    if plan.smooth:
        latents = latent_ops.smooth(latents, plan.smooth)
        operations.append({"operation": "smooth", "sigma": plan.smooth})
    if plan.loop:
        crossfade = plan.crossfade_frames(int(latents.shape[0]))
        latents = latent_ops.crossfade_loop(latents, crossfade)
        operations.append({"operation": "loop", "crossfade_frames": crossfade})
    # A re-generated clip is the seed's; strength 0 leaves the clip, and its seed, as they were.
    seed = plan.regeneration.seed if plan.needs_model and plan.regeneration is not None else clip.seed
    return clip.with_step("edit", {"operations": operations}, latents=latents, seed=seed, audio=sound)


def _trim_sound(clip: LatentClip, first: int, last: int) -> torch.Tensor | None:
    """The sound of latent frames ``first`` to ``last`` (excluded): the latent steps from the time
    of the first pixel frame they decode to, as many as their pixel frames last."""
    if clip.audio is None or clip.audio_layout is None:
        return None
    rule, layout = clip.layout.frame_rule, clip.audio_layout
    start = round(rule.pixel_span(first)[0] / clip.fps * layout.latents_per_second)
    count = layout.steps_for(rule.pixel_frames(last - first), clip.fps)
    return clip.audio[start : start + count].clone()


def _regenerate(clip: LatentClip, latents: torch.Tensor, sound: torch.Tensor | None, regeneration: Regeneration,
                model: LoadedModel | None, progress: Progress) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    """The --image operation of ``edit``: the latents, the sound (re-generated with them where the
    family makes sound: LTX-2) and the history record."""
    record: dict[str, Any] = {"operation": "image", "source": regeneration.source, "image_sha256": regeneration.image_sha256,
                              "strength": regeneration.strength, "seed": regeneration.seed}
    if regeneration.strength == 0:
        return latents, sound, {**record, "denoising_steps": 0}
    if model is None:
        raise ValueError("an edit with an image and a strength above 0 needs a loaded model")
    clip.require_space(model.latent_space, what=f"--model {model.model_id}")
    image = media.resize_image(regeneration.image, (clip.width, clip.height))
    knobs = generation.knobs_for_clip(model, regeneration.knobs, int(latents.shape[0]))
    made = generation.regenerate_streams(model, image, latents, strength=regeneration.strength, knobs=knobs,
                                         seed=regeneration.seed, progress=progress, audio=sound)
    return made.latents, made.audio if made.audio is not None else sound, {
        **record, "model": model.model_id, **generation.regeneration_record(model, knobs, regeneration.strength)}


def parse_pca_shift(text: str) -> tuple[int, float]:
    """``COMPONENT:AMOUNT`` (e.g. ``1:2.5``, component counted from 1) as (component, amount)."""
    component, separator, amount = text.partition(":")
    try:
        if not separator:
            raise ValueError
        shift = int(component), float(amount)
    except ValueError:
        raise UsageError(f"--pca-shift {text!r}: expected COMPONENT:AMOUNT, e.g. 1:2.5 (PC1, 2.5 units)") from None
    if not math.isfinite(shift[1]):
        raise UsageError(f"--pca-shift {text!r}: the amount must be a finite number")
    return shift
