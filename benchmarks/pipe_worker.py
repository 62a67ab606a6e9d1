"""One end of a pipe, for the pipe-throughput benchmark.

    python benchmarks/pipe_worker.py write FORMAT PATH   # PATH's clip, serialised to stdout
    python benchmarks/pipe_worker.py read FORMAT          # a clip parsed from stdin

FORMAT is ``vidlatent`` (vidlatent.latentfile.write/read with ``-``, what ``-o -`` and a ``-``
input do), ``torch`` (torch.save to stdout, torch.load of stdin's bytes) or ``raw`` (the bytes
alone, like ``cat``: the pipe's own ceiling). Imports and loading happen first; then the worker
prints ``@@ready`` on stderr. A writer waits for a line on stdin before writing; a reader prints
``@@done`` on stderr once it has parsed the clip. The time between the two is the transfer.

A reader that reads to the end of its input also waits for the writer to *exit*, which for an
interpreter with torch loaded takes a while. So the writer closes its stdout as soon as it has
written (the transfer is measured without its exit), and prints ``@@written T`` with the
monotonic clock, so that the benchmark can tell how long its exit took.
"""

from __future__ import annotations

import os
import sys
import time

READY = "@@ready"
DONE = "@@done"
WRITTEN = "@@written"


def _say(word: str) -> None:
    print(word, file=sys.stderr, flush=True)


def _close_stdout() -> None:
    """Send the reader its end of input now: point fd 1 at /dev/null (closing the pipe)."""
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    _say(f"{WRITTEN} {time.monotonic()}")


def write(form: str, path: str) -> None:
    if form == "vidlatent":
        from vidlatent import latentfile

        clip = latentfile.read(path)
        _say(READY)
        sys.stdin.readline()
        latentfile.write(clip, "-")
        _close_stdout()
    elif form == "torch":
        import torch

        obj = torch.load(path)
        _say(READY)
        sys.stdin.readline()
        torch.save(obj, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        _close_stdout()
    else:
        with open(path, "rb") as handle:
            data = handle.read()
        _say(READY)
        sys.stdin.readline()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        _close_stdout()


def read(form: str) -> None:
    if form == "vidlatent":
        import safetensors.torch  # noqa: F401  (imported ahead, as the torch reader imports torch)

        from vidlatent import latentfile

        _say(READY)
        frames = latentfile.read("-").frames
    elif form == "torch":
        import io

        import torch

        _say(READY)
        frames = torch.load(io.BytesIO(sys.stdin.buffer.read()))["latents"].shape[0]
    else:
        _say(READY)
        frames = len(sys.stdin.buffer.read())
    _say(DONE)
    assert frames > 0


def main(argv: list[str]) -> None:
    dry = "--dry-run" in argv
    argv = [arg for arg in argv if arg != "--dry-run"]
    if len(argv) < 2 or argv[0] not in ("write", "read") or argv[1] not in ("vidlatent", "torch", "raw"):
        raise SystemExit(__doc__)
    if dry:
        # Smoke mode: play the protocol without the work (or the imports).
        _say(READY)
        if argv[0] == "write":
            sys.stdin.readline()
            sys.stdout.buffer.write(b"x")
            _close_stdout()
        else:
            sys.stdin.buffer.read()
            _say(DONE)
        return
    if argv[0] == "write":
        write(argv[1], argv[2])
    else:
        read(argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
