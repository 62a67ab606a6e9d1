"""A command's many inputs as jobs: shared among the processes of a launch (torchrun,
accelerate launch), a failing input reported while the others go on.

Every process builds the same list of jobs; ``run`` gives each its contiguous share
(``vidlatent.distributed.shard``), gathers what every process wrote to all of them, and has
rank 0 report the inputs that failed. One job alone fails the command as it always did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from vidlatent import distributed
from vidlatent.errors import VidlatentError

T = TypeVar("T")


class InputsFailed(VidlatentError):
    """Some inputs of a batch failed, each reported on its own line; the others were written (exit status 1).

    ``json_fields`` go into the --json failure object: the ``outputs`` written and the inputs ``failed``.
    """

    def __init__(self, message: str, *, outputs: list[dict[str, Any]], failed: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.json_fields = {"outputs": outputs, "failed": failed}


def run(jobs: Sequence[T], work: Callable[[T], list[dict[str, Any]]], *, label: Callable[[T], str],
        ranks: distributed.Ranks, share: bool = True) -> list[dict[str, Any]]:
    """Run ``work`` on this process's jobs; return every process's ``--json`` output entries, in job order.

    Args:
        jobs: the same list in every process.
        work: does one job and returns its output entries.
        label: names a job's input in messages.
        ranks: this process's place in the launch.
        share: False runs every job in every process (one video over several processes, where
            the processes work together on each job).

    Raises:
        InputsFailed: some of several jobs failed (after the others ran).
    """
    mine = distributed.shard(jobs, ranks) if share else list(enumerate(jobs))
    done: list[tuple[int, list[dict[str, Any]]]] = []
    failed: list[tuple[int, str, str]] = []
    for index, job in mine:
        try:
            done.append((index, work(job)))
        except Exception as error:
            if len(jobs) == 1:
                raise
            message = str(error) if isinstance(error, VidlatentError) else f"unexpected {type(error).__name__}: {error}"
            failed.append((index, label(job), message.splitlines()[0] if message else type(error).__name__))
    parts = distributed.gather((done, failed), ranks) if share else [(done, failed)]
    entries = [entry for _, outputs in sorted(item for part, _ in parts for item in part) for entry in outputs]
    failures = sorted(item for _, part in parts for item in part)
    if failures:
        if not ranks.main:
            raise click.exceptions.Exit(1)  # rank 0 reports every process's failures
        for _, name, message in failures:
            click.echo(f"vidlatent: error: {name}: {message}", err=True)
        names = ", ".join(name for _, name, _ in failures)
        raise InputsFailed(f"{len(failures)} of {len(jobs)} inputs failed ({names}); the others were written",
                           outputs=entries, failed=[{"input": name, "error": message} for _, name, message in failures])
    return entries
