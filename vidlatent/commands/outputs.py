"""A command's inputs and outputs: reading its CLIP arguments, planning the output of each input
(-o as a file, a folder or a pattern), checking outputs before any work, and writing clips.

Nothing here imports torch at import time.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidlatent.atomic import STDIO
from vidlatent.commands.loading import LowMemory, describe_model
from vidlatent.commands.reporting import Reporter
from vidlatent.errors import UsageError, VidlatentError
from vidlatent.models import LoadOptions

TEXT_ONLY = ""  # the one "source" of a generation from the prompt alone


def default_output(source: str, suffix: str, *, tag: str = "") -> str:
    """The output a command writes when -o is not given, next to the input.

    Args:
        source: the input path.
        suffix: the output's suffix (clip.mp4 -> clip.safetensors).
        tag: added to the input's stem (tag "-edited": clip.safetensors -> clip-edited.safetensors).
    """
    if source == STDIO:
        raise UsageError("the input is standard input, so there is no name to derive an output from; give -o PATH (or -o - )")
    path = Path(source)
    return str(path.with_name(path.stem + tag + suffix))


def prepare_latent_output(path: str, command: str, inputs: list[str]) -> None:
    """``command`` writes latents only: refuse a video name (with the pipe that decodes
    instead), then check ``path`` as ``prepare_output`` does. Torch-free: it comes first."""
    from vidlatent import latentfile

    if not latentfile.is_latent_path(path):
        raise UsageError(
            f"-o {path}: {command} writes latents (.safetensors, or - for stdout); "
            f"to get a video, pipe them on: vidlatent {command} … -o - | vidlatent decode - -o {path}"
        )
    prepare_output(path, inputs)


def require_binary_stdout(output: str) -> None:
    """Refuse to pour latent bytes onto a terminal."""
    if output == STDIO and sys.stdout.isatty():
        raise UsageError("refusing to write binary latents to a terminal; pipe them on (-o - | vidlatent …) or give -o FILE.safetensors")


def write_clip(clip: Any, target: str, model: Any, memory: LowMemory, report: Reporter, *,
               latents_at: str | None = None) -> dict[str, Any]:
    """Write ``clip`` to ``target``: latents as they are, or decoded to a video; returns its summary entry.

    Args:
        latents_at: where the clip's latents were already written (generate --latent-out), if anywhere.

    Finished latents are never lost to a failing video writer: when decoding or encoding the
    video fails, the latents are saved next to ``target`` (``rescue_path``) and the error says
    where, and how to decode them again.
    """
    from vidlatent import latentfile
    from vidlatent.errors import OutputError
    from vidlatent.video import decode_clip

    if latentfile.is_latent_path(target):
        latentfile.write(clip, target)
        return output_entry(target, clip)
    chunk = memory.decode_chunk or model.family.default_decode_chunk(model)
    try:
        with report.timed("decode"), report.progress("decoding", clip.pixel_frames) as progress:
            decode_clip(clip, model, target, chunk=chunk, progress=progress)
    except Exception as error:
        reason = str(error) if isinstance(error, VidlatentError) else f"cannot write {target}: {type(error).__name__}: {error}"
        if latents_at is None:
            latents_at = rescue_path(target)
            try:
                latentfile.write(clip, latents_at)
            except (VidlatentError, OSError) as second:
                raise OutputError(f"{reason}; and the latents could not be saved either ({second})") from error
        if latents_at == STDIO:
            raise OutputError(f"{reason}; the latents went to stdout (--latent-out -)") from error
        raise OutputError(f"{reason}; the latents are safe in {latents_at} (vidlatent decode {latents_at} -o OTHER.mp4)") from error
    return output_entry(target, clip)


def rescue_path(target: str) -> str:
    """A new latent file next to ``target`` for latents its video could not hold: out.mp4 -> out.latents.safetensors."""
    path = Path(target)
    candidate = path.with_name(f"{path.stem}.latents.safetensors")
    number = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.latents-{number}.safetensors")
        number += 1
    return str(candidate)


def check_latent_targets(targets: list[str], family: str) -> None:
    """Refuse, before anything is sampled, a ComfyUI ``.latent`` target for a clip of ``family``
    (a family name) that declares it cannot be written as one (``Family.comfyui_unwritable``)."""
    from vidlatent import families, latentfile

    refusal = families.family(family).comfyui_unwritable
    for target in targets:
        if refusal is not None and target.lower().endswith(latentfile.COMFYUI_SUFFIX):
            raise UsageError(f"-o {target}: {refusal}")


def check_video_sizes(targets: list[str], size: tuple[int, int]) -> None:
    """Refuse outputs whose video encoder cannot take ``size`` (width, height); latents and PNG folders always can."""
    from vidlatent import latentfile, media

    for target in targets:
        if not latentfile.is_latent_path(target):
            media.check_video_size(target, *size)


def output_entry(path: str, clip: Any, *, frames: int | None = None) -> dict[str, Any]:
    """One ``outputs`` entry of the --json summary: what was written where.

    Args:
        path: the output path, or - for stdout.
        clip: the LatentClip written (or decoded).
        frames: pixel frames written, where they differ from the clip's (a video at another fps).
    """
    from vidlatent.latentfile import is_latent_path

    from vidlatent.media import is_sound_path

    kind = "latents" if is_latent_path(path) else ("sound" if is_sound_path(path) else ("video" if Path(path).suffix else "frames"))
    return {
        "path": path if path == STDIO else str(Path(path).resolve()),
        "kind": kind,
        "frames": clip.pixel_frames if frames is None else frames,
        "latent_frames": clip.frames,
        "width": clip.width,
        "height": clip.height,
        "fps": clip.fps,
        "seed": clip.seed,
        "model": clip.model,
    }


def prepare_output(path: str, inputs: list[str], *, sound: bool = False) -> None:
    """Check an output before any work: latents (not onto a terminal) or a video kind (with
    ``sound``, a .wav file too: decode's), a writable folder (or one that can be made: it is made,
    with a note, when the output is written, so a refusal leaves nothing behind), and not one of the inputs."""
    from vidlatent import latentfile, media
    from vidlatent.atomic import check_output

    folder = False
    if latentfile.is_latent_path(path):
        require_binary_stdout(path)
    elif not (sound and media.is_sound_path(path)):
        folder = media.output_kind(path) == "folder"
    check_output(path, inputs, folder=folder)


@dataclass
class ClipInput:
    """A command's CLIP argument: a latent file (or - for stdin), or a video to encode first.

    ``open`` reads and checks it cheaply, before any model loads; ``latents`` gives the clip,
    encoding the video with the loaded model's VAE when needed.
    """

    path: str
    clip: Any = None  # LatentClip, for a latent file
    plan: Any = None  # vidlatent.video.EncodePlan, for a video

    @classmethod
    def open(cls, path: str) -> ClipInput:
        from vidlatent import latentfile, media
        from vidlatent.video import plan_encode

        is_video = path != STDIO and (Path(path).suffix.lower() in media.SUPPORTED_VIDEO_READ or Path(path).is_dir())
        if is_video:
            plan = plan_encode(path)
            media.check_frames_folder(path, same_size=True)
            return cls(path=path, plan=plan)
        clip = latentfile.read(path)
        if clip.kind != "clip":
            raise UsageError(f"{path}: is a {clip.kind}, not a clip (a direction goes to vidlatent edit CLIP --direction {path})")
        return cls(path=path, clip=clip)

    def check_video_output(self, output: str, load: LoadOptions, *, scale: int = 1) -> None:
        """Refuse, before the model loads, a video ``output`` that its encoder cannot take at the
        clip's size (times ``scale``, for an upscale)."""
        from vidlatent.latentfile import is_latent_path

        if is_latent_path(output):
            if self.clip is not None:
                check_latent_targets([output], self.clip.layout.family)
            return  # no limit, and no need to find the model's native area
        if self.clip is not None:
            width, height = self.clip.width, self.clip.height
        else:
            spec = describe_model(load).spec  # configs only: the model's native area and size multiple
            width, height = self.plan.size_for(spec.native_area, spec.size_multiple)
        check_video_sizes([output], (width * scale, height * scale))

    def load_options(self, load: LoadOptions, model_given: bool) -> LoadOptions:
        """Without --model, a latent clip is worked on by the model that made it."""
        if self.clip is not None and not model_given:
            return dataclasses.replace(load, model=self.clip.model)
        return load

    def describe(self, load: LoadOptions, model_given: bool) -> tuple[LoadOptions, Any]:
        """The model that works on this clip (its own, or --model) and its description, from its
        configs. A --model of another family than the clip's is refused first, before the knobs
        are checked against it: a Wan clip's recorded prompt is no "--prompt" to an SVD model."""
        load = self.load_options(load, model_given)
        described = describe_model(load)
        if self.clip is not None:
            if model_given:
                self.clip.require_family(described.family.name, what=f"--model {load.model}")
            from vidlatent.knobs import check_sampled_size

            check_sampled_size((self.clip.width, self.clip.height), described.spec, flag=f"{self.path}: the clip's size")
        return load, described

    def latents(self, model: Any, report: Reporter) -> Any:
        """The LatentClip: as read, or the video encoded with ``model``'s VAE."""
        if self.clip is None:
            from vidlatent.video import encode_video

            with report.timed("encode"), report.progress("encoding", self.plan.frames) as progress:
                self.clip = encode_video(self.plan, model, progress=progress, note=report.note)
        return self.clip


