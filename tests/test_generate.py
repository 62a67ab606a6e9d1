"""generate and extend on a tiny model loaded from a folder, proved against diffusers itself."""

from __future__ import annotations

import subprocess
import sys

import imageio_ffmpeg
import pytest
import torch
from click.testing import CliRunner
from diffusers.utils import load_image
from PIL import Image

from tests.conftest import data_file, resized_photo
from vidlatent import latent_ops, latentfile
from vidlatent.cli import main
from vidlatent.generation import ExtendOptions, Knobs, extend, file_sha256, generate
from vidlatent.models import LoadOptions, load_pipeline


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    """The shared test image at 128x64, a size the tiny model runs in a blink; no resize needed."""
    return resized_photo(tmp_path_factory.mktemp("photo"), (128, 64))


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return load_pipeline(LoadOptions(model=str(tiny_model)))


def cli(*args: str, input: bytes | None = None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def reference_latents(pipe, image_path: str, seed: int, **arguments) -> torch.Tensor:
    image = load_image(image_path)
    out = pipe(image, height=image.height, width=image.width, generator=torch.Generator("cpu").manual_seed(seed),
               output_type="latent", **arguments)
    return out.frames[0]


def test_generate_equals_diffusers_with_every_knob(tmp_path, tiny_model, reference, photo):
    out = tmp_path / "clip.safetensors"
    cli("generate", photo, "--model", str(tiny_model), "--size", "128x64", "--seed", "7", "--frames", "5", "--steps", "3", "--fps", "6",
        "--motion", "100", "--noise-aug", "0.05", "--min-guidance", "1.5", "--max-guidance", "2.5", "-o", str(out), "-q")
    expected = reference_latents(reference, photo, 7, num_frames=5, num_inference_steps=3, fps=6, motion_bucket_id=100,
                                 noise_aug_strength=0.05, min_guidance_scale=1.5, max_guidance_scale=2.5)
    assert torch.equal(latentfile.read(out).latents, expected)


def test_generate_defaults_are_the_pipelines(tmp_path, tiny_model, reference, photo):
    out = tmp_path / "clip.safetensors"
    # --size is the one knob vidlatent always sets (the pipeline's default would stretch to 1024x576).
    cli("generate", photo, "--model", str(tiny_model), "--size", "128x64", "--seed", "3", "-o", str(out), "-q")
    clip = latentfile.read(out)
    assert torch.equal(clip.latents, reference_latents(reference, photo, 3))
    knobs = clip.history[-1]["arguments"]
    assert (knobs["frames"], knobs["steps"], knobs["fps"], knobs["motion"]) == (14, 25, 7, 127)
    assert (knobs["noise_aug"], knobs["min_guidance"], knobs["max_guidance"]) == (0.02, 1.0, 3.0)
    assert knobs["image_sha256"] == file_sha256(open(photo, "rb").read())
    assert (clip.seed, clip.fps, clip.width, clip.height) == (3, 7.0, 128, 64)


def test_num_videos_use_consecutive_seeds(tmp_path, tiny_model, reference, photo):
    cli("generate", photo, "--model", str(tiny_model), "--size", "128x64", "--seed", "10", "--num-videos", "2", "--frames", "3", "--steps", "2",
        "-o", str(tmp_path / "{stem}-{index}.safetensors"), "-q")
    for index in range(2):
        clip = latentfile.read(tmp_path / f"photo-{index}.safetensors")
        assert clip.seed == 10 + index
        assert torch.equal(clip.latents, reference_latents(reference, photo, 10 + index, num_frames=3, num_inference_steps=2))


def test_without_seed_a_random_one_is_printed_and_recorded(tmp_path, tiny_model, photo):
    result = cli("generate", photo, "--model", str(tiny_model), "--frames", "2", "--steps", "1", "-o", str(tmp_path / "c.safetensors"))
    seed = latentfile.read(tmp_path / "c.safetensors").seed
    assert seed is not None and f"seed {seed}" in result.stderr


def test_same_command_twice_gives_identical_bytes(tmp_path, tiny_model, vidlatent_cmd):
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.safetensors"
        subprocess.run([*vidlatent_cmd, "generate", str(data_file("test_image.png")), "--model", "tiny-random", "--frames", "6",
                        "--seed", "1", "-o", str(out), "-q"], check=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_generate_video_and_latents_in_one_run(tmp_path, tiny_model, photo):
    cli("generate", photo, "--model", "tiny-random", "--seed", "1", "--frames", "4", "--steps", "2",
        "-o", str(tmp_path / "v.mp4"), "--latent-out", str(tmp_path / "v.safetensors"), "-q")
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "v.mp4"))[0] == 4
    assert latentfile.read(tmp_path / "v.safetensors").frames == 4


