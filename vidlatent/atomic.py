"""Atomic outputs: a command's result appears whole or not at all.

Every output is first written under a temporary name in the target's own folder (so the final
rename stays on one file system) and renamed over the target only when writing succeeded.
A failure, an exception, Ctrl-C or SIGTERM removes the temporary file or folder instead.
Standard output cannot be renamed into place, so ``write_stdout`` writes all of its bytes
or fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from vidlatent.errors import OutputError, UsageError

STDIO = "-"


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Args:
        target: the final path of a file, or of a folder when ``directory`` is true.
        directory: create a temporary folder instead of a file. An existing target folder is
            replaced as a whole.

    The temporary name keeps the target's suffix, so tools that pick a format from the
    extension (ffmpeg) see the right one.
    """
    import shutil
    import tempfile

    target = Path(target)
    parent = target.parent
    _require_folder(target)
    if not directory and target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder; name a file (-o {target / 'NAME'}{target.suffix})")
    prefix = f".{target.name}."
    try:
        _make_folder(parent)
        if directory:
            temporary = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=f".partial{target.suffix}", dir=parent)
            os.close(fd)
            temporary = Path(name)
    except OSError as error:
        raise OutputError(f"cannot write {target}: {error.strerror}; choose a writable folder") from error
    try:
        yield temporary
        if directory:
            _replace_directory(temporary, target)
        else:
            # mkstemp makes owner-only files; give the output ordinary permissions.
            os.chmod(temporary, 0o666 & ~_current_umask())
            os.replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise


def _replace_directory(temporary: Path, target: Path) -> None:
    import shutil
    import tempfile

    os.chmod(temporary, 0o777 & ~_current_umask())
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"cannot write folder {target}: a file of that name exists; remove it or pick another name")
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, retired / target.name)
        os.replace(temporary, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(temporary, target)


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _require_folder(target: Path) -> None:
    """The folder ``target`` goes in exists and is writable, or can be made: its nearest existing
    ancestor is a writable folder. Nothing is made here (a command that is refused later must
    leave nothing behind); ``atomic_output`` makes it when the output is written."""
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {target}: its folder cannot be made ({existing} is a file); choose another -o")
    if not os.access(existing, os.W_OK):
        raise OutputError(f"cannot write {target}: folder {existing} is not writable; choose another -o")


def _make_folder(folder: Path) -> None:
    """Make ``folder`` (and the folders above it) for an output that is being written, with a note."""
    if folder.is_dir():
        return
    import warnings

    from vidlatent.errors import Note

    folder.mkdir(parents=True, exist_ok=True)
    warnings.warn(f"made folder {folder} for the output", Note, stacklevel=3)


def check_output(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], *, folder: bool = False) -> None:
    """Fail early, before any work and without making anything: ``output``'s folder must be
    writable (or makable: it is made when the output is written), ``output`` must not be an
    existing folder unless ``folder`` (a folder of frames) and it must not be an input.

    Raises:
        OutputError: the folder cannot be made or is not writable.
        UsageError: ``output`` is a folder, or names the same file (or folder) as one of ``inputs``.
    """
    if str(output) == STDIO:
        return
    out = Path(output)
    if not folder and out.is_dir():
        raise UsageError(f"-o {output}: is a folder; name a file in it (-o {out / 'NAME'}{out.suffix})")
    _require_folder(out)
    for source in inputs:
        if str(source) == STDIO:
            continue
        src = Path(source)
        same = out.exists() and src.exists() and os.path.samefile(out, src)
        if same or out.resolve() == src.resolve():
            raise UsageError(f"output {output} is the input {source}; write to another path (-o)")


def write_stdout(data: bytes | bytearray | memoryview, *, what: str = "the output") -> None:
    """Write every byte of ``data`` to standard output, or raise OutputError.

    Args:
        data: the bytes (latents, or an encoded JSON line).
        what: how to name them in the error, e.g. "the latents".

    An unbuffered stdout (PYTHONUNBUFFERED=1) may take only part of a write to a pipe; the
    rest is written until all of it went out. A reader that went away (``| head -c 10``)
    makes this an OutputError, never a silent success, and stdout is pointed at /dev/null so
    that Python's own flush at exit does not fail a second time.
    """
    view = memoryview(data).cast("B")
    sys.stdout.flush()  # text written earlier goes first
    stream = sys.stdout.buffer
    written = 0
    try:
        while written < len(view):
            count = stream.write(view[written:])
            if count is None:  # a non-blocking stdout that is full
                raise OutputError(f"cannot write {what} to standard output: it would block; use a blocking pipe or -o FILE")
            written += count
        stream.flush()
    except BrokenPipeError as error:
        discard_stdout()
        raise OutputError(
            f"output pipe closed by the reader before all {len(view)} bytes of {what} were written; "
            "it got an incomplete copy (let the reader read to the end, or write to -o FILE)"
        ) from error
    except OSError as error:
        raise OutputError(f"cannot write {what} to standard output: {error.strerror or error}") from error


def discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null, after its reader went away (no-op without a real fd)."""
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return  # a stdout without a descriptor (click's CliRunner): nothing is flushed at exit
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)
