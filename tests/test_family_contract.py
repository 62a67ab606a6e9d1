"""The family contract: one checklist that every registered family's tiny models pass.

The cases come from the registry (``families.all_families()`` and each family's ``tiny`` names),
so a new family with a tiny model is checked here as soon as it is registered. For each tiny
model, copied to a folder vidlatent has never seen:

- generate equals, bit for bit, the diffusers pipeline loaded from that folder (``REFERENCES``),
  its sound too where the family makes sound (LTX-2);
- encode equals the VAE's own encode with the pipeline's normalisation, and decode equals one
  ``vae.decode`` call with the pipeline's denormalisation and post-processing, pixel for pixel;
- edit strength 0 gives the clip back and strength 1 is generate;
- extend grows the clip by the expected latent frames and records it;
- another family's clip is refused in one line;
- a ComfyUI ``.latent`` round trip keeps the clip (where the family declares a ComfyUI format);
- capabilities (inversion, latent upsampling): what the families without them do today.

What a new family adds here is its row in ``REFERENCES``: how diffusers itself runs it
(docs/adding-a-family.md). Every case conditions on an image (every tiny model animates one).
The tests go through the library and the CLI, not the family's methods; of the family they read
only what it declares as data (name, title, tiny, comfyui, and knob_arguments in ``knobs_for``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.conftest import data_file, resized_photo
from vidlatent import families, latentfile, media, video
from vidlatent.cli import main
from vidlatent.generation import ExtendOptions, Knobs, extend, regenerate
from vidlatent.knobs import FLAGS
from vidlatent.latentfile import LatentClip
from vidlatent.models import LoadedModel, LoadOptions, describe, load_pipeline

if TYPE_CHECKING:
    from vidlatent.families.base import Family

PROMPT = "a red fox runs"
SEED = 4
STEPS = 2
LATENT_FRAMES = 2  # every clip here: SVD 2 pixel frames, Wan 5, LTX and LTX-2 9
MIN_SIDE = 64  # pixels: the clips are the smallest squares of at least this side the model takes
VIDEO = "bear.gif"  # what encode reads (shared test data)

# Every registered tiny model that animates one image, and its family, from the registry. A model
# that needs a last frame too (tiny-random-wan-flf2v: generate without --last-image and extend are
# refused) is its family's pipeline and VAE with another condition, proved against diffusers in its
# family's tests (test_wan.py).
TINY = {name: family for family in families.all_families() for name in family.tiny
        if not family.tiny_spec(name).last_image or family.tiny_spec(name).last_image_optional}


# --- how diffusers itself runs each tiny model (a new family adds its row) -------------------


def _per_channel(values: Any) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32).view(1, -1, 1, 1, 1)


def _svd_encode(pipeline: Any, frames: list[Image.Image]) -> torch.Tensor:
    # The pipeline's image pre-processing, then its per-frame VAE: the posterior's mode times the
    # scaling factor that the pipeline's decode_latents divides by.
    width, height = frames[0].size
    pixels = pipeline.video_processor.preprocess(frames, height=height, width=width)  # (F, 3, H, W)
    return pipeline.vae.encode(pixels).latent_dist.mode() * pipeline.vae.config.scaling_factor  # (F, C, h, w)


def _svd_decode(pipeline: Any, latents: torch.Tensor, clip: LatentClip) -> torch.Tensor:
    # The pipeline's own decode_latents, all frames in one vae.decode call.
    frames = int(latents.shape[0])
    return pipeline.decode_latents(latents[None], num_frames=frames, decode_chunk_size=frames)  # (1, 3, F, H, W)


def _wan_encode(pipeline: Any, frames: list[Image.Image]) -> torch.Tensor:
    # WanVideoToVideoPipeline.prepare_latents: the posterior's mode (argmax), (z - mean) * (1 / std).
    width, height = frames[0].size
    video_in = pipeline.video_processor.preprocess_video(frames, height=height, width=width)  # (1, 3, N, H, W)
    raw = pipeline.vae.encode(video_in).latent_dist.mode()  # (1, C, T, h, w)
    config = pipeline.vae.config
    normalized = (raw - _per_channel(config.latents_mean)) * (1.0 / _per_channel(config.latents_std))
    return normalized[0].permute(1, 0, 2, 3)


def _wan_decode(pipeline: Any, latents: torch.Tensor, clip: LatentClip) -> torch.Tensor:
    # WanPipeline.__call__'s decode: latents / (1 / std) + mean, one vae.decode.
    config = pipeline.vae.config
    z = latents.permute(1, 0, 2, 3)[None] / (1.0 / _per_channel(config.latents_std)) + _per_channel(config.latents_mean)
    return pipeline.vae.decode(z).sample  # (1, 3, N, H, W)


def _ltx_encode(pipeline: Any, frames: list[Image.Image]) -> torch.Tensor:
    # LTXConditionPipeline's own _normalize_latents of the posterior's mode.
    width, height = frames[0].size
    vae = pipeline.vae
    video_in = pipeline.video_processor.preprocess_video(frames, height=height, width=width)  # (1, 3, N, H, W)
    raw = vae.encode(video_in).latent_dist.mode()  # (1, C, T, h, w)
    return pipeline._normalize_latents(raw, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)[0].permute(1, 0, 2, 3)


def _ltx_decode(pipeline: Any, latents: torch.Tensor, clip: LatentClip) -> torch.Tensor:
    # LTXConditionPipeline.__call__'s decode, with the decode timestep and noise scale the clip's
    # generation recorded and the noise of torch.Generator("cpu").manual_seed(clip's seed).
    vae = pipeline.vae
    recorded = clip.history[-1]["arguments"]
    z = pipeline._denormalize_latents(latents.permute(1, 0, 2, 3)[None], vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    noise = torch.randn(z.shape, generator=torch.Generator("cpu").manual_seed(clip.seed), dtype=z.dtype)
    scale = torch.tensor([recorded["decode_noise_scale"]], dtype=z.dtype)[:, None, None, None, None]
    z = (1 - scale) * z + scale * noise
    return vae.decode(z, torch.tensor([recorded["decode_timestep"]], dtype=z.dtype)).sample  # (1, 3, N, H, W)


def _image_argument(image: Image.Image, frames: int) -> dict[str, Any]:
    return {"image": image}


def _vace_first_frame(image: Image.Image, frames: int) -> dict[str, Any]:
    # VACE takes no image=: the image is the first frame of its video, kept (mask black), the rest
    # gray and regenerated (mask white), as diffusers' WanVACEPipeline example builds them.
    gray = Image.new("RGB", image.size, (128, 128, 128))
    black, white = Image.new("L", image.size, 0), Image.new("L", image.size, 255)
    return {"video": [image, *[gray] * (frames - 1)], "mask": [black, *[white] * (frames - 1)]}


def _ltx2_encode(pipeline: Any, frames: list[Image.Image]) -> torch.Tensor:
    # LTX-2's clips hold raw VAE latents (its pipelines return them denormalised): the posterior's mode.
    width, height = frames[0].size
    video_in = pipeline.video_processor.preprocess_video(frames, height=height, width=width)  # (1, 3, N, H, W)
    return pipeline.vae.encode(video_in).latent_dist.mode()[0].permute(1, 0, 2, 3)


def _ltx2_decode(pipeline: Any, latents: torch.Tensor, clip: LatentClip) -> torch.Tensor:
    # LTX2Pipeline.__call__'s decode of its denormalised latents (a VAE without timestep conditioning).
    return pipeline.vae.decode(latents.permute(1, 0, 2, 3)[None], None).sample  # (1, 3, N, H, W)


FRAMES_FIRST = "(F, C, h, w)"  # output_type="latent" gives frames[0] in this layout (SVD)
CHANNELS_FIRST = "(C, T, h, w)"  # video VAEs' layout (Wan, LTX)


@dataclass(frozen=True)
class Reference:
    """How diffusers runs one tiny model, written as its pipelines do it.

    Args:
        encode: (pipeline, RGB frames) -> (T, C, h, w): its VAE's encode and the pipelines' normalisation.
        decode: (pipeline, (T, C, h, w) latents, the clip) -> (1, 3, N, H, W) in [-1, 1]: one
            ``vae.decode`` call with the pipeline's denormalisation (and decode noise).
        layout: the layout of ``output.frames[0]`` of an ``output_type="latent"`` call.
        arguments: the reference call's arguments besides image, height, width, num_frames,
            num_inference_steps, generator and output_type (diffusers' names; vidlatent passes
            them as the knobs that ``family.knob_arguments`` maps to them).
        pipeline: the diffusers class; None for the one the folder's model_index.json names.
        condition: (image, pixel frames) -> the call's arguments that carry the image.
    """

    encode: Callable[[Any, list[Image.Image]], torch.Tensor]
    decode: Callable[[Any, torch.Tensor, LatentClip], torch.Tensor]
    layout: str
    arguments: dict[str, Any] = field(default_factory=dict)
    pipeline: str | None = None
    condition: Callable[[Image.Image, int], dict[str, Any]] = _image_argument


REFERENCES = {
    "tiny-random": Reference(_svd_encode, _svd_decode, FRAMES_FIRST),
    "tiny-random-wan": Reference(_wan_encode, _wan_decode, CHANNELS_FIRST, {"prompt": PROMPT}),
    # A TI2V folder is saved as WanPipeline (text only); with an image it runs as WanImageToVideoPipeline.
    "tiny-random-wan22": Reference(_wan_encode, _wan_decode, CHANNELS_FIRST, {"prompt": PROMPT}, "WanImageToVideoPipeline"),
    "tiny-random-ltx": Reference(_ltx_encode, _ltx_decode, CHANNELS_FIRST, {"prompt": PROMPT}),
    # VACE writes Wan latents; its image is the first frame of a video it keeps.
    "tiny-random-wan-vace": Reference(_wan_encode, _wan_decode, CHANNELS_FIRST, {"prompt": PROMPT},
                                      condition=_vace_first_frame),
    # SkyReels-V2 DF: Wan 2.1's VAE and normalisation; its folder names the text-to-video class, and
    # with an image it runs as the image-to-video one.
    "tiny-random-skyreels-df": Reference(_wan_encode, _wan_decode, CHANNELS_FIRST, {"prompt": PROMPT},
                                         "SkyReelsV2DiffusionForcingImageToVideoPipeline"),
    # An LTX2Pipeline folder (text to video and sound); with an image it runs as LTX2ImageToVideoPipeline.
    "tiny-random-ltx2": Reference(_ltx2_encode, _ltx2_decode, CHANNELS_FIRST, {"prompt": PROMPT}, "LTX2ImageToVideoPipeline"),
}

# --- knobs: the one place that reads a family's knob table ------------------------------------


def knobs_for(family: Family, arguments: dict[str, Any]) -> dict[str, Any]:
    """The vidlatent knobs (Knobs fields) that pass ``arguments`` to ``family``'s pipeline."""
    knob_of = {argument: knob for knob, argument in family.knob_arguments.items()}
    missing = sorted(set(arguments) - set(knob_of))
    assert not missing, f"{family.name}: no knob passes {missing} to its pipeline"
    return {knob_of[argument]: value for argument, value in arguments.items()}


