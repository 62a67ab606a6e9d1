"""LTX-2: video and its sound together (what the family contract does not already check).

- generate from a prompt equals diffusers' LTX2Pipeline called with output_type="latent" bit for
  bit, for the video's latents and the sound's, in a folder vidlatent has never seen (with an
  image, LTX2ImageToVideoPipeline: the family contract checks both streams);
- the latent file (version 3) carries the sound and its timing; version-2 files still read;
- decode puts the sound in the video (.mp4 AAC, .webm Opus) at the vocoder's rate, or writes it
  alone (.wav), as the bundled ffmpeg reads it back; --no-audio leaves it out;
- edit --strength regenerates picture and sound as one diffusers call does;
- generate | extend | decode keeps sound over the whole length;
- the guidance knobs: a spatio-temporal guidance block the model lacks is refused.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import wave
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from vidlatent import latentfile
from vidlatent.cli import main

PROMPT = "a fox barks"
SEED = 3
SIZE = 64
FRAMES = 9  # two latent frames; 9 / 24 s of sound: round(0.375 * 25) = 9 latent steps


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def unseen(tiny_ltx2: Path, tmp_path_factory) -> Path:
    """The tiny LTX-2 folder, copied where vidlatent never looked."""
    return Path(shutil.copytree(tiny_ltx2, tmp_path_factory.mktemp("ltx2") / "unseen-ltx2"))


@pytest.fixture(scope="module")
def clip_path(unseen: Path, tmp_path_factory) -> Path:
    """A clip generated from the prompt alone, with its sound."""
    path = tmp_path_factory.mktemp("clip") / "clip.safetensors"
    cli("generate", "--model", str(unseen), "--prompt", PROMPT, "--size", f"{SIZE}x{SIZE}", "--frames", str(FRAMES),
        "--steps", "2", "--seed", str(SEED), "-o", str(path), "-q")
    return path


@pytest.fixture(scope="module")
def text_model(unseen: Path):
    """vidlatent's LTX2Pipeline (text to video and sound), loaded from the unseen folder."""
    from vidlatent.models import LoadOptions, load_pipeline

    return load_pipeline(LoadOptions(model=str(unseen)), image=False)


