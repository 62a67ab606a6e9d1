"""The LTX-Video family on tiny-random-ltx, proved against diffusers' own pipelines.

Model-backed checks run the real diffusers classes from a folder: the exactness tests copy the
tiny model to folders vidlatent has never seen and compare with ``LTXConditionPipeline`` (and
``LTXLatentUpsamplePipeline``) loaded from that same folder.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.conftest import data_file, resized_photo
from vidlatent import codec, latentfile, media
from vidlatent.cli import main
from vidlatent.codec import tensor_to_pixels
from vidlatent.families.base import DecodeSettings
from vidlatent.generation import ExtendOptions, Knobs, extend, regenerate, sample
from vidlatent.models import LoadOptions, load_pipeline

PROMPT = "a red fox runs"
CPU = torch.device("cpu")


def cli(*args: str, input: bytes | None = None, code: int = 0):
    result = CliRunner().invoke(main, list(args), input=input)
    assert result.exit_code == code, result.output
    return result


def generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    return resized_photo(tmp_path_factory.mktemp("photo"), (64, 64))


@pytest.fixture(scope="module")
def unseen(tmp_path_factory, tiny_ltx):
    """Copies of tiny-random-ltx in folders vidlatent has never seen; the second's path names a
    distilled checkpoint, as a download of one does."""
    root = tmp_path_factory.mktemp("unseen")
    return {name: shutil.copytree(tiny_ltx, root / name) for name in ("ltx", "ltx-distilled")}


@pytest.fixture(scope="module")
def diffusers_pipeline(unseen):
    from diffusers import LTXConditionPipeline

    pipeline = LTXConditionPipeline.from_pretrained(unseen["ltx"])
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def ltx(tiny_ltx):
    return load_pipeline(LoadOptions(model="tiny-random-ltx"))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory, photo, tiny_ltx):
    """17 frames (3 latent frames) at 64x64."""
    path = tmp_path_factory.mktemp("ltxclip") / "clip.safetensors"
    cli("generate", photo, "--model", "tiny-random-ltx", "--prompt", PROMPT, "--frames", "17", "--steps", "2", "--seed", "3",
        "-o", str(path), "-q")
    return path


@pytest.mark.parametrize("with_image", [True, False])
def test_generate_equals_diffusers(tmp_path, unseen, diffusers_pipeline, photo, with_image):
    out = tmp_path / "z.safetensors"
    cli("generate", *([photo] if with_image else []), "--model", str(unseen["ltx"]), "--prompt", PROMPT, "--size", "64x64",
        "--frames", "9", "--steps", "2", "--seed", "4", "-o", str(out), "-q")
    clip = latentfile.read(out)
    image = {"image": Image.open(photo)} if with_image else {}
    expected = diffusers_pipeline(prompt=PROMPT, height=64, width=64, num_frames=9, num_inference_steps=2, generator=generator(4),
                                  output_type="latent", **image).frames[0].permute(1, 0, 2, 3)
    assert torch.equal(clip.latents, expected)
    assert (clip.family, clip.frames, clip.pixel_frames, str(clip.layout.frame_rule), clip.fps) == ("ltx", 2, 9, "(T-1)*8+1", 25.0)
    arguments = clip.history[-1]["arguments"]
    # The pipeline's own defaults (guidance 3, frame_rate 25), and the decoding recorded for decode.
    assert (arguments["guidance"], arguments["fps"], arguments["decode_timestep"], arguments["decode_noise_scale"]) == (3, 25, 0.05, 0.025)


def test_distilled_models_default_to_their_documented_schedule(tmp_path, unseen):
    from diffusers import LTXConditionPipeline

    from vidlatent.families.ltx import DISTILLED_TIMESTEPS

    out = tmp_path / "z.safetensors"
    cli("generate", "--model", str(unseen["ltx-distilled"]), "--prompt", PROMPT, "--size", "64x64", "--frames", "9", "--fps", "24",
        "--seed", "2", "-o", str(out), "-q")
    pipeline = LTXConditionPipeline.from_pretrained(unseen["ltx-distilled"])
    pipeline.set_progress_bar_config(disable=True)
    expected = pipeline(prompt=PROMPT, height=64, width=64, num_frames=9, frame_rate=24, timesteps=list(DISTILLED_TIMESTEPS),
                        guidance_scale=1.0, generator=generator(2), output_type="latent").frames[0].permute(1, 0, 2, 3)
    clip = latentfile.read(out)
    assert torch.equal(clip.latents, expected) and clip.fps == 24.0
    arguments = clip.history[-1]["arguments"]
    assert (arguments["steps"], arguments["guidance"], arguments["timesteps"]) == (8, 1.0, list(DISTILLED_TIMESTEPS))
    # With --steps the pipeline's own schedule of that many steps is used.
    from vidlatent.models import describe

    family = describe(str(unseen["ltx-distilled"])).family
    assert "timesteps" not in family.knob_defaults_for({"steps": 4})


@pytest.mark.parametrize(
    "args, message",
    [
        (["{photo}", "--model", "tiny-random-ltx", "--frames", "12"], "makes 8k+1 frames; use 9 or 17"),
        (["{photo}", "--model", "tiny-random-ltx", "--size", "80x64"], "multiples of 32; use 64x64"),
        (["{photo}", "--model", "tiny-random-ltx", "--motion", "20"], "--motion: LTX-Video does not take it"),
        (["{photo}", "--model", "tiny-random-ltx", "--upscale", "--size", "96x64"], "multiples of 64; use 128x64"),
        (["{photo}", "--model", "tiny-random", "--upscale"], "--upscale: Stable Video Diffusion has no latent upsampler"),
        (["{photo}", "--model", "tiny-random-wan", "--decode-timestep", "0.1"], "--decode-timestep: Wan 2.1 image-to-video does not take it"),
        (["{photo}", "--model", "tiny-random-ltx", "--decode-noise-scale", "2"], "--decode-noise-scale 2.0: must be between 0 and 1"),
        (["{photo}", "--model", "ltx-0.9.7-distilled", "--frames", "12"], "use 9 or 17"),  # known by hub id, not on disk
    ],
)
def test_what_ltx_cannot_take_is_refused_before_it_loads(tmp_path, photo, tiny_ltx, tiny_model, tiny_wan, args, message):
    result = CliRunner().invoke(main, ["generate", *[a.format(photo=photo) for a in args], "-o", str(tmp_path / "x.mp4")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_strength_zero_is_the_clip_one_is_generate_and_s_is_the_noise_level(clip_path, ltx, photo, diffusers_pipeline):
    clip = latentfile.read(clip_path)
    image = Image.open(photo)
    knobs = Knobs(steps=2, prompt=PROMPT)
    assert torch.equal(regenerate(ltx, image, clip.latents, strength=0, knobs=knobs, seed=3), clip.latents)
    assert torch.equal(regenerate(ltx, image, clip.latents, strength=1, knobs=knobs, seed=3), clip.latents)  # its own generate
    # S = 0.5 of 2 steps: one step from noise level 0.5 itself (the pipeline's denoise_strength
    # alone would start at 0.975, the second level of its 2-step schedule).
    levels: list[float] = []

    def record(pipeline, step, timestep, tensors):
        levels.append(float(timestep))
        return {}

    ours = regenerate(ltx, image, clip.latents, strength=0.5, knobs=knobs, seed=5)
    expected = diffusers_pipeline(image=image, prompt=PROMPT, height=64, width=64, num_frames=17, latents=clip.latents.permute(1, 0, 2, 3)[None],
                                  timesteps=[1000.0, 500.0], denoise_strength=0.75, generator=generator(5), output_type="latent",
                                  callback_on_step_end=record).frames[0].permute(1, 0, 2, 3)
    assert torch.equal(ours, expected) and levels == [500.0]
    assert not torch.equal(ours, clip.latents)


def test_edit_and_refine_on_ltx_clips(tmp_path, clip_path, photo):
    edited = tmp_path / "edited.safetensors"
    cli("edit", str(clip_path), "--image", photo, "--strength", "0.5", "--steps", "2", "--seed", "1", "-o", str(edited), "-q")
    operation = latentfile.read(edited).history[-1]["arguments"]["operations"][0]
    assert (operation["prompt"], operation["denoising_steps"]) == (PROMPT, 1)  # the clip's own prompt
    # The history says the schedule that ran: one step of the linear-quadratic schedule, scaled into [0, 0.5].
    from diffusers.pipelines.ltx.pipeline_ltx_condition import linear_quadratic_schedule

    assert operation["timesteps"] == [float(level) * 0.5 * 1000.0 for level in linear_quadratic_schedule(1)]
    refined = tmp_path / "refined.safetensors"
    cli("interpolate", str(clip_path), "--factor", "2", "--refine", "0.5", "--steps", "2", "--seed", "1", "-o", str(refined), "-q")
    result = latentfile.read(refined)
    assert result.frames == 5 and torch.equal(result.latents[::2], latentfile.read(clip_path).latents)  # the originals, pinned


def test_extend_is_the_pipelines_own_video_conditioning(clip_path, ltx, diffusers_pipeline):
    """The clip's last 9 frames (decoded with the default decode settings) as a condition at frame 0, strength 1."""
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    clip = latentfile.read(clip_path)
    knobs = Knobs(frames=25, steps=2, prompt=PROMPT)
    result = extend(ltx, clip, knobs=knobs, options=ExtendOptions(drift_correction=False), seed=7)
    step = result.history[-1]["arguments"]
    assert step["overlap"] == 2 and result.frames == 3 + 2 and torch.equal(result.latents[:3], clip.latents)
    frames = list(codec.decode_frames(ltx.family, clip.latents, ltx.vae, device=CPU))[-9:]
    condition = LTXVideoCondition(video=[Image.fromarray(frame) for frame in frames], frame_index=0, strength=1.0)
    expected = diffusers_pipeline(conditions=[condition], prompt=PROMPT, height=64, width=64, num_frames=25, num_inference_steps=2,
                                  generator=generator(7), output_type="latent").frames[0].permute(1, 0, 2, 3)
    assert torch.equal(result.latents[3:], expected[2:])  # the segment less its 2 conditioned latent frames
    # The last frame alone: --overlap 1 conditions on it as an image.
    last = extend(ltx, clip, knobs=Knobs(frames=9, steps=2, prompt=PROMPT), options=ExtendOptions(overlap=1), seed=7)
    assert last.frames == 4 and last.history[-1]["arguments"]["overlap"] == 1


