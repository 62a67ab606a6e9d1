"""Many inputs over several processes, and one Wan video over several GPUs, on the engines that
exist: ``torchrun`` / ``accelerate launch`` for the processes, accelerate's ``PartialState`` for
the process group, diffusers' context parallelism for one video.

Launched as ``torchrun --nproc-per-node N -m vidlatent generate DIR ...``, every process sees
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. A command with many inputs makes its list of jobs
(the same list in every process), takes its contiguous share (``shard``: accelerate's
``split_between_processes``), runs it on its own device (``cuda:LOCAL_RANK``, or the CPU), and
writes each output itself, atomically. Job i is seeded the same whatever the number of
processes, so the outputs equal a single process's, byte for byte (on a CPU: at the same
number of torch threads, which torchrun sets to 1). Rank 0 alone prints progress and notes;
the results of all ranks are gathered to it for the one ``--json`` summary and the list of
failed inputs, and exits with the command's status (after that gather the others exit 0, so
that the launcher waits for rank 0: ``vidlatent.commands._batch``).

Nothing here is a scheduler, a queue or a socket: the launchers start the processes, and
torch.distributed (gloo on CPUs, NCCL on GPUs, through accelerate) carries the few objects
that cross between them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the processes of one launch."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def launched() -> Ranks:
    """The ranks the launcher gave this process (torchrun and accelerate set the same variables);
    one process when none did. Torch-free: cheap enough for argument checks."""
    try:
        return Ranks(rank=int(os.environ.get("RANK", "0")), world=int(os.environ.get("WORLD_SIZE", "1")),
                     local=int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        return Ranks()


def start() -> Any:
    """Join the launch's process group (once) and return accelerate's ``PartialState``.

    Without CUDA, ``PartialState()`` under torchrun falls back to one process on every rank
    (each would do all the work), so the CPU is asked for explicitly: gloo.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def device_name(ranks: Ranks) -> str:
    """``--device auto`` in a launch: each process on its own GPU, else the CPU."""
    import torch

    return f"cuda:{ranks.local}" if torch.cuda.is_available() else "cpu"


def shard(items: Sequence[T], ranks: Ranks) -> list[tuple[int, T]]:
    """This process's contiguous share of ``items``, with each item's index in the whole list."""
    indexed = list(enumerate(items))
    if not ranks.parallel:
        return indexed
    state = start()
    with state.split_between_processes(indexed) as mine:
        return list(mine)


def gather(value: Any, ranks: Ranks) -> list[Any]:
    """Every process's ``value``, in rank order (on every rank)."""
    if not ranks.parallel:
        return [value]
    import torch.distributed as dist

    start()
    values: list[Any] = [None] * ranks.world
    dist.all_gather_object(values, value)
    return values


def broadcast(value: T, ranks: Ranks) -> T:
    """Rank 0's ``value`` on every rank (a random seed drawn once, say)."""
    if not ranks.parallel:
        return value
    from accelerate.utils import broadcast_object_list

    start()
    return broadcast_object_list([value], from_process=0)[0]  # type: ignore[no-any-return]


def finish() -> None:
    """Leave the launch's process group, where this process joined one, before the interpreter
    exits: its threads are joined here, not torn down at exit, which can abort the process
    ("terminate called without an active exception") while the other ranks still run."""
    import sys

    # Only what is already loaded, and never an import: this runs on every way out, also after a
    # signal cut torch's own import short, when importing it again fails with a traceback. A
    # process that joined a group has torch.distributed whole, with is_initialized true.
    dist = sys.modules.get("torch.distributed")
    is_initialized = getattr(dist, "is_initialized", None)
    if dist is None or "torch" not in sys.modules or not callable(is_initialized):
        return  # never joined one: nothing to leave
    try:
        joined = bool(is_initialized())
    except Exception:  # a half-initialised module: it never joined a group
        return
    if joined:
        dist.destroy_process_group()
