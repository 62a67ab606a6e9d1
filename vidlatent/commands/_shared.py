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
from vidlatent.acceleration import CACHE_METHODS, DEFAULT_CACHE_THRESHOLD, QUANTIZE_CHOICES
from vidlatent.atomic import STDIO
from vidlatent.errors import UsageError, VidlatentError
from vidlatent.models import ALIASES, DEFAULT_MODEL, DEVICES, DTYPES, OFFLOADS, TINY_MODELS, LoadOptions


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
            help=f"Hub id, alias ({', '.join(ALIASES)}), diffusers folder, or a tiny random model "
                 f"({', '.join(TINY_MODELS)}: offline, noise by design). Default: {DEFAULT_MODEL}.",
        ),
        click.option("--device", envvar="VIDLATENT_DEVICE", show_envvar=True, default="auto", show_default=True,
                     metavar="|".join(DEVICES) + "|cuda:N", help="Where to run: auto picks CUDA, then MPS, then CPU."),
        click.option("--dtype", envvar="VIDLATENT_DTYPE", show_envvar=True, default="auto", show_default=True,
                     type=click.Choice(DTYPES), help="Weights' precision: auto is fp16 on a GPU, fp32 on CPU."),
        click.option("--offload", envvar="VIDLATENT_OFFLOAD", show_envvar=True, default="auto", show_default=True,
                     type=click.Choice(OFFLOADS),
                     help="Keep weights on the CPU and bring them to the GPU as needed (diffusers): model (one component at a "
                          "time), group (the denoiser's blocks in turn, overlapped on CUDA streams), sequential (layer by "
                          "layer, slowest). auto: none if the weights fit in free GPU memory, model if the largest "
                          "component does, else group; a note says which."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _vae_tiling_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--vae-tiling/--no-vae-tiling", default=None,
                        help="Decode in overlapping spatial tiles (Wan; its decode streams frame by frame already). "
                             "Default: on where the estimated decode memory exceeds the free memory, with a note.")


def _with_acceleration(load: LoadOptions, **changes: Any) -> LoadOptions:
    import dataclasses

    load = dataclasses.replace(load, acceleration=dataclasses.replace(load.acceleration, **changes))
    load.validate()
    return load


def acceleration_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--cache, --compile, --quantize, --vae-tiling and --lora, folded into the command's
    ``load: LoadOptions`` (its ``acceleration``); goes below ``model_options``. A model family
    that cannot take one refuses it before it loads (``load_sampler``)."""

    @functools.wraps(function)
    def wrapper(*args: Any, load: LoadOptions, cache: str | None, compile_denoiser: bool, quantize: str | None,
                vae_tiling: bool | None, lora: tuple[str, ...], **kwargs: Any) -> Any:
        from vidlatent.acceleration import parse_cache, parse_lora

        load = _with_acceleration(load, cache=parse_cache(cache) if cache else None, compile=compile_denoiser,
                                  quantize=quantize, vae_tiling=vae_tiling, loras=tuple(parse_lora(each) for each in lora))
        return function(*args, load=load, **kwargs)

    options = [
        click.option("--cache", metavar="METHOD[:THRESHOLD]",
                     help=f"Skip the denoiser's remaining blocks on steps where its first block barely changes "
                          f"({' or '.join(CACHE_METHODS)}; threshold [{DEFAULT_CACHE_THRESHOLD:g}]: higher skips more). "
                          "Transformer models (Wan); the history records how many steps were skipped."),
        click.option("--compile", "compile_denoiser", is_flag=True,
                     help="torch.compile the denoiser (Wan: its repeated blocks; SVD: the whole UNet). The first run "
                          "pays for the compilation."),
        click.option("--quantize", type=click.Choice(QUANTIZE_CHOICES),
                     help="Store the denoiser's weights in fp8 and compute in --dtype, layer by layer (half the memory "
                          "of bf16; norms and embeddings stay in --dtype)."),
        _vae_tiling_option(),
        click.option("--lora", multiple=True, metavar="PATH[:SCALE[:EXPERT]]",
                     help="A LoRA (.safetensors) at SCALE [1.0]; repeat to combine. Wan 2.2 two-expert models: into "
                          "both experts, or EXPERT high or low. One that does not fit the model is refused."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def vae_tiling_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--vae-tiling/--no-vae-tiling alone (decode), folded into ``load``; goes below ``model_options``."""

    @functools.wraps(function)
    def wrapper(*args: Any, load: LoadOptions, vae_tiling: bool | None, **kwargs: Any) -> Any:
        return function(*args, load=_with_acceleration(load, vae_tiling=vae_tiling), **kwargs)

    return _vae_tiling_option()(wrapper)


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
        from vidlatent.distributed import launched

        # In a launch of several processes (torchrun), rank 0 alone speaks.
        main = launched().main
        self.quiet = state.quiet or not main
        self.json = state.json and main
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