def test_default_output_is_next_to_the_image(tmp_path, tiny_model, photo):
    image = tmp_path / "shot.png"
    image.write_bytes(open(photo, "rb").read())
    cli("generate", str(image), "--model", "tiny-random", "--seed", "1", "--frames", "2", "--steps", "1", "-q")
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "shot.mp4"))[0] == 2


def test_batch_from_a_folder_into_a_folder(tmp_path, tiny_model, photo):
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("b.png", "a.png"):
        (shots / name).write_bytes(open(photo, "rb").read())
    cli("generate", str(shots), "--model", "tiny-random", "--seed", "5", "--frames", "2", "--steps", "1",
        "--num-videos", "2", "-o", str(tmp_path / "out"), "-q")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-0.mp4", "a-1.mp4", "b-0.mp4", "b-1.mp4"]


def test_image_from_stdin(tmp_path, tiny_model, reference, photo):
    out = tmp_path / "s.safetensors"
    cli("generate", "-", "--model", str(tiny_model), "--size", "128x64", "--seed", "2", "--frames", "3", "--steps", "2", "-o", str(out), "-q",
        input=open(photo, "rb").read())
    assert torch.equal(latentfile.read(out).latents, reference_latents(reference, photo, 2, num_frames=3, num_inference_steps=2))