def _reference(unseen: Path, class_name: str, **image) -> tuple[torch.Tensor, torch.Tensor]:
    import diffusers

    pipeline = getattr(diffusers, class_name).from_pretrained(unseen)
    pipeline.set_progress_bar_config(disable=True)
    output = pipeline(prompt=PROMPT, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=2,
                      generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent", **image)
    return output.frames[0].permute(1, 0, 2, 3), output.audio[0].permute(1, 0, 2)  # (T, C, h, w), (L, C, M)


def test_generate_from_a_prompt_equals_diffusers_for_picture_and_sound(unseen, clip_path):
    clip = latentfile.read(clip_path)
    latents, audio = _reference(unseen, "LTX2Pipeline")
    assert torch.equal(clip.latents, latents) and torch.equal(clip.audio, audio)
    assert clip.audio.shape == (9, 2, 2) and clip.audio.std() > 0
    layout = clip.audio_layout
    assert (layout.family, layout.sample_rate, layout.latents_per_second, layout.offset, layout.values) == ("ltx2", 24000, 25.0, 0.0, "raw")
    # The history records what replays: --fps as a whole number (the pipeline's default is 24.0),
    # and not the pipeline's default --stg-blocks 28, which names a block the tiny model lacks.
    recorded = clip.history[-1]["arguments"]
    assert recorded["fps"] == 24 and isinstance(recorded["fps"], int) and "stg_blocks" not in recorded
    assert (recorded["audio_guidance"], recorded["stg"], recorded["modality_guidance"]) == (7.0, 1.0, 3.0)


# With an image (LTX2ImageToVideoPipeline): tests/test_family_contract.py, which checks the sound too.


def test_keyframes_equal_the_condition_pipeline_for_picture_and_sound(unseen, tmp_path):
    """generate IMG --last-image END: LTX2ConditionPipeline with IMG at latent frame 0 and END at the last (-1)."""
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
    from PIL import Image, ImageOps

    from tests.conftest import resized_photo

    first = resized_photo(tmp_path, (SIZE, SIZE))
    last = tmp_path / "last.png"
    ImageOps.mirror(Image.open(first)).save(last)
    out = tmp_path / "keyframes.safetensors"
    cli("generate", first, "--last-image", str(last), "--model", str(unseen), "--prompt", PROMPT, "--size", f"{SIZE}x{SIZE}",
        "--frames", str(FRAMES), "--steps", "2", "--seed", str(SEED), "-o", str(out), "-q")
    pipeline = LTX2ConditionPipeline.from_pretrained(unseen)
    pipeline.set_progress_bar_config(disable=True)
    conditions = [LTX2VideoCondition(frames=Image.open(first).convert("RGB"), index=0),
                  LTX2VideoCondition(frames=Image.open(last).convert("RGB"), index=-1)]
    output = pipeline(conditions=conditions, prompt=PROMPT, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=2,
                      generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent")
    clip = latentfile.read(out)
    assert torch.equal(clip.latents, output.frames[0].permute(1, 0, 2, 3))
    assert torch.equal(clip.audio, output.audio[0].permute(1, 0, 2))


def test_keyframes_at_any_frame_equal_the_condition_pipeline(unseen, tmp_path):
    """generate --keyframe 0:A --keyframe 12:B (17 frames): LTX2ConditionPipeline with A at latent
    index 0 and B at latent index 2, the keyframe of pixel frame 9, the nearest it places (a note
    says so); both streams bit for bit. Two keyframes that would stand at one frame are refused."""
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
    from PIL import Image, ImageOps

    from tests.conftest import resized_photo

    first = resized_photo(tmp_path, (SIZE, SIZE))
    other = tmp_path / "other.png"
    ImageOps.flip(Image.open(first)).save(other)
    out = tmp_path / "keyframes.safetensors"
    common = ["--model", str(unseen), "--prompt", PROMPT, "--size", f"{SIZE}x{SIZE}", "--frames", "17", "--steps", "2",
              "--seed", str(SEED)]
    result = cli("generate", "--keyframe", f"0:{first}", "--keyframe", f"12:{other}", *common, "-o", str(out))
    assert f"--keyframe 12:{other}: LTX-2 places keyframes by latent frame" in result.stderr
    assert "frame 12 stands at frame 9" in result.stderr
    pipeline = LTX2ConditionPipeline.from_pretrained(unseen)
    pipeline.set_progress_bar_config(disable=True)
    conditions = [LTX2VideoCondition(frames=Image.open(first).convert("RGB"), index=0),
                  LTX2VideoCondition(frames=Image.open(other).convert("RGB"), index=2)]
    output = pipeline(conditions=conditions, prompt=PROMPT, height=SIZE, width=SIZE, num_frames=17, num_inference_steps=2,
                      generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent")
    clip = latentfile.read(out)
    assert torch.equal(clip.latents, output.frames[0].permute(1, 0, 2, 3))
    assert torch.equal(clip.audio, output.audio[0].permute(1, 0, 2)) and clip.audio_aligned()
    assert [entry["frame"] for entry in clip.history[-1]["arguments"]["keyframes"]] == [0, 12]
    refused = CliRunner().invoke(main, ["generate", "--keyframe", f"9:{first}", "--keyframe", f"12:{other}", *common,
                                        "-o", str(tmp_path / "x.safetensors")])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "LTX-2 places both at frame 9" in refused.stderr and not (tmp_path / "x.safetensors").exists()


# --- --upscale: LTX2LatentUpsamplePipeline and the stage-2 pass ---------------------------------


def test_upscale_equals_the_documented_two_stage_generation(unseen, clip_path, tmp_path):
    """generate --upscale = diffusers' LTX-2 "Two-stages Generation": the clip at half the size,
    LTX2LatentUpsamplePipeline on its raw latents, then the same pipeline from the upsampled latents
    and the clip's sound latents, re-noised to STAGE_2_DISTILLED_SIGMA_VALUES[0] and denoised along
    them at guidance 1; both streams bit for bit. generate | upscale gives the same clip, and
    upscale --no-refine keeps the sound as it was."""
    from diffusers import LTX2LatentUpsamplePipeline, LTX2Pipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES as STAGE_2

    from vidlatent.families.ltx2 import FAMILY, TINY_UPSCALER
    from vidlatent.upscaling import upscaler_folder

    out, chained, plain = (tmp_path / f"{name}.safetensors" for name in ("up", "chained", "plain"))
    big = 2 * SIZE
    cli("generate", "--model", str(unseen), "--prompt", PROMPT, "--size", f"{big}x{big}", "--frames", str(FRAMES),
        "--steps", "2", "--seed", str(SEED), "--upscale", "--upscaler", TINY_UPSCALER, "-o", str(out), "-q")
    cli("upscale", str(clip_path), "--upscaler", TINY_UPSCALER, "-o", str(chained), "-q")
    cli("upscale", str(clip_path), "--upscaler", TINY_UPSCALER, "--no-refine", "-o", str(plain), "-q")
    pipeline = LTX2Pipeline.from_pretrained(unseen)
    pipeline.set_progress_bar_config(disable=True)
    upsampler = LTX2LatentUpsamplerModel.from_pretrained(upscaler_folder(TINY_UPSCALER, FAMILY), subfolder="latent_upsampler")
    first = latentfile.read(clip_path)  # the half-size clip: equal to LTX2Pipeline's (the test above)
    video, audio = first.latents.permute(1, 0, 2, 3)[None], first.audio.permute(1, 0, 2)[None]
    upscaled = LTX2LatentUpsamplePipeline(vae=pipeline.vae, latent_upsampler=upsampler)(latents=video, output_type="latent").frames
    output = pipeline(latents=upscaled, audio_latents=audio, prompt=PROMPT, height=big, width=big, num_frames=FRAMES,
                      num_inference_steps=3, noise_scale=STAGE_2[0], sigmas=STAGE_2, guidance_scale=1.0,
                      generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent")
    for path in (out, chained):
        clip = latentfile.read(path)
        assert torch.equal(clip.latents, output.frames[0].permute(1, 0, 2, 3)) and (clip.width, clip.height) == (big, big)
        assert torch.equal(clip.audio, output.audio[0].permute(1, 0, 2)) and clip.audio_aligned()
    assert [step["command"] for step in latentfile.read(out).history] == ["generate", "upscale"]
    unrefined = latentfile.read(plain)
    assert torch.equal(unrefined.latents, upscaled[0].permute(1, 0, 2, 3)) and torch.equal(unrefined.audio, first.audio)


def test_upscale_refuses_a_folder_without_the_upsampler_before_loading(unseen, tmp_path):
    """The default upscaler is the model's own latent_upsampler folder: a model without one (the
    tiny folder) is refused in one line naming --upscaler, as is a folder with no upsampler at all."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for extra, named in (([], str(unseen)), (["--upscaler", str(empty)], str(empty))):
        result = CliRunner().invoke(main, ["generate", "--model", str(unseen), "--prompt", PROMPT, "--size", "128x128",
                                           "--upscale", *extra, "-o", str(tmp_path / "x.safetensors")])
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert f"--upscaler {named}: " in result.stderr and "has no latent_upsampler folder" in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


# --- the latent file, version 3 ----------------------------------------------------------------


def test_the_sound_survives_the_file_and_old_versions_still_read(clip_path, tmp_path):
    clip = latentfile.read(clip_path)
    tensors, metadata = latentfile.parse_safetensors(clip_path.read_bytes(), source="clip", expected="a latent file")
    assert metadata["format_version"] == "3" and set(tensors) == {"latents", "audio"}
    again = latentfile.from_bytes(latentfile.to_bytes(clip))
    assert torch.equal(again.audio, clip.audio) and again.audio_layout == clip.audio_layout
    # A version-2 file (silent) still reads; one that claims version 2 but carries sound is refused.
    silent = latentfile.safetensors_bytes({"latents": clip.latents}, {**metadata, "format_version": "2"})
    assert latentfile.from_bytes(silent).audio is None
    with pytest.raises(latentfile.LatentFileError, match="a version-2 file with an 'audio' tensor"):
        latentfile.from_bytes(latentfile.safetensors_bytes(tensors, {**metadata, "format_version": "2"}))
    lacking = {key: value for key, value in metadata.items() if key != "audio_latents_per_second"}
    with pytest.raises(latentfile.LatentFileError, match="lacks audio_latents_per_second"):
        latentfile.from_bytes(latentfile.safetensors_bytes(tensors, lacking))
    with pytest.raises(latentfile.LatentFileError, match="expected 3 dimensions"):
        latentfile.from_bytes(latentfile.safetensors_bytes({**tensors, "audio": clip.audio[0]}, metadata))


@pytest.mark.parametrize("command", ["convert", "generate", "extend", "edit"])
def test_a_comfyui_latent_of_an_ltx2_clip_is_refused_in_one_line(unseen, clip_path, tmp_path, command):
    """ComfyUI keeps LTX-2's latents normalised by the VAEs' statistics, which a clip (raw) lacks:
    refused before anything is sampled, by every command that writes latents."""
    out = tmp_path / "clip.latent"
    arguments = {"convert": [str(clip_path)], "generate": ["--model", str(unseen), "--prompt", "a drum", "--frames", "9"],
                 "extend": [str(clip_path), "--seed", "1"], "edit": [str(clip_path), "--reverse"]}[command]
    result = CliRunner().invoke(main, [command, *arguments, "-o", str(out)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and not out.exists()
    assert f"-o {out}: ComfyUI's LTX-2 latents are normalised" in result.stderr and "keep the .safetensors" in result.stderr


def test_a_step_that_changes_the_length_but_not_the_sound_drops_it_with_a_note(clip_path):
    clip = latentfile.read(clip_path)
    with pytest.warns(UserWarning, match="trim: the clip's sound .* no longer lines up .* the result is silent"):
        shorter = dataclasses.replace(clip, latents=clip.latents[:1]).with_step("trim", {})
    assert shorter.audio is None and shorter.audio_layout is None
    assert clip.with_step("same", {}).audio is not None  # the same length keeps it


def test_inspect_shows_the_sound(clip_path):
    summary = json.loads(cli("inspect", str(clip_path), "--json").stdout)
    assert summary["audio"]["shape"] == [9, 2, 2] and summary["audio"]["sample_rate"] == 24000
    assert summary["audio"]["duration_s"] == pytest.approx(0.36)


# --- decode: the sound in the video, or alone ----------------------------------------------------


def _sound_stream(path: Path) -> tuple[int, float]:
    """The first sound stream of a file as the bundled ffmpeg reads it: its rate and seconds."""
    import re

    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    listing = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    rate = int(re.search(r"Audio: .*?, (\d+) Hz", listing).group(1))
    pcm = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"],
                         capture_output=True, check=True).stdout
    return rate, len(pcm) / 2 / rate


def test_decode_puts_the_sound_in_the_video_at_the_vocoders_rate(clip_path, tmp_path):
    clip = latentfile.read(clip_path)
    seconds = clip.pixel_frames / clip.fps  # 0.375
    for name, rate in (("clip.mp4", 24000), ("clip.webm", 48000)):  # Opus always runs at 48 kHz
        cli("decode", str(clip_path), "-o", str(tmp_path / name), "-q")
        found_rate, found_seconds = _sound_stream(tmp_path / name)
        # The sound is as long as the clip, to a latent step (1/25 s; the causal audio VAE's first
        # step is one mel frame) and the codec's padding.
        assert found_rate == rate and abs(found_seconds - seconds) < 0.1, (name, found_seconds)
    cli("decode", str(clip_path), "-o", str(tmp_path / "sound.wav"), "-q")
    with wave.open(str(tmp_path / "sound.wav")) as sound:
        assert (sound.getframerate(), sound.getnchannels()) == (24000, 2)
        assert abs(sound.getnframes() / 24000 - seconds) < 0.05
    # encode reads the pictures back; their sound is not encoded, and a note says so.
    encoded = cli("encode", str(tmp_path / "clip.mp4"), "--model", clip.model, "-o", str(tmp_path / "again.safetensors"))
    assert "its sound track (aac) is not encoded" in encoded.stderr and latentfile.read(tmp_path / "again.safetensors").audio is None
    cli("decode", str(clip_path), "--no-audio", "-o", str(tmp_path / "silent.mp4"), "-q")
    import imageio_ffmpeg

    listing = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "silent.mp4")],
                             capture_output=True, text=True).stderr
    assert "Video:" in listing and "Audio:" not in listing


def test_a_video_written_by_a_sampling_command_has_the_sound_too(text_model, clip_path, tmp_path):
    """generate/extend -o x.mp4 decode with the loaded pipeline: its audio VAE and vocoder decode the sound."""
    from vidlatent.video import decode_clip

    assert decode_clip(latentfile.read(clip_path), text_model, tmp_path / "direct.mp4") == FRAMES
    assert _sound_stream(tmp_path / "direct.mp4")[0] == 24000


def test_the_sound_decodes_as_the_pipeline_decodes_it(text_model, clip_path):
    """Sound.decode (audio VAE, then vocoder) of the clip's sound equals the sound the pipeline itself
    returns for the same call with output_type="pt"."""
    clip = latentfile.read(clip_path)
    with torch.no_grad():
        output = text_model.pipeline(prompt=PROMPT, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=2,
                                     generator=torch.Generator("cpu").manual_seed(SEED), output_type="pt")
    ours = text_model.family.sound.decode(clip.audio, **text_model.sound_decoder(), device=text_model.execution_device)
    assert ours.shape == (output.audio.shape[2], 2)  # (samples, channels): (9 - 1) * 4 + 1 mel frames x 240
    assert torch.equal(torch.from_numpy(ours), output.audio[0].T.float())


def test_the_sound_of_a_silent_clip_is_refused_in_one_line(clip_path, tmp_path):
    silent = tmp_path / "silent.safetensors"
    latentfile.write(latentfile.read(clip_path).without_audio(), silent)
    result = cli("decode", str(silent), "-o", str(tmp_path / "x.wav"), code=2)
    (line,) = result.stderr.splitlines()
    assert "is a silent ltx2 clip, so there is no sound to write" in line and not (tmp_path / "x.wav").exists()


# --- edit --strength: both streams ---------------------------------------------------------------


def test_strength_regenerates_picture_and_sound_as_diffusers_does(text_model, clip_path):
    """Strength 0.5 of 2 steps: the last step of the pipeline's schedule (its sigma 0.5; the tiny
    scheduler does not shift), the clip and its sound given as latents= and audio_latents= and
    noised there by the pipeline's noise_scale, as one diffusers call."""
    from vidlatent.generation import Knobs, regenerate_streams

    clip = latentfile.read(clip_path)
    knobs = Knobs(steps=2, prompt=PROMPT)
    made = regenerate_streams(text_model, None, clip.latents, strength=0.5, knobs=knobs, seed=SEED, size=(SIZE, SIZE),
                              audio=clip.audio)
    with torch.no_grad():
        output = text_model.pipeline(prompt=PROMPT, height=SIZE, width=SIZE, num_frames=FRAMES, sigmas=[0.5], noise_scale=0.5,
                                     latents=clip.latents.permute(1, 0, 2, 3)[None], audio_latents=clip.audio.permute(1, 0, 2)[None],
                                     generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent")
    assert torch.equal(made.latents, output.frames[0].permute(1, 0, 2, 3))
    assert torch.equal(made.audio, output.audio[0].permute(1, 0, 2)) and not torch.equal(made.audio, clip.audio)
    kept = regenerate_streams(text_model, None, clip.latents, strength=0, knobs=knobs, seed=SEED, size=(SIZE, SIZE), audio=clip.audio)
    assert torch.equal(kept.latents, clip.latents) and torch.equal(kept.audio, clip.audio)


# --- extend ---------------------------------------------------------------------------------------


def test_generate_extend_decode_keeps_sound_over_the_whole_length(clip_path, tmp_path):
    extended = tmp_path / "extended.safetensors"
    cli("extend", str(clip_path), "--steps", "2", "--seed", "5", "-o", str(extended), "-q")
    clip = latentfile.read(extended)
    assert clip.frames == 3 and clip.pixel_frames == 17  # 9 frames and a segment of 9, less the frame they share
    assert clip.audio.shape[0] == round(17 / 24 * 25)  # the sound of all 17 frames
    original = latentfile.read(clip_path)
    assert torch.equal(clip.audio[: original.audio.shape[0]], original.audio)  # the clip's own sound, then the segment's
    assert clip.history[-1]["arguments"]["segments"][0]["sound_seam"] > 0  # the join of the two sounds, measured
    cli("decode", str(extended), "-o", str(tmp_path / "extended.mp4"), "-q")
    _, seconds = _sound_stream(tmp_path / "extended.mp4")
    assert abs(seconds - 17 / 24) < 0.1


def test_edit_keeps_the_sound_in_line_or_says_it_drops_it(clip_path, tmp_path):
    from vidlatent.editing import EditPlan, edit

    clip = latentfile.read(clip_path)  # 2 latent frames: 9 pixel frames, 9 latent steps of sound
    trimmed = edit(clip, EditPlan(trim=(1, 2)))  # the second latent frame: pixel frame 1 on, 1 frame
    assert trimmed.pixel_frames == 1 and torch.equal(trimmed.audio, clip.audio[1:2])
    with pytest.warns(UserWarning, match="reverse: the clip's sound is reversed with its frames"):
        backwards = edit(clip, EditPlan(reverse=True))
    assert torch.equal(backwards.audio, clip.audio.flip(0))
    with pytest.warns(UserWarning, match="edit: the clip's sound .* the result is silent"):
        assert edit(clip, EditPlan(loop=True)).audio is None  # a crossfaded loop is shorter: its sound is dropped, said


def test_extend_refuses_an_overlap_it_cannot_condition_on(clip_path, tmp_path):
    out = tmp_path / "x.safetensors"
    (line,) = cli("extend", str(clip_path), "--overlap", "2", "--seed", "1", "-o", str(out), code=2).stderr.splitlines()
    assert "--overlap 2: LTX-2 continues a clip from its last frame" in line and "use --overlap 1" in line and not out.exists()


# --- knobs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    ("5", "--stg-blocks 5: LTX-2 has 1 transformer block(s), 0 to 0; block 5 would perturb nothing"),
    ("a,b", "--stg-blocks a,b: expected transformer block numbers from 0, separated by commas"),
])
def test_a_spatio_temporal_guidance_block_the_model_lacks_is_refused(unseen, tmp_path, value, message):
    out = tmp_path / "x.safetensors"
    result = cli("generate", "--model", str(unseen), "--prompt", PROMPT, "--stg-blocks", value, "-o", str(out), code=2)
    (line,) = result.stderr.splitlines()
    assert message in line and not out.exists()
