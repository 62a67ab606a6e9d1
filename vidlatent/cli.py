"""The command line: a lazy click group and the mapping from errors to exit codes.

Each subcommand lives in ``vidlatent/commands/<name>.py`` and is imported only when it runs
(or when its help is asked for), so ``vidlatent --help`` and shell completion never import
torch. Library errors become one line on stderr; tracebacks only with --debug.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings
from typing import Any

import click

from vidlatent import __version__
from vidlatent.errors import VidlatentError

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
    "env": ("env", "Show versions, devices and defaults, for bug reports."),
}
EXIT_INTERRUPTED = 130


class CommandFailed(click.ClickException):
    """A VidlatentError on its way out: one line on stderr and the error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"vidlatent: error: {self.format_message()}", err=True)


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

    def invoke(self, ctx: click.Context) -> Any:
        from vidlatent.commands._shared import State

        # Subcommands share this State object; their own --debug flag sets it too.
        state = ctx.ensure_object(State)
        state.debug = state.debug or bool(ctx.params.get("debug")) or bool(os.environ.get("VIDLATENT_DEBUG"))
        _print_notes_on_stderr(state)
        try:
            return super().invoke(ctx)
        except VidlatentError as error:
            if state.debug:
                traceback.print_exc()
            raise CommandFailed(str(error), error.exit_code) from error
        except (KeyboardInterrupt, click.Abort):
            click.echo("vidlatent: interrupted; no output was written", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # The reader of our stdout went away (e.g. `| head`); nothing more can be said there.
            sys.stderr.write("vidlatent: error: output pipe closed by the reader\n")
            raise click.exceptions.Exit(1) from None
        except (click.ClickException, click.exceptions.Exit):
            raise
        except Exception as error:
            if state.debug:
                raise
            raise CommandFailed(f"unexpected {type(error).__name__}: {error} (rerun with --debug for the traceback)", 1) from error


def _print_notes_on_stderr(state: Any) -> None:
    """Show the library's LatentNote warnings as one-line notes (silenced by --quiet)."""
    from vidlatent.latentfile import LatentNote

    show_other = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, LatentNote):
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
