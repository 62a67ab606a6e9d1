"""``python -m benchmarks``: run every comparison, print the table, write BENCHMARKS.md.

    python -m benchmarks            # the full run (about 6-10 minutes on 2 CPU cores); writes BENCHMARKS.md
    python -m benchmarks --quick    # every row once at tiny sizes (about a minute): numbers mean nothing
    python -m benchmarks --smoke    # --quick, but children that would import torch only parse their
                                    # arguments: checks the machinery in seconds (the test suite's mode)
    python -m benchmarks --only 2   # the full run of some sections (comma-separated), printed, no BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import cases, real_latents
from benchmarks.harness import Row, child_env, machine, progress, table

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python -m benchmarks"

GOALS = {
    "1": "Startup: `vidlatent --help` and a completion request take at most 3× `python -c pass`.",
    "2": "Generate overhead: `vidlatent generate` takes at most 1.03× the same diffusers call, as whole processes and in-process "
         "(2c, the load alone, is for information: the loader also reads the configs and fingerprints the VAE).",
    "3": "Decode memory: `vidlatent decode`'s peak RSS grows at most 1.25× from 50 to 400 frames, while `decode_latents`' grows with the frames.",
    "4": "Decode and encode speed: at least 1.0× the frames per second of the raw VAE calls at the same chunk.",
    "5": "Latent IO: saving and loading a clip takes at most 1.2× plain safetensors `save_file` + `load_file` of the same tensor.",
    "6": "On a GPU: SVD-XT shapes in fp16 (generate overhead, --low-vram peak VRAM, torch.compile).",
    "7": "Big models: `--cache` runs at most 0.75× the full transformer calls and no more time, `--quantize fp8` stores "
         "the transformer in at most 0.55× the bytes of bf16, `--vae-tiling` decodes in no more peak memory.",
    "8": "Big models on a GPU: `--cache`, `--quantize fp8`, `--offload group` and `--compile` at Wan 2.1 1.3B shapes "
         "(random weights), time and peak VRAM.",
    "9": "Real latents (Wan 2.1, CPU): `interpolate --factor` beats frame repetition, drift correction keeps real change "
         "and bounds added drift to its band, `edit --loop` leaves no seam above the clip's largest step, and `analyze` "
         "does not call real motion static (section \"Real latents\").",
    "10": "The plan: `vidlatent plan`'s predicted peak host memory of tiny Wan, LTX-Video and SVD runs on a CPU is within "
          "±25 % of the measured peak RSS, at three sizes each.",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="Every row once, at tiny sizes (about a minute).")
    mode.add_argument("--smoke", action="store_true", help="--quick without the heavy child processes (seconds).")
    parser.add_argument("--output", type=Path, help="Where to write the Markdown report (default: BENCHMARKS.md for a full run; "
                                                    "--quick and --smoke write none unless given).")
    parser.add_argument("--only", metavar="N[,N...]",
                        help="Run only these sections (their numbers, e.g. 2 or 2,7); writes no report unless --output.")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="Torch threads, here and in every child (default 1; 0: torch's own default). On a shared "
                             "machine, OpenMP threads that wait on each other make single calls vary tenfold.")
    args = parser.parse_args(argv)
    config = cases.SMOKE if args.smoke else cases.QUICK if args.quick else cases.FULL
    numbers = {number for number, _, _ in cases.SECTIONS}
    only = set(args.only.split(",")) if args.only else numbers
    if not only <= numbers:
        parser.error(f"--only {args.only}: the sections are {', '.join(sorted(numbers))}")
    output = args.output or (ROOT / "BENCHMARKS.md" if config is cases.FULL and not args.only else None)

    started = time.perf_counter()
    import torch

    threads_before = torch.get_num_threads()
    try:
        return _run(config, output, child_env(**threads(args.threads)), started, only)
    finally:
        torch.set_num_threads(threads_before)  # main() may be called from Python (the test suite)


def _run(config: cases.Config, output: Path | None, env: dict[str, str], started: float, only: set[str]) -> int:
    facts = machine()
    rows: list[Row] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="vidlatent-bench-") as work:
        # Children keep their bytecode (in the scratch folder, not in the source tree), as an
        # installed vidlatent has it from pip: under PYTHONDONTWRITEBYTECODE an editable checkout
        # would compile its sixty-odd modules again in every child (0.1-0.2 s, which the diffusers
        # script, one file, does not pay), a cost of the checkout rather than of vidlatent.
        env = {name: value for name, value in env.items() if name != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(work) / "bytecode")
        context = cases.Context(config, Path(work), env)
        for number, name, section in cases.SECTIONS:
            if number not in only:
                continue
            progress(f"[{number}] {name}")
            try:
                rows += section(context)
            except Exception as error:  # noqa: BLE001  (one broken comparison should not hide the others)
                failed = True
                rows.append(Row(number, name, status=f"error: {type(error).__name__}: {error}"[:400]))
    if config is not cases.FULL:
        for row in rows:
            row.status = row.status or f"not judged ({config.name} run)"
    facts["load average at end"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    facts["duration"] = f"{time.perf_counter() - started:.0f} s ({config.name} run)"

    print(table(rows))
    print()
    for line in goal_lines(rows):
        if only is None or line.split(".")[0].removeprefix("- Goal ") in only:
            print(line)
    if output:
        output.write_text(report(rows, facts, config))
        progress(f"wrote {output}")
    return 1 if failed else 0


def threads(count: int) -> dict[str, str]:
    """Use ``count`` torch threads in this process; returns the environment that does so in children."""
    if count <= 0:
        return {}
    import torch

    torch.set_num_threads(count)
    return {"OMP_NUM_THREADS": str(count), "MKL_NUM_THREADS": str(count)}


def goal_lines(rows: Sequence[Row]) -> list[str]:
    """One line per goal: met or not, and why (the notes of the rows that missed)."""
    lines = []
    for number, text in GOALS.items():
        mine = [row for row in rows if row.key.rstrip("abcdefghijklmnopqrstuvwxyz") == number]
        verdicts = [row.verdict for row in mine if row.goal is not None or row.status]
        if not verdicts:
            state = "not measured"
        elif any(v.startswith(("error", "skipped", "not judged")) for v in verdicts):
            state = next(v for v in verdicts if v.startswith(("error", "skipped", "not judged")))
        elif all(v == "met" for v in verdicts):
            state = "**met**"
        else:
            missed = [row for row in mine if row.verdict.startswith("missed")]
            state = "**not met**: " + "; ".join(f"{row.key} is {row.ratio:.3f} ({row.verdict})" for row in missed)
            reasons = list(dict.fromkeys(row.why for row in missed if row.why))
            if reasons:
                state += ". Why: " + " ".join(reason.rstrip(".") + "." for reason in reasons)
        lines.append(f"- Goal {number}. {text} — {state}")
    return lines


def noise_paragraph(facts: dict[str, str]) -> str:
    """How busy the machine was, in the load averages, and how to read the figures because of it."""
    return (f"Load average (1, 5 and 15 minutes) at the start of this run: {facts.get('load average at start', '?')}; "
            f"at its end: {facts.get('load average at end', '?')}; cores: {facts.get('cores', '?')}. The run itself "
            "keeps about one core busy, so the rest is other jobs on the same machine. On a shared machine absolute "
            "times drift by tens of percent from run to run: compare ratios, and read a ratio whose pairs straddle its "
            "goal as within the noise.")


def report(rows: Sequence[Row], facts: dict[str, str], config: cases.Config) -> str:
    """BENCHMARKS.md: how it was measured, the machine, the table, the goals and the notes."""
    sizes = (
        f"generate {config.generate_size[0]}x{config.generate_size[1]} px, {config.generate_frames} frames, "
        f"{config.generate_steps} steps ({config.generate_reps} in-process and {config.generate_process_reps} whole-process "
        f"repetitions); decode memory {config.decode_size[0]}x{config.decode_size[1]} px, {config.short_frames} vs "
        f"{config.long_frames} frames, chunk {config.decode_chunk}; codec speed {config.speed_size[0]}x{config.speed_size[1]} px, "
        f"chunk {config.speed_chunk}, {config.speed_reps} repetitions; latent IO a {'x'.join(map(str, config.io_shape))} "
        f"clip, {config.io_reps} repetitions ({config.pipe_reps} through the pipe); startup {config.startup_reps} repetitions; "
        f"big models {config.big_size[0]}x{config.big_size[1]} px, {config.big_frames} frames, {config.big_steps} steps "
        f"({config.big_reps} repetitions), tiled decode {config.tiling_size[0]}x{config.tiling_size[1]} px; "
        f"warm-up {config.warmup} of each side"
    )
    notes = [f"- **{row.key}** {row.note}" for row in rows if row.note]
    machine_lines = [f"| {key} | {value} |" for key, value in facts.items()]
    return "\n".join([
        "# Benchmarks",
        "",
        (f"Written by `{COMMAND}` (see `benchmarks/`); rerun it rather than editing this file. "
         "Every figure is a **ratio against a reference measured in the same run**: the two sides run "
         "alternately (A B, B A, …) after a warm-up of each, and the ratio is that of their medians. "
         "The *pairs* column is the range of the ratios of adjacent runs: it shows how noisy the run was. "
         "For times, a ratio below 1 means vidlatent took less time; the speed rows (4) are frames per "
         "second, vidlatent's over the reference's, so above 1 means vidlatent is faster."),
        "",
        noise_paragraph(facts),
        "",
        (f"Sizes: {sizes}. Models: `tiny-random` (the real SVD classes with tiny configs, random weights; section 7: "
         "`tiny-random-wan22` and `tiny-random-wan`, the real Wan classes likewise), "
         "loaded from its diffusers folder, offline (`HF_HUB_OFFLINE=1`); section 9 loads no model: it works on real "
         "Wan 2.1 latents (section \"Real latents\"); section 11 compares the ways to a long video on "
         "`tiny-random-skyreels-df`, `tiny-random-wan`, `tiny-random-ltx` and `tiny-random` at 64x64, "
         f"{config.long_steps} steps, {config.long_seeds} seed(s): plumbing numbers (random weights). "
         f"Torch threads: {facts.get('torch threads', '?')} in this process and every child (`--threads`): on a "
         "shared machine, OpenMP threads waiting on each other at every barrier made single calls vary up to tenfold."),
        "",
        "## Results",
        "",
        table(rows),
        "",
        "## Goals",
        "",
        *goal_lines(rows),
        "",
        "## Notes",
        "",
        *notes,
        "",
        real_latents.report_section(),
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *machine_lines,
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
