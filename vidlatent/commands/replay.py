"""vidlatent replay: re-run a clip's recorded history and prove the result bit-identical."""

from __future__ import annotations

import json
from typing import Any

import click

from vidlatent import __version__
from vidlatent.commands.options import common_options, output_option
from vidlatent.commands.reporting import Reporter, State, pass_state, print_json
from vidlatent.errors import VidlatentError


@click.command(
    epilog="""\b
Examples:
  vidlatent replay clip.safetensors
  vidlatent replay out.mp4 --dry-run
  vidlatent generate photo.png --model tiny-random --steps 2 --seed 1 -o - | vidlatent extend - -o - | vidlatent replay -
  vidlatent replay clip.safetensors -o again.mp4 --json
"""
)
@click.argument("source", type=click.Path(allow_dash=True), metavar="CLIP|VIDEO")
@output_option("Also write the replayed clip here: a latent file (.safetensors, - for stdout) or a video. "
               "Default: nothing is written.")
@click.option("--dry-run", is_flag=True, help="Print the commands (shell-quoted) that replay would run, and run none.")
@common_options
@pass_state
def command(state: State, source: str, output: str | None, dry_run: bool) -> None:
    """Re-run the history of CLIP (a latent file, - for stdin) or VIDEO (one vidlatent wrote:
    its tag carries the history) step by step, with the recorded arguments, seeds and knobs, and
    say whether the result is bit-identical to it.

    Each step's latents are compared exactly (by SHA-256) with the ones it recorded; at the first
    that differs, replay stops with one line naming the step and the versions (vidlatent,
    diffusers, torch) recorded against the current ones, exit status 1. It replays generate,
    extend and encode steps; a step it cannot replay (its input file missing or changed, another
    command) is named in one line, exit status 1. The steps run in a scratch folder that is
    removed afterwards: replay writes only to -o, never to paths the history records.
    """
    import tempfile

    from vidlatent import replay
    from vidlatent.atomic import STDIO
    from vidlatent.commands.outputs import prepare_output

    report = Reporter(state, "replay")
    recording = replay.open_recording(source)
    if dry_run:
        steps = replay.plan(recording, "")
        if state.json:
            print_json(json.dumps({"command": "replay", "vidlatent": __version__, "status": "ok", "dry_run": True,
                                   "source": source, "steps": [_planned_json(step) for step in steps]}))
        else:
            click.echo("\n".join(step.shell for step in steps))
        return
    if output is not None:
        recorded = [str(step.get("arguments", {}).get("source", "")) for step in recording.history]
        prepare_output(output, [source, *(path for path in recorded if path not in ("", STDIO))])
    with tempfile.TemporaryDirectory(prefix="vidlatent-replay-") as workdir:
        steps = replay.plan(recording, workdir)
        for step in steps:
            report.note(f"step {step.index + 1} of {len(steps)}: {step.shell}")
        with report.timed("replay"):
            result = replay.replay(recording, steps, lambda step: _run(step.argv, quiet=state.quiet))
        summary = {"source": source, "identical": result.identical, "steps": [outcome.as_json() for outcome in result.steps],
                   "first_difference": result.first_difference.as_json() if result.first_difference else None}
        if not result.identical:
            raise ReplayDiffers(result.reason, summary)
        outputs = [_write(result.final, output, quiet=state.quiet)] if output is not None and result.final else []
    report.note(f"{source}: bit-identical: {len(steps)} step(s) replayed, every one equal to its record")
    report.summary(outputs, stdout_busy=output == STDIO, **summary)


class ReplayDiffers(VidlatentError):
    """The replay differs: one line and exit status 1; with --json the comparison too."""

    def __init__(self, message: str, fields: dict[str, Any]) -> None:
        super().__init__(message)
        self.json_fields = fields


def _planned_json(step: Any) -> dict[str, Any]:
    return {"step": step.index + 1, "command": step.command, "argv": ["vidlatent", *step.argv], "shell": step.shell}


def _run(argv: tuple[str, ...], *, quiet: bool) -> int:
    """Run one vidlatent command line in this process (the model stays cached between steps); its exit status."""
    from vidlatent.cli import main

    status = main.main(args=[*argv, *(["-q"] if quiet else [])], prog_name="vidlatent", standalone_mode=False)
    return int(status or 0)


def _write(final: str, output: str, *, quiet: bool) -> dict[str, Any]:
    """The replayed clip to ``output``: its latent file as it is, or decoded into a video."""
    from vidlatent import latentfile
    from vidlatent.commands.outputs import output_entry
    from vidlatent.replay import ReplayError

    clip = latentfile.read(final)
    if latentfile.is_latent_path(output):
        latentfile.write(clip, output)
    elif _run(("decode", final, "-o", output), quiet=quiet) != 0:
        raise ReplayError(f"cannot write {output}: decoding the replayed clip failed (its error is above)")
    return output_entry(output, clip)