def test_generate_extend_decode_chain(tmp_path, photo, tiny_ltx):
    """Latent bytes handed from command to command, as a pipe does; 9-frame segments fall back to
    --overlap 1 (two latent frames cannot keep two)."""
    made = cli("generate", photo, "--model", "tiny-random-ltx", "--prompt", "fox", "--frames", "9", "--steps", "2", "--seed", "1",
               "-o", "-", "-q").stdout_bytes
    longer = cli("extend", "-", "--times", "2", "--steps", "2", "-o", "-", "-q", input=made).stdout_bytes
    clip = latentfile.from_bytes(longer)
    assert (clip.frames, clip.pixel_frames, clip.history[-1]["arguments"]["overlap"]) == (4, 25, 1)
    summary = json.loads(cli("decode", "-", "-o", str(tmp_path / "frames"), "--json", "-q", input=longer).stdout)
    assert len(list((tmp_path / "frames").glob("*.png"))) == 25
    assert summary["decode"] == {"decode_timestep": 0.05, "decode_noise_scale": 0.025, "decode_seed": 1}


def test_keyframes_condition_on_a_last_frame_and_b_first(tmp_path, photo, unseen, diffusers_pipeline, ltx):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path, seed in ((a, "1"), (b, "2")):
        cli("generate", photo, "--model", str(unseen["ltx"]), "--prompt", PROMPT, "--size", "64x64", "--frames", "9", "--steps", "2",
            "--seed", seed, "-o", str(path), "-q")
    joined = tmp_path / "joined.safetensors"
    cli("interpolate", str(a), str(b), "--transition", "17", "--keyframes", "--join", "--steps", "2", "--seed", "3",
        "-o", str(joined), "-q")
    clip_a, clip_b, whole = latentfile.read(a), latentfile.read(b), latentfile.read(joined)
    first = codec.decode_frame(ltx.family, clip_a.latents, ltx.vae, device=CPU, index=-1)  # the unseen folder's VAE, the same weights
    last = codec.decode_frame(ltx.family, clip_b.latents, ltx.vae, device=CPU, index=0)
    conditions = [LTXVideoCondition(image=Image.fromarray(first), frame_index=0),
                  LTXVideoCondition(image=Image.fromarray(last), frame_index=16)]
    bridge = diffusers_pipeline(conditions=conditions, prompt=PROMPT, height=64, width=64, num_frames=17, num_inference_steps=2,
                                generator=generator(3), output_type="latent").frames[0].permute(1, 0, 2, 3)
    # A (2 latent) + the bridge without its first frame (2) + B without its first (1).
    assert whole.frames == 5 and torch.equal(whole.latents[:2], clip_a.latents) and torch.equal(whole.latents[-1:], clip_b.latents[1:])
    assert torch.equal(whole.latents[2:4], bridge[1:])


