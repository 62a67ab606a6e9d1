"""The measuring machinery: interleaved repetitions, fresh processes with their peak memory,
the machine's description, and the table.

Timing on a shared machine: each comparison runs its two sides alternately (A B B A A B …,
so neither side always goes first), after a warm-up of each, and reports the ratio of the two
medians. The ratios of adjacent pairs are kept too: their spread shows how noisy the run was.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Measure = Callable[[], float]  # runs the thing once; returns the seconds it took


def timed(function: Callable[[], object]) -> Measure:
    """A Measure that times a whole call of ``function`` with a monotonic clock."""

    def measure() -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started

    return measure


@dataclass(frozen=True)
class Paired:
    """Seconds of interleaved runs of two sides: ``subject`` (vidlatent) and ``baseline``."""

    subject: list[float]
    baseline: list[float]

    @property
    def subject_median(self) -> float:
        return statistics.median(self.subject)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    def time_ratio(self) -> float:
        """subject / baseline time: below 1 means vidlatent took less time."""
        return self.subject_median / self.baseline_median

    def pair_ratios(self) -> list[float]:
        return [s / b for s, b in zip(self.subject, self.baseline)]


def interleave(subject: Measure, baseline: Measure, *, reps: int, warmup: int, label: str = "") -> Paired:
    """Run ``subject`` and ``baseline`` alternately ``reps`` times each, after ``warmup`` runs of each.

    The order flips every repetition (A B, B A, A B, …) so that whatever the first of a pair
    pays or leaves behind (caches, a neighbour's burst of work) falls on both sides.
    """
    for _ in range(warmup):
        subject()
        baseline()
    subject_times: list[float] = []
    baseline_times: list[float] = []
    for rep in range(reps):
        if rep % 2 == 0:
            subject_times.append(subject())
            baseline_times.append(baseline())
        else:
            baseline_times.append(baseline())
            subject_times.append(subject())
        if label:
            progress(f"  {label}: {rep + 1}/{reps}  vidlatent {subject_times[-1]:.3f} s, reference {baseline_times[-1]:.3f} s")
    return Paired(subject_times, baseline_times)


_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """A line of progress on stderr (stdout carries the table), with the seconds since the start."""
    print(f"{time.perf_counter() - _STARTED:6.1f}s {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ProcessRun:
    """One finished child process: its wall time, its CPU time (user + system, of it and the
    processes it waited for) and the peak RSS of its largest process."""

    seconds: float
    peak_rss: int  # bytes
    stdout: bytes
    stderr: bytes
    cpu_seconds: float = 0.0


class ChildFailed(RuntimeError):
    pass


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: offline, none of the user's vidlatent defaults."""
    env = dict(os.environ)
    for name in ("VIDLATENT_MODEL", "VIDLATENT_DEVICE", "VIDLATENT_DTYPE", "VIDLATENT_OFFLOAD", "VIDLATENT_DEBUG"):
        env.pop(name, None)
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


# Runs one command and reports its wall time and peak RSS. The peak RSS comes from os.wait4;
# on Linux it also counts the memory a child had between fork and exec, which for a child of
# this (large) benchmark process would be this process's own. So every child is started by
# this small launcher instead, a bare interpreter (-S) of a few MiB.
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
took = time.perf_counter() - started
with open(sys.argv[1], "w") as handle:
    json.dump({"seconds": took, "cpu": usage.ru_utime + usage.ru_stime, "maxrss": usage.ru_maxrss,
               "exit": os.waitstatus_to_exitcode(status)}, handle)
"""


def run_process(argv: Sequence[str], *, env: dict[str, str]) -> ProcessRun:
    """Run ``argv`` to the end in a fresh process; raise ChildFailed on a non-zero exit.

    ``seconds`` is the wall time from the start of the process to its end. ``peak_rss`` is
    from ``os.wait4``: the child's own peak, or that of a process it started and waited for
    (e.g. ffmpeg), whichever is larger (at least the launcher's few MiB).
    """
    return run_processes([argv], env=env)[0]


def run_processes(commands: Sequence[Sequence[str]], *, env: dict[str, str]) -> list[ProcessRun]:
    """Run several commands at the same time, each in a fresh process (for memory, not times)."""
    import json

    with tempfile.TemporaryDirectory(prefix="run-") as folder:
        started = []
        for index, argv in enumerate(commands):
            result, out, err = (Path(folder) / f"{index}.{name}" for name in ("json", "out", "err"))
            with open(out, "wb") as stdout, open(err, "wb") as stderr:
                launcher = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(result), *map(str, argv)],
                                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env)
            started.append((argv, launcher, result, out, err))
        runs = []
        for argv, launcher, result, out, err in started:
            launcher.wait()
            stdout_bytes, stderr_bytes = out.read_bytes(), err.read_bytes()
            if launcher.returncode != 0 or not result.exists():
                raise ChildFailed(f"the launcher of {' '.join(map(str, argv))} failed: {stderr_bytes.decode(errors='replace')[-500:]}")
            facts = json.loads(result.read_text())
            if facts["exit"] != 0:
                tail = stderr_bytes.decode(errors="replace").strip().splitlines()[-5:]
                raise ChildFailed(f"{' '.join(map(str, argv))} exited {facts['exit']}: " + " | ".join(tail))
            scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
            runs.append(ProcessRun(seconds=facts["seconds"], peak_rss=facts["maxrss"] * scale,
                                   stdout=stdout_bytes, stderr=stderr_bytes, cpu_seconds=facts["cpu"]))
    return runs


def process_measure(argv: Sequence[str], *, env: dict[str, str], runs: list[ProcessRun] | None = None,
                    cpu: bool = False) -> Measure:
    """A Measure that runs ``argv`` as a fresh process: its wall time, or with ``cpu`` its CPU
    time (the work it did, without the time it waited for a shared machine's cores); each run is
    also appended to ``runs``."""

    def measure() -> float:
        result = run_process(argv, env=env)
        if runs is not None:
            runs.append(result)
        return result.cpu_seconds if cpu else result.seconds

    return measure


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """A limit on a row's ratio: ``ratio <= limit``, or ``ratio >= limit`` when higher is better;
    with ``floor``, a band: ``floor <= ratio <= limit`` (a prediction against a measurement)."""

    limit: float
    higher_is_better: bool = False
    floor: float | None = None

    def __str__(self) -> str:
        if self.floor is not None:
            return f"{self.floor:g}–{self.limit:g}×"
        return f"{'≥' if self.higher_is_better else '≤'} {self.limit:g}×"

    def met(self, ratio: float) -> bool:
        if self.floor is not None:
            return self.floor <= ratio <= self.limit
        return ratio >= self.limit if self.higher_is_better else ratio <= self.limit


@dataclass
class Row:
    """One line of the table.

    Args:
        key: the goal it belongs to ("1" … "6") and a letter, e.g. "2a".
        what: what is measured against what.
        value: vidlatent's figure, formatted.
        baseline: the reference's figure, formatted.
        ratio: the compared ratio (see ``what`` for its direction).
        goal: the goal on the ratio; None for a row that informs.
        pairs: ratios of adjacent pairs, to show the noise.
        note: what was found (why a goal is missed, what the setup was).
        status: replaces the verdict, e.g. "skipped: no CUDA device".
        why: one sentence for the goal's line when the row misses its goal.
    """

    key: str
    what: str
    value: str = ""
    baseline: str = ""
    ratio: float | None = None
    goal: Goal | None = None
    pairs: list[float] = field(default_factory=list)
    note: str = ""
    status: str = ""
    why: str = ""

    @property
    def verdict(self) -> str:
        if self.status:
            return self.status
        if self.ratio is None:
            return "n/a"
        if self.goal is None:
            return "info"
        if self.goal.met(self.ratio):
            return "met"
        if self.pairs and any(self.goal.met(ratio) for ratio in self.pairs):
            return "missed (some pairs met it: noisy)"
        return "missed"

    @property
    def spread(self) -> str:
        if len(self.pairs) < 2:
            return ""
        return f"{min(self.pairs):.2f}–{max(self.pairs):.2f}"


HEADER = ("#", "measurement", "vidlatent", "reference", "ratio", "pairs", "goal", "result")


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (also readable as plain text)."""
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] * len(HEADER)) + "|",
    ]
    for row in rows:
        cells = (
            row.key,
            row.what,
            row.value,
            row.baseline,
            "" if row.ratio is None else f"{row.ratio:.3f}",
            row.spread,
            "" if row.goal is None else str(row.goal),
            row.verdict,
        )
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def conditioning_image(size: tuple[int, int], path: Path, seed: int = 1) -> Path:
    """A deterministic RGB image already at ``size`` (so neither side resizes it), saved as PNG."""
    import numpy as np
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]  # (1, W, 1)
    pixels = ramp + rng.normal(0, 24, (height, width, 3)).astype(np.float32)  # (H, W, 3)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


