"""Properties on real latents: 16 latent frames the real Wan 2.1 model made (../shared/data).

The figures these tests hold are measured in BENCHMARKS.md ("Real latents"); the tests check
the properties that must hold whatever the exact numbers: interpolation keeps the originals
and beats frame repetition, drift correction bounds drift without flattening the footage's
own change, a loop's seam stays within the clip's motion, real motion is not flagged static,
and ``convert --layout`` turns the raw file into a clip (and refuses what does not fit).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import data_file
from vidlatent import analysis, codec, editing, latent_ops, latentfile, raw_latents
from vidlatent.cli import main
from vidlatent.families.wan import Wan

MODEL = "wan21-i2v-480p"
WAN21_SPACE = "AutoencoderKLWan/c16/s1/fp:"


@pytest.fixture(scope="module")
def raw_path():
    return data_file("wan21_latents.safetensors")


@pytest.fixture(scope="module")
def clip(raw_path):
    return raw_latents.read_raw(raw_path, layout="ncthw", model=MODEL)


@pytest.fixture(scope="module")
def latents(clip) -> torch.Tensor:
    return clip.latents  # (16, 16, 40, 64)


def error(rebuilt: torch.Tensor, true: torch.Tensor) -> float:
    """MSE of the rebuilt frames over the true frames' variance."""
    return float(((rebuilt.double() - true.double()) ** 2).mean() / true.double().var())


# --- the loader -------------------------------------------------------------------------------


def test_the_loader_makes_a_wan21_clip_of_the_values_as_they_are(clip, raw_path):
    tensor = raw_latents.read_tensors(raw_path)["latents"]  # (1, C, T, h, w) bf16
    assert torch.equal(clip.latents, tensor[0].permute(1, 0, 2, 3).float())  # frames first, float32, values unchanged
    assert (clip.family, clip.latent_space, clip.model) == ("wan", WAN21_SPACE, "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers")
    assert (clip.frames, clip.pixel_frames, clip.width, clip.height, clip.fps) == (16, 61, 512, 320, 16.0)
    assert clip.layout == Wan.comfyui[(5, 16)].layout  # what ComfyUI's Wan21 latents are read with
    assert clip.history[0]["arguments"]["layout"] == "ncthw" and clip.history[0]["arguments"]["dtype"] == "bfloat16"


# --- interpolation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("method", list(latent_ops.METHODS))
def test_interpolation_keeps_the_originals_and_beats_frame_repetition(clip, latents, factor, method):
    kept = latents[::factor]  # drop factor - 1 of every factor frames
    count = (kept.shape[0] - 1) * factor + 1
    short = dataclasses.replace(clip, latents=kept, fps=clip.fps / factor)
    result = editing.interpolate(short, factor, method=method)
    assert torch.equal(result.latents[::factor], kept)  # bit for bit
    dropped = [index for index in range(count) if index % factor]
    true = latents[:count][dropped]
    repeated = kept.repeat_interleave(factor, dim=0)[:count][dropped]
    assert error(result.latents[dropped], true) < 0.75 * error(repeated, true)  # measured: 0.57-0.61 at 2, 0.33-0.37 at 4


def test_away_from_the_causal_first_frame_the_blends_rebuild_alike(latents):
    """Why slerp stays the default: what puts it behind lerp is the gap out of the first latent frame."""
    later = latents[1:]
    kept = later[::2]
    count = (kept.shape[0] - 1) * 2 + 1
    true = later[1:count:2]
    errors = {method: error(latent_ops.upsample(kept, 2, method)[1::2], true) for method in latent_ops.METHODS}
    assert max(errors.values()) <= 1.02 * min(errors.values()), errors


# --- drift correction -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def halves(latents):
    half = latents.shape[0] // 2
    return latent_ops.ChannelStats.of(latents[:half]), latents[half:]


def test_drift_correction_keeps_the_change_real_footage_shows(halves):
    reference, second = halves
    natural = latent_ops.drift(second, reference, relative=True)
    assert natural.mean > 0.1 and natural.std_ratio > 0.05  # real change: 0.146 std, 10.5 %
    assert latent_ops.NATURAL_DRIFT.holds(natural, tolerance=0)
    assert torch.equal(latent_ops.limit_drift(second, reference), second)  # not flattened: left bit for bit
    exact = latent_ops.drift(latent_ops.match_channel_stats(second, reference), reference, relative=True)
    assert exact.within(1e-3)  # what exact matching would have done: erase it