def test_streamed_decode_equals_the_vae_decode(ltx):
    """Chunks of 2 latent frames, each with the 7 the decoder reaches on each side, against one
    vae.decode of the whole clip with the pipeline's decode arithmetic: equal to 1e-5."""
    from vidlatent.families.ltx import decoder_context

    vae, family = ltx.vae, ltx.family
    assert decoder_context(vae.decoder) == (7, 7)
    latents = torch.randn(12, 128, 1, 1, generator=generator(0))  # 89 frames of 32x32: windows of up to 16 latent frames
    settings = DecodeSettings(timestep=0.05, noise_scale=0.025, seed=7)
    chunks = list(family.decode(latents, vae, device=CPU, chunk=2, settings=settings))
    assert [chunk.shape[2] for chunk in chunks] == [9] + [16] * 5
    z = latents.permute(1, 0, 2, 3)[None] * vae.latents_std.view(1, -1, 1, 1, 1) + vae.latents_mean.view(1, -1, 1, 1, 1)
    z = (1 - 0.025) * z + 0.025 * torch.randn(z.shape, generator=generator(7))
    with torch.no_grad():
        whole = vae.decode(z, torch.tensor([0.05])).sample
    assert (torch.cat(chunks, 2) - whole).abs().max() < 1e-5
    # One frame (a conditioning image) is the frame decode writes (with the default settings).
    frame = codec.decode_frame(family, latents, vae, device=CPU, index=5)
    every = torch.cat(list(family.decode(latents, vae, device=CPU, chunk=3)), 2)[0].permute(1, 0, 2, 3)
    assert np.array_equal(frame, tensor_to_pixels(every[40:41])[0])


