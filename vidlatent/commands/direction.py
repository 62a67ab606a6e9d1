"""vidlatent direction: an edit direction, the difference of mean latents."""

from __future__ import annotations

from typing import Any

import click

from vidlatent.atomic import STDIO
from vidlatent.commands.options import common_options, output_option
from vidlatent.commands.outputs import output_entry, prepare_latent_output
from vidlatent.commands.reporting import Reporter, State, pass_state
from vidlatent.errors import UsageError


class MinusCommand(click.Command):
    """Reads ``POS... --minus NEG...``: every word after --minus, up to the next option, is a NEG.

    click gives an option one value; without this, the second NEG of ``--minus a b`` would
    silently become a POS. ``--minus a --minus b`` works as well.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        after_minus = False
        for word in args:
            if word == "--minus":
                after_minus = True
                continue
            if word.startswith("-") and word != STDIO:
                after_minus = False
            elif after_minus:
                rewritten.append("--minus")
            rewritten.append(word)
        return super().parse_args(ctx, rewritten)


@click.command(
    cls=MinusCommand,
    epilog="""\b
Examples:
  vidlatent direction smiling1.safetensors smiling2.safetensors --minus neutral1.safetensors neutral2.safetensors -o smile.safetensors
  vidlatent direction day.safetensors --minus night.safetensors -o day.safetensors
  vidlatent encode day.mp4 -o - | vidlatent direction - --minus night.safetensors -o day.safetensors
"""
)
@click.argument("positives", nargs=-1, required=True, type=click.Path(allow_dash=True), metavar="POS...")
@click.option("--minus", "negatives", multiple=True, type=click.Path(allow_dash=True), metavar="NEG...",
              help="The clips to subtract: every file after --minus (up to the next option).")
@output_option("The direction file to write (.safetensors, or - for stdout).")
@common_options
@pass_state
def command(state: State, positives: tuple[str, ...], negatives: tuple[str, ...], output: str | None) -> None:
    """Make an edit direction: the mean latent of the POS clips minus the mean latent of the NEG clips.

    Each clip's frames are averaged, then the clips (each counts once). The result is a latent
    file of kind "direction" with one frame, in the clips' latent space; add it to a clip of
    that space and size with `vidlatent edit CLIP --direction D.safetensors --scale A`. Works on
    the latents alone: no model is loaded. See docs/editing.md.
    """
    report = Reporter(state, "direction")
    if not negatives:
        raise UsageError("give the clips to subtract with --minus NEG...; a direction is POS minus NEG")
    if output is None:
        raise UsageError("give -o D.safetensors (or -o - for stdout)")
    paths = [*positives, *negatives]
    if paths.count(STDIO) > 1:
        raise UsageError("- (stdin) can be given only once")
    prepare_latent_output(output, "direction", paths)
    from vidlatent import editing, latentfile  # torch: once the arguments are good

    clips = [editing.read_clip(path, command="direction") for path in paths]
    with report.timed("direction"):
        made = editing.make_direction(clips[: len(positives)], clips[len(positives) :], names=(_names(positives), _names(negatives)))
    latentfile.write(made, output)
    report.note(f"wrote {output} (direction from {len(positives)} minus {len(negatives)} clip(s))")
    report.summary([output_entry(output, made)], stdout_busy=output == STDIO, model=made.model)


def _names(paths: Any) -> list[str]:
    from pathlib import Path

    return [path if path == STDIO else str(Path(path).resolve()) for path in paths]
