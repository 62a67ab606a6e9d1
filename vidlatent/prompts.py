"""A prompt per segment: ``--prompt A --prompt B`` or a prompts file, for extend (one segment per
prompt, on every family that takes a prompt) and a long SkyReels DF generate (one window per prompt).

A prompts file (``--prompts FILE``, ``-`` for stdin) has one segment per line; a line may start
with ``FRAMES:`` (the segment's frame count, extend only), e.g.::

    # a walk in the park
    33: a dog runs across the lawn
    a dog jumps for a ball

Blank lines and lines starting with ``#`` are left out. Torch-free: the command line reads and
checks prompts before anything heavy is imported.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError

if TYPE_CHECKING:
    from vidlatent.families.base import Family, ModelSpec

_FRAMES_PREFIX = re.compile(r"^(\d+):(?:\s+|$)")


@dataclass(frozen=True)
class SegmentPrompt:
    """One segment's prompt, and its pixel frame count where the prompts file gives one."""

    prompt: str
    frames: int | None = None


def parse_prompts(text: str, source: str) -> list[SegmentPrompt]:
    """The segments of a prompts file's ``text`` (``source`` names it in messages)."""
    segments = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        frames = None
        match = _FRAMES_PREFIX.match(line)
        if match:
            frames, line = int(match.group(1)), line[match.end():].strip()
            if frames < 1:
                raise UsageError(f"--prompts {source}: line {number}: {frames} frames; a segment needs at least 1")
        if not line:
            raise UsageError(f"--prompts {source}: line {number} has frames but no prompt; write FRAMES: PROMPT")
        segments.append(SegmentPrompt(line, frames))
    if not segments:
        raise UsageError(f"--prompts {source}: no prompts in it; write one prompt per line (optionally FRAMES: PROMPT)")
    return segments


def read_prompts(path: str) -> list[SegmentPrompt]:
    """The segments of the prompts file ``path`` (``-``: standard input)."""
    if path == "-":
        return parse_prompts(sys.stdin.read(), "-")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--prompts {path}: no such file; give a text file with one prompt per line") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--prompts {path}: cannot be read as text ({error})") from None
    return parse_prompts(text, path)


def segment_prompts(prompts: tuple[str, ...], file: str | None) -> list[SegmentPrompt]:
    """The segments that ``--prompt`` given several times, or ``--prompts FILE``, ask for; [] for
    one prompt or none (the usual single prompt)."""
    if file is not None and prompts:
        raise UsageError(f"--prompts {file} and --prompt: give the prompts one way (the file, or --prompt per segment)")
    if file is not None:
        return read_prompts(file)
    return [SegmentPrompt(prompt) for prompt in prompts] if len(prompts) > 1 else []


def check_window_prompts(family: Family, spec: ModelSpec, knobs: Any, segments: list[SegmentPrompt]) -> list[tuple[int, int]]:
    """The windows (pixel frames [first, end)) a generate call with ``knobs`` makes, checked against
    a prompt per window where ``segments`` gives them: as many prompts as windows, no frame counts
    (a window's length is --window's)."""
    windows = family.windows(knobs, spec)
    if not segments:
        return windows
    if any(segment.frames is not None for segment in segments):
        raise UsageError("--prompts: FRAMES: prefixes are for extend's segments; generate's windows are --window long")
    if len(windows) == 1:
        raise UsageError(f"--prompt given {len(segments)} times: {spec.title} makes this video in one window, so it takes "
                         "one prompt; for a prompt per segment use extend --prompt A --prompt B")
    if len(segments) != len(windows):
        spans = ", ".join(f"{first}-{end - 1}" for first, end in windows)
        raise UsageError(f"{len(segments)} prompts for {len(windows)} windows (frames {spans}): give one prompt per window")
    return windows