def test_spatial_tiles_equal_the_vaes_tiled_decode(ltx):
    vae, family = ltx.vae, ltx.family
    latents = torch.randn(1, 128, 4, 4, generator=generator(1))  # one frame of 128x128
    settings = DecodeSettings(timestep=0.05, noise_scale=0.0)
    untiled = torch.cat(list(family.decode(latents, vae, device=CPU, settings=settings)), 2)
    vae.enable_tiling(tile_sample_min_height=96, tile_sample_min_width=96, tile_sample_stride_height=64, tile_sample_stride_width=64)
    try:
        tiled = torch.cat(list(family.decode(latents, vae, device=CPU, settings=settings)), 2)
        z = latents.permute(1, 0, 2, 3)[None] * vae.latents_std.view(1, -1, 1, 1, 1) + vae.latents_mean.view(1, -1, 1, 1, 1)
        with torch.no_grad():
            reference = vae.decode(z, torch.tensor([0.05])).sample
    finally:
        vae.use_tiling = False
        vae.tile_sample_min_height = vae.tile_sample_min_width = 512
        vae.tile_sample_stride_height = vae.tile_sample_stride_width = 448
    assert (tiled - reference).abs().max() < 1e-5
    # Tiles blend their overlaps: on this random decoder they differ from one untiled decode by 0.12
    # on average (max 0.93, on [-1, 1]), measured; real VAEs were not measured here.
    assert 0 < (tiled - untiled).abs().mean() < 0.2