@pytest.mark.parametrize("shift, contrast", [(0.5, 0.7), (-0.4, 1.5), (0.3, 1.0), (0.0, 0.5)])
def test_drift_correction_bounds_added_drift_to_the_band(halves, shift, contrast):
    reference, second = halves
    band = latent_ops.NATURAL_DRIFT
    centre = latent_ops.ChannelStats.of(second).mean[None, :, None, None]
    drifted = (second - centre) * contrast + centre + shift * reference.std[None, :, None, None]
    before = latent_ops.drift(drifted, reference, relative=True)
    assert not band.holds(before)
    corrected = latent_ops.limit_drift(drifted, reference)
    after = latent_ops.drift(corrected, reference, relative=True)
    assert band.holds(after), after
    # Only the excess is removed: the channels that drifted furthest end on the band's edge, not at 0.
    assert after.mean >= band.mean - 1e-3 or after.std_ratio >= band.std - 1e-3


def test_drift_correction_leaves_the_channels_that_did_not_drift(halves):
    reference, second = halves
    drifted = second.clone()
    drifted[:, :8] += 0.5 * reference.std[:8, None, None]  # half the channels drift, the rest change as filmed
    corrected = latent_ops.limit_drift(drifted, reference)
    assert torch.equal(corrected[:, 8:], second[:, 8:])
    shifted = latent_ops.ChannelStats.of(corrected[:, :8]).mean - reference.mean[:8]
    assert torch.allclose(shifted.abs() / reference.std[:8], torch.full((8,), latent_ops.NATURAL_DRIFT.mean), atol=1e-4)


def test_a_band_of_zero_is_exact_matching(halves):
    reference, second = halves
    exact = latent_ops.limit_drift(second, reference, latent_ops.DriftBand(0, 0))
    assert torch.allclose(exact, latent_ops.match_channel_stats(second, reference), atol=1e-5)


# --- seams and loops ------------------------------------------------------------------------------


def test_the_seam_measure_tells_a_cut_from_the_footage(latents):
    filmed = analysis.measure_seam(latents, [7])
    assert not filmed.exceeds_motion and 0.5 < filmed.ratio < 1.5
    other = analysis.measure_seam(torch.cat([latents[:8], latents[8:].flip(-1)]), [7])  # cut to mirrored content
    assert other.exceeds_motion and other.ratio > 3
    naive = analysis.measure_seam(latents, [latents.shape[0] - 1], loop=True)
    assert naive.exceeds_motion and naive.ratio > 3  # measured 3.65 x the mean step


def test_edit_loop_leaves_no_seam_above_the_clips_largest_step(clip, latents):
    largest = float(analysis.motion_energy(latents)[1:].max())  # after the causal first frame (one pixel frame): 0.241
    plan = editing.EditPlan(loop=True)
    crossfade = plan.crossfade_frames(clip.frames)
    looped = editing.edit(clip, plan).latents
    seam = analysis.measure_seam(looped, [*range(crossfade), looped.shape[0] - 1], loop=True)
    assert seam.step <= largest
    # Interpolated afterwards, its seam stays within the clip's largest step at the doubled frame rate.
    doubled = editing.interpolate(editing.edit(clip, plan), 2, loop=True).latents
    frames = doubled.shape[0]
    seam = analysis.measure_seam(doubled, [*range(2 * crossfade), frames - 2, frames - 1], loop=True)
    assert seam.step <= largest / 2


def test_interpolate_loop_spreads_the_jump_without_shrinking_it(clip, latents):
    """`interpolate --loop` alone fills the gap from the last frame to the first in K steps: each is
    about 1/K of the jump, as the clip's own steps are 1/K of theirs, so the seam keeps its ratio."""
    naive = analysis.measure_seam(latents, [latents.shape[0] - 1], loop=True)
    factor = 2
    looped = editing.interpolate(clip, factor, loop=True).latents
    frames = looped.shape[0]
    seam = analysis.measure_seam(looped, list(range(frames - factor, frames)), loop=True)
    assert seam.step < naive.step and seam.ratio > 0.8 * naive.ratio


# --- analyze -------------------------------------------------------------------------------------


def test_real_motion_is_not_flagged_static_and_a_still_is(latents):
    motion = analysis.measure_motion(latents)
    assert not motion.static and motion.relative > 2 * analysis.STATIC_THRESHOLD  # measured 0.127
    assert analysis.measure_motion(latents[8:9].expand(16, -1, -1, -1)).static


# --- convert --layout ---------------------------------------------------------------------------


def convert(*args: str):
    return CliRunner().invoke(main, ["convert", *args])


def test_convert_turns_raw_latents_into_a_clip(tmp_path, raw_path, clip):
    out = tmp_path / "clip.safetensors"
    result = convert(str(raw_path), "--layout", "ncthw", "--model", MODEL, "-o", str(out))
    assert result.exit_code == 0, result.output
    written = latentfile.read(out)
    assert torch.equal(written.latents, clip.latents)
    assert (written.latent_space, written.fps, written.width, written.height) == (WAN21_SPACE, 16.0, 512, 320)
    assert [step["command"] for step in written.history] == ["import", "convert"]
    # A ComfyUI .latent of it reads back as the same numbers.
    result = convert(str(raw_path), "--layout", "ncthw", "--model", MODEL, "-o", str(tmp_path / "clip.latent"))
    assert result.exit_code == 0, result.output
    assert torch.allclose(latentfile.read(tmp_path / "clip.latent").latents, clip.latents, atol=1e-5)