def test_default_size_keeps_aspect_at_native_area(tmp_path, tiny_model):
    out = tmp_path / "c.safetensors"
    cli("generate", str(data_file("test_image.png")), "--model", "tiny-random", "--seed", "1", "--frames", "2", "--steps", "1",
        "-o", str(out), "-q")
    clip = latentfile.read(out)
    assert (clip.width, clip.height) == (64, 64)  # tiny-random's native area is 64x64
    assert tuple(clip.latents.shape) == (2, 4, 8, 8)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "100x64"], "multiples of 64"),
        (["--motion", "300"], "--motion 300: must be between 1 and 255"),
        (["--frames", "0"], "--frames 0"),
        (["--steps", "0"], "--steps 0"),
        (["--noise-aug", "-1"], "--noise-aug -1"),
        (["-o", "a.txt"], "cannot write '.txt'"),
        (["--num-videos", "2", "-o", "one.mp4"], "there are 2 outputs"),
        (["-o", "{nope}.mp4"], "{stem}, {index} and {name}"),
    ],
)
def test_bad_arguments_fail_before_the_model_loads(tmp_path, photo, args, message):
    # In a fresh process, to see that diffusers was never imported: the check is cheap.
    code = (
        "import sys; from click.testing import CliRunner; from vidlatent.cli import main\n"
        f"r = CliRunner().invoke(main, ['generate', {photo!r}, '--model', 'tiny-random', *{args!r}])\n"
        "print(r.exit_code); print(r.stderr.strip()); print('diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path).stdout.splitlines()
    assert out[0] == "2", out
    assert message in out[1] and out[1].startswith("vidlatent: error: ")
    assert out[2] == "False"
    assert list(tmp_path.iterdir()) == []


def test_unreadable_image_is_refused(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = CliRunner().invoke(main, ["generate", str(bad), "--model", "tiny-random"])
    assert result.exit_code == 2 and "bad.png" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]


def test_overlap_is_pinned_exactly_and_not_repeated(loaded, photo):
    start = generate(loaded, Image.open(photo), knobs=Knobs(frames=5, steps=3), seed=1)
    result = extend(loaded, start, knobs=Knobs(frames=5, steps=3), options=ExtendOptions(times=2, overlap=2), seed=4)
    assert result.frames == 5 + 2 * (5 - 2)
    assert torch.equal(result.latents[:5], start.latents)
    segments = result.history[-1]["arguments"]["segments"]
    assert [s["seed"] for s in segments] == [4, 5]
    assert [step["command"] for step in result.history] == ["generate", "extend"]


def test_pinned_frames_end_equal_to_the_known_frames(loaded, photo):
    from vidlatent.generation import _pin_overlap, last_frame_image, sample

    start = generate(loaded, Image.open(photo), knobs=Knobs(frames=4, steps=3), seed=1)
    known = start.latents[-2:]
    segment = sample(loaded, last_frame_image(start.latents, loaded), knobs=Knobs(frames=4, steps=3), seed=9,
                     on_step=_pin_overlap(known, 9))
    assert torch.equal(segment[:2], known)  # sigma is 0 after the last step: the seam is exact


def test_drift_correction_keeps_segments_within_bound(loaded, photo):
    start = generate(loaded, Image.open(photo), knobs=Knobs(frames=4, steps=3), seed=1)
    reference = latent_ops.ChannelStats.of(start.latents)
    knobs = Knobs(frames=4, steps=3)

    def segment_drifts(correct: bool) -> list[latent_ops.Drift]:
        result = extend(loaded, start, knobs=knobs, options=ExtendOptions(times=3, overlap=1, drift_correction=correct), seed=2)
        return [latent_ops.drift(result.latents[4 + 3 * i : 4 + 3 * (i + 1)], reference, relative=True) for i in range(3)]

    # The drift rule (docs/extend.md): drift beyond what real footage shows is removed, change within
    # it is kept, so corrected segments lie within the band and uncorrected ones here do not.
    corrected, uncorrected = segment_drifts(True), segment_drifts(False)
    assert all(latent_ops.NATURAL_DRIFT.holds(d) for d in corrected), corrected
    assert not all(latent_ops.NATURAL_DRIFT.holds(d) for d in uncorrected), uncorrected


def test_extend_refuses_another_latent_space(tmp_path, loaded, other_tiny_model, photo):
    clip = generate(loaded, Image.open(photo), knobs=Knobs(frames=2, steps=1), seed=1)
    latentfile.write(clip, tmp_path / "c.safetensors")
    result = CliRunner().invoke(main, ["extend", str(tmp_path / "c.safetensors"), "--model", str(other_tiny_model),
                                       "-o", str(tmp_path / "e.safetensors")])
    assert result.exit_code == 2 and "belong to another VAE" in result.stderr
    assert not (tmp_path / "e.safetensors").exists()


def test_extend_overlap_must_be_shorter_than_the_segment(tmp_path, loaded, photo):
    clip = generate(loaded, Image.open(photo), knobs=Knobs(frames=2, steps=1), seed=1)
    latentfile.write(clip, tmp_path / "c.safetensors")
    result = CliRunner().invoke(main, ["extend", str(tmp_path / "c.safetensors"), "--frames", "3", "--overlap", "3"])
    assert result.exit_code == 2 and "--overlap 3" in result.stderr


def test_extend_a_video(tmp_path, tiny_model):
    cli("extend", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "4", "--steps", "2", "--seed", "1",
        "-o", str(tmp_path / "bear.safetensors"), "-q")
    clip = latentfile.read(tmp_path / "bear.safetensors")
    assert clip.frames == 21 + (4 - 2)
    assert [step["command"] for step in clip.history] == ["encode", "extend"]


def test_generate_extend_decode_pipe(tmp_path, tiny_model, vidlatent_cmd):
    """The issue's own chain: three processes, latents flowing through pipes."""
    out = tmp_path / "long.mp4"
    chain = (
        f"{' '.join(vidlatent_cmd)} generate {data_file('test_image.png')} --model tiny-random --frames 6 --seed 1 -o - -q"
        f" | {' '.join(vidlatent_cmd)} extend - --times 2 --steps 5 -o - -q"
        f" | {' '.join(vidlatent_cmd)} decode - -o {out} -q"
    )
    subprocess.run(["bash", "-o", "pipefail", "-c", chain], check=True)
    # 6 generated frames, then 2 segments as long as the clip's own (6) less the 2 overlapping ones.
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 6 + 2 * (6 - 2)