def test_frames_over_the_tile_are_tiled_unless_no_vae_tiling(ltx):
    """Without --vae-tiling, frames over the VAE's 512 px tile are decoded in tiles; --no-vae-tiling
    keeps one untiled decode whatever the size."""
    import dataclasses

    from vidlatent.models import plan_vae_tiling

    vae = ltx.vae
    off = dataclasses.replace(ltx, accelerated=dataclasses.replace(
        ltx.accelerated, acceleration=dataclasses.replace(ltx.accelerated.acceleration, vae_tiling=False)))
    try:
        assert not plan_vae_tiling(ltx, (512, 512)) and not vae.use_tiling
        assert plan_vae_tiling(ltx, (544, 512)) and vae.use_tiling
        assert not plan_vae_tiling(off, (544, 512)) and not vae.use_tiling
    finally:
        vae.disable_tiling()


def test_encode_is_the_vae_mean_normalised(ltx):
    frames = list(media.iter_frames(data_file("bear.gif"), media.FrameSelection(frames=10), size=(64, 64)))
    notes: list[str] = []
    ours = ltx.family.encode_frames(iter(frames), ltx.vae, device=CPU, note=notes.append)
    assert ours.shape == (2, 128, 2, 2) and "the last 1 frame(s) were left out" in notes[0]
    video = torch.from_numpy(np.stack(frames[:9])).permute(3, 0, 1, 2)[None].float() / 255.0 * 2.0 - 1.0
    with torch.no_grad():
        raw = ltx.vae.encode(video).latent_dist.mode()
    mean, std = ltx.vae.latents_mean.view(1, -1, 1, 1, 1), ltx.vae.latents_std.view(1, -1, 1, 1, 1)
    assert torch.equal(ours, ((raw - mean) / std)[0].permute(1, 0, 2, 3))


def test_decode_takes_the_clips_values_or_the_options(tmp_path, clip_path, tiny_model):
    decoded = {}
    for name, options in (("own", []), ("given", ["--decode-timestep", "0.2", "--decode-noise-scale", "0"])):
        summary = json.loads(cli("decode", str(clip_path), "-o", str(tmp_path / name), "--json", "-q", *options).stdout)
        decoded[name] = (summary["decode"], np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / name).glob("*.png"))]))
    assert decoded["own"][0] == {"decode_timestep": 0.05, "decode_noise_scale": 0.025, "decode_seed": 3}
    assert decoded["given"][0]["decode_timestep"] == 0.2 and not np.array_equal(decoded["own"][1], decoded["given"][1])
    # Another family's clip: the LTX decoder refuses it, and its own decoder refuses LTX's options.
    svd = tmp_path / "svd.safetensors"
    cli("encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "2", "-o", str(svd), "-q")
    for args, message in ((["--model", "tiny-random-ltx"], "belong to another VAE"),
                          (["--decode-timestep", "0.1"], "Stable Video Diffusion's VAE decoder takes no timestep")):
        result = CliRunner().invoke(main, ["decode", str(svd), *args, "-o", str(tmp_path / "x.mp4")])
        assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "x.mp4").exists()