def _checked_option(*names: str, type: Any = None, **attributes: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A knob's click option whose range is checked as it is parsed: a bad value is refused
    before any model (or torch) loads, with the same one-line message as the library's."""
    field = attributes.pop("field")

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        from vidlatent.knobs import check_knob

        check_knob(field, value)
        return value

    return click.option(*names, type=type, callback=check, **attributes)


def _prompt_option_list(knob: Callable[..., Any]) -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    return [
        click.option("--prompt", metavar="TEXT",
                     help="Text models (Wan, LTX): what the video shows [\"\"; extend and edit: the clip's own]."),
        click.option("--negative-prompt", metavar="TEXT",
                     help="Text models (Wan, LTX): what to avoid [\"\"; extend and edit: the clip's own]."),
        knob("--guidance", type=float, field="guidance",
             help="Text models: classifier-free guidance scale [Wan 5.0, LTX 3.0; LTX distilled 1.0]."),
    ]


def _decode_option_list(knob: Callable[..., Any]) -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    return [
        knob("--decode-timestep", type=float, field="decode_timestep", metavar="T",
             help="LTX: the timestep its VAE decoder is conditioned on, 0-1 [the clip's own, else 0.05]."),
        knob("--decode-noise-scale", type=float, field="decode_noise_scale", metavar="S",
             help="LTX: share of noise mixed into the latents before decoding, 0-1 [the clip's own, else 0.025]."),
    ]


def decode_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--decode-timestep and --decode-noise-scale (LTX's timestep-conditioned decoder), for decode."""
    for option in reversed(_decode_option_list(_checked_option)):
        function = option(function)
    return function


def prompt_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--prompt, --negative-prompt and --guidance alone, for commands whose --steps means
    something else (interpolate); handed over as ``prompts`` (a Knobs with only those)."""

    @functools.wraps(function)
    def wrapper(*args: Any, prompt: str | None, negative_prompt: str | None, guidance: float | None, **kwargs: Any) -> Any:
        from vidlatent.knobs import Knobs

        return function(*args, prompts=Knobs(prompt=prompt, negative_prompt=negative_prompt, guidance=guidance), **kwargs)

    for option in reversed(_prompt_option_list(_checked_option)):
        wrapper = option(wrapper)
    return wrapper


def sampling_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The sampling knobs of every family, handed to the command as one ``knobs`` (a
    vidlatent.generation.Knobs). A model refuses the knobs it does not take.

    Left out, each takes the pipeline's own default (shown in brackets).
    """

    @functools.wraps(function)
    def wrapper(*args: Any, frames: int | None, steps: int | None, cond_fps: int | None, motion: int | None,
                noise_aug: float | None, min_guidance: float | None, max_guidance: float | None, prompt: str | None,
                negative_prompt: str | None, guidance: float | None, guidance_2: float | None, decode_timestep: float | None,
                decode_noise_scale: float | None, **kwargs: Any) -> Any:
        from vidlatent.knobs import Knobs

        knobs = Knobs(frames=frames, steps=steps, fps=cond_fps, motion=motion, noise_aug=noise_aug,
                      min_guidance=min_guidance, max_guidance=max_guidance, prompt=prompt,
                      negative_prompt=negative_prompt, guidance=guidance, guidance_2=guidance_2,
                      decode_timestep=decode_timestep, decode_noise_scale=decode_noise_scale)
        return function(*args, knobs=knobs, **kwargs)

    knob = _checked_option
    options = [
        knob("--frames", type=int, field="frames",
             help="Frames to generate [the model's: 14 for SVD, 25 for SVD-XT; 81 for Wan, which makes 4k+1; "
                  "161 for LTX, which makes 8k+1]."),
        knob("--steps", type=int, field="steps",
             help="Denoising steps [SVD 25, Wan 50, LTX 50; LTX distilled: its documented 8-step schedule]."),
        *_prompt_option_list(knob),
        knob("--guidance-2", type=float, field="guidance_2",
             help="Wan 2.2 two-expert models: guidance of the low-noise expert [--guidance]."),
        knob("--fps", "cond_fps", type=int, field="fps",
             help="SVD, LTX: frame rate the model is conditioned on, and the clip's [SVD 7, LTX 25]."),
        knob("--motion", type=int, field="motion", help="SVD: motion bucket id, 1-255: higher means more motion [127]."),
        knob("--noise-aug", type=float, field="noise_aug", help="SVD: noise added to the conditioning image; more frees the motion [0.02]."),
        knob("--min-guidance", type=float, field="min_guidance", help="SVD: guidance at the first frame; it rises linearly over frames [1.0]."),
        knob("--max-guidance", type=float, field="max_guidance", help="SVD: guidance at the last frame [3.0]."),
        *_decode_option_list(knob),
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
    """The memory switches of a sampling command, with --low-vram already expanded.

    ``forward_chunking`` is asked for explicitly (a model without it refuses) or by --low-vram
    (a model without it goes without, with a note).
    """

    offload_model: bool = False
    forward_chunking: bool = False
    decode_chunk: int | None = None
    low_vram: bool = False


def low_memory_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--low-vram and its parts, handed to the command as one ``memory: LowMemory``.

    They change memory use and speed, never the result.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, low_vram: bool, forward_chunking: bool, decode_chunk: int | None, **kwargs: Any) -> Any:
        memory = LowMemory(
            offload_model=low_vram,
            forward_chunking=forward_chunking,
            decode_chunk=decode_chunk or (2 if low_vram else None),
            low_vram=low_vram,
        )
        return function(*args, memory=memory, **kwargs)

    options = [
        click.option("--low-vram", is_flag=True,
                     help="All of: --offload model, --forward-chunking (where the model has it), --decode-chunk 2 "
                          "(SVD-XT in under 8 GB)."),
        click.option("--forward-chunking", is_flag=True, help="SVD: run the UNet's feed-forward layers in chunks: less memory, slower."),
        click.option("--decode-chunk", type=click.IntRange(min=1),
                     help="Latent frames per VAE decode call [SVD: the model's frame count, 14 or 25; Wan decodes frame by frame]."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def describe_model(load: LoadOptions) -> Any:
    """The family and spec of the model ``load`` names (configs only), for checks before loading;
    refuses acceleration flags the family cannot take (--cache on SVD, ...)."""
    from vidlatent.acceleration import check_fits
    from vidlatent.models import describe

    info = describe(load)
    check_fits(load.acceleration, info.family, info.spec, device=load.device)
    return info


def load_sampler(load: LoadOptions, memory: LowMemory, report: Reporter, *, image: bool = True) -> Any:
    """Load the pipeline for a sampling command, with its memory switches applied.

    Args:
        image: load the pipeline that takes a conditioning image (else text only).
    """
    import dataclasses

    from vidlatent.models import load_pipeline

    family = describe_model(load).family
    chunking = memory.forward_chunking or (memory.low_vram and family.forward_chunking is not None)
    if memory.forward_chunking and family.forward_chunking is None:
        raise UsageError(f"--forward-chunking: {family.title}'s denoiser has no chunked feed-forward in diffusers; leave it out")
    if memory.low_vram and family.forward_chunking is None:
        report.note(f"--low-vram: {family.title}'s denoiser has no chunked feed-forward; offloading and decoding in chunks only")
    if memory.offload_model:
        load = dataclasses.replace(load, offload="model")
    with report.timed("load"):
        model = load_pipeline(load, note=report.note, image=image)
    if chunking:
        getattr(model.pipeline, model.family.forward_chunking).enable_forward_chunking()
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

    kind = "latents" if is_latent_path(path) else ("video" if Path(path).suffix else "frames")
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

    def check_video_output(self, output: str, load: LoadOptions, *, scale: int = 1) -> None:
        """Refuse, before the model loads, a video ``output`` that its encoder cannot take at the
        clip's size (times ``scale``, for an upscale)."""
        from vidlatent.latentfile import is_latent_path

        if is_latent_path(output):
            return  # no limit, and no need to find the model's native area
        if self.clip is not None:
            width, height = self.clip.width, self.clip.height
        else:
            spec = describe_model(load).spec  # configs only: the model's native area and size multiple
            width, height = self.plan.size_for(spec.native_area, spec.size_multiple)
        check_video_sizes([output], (width * scale, height * scale))

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
                self.clip = encode_video(self.plan, model, progress=progress, note=report.note)
        return self.clip


TEXT_ONLY = ""  # the one "source" of a generation from the prompt alone


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


def join_launch(load: LoadOptions, ranks: Any) -> LoadOptions:
    """In a launch of several processes (torchrun): join its process group, and let --device auto
    put each process on its own GPU (cuda:LOCAL_RANK), else the CPU."""
    import dataclasses

    from vidlatent import distributed

    if not ranks.parallel:
        return load
    distributed.start()
    return dataclasses.replace(load, device=distributed.device_name(ranks)) if load.device == "auto" else load


def make_batch_folder(target: str, outputs: list[str]) -> None:
    """With several outputs (-o naming a folder or a pattern), make the folder ``target`` goes in;
    one output's folder must exist already."""
    if len(outputs) > 1 and target != STDIO:
        Path(target).parent.mkdir(parents=True, exist_ok=True)

