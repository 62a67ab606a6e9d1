"""transfer-motion: the residual identities, the inversion round trip, and the command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.conftest import data_file
from vidlatent import latent_ops, latentfile
from vidlatent.cli import main
from vidlatent.generation import Knobs, frame_image, generate
from vidlatent.inversion import invert, sample_from
from vidlatent.models import LoadOptions, load_pipeline

# Measured on tiny-random (4 frames, 64x64, guidance 1): the round trip's error as a share of
# the clip's norm was 0.79 at 5 steps, 0.59 at 10 and 0.27 at 25 (docs/transfer-motion.md).
ROUND_TRIP_BOUND_AT_25_STEPS = 0.35


def random_clip(frames: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(frames, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_static_motion_gives_a_static_result():
    still = random_clip(1).repeat(6, 1, 1, 1)
    appearance = random_clip(1, seed=1)[0]
    result = latent_ops.apply_motion(appearance, still)
    assert all(torch.equal(frame, appearance) for frame in result)


def test_own_first_frame_gives_the_motion_clip_back():
    motion = random_clip(7, seed=2)
    assert torch.equal(latent_ops.apply_motion(motion[0], motion), motion)


def test_match_stats_scales_motion_to_the_appearance():
    motion = random_clip(4, seed=3)
    appearance = random_clip(1, seed=4)[0] * 3
    result = latent_ops.apply_motion(appearance, motion, match_stats=True)
    assert torch.equal(result[0], appearance)
    ratio = (result[1:] - result[:1]).std() / (motion[1:] - motion[:1]).std()
    assert ratio == pytest.approx(3.0, rel=0.2)


@pytest.fixture(scope="module")
def model(tiny_model):
    return load_pipeline(LoadOptions(model=str(tiny_model)))


def test_inversion_round_trip_error_shrinks_with_steps(model):
    torch.set_flush_denormal(True)  # the tiny random UNet makes subnormal numbers; see docs/transfer-motion.md
    try:
        source = generate(model, Image.open(data_file("test_image.png")), knobs=Knobs(frames=4, steps=10), seed=1).latents
        first = frame_image(source, model, 0)
        errors = []
        for steps in (5, 10, 25):
            knobs = Knobs(steps=steps, min_guidance=1.0, max_guidance=1.0)
            noise = invert(model, source, first, knobs=knobs, seed=3)
            back = sample_from(model, noise, first, knobs=knobs, seed=3)
            errors.append(float((back - source).norm() / source.norm()))
    finally:
        torch.set_flush_denormal(False)
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < ROUND_TRIP_BOUND_AT_25_STEPS, errors


def test_inverted_noise_has_the_scale_of_sigma_max(model):
    source = torch.zeros(2, 4, 8, 8)
    image = Image.new("RGB", (64, 64), (120, 80, 40))
    noise = invert(model, source, image, knobs=Knobs(steps=3, max_guidance=1.0), seed=0)
    assert noise.shape == source.shape and torch.isfinite(noise).all()
    assert noise.abs().max() > 1  # carried up the schedule, not left at the clean latents


@pytest.fixture(scope="module")
def bear(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("bear") / "bear.safetensors"
    result = CliRunner().invoke(main, ["encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "6",
                                       "-o", str(path), "-q"])
    assert result.exit_code == 0, result.output
    return path


def test_residual_on_its_own_first_frame_is_the_identity_and_loads_no_model(tmp_path, bear):
    clip = latentfile.read(bear)
    first = tmp_path / "first.safetensors"
    latentfile.write(clip.with_step("trim", {}, latents=clip.latents[:1]), first)
    out = tmp_path / "out.safetensors"
    code = (
        "import sys; from click.testing import CliRunner; from vidlatent.cli import main\n"
        f"r = CliRunner().invoke(main, ['transfer-motion', {str(bear)!r}, {str(first)!r}, '-o', {str(out)!r}, '-q'])\n"
        "assert r.exit_code == 0, r.output; print('diffusers' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    result = latentfile.read(out)
    assert torch.equal(result.latents, clip.latents)
    assert result.history[-1]["command"] == "transfer-motion"
    assert result.history[-1]["arguments"]["method"] == "residual"


@pytest.mark.parametrize("method", ["residual", "inversion"])
def test_the_issues_command_works_for_both_methods(tmp_path, tiny_model, method):
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["transfer-motion", str(data_file("bear.gif")), str(data_file("test_image.png")),
                                       "--model", "tiny-random", "--method", method, "-o", str(out), "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["outputs"][0]["frames"] == 21 and summary["outputs"][0]["kind"] == "video"
    assert out.stat().st_size > 0


def test_residual_with_refine_starts_from_the_appearance(tmp_path, bear):
    out = tmp_path / "r.safetensors"
    result = CliRunner().invoke(main, ["transfer-motion", str(bear), str(data_file("test_image.png")), "--refine", "0.5",
                                       "--steps", "4", "--seed", "2", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    clip = latentfile.read(out)
    step = clip.history[-1]["arguments"]
    assert (step["refine"], step["seed"], step["knobs"]["steps"]) == (0.5, 2, 4)
    assert clip.seed == 2 and clip.frames == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "inversion", "--refine", "0.5"], "belong to --method residual"),
        (["--refine", "2"], "--refine"),
        (["--method", "warp"], "--method"),
    ],
)
def test_refusals(tmp_path, bear, args, message):
    result = CliRunner().invoke(main, ["transfer-motion", str(bear), str(data_file("test_image.png")), *args,
                                       "-o", str(tmp_path / "o.mp4")])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert list(tmp_path.iterdir()) == []


def test_appearance_must_be_an_image_a_clip_or_a_video(tmp_path, bear):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    result = CliRunner().invoke(main, ["transfer-motion", str(bear), str(notes), "-o", str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2 and "APPEARANCE must be" in result.stderr


def test_appearance_of_another_size_is_refused(tmp_path, bear):
    clip = latentfile.read(bear)
    wide = tmp_path / "wide.safetensors"
    latentfile.write(clip.with_step("x", {}, latents=torch.zeros(1, 4, 8, 16), width=128), wide)
    result = CliRunner().invoke(main, ["transfer-motion", str(bear), str(wide), "-o", str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2 and "appearance's latents are (4, 8, 16)" in result.stderr
    assert not (tmp_path / "o.safetensors").exists()


def test_appearance_from_another_latent_space_is_refused(tmp_path, bear):
    clip = latentfile.read(bear)
    other = tmp_path / "other.safetensors"
    space = "AutoencoderKLTemporalDecoder/c4/s0.18215/fp:-9.0000,+9.0000,-9.0000,+9.0000"
    latentfile.write(clip.with_step("x", {}, latents=clip.latents[:1], latent_space=space), other)
    result = CliRunner().invoke(main, ["transfer-motion", str(bear), str(other), "-o", str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2 and "belong to another VAE" in result.stderr
