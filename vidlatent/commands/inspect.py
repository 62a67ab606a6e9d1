"""vidlatent inspect: what a latent clip holds, or how a video was made."""

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
  vidlatent inspect out.mp4 --json
"""
)
@click.argument("clip", type=click.Path(allow_dash=True))
@common_options
@pass_state
def command(state: State, clip: str) -> None:
    """Show CLIP's metadata, shape, dtype, per-channel statistics and history; for a video (or a
    folder of PNG frames) that vidlatent wrote, the history its tag carries (how it was made).

    With --json, the same as one JSON object on stdout (docs/json.md).
    """
    from vidlatent import latentfile, provenance

    if not latentfile.is_latent_path(clip) and provenance.is_video_path(clip):
        from vidlatent.inspection import describe_video

        summary = describe_video(clip)
        if state.json:
            print_json(json.dumps(summary, indent=2))
            return
        _print_video(summary)
        return
    from vidlatent.inspection import describe

    summary = describe(latentfile.read(clip))
    summary.pop("torch")
    if state.json:
        print_json(json.dumps(summary, indent=2))
        return
    _print_table(summary, Reporter(state))


def _print_video(summary: dict) -> None:  # type: ignore[type-arg]
    from rich.table import Table
    from rich.text import Text

    out = text_console()
    facts = Table(show_header=False, box=None)
    for key in ("kind", "path", "model", "latent_space", "fps", "width", "height", "seed", "latents_sha256", "vidlatent"):
        facts.add_row(key, Text(str(summary.get(key))))  # Text: a tag is data, never rich markup
    out.print(facts)
    out.print(_history_table(summary["history"]))


def _history_table(history: list) -> object:  # type: ignore[type-arg]
    from rich.table import Table
    from rich.text import Text

    table = Table("#", "command", "arguments", title="history")
    for index, step in enumerate(history):
        # Text, not markup: a prompt or path with [brackets] is shown as it is.
        table.add_row(str(index), Text(str(step.get("command", "?"))), Text(json.dumps(step.get("arguments", {}), sort_keys=True)))
    return table


def _print_table(summary: dict, report: Reporter) -> None:  # type: ignore[type-arg]
    from rich.table import Table

    out = text_console()
    facts = Table(show_header=False, box=None)
    for key in ("kind", "model", "latent_space", "shape", "dtype", "frames", "fps", "duration_s", "width", "height", "seed"):
        facts.add_row(key, str(summary[key]))
    audio = summary.get("audio")
    if audio is not None:  # the sound a clip carries (LTX-2): one row
        facts.add_row("audio", f"{audio['shape']} {audio['dtype']}, {audio['duration_s']:g} s at {audio['latents_per_second']:g} "
                               f"latents/s, {audio['sample_rate']} Hz, {audio['values']} values")
    out.print(facts)
    channels = Table("channel", "mean", "std", "min", "max", title="per-channel statistics")
    for row in summary["channels"]:
        channels.add_row(str(row["channel"]), *(f"{row[k]:+.4f}" for k in ("mean", "std", "min", "max")))
    out.print(channels)
    out.print(_history_table(summary["history"]))
