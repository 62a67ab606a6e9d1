"""Videos that say how they were made, and replay that proves it (issue 24)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import resized_photo
from vidlatent import latentfile, media, provenance
from vidlatent.cli import main

SAMPLING = ["--model", "tiny-random", "--steps", "2", "--size", "64x64"]


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def chain(tmp_path_factory, tiny_model) -> Path:
    """A tiny-random ``generate | extend`` clip (through a pipe), with its photo beside it."""
    folder = tmp_path_factory.mktemp("chain")
    photo = resized_photo(folder, (64, 64))
    made = run("generate", photo, *SAMPLING, "--frames", "6", "--seed", "1", "-o", "-", "-q")
    assert made.exit_code == 0, made.stderr
    extended = run("extend", "-", "--steps", "2", "-o", str(folder / "chain.safetensors"), "-q", input=made.stdout_bytes)
    assert extended.exit_code == 0, extended.stderr
    return folder / "chain.safetensors"


def test_generated_video_carries_its_history(tmp_path, tiny_model):
    photo = resized_photo(tmp_path, (64, 64))
    assert run("generate", photo, *SAMPLING, "--frames", "6", "--seed", "3", "-o", str(tmp_path / "out.mp4"), "-q").exit_code == 0
    result = run("inspect", str(tmp_path / "out.mp4"), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["kind"], summary["format"], summary["format_version"]) == ("video", provenance.TAG_FORMAT, 1)
    step = summary["history"][0]
    assert step["command"] == "generate" and step["arguments"]["seed"] == 3 and step["arguments"]["steps"] == 2
    assert set(step["versions"]) == {"diffusers", "torch"} and step["latents_sha256"] == summary["latents_sha256"]
    assert "generate" in run("inspect", str(tmp_path / "out.mp4")).stdout


@pytest.mark.parametrize("name", ["v.webm", "frames"])
def test_webm_and_png_frames_carry_the_tag(tmp_path, chain, name):
    assert run("decode", str(chain), "-o", str(tmp_path / name), "-q").exit_code == 0
    record = provenance.read_video_record(tmp_path / name)
    assert record is not None and [step["command"] for step in record.history] == ["generate", "extend"]
    assert record.latents_sha256 == latentfile.latents_sha256(latentfile.read(chain).latents)


def test_replay_of_generate_extend_is_bit_identical(chain):
    result = run("replay", str(chain), "--json", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["identical"] is True and summary["first_difference"] is None and summary["outputs"] == []
    assert [(step["command"], step["identical"]) for step in summary["steps"]] == [("generate", True), ("extend", True)]


def test_replay_of_a_video_and_its_output(tmp_path, chain):
    video = tmp_path / "chain.mp4"
    assert run("decode", str(chain), "-o", str(video), "-q").exit_code == 0
    again = tmp_path / "again.safetensors"
    result = run("replay", str(video), "-o", str(again), "-q")
    assert result.exit_code == 0, result.stderr
    assert latentfile.read(again).latents.numpy().tobytes() == latentfile.read(chain).latents.numpy().tobytes()


def test_a_changed_seed_names_the_first_differing_step(tmp_path, chain):
    clip = latentfile.read(chain)
    history = [dict(step, arguments=dict(step["arguments"])) for step in clip.history]
    history[0]["arguments"]["seed"] = 5
    changed = tmp_path / "changed.safetensors"
    latentfile.write(dataclasses.replace(clip, history=tuple(history)), changed)
    result = run("replay", str(changed), "-q")
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert "step 1 of 2 (generate) does not reproduce its recorded latents" in line and "same versions" in line
    failure = json.loads(run("replay", str(changed), "-q", "--json").stdout)
    assert failure["status"] == "error" and failure["first_difference"]["step"] == 1 and failure["identical"] is False


def test_dry_run_prints_commands_and_writes_nothing(tmp_path, chain, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("replay", str(chain), "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["vidlatent", "generate"], ["vidlatent", "extend"]]
    assert "--seed 1" in lines[0] and "--seed 2" in lines[1] and lines[1].split()[2] == "step-1.safetensors"
    assert list(tmp_path.iterdir()) == []


def test_a_step_that_cannot_be_replayed_is_one_line(tmp_path, chain):
    edited = tmp_path / "edited.safetensors"
    latentfile.write(latentfile.read(chain).with_step("edit", {"operations": []}), edited)
    result = run("replay", str(edited))
    assert result.exit_code == 1 and "step 3 of 3 (edit): replay cannot re-run 'edit' steps" in one_line(result.stderr)
    clip = latentfile.read(chain)
    history = [dict(step, arguments=dict(step["arguments"])) for step in clip.history]
    history[0]["arguments"]["source"] = str(tmp_path / "gone.png")
    moved = tmp_path / "moved.safetensors"
    latentfile.write(dataclasses.replace(clip, history=tuple(history)), moved)
    result = run("replay", str(moved))
    assert result.exit_code == 1 and f"source image {tmp_path / 'gone.png'} is missing" in one_line(result.stderr)


def test_a_video_without_the_tag_is_one_line(tmp_path):
    plain = tmp_path / "plain.mp4"
    with media.VideoWriter(plain, fps=7) as writer:
        for _ in range(3):
            writer.write(np.zeros((32, 32, 3), np.uint8))
    assert media.read_comment(plain) is None
    inspected = run("inspect", str(plain))
    assert inspected.exit_code == 2 and "carries no vidlatent history tag" in one_line(inspected.stderr)
    replayed = run("replay", str(plain))
    assert replayed.exit_code == 2 and "nothing to replay" in one_line(replayed.stderr)  # a bad input, as for inspect


def test_another_tools_comment_is_no_tag_and_nothing_runs(tmp_path):
    video = tmp_path / "other.webm"
    text = '{"format": "x", "a": "$(touch pwned); = ; # \\\\ "}'
    with media.VideoWriter(video, fps=7, comment=text) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert media.read_comment(video) == text  # ffmetadata's escapes undone
    assert provenance.read_video_record(video) is None and not (tmp_path / "pwned").exists()


def test_ffmetadata_escapes():
    listing = ';FFMETADATA1\ncomment=a\\=b\\;c\\#d\\\\\\\ne\nencoder=x\n[STREAM]\ncomment=no\n'
    assert media._ffmetadata_value(listing, "comment") == "a=b;c#d\\\ne"
    assert media._ffmetadata_value(";FFMETADATA1\n[STREAM]\ncomment=x\n", "comment") is None


def test_replay_of_an_encoded_video(tmp_path, tiny_model):
    from tests.conftest import data_file

    clip = tmp_path / "bear.safetensors"
    assert run("encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "4", "-o", str(clip), "-q").exit_code == 0
    result = run("replay", str(clip), "--json", "-q")
    assert result.exit_code == 0, result.stderr
    assert [(step["command"], step["identical"]) for step in json.loads(result.stdout)["steps"]] == [("encode", True)]


def test_a_gif_says_it_keeps_no_tag(tmp_path, chain):
    assert run("decode", str(chain), "-o", str(tmp_path / "v.gif"), "-q").exit_code == 0
    result = run("inspect", str(tmp_path / "v.gif"))
    assert result.exit_code == 2 and "a .gif keeps no tags" in one_line(result.stderr)
