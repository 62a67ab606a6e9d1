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
