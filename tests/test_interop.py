"""ComfyUI .latent files and `vidlatent convert`; `vidlatent env`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load, load_file, save_file

from tests.conftest import data_file
from vidlatent import latentfile
from vidlatent.cli import main

SCALE = 0.18215


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("interop") / "bear.safetensors"
    result = CliRunner().invoke(main, ["encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "5",
                                       "-o", str(path), "-q"])
    assert result.exit_code == 0, result.output
    return path


def test_convert_writes_what_comfyui_loads(tmp_path, clip_path):
    out = tmp_path / "bear.latent"
    result = CliRunner().invoke(main, ["convert", str(clip_path), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    tensors = load_file(out)
    assert set(tensors) == {"latent_tensor", "latent_format_version_0"}
    assert tensors["latent_format_version_0"].numel() == 0
    original = latentfile.read(clip_path).latents
    # ComfyUI stores unscaled latents: [frames, 4, h, w] divided by the scaling factor.
    assert tensors["latent_tensor"].shape == (5, 4, 8, 8)
    assert torch.equal(tensors["latent_tensor"], original / SCALE)
    # What ComfyUI's LoadLatent does (multiplier 1.0 with the marker), then its SD latent format's process_in.
    assert torch.allclose(tensors["latent_tensor"].float() * 1.0 * SCALE, original, rtol=1e-6, atol=1e-7)


def test_round_trip_restores_metadata_and_values(tmp_path, clip_path):
    comfy = tmp_path / "c.latent"
    back = tmp_path / "back.safetensors"
    assert CliRunner().invoke(main, ["convert", str(clip_path), "-o", str(comfy), "-q"]).exit_code == 0
    assert CliRunner().invoke(main, ["convert", str(comfy), "-o", str(back), "-q"]).exit_code == 0
    original, restored = latentfile.read(clip_path), latentfile.read(back)
    assert torch.allclose(restored.latents, original.latents, rtol=1e-6, atol=1e-7)
    assert (restored.model, restored.latent_space, restored.fps, restored.width) == (
        original.model, original.latent_space, original.fps, original.width)
    assert [s["command"] for s in restored.history] == ["encode", "convert", "convert"]


def comfyui_file(path, latents, marker: bool = True):
    tensors = {"latent_tensor": latents}
    if marker:
        tensors["latent_format_version_0"] = torch.tensor([])
    save_file(tensors, path, metadata={"prompt": "{}"})  # as ComfyUI's SaveLatent writes it


def test_reads_a_comfyui_latent_as_svd_with_a_note(tmp_path):
    unscaled = torch.randn(3, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    comfyui_file(tmp_path / "x.latent", unscaled)
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "x.latent"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["shape"] == [3, 4, 8, 12] and (summary["width"], summary["height"]) == (96, 64)
    assert summary["model"] == "stabilityai/stable-video-diffusion-img2vid-xt"
    assert "ComfyUI latent" in result.stderr and result.stderr.startswith("vidlatent: note: ")
    clip = latentfile.read(tmp_path / "x.latent")
    assert torch.equal(clip.latents, unscaled * SCALE)


def test_reads_legacy_comfyui_files_without_the_marker(tmp_path):
    scaled = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    comfyui_file(tmp_path / "old.latent", scaled, marker=False)
    assert torch.equal(latentfile.read(tmp_path / "old.latent").latents, scaled)


def test_comfyui_space_matches_any_svd_vae_but_no_other(tmp_path, clip_path):
    comfyui_file(tmp_path / "x.latent", torch.zeros(1, 4, 8, 8))
    clip = latentfile.read(tmp_path / "x.latent")
    clip.require_space(latentfile.read(clip_path).latent_space)  # tiny-random's VAE is SVD's class, scale 0.18215
    other = "AutoencoderKLTemporalDecoder/c4/s0.13025/fp:+1.0000,+1.0000,+1.0000,+1.0000"
    with pytest.raises(latentfile.IncompatibleLatentsError):
        clip.require_space(other)


def test_decode_reads_a_latent_file_directly(tmp_path, clip_path):
    comfy = tmp_path / "c.latent"
    latentfile.write(latentfile.read(clip_path), comfy)
    result = CliRunner().invoke(main, ["decode", str(comfy), "-o", str(tmp_path / "v.gif"), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "v.gif").stat().st_size > 0


def test_convert_to_stdout_with_to(clip_path):
    result = CliRunner().invoke(main, ["convert", str(clip_path), "--to", "comfyui", "-o", "-", "-q"])
    assert result.exit_code == 0
    assert set(load(result.stdout_bytes)) == {"latent_tensor", "latent_format_version_0"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["{clip}"], "give -o"),
        (["{clip}", "-o", "{tmp}/x.mp4"], "convert writes latents"),
        (["{clip}", "-o", "{clip}"], "is the input"),
        (["{tmp}/missing.latent", "-o", "{tmp}/y.safetensors"], "no such file"),
    ],
)
def test_convert_refusals(tmp_path, clip_path, args, message):
    copy = tmp_path / "c.safetensors"
    copy.write_bytes(clip_path.read_bytes())
    result = CliRunner().invoke(main, ["convert", *[a.format(clip=copy, tmp=tmp_path) for a in args]])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


def test_comfyui_file_with_bad_tensor_is_refused(tmp_path):
    comfyui_file(tmp_path / "bad.latent", torch.full((1, 4, 2, 2), float("nan")))
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "bad.latent")])
    assert result.exit_code == 2 and "NaN" in result.stderr


def test_env_reports_versions_devices_and_defaults():
    result = CliRunner().invoke(main, ["env", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["packages"]["torch"].startswith("2.") and facts["packages"]["diffusers"]
    assert facts["devices"][0]["name"] == "cpu"
    assert facts["auto"]["dtype"] in ("float32", "float16")
    assert facts["ffmpeg"]["version"]
    table = CliRunner().invoke(main, ["env"])
    assert "auto picks" in table.stdout and "diffusers" in table.stdout