def test_a_converted_clip_decodes_with_a_wan21_vae(tmp_path, raw_path, tiny_wan):
    """Its latent space has no fingerprint, so it matches any Wan VAE of 16 channels (here the tiny one)."""
    from vidlatent.models import LoadOptions, load_vae

    crop = raw_latents.read_tensors(raw_path)["latents"][:, :, :2, :8, :8].contiguous()  # (1, 16, 2, 8, 8): 5 frames, 64x64
    (tmp_path / "raw.safetensors").write_bytes(latentfile.safetensors_bytes({"z": crop}, {}))
    assert convert(str(tmp_path / "raw.safetensors"), "--layout", "ncthw", "--model", MODEL, "-o", str(tmp_path / "c.safetensors")).exit_code == 0
    converted = latentfile.read(tmp_path / "c.safetensors")
    vae = load_vae(LoadOptions(model=str(tiny_wan), device="cpu"))
    converted.require_space(vae.latent_space)
    frames = list(codec.decode_frames(vae.family, converted.latents, vae.vae, device=torch.device("cpu")))
    assert len(frames) == converted.pixel_frames == 5 and frames[0].shape == (64, 64, 3)


def test_convert_layouts_name_the_axes(tmp_path, clip):
    """tchw, cthw and nthwc of the same latents give the same clip; --tensor picks one of several."""
    frames_first = clip.latents[:2, :, :8, :8].contiguous()  # (T, C, h, w)
    tensors = {"tchw": frames_first, "cthw": frames_first.permute(1, 0, 2, 3).contiguous(),
               "nthwc": frames_first.permute(0, 2, 3, 1)[None].contiguous()}
    (tmp_path / "raw.safetensors").write_bytes(latentfile.safetensors_bytes(tensors, {}))
    for layout in tensors:
        out = tmp_path / f"{layout}.safetensors"
        result = convert(str(tmp_path / "raw.safetensors"), "--layout", layout, "--tensor", layout, "--model", MODEL, "-o", str(out))
        assert result.exit_code == 0, result.output
        assert torch.equal(latentfile.read(out).latents, frames_first)


@pytest.mark.parametrize("args, message", [
    (["--layout", "nctw", "--model", MODEL], "--layout 'nctw': name the tensor's axes"),
    (["--layout", "ncthwx", "--model", MODEL], "--layout 'ncthwx': name the tensor's axes"),
    (["--layout", "tchw", "--model", MODEL], "--layout tchw: names 4 axes, but"),
    (["--layout", "nhwct", "--model", MODEL], "has 40 channels, but Wan 2.1 image-to-video latents have 16"),
    (["--layout", "ncthw", "--model", "svd"], "has 16 channels, but Stable Video Diffusion latents have 4"),
    (["--layout", "ncthw", "--model", "wan22-ti2v-5b"], "latents have 48"),
    (["--layout", "ncthw", "--model", MODEL, "--tensor", "z"], "--tensor z: "),
    (["--model", MODEL], "--model applies to raw latents: give --layout too"),
    (["--layout", "ncthw"], "--layout: raw latents need --model"),
])
def test_convert_refuses_bad_layouts_and_shapes_in_one_line(tmp_path, raw_path, args, message):
    out = tmp_path / "out.safetensors"
    result = convert(str(raw_path), *args, "-o", str(out))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("vidlatent: error: "), result.stderr
    assert message in lines[0]
    assert not out.exists()


def test_convert_refuses_a_batch_of_several_videos_and_integer_tensors(tmp_path, clip):
    small = clip.latents[:2, :, :4, :4].permute(1, 0, 2, 3)[None]  # (1, C, T, h, w)
    tensors = {"two": torch.cat([small, small]).contiguous(), "ints": small.to(torch.int32).contiguous()}
    (tmp_path / "raw.safetensors").write_bytes(latentfile.safetensors_bytes(tensors, {}))
    for name, message in (("two", "is a batch of 2 videos"), ("ints", "is int32; latents are floating point")):
        result = convert(str(tmp_path / "raw.safetensors"), "--layout", "ncthw", "--tensor", name, "--model", MODEL,
                         "-o", str(tmp_path / "out.safetensors"))
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    result = convert(str(tmp_path / "raw.safetensors"), "--layout", "ncthw", "--model", MODEL, "-o", str(tmp_path / "o.safetensors"))
    assert result.exit_code == 2 and "holds 2 tensors (ints, two); say which is the latents with --tensor NAME" in result.stderr
