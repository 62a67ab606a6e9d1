"""A command's many inputs as jobs: shared among the processes of a launch (torchrun,
accelerate launch), a failing input reported while the others go on.

Every process builds the same list of jobs; ``run`` gives each its contiguous share
(``vidlatent.distributed.shard``), gathers what every process wrote to all of them, and has
rank 0 report the inputs that failed. One job alone fails the command as it always did.

When the batch fails, rank 0 says so and exits with the status; the other processes, which
met rank 0 at the gather and so know it is saying it, exit 0. A launcher (torchrun,
accelerate) stops every process as soon as one fails, so a quiet rank that failed first could
stop rank 0 before its message is out; exiting 0 it lets the launcher wait for rank 0, whose
status the launcher then reports (its own exit status is 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from vidlatent import distributed
from vidlatent.errors import IncompatibleLatentsError, InputError, ModelError, UsageError, VidlatentError

T = TypeVar("T")
R = TypeVar("R")


class InputsFailed(VidlatentError):
    """Some inputs of a batch failed, each reported on its own line; the others were written (exit status 1).

    ``json_fields`` go into the --json failure object: the ``outputs`` written and the inputs ``failed``.
    """

    def __init__(self, message: str, *, outputs: list[dict[str, Any]], failed: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.json_fields = {"outputs": outputs, "failed": failed}


class BatchStopped(VidlatentError):
    """An error that ended a batch in one of the processes of a launch, said once by rank 0
    with the exit status the error has."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def open_inputs(sources: Sequence[str], open_one: Callable[[str], R]) -> tuple[dict[str, R], dict[str, Exception]]:
    """Open every input before the model loads: ``(opened, unreadable)`` by source.

    An input that cannot be read (an ``InputError``) fails the command when it is the only one,
    or when every input fails (with the first error); else it is kept apart, to fail its own
    outputs while the others go on.
    """
    opened: dict[str, R] = {}
    unreadable: dict[str, Exception] = {}
    for source in sources:
        try:
            opened[source] = open_one(source)
        except InputError as error:
            if len(sources) == 1:
                raise
            unreadable[source] = error
    if sources and len(unreadable) == len(sources):
        raise next(iter(unreadable.values()))
    return opened, unreadable


def run(jobs: Sequence[T], work: Callable[[T], list[dict[str, Any]]], *, label: Callable[[T], str],
        ranks: distributed.Ranks, share: bool = True, note: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run ``work`` on this process's jobs; return every process's ``--json`` output entries, in job order.

    Args:
        jobs: the same list in every process.
        work: does one job and returns its output entries.
        label: names a job's input in messages.
        ranks: this process's place in the launch.
        share: False runs every job in every process (one video over several processes, where
            the processes work together on each job).
        note: rank 0's notes (the command's ``Reporter.note``): in a launch, rank 0 says what the
            other processes wrote (they are quiet) and the total, once every process is done.

    Raises:
        InputsFailed: some of several jobs failed (after the others ran).
        BatchStopped: in a launch, the one job failed, or an error that every job would meet
            (``stops_the_batch``); outside a launch that error itself is raised.
    """
    together = share and ranks.parallel  # every process must reach the gather, whatever fails
    started = time.perf_counter()
    mine = distributed.shard(jobs, ranks) if share else list(enumerate(jobs))
    done: list[tuple[int, list[dict[str, Any]]]] = []
    failed: list[tuple[int, str, str]] = []
    stop: tuple[str, int] | None = None  # an error that ends the whole batch: its line and exit status
    for index, job in mine:
        try:
            done.append((index, work(job)))
        except Exception as error:
            ends = len(jobs) == 1 or stops_the_batch(error)
            if ends and not together:
                raise
            if ends:
                stop = (describe(error), getattr(error, "exit_code", 1))
                break
            failed.append((index, label(job), describe(error)))
    parts = distributed.gather((done, failed, stop), ranks) if together else [(done, failed, stop)]
    stops = [part[2] for part in parts if part[2] is not None]
    if stops:
        if not ranks.main:
            raise click.exceptions.Exit(0)  # rank 0 says it, with the status (see the module docstring)
        raise BatchStopped(*stops[0])
    entries = [entry for _, outputs in sorted(item for part in parts for item in part[0]) for entry in outputs]
    failures = sorted(item for part in parts for item in part[1])
    if together and ranks.main and note is not None:
        say_written(parts, ranks, len(jobs), time.perf_counter() - started, note)
    if failures:
        if not ranks.main:
            raise click.exceptions.Exit(0)  # rank 0 reports every process's failures, with the status
        for _, name, message in failures:
            click.echo(f"vidlatent: error: {name}: {message}", err=True)
        names = ", ".join(name for _, name, _ in failures)
        rest = "the others were written" if len(failures) < len(jobs) else "nothing was written"
        raise InputsFailed(f"{len(failures)} of {len(jobs)} inputs failed ({names}); {rest}",
                           outputs=entries, failed=[{"input": name, "error": message} for _, name, message in failures])
    return entries


def say_written(parts: list[Any], ranks: distributed.Ranks, jobs: int, seconds: float, note: Callable[[str], None]) -> None:
    """Rank 0's account of a launch: what each other process wrote (rank 0 said its own as it
    wrote them), then the total."""
    written = 0
    for rank, (done, _, _) in enumerate(parts):
        for _, outputs in sorted(done):
            written += len(outputs)
            if rank != ranks.rank:
                for entry in outputs:
                    note(f"wrote {entry['path']} ({_described(entry)}; process {rank})")
    inputs = sum(len(done) for done, _, _ in parts)
    note(f"wrote {written} output{'s' if written != 1 else ''} over {ranks.world} processes in {seconds:.1f} s "
         f"({inputs} of {jobs} inputs)")


def _described(entry: dict[str, Any]) -> str:
    """An output entry in words: "14 frames, 64x64 px, seed 7"."""
    parts = [f"{entry['frames']} frames"] if "frames" in entry else []
    if "width" in entry and "height" in entry:
        parts.append(f"{entry['width']}x{entry['height']} px")
    if entry.get("seed") is not None:
        parts.append(f"seed {entry['seed']}")
    return ", ".join(parts) or str(entry.get("kind", "written"))


def stops_the_batch(error: Exception) -> bool:
    """An error about the command or the model rather than one input (a usage mistake that is
    not about the input, a model that cannot load): every job would meet it, so it ends the batch.
    An unreadable input, or a clip of another latent space than the model's, fails alone."""
    if isinstance(error, (InputError, IncompatibleLatentsError)):
        return False
    return isinstance(error, (ModelError, UsageError))


def describe(error: Exception) -> str:
    """An error's message as one line."""
    message = str(error) if isinstance(error, VidlatentError) else f"unexpected {type(error).__name__}: {error}"
    return message.splitlines()[0] if message.strip() else type(error).__name__
