"""What the command modules share: options, the per-run state, stderr reporting.

Nothing here imports torch: commands' --help and shell completion stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from vidlatent.atomic import STDIO
from vidlatent.errors import UsageError
from vidlatent.models import DEFAULT_MODEL, DEVICES, DTYPES, OFFLOADS, LoadOptions


@dataclass
class State:
    """Per-invocation settings that every command shares."""

    quiet: bool = False
    debug: bool = False


pass_state = click.make_pass_decorator(State, ensure=True)


def _set_state(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value:
            setattr(ctx.ensure_object(State), field, value)

    return callback


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--quiet and --debug, accepted after any subcommand."""
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


def default_output(source: str, suffix: str) -> str:
    """The output a command writes when -o is not given: the input's name with ``suffix``."""
    if source == STDIO:
        raise UsageError("the input is standard input, so there is no name to derive an output from; give -o PATH (or -o - )")
    return str(Path(source).with_suffix(suffix))


def require_binary_stdout(output: str) -> None:
    """Refuse to pour latent bytes onto a terminal."""
    if output == STDIO and sys.stdout.isatty():
        raise UsageError("refusing to write binary latents to a terminal; pipe them on (-o - | vidlatent …) or give -o FILE.safetensors")


class Reporter:
    """Notes and progress bars on stderr (stdout carries data only); silent with --quiet."""

    def __init__(self, state: State) -> None:
        self.quiet = state.quiet
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"vidlatent: {message}", markup=False)

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar; the yielded function sets how much is done."""
        if self.quiet:
            yield lambda _: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda done: bar.update(task, completed=done)


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


def low_memory_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--low-vram and its parts; they only change memory use and speed, never the result."""
    options = [
        click.option("--low-vram", is_flag=True,
                     help="All of: --offload model, --forward-chunking, --decode-chunk 2 (SVD-XT in under 8 GB)."),
        click.option("--forward-chunking", is_flag=True, help="Run the UNet's feed-forward layers in chunks: less memory, slower."),
        click.option("--decode-chunk", type=click.IntRange(min=1), help="Frames per VAE decode call [the model's frame count: 14 for SVD, 25 for SVD-XT]."),
    ]
    for option in reversed(options):
        function = option(function)
    return function
