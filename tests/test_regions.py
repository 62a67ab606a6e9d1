"""Editing regions with Wan VACE (edit --mask/--box/--outpaint/--reference, generate --reference and
--keyframe): each equals WanVACEPipeline given the same pixel inputs, bit for bit; every usage
check answers before the model loads. The reference calls build the video and mask lists as
docs/editing.md tells a user to, from the same frames vidlatent reads."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.conftest import data_file
from vidlatent import latentfile, media
from vidlatent.cli import main

PROMPT = "a red fox"
SIZE = 64
FRAMES = 5
STEPS = 2
SEED = 3
GRAY = (128, 128, 128)


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def vace(tiny_wan_vace, tmp_path_factory):
    """The tiny VACE model in a folder vidlatent has never seen, its diffusers pipeline, a 5-frame
    64x64 video (PNG frames, so both sides read the same pixels) and a mask."""
    from diffusers import WanVACEPipeline

    root = tmp_path_factory.mktemp("vace")
    folder = Path(shutil.copytree(tiny_wan_vace, root / "vace"))
    frames = list(media.iter_frames(data_file("bear.gif"), media.FrameSelection(frames=FRAMES), size=(SIZE, SIZE)))
    video = root / "video"
    video.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(video / f"{index:03d}.png")
    plane = np.zeros((SIZE, SIZE), np.uint8)
    plane[16:48, 20:44] = 255
    Image.fromarray(plane).save(root / "mask.png")
    pipeline = WanVACEPipeline.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    return {"folder": folder, "pipeline": pipeline, "frames": frames, "video": video, "mask": root / "mask.png", "plane": plane,
            "root": root}


def diffusers_latents(pipeline, frames: int = FRAMES, size: tuple[int, int] = (SIZE, SIZE), **conditioning) -> torch.Tensor:
    with torch.no_grad():
        output = pipeline(prompt=PROMPT, height=size[1], width=size[0], num_frames=frames, num_inference_steps=STEPS,
                          generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent", **conditioning)
    return output.frames[0].permute(1, 0, 2, 3)  # (T, C, h, w), reference frames first


def greyed(frames: list[np.ndarray], plane: np.ndarray) -> list[Image.Image]:
    """The frames with the pixels to regenerate (mask at least 128) set to gray, as VACE's inpainting takes them."""
    return [Image.fromarray(np.where((plane >= 128)[..., None], np.array(GRAY, np.uint8), frame)) for frame in frames]


def edit(vace, *flags, output: Path, source=None) -> latentfile.LatentClip:
    cli("edit", source or vace["video"], "--model", vace["folder"], "--prompt", PROMPT, "--steps", STEPS, "--seed", SEED,
        *flags, "-o", output, "-q")
    return latentfile.read(output)


def test_inpaint_with_a_mask_image_equals_diffusers(vace, tmp_path):
    clip = edit(vace, "--mask", vace["mask"], output=tmp_path / "inpainted.safetensors")
    mask = Image.fromarray(vace["plane"], "L")
    expected = diffusers_latents(vace["pipeline"], video=greyed(vace["frames"], vace["plane"]), mask=[mask] * FRAMES)
    assert torch.equal(clip.latents, expected)
    (step,) = clip.history
    (operation,) = step["arguments"]["operations"]
    assert operation["operation"] == "inpaint" and operation["mask_sha256"] == hashlib.sha256(vace["mask"].read_bytes()).hexdigest()
    assert (clip.width, clip.height, clip.pixel_frames, clip.seed, clip.family) == (SIZE, SIZE, FRAMES, SEED, "wan")


