"""A prompt per segment: the prompts file, extend --prompt A --prompt B on Wan, LTX and SkyReels DF,
and a long SkyReels DF generate with a prompt per window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import resized_photo
from vidlatent import latentfile
from vidlatent.cli import main
from vidlatent.errors import UsageError
from vidlatent.prompts import SegmentPrompt, parse_prompts, segment_prompts


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result


def test_a_prompts_file_has_a_segment_per_line_with_optional_frames():
    text = "# a walk\n\n33: a dog runs\na dog jumps: high\n9:\tthe end\n"
    assert parse_prompts(text, "f.txt") == [SegmentPrompt("a dog runs", 33), SegmentPrompt("a dog jumps: high"),
                                            SegmentPrompt("the end", 9)]
    assert segment_prompts(("a",), None) == [] and segment_prompts(("a", "b"), None) == [SegmentPrompt("a"), SegmentPrompt("b")]
    for text, message in (("# nothing\n", "no prompts in it"), ("12:\n", "line 1 has frames but no prompt"),
                          ("0: a\n", "0 frames")):
        with pytest.raises(UsageError, match=message):
            parse_prompts(text, "f.txt")
    with pytest.raises(UsageError, match="give the prompts one way"):
        segment_prompts(("a",), "f.txt")


def test_several_prompts_where_a_command_makes_one_segment_are_refused(tiny_wan, tmp_path):
    photo = resized_photo(tmp_path, (64, 64))
    out = tmp_path / "x.safetensors"
    (line,) = cli("generate", photo, "--model", str(tiny_wan), "--prompt", "a", "--prompt", "b", "-o", str(out),
                  code=2).stderr.splitlines()
    assert "makes this video in one window, so it takes one prompt; for a prompt per segment use extend" in line
    (line,) = cli("edit", str(out), "--prompt", "a", "--prompt", "b", "-o", str(out), code=2).stderr.splitlines()
    assert "--prompt given 2 times" in line
    missing = tmp_path / "none.txt"
    (line,) = cli("extend", str(out), "--prompts", str(missing), "-o", str(out), code=2).stderr.splitlines()
    assert f"--prompts {missing}: no such file" in line
    assert not out.exists()


def _clip(folder: Path, tmp_path: Path, frames: int, image: bool, side: int) -> Path:
    path = tmp_path / "clip.safetensors"
    source = [resized_photo(tmp_path, (side, side))] if image else []
    cli("generate", *source, "--model", str(folder), "--prompt", "a fox", "--size", f"{side}x{side}", "--frames", str(frames),
        "--steps", "1", "--seed", "1", "-o", str(path), "-q")
    return path


# The smallest sizes each tiny model runs at (LTX's VAE at 32x32 is one latent pixel, and NaN).
@pytest.mark.parametrize("name, frames, image, side", [("wan", 5, True, 32), ("ltx", 9, True, 64), ("skyreels", 5, False, 32)])
def test_extend_makes_a_segment_per_prompt_and_records_its_frames(request, tmp_path, name, frames, image, side):
    folder = request.getfixturevalue(f"tiny_{name}")
    clip = _clip(folder, tmp_path, frames, image, side)
    prompts = tmp_path / "shots.txt"
    prompts.write_text("the fox stops\n# then\nthe fox jumps\n")
    # --prompt repeated on Wan, a prompts file on the others: one way in, one list of segments.
    given = ["--prompt", "the fox stops", "--prompt", "the fox jumps"] if name == "wan" else ["--prompts", str(prompts)]
    out = tmp_path / "long.safetensors"
    cli("extend", str(clip), "--model", str(folder), *given, "--frames", str(frames), "--steps", "1",
        "--seed", "2", "-o", str(out), "-q")
    original, extended = latentfile.read(clip), latentfile.read(out)
    recorded = extended.history[-1]["arguments"]
    segments = recorded["segments"]
    assert [segment["prompt"] for segment in segments] == ["the fox stops", "the fox jumps"] and recorded["times"] == 2
    assert recorded["prompt"] == "the fox jumps"  # what the clip ends on: a further extend continues it
    # The segments' frames follow each other to the clip's end.
    starts = [segment["frames_made"][0] for segment in segments]
    ends = [segment["frames_made"][1] for segment in segments]
    assert starts[0] == original.pixel_frames and starts[1] == ends[0] + 1 and ends[1] == extended.pixel_frames - 1
    assert torch.equal(extended.latents[: original.frames], original.latents)
    # analyze --seams finds both joins, with their prompts, where the history says they are.
    # (on Wan also in pixels, decoded with the clip's own model).
    pixels = ["--pixels"] if name == "wan" else []
    seams = json.loads(cli("analyze", str(out), "--seams", *pixels, "--json").stdout)["clips"][0]["seams"]
    assert sorted((seam["pixel_frame"], seam["prompt"]) for seam in seams) == [(starts[0], "the fox stops"),
                                                                                (starts[1], "the fox jumps")]
    assert all((seam.get("pixel_ratio", 0) > 0) == bool(pixels) for seam in seams)


def test_a_long_generate_takes_a_prompt_per_window(tiny_skyreels, tmp_path):
    """The first window is the one-prompt call's; the later ones follow their own prompts."""
    arguments = ["generate", "--model", str(tiny_skyreels), "--size", "32x32", "--frames", "13", "--window", "9", "--history", "5",
                 "--steps", "1", "--seed", "3", "-q"]
    cli(*arguments, "--prompt", "a fox", "-o", str(tmp_path / "one.safetensors"))
    cli(*arguments, "--prompt", "a fox", "--prompt", "a cat", "-o", str(tmp_path / "two.safetensors"))
    one, two = (latentfile.read(tmp_path / f"{name}.safetensors") for name in ("one", "two"))
    assert torch.equal(two.latents[:3], one.latents[:3]) and not torch.equal(two.latents[3:], one.latents[3:])
    assert two.history[-1]["arguments"]["segments"] == [{"prompt": "a fox", "frames_made": [0, 8]},
                                                        {"prompt": "a cat", "frames_made": [9, 12]}]
    (line,) = cli(*arguments, "--prompt", "a", "--prompt", "b", "--prompt", "c", "-o", str(tmp_path / "x.safetensors"),
                  code=2).stderr.splitlines()
    assert "3 prompts for 2 windows (frames 0-8, 9-12): give one prompt per window" in line


def test_replay_gives_each_segment_its_recorded_prompt(tmp_path):
    """A step made a prompt per segment replays with a --prompt per segment (model-free: the plan)."""
    from vidlatent.replay import Recording, ReplayError, plan

    generate = {"command": "generate", "arguments": {"size": "64x64", "seed": 1, "prompt": "a", "frames": 13, "segments": [
        {"prompt": "a", "frames_made": [0, 8]}, {"prompt": "b", "frames_made": [9, 12]}]}}
    extend = {"command": "extend", "arguments": {"times": 2, "seed": 2, "prompt": "d", "segments": [
        {"seed": 2, "frames": 1, "prompt": "c"}, {"seed": 3, "frames": 1, "prompt": "d"}]}}
    steps = plan(Recording("clip.safetensors", "tiny-random-skyreels-df", (generate, extend), None), str(tmp_path))
    for step, prompts in zip(steps, (["a", "b"], ["c", "d"])):
        words = list(step.argv)
        assert [words[i + 1] for i, word in enumerate(words) if word == "--prompt"] == prompts
    extend["arguments"]["segments"][0]["segment_frames"] = 9
    with pytest.raises(ReplayError, match="their own frame counts"):
        plan(Recording("clip.safetensors", "tiny-random-skyreels-df", (generate, extend), None), str(tmp_path))
