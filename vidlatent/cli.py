"""The command line: a lazy click group and the mapping from errors to exit codes.

Each subcommand lives in ``vidlatent/commands/<name>.py`` and is imported only when it runs
(or when its help is asked for), so ``vidlatent --help`` and shell completion never import
torch. Every way a command can end badly ends the same way: one line on stderr (tracebacks
only with --debug), an exit status (2 usage, 1 runtime, 130 Ctrl-C, 143 SIGTERM) and, with
--json, one JSON object on the stream the summary would have used (docs/json.md).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import threading
import traceback
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

import click

from vidlatent import __version__
from vidlatent.errors import Note, VidlatentError
from vidlatent.errors import UsageError as VidlatentUsageError

# name -> (module under vidlatent.commands that defines `command`, one-line summary). The
# summaries live here so that `vidlatent --help` lists the commands without importing them.
COMMANDS = {
    "encode": ("encode", "Encode a video into a latent clip."),
    "decode": ("decode", "Decode a latent clip into a video."),
    "inspect": ("inspect", "Show a latent clip's metadata, statistics and history."),
    "generate": ("generate", "Generate a video from an image or a prompt."),
    "extend": ("extend", "Continue a clip, segment by segment, without drift."),
    "interpolate": ("interpolate", "More frames, morphs and transitions, in latent space."),
    "edit": ("edit", "Edit a clip: new first frame, directions, smoothing, trim, loop."),
    "direction": ("direction", "Make an edit direction from mean latents."),
    "transfer-motion": ("transfer_motion", "Apply one clip's motion to another image's appearance."),
    "analyze": ("analyze", "PCA, motion energy and static flags of latent clips."),
    "convert": ("convert", "Convert latents to and from ComfyUI's .latent files."),
    "upscale": ("upscale", "Upscale an LTX-Video clip 2x: latent upsampler, then a refining pass."),
    "plan": ("plan", "Estimate what a run needs (memory per stage) and what makes it fit, before loading."),
    "replay": ("replay", "Re-run a clip's or video's history and prove the result bit-identical."),
    "calibrate-cache": ("calibrate_cache", "Measure a model's magnitude ratios for --cache mag."),
    "env": ("env", "Show versions, devices and defaults, for bug reports."),
}
# The commands that share their inputs among the processes of a torchrun / accelerate launch.
SHARED_COMMANDS = frozenset({"generate", "encode", "decode", "extend"})
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM's 15: what a shell reports for a process that SIGTERM ended
RAW_ARGS = "vidlatent.args"  # ctx.meta key: the command line as given, for the --json failure object


class Terminated(BaseException):
    """SIGTERM arrived (timeout, make, a CI cancel): it unwinds like Ctrl-C, so partial outputs go."""


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, summary = COMMANDS[name]
        command: click.Command = importlib.import_module(f"vidlatent.commands.{module}").command
        command.short_help = summary
        return command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        # Command names from the registry too: completing them imports no command module.
        from click.shell_completion import CompletionItem

        names = [CompletionItem(name, help=summary) for name, (_, summary) in sorted(COMMANDS.items()) if name.startswith(incomplete)]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # From the registry: listing the commands imports none of them.
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in sorted(COMMANDS.items())])

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[RAW_ARGS] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise  # plain `vidlatent` shows the help
        except click.UsageError as error:
            end(error, list(args))  # `vidlatent --bogus`: before any subcommand

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        from vidlatent.distributed import launched

        if launched().parallel and name not in SHARED_COMMANDS:
            raise VidlatentUsageError(
                f"{name} does not share its work among the processes of a launch; run it without torchrun "
                f"({', '.join(sorted(SHARED_COMMANDS))} do)"
            )
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        from vidlatent.commands.reporting import State

        # Subcommands share this State object; their own --debug flag sets it too.
        state = ctx.ensure_object(State)
        state.debug = state.debug or bool(ctx.params.get("debug")) or bool(os.environ.get("VIDLATENT_DEBUG"))
        _print_notes_on_stderr(state)
        received: list[type[BaseException]] = []
        try:
            with _sigterm_unwinds(received):
                return super().invoke(ctx)
        except click.exceptions.Exit:
            raise  # --help, --version: not a failure
        except (Exception, KeyboardInterrupt, Terminated) as error:
            if received and not isinstance(error, (KeyboardInterrupt, Terminated)):
                # The signal cut a system call short (a weights file being read), and the library
                # reported that as its own failure: what ended the command is the signal.
                error = received[0]()
            if state.debug and not isinstance(error, (KeyboardInterrupt, Terminated, click.ClickException)):
                traceback.print_exception(error)
            end(error, ctx.meta.get(RAW_ARGS, []))
        finally:
            from vidlatent.distributed import finish

            finish()  # in a launch, leave the process group cleanly, whatever the outcome


def end(error: BaseException, words: list[str]) -> NoReturn:
    """End the command that ``error`` stopped: its one line on stderr, with --json the failure
    object, and its exit status.

    Args:
        error: what stopped it.
        words: the command line as given (for --json and where the object goes).
    """
    from vidlatent.distributed import launched

    line, code = outcome(error)
    if isinstance(error, BrokenPipeError):
        from vidlatent.atomic import discard_stdout

        discard_stdout()  # the reader went away: Python's flush at exit must not fail again
    ranks = launched()
    if not ranks.main:
        # In a launch rank 0 speaks for all: a usage mistake (the same command line in every
        # process) and an interruption are said by it; anything else is this process's own, said
        # with its rank. The status stays this process's, so that the launcher stops the others
        # even where rank 0 did not meet the error (an input another node cannot see). --json
        # stays rank 0's.
        if not isinstance(error, (click.UsageError, VidlatentUsageError, KeyboardInterrupt, click.exceptions.Abort,
                                  Terminated)):
            click.echo(line.replace("vidlatent: ", f"vidlatent: rank {ranks.rank}: ", 1), err=True)
        raise click.exceptions.Exit(code) from None
    click.echo(line, err=True)
    _print_failure_json(words, line, code, getattr(error, "json_fields", {}))
    raise click.exceptions.Exit(code) from None


def outcome(error: BaseException) -> tuple[str, int]:
    """The one line for stderr and the exit status of a command that ``error`` ended."""
    if isinstance(error, Terminated):
        return "vidlatent: terminated (SIGTERM); no output was written", EXIT_TERMINATED
    if isinstance(error, (KeyboardInterrupt, click.exceptions.Abort)):
        return "vidlatent: interrupted; no output was written", EXIT_INTERRUPTED
    if isinstance(error, click.UsageError):
        return f"vidlatent: error: {usage_line(error)}", error.exit_code
    if isinstance(error, (VidlatentError, click.ClickException)):
        message = error.format_message() if isinstance(error, click.ClickException) else str(error)
        return f"vidlatent: error: {_one_line(message)}", error.exit_code
    if isinstance(error, BrokenPipeError):
        return "vidlatent: error: output pipe closed by the reader", 1
    return f"vidlatent: error: unexpected {type(error).__name__}: {_one_line(str(error))} (rerun with --debug for the traceback)", 1


def usage_line(error: click.UsageError) -> str:
    """click's usage error as one line in vidlatent's style, ending with where the help is.

    click prints the usage and "Try ... for help" above "Error: ..."; here the message (with
    click's capital and full stop dropped) and the help command share one line.
    """
    message = _one_line(error.format_message()).rstrip(".")
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    # The root is vidlatent by whatever name it was started (python -m, a test runner).
    command = " ".join(["vidlatent", *(error.ctx.command_path.split()[1:] if error.ctx is not None else [])])
    return f"{message}; see {command} --help"


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _print_failure_json(words: list[str], line: str, code: int, fields: dict[str, Any] | None = None) -> None:
    """With --json, one object saying what failed, on the stream the summary would have used;
    ``fields`` adds what the error knows (a batch: the outputs written and the inputs that failed)."""
    command, wants_json, stdout_busy = _request(words)
    if not wants_json:
        return
    message = line.removeprefix("vidlatent: error: ").removeprefix("vidlatent: ")
    text = json.dumps({"command": command, "vidlatent": __version__, "status": "error", "exit_code": code, "error": message,
                       **(fields or {})})
    from vidlatent.commands.reporting import print_json
    from vidlatent.errors import OutputError

    with contextlib.suppress(OutputError):  # a reader that went away cannot be told either
        print_json(text, err=stdout_busy)


def _request(words: list[str]) -> tuple[str, bool, bool]:
    """From the command line as given: the subcommand, whether --json is asked for, and whether
    stdout carries latents (``-o -``), in which case JSON goes to stderr."""
    words = words[: words.index("--")] if "--" in words else words
    command = next((word for word in words if word in COMMANDS), "")
    pairs = zip(words, words[1:])
    stdout_busy = any(option in ("-o", "--output", "--latent-out") and value == "-" for option, value in pairs) or any(
        word in ("-o-", "--output=-", "--latent-out=-") for word in words
    )
    return command, "--json" in words, stdout_busy


@contextlib.contextmanager
def _sigterm_unwinds(received: list[type[BaseException]]) -> Iterator[None]:
    """Within the block SIGTERM raises Terminated (and Ctrl-C KeyboardInterrupt), so that partial
    outputs are removed as on Ctrl-C.

    Only the first SIGTERM raises: a second one must not cut that cleanup short. A signal that
    arrives while a module is being imported (torch takes seconds) is held until the import is
    over: raised inside it, it leaves torch half-initialised, and torch's C++ start-up can
    turn it into an abort. ``received`` gets the exception of each signal that arrived.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[type[BaseException]] = []

    def raise_now_or_after_the_import(error: type[BaseException], frame: Any) -> None:
        if error not in received:
            received.append(error)
        if _importing(frame):
            if not pending:  # the alarm is borrowed only while a signal waits (pytest-timeout uses it too)
                previous.setdefault(signal.SIGALRM, signal.signal(signal.SIGALRM, retry))
                pending.append(error)
            signal.setitimer(signal.ITIMER_REAL, _IMPORT_POLL_S)  # look again soon
            return
        pending.clear()
        raise error()

    def raise_terminated(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise_now_or_after_the_import(Terminated, frame)

    def raise_interrupted(signum: int, frame: Any) -> None:
        raise_now_or_after_the_import(KeyboardInterrupt, frame)

    def retry(signum: int, frame: Any) -> None:
        if pending:
            raise_now_or_after_the_import(pending[0], frame)

    previous = {number: signal.signal(number, handler) for number, handler in
                ((signal.SIGTERM, raise_terminated), (signal.SIGINT, raise_interrupted))}
    try:
        yield
    finally:
        if signal.SIGALRM in previous:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for number, handler in previous.items():
            signal.signal(number, handler)


_IMPORT_POLL_S = 0.05


def _importing(frame: Any) -> bool:
    """Whether ``frame`` (where a signal handler was called) runs inside an import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _print_notes_on_stderr(state: Any) -> None:
    """Show the library's notes (LatentNote, Note) as one-line notes (silenced by --quiet)."""
    from vidlatent.latentfile import LatentNote

    show_other = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, (LatentNote, Note)):
            show_other(message, category, *args, **kwargs)
        elif not state.quiet:
            click.echo(f"vidlatent: note: {message}", err=True)

    warnings.showwarning = show


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vidlatent")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors (also VIDLATENT_DEBUG=1).")
def main(debug: bool) -> None:
    """Generate and edit video with latent video diffusion models (Stable Video Diffusion, Wan, LTX-Video).

    Commands chain through .safetensors latent files, on disk or piped with `-`:

    \b
        vidlatent encode clip.mp4 --model tiny-random -o - | vidlatent decode - -o again.mp4

    Try any command offline with --model tiny-random (a miniature random model: its output is
    noise by design).
    """
