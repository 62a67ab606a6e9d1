"""SkyReels-V2 diffusion forcing: native long generation and extend, each equal to the diffusers call.

The tiny model is copied to a folder vidlatent has never seen; vidlatent's result is compared with
the diffusers pipeline loaded from it, same arguments, same seed, ``output_type="latent"``,
bit for bit (the family contract covers the rest: encode, decode, edit, extend's bookkeeping).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from vidlatent import latentfile
from vidlatent.cli import main
from vidlatent.generation import Knobs, generate
from vidlatent.models import LoadOptions, load_pipeline

PROMPT = "a red fox runs"
SIZE = 32  # the smallest multiple of 16 the tiny transformer and VAE run at in a blink
STEPS = 2


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def unseen(tiny_skyreels: Path, tmp_path_factory) -> Path:
    return Path(shutil.copytree(tiny_skyreels, tmp_path_factory.mktemp("df") / "skyreels-df"))


@pytest.fixture(scope="module")
def clip9(unseen: Path, tmp_path_factory) -> Path:
    """A 9-frame clip of the tiny DF model (one window)."""
    path = tmp_path_factory.mktemp("clip") / "clip.safetensors"
    cli("generate", "--model", str(unseen), "--prompt", PROMPT, "--size", f"{SIZE}x{SIZE}", "--frames", "9", "--steps",
        str(STEPS), "--seed", "1", "-o", str(path), "-q")
    return path


def diffusers_pipeline(folder: Path, class_name: str):
    import diffusers

    pipeline = getattr(diffusers, class_name).from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def diffusers_call(pipeline, seed: int, **arguments):
    with torch.no_grad():
        output = pipeline(prompt=PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                          generator=torch.Generator("cpu").manual_seed(seed), output_type="latent", **arguments)
    return output.frames[0].permute(1, 0, 2, 3)  # (T, C, h, w)


def test_long_generate_equals_the_diffusion_forcing_call(unseen, tmp_path):
    """17 frames in 9-frame windows with a 5-frame history: three windows, natively."""
    path = tmp_path / "long.safetensors"
    cli("generate", "--model", str(unseen), "--prompt", PROMPT, "--size", f"{SIZE}x{SIZE}", "--frames", "17", "--window", "9",
        "--history", "5", "--steps", str(STEPS), "--seed", "3", "-o", str(path), "-q")
    expected = diffusers_call(diffusers_pipeline(unseen, "SkyReelsV2DiffusionForcingPipeline"), 3, num_frames=17,
                              base_num_frames=9, overlap_history=5)
    clip = latentfile.read(path)
    assert torch.equal(clip.latents, expected) and clip.pixel_frames == 17
    recorded = clip.history[-1]["arguments"]
    assert (recorded["window"], recorded["history"], recorded["causal_block"]) == (9, 5, 1)


def test_extend_equals_the_video_to_video_call(unseen, clip9, tmp_path):
    """The clip's last 5 frames are the history; the pipeline returns them (re-encoded) first, then
    the new frames: the written clip is the clip, then the new frames once."""
    out = tmp_path / "extended.safetensors"
    cli("extend", str(clip9), "--model", str(unseen), "--prompt", PROMPT, "--frames", "13", "--history", "5", "--steps",
        str(STEPS), "--seed", "5", "--no-drift-correction", "-o", str(out), "-q")
    original = latentfile.read(clip9)
    pipeline = diffusers_pipeline(unseen, "SkyReelsV2DiffusionForcingVideoToVideoPipeline")
    # The clip decoded as the pipeline decodes (one vae.decode of the denormalised latents; the
    # family contract test holds vidlatent's streamed decode to it pixel for pixel).
    config = pipeline.vae.config
    mean, std = (torch.tensor(values).view(1, -1, 1, 1, 1) for values in (config.latents_mean, config.latents_std))
    with torch.no_grad():
        pixels = pipeline.vae.decode(original.latents.permute(1, 0, 2, 3)[None] / (1.0 / std) + mean).sample
    (decoded,) = pipeline.video_processor.postprocess_video(video=pixels, output_type="pil")
    expected = diffusers_call(pipeline, 5, video=decoded, num_frames=13, overlap_history=5)
    extended = latentfile.read(out)
    history = 2  # latent frames of a 5-frame history
    assert expected.shape[0] == 4 and extended.frames == original.frames + 2
    assert torch.equal(extended.latents[: original.frames], original.latents)
    assert torch.equal(extended.latents[original.frames :], expected[history:])
    assert extended.history[-1]["arguments"]["overlap"] == history


def test_a_causal_block_that_leaves_frames_as_noise_is_refused_before_loading(tmp_path):
    """The hub id is known without its folder (offline here): the refusal comes before any download."""
    out = tmp_path / "x.safetensors"
    model = ["--model", "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers", "--prompt", "x", "-o", str(out)]
    result = cli("generate", *model, "--frames", "17", "--causal-block", "2", code=2)
    (line,) = result.stderr.splitlines()
    assert "--causal-block 2: must divide each window's latent frames (5)" in line
    result = cli("generate", *model, "--frames", "33", "--window", "17", "--history", "9", "--causal-block", "2", code=2)
    assert "must divide each window's latent frames (5, 5, 5)" in result.stderr
    result = cli("generate", *model, "--frames", "33", "--window", "17", "--history", "5", "--causal-block", "5", code=2)
    assert "must divide each window's latent frames (5, 5, 3)" in result.stderr
    result = cli("generate", *model, "--frames", "33", "--window", "17", "--history", "9", "--causal-block", "5", code=2)
    assert "--causal-block 5: must divide the history's 3 latent frames (--history 9)" in result.stderr
    for args, message in ((["--frames", "33", "--window", "17"], "give --history FRAMES"),
                          (["--frames", "33", "--window", "17", "--history", "17"], "--history 17: must be shorter"),
                          (["--window", "16"], "--window 16: SkyReels-V2 DF counts frames as 4k+1")):
        (line,) = cli("generate", *model, *args, code=2).stderr.splitlines()
        assert message in line, line
    assert not out.exists()


def test_jobs_in_one_process_do_not_share_a_causal_block(unseen, tmp_path, vidlatent_cmd):
    """diffusers writes causal_block_size into the transformer's config; vidlatent puts it back, so
    a second job without --causal-block, after one with it, equals the same job run as its own
    process (``vidlatent generate``, which loads the folder afresh)."""
    alone = tmp_path / "alone.safetensors"
    # The other process runs meanwhile (its start-up, importing torch, is most of its time).
    process = subprocess.Popen([*vidlatent_cmd, "generate", "--model", str(unseen), "--prompt", PROMPT, "--size",
                                f"{SIZE}x{SIZE}", "--frames", "13", "--steps", str(STEPS), "--seed", "2", "--device", "cpu",
                                "-o", str(alone), "-q"], stderr=subprocess.PIPE)
    model = load_pipeline(LoadOptions(model=str(unseen)), image=False)
    # 13 frames are 4 latent frames: two causal blocks of 2, so the block size changes the attention.
    first = generate(model, None, knobs=Knobs(prompt=PROMPT, frames=13, steps=STEPS, causal_block=2), seed=2, size=(SIZE, SIZE))
    second = generate(model, None, knobs=Knobs(prompt=PROMPT, frames=13, steps=STEPS), seed=2, size=(SIZE, SIZE))
    assert model.pipeline.transformer.config.num_frame_per_block == 1
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors.decode()
    assert torch.equal(second.latents, latentfile.read(alone).latents) and not torch.equal(first.latents, second.latents)
    assert first.history[-1]["arguments"]["causal_block"] == 2 and second.history[-1]["arguments"]["causal_block"] == 1