def test_upscale_equals_the_documented_multi_scale_workflow(tmp_path, photo, unseen, diffusers_pipeline):
    """generate --upscale = generate at half size, LTXLatentUpsamplePipeline, then the refining
    pass (denoise_strength 0.4 of 10 steps), as diffusers' LTX-Video docs chain them; and
    generate | upscale --image gives the same clip."""
    from diffusers import LTXLatentUpsamplePipeline

    from vidlatent.families.ltx import FAMILY, TINY_UPSCALER
    from vidlatent.upscaling import upscaler_folder

    out, chained = tmp_path / "up.safetensors", tmp_path / "chained.safetensors"
    common = ["--model", str(unseen["ltx"]), "--prompt", PROMPT, "--frames", "9", "--steps", "2", "--seed", "4", "-q"]
    cli("generate", photo, *common, "--size", "64x64", "--upscale", "--upscaler", TINY_UPSCALER, "-o", str(out))
    low = cli("generate", photo, *common, "--size", "32x32", "-o", "-").stdout_bytes
    cli("upscale", "-", "--image", photo, "--upscaler", TINY_UPSCALER, "-o", str(chained), "-q", input=low)
    upsampler = LTXLatentUpsamplePipeline.from_pretrained(upscaler_folder(TINY_UPSCALER, FAMILY), vae=diffusers_pipeline.vae)
    image = Image.open(photo)
    first = diffusers_pipeline(image=media.resize_image(image, (32, 32)), prompt=PROMPT, height=32, width=32, num_frames=9,
                               num_inference_steps=2, generator=generator(4), output_type="latent").frames
    upsampled = upsampler(latents=first, output_type="latent").frames
    expected = diffusers_pipeline(image=image, prompt=PROMPT, height=64, width=64, num_frames=9, num_inference_steps=10,
                                  denoise_strength=0.4, latents=upsampled, generator=generator(4),
                                  output_type="latent").frames[0].permute(1, 0, 2, 3)
    clip = latentfile.read(out)
    assert torch.equal(clip.latents, expected) and (clip.width, clip.height) == (64, 64)
    assert [step["command"] for step in clip.history] == ["generate", "upscale"]
    assert torch.equal(latentfile.read(chained).latents, expected)


def test_comfyui_ltxv_latents_both_ways(tmp_path, clip_path):
    """ComfyUI's LTXV VAE normalises by its own statistics, so its .latent holds the values as they are."""
    from safetensors.torch import load_file, save_file

    clip = latentfile.read(clip_path)
    comfy = tmp_path / "c.latent"
    cli("convert", str(clip_path), "-o", str(comfy), "-q")
    raw = load_file(comfy)["latent_tensor"]
    assert torch.equal(raw, clip.latents.permute(1, 0, 2, 3)[None])
    assert clip.layout.normalization.mean  # the file records the VAE's statistics, ComfyUI does not need them
    made, back, again = tmp_path / "made.latent", tmp_path / "made.safetensors", tmp_path / "again.latent"
    save_file({"latent_tensor": raw + 0.25, "latent_format_version_0": torch.tensor([])}, made)
    assert "LTX-Video latents" in cli("convert", str(made), "-o", str(back)).stderr
    imported = latentfile.read(back)
    assert (imported.family, imported.width, imported.frames) == ("ltx", 64, 3) and torch.equal(imported.latents, clip.latents + 0.25)
    cli("convert", str(back), "-o", str(again), "-q")
    assert torch.equal(load_file(again)["latent_tensor"], raw + 0.25)


def test_pinned_frames_see_the_pipelines_tokens(clip_path, ltx, photo):
    """Step callbacks see LTX's packed tokens; pin_frames writes through a (T, C, h, w) view of them."""
    from vidlatent.generation import pin_frames

    clip = latentfile.read(clip_path)
    known = clip.latents[1:2]
    segment = sample(ltx, Image.open(photo), knobs=Knobs(frames=17, steps=2, prompt=PROMPT), seed=5, on_step=pin_frames(known, [1], 5))
    assert torch.equal(segment[1:2], known)