# --- formatting ------------------------------------------------------------------------------


def on_gpu(rows: Sequence[tuple[str, str]], measure: Callable[[], list[Row]], *, dry: bool = False) -> list[Row]:
    """The rows (key, what) that ``measure`` fills on a CUDA device: skipped without one, not
    run in a smoke run (``dry``), and an error in each when the GPU run fails (a GPU problem
    should not hide the CPU figures)."""
    import torch

    if not torch.cuda.is_available():
        return [Row(key, what, status="skipped: no CUDA device") for key, what in rows]
    if dry:
        return [Row(key, what, status="not run (smoke)") for key, what in rows]
    try:
        return measure()
    except Exception as error:  # noqa: BLE001
        return [Row(key, what, status=f"error: {type(error).__name__}: {error}"[:300]) for key, what in rows]


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def mebibytes(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


# --- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the numbers were measured on: processor, cores, memory, load, and versions."""
    from importlib import metadata

    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} usable "
                 f"({os.cpu_count()} online)",
        "memory": _memory_total(),
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "python": platform.python_version(),
    }
    for package in ("vidlatent", "torch", "diffusers", "transformers", "accelerate", "safetensors", "click", "numpy"):
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    import torch

    facts["torch threads"] = str(torch.get_num_threads())
    facts["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"
