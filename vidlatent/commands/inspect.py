"""vidlatent inspect: what a latent clip holds."""

from __future__ import annotations

import json

import click

from vidlatent.commands.options import common_options
from vidlatent.commands.reporting import Reporter, State, pass_state, print_json, text_console


@click.command(
    epilog="""\b
Examples:
  vidlatent inspect clip.safetensors
  vidlatent encode in.mp4 --model tiny-random -o - | vidlatent inspect - --json
"""
)
@click.argument("clip", type=click.Path(dir_okay=False, allow_dash=True))
@common_options
@pass_state
def command(state: State, clip: str) -> None:
    """Show CLIP's metadata, shape, dtype, per-channel statistics and history.

    With --json, the same as one JSON object on stdout (docs/json.md).
    """
    from vidlatent import latentfile
    from vidlatent.inspection import describe

    summary = describe(latentfile.read(clip))
    summary.pop("torch")
    if state.json:
        print_json(json.dumps(summary, indent=2))
        return
    _print_table(summary, Reporter(state))


def _print_table(summary: dict, report: Reporter) -> None:  # type: ignore[type-arg]
    from rich.table import Table

    out = text_console()
    facts = Table(show_header=False, box=None)
    for key in ("kind", "model", "latent_space", "shape", "dtype", "frames", "fps", "duration_s", "width", "height", "seed"):
        facts.add_row(key, str(summary[key]))
    out.print(facts)
    channels = Table("channel", "mean", "std", "min", "max", title="per-channel statistics")
    for row in summary["channels"]:
        channels.add_row(str(row["channel"]), *(f"{row[k]:+.4f}" for k in ("mean", "std", "min", "max")))
    out.print(channels)
    history = Table("#", "command", "arguments", title="history")
    for index, step in enumerate(summary["history"]):
        history.add_row(str(index), step.get("command", "?"), json.dumps(step.get("arguments", {}), sort_keys=True))
    out.print(history)
