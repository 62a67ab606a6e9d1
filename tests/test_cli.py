"""The command line end to end on tiny-random: encode, decode, inspect, pipes and every refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio_ffmpeg
import pytest
from click.testing import CliRunner

from tests.conftest import data_file
from vidlatent import latentfile
from vidlatent.cli import main


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture(scope="module")
def bear_clip(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("clips") / "bear.safetensors"
    result = run("encode", str(data_file("bear.gif")), "--model", "tiny-random", "-o", str(path), "-q")
    assert result.exit_code == 0, result.output
    return path


def test_help_imports_no_torch():
    for args in (["--help"], ["encode", "--help"], ["decode", "--help"], ["inspect", "--help"]):
        code = (
            "import sys; from vidlatent.cli import main\n"
            f"try: main({args!r})\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
            "assert not heavy, heavy"
        )
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_encode_writes_a_clip(bear_clip):
    clip = latentfile.read(bear_clip)
    assert tuple(clip.latents.shape) == (21, 4, 8, 8)  # 64x64 px: tiny-random's native area
    assert (clip.width, clip.height, clip.model) == (64, 64, "tiny-random")
    assert clip.fps == pytest.approx(10.0)
    assert clip.history[0]["command"] == "encode"


def test_encode_frame_selection_and_size(tmp_path, tiny_model):
    out = tmp_path / "sel.safetensors"
    result = run("encode", str(data_file("test_video1.mp4")), "--model", "tiny-random", "--start", "2", "--stride", "3",
                 "--frames", "4", "--size", "128x64", "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    clip = latentfile.read(out)
    assert tuple(clip.latents.shape) == (4, 4, 8, 16)
    assert (clip.width, clip.height) == (128, 64)
    step = clip.history[0]["arguments"]
    assert (step["start"], step["stride"], step["frames"], step["size"]) == (2, 3, 4, "128x64")


def test_decode_writes_every_frame(tmp_path, bear_clip):
    out = tmp_path / "bear.mp4"
    result = run("decode", str(bear_clip), "-o", str(out), "--chunk", "5", "-q")
    assert result.exit_code == 0, result.output
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == 21


def test_decode_to_png_folder_and_fps_override(tmp_path, bear_clip):
    out = tmp_path / "frames"
    assert run("decode", str(bear_clip), "-o", str(out), "-q").exit_code == 0
    assert len(list(out.glob("*.png"))) == 21
    gif = tmp_path / "b.gif"
    assert run("decode", str(bear_clip), "-o", str(gif), "--fps", "5", "-q").exit_code == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(gif))[1] == pytest.approx(21 / 5, abs=0.3)


def test_two_processes_through_a_pipe(tmp_path, tiny_model, vidlatent_cmd):
    out = tmp_path / "bear.mp4"
    encode = subprocess.Popen([*vidlatent_cmd, "encode", str(data_file("bear.gif")), "--model", "tiny-random", "-o", "-"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    decode = subprocess.run([*vidlatent_cmd, "decode", "-", "-o", str(out)], stdin=encode.stdout, capture_output=True)
    encode.stdout.close()
    assert encode.wait() == 0, encode.stderr.read().decode()
    assert decode.returncode == 0, decode.stderr.decode()
    assert decode.stdout == b""  # stdout carries data only
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == 21
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (64, 64)
    assert sum(1 for _ in reader) == 21


def test_inspect_json(bear_clip):
    result = CliRunner().invoke(main, ["inspect", str(bear_clip), "--json"])
    summary = json.loads(result.stdout)
    assert summary["shape"] == [21, 4, 8, 8]
    assert len(summary["channels"]) == 4
    assert summary["history"][0]["command"] == "encode"
    table = run("inspect", str(bear_clip))
    assert "per-channel statistics" in table.output and "encode" in table.output


def test_inspect_reads_stdin(bear_clip):
    result = CliRunner().invoke(main, ["inspect", "-", "--json"], input=bear_clip.read_bytes())
    assert json.loads(result.stdout)["frames"] == 21


def test_incompatible_vae_is_refused(tmp_path, bear_clip, other_tiny_model):
    out = tmp_path / "x.mp4"
    result = CliRunner().invoke(main, ["decode", str(bear_clip), "--model", str(other_tiny_model), "-o", str(out)])
    assert result.exit_code == 2
    assert "belong to another VAE" in result.stderr and "--model tiny-random" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


# Every refusal: exit code, one clear line, nothing written.
@pytest.mark.parametrize(
    "args, code, message",
    [
        (["encode", "{tmp}/absent.mp4", "-o", "{tmp}/o.safetensors"], 2, "absent.mp4"),
        (["encode", "{bear}", "--size", "100x64", "-o", "{tmp}/o.safetensors"], 2, "multiples of 64"),
        (["encode", "{bear}", "--stride", "0", "-o", "{tmp}/o.safetensors"], 2, "--stride"),
        (["encode", "{bear}", "--start", "500", "--model", "tiny-random", "-o", "{tmp}/o.safetensors"], 2, "frame"),
        (["encode", "{bear}", "-o", "{tmp}/o.mp4"], 2, "*.safetensors"),
        (["encode", "{bear}", "--device", "tpu", "-o", "{tmp}/o.safetensors"], 2, "--device 'tpu'"),
        (["encode", "{bear}", "--model", "tiny-random", "--offload", "model", "--device", "cpu", "-o", "{tmp}/o.safetensors"], 2, "needs --device cuda"),
        (["encode", "{bear}", "--model", "{tmp}/no-such-model", "-o", "{tmp}/o.safetensors"], 1, "no such model folder"),
        (["encode", "{bear}", "--model", "someone/some-model", "-o", "{tmp}/o.safetensors"], 1, "not on disk and HF_HUB_OFFLINE is set"),
        (["encode", "{bear}", "--model", "tiny-random", "-o", "{notlatent}/o.safetensors"], 1, "its folder cannot be made"),
        (["decode", "{tmp}/absent.safetensors", "-o", "{tmp}/o.mp4"], 2, "no such file"),
        (["decode", "{notlatent}", "-o", "{tmp}/o.mp4"], 2, "not a readable safetensors file"),
        (["decode", "{clip}", "-o", "{tmp}/o.avi"], 2, ".mp4"),
        (["decode", "-", "-o", "{tmp}/o.mp4"], 2, "stdin: is empty"),
        (["decode", "-"], 2, "give -o"),
        (["inspect", "{notlatent}"], 2, "not a readable safetensors file"),
    ],
)
def test_refusals(tmp_path, bear_clip, args, code, message):
    notlatent = tmp_path / "n.safetensors"
    notlatent.write_text("hello, this is not a latent file")
    names = {"tmp": tmp_path, "bear": data_file("bear.gif"), "clip": bear_clip, "notlatent": notlatent}
    before = sorted(tmp_path.iterdir())
    result = CliRunner().invoke(main, [a.format(**names) for a in args], input=b"")
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert result.stderr.startswith("vidlatent: error: ") and result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert sorted(tmp_path.iterdir()) == before


def test_output_equal_to_input_is_refused(tmp_path, bear_clip):
    copy = tmp_path / "c.safetensors"
    copy.write_bytes(bear_clip.read_bytes())
    result = CliRunner().invoke(main, ["decode", str(copy), "-o", str(copy)])
    assert result.exit_code == 2  # a .safetensors output is not a video either way
    frames = tmp_path / "frames"
    frames.mkdir()
    result = CliRunner().invoke(main, ["encode", str(frames), "-o", str(frames)])
    assert result.exit_code == 2
    assert copy.read_bytes() == bear_clip.read_bytes()


def test_encode_refuses_to_overwrite_its_input(tmp_path):
    video = tmp_path / "v.safetensors"
    video.write_bytes(b"x")
    result = CliRunner().invoke(main, ["encode", str(video)])
    assert result.exit_code == 2 and "is the input" in result.stderr
    assert video.read_bytes() == b"x"


def test_unwritable_output_folder(tmp_path, bear_clip):
    if os.geteuid() == 0:
        target = "/proc/vidlatent-test.mp4"  # root can write anywhere but /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "o.mp4")
    result = CliRunner().invoke(main, ["decode", str(bear_clip), "-o", target])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("vidlatent: error: cannot write")
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path):
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "absent.safetensors"), "-o", str(tmp_path / "o.mp4"), "--debug"])
    assert result.exit_code == 2 and "Traceback" in result.stderr