# --- one tiny model per module-scoped case --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A tiny model in a folder vidlatent has never seen, its diffusers reference and its clip."""

    name: str
    family: Family
    title: str  # the model's title in messages (its spec's)
    reference: Reference
    folder: Path
    size: tuple[int, int]  # (width, height)
    frames: int  # pixel frames of LATENT_FRAMES latent frames
    photo: Path
    knobs: dict[str, Any]  # Knobs fields of the reference's arguments
    clip_path: Path  # what vidlatent generate wrote
    pipeline: Any  # the diffusers reference pipeline, loaded from ``folder``
    expected: torch.Tensor  # (T, C, h, w): what the diffusers pipeline generates
    expected_audio: torch.Tensor | None  # (L, C, M): its sound, for a family that makes sound (LTX-2)
    model: LoadedModel  # vidlatent's pipeline, loaded from ``folder``, for the library calls

    @property
    def clip(self) -> LatentClip:
        return latentfile.read(self.clip_path)

    @property
    def image(self) -> Image.Image:
        return Image.open(self.photo)

    @property
    def size_flag(self) -> str:
        return f"{self.size[0]}x{self.size[1]}"

    def flags(self) -> list[str]:
        return flags_of(self.knobs)


def flags_of(knobs: dict[str, Any]) -> list[str]:
    """Knobs as command-line flags: {"prompt": "a fox"} -> ["--prompt", "a fox"]."""
    return [item for knob, value in knobs.items() for item in (FLAGS[knob], str(value))]


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result


