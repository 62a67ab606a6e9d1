"""Seeds: what --seed stands for, on every device (torch is imported only when a generator is made)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAX_SEED = 2**64 - 1


def random_seed() -> int:
    """A fresh seed for runs without --seed; it is recorded so the run can be repeated."""
    return secrets.randbelow(2**32)


def cpu_generator(seed: int) -> torch.Generator:
    """The generator --seed stands for: on the CPU, so a seed gives the same noise on every device."""
    import torch

    return torch.Generator("cpu").manual_seed(seed)