def expand_inputs(arguments: tuple[str, ...], *, folder_files: Callable[[Path], list[Path]] | None = None) -> list[str]:
    """A command's input arguments as a list: with ``folder_files``, a folder becomes the files it
    lists (in natural order); - (stdin) may come once."""
    sources: list[str] = []
    for argument in arguments:
        if folder_files is not None and argument != STDIO and Path(argument).is_dir():
            sources.extend(str(path) for path in folder_files(Path(argument)))
        else:
            sources.append(argument)
    if sources.count(STDIO) > 1:
        raise UsageError("- (stdin) can be given only once")
    return sources


def plan_outputs(sources: list[str], count: int, output: str | None, suffix: str, *, tag: str = "") -> list[list[str]]:
    """The output path of output ``index`` of each source: ``result[source][index]``.

    Args:
        sources: the inputs (TEXT_ONLY for a generation from the prompt alone).
        count: outputs per input (videos per image).
        output: -o as given: None (next to each input), a path (one output), a folder, or a
            pattern with {stem} (input name without suffix), {index} and {name} ({stem}, plus
            -{index} when there are several outputs per input).
        suffix: the suffix of derived names.
        tag: added to the input's stem in derived names (clip -> clip-extended).
    """
    several = len(sources) * count > 1
    planned: list[list[str]] = []
    for source in sources:
        stem = {STDIO: "stdin", TEXT_ONLY: "prompt"}.get(source) or Path(source).stem
        row = []
        for index in range(count):
            name = (stem if count == 1 else f"{stem}-{index}") + (tag if source not in (STDIO, TEXT_ONLY) else "")
            if output is None:
                if source == STDIO:
                    raise UsageError("the input is standard input, so there is no name to derive an output from; give -o PATH")
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
