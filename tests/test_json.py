"""--json on every command: one object, on stdout, or on stderr when stdout carries latents."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.conftest import data_file
from vidlatent import latentfile
from vidlatent.cli import COMMANDS, main

OUTPUT_FIELDS = {"path", "kind", "frames", "width", "height", "fps", "seed", "model"}


def invoke(*args: str, input: bytes | None = None):
    result = CliRunner().invoke(main, [*args, "--json", "-q"], input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def check_summary(summary: dict, command: str) -> None:
    assert summary["command"] == command
    assert summary["timings"]["total_s"] >= 0
    for entry in summary["outputs"]:
        assert OUTPUT_FIELDS <= set(entry)


@pytest.fixture(scope="module")
def clip_bytes(tiny_model) -> bytes:
    result = CliRunner().invoke(main, ["encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "4",
                                       "-o", "-", "--json", "-q"])
    assert result.exit_code == 0
    # stdout carries the latents, so the summary went to stderr.
    summary = json.loads(result.stderr)
    check_summary(summary, "encode")
    assert summary["outputs"][0]["path"] == "-" and summary["outputs"][0]["frames"] == 4
    return result.stdout_bytes


def test_encode_summary_on_stdout_for_a_file(tmp_path, tiny_model):
    out = tmp_path / "c.safetensors"
    summary = json.loads(invoke("encode", str(data_file("bear.gif")), "--model", "tiny-random", "-o", str(out)).stdout)
    check_summary(summary, "encode")
    assert summary["outputs"] == [{"path": str(out), "kind": "latents", "frames": 21, "latent_frames": 21, "width": 64,
                                   "height": 64, "fps": 10.0, "seed": None, "model": "tiny-random"}]
    assert {"load_s", "encode_s"} <= set(summary["timings"])


def test_decode_summary(tmp_path, clip_bytes):
    out = tmp_path / "v.mp4"
    summary = json.loads(invoke("decode", "-", "-o", str(out), "--fps", "5", input=clip_bytes).stdout)
    check_summary(summary, "decode")
    assert (summary["outputs"][0]["kind"], summary["outputs"][0]["frames"], summary["outputs"][0]["fps"]) == ("video", 4, 5.0)


def test_generate_summary_with_two_outputs(tmp_path, tiny_model):
    image = str(data_file("test_image.png"))
    result = invoke("generate", image, "--model", "tiny-random", "--frames", "2", "--steps", "1", "--seed", "4",
                    "-o", str(tmp_path / "v.gif"), "--latent-out", str(tmp_path / "v.safetensors"))
    summary = json.loads(result.stdout)
    check_summary(summary, "generate")
    assert [e["kind"] for e in summary["outputs"]] == ["latents", "video"]
    assert summary["seed"] == 4 and all(e["seed"] == 4 for e in summary["outputs"])


def test_extend_summary_goes_to_stderr_with_latents_on_stdout(clip_bytes):
    result = invoke("extend", "-", "--frames", "3", "--steps", "1", "--overlap", "1", "--seed", "2", "-o", "-", input=clip_bytes)
    summary = json.loads(result.stderr)
    check_summary(summary, "extend")
    assert summary["outputs"][0]["frames"] == 4 + 2
    assert latentfile.from_bytes(result.stdout_bytes).frames == 6  # stdout holds the latents alone


def test_inspect_json_is_the_description(clip_bytes):
    summary = json.loads(invoke("inspect", "-", input=clip_bytes).stdout)
    assert summary["shape"] == [4, 4, 8, 8]


def test_every_command_takes_json():
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert "--json" in result.stdout, name
