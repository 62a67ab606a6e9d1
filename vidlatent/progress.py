"""Progress callbacks: the one shape every long step reports through (torch-free, the bottom of the house)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int], None]  # called with how much is done (steps, frames)


def no_progress(_: int) -> None:
    """A Progress that reports nowhere."""
