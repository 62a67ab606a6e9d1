"""Reliability: signals, closed pipes, streaming stdin, odd videos, failing writers, plain stderr.

Most run in-process; the ones about signals and pipes need real processes and run as few,
small ones as they can.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import data_file
from vidlatent import latentfile, media
from vidlatent.cli import main
from vidlatent.errors import OutputError


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory, tiny_model) -> Path:
    """4 frames of bear.gif through tiny-random's VAE (64x64 px)."""
    path = tmp_path_factory.mktemp("reliability") / "small.safetensors"
    result = run("encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "4", "-o", str(path), "-q")
    assert result.exit_code == 0, result.output
    return path


def sized_clip(small_clip: Path, target: Path, frames: int, side: int) -> Path:
    """A clip in tiny-random's latent space with ``frames`` random frames of ``side`` x ``side`` px."""
    clip = latentfile.read(small_clip)
    latents = torch.randn(frames, 4, side // 8, side // 8, generator=torch.Generator().manual_seed(0))
    latentfile.write(dataclasses.replace(clip, latents=latents, width=side, height=side), target)
    return target


# --- SIGINT and SIGTERM: clean up, exit 130 or 143 -----------------------------------------


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_during_decode_leaves_nothing(tmp_path, small_clip, vidlatent_cmd, signum, code, word):
    # 24 frames of 576x576 px, one per decoder call: the decode lasts long enough to be stopped mid-way.
    clip = sized_clip(small_clip, tmp_path / "c.safetensors", 24, 576)
    # In a session of its own, as a shell runs a job: the signal goes to its process group, as
    # a terminal's Ctrl-C does (and `kill -TERM -PGID`); ffmpeg runs in a group of its own.
    process = subprocess.Popen([*vidlatent_cmd, "decode", str(clip), "-o", str(tmp_path / "long.mp4"), "--chunk", "1"],
                               stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    # Once ffmpeg has written the partial file's header, frames are flowing: stop it there.
    while time.monotonic() < deadline and not any(p.name.startswith(".long.mp4.") and p.stat().st_size for p in tmp_path.iterdir()):
        time.sleep(0.05)
    os.killpg(process.pid, signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr.decode()
    assert stderr.decode().splitlines()[-1].startswith(f"vidlatent: {word}") and "Traceback" not in stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no .long.mp4.*.partial.mp4


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_while_torch_loads(tmp_path, small_clip, vidlatent_cmd, signum, code, word):
    """A signal at any moment of the start (torch's import takes a second or more) ends with the
    one line and the signal's status: no second import of a half-loaded torch on the way out."""
    for delay in (0.5, 0.8, 1.1, 1.4):
        process = subprocess.Popen([*vidlatent_cmd, "decode", str(small_clip), "-o", str(tmp_path / "o.mp4")],
                                   stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(delay)
        os.killpg(process.pid, signum)
        _, stderr = process.communicate(timeout=120)
        text = stderr.decode()
        if process.returncode == 0:
            continue  # the machine was fast enough to finish first
        assert (process.returncode, text.count("\n")) == (code, 1), (delay, text)
        assert text.startswith(f"vidlatent: {word}") and "Traceback" not in text
        assert list(tmp_path.iterdir()) == []


# --- stdout: complete or failed ------------------------------------------------------------


def test_short_write_to_a_closed_pipe_fails(tmp_path, small_clip, vidlatent_cmd):
    # 1.6 MB of latents into `head -c 10` on an unbuffered stdout: the reader leaves after 10 bytes.
    clip = sized_clip(small_clip, tmp_path / "big.safetensors", 24, 256)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    writer = subprocess.Popen([*vidlatent_cmd, "edit", str(clip), "--reverse", "-o", "-"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    reader = subprocess.run(["head", "-c", "10"], stdin=writer.stdout, capture_output=True, timeout=60)
    writer.stdout.close()
    stderr = writer.stderr.read().decode()
    assert writer.wait(timeout=60) == 1, stderr
    assert len(reader.stdout) == 10
    assert stderr.splitlines() == [stderr.splitlines()[0]] and "output pipe closed" in stderr, stderr
    assert "wrote" not in stderr and "Exception ignored" not in stderr


def test_write_stdout_retries_short_writes_and_fails_on_a_closed_reader(monkeypatch):
    from vidlatent import atomic

    class Trickle:  # a raw stdout that takes at most 3 bytes per call, then has no reader
        def __init__(self, limit: int) -> None:
            self.got, self.limit = bytearray(), limit

        def write(self, data) -> int:
            if len(self.got) >= self.limit:
                raise BrokenPipeError(32, "Broken pipe")
            self.got += bytes(data[:3])
            return min(3, len(data))

        def flush(self) -> None:
            pass

    class Stdout:
        def __init__(self, buffer) -> None:
            self.buffer = buffer

        def flush(self) -> None:
            pass

    whole = Trickle(limit=100)
    monkeypatch.setattr(sys, "stdout", Stdout(whole))
    atomic.write_stdout(b"0123456789")
    assert bytes(whole.got) == b"0123456789"
    cut = Trickle(limit=6)
    monkeypatch.setattr(sys, "stdout", Stdout(cut))
    with pytest.raises(OutputError, match="output pipe closed by the reader before all 10 bytes"):
        atomic.write_stdout(b"0123456789")


@pytest.mark.parametrize("args, end, message", [
    (["decode", "-", "-o", "{tmp}/o.mp4"], "stdin", "standard input is a terminal"),
    (["encode", "{video}", "-o", "-"], "stdout", "refusing to write binary latents to a terminal"),
    (["generate", "-", "-o", "{tmp}/o.mp4"], "stdin", "standard input is a terminal"),
])
def test_terminals_are_refused_where_bytes_should_flow(tmp_path, vidlatent_cmd, args, end, message):
    import pty

    leader, follower = pty.openpty()
    words = [word.format(tmp=tmp_path, video=data_file("bear.gif")) for word in args]
    ends = {"stdin": follower} if end == "stdin" else {"stdout": follower, "stdin": subprocess.DEVNULL}
    try:
        result = subprocess.run([*vidlatent_cmd, *words], stderr=subprocess.PIPE, timeout=60, **ends)
    finally:
        os.close(follower)
        os.close(leader)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("vidlatent: error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


# --- stdin: read to the declared length --------------------------------------------------


def test_reader_does_not_wait_for_its_writer_to_exit(small_clip, vidlatent_cmd):
    # The writer sends a whole latent file, then stays alive with stdout open for a minute.
    script = f"import sys, time; sys.stdout.buffer.write(open({str(small_clip)!r}, 'rb').read()); sys.stdout.flush(); time.sleep(60)"
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        started = time.monotonic()
        reader = subprocess.run([*vidlatent_cmd, "inspect", "-", "--json"], stdin=writer.stdout, capture_output=True, timeout=40)
        assert reader.returncode == 0, reader.stderr.decode()
        assert json.loads(reader.stdout)["frames"] == 4
        assert time.monotonic() - started < 40 and writer.poll() is None  # done while the writer still runs
    finally:
        writer.kill()
        writer.wait()


# --- videos with odd timing ------------------------------------------------------------------


def vfr_video(path: Path) -> Path:
    """38 frames of distinct grey (level 6 x i), 19 at 20 fps then 19 at 6.67 fps: 0.95 + 2.85 = 3.8 s."""
    frames = np.repeat(np.arange(38, dtype=np.uint8)[:, None, None] * 6, 64 * 64, axis=1).reshape(38, 64, 64)  # (F, H, W)
    timing = "setpts='if(lt(N,19),N*0.05,0.95+(N-19)*0.15)/TB'"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", "64x64", "-r", "20",
               "-i", "-", "-vf", timing, "-fps_mode", "vfr", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(command, input=frames.tobytes(), check=True)
    return path


def shown_at(seconds: float) -> int:
    """The source frame of vfr_video on screen at ``seconds``."""
    return int(seconds / 0.05 + 1e-9) if seconds < 0.95 - 1e-9 else 19 + int((seconds - 0.95) / 0.15 + 1e-9)


def test_variable_frame_rate_video_is_read_by_its_timestamps(tmp_path):
    video = vfr_video(tmp_path / "vfr.mp4")
    info = media.probe(video)
    assert info.variable_rate and info.frame_count == 38
    assert info.frame_count / info.fps == pytest.approx(3.8, abs=0.2)  # not 6.8 s: 75 frames said to be 11 fps
    frames = list(media.iter_frames(video, media.FrameSelection(fps=5.0)))
    assert len(frames) == pytest.approx(19, abs=1)  # 3.8 s at 5 fps
    for index, frame in enumerate(frames):
        source = round(float(frame.mean()) / 6)  # which grey: which source frame
        assert abs(source - shown_at(index / 5.0)) <= 1, (index, source)


def test_encode_labels_a_variable_frame_rate_clip_with_its_duration(tmp_path, tiny_model):
    video = vfr_video(tmp_path / "vfr.mp4")
    result = run("encode", str(video), "--model", "tiny-random", "-o", str(tmp_path / "v.safetensors"), "--json", "-q")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["outputs"][0]
    assert entry["frames"] / entry["fps"] == pytest.approx(3.8, abs=0.2)


def test_truncated_mp4_is_encoded_as_far_as_it_goes_with_a_note(tmp_path, tiny_model):
    whole = tmp_path / "whole.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=10:d=3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(whole)], check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])  # index first: the frames' tail is gone
    result = run("encode", str(cut), "--model", "tiny-random", "-o", str(tmp_path / "cut.safetensors"))
    assert result.exit_code == 0, result.output
    clip = latentfile.read(tmp_path / "cut.safetensors")
    assert 5 < clip.frames < 30
    assert f"vidlatent: note: {cut}: the video ended early: {clip.frames} frames read, its header declares 30" in result.stderr


# --- a failing video writer does not lose the latents -----------------------------------------


def _failing_writer(monkeypatch):
    def full_disk(self, frame):
        raise OutputError(f"cannot write {self.path}: ffmpeg stopped (No space left on device)")

    monkeypatch.setattr(media.VideoWriter, "write", full_disk)


GENERATE = ("--model", "tiny-random", "--frames", "2", "--steps", "2", "--seed", "3")


def test_generate_saves_the_latents_when_the_video_cannot_be_written(tmp_path, tiny_model, monkeypatch):
    _failing_writer(monkeypatch)
    out = tmp_path / "clip.mp4"
    result = run("generate", str(data_file("test_image.png")), *GENERATE, "-o", str(out))
    assert result.exit_code == 1
    rescued = tmp_path / "clip.latents.safetensors"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("vidlatent: generating from test_image.png 2/2 in ")  # the work that was done
    assert lines[1:] == [  # and no stopped "decoding 0/2" above the error
        f"vidlatent: error: cannot write {out}: ffmpeg stopped (No space left on device); the latents are safe in "
        f"{rescued} (vidlatent decode {rescued} -o OTHER.mp4)"
    ]
    assert latentfile.read(rescued).seed == 3 and sorted(p.name for p in tmp_path.iterdir()) == [rescued.name]


def test_generate_points_at_latent_out_when_the_video_cannot_be_written(tmp_path, tiny_model, monkeypatch):
    _failing_writer(monkeypatch)
    latents = tmp_path / "clip.safetensors"
    result = run("generate", str(data_file("test_image.png")), *GENERATE, "-o", str(tmp_path / "clip.mp4"),
                 "--latent-out", str(latents))
    assert result.exit_code == 1 and f"the latents are safe in {latents} " in result.stderr
    assert latentfile.read(latents).frames == 2 and sorted(p.name for p in tmp_path.iterdir()) == [latents.name]


def test_latents_that_decode_to_nan_are_refused_and_kept(tmp_path, small_clip):
    """Finite latents far out of range decode to NaN pixels: one line, no garbage video, no numpy
    warning; where the latents were made by the command, they are saved next to the video."""
    clip = latentfile.read(small_clip)
    absurd = tmp_path / "absurd.safetensors"
    latentfile.write(dataclasses.replace(clip, latents=clip.latents * 1e36), absurd)
    result = run("decode", str(absurd), "-o", str(tmp_path / "o.mp4"))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "NaN or infinite pixels" in result.stderr and "RuntimeWarning" not in result.stderr
    result = run("transfer-motion", str(absurd), str(data_file("test_image.png")), "-o", str(tmp_path / "t.mp4"))
    rescued = tmp_path / "t.latents.safetensors"
    assert result.exit_code == 1 and f"the latents are safe in {rescued}" in result.stderr.splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["absurd.safetensors", rescued.name]


# --- stderr and tables, when not a terminal ---------------------------------------------------


def test_lines_are_never_wrapped_or_cut_off_a_terminal(tmp_path, small_clip):
    deep = tmp_path / ("a-long-folder-name-" * 6) / ("and-another-one-" * 6)
    deep.mkdir(parents=True)
    out = deep / "frames.gif"
    result = run("decode", str(small_clip), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        next(line for line in result.stderr.splitlines() if line.startswith("vidlatent: decoding 4/4 in ")),
        f"vidlatent: wrote 4 frames (64x64 px) to {out}",
    ]
    env = run("env")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    assert any(ffmpeg in line and "…" not in line for line in env.stdout.splitlines())
    # Tables piped or in a file: no line ends in the padding of its column.
    for table in (env.stdout, run("inspect", str(small_clip)).stdout):
        lines = table.splitlines()
        assert len(lines) > 5 and [line for line in lines if line != line.rstrip()] == []


def test_notes_say_only_what_happened(tmp_path, small_clip):
    """A transfer that denoises nothing prints no "0 in 0.0 s" line; extend's seed taken from the
    clip (its seed + 1: the same every run) is not announced as one to pass to repeat the run."""
    first = tmp_path / "first.safetensors"
    clip = latentfile.read(small_clip)
    latentfile.write(clip.with_step("trim", {}, latents=clip.latents[:1]), first)
    residual = run("transfer-motion", str(small_clip), str(first), "-o", str(tmp_path / "t.safetensors"))
    assert residual.exit_code == 0, residual.output
    assert residual.stderr.splitlines() == [f"vidlatent: wrote {tmp_path / 't.safetensors'} (4 frames, residual)"]
    seeded = tmp_path / "seeded.safetensors"
    latentfile.write(dataclasses.replace(clip, seed=1), seeded)
    extended = run("extend", str(seeded), "--steps", "1", "--frames", "4", "-o", str(tmp_path / "e.safetensors"))
    assert extended.exit_code == 0, extended.output
    assert "vidlatent: seed 2 (the clip's seed 1 + 1: the same on every run without --seed)" in extended.stderr.splitlines()
    assert "--seed 2 to repeat" not in extended.stderr


# --- output folders: made when the output is written, never on a refusal ---------------------


@pytest.mark.parametrize("args", [
    ["encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "4"],
    ["decode", "{clip}"],
    ["edit", "{clip}", "--reverse"],
], ids=["encode", "decode", "edit"])
def test_missing_output_folder_is_made_with_a_note(tmp_path, small_clip, args):
    """One rule for every command: an output in a folder that does not exist makes it (a note says so)."""
    suffix = ".mp4" if args[0] == "decode" else ".safetensors"
    target = tmp_path / "new" / "deeper" / f"o{suffix}"
    result = run(*[word.replace("{clip}", str(small_clip)) for word in args], "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.is_file() and f"vidlatent: note: made folder {target.parent}" in result.stderr
