"""What the command modules share: options, the per-run state, stderr reporting.

Nothing here imports torch: commands' --help and shell completion stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from vidlatent import __version__
from vidlatent.atomic import STDIO
from vidlatent.errors import UsageError, VidlatentError
from vidlatent.models import DEFAULT_MODEL, DEVICES, DTYPES, OFFLOADS, LoadOptions


@dataclass
class State:
    """Per-invocation settings that every command shares."""

    quiet: bool = False
    debug: bool = False
    json: bool = False


pass_state = click.make_pass_decorator(State, ensure=True)


def _set_state(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value:
            setattr(ctx.ensure_object(State), field, value)

    return callback


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--json, --quiet and --debug, accepted after any subcommand."""
    function = click.option(
        "--json", is_flag=True, expose_value=False, callback=_set_state("json"),
        help="Print one JSON object describing the result (docs/json.md): on stdout, or on stderr when stdout carries latents.",
    )(function)
    function = click.option(
        "--debug", is_flag=True, expose_value=False, callback=_set_state("debug"), help="Show tracebacks of errors."
    )(function)
    function = click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_state("quiet"), help="No progress bars or notes on stderr."
    )(function)
    return function


def model_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--model/--device/--dtype/--offload, handed to the command as one ``load: LoadOptions``."""

    @functools.wraps(function)
    def wrapper(*args: Any, model: str | None, device: str, dtype: str, offload: str, **kwargs: Any) -> Any:
        load = LoadOptions(model=model or DEFAULT_MODEL, device=device, dtype=dtype, offload=offload)
        load.validate()
        return function(*args, load=load, model_given=model is not None, **kwargs)

    options = [
        click.option(
            "--model",
            envvar="VIDLATENT_MODEL",
            show_envvar=True,
            metavar="ID|PATH",
            help=f"Hub id, alias (svd, svd-xt), diffusers folder, or tiny-random (offline, noise by design). Default: {DEFAULT_MODEL}.",
        ),
        click.option("--device", envvar="VIDLATENT_DEVICE", show_envvar=True, default="auto", show_default=True,
                     metavar="|".join(DEVICES) + "|cuda:N", help="Where to run: auto picks CUDA, then MPS, then CPU."),
        click.option("--dtype", envvar="VIDLATENT_DTYPE", show_envvar=True, default="auto", show_default=True,
                     type=click.Choice(DTYPES), help="Weights' precision: auto is fp16 on a GPU, fp32 on CPU."),
        click.option("--offload", envvar="VIDLATENT_OFFLOAD", show_envvar=True, default="auto", show_default=True,
                     type=click.Choice(OFFLOADS), help="Move weights to the CPU between uses (diffusers/accelerate) to save GPU memory."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def output_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("-o", "--output", metavar="PATH", help=help_text)


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


UNLIMITED_WIDTH = 1_000_000  # the width of a "console" that is a file or a pipe


def text_console(*, stderr: bool = False) -> Any:
    """A rich Console that never wraps or cuts a line unless it prints to a terminal.

    On a terminal, tables fit its width. Written to a file or pipe (a log, ``env > env.txt``),
    every line stays whole, however long: a line that a script may grep is one line.
    """
    from rich.console import Console

    terminal = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(stderr=stderr, highlight=False, soft_wrap=not terminal, width=None if terminal else UNLIMITED_WIDTH)


def print_json(text: str, *, err: bool = False) -> None:
    """One JSON document and a newline: on stderr, or all of it on stdout (else OutputError)."""
    if err:
        click.echo(text, err=True)
    else:
        from vidlatent.atomic import write_stdout

        write_stdout((text + "\n").encode(), what="the --json object")


def require_binary_stdout(output: str) -> None:
    """Refuse to pour latent bytes onto a terminal."""
    if output == STDIO and sys.stdout.isatty():
        raise UsageError("refusing to write binary latents to a terminal; pipe them on (-o - | vidlatent …) or give -o FILE.safetensors")


class Reporter:
    """Notes, progress bars and the --json summary; stdout carries data only.

    Notes and progress go to stderr and --quiet silences them. Phases timed with ``timed``
    end up in the summary's ``timings``.
    """

    def __init__(self, state: State, command: str = "") -> None:
        self.quiet = state.quiet
        self.json = state.json
        self.command = command
        self.timings: dict[str, float] = {}
        self._started = time.perf_counter()
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            self._console = text_console(stderr=True)
        return self._console

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the time spent in the block to ``timings[phase + "_s"]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            key = f"{phase}_s"
            self.timings[key] = round(self.timings.get(key, 0.0) + time.perf_counter() - started, 4)

    def summary(self, outputs: list[dict[str, Any]], *, stdout_busy: bool, **fields: Any) -> None:
        """With --json, print the one summary object (docs/json.md) once the work is done.

        Args:
            outputs: one entry per file written (see ``output_entry``).
            stdout_busy: stdout carries latent bytes, so the summary goes to stderr.
            fields: command-specific fields (model, seed, ...).
        """
        if not self.json:
            return
        timings = dict(self.timings, total_s=round(time.perf_counter() - self._started, 4))
        payload = {"command": self.command, "vidlatent": __version__, "status": "ok", **fields, "outputs": outputs,
                   "timings": timings}
        print_json(json.dumps(payload, sort_keys=False), err=stdout_busy)

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"vidlatent: {message}", markup=False)

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar; the yielded function sets how much is done."""
        if self.quiet:
            yield lambda _: None
            return
        if not self.console.is_terminal:
            # A log gets one line once the work is done, and none when it fails.
            done = [0]
            started = time.perf_counter()
            yield lambda count: done.__setitem__(0, count)
            self.note(f"{description} {done[0]}{f'/{total}' if total else ''} in {time.perf_counter() - started:.1f} s")
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False,
        ) as bar:
            task = bar.add_task(description, total=total)
            try:
                yield lambda done: bar.update(task, completed=done)
            except BaseException:
                bar.live.transient = True  # the error line follows; no stopped bar above it
                raise


