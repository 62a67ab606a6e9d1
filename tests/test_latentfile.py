"""The latent file contract: round trips, determinism, and every refusal."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save, save_file

from vidlatent import latentfile
from vidlatent.errors import IncompatibleLatentsError, LatentFileError
from vidlatent.families.svd import LAYOUT as SVD_LAYOUT
from vidlatent.latentfile import LatentClip, LatentSpace

SPACE = "AutoencoderKLTemporalDecoder/c4/s0.18215/fp:+1.0000,-0.5000,+0.2500,+0.1250"


def make_clip(frames: int = 3) -> LatentClip:
    latents = torch.arange(frames * 4 * 2 * 3, dtype=torch.float32).reshape(frames, 4, 2, 3) / 10
    return LatentClip(latents=latents, model="tiny-random", latent_space=SPACE, fps=7.0, height=16, width=24, seed=5,
                      layout=SVD_LAYOUT)


def valid_metadata() -> dict[str, str]:
    data = latentfile.to_bytes(make_clip())
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length])["__metadata__"]


def test_round_trip_keeps_everything(tmp_path):
    clip = make_clip().with_step("encode", {"source": tmp_path / "a.mp4", "size": (64, 64)})
    latentfile.write(clip, tmp_path / "c.safetensors")
    back = latentfile.read(tmp_path / "c.safetensors")
    assert torch.equal(back.latents, clip.latents)
    assert (back.model, back.latent_space, back.fps, back.height, back.width, back.seed) == (
        "tiny-random", SPACE, 7.0, 16, 24, 5,
    )
    assert back.history == ({"command": "encode", "arguments": {"source": str(tmp_path / "a.mp4"), "size": [64, 64]},
                             "vidlatent": back.history[0]["vidlatent"], "versions": latentfile.software_versions(),
                             "latents_sha256": latentfile.latents_sha256(clip.latents)},)


def test_history_is_append_only():
    clip = make_clip().with_step("a", {}).with_step("b", {"x": 1})
    assert [step["command"] for step in clip.history] == ["a", "b"]


def test_same_clip_gives_identical_bytes_across_processes(tmp_path):
    # safetensors orders its metadata map at random per process; the header is canonicalised.
    script = (
        "import sys, torch; sys.path.insert(0, %r); from tests.test_latentfile import make_clip; "
        "from vidlatent import latentfile; sys.stdout.buffer.write(latentfile.to_bytes(make_clip().with_step('x', {'a': 1, 'b': 2})))"
    ) % str(latentfile.__file__.rsplit("/vidlatent/", 1)[0])
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout for _ in range(3)}
    assert len(outputs) == 1
    assert latentfile.from_bytes(outputs.pop()).history[0]["arguments"] == {"a": 1, "b": 2}


def test_stdin_and_stdout(monkeypatch):
    clip = make_clip()
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
    latentfile.write(clip, "-")
    data = out.getvalue()
    assert data == latentfile.to_bytes(clip)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert torch.equal(latentfile.read("-").latents, clip.latents)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a safetensors file at all", "not a readable safetensors file"),
        (b"abc", "not a latent file"),
    ],
)
def test_refuses_non_safetensors(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(LatentFileError, match=message):
        latentfile.read(path)


def test_refuses_truncated_file(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(latentfile.to_bytes(make_clip())[:-10])
    with pytest.raises(LatentFileError, match="truncated"):
        latentfile.read(path)


def test_refuses_missing_file_and_folder(tmp_path):
    with pytest.raises(LatentFileError, match="no such file"):
        latentfile.read(tmp_path / "absent.safetensors")
    with pytest.raises(LatentFileError, match="is a folder"):
        latentfile.read(tmp_path)


def test_refuses_missing_tensor():
    data = save({"something_else": torch.zeros(1, 4, 2, 2)}, metadata=valid_metadata())
    with pytest.raises(LatentFileError, match="no tensor named 'latents'"):
        latentfile.from_bytes(data)


@pytest.mark.parametrize("shape", [(4, 2, 2), (1, 1, 4, 2, 2)])
def test_refuses_wrong_rank(shape):
    data = save({"latents": torch.zeros(shape)}, metadata=valid_metadata())
    with pytest.raises(LatentFileError, match="expected 4 dimensions"):
        latentfile.from_bytes(data)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_refuses_non_finite_values(bad):
    latents = torch.zeros(2, 4, 2, 2)
    latents[1, 2, 0, 1] = bad
    data = save({"latents": latents}, metadata=valid_metadata())
    with pytest.raises(LatentFileError, match="NaN or infinite"):
        latentfile.from_bytes(data)
    with pytest.raises(LatentFileError, match="NaN or infinite"):
        latentfile.to_bytes(LatentClip(latents=latents, model="m", latent_space=SPACE, fps=1, height=16, width=16,
                                              layout=SVD_LAYOUT))


def test_refuses_integer_latents():
    data = save({"latents": torch.zeros(1, 4, 2, 2, dtype=torch.int32)}, metadata=valid_metadata())
    with pytest.raises(LatentFileError, match="floating-point"):
        latentfile.from_bytes(data)


def test_refuses_unknown_format_version():
    metadata = valid_metadata() | {"format_version": "99"}
    with pytest.raises(LatentFileError, match="version '99' is not supported"):
        latentfile.from_bytes(save({"latents": torch.zeros(1, 4, 2, 2)}, metadata=metadata))


def test_refuses_foreign_safetensors(tmp_path):
    save_file({"latents": torch.zeros(1, 4, 2, 2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(LatentFileError, match="not a vidlatent latent file"):
        latentfile.read(tmp_path / "foreign.safetensors")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fps": "fast"}, "malformed metadata"),
        ({"fps": "-1"}, "must be positive"),
        ({"history": "{}"}, "history must be a JSON list"),
        ({"latent_space": "some vae"}, "is not of the form"),
        ({"kind": "mystery"}, "kind 'mystery'"),
    ],
)
def test_refuses_bad_metadata(change, message):
    metadata = valid_metadata() | change
    with pytest.raises(LatentFileError, match=message):
        latentfile.from_bytes(save({"latents": torch.zeros(1, 4, 2, 2)}, metadata=metadata))


def test_refuses_missing_metadata():
    metadata = valid_metadata()
    del metadata["latent_space"]
    with pytest.raises(LatentFileError, match="lacks latent_space"):
        latentfile.from_bytes(save({"latents": torch.zeros(1, 4, 2, 2)}, metadata=metadata))


def test_latent_space_matching():
    space = LatentSpace.parse(SPACE)
    assert str(space) == SPACE
    nearly = LatentSpace(space.vae, 4, 0.18215, (1.01, -0.49, 0.26, 0.12))
    assert space.matches(nearly)
    assert not space.matches(LatentSpace(space.vae, 4, 0.18215, (0.5, -0.5, 0.25, 0.125)))
    assert not space.matches(LatentSpace(space.vae, 4, 0.13025, space.fingerprint))
    assert not space.matches(LatentSpace(space.vae, 16, 0.18215, space.fingerprint))


def test_require_space_names_both_sides():
    other = "AutoencoderKLTemporalDecoder/c4/s0.18215/fp:-1.0000,+0.5000,+0.2500,+0.1250"
    with pytest.raises(IncompatibleLatentsError, match="belong to another VAE.*tiny-random"):
        make_clip().require_space(other)
    make_clip().require_space(SPACE)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.safetensors"

    def explode(*args):
        raise KeyboardInterrupt

    # Ctrl-C once the bytes are written, before the rename: the temporary file must go.
    monkeypatch.setattr("vidlatent.atomic.os.chmod", explode)
    with pytest.raises(KeyboardInterrupt):
        latentfile.write(make_clip(), target)
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_existing_file_whole(tmp_path):
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"old")
    latentfile.write(make_clip(), target)
    assert latentfile.read(target).frames == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]
