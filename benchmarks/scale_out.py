"""``python -m benchmarks.scale_out``: ``generate`` on 4 inputs, in 1 process and in 2 (torchrun).

Whole processes, timed side by side and interleaved (``--repeats`` rounds), on the tiny SVD
model: 1 process with 1 torch thread, 1 process with 2 threads (torch's default on 2 cores),
and ``torchrun --nproc-per-node 2`` (1 thread each, as torchrun sets it). Prints each run's wall
time, the medians and the ratios against the 1-process, 1-thread run. On a GPU node the same
command with ``--model`` a real model and ``--nproc`` the GPU count measures data parallelism
where it matters; this task had no GPU.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arguments", default="--frames 6 --steps 4 --size 64x64", help="generate's sampling arguments")
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as work:
        shots = Path(work) / "shots"
        shots.mkdir()
        photo = Image.open(Path(__file__).resolve().parents[2] / "shared" / "data" / "test_image.png").convert("RGB")
        for index in range(args.inputs):
            photo.resize((64, 64)).rotate(index * 7).save(shots / f"shot{index}.png")
        common = ["generate", str(shots), "--model", args.model, *args.arguments.split(), "--seed", "1", "-q"]
        runs = {
            "1 process, 1 thread": ({"OMP_NUM_THREADS": "1"}, [sys.executable, "-m", "vidlatent"]),
            "1 process, 2 threads": ({"OMP_NUM_THREADS": "2"}, [sys.executable, "-m", "vidlatent"]),
            f"torchrun, {args.nproc} processes": ({"OMP_NUM_THREADS": "1"}, None),
        }
        walls: dict[str, list[float]] = {name: [] for name in runs}
        for round_index in range(args.repeats):
            for name, (env, command) in runs.items():
                if command is None:
                    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.nproc),
                               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "vidlatent"]
                out = Path(work) / f"out-{round_index}-{len(walls[name])}-{name.split(',')[0].replace(' ', '')}"
                started = time.perf_counter()
                subprocess.run([*command, *common, "-o", f"{out}/{{stem}}.safetensors"], check=True, cwd=work,
                               env={**os.environ, **env}, capture_output=True)
                walls[name].append(time.perf_counter() - started)
                print(f"round {round_index + 1}, {name}: {walls[name][-1]:.2f} s", flush=True)
        reference = statistics.median(walls["1 process, 1 thread"])
        print(f"\n{args.inputs} inputs, {args.model}, {args.arguments}; medians of {args.repeats}:")
        for name, values in walls.items():
            median = statistics.median(values)
            print(f"  {name}: {median:.2f} s  (ratio to 1 process, 1 thread: {median / reference:.2f})")


if __name__ == "__main__":
    main()