def sampling_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """SVD's knobs, handed to the command as one ``knobs`` (a vidlatent.generation.Knobs).

    Left out, each takes the pipeline's own default (shown in brackets).
    """

    @functools.wraps(function)
    def wrapper(*args: Any, frames: int | None, steps: int | None, cond_fps: int | None, motion: int | None,
                noise_aug: float | None, min_guidance: float | None, max_guidance: float | None, **kwargs: Any) -> Any:
        from vidlatent.generation import Knobs

        knobs = Knobs(frames=frames, steps=steps, fps=cond_fps, motion=motion, noise_aug=noise_aug,
                      min_guidance=min_guidance, max_guidance=max_guidance)
        knobs.validate()
        return function(*args, knobs=knobs, **kwargs)

    options = [
        click.option("--frames", type=int, help="Frames to generate [the model's: 14 for SVD, 25 for SVD-XT]."),
        click.option("--steps", type=int, help="Denoising steps [25]."),
        click.option("--fps", "cond_fps", type=int, help="Frame rate the model is conditioned on, and the clip's [7]."),
        click.option("--motion", type=int, help="Motion bucket id, 1-255: higher means more motion [127]."),
        click.option("--noise-aug", type=float, help="Noise added to the conditioning image; more frees the motion [0.02]."),
        click.option("--min-guidance", type=float, help="Guidance at the first frame; it rises linearly over frames [1.0]."),
        click.option("--max-guidance", type=float, help="Guidance at the last frame [3.0]."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def seed_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--seed", type=click.IntRange(0, 2**63 - 1),
        help='Seed of torch.Generator("cpu"): the same on every device. Default: a random seed, printed and recorded.',
    )(function)


@dataclass(frozen=True)
class LowMemory:
    """The memory switches of a sampling command, with --low-vram already expanded."""

    offload_model: bool = False
    forward_chunking: bool = False
    decode_chunk: int | None = None


def low_memory_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--low-vram and its parts, handed to the command as one ``memory: LowMemory``.

    They change memory use and speed, never the result.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, low_vram: bool, forward_chunking: bool, decode_chunk: int | None, **kwargs: Any) -> Any:
        memory = LowMemory(
            offload_model=low_vram,
            forward_chunking=forward_chunking or low_vram,
            decode_chunk=decode_chunk or (2 if low_vram else None),
        )
        return function(*args, memory=memory, **kwargs)

    options = [
        click.option("--low-vram", is_flag=True,
                     help="All of: --offload model, --forward-chunking, --decode-chunk 2 (SVD-XT in under 8 GB)."),
        click.option("--forward-chunking", is_flag=True, help="Run the UNet's feed-forward layers in chunks: less memory, slower."),
        click.option("--decode-chunk", type=click.IntRange(min=1),
                     help="Frames per VAE decode call [the model's frame count: 14 for SVD, 25 for SVD-XT]."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def load_sampler(load: LoadOptions, memory: LowMemory, report: Reporter) -> Any:
    """Load the full pipeline for a sampling command, with its memory switches applied."""
    import dataclasses

    from vidlatent.models import load_pipeline

    if memory.offload_model:
        load = dataclasses.replace(load, offload="model")
    with report.timed("load"):
        model = load_pipeline(load, note=report.note)
    if memory.forward_chunking:
        model.pipeline.unet.enable_forward_chunking()
    return model


def announce_seed(report: Reporter, seed: int) -> None:
    report.note(f"seed {seed} (pass --seed {seed} to repeat this run)")


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
    # The pipeline decodes all its frames at once; a VAE-only model has no UNet to ask.
    default = int(model.pipeline.unet.config.num_frames) if model.pipeline is not None else 14
    chunk = memory.decode_chunk or default
    try:
        with report.timed("decode"), report.progress("decoding", clip.frames) as progress:
            decode_clip(clip, model, target, chunk=chunk, progress=progress)
    except Exception as error:
        reason = str(error) if isinstance(error, VidlatentError) else f"cannot write {target}: {type(error).__name__}: {error}"
        if latents_at is None:
            latents_at = rescue_path(target)
            try:
                latentfile.write(clip, latents_at)
            except (VidlatentError, OSError) as second:
                raise OutputError(f"{reason}; and the latents could not be saved either ({second})") from error
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


def native_area_before_loading(load: LoadOptions) -> int:
    """The model's native pixel area, known before it loads (to check output sizes early).

    A local folder (and tiny-random) says it in its configs; a hub id is a Stable Video
    Diffusion model, whose area is SVD's, and is not downloaded for this.
    """
    from vidlatent import models

    if load.model != models.TINY_RANDOM and not Path(models.ALIASES.get(load.model, load.model)).expanduser().is_dir():
        return models.DEFAULT_NATIVE_AREA
    return models.native_area(models.model_folder(load.model, ("vae",)))


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
        frames: frames written, where they differ from the clip's (a video at another fps).
    """
    from vidlatent.latentfile import is_latent_path

    kind = "latents" if is_latent_path(path) else ("video" if Path(path).suffix else "frames")
    return {
        "path": path if path == STDIO else str(Path(path).resolve()),
        "kind": kind,
        "frames": clip.frames if frames is None else frames,
        "width": clip.width,
        "height": clip.height,
        "fps": clip.fps,
        "seed": clip.seed,
        "model": clip.model,
    }


def prepare_output(path: str, inputs: list[str]) -> None:
    """Check an output before any work: latents (not onto a terminal) or a video kind, a
    writable folder (made if missing), and not one of the inputs."""
    from vidlatent import latentfile, media
    from vidlatent.atomic import check_output

    if latentfile.is_latent_path(path):
        require_binary_stdout(path)
    else:
        media.output_kind(path)
    if path != STDIO:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            from vidlatent.errors import OutputError

            raise OutputError(f"cannot write {path}: its folder cannot be made ({error.strerror}); choose another -o") from error
    check_output(path, inputs)


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

    def check_video_output(self, output: str, load: LoadOptions) -> None:
        """Refuse, before the model loads, a video ``output`` that its encoder cannot take at the clip's size."""
        from vidlatent.latentfile import is_latent_path

        if is_latent_path(output):
            return  # no limit, and no need to find the model's native area
        if self.clip is not None:
            size = (self.clip.width, self.clip.height)
        else:
            size = self.plan.size_for(native_area_before_loading(load))
        check_video_sizes([output], size)

    def load_options(self, load: LoadOptions, model_given: bool) -> LoadOptions:
        """Without --model, a latent clip is worked on by the model that made it."""
        import dataclasses

        if self.clip is not None and not model_given:
            return dataclasses.replace(load, model=self.clip.model)
        return load

    def latents(self, model: Any, report: Reporter) -> Any:
        """The LatentClip: as read, or the video encoded with ``model``'s VAE."""
        if self.clip is None:
            from vidlatent.video import encode_video

            with report.timed("encode"), report.progress("encoding", self.plan.frames) as progress:
                self.clip = encode_video(self.plan, model, progress=progress)
        return self.clip