def test_a_latent_clip_is_decoded_first_and_a_box_is_its_mask(vace, tmp_path):
    """A latent clip is decoded with the model's VAE (a note says so); --box X,Y,W,H is the mask;
    --keep-unmasked puts the clip's own latents back where no pixel of a latent pixel's block is
    regenerated, and leaves VACE's elsewhere."""
    from vidlatent.codec import decode_frames

    source = tmp_path / "source.safetensors"
    cli("encode", vace["video"], "--model", vace["folder"], "--size", f"{SIZE}x{SIZE}", "-o", source, "-q")
    result = CliRunner().invoke(main, ["edit", str(source), "--model", str(vace["folder"]), "--box", "8,4,24,40", "--keep-unmasked",
                                       "--prompt", PROMPT, "--steps", str(STEPS), "--seed", str(SEED),
                                       "-o", str(tmp_path / "boxed.safetensors")])
    assert result.exit_code == 0, result.output
    assert "decoded with" in result.stderr and "first" in result.stderr
    clip, original = latentfile.read(tmp_path / "boxed.safetensors"), latentfile.read(source).latents
    pipeline = vace["pipeline"]
    decoded = list(decode_frames(pipeline_family(), original, pipeline.vae, device=torch.device("cpu")))
    plane = np.zeros((SIZE, SIZE), np.uint8)
    plane[4:44, 8:32] = 255
    expected = diffusers_latents(pipeline, video=greyed(decoded, plane), mask=[Image.fromarray(plane, "L")] * FRAMES)
    # Latent pixels are 8x8 pixel blocks: the box covers columns 1-3 and rows 0-5 of them, in every frame.
    regenerated = torch.zeros(clip.latents.shape[0], 1, SIZE // 8, SIZE // 8, dtype=torch.bool)
    regenerated[:, :, 0:6, 1:4] = True
    assert torch.equal(clip.latents, torch.where(regenerated, expected, original))
    assert [step["command"] for step in clip.history] == ["encode", "edit"]
    assert clip.history[-1]["arguments"]["operations"][0]["keep_unmasked"] is True


def pipeline_family():
    from vidlatent.families import for_pipeline_class

    return for_pipeline_class("WanVACEPipeline")


def test_outpaint_equals_diffusers_and_rounds_margins_up(vace, tmp_path):
    """--outpaint 8,8,0,4: 80x68 rounded up to 80x80 (multiples of 16), the extra rows at the bottom."""
    result = CliRunner().invoke(main, ["edit", str(vace["video"]), "--model", str(vace["folder"]), "--outpaint", "8,8,0,4",
                                       "--prompt", PROMPT, "--steps", str(STEPS), "--seed", str(SEED),
                                       "-o", str(tmp_path / "wide.safetensors")])
    assert result.exit_code == 0, result.output
    assert "80x68 rounded up to 80x80" in result.stderr
    clip = latentfile.read(tmp_path / "wide.safetensors")
    canvas = np.zeros((80, 80, 3), np.uint8)
    canvas[:] = GRAY
    video = []
    for frame in vace["frames"]:
        picture = canvas.copy()
        picture[0:64, 8:72] = frame
        video.append(Image.fromarray(picture))
    plane = np.full((80, 80), 255, np.uint8)
    plane[0:64, 8:72] = 0
    expected = diffusers_latents(vace["pipeline"], size=(80, 80), video=video, mask=[Image.fromarray(plane, "L")] * FRAMES)
    assert torch.equal(clip.latents, expected)
    assert (clip.width, clip.height) == (80, 80)
    assert clip.history[-1]["arguments"]["operations"][0]["margins"] == [8, 8, 0, 16]


def test_reference_images_are_stripped_and_recorded(vace, tmp_path):
    photo = tmp_path / "subject.png"
    Image.open(data_file("test_image.png")).convert("RGB").resize((48, 32)).save(photo)
    clip = edit(vace, "--mask", vace["mask"], "--reference", photo, output=tmp_path / "referenced.safetensors")
    mask = Image.fromarray(vace["plane"], "L")
    expected = diffusers_latents(vace["pipeline"], video=greyed(vace["frames"], vace["plane"]), mask=[mask] * FRAMES,
                                 reference_images=[Image.open(photo).convert("RGB")])
    assert expected.shape[0] == clip.latents.shape[0] + 1  # the pipeline puts the reference frame first
    assert torch.equal(clip.latents, expected[1:])
    (reference,) = clip.history[-1]["arguments"]["operations"][0]["references"]
    assert reference == {"path": str(photo.resolve()), "sha256": hashlib.sha256(photo.read_bytes()).hexdigest()}


@pytest.mark.parametrize("flags, message", [
    (["--mask", "{empty}"], "--mask: nothing to regenerate: no pixel of the mask is white"),
    (["--mask", "{mask}", "--mask-invert", "--box", "0,0,4,4"], "give one region, not both"),
    (["--mask", "{short}"], "--mask {short}: has 3 frame(s) for a clip of 5; give a mask per frame"),
    (["--box", "70,0,4,4"], "--box 70,0,4,4: starts outside the 64x64 frames"),
    (["--box", "0,0,0,4"], "the rectangle is empty"),
    (["--mask-feather", "2"], "--mask-feather shapes a mask: give --mask MASK or --box X,Y,W,H"),
    (["--outpaint", "0,600,0,0"], "--outpaint 0,600,0,0: the new size, 672x64: Wan 2.1 VACE takes at most 512 px a side"),
    (["--outpaint", "0,0,0,0"], "every margin is 0, so there is nothing to add"),
    (["--size", "48x48"], "--size 48x48: an outpaint needs a larger frame than the clip's 64x64"),
    (["--keep-unmasked"], "--keep-unmasked keeps the source outside a mask: give --mask MASK or --box X,Y,W,H"),
    (["--anchor", "top"], "--anchor top places the clip in a larger frame: give --size WxH too"),
    (["--reference", "{mask}"], "--reference on edit puts the subject into a region"),
    (["--mask", "{mask}", "--smooth", "1"], "--mask and --smooth: a region edit is an edit of its own"),
    (["--mask", "{mask}", "--frames", "4"], "--frames 4: Wan 2.1 VACE makes 4k+1 frames"),
    (["--mask", "{mask}", "--model", "tiny-random-wan"], "--mask: Wan 2.1 image-to-video cannot edit regions, keyframes or references; "
                                                         "a VACE model can (--model wan21-vace-1.3b | wan21-vace-14b | wan22-vace-fun-a14b)"),
])
def test_region_usage_errors_are_one_line_before_loading(vace, tmp_path, flags, message):
    root = vace["root"]
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(root / "empty.png")
    short = root / "short"
    if not short.exists():
        short.mkdir()
        for index in range(3):
            Image.fromarray(vace["plane"]).save(short / f"{index}.png")
    names = {"empty": root / "empty.png", "mask": vace["mask"], "short": short}
    flags = [flag.format(**names) for flag in flags]
    output = tmp_path / "out.safetensors"
    result = cli("edit", vace["video"], "--model", vace["folder"], *flags, "-o", output, code=2)
    (line,) = result.stderr.splitlines()
    assert line.startswith("vidlatent: error: ") and message.format(**names) in line, line
    assert not output.exists()


def test_masks_are_fitted_inverted_grown_and_feathered():
    """A mask of another size is brought to the frames' (with a note); the shaping runs in order."""
    from vidlatent.regions import MaskOptions, read_masks

    notes: list[str] = []
    plane = np.zeros((32, 32), np.uint8)
    plane[8:16, 8:16] = 255
    path = Path(__import__("tempfile").mkdtemp()) / "small.png"
    Image.fromarray(plane).save(path)
    (mask,) = read_masks(MaskOptions(source=str(path)), 1, (64, 64), note=notes.append)
    assert mask.shape == (64, 64) and (mask[16:32, 16:32] == 255).all() and mask.sum() == 255 * 16 * 16
    assert "32x32 brought to the clip's 64x64" in notes[0]
    grown = read_masks(MaskOptions(box=(16, 16, 8, 8), grow=2), 2, (64, 64))
    assert len(grown) == 2 and (grown[0] == 255).sum() == 12 * 12 and grown[0] is grown[1]
    inverted = read_masks(MaskOptions(box=(16, 16, 8, 8), invert=True), 1, (64, 64))[0]
    assert (inverted == 255).sum() == 64 * 64 - 64
    feathered = read_masks(MaskOptions(box=(16, 16, 8, 8), feather=2.0), 1, (64, 64))[0]
    assert 0 < feathered[15, 20] < 255 and feathered[20, 20] > 128


def pictures(root: Path) -> tuple[Path, Path]:
    a, b = root / "a.png", root / "b.png"
    if not a.exists():
        photo = Image.open(data_file("test_image.png")).convert("RGB").resize((SIZE, SIZE))
        photo.save(a)
        photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(b)
    return a, b


def test_generate_keyframes_equals_diffusers(vace, tmp_path):
    """generate --keyframe 0:a.png --keyframe 8:b.png: a 9-frame video keeping a at frame 0 and b at
    frame 8 (mask black there), the frames between gray and generated (mask white)."""
    a, b = pictures(vace["root"])
    output = tmp_path / "keyed.safetensors"
    cli("generate", "--model", vace["folder"], "--keyframe", f"0:{a}", "--keyframe", f"8:{b}", "--frames", 9, "--size", "64x64", "--prompt", PROMPT,
        "--steps", STEPS, "--seed", SEED, "-o", output, "-q")
    clip = latentfile.read(output)
    gray, black, white = Image.new("RGB", (SIZE, SIZE), GRAY), Image.new("L", (SIZE, SIZE), 0), Image.new("L", (SIZE, SIZE), 255)
    video = [Image.open(a).convert("RGB"), *[gray] * 7, Image.open(b).convert("RGB")]
    expected = diffusers_latents(vace["pipeline"], frames=9, video=video, mask=[black, *[white] * 7, black])
    assert torch.equal(clip.latents, expected)
    recorded = clip.history[-1]["arguments"]["keyframes"]
    assert [(each["frame"], each["path"]) for each in recorded] == [(0, str(a.resolve())), (8, str(b.resolve()))]
    # replay re-runs it from the record: the keyframes by path (checked by SHA-256).
    (line,) = cli("replay", output, "--dry-run").stdout.splitlines()
    assert f"--keyframe 0:{a.resolve()} --keyframe 8:{b.resolve()}" in line and "--seed 3" in line


def test_generate_with_a_reference_equals_diffusers(vace, tmp_path):
    """generate IMAGE --reference R: IMAGE is the first frame kept, R the pipeline's reference image,
    whose latent frame is left out of the clip."""
    a, b = pictures(vace["root"])
    output = tmp_path / "referenced.safetensors"
    cli("generate", a, "--model", vace["folder"], "--reference", b, "--frames", FRAMES, "--size", "64x64", "--prompt", PROMPT, "--steps", STEPS,
        "--seed", SEED, "-o", output, "-q")
    clip = latentfile.read(output)
    gray, black, white = Image.new("RGB", (SIZE, SIZE), GRAY), Image.new("L", (SIZE, SIZE), 0), Image.new("L", (SIZE, SIZE), 255)
    expected = diffusers_latents(vace["pipeline"], video=[Image.open(a).convert("RGB"), *[gray] * (FRAMES - 1)],
                                 mask=[black, *[white] * (FRAMES - 1)], reference_images=[Image.open(b).convert("RGB")])
    assert torch.equal(clip.latents, expected[1:]) and clip.pixel_frames == FRAMES
    assert clip.history[-1]["arguments"]["references"][0]["sha256"] == hashlib.sha256(b.read_bytes()).hexdigest()


@pytest.mark.parametrize("flags, message", [
    (["--keyframe", "9:{a}"], "--keyframe 9:{a}: frame 9 is past the video's last, 8"),
    (["--keyframe", "0:{a}", "--keyframe", "0s:{b}"], "both are frame 0; give one image a frame"),
    (["--keyframe", "x:{a}"], "expected INDEX:IMAGE"),
    (["{a}", "--keyframe", "4:{b}"], "give the first frame as --keyframe 0:IMAGE"),
    (["--keyframe", "4:{a}", "--model", "tiny-random-wan"], "--keyframe: Wan 2.1 image-to-video cannot edit regions"),
])
def test_keyframe_usage_errors(vace, tmp_path, flags, message):
    a, b = pictures(vace["root"])
    flags = [flag.format(a=a, b=b) for flag in flags]
    result = cli("generate", "--model", vace["folder"], "--frames", 9, *flags, "-o", tmp_path / "out.safetensors", code=2)
    (line,) = result.stderr.splitlines()
    assert message.format(a=a, b=b) in line, line


def test_interpolate_keyframes_on_vace_equals_diffusers(vace, tmp_path):
    """interpolate A B --transition F --keyframes: A's last frame and B's first kept, the frames
    between generated, with VACE's video and mask."""
    from vidlatent.codec import decode_frame

    encoded = tmp_path / "A.safetensors"  # the video encoded; bridged to itself: its last frame to its first
    cli("encode", vace["video"], "--model", vace["folder"], "--size", f"{SIZE}x{SIZE}", "-o", encoded, "-q")
    clips = [encoded, encoded]
    output = tmp_path / "bridge.safetensors"
    cli("interpolate", *clips, "--transition", FRAMES, "--keyframes", "--model", vace["folder"], "--prompt", PROMPT, "--steps",
        STEPS, "--seed", SEED, "-o", output, "-q")
    pipeline, family = vace["pipeline"], pipeline_family()
    first = Image.fromarray(decode_frame(family, latentfile.read(clips[0]).latents, pipeline.vae, device=torch.device("cpu"), index=-1))
    last = Image.fromarray(decode_frame(family, latentfile.read(clips[1]).latents, pipeline.vae, device=torch.device("cpu"), index=0))
    gray, black, white = Image.new("RGB", (SIZE, SIZE), GRAY), Image.new("L", (SIZE, SIZE), 0), Image.new("L", (SIZE, SIZE), 255)
    expected = diffusers_latents(pipeline, video=[first, *[gray] * (FRAMES - 2), last], mask=[black, *[white] * (FRAMES - 2), black])
    assert torch.equal(latentfile.read(output).latents, expected)


def test_a_mask_folder_gives_each_frame_its_mask(tmp_path):
    from vidlatent.regions import MaskOptions, read_masks

    for index, columns in enumerate([(0, 16), (16, 32), (32, 48)]):
        plane = np.zeros((SIZE, SIZE), np.uint8)
        plane[:, columns[0] : columns[1]] = 255
        Image.fromarray(plane).save(tmp_path / f"m{index}.png")
    masks = read_masks(MaskOptions(source=str(tmp_path)), 2, (SIZE, SIZE))  # a mask per frame, the first 2
    assert len(masks) == 2 and (masks[0][:, :16] == 255).all() and (masks[1][:, 16:32] == 255).all() and masks[1][:, :16].max() == 0


@pytest.mark.parametrize("anchor, offset", [("center", (8, 16)), ("top-left", (0, 0)), ("bottom-right", (16, 32)), ("left", (0, 16)),
                                            ("top", (8, 0))])
def test_size_and_anchor_place_the_clip(anchor, offset):
    from vidlatent.regions import plan_canvas

    canvas = plan_canvas((64, 32), 16, size=(80, 64), anchor=anchor)
    assert canvas.size == (80, 64) and canvas.offset == offset
    assert canvas.margins((64, 32)) == (offset[0], 16 - offset[0], offset[1], 32 - offset[1])
