"""What a command tells people: the per-run state (--quiet, --debug, --json), notes and progress
on stderr, and the one --json summary.

stdout carries data only. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from vidlatent import __version__
from vidlatent.progress import Progress, no_progress


@dataclass
class State:
    """Per-invocation settings that every command shares."""

    quiet: bool = False
    debug: bool = False
    json: bool = False


pass_state = click.make_pass_decorator(State, ensure=True)

UNLIMITED_WIDTH = 1_000_000  # the width of a "console" that is a file or a pipe


def text_console(*, stderr: bool = False) -> Any:
    """A rich Console that never wraps or cuts a line unless it prints to a terminal.

    On a terminal, tables fit its width. Written to a file or pipe (a log, ``env > env.txt``),
    every line stays whole, however long: a line that a script may grep is one line.
    """
    from rich.console import Console

    terminal = (sys.stderr if stderr else sys.stdout).isatty()
    if terminal:
        return Console(stderr=stderr, highlight=False)
    return _plain_console_class()(stderr=stderr, highlight=False, soft_wrap=True, width=UNLIMITED_WIDTH)


def _plain_console_class() -> Any:
    """A rich Console for files and pipes whose lines end where their text does: rich pads a
    table's cells to the column's width, which in a log or a pipe is trailing spaces on every line."""
    from rich.console import Console

    class PlainConsole(Console):
        def print(self, *objects: Any, **options: Any) -> None:
            with self.capture() as captured:
                super().print(*objects, **options)
            self.file.write("\n".join(line.rstrip() for line in captured.get().split("\n")))
            self.file.flush()

    return PlainConsole


def print_json(text: str, *, err: bool = False) -> None:
    """One JSON document and a newline: on stderr, or all of it on stdout (else OutputError)."""
    if err:
        click.echo(text, err=True)
    else:
        from vidlatent.atomic import write_stdout

        write_stdout((text + "\n").encode(), what="the --json object")


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
            outputs: one entry per file written (see ``vidlatent.commands.outputs.output_entry``).
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
    def progress(self, description: str, total: int | None) -> Iterator[Progress]:
        """A progress bar; the yielded function sets how much is done."""
        if self.quiet or total == 0:  # nothing to count (a transfer without --refine): no bar, no "0 in 0.0 s"
            yield no_progress
            return
        if not self.console.is_terminal:
            # A log gets one line once the work is done, and none when it fails.
            done = [0]
            started = time.perf_counter()
            yield lambda count: done.__setitem__(0, count)
            self.note(f"{description} {done[0]}{f'/{total}' if total else ''} in {time.perf_counter() - started:.1f} s")
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        with Bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False,
        ) as bar:
            task = bar.add_task(description, total=total)
            try:
                yield lambda done: bar.update(task, completed=done)
            except BaseException:
                bar.live.transient = True  # the error line follows; no stopped bar above it
                raise


def announce_seed(report: Reporter, seed: int, *, derived: str = "") -> None:
    """Say the seed a run without --seed uses: a random one with how to repeat it; one ``derived``
    from the input (``derived`` says how) is the same on every run, so nothing needs repeating."""
    if derived:
        report.note(f"seed {seed} ({derived}: the same on every run without --seed)")
    else:
        report.note(f"seed {seed} (pass --seed {seed} to repeat this run)")