def reference_latents(pipeline: Any, reference: Reference, image: Image.Image, size: tuple[int, int],
                      frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The diffusers pipeline's own generation, (T, C, h, w), and its sound (L, C, M) where it makes
    sound (an ``audio`` output of (1, C, L, M)), else None."""
    with torch.no_grad():
        output = pipeline(height=size[1], width=size[0], num_frames=frames, num_inference_steps=STEPS,
                          generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent",
                          **reference.condition(image, frames), **reference.arguments)
    latents = output.frames[0]
    audio = getattr(output, "audio", None)
    return (latents if reference.layout == FRAMES_FIRST else latents.permute(1, 0, 2, 3),
            audio[0].permute(1, 0, 2) if audio is not None else None)


@pytest.fixture(scope="module", params=sorted(TINY))
def case(request, tmp_path_factory) -> Case:
    """One tiny model: copied to an unseen folder, generated by vidlatent's CLI and by diffusers."""
    import diffusers

    from vidlatent.tiny import tiny_random_path

    name = request.param
    if name not in REFERENCES:
        pytest.fail(f"{name}: add its row to REFERENCES in {Path(__file__).name} (how diffusers runs it)")
    reference, family = REFERENCES[name], TINY[name]
    root = tmp_path_factory.mktemp(name)
    # The session's build (the folder the conftest fixtures return), copied where vidlatent never looked.
    folder = Path(shutil.copytree(tiny_random_path(name), root / name))
    spec = describe(str(folder)).spec
    side = -(-MIN_SIDE // spec.size_multiple) * spec.size_multiple  # 64 for every family today
    size, frames = (side, side), spec.frame_rule.pixel_frames(LATENT_FRAMES)
    photo = Path(resized_photo(root, size))
    knobs = knobs_for(family, reference.arguments)
    clip_path = root / "clip.safetensors"
    cli("generate", str(photo), "--model", str(folder), "--size", f"{side}x{side}", "--frames", str(frames), "--steps", str(STEPS),
        "--seed", str(SEED), *flags_of(knobs), "-o", str(clip_path), "-q")

    class_name = reference.pipeline or json.loads((folder / "model_index.json").read_text())["_class_name"]
    pipeline = getattr(diffusers, class_name).from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    expected, expected_audio = reference_latents(pipeline, reference, Image.open(photo), size, frames)
    return Case(name=name, family=family, title=spec.title, reference=reference, folder=folder, size=size, frames=frames,
                photo=photo, knobs=knobs, clip_path=clip_path, pipeline=pipeline, expected=expected,
                expected_audio=expected_audio, model=load_pipeline(LoadOptions(model=str(folder))))


def test_every_tiny_model_has_a_reference_row():
    assert set(REFERENCES) == set(TINY), (f"no REFERENCES row for {sorted(set(TINY) - set(REFERENCES))}; "
                                          f"rows for unregistered models {sorted(set(REFERENCES) - set(TINY))}")


# --- the contract ---------------------------------------------------------------------------------


def test_generate_equals_diffusers(case):
    clip = case.clip
    assert torch.equal(clip.latents, case.expected)
    # The sound too, where the pipeline makes it (LTX-2): the file's ``audio``, time first.
    assert (clip.audio is None) == (case.expected_audio is None) == (case.family.sound is None)
    assert clip.audio is None or torch.equal(clip.audio, case.expected_audio)
    assert clip.latents.shape[0] == LATENT_FRAMES and clip.latents.std() > 0
    assert (clip.family, clip.pixel_frames, (clip.width, clip.height), clip.seed) == (case.family.name, case.frames, case.size, SEED)
    assert clip.history[-1]["command"] == "generate"


def test_encode_equals_the_vae_with_the_pipelines_normalisation(case):
    """vidlatent's streamed encode of a video vs the reference VAE's encode of the same frames."""
    selection = media.FrameSelection(frames=case.frames)
    plan = video.plan_encode(data_file(VIDEO), selection=selection, size=case.size)
    ours = video.encode_video(plan, case.model)
    frames = [Image.fromarray(frame) for frame in media.iter_frames(data_file(VIDEO), selection, size=case.size)]
    assert len(frames) == case.frames
    with torch.no_grad():
        expected = case.reference.encode(case.pipeline, frames)
    assert torch.equal(ours.latents, expected)
    assert (ours.frames, ours.latent_space) == (LATENT_FRAMES, case.clip.latent_space)


def test_decode_equals_one_vae_decode(case, tmp_path):
    """vidlatent's streamed decode of the generated clip, written as PNG frames, vs one
    ``vae.decode`` of the whole clip and the pipeline's own post-processing, pixel for pixel."""
    clip = case.clip
    written = video.decode_clip(clip, case.model, tmp_path / "frames")
    ours = np.stack([np.asarray(Image.open(path)) for path in sorted((tmp_path / "frames").glob("*.png"))])
    with torch.no_grad():
        decoded = case.reference.decode(case.pipeline, clip.latents, clip)
    (pictures,) = case.pipeline.video_processor.postprocess_video(video=decoded, output_type="pil")
    expected = np.stack([np.asarray(picture) for picture in pictures])
    assert written == case.frames and ours.shape == (case.frames, case.size[1], case.size[0], 3)
    np.testing.assert_array_equal(ours, expected)
    assert ours.std() > 1.0  # random weights still make a picture with some range


def test_strength_zero_is_the_clip_and_one_is_generate(case):
    clip, knobs = case.clip, Knobs(steps=STEPS, **case.knobs)
    assert torch.equal(regenerate(case.model, case.image, clip.latents, strength=0, knobs=knobs, seed=SEED), clip.latents)
    assert torch.equal(regenerate(case.model, case.image, clip.latents, strength=1, knobs=knobs, seed=SEED), case.expected)
    # Part-way down the schedule: the family's own tail runs and changes the clip.
    half = regenerate(case.model, case.image, clip.latents, strength=0.5, knobs=knobs, seed=SEED)
    assert half.shape == clip.latents.shape and torch.isfinite(half).all() and not torch.equal(half, clip.latents)


def test_extend_grows_the_clip_and_records_it(case):
    clip = case.clip
    times, overlap = 1, 1
    result = extend(case.model, clip, knobs=Knobs(frames=case.frames, steps=STEPS, **case.knobs),
                    options=ExtendOptions(times=times, overlap=overlap), seed=7)
    # Each segment: LATENT_FRAMES latent frames, less the overlap it shares with the clip so far.
    assert result.frames == LATENT_FRAMES + times * (LATENT_FRAMES - overlap)
    assert torch.equal(result.latents[:LATENT_FRAMES], clip.latents) and torch.isfinite(result.latents).all()
    assert (result.family, result.latent_space, (result.width, result.height)) == (clip.family, clip.latent_space, case.size)
    assert [step["command"] for step in result.history] == ["generate", "extend"]
    recorded = result.history[-1]["arguments"]
    assert (recorded["times"], recorded["overlap"]) == (times, overlap)
    assert [(segment["seed"], segment["frames"]) for segment in recorded["segments"]] == [
        (7 + index, LATENT_FRAMES - overlap) for index in range(times)]


def another_family(name: str) -> str:
    """The next tiny model, in the registry's order, of another family than ``name``'s and with
    another VAE (VACE and SkyReels DF share the tiny Wan 2.1 VAE: its clips are theirs too)."""
    import hashlib

    from vidlatent.tiny import tiny_random_path

    def vae(model: str) -> str:
        return hashlib.sha256((tiny_random_path(model) / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()

    names = list(TINY)
    start = names.index(name)
    return next(other for other in names[start + 1 :] + names[:start]
                if TINY[other].name != TINY[name].name and vae(other) != vae(name))


@pytest.mark.parametrize("command", ["decode", "extend"])
def test_another_familys_clip_is_refused_in_one_line(case, tmp_path, command):
    """Exit status 2 (an incompatible input file, README "Errors and exit status") and one line
    on stderr that names the clip's family and the model it belongs to; nothing written."""
    from vidlatent.tiny import tiny_random_path

    other = tiny_random_path(another_family(case.name))
    output = tmp_path / ("out.mp4" if command == "decode" else "out.safetensors")
    # --seed: extend announces a seed it picks (a note) before the model loads.
    seed = ["--seed", "1"] if command == "extend" else []
    result = cli(command, str(case.clip_path), "--model", str(other), *seed, "-o", str(output), code=2)
    (line,) = result.stderr.splitlines()
    assert line.startswith("vidlatent: error: the clip's latents ") and "belong to another VAE" in line
    assert f"({case.family.name} family)" in line and f"use --model {case.folder.resolve()}" in line
    assert not output.exists()


def test_comfyui_round_trip(case, tmp_path):
    if not case.family.comfyui:
        pytest.skip(f"{case.family.title} declares no ComfyUI latent format")
    clip = case.clip
    comfy, again = tmp_path / "clip.latent", tmp_path / "again.latent"
    latentfile.write(clip, comfy)
    back = latentfile.read(comfy)
    # ComfyUI keeps raw VAE latents: the clip's normalisation is undone on the way out and redone on
    # the way in, so the values come back to float32 rounding (bit for bit where it is the identity).
    torch.testing.assert_close(back.latents, clip.latents, rtol=1e-6, atol=1e-6)
    assert (back.model, back.latent_space, back.fps, back.seed, back.layout, back.history) == (
        clip.model, clip.latent_space, clip.fps, clip.seed, clip.layout, clip.history)
    # Written again unchanged, the ComfyUI tensor is the same bit for bit.
    latentfile.write(back, again)
    from safetensors.torch import load_file

    assert torch.equal(load_file(again)["latent_tensor"], load_file(comfy)["latent_tensor"])


# --- capabilities ----------------------------------------------------------------------------------
# What a family can do beyond sampling is declared (``Family.inversion``, ``Family.upsampler``: an
# object, or None). A family that declares one keeps its promise; one that does not is refused in one
# line, before anything loads. (The exactness of each against diffusers is in tests/test_transfer.py
# and tests/test_ltx.py.)


def test_inversion_only_where_the_family_inverts(case, tmp_path):
    output = tmp_path / "moved.safetensors"
    arguments = ["transfer-motion", str(case.clip_path), str(case.photo), "--method", "inversion", "--steps", str(STEPS),
                 "--seed", "1", "-o", str(output)]
    if case.family.inversion is not None:
        cli(*arguments, "-q")
        moved = latentfile.read(output)
        assert moved.frames == LATENT_FRAMES and moved.history[-1]["arguments"]["method"] == "inversion"
        return
    (line,) = cli(*arguments, code=2).stderr.splitlines()
    assert line.startswith("vidlatent: error: --method inversion: ") and case.title in line
    assert not output.exists()


def test_upscale_only_where_the_family_has_an_upsampler(case, tmp_path):
    output = tmp_path / "up.safetensors"
    arguments = ["generate", str(case.photo), "--model", str(case.folder), "--size", case.size_flag, "--frames", str(case.frames),
                 "--steps", str(STEPS), "--seed", "1", *case.flags(), "--upscale", "-o", str(output)]
    upsampler = case.family.upsampler
    if upsampler is not None:
        assert upsampler.tiny, f"{case.family.title}'s latent upsampler needs a tiny one, for tests offline"
        cli(*arguments, "--upscaler", next(iter(upsampler.tiny)), "-q")
        upscaled = latentfile.read(output)
        assert [step["command"] for step in upscaled.history] == ["generate", "upscale"]
        assert (upscaled.width, upscaled.height) == case.size and upscaled.history[-1]["arguments"]["factor"] == upsampler.factor
        return
    (line,) = cli(*arguments, code=2).stderr.splitlines()
    assert line.startswith("vidlatent: error: --upscale: ") and f"{case.family.title} has no latent upsampler" in line
    assert not output.exists()
