"""The Wan family on tiny Wan 2.1 and 2.2 models, proved against diffusers' own pipelines.

Every model-backed check runs the real diffusers classes from a folder: the exactness tests
copy a tiny model to a folder vidlatent has never seen and compare with
``WanImageToVideoPipeline`` / ``WanPipeline`` loaded from that same folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.conftest import data_file, resized_photo
from vidlatent import codec, latentfile, models
from vidlatent.cli import main
from vidlatent.codec import tensor_to_pixels
from vidlatent.generation import Knobs, pin_frames, regenerate, sample
from vidlatent.models import LoadOptions, load_pipeline

PROMPT = "a red fox runs"


def cli(*args: str, input: bytes | None = None, code: int = 0):
    result = CliRunner().invoke(main, list(args), input=input)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    """The shared test image at 64x64: a size the tiny models run in a blink; no resize needed."""
    return resized_photo(tmp_path_factory.mktemp("photo"), (64, 64))


@pytest.fixture(scope="module")
def unseen(tmp_path_factory, tiny_wan, tiny_wan22):
    """Copies of the tiny Wan models in folders vidlatent has never seen."""
    root = tmp_path_factory.mktemp("unseen")
    return {name: shutil.copytree(folder, root / name) for name, folder in (("wan", tiny_wan), ("wan22", tiny_wan22))}


def reference(folder, image: str | None, seed: int, **arguments) -> torch.Tensor:
    from diffusers import WanImageToVideoPipeline, WanPipeline

    pipeline = (WanImageToVideoPipeline if image else WanPipeline).from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    if image:
        arguments["image"] = Image.open(image)
    out = pipeline(height=64, width=64, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent", **arguments)
    return out.frames[0].permute(1, 0, 2, 3)  # (C, T, h, w) -> (T, C, h, w)


@pytest.mark.parametrize("model, with_image", [("wan", True), ("wan22", True), ("wan22", False)])
def test_generate_equals_diffusers(tmp_path, unseen, photo, model, with_image):
    out = tmp_path / "z.safetensors"
    images = [photo] if with_image else []
    cli("generate", *images, "--model", str(unseen[model]), "--prompt", PROMPT, "--size", "64x64", "--frames", "9",
        "--steps", "2", "--seed", "4", "-o", str(out), "-q")
    clip = latentfile.read(out)
    expected = reference(unseen[model], photo if with_image else None, 4, prompt=PROMPT, num_frames=9, num_inference_steps=2)
    assert torch.equal(clip.latents, expected)
    assert (clip.family, clip.frames, clip.pixel_frames, str(clip.layout.frame_rule)) == ("wan", 3, 9, "(T-1)*4+1")
    arguments = clip.history[-1]["arguments"]
    assert (arguments["prompt"], arguments["frames"], arguments["steps"], arguments["guidance"]) == (PROMPT, 9, 2, 5.0)


def test_knobs_left_out_take_the_pipelines_defaults(tmp_path, unseen, photo):
    out = tmp_path / "z.safetensors"
    cli("generate", photo, "--model", str(unseen["wan"]), "--size", "64x64", "--frames", "5", "--steps", "2", "--seed", "1",
        "-o", str(out), "-q")
    # Without --prompt vidlatent passes the empty prompt (the pipeline has no default for it).
    assert torch.equal(latentfile.read(out).latents, reference(unseen["wan"], photo, 1, prompt="", num_frames=5, num_inference_steps=2))


@pytest.mark.parametrize(
    "args, message",
    [
        (["{photo}", "--model", "tiny-random-wan", "--frames", "10"], "makes 4k+1 frames; use 9 or 13"),
        (["{photo}", "--model", "tiny-random-wan", "--size", "72x64"], "multiples of 16; use 64x64"),
        (["{photo}", "--model", "tiny-random-wan22", "--size", "48x64"], "multiples of 32"),
        (["{photo}", "--model", "tiny-random-wan", "--motion", "20"], "--motion: Wan 2.1 image-to-video does not take it"),
        (["{photo}", "--model", "tiny-random-wan", "--guidance-2", "3"], "--guidance-2: Wan 2.1 image-to-video does not take it"),
        (["{photo}", "--model", "tiny-random", "--prompt", "a fox"], "--prompt: Stable Video Diffusion does not take it"),
        (["--model", "tiny-random-wan", "--prompt", "a fox", "-o", "{tmp}/o.mp4"], "animates an image: give IMAGE"),
        (["{photo}", "--model", "tiny-random-wan", "--last-image", "{photo}"], "not a first-last-frame model"),
        (["--model", "tiny-random-wan22"], "give IMAGE... to animate, or --prompt TEXT"),
        (["{photo}", "--model", "wan22-ti2v-5b", "--frames", "12"], "use 9 or 13"),  # known by hub id, not on disk
    ],
)
def test_what_a_model_cannot_take_is_refused_before_it_loads(tmp_path, photo, tiny_wan, tiny_wan22, args, message):
    result = CliRunner().invoke(main, ["generate", *[a.format(photo=photo, tmp=tmp_path) for a in args]])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def wan(tiny_wan):
    return load_pipeline(LoadOptions(model="tiny-random-wan"))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory, photo, tiny_wan):
    path = tmp_path_factory.mktemp("wanclip") / "clip.safetensors"
    cli("generate", photo, "--model", "tiny-random-wan", "--prompt", PROMPT, "--frames", "9", "--steps", "2", "--seed", "3",
        "-o", str(path), "-q")
    return path


def test_streamed_decode_equals_vae_decode(clip_path, wan):
    clip = latentfile.read(clip_path)
    vae = wan.vae
    chunks = list(wan.family.decode(clip.latents, vae, device=torch.device("cpu")))
    assert [chunk.shape[2] for chunk in chunks] == [1, 4, 4]  # one latent frame at a time: 1, then 4 pixel frames
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    with torch.no_grad():
        whole = vae.decode(clip.latents.permute(1, 0, 2, 3)[None] / inverse_std + mean).sample  # the pipeline's decode
    assert torch.equal(torch.cat(chunks, 2), whole)
    frames = np.stack(list(codec.decode_frames(wan.family, clip.latents, vae, device=torch.device("cpu"))))
    assert np.array_equal(frames, tensor_to_pixels(whole[0].permute(1, 0, 2, 3)))


def test_decode_writes_nine_frames(tmp_path, clip_path):
    result = cli("decode", str(clip_path), "-o", str(tmp_path / "frames"), "--json")
    assert len(list((tmp_path / "frames").glob("*.png"))) == 9
    assert json.loads(result.stdout)["outputs"][0]["frames"] == 9


def test_streamed_encode_equals_the_vae_and_the_pipelines_normalisation(wan):
    from vidlatent import media

    frames = list(media.iter_frames(data_file("bear.gif"), media.FrameSelection(frames=10), size=(64, 64)))
    notes: list[str] = []
    ours = wan.family.encode_frames(iter(frames), wan.vae, device=torch.device("cpu"), note=notes.append)
    assert ours.shape == (3, 16, 8, 8)
    assert notes and "the last 1 frame(s) were left out" in notes[0]
    video = torch.from_numpy(np.stack(frames[:9])).permute(3, 0, 1, 2)[None].float() / 255.0 * 2.0 - 1.0  # (1, 3, 9, H, W)
    with torch.no_grad():
        raw = wan.vae.encode(video).latent_dist.mode()
    vae = wan.vae
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    assert torch.equal(ours, ((raw - mean) * inverse_std)[0].permute(1, 0, 2, 3))


def test_strength_zero_is_the_clip_and_one_is_generate(clip_path, wan, photo):
    clip = latentfile.read(clip_path)
    image = Image.open(photo)
    knobs = Knobs(steps=2, prompt=PROMPT)
    assert torch.equal(regenerate(wan, image, clip.latents, strength=0, knobs=knobs, seed=3), clip.latents)
    assert torch.equal(regenerate(wan, image, clip.latents, strength=1, knobs=knobs, seed=3), clip.latents)


def test_partial_strength_equals_diffusers_video_to_video(tmp_path):
    """Wan's pipelines take no strength: vidlatent keeps the last k steps of the scheduler's own
    schedule. On a text-to-video model that is what diffusers' WanVideoToVideoPipeline does."""
    from diffusers import WanPipeline, WanVideoToVideoPipeline

    from vidlatent.families.wan import build_tiny_wan

    pipeline = build_tiny_wan(wan22=False)
    import diffusers

    torch.manual_seed(0)
    transformer = diffusers.WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                                                  out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
                                                  cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    WanPipeline(tokenizer=pipeline.tokenizer, text_encoder=pipeline.text_encoder, vae=pipeline.vae, scheduler=pipeline.scheduler,
                transformer=transformer).save_pretrained(tmp_path / "t2v")
    model = load_pipeline(LoadOptions(model=str(tmp_path / "t2v")), image=False)
    assert model.spec.title == "Wan 2.1 text-to-video"
    clean = sample(model, None, knobs=Knobs(frames=5, steps=2, prompt=PROMPT), seed=1, size=(64, 64))
    ours = regenerate(model, None, clean, strength=0.5, knobs=Knobs(steps=4, prompt=PROMPT), seed=2, size=(64, 64))
    schedule = model.family.schedule(model, 4)
    noise = model.family.initial_noise(model, (64, 64), 2, 2)
    start = (1 - schedule[2]) * clean + schedule[2] * noise
    v2v = WanVideoToVideoPipeline.from_pretrained(tmp_path / "t2v")
    v2v.set_progress_bar_config(disable=True)
    expected = v2v(prompt=PROMPT, latents=start.permute(1, 0, 2, 3)[None], strength=0.5, num_inference_steps=4, height=64,
                   width=64, output_type="latent").frames[0].permute(1, 0, 2, 3)
    assert torch.equal(ours, expected)
    assert not torch.equal(ours, clean)


def test_pinned_overlap_is_the_re_encoded_conditioning_frame(clip_path, wan):
    clip = latentfile.read(clip_path)
    continuation = wan.family.continuation(wan, clip.latents, 1)
    image, known = continuation.image, continuation.pinned
    # The conditioning frame is the clip's last pixel frame, and it is what the segment starts from.
    last = list(codec.decode_frames(wan.family, clip.latents, wan.vae, device=torch.device("cpu")))[-1]
    assert np.array_equal(np.asarray(image), last) and known.shape == (1, 16, 8, 8)
    segment = sample(wan, image, knobs=Knobs(frames=9, steps=3, prompt=PROMPT), seed=5, on_step=pin_frames(known, [0], 5))
    assert torch.equal(segment[:1], known)


def test_a_longer_overlap_is_conditioned_on_its_own_first_frame(clip_path, wan):
    """--overlap 2: the segment starts with the clip's last 5 pixel frames, so its conditioning
    image (the frame Wan places at 0) is the first of them, not the clip's last."""
    clip = latentfile.read(clip_path)
    continuation = wan.family.continuation(wan, clip.latents, 2)
    image, known = continuation.image, continuation.pinned
    frames = list(codec.decode_frames(wan.family, clip.latents, wan.vae, device=torch.device("cpu")))
    assert np.array_equal(np.asarray(image), frames[-5]) and known.shape == (2, 16, 8, 8)
    alone = wan.family.encode_frames([frames[-5]], wan.vae, device=torch.device("cpu"))
    assert torch.equal(known[:1], alone)  # causal: the first latent frame is that frame's own encoding


def test_a_text_only_model_samples_with_its_text_pipeline():
    """Wan 2.2 T2V-A14B has no image pipeline: every command loads WanPipeline for it, and an
    edit towards an image is refused before it loads (described by hub id, nothing downloaded)."""
    from vidlatent.models import describe

    info = describe("wan22-t2v-a14b")
    assert info.family.pipeline_class(info.spec, image=True) == "WanPipeline"
    assert "image_encoder" not in info.family.sampling_components(info.spec, image=True)


def test_generate_extend_decode_pipe(tmp_path, photo, tiny_wan, vidlatent_cmd):
    out = tmp_path / "long.mp4"
    command = " ".join(vidlatent_cmd)
    chain = (
        f"{command} generate {photo} --model tiny-random-wan --prompt fox --frames 9 --steps 2 --seed 1 -o - -q"
        f" | {command} extend - --times 2 --steps 2 -o - -q --json 2> {tmp_path}/extend.json"
        f" | {command} decode - -o {out} -q"
    )
    subprocess.run(["bash", "-o", "pipefail", "-c", chain], check=True)
    import imageio_ffmpeg

    # 9 frames (3 latent), then 2 segments of 3 latent frames less the 1 pinned: 7 latent frames, 25 pixel frames.
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 25
    assert json.loads((tmp_path / "extend.json").read_text())["outputs"][0]["latent_frames"] == 7


def test_extend_keeps_the_clip_and_corrects_drift(clip_path, wan):
    from vidlatent import latent_ops
    from vidlatent.generation import ExtendOptions, extend

    clip = latentfile.read(clip_path)
    result = extend(wan, clip, knobs=Knobs(frames=9, steps=2, prompt=PROMPT), options=ExtendOptions(times=2), seed=4)
    assert result.frames == 3 + 2 * 2 and torch.equal(result.latents[:3], clip.latents)
    reference_stats = latent_ops.ChannelStats.of(clip.latents)
    for segment in (result.latents[3:5], result.latents[5:7]):  # within the drift rule's band (docs/extend.md)
        assert latent_ops.NATURAL_DRIFT.holds(latent_ops.drift(segment, reference_stats, relative=True))
    step = result.history[-1]["arguments"]
    assert step["overlap"] == 1 and [s["frames"] for s in step["segments"]] == [2, 2]


@pytest.fixture(scope="module")
def flf2v():
    """tiny-random-wan-flf2v: Wan 2.1 image-to-video with the FLF2V image position embedding."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path("tiny-random-wan-flf2v")


def test_first_last_frame_generate_equals_diffusers(tmp_path, photo, flf2v):
    """generate IMAGE --last-image IMAGE on the tiny FLF2V model: diffusers' WanImageToVideoPipeline
    with the same image, last image and seed, bit for bit; the spec names it and takes last frames."""
    from diffusers import WanImageToVideoPipeline

    from vidlatent.families.wan import FAMILY

    assert models.describe("tiny-random-wan-flf2v").spec == FAMILY.tiny_spec("tiny-random-wan-flf2v")
    last = tmp_path / "last.png"
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(last)
    out = tmp_path / "clip.safetensors"
    cli("generate", photo, "--last-image", str(last), "--model", "tiny-random-wan-flf2v", "--size", "64x64", "--frames", "5",
        "--steps", "2", "--prompt", PROMPT, "--seed", "5", "-o", str(out), "-q")
    pipeline = WanImageToVideoPipeline.from_pretrained(flf2v)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        expected = pipeline(image=Image.open(photo), last_image=Image.open(last), prompt=PROMPT, height=64, width=64,
                            num_frames=5, num_inference_steps=2, generator=torch.Generator("cpu").manual_seed(5),
                            output_type="latent").frames[0]  # (C, T, h, w)
    assert torch.equal(latentfile.read(out).latents, expected.permute(1, 0, 2, 3))


def test_keyframes_bridge_a_to_b(tmp_path, photo, flf2v):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path, seed in ((a, "1"), (b, "2")):
        cli("generate", photo, "--last-image", photo, "--model", str(flf2v), "--size", "64x64", "--frames", "5", "--steps", "2",
            "--seed", seed, "-o", str(path), "-q")
    bridge = tmp_path / "bridge.safetensors"
    cli("interpolate", str(a), str(b), "--transition", "9", "--keyframes", "--steps", "2", "--seed", "3", "-o", str(bridge), "-q")
    result = latentfile.read(bridge)
    assert (result.pixel_frames, result.history[-1]["arguments"]["mode"]) == (9, "keyframes")
    joined = tmp_path / "joined.safetensors"
    cli("interpolate", str(a), str(b), "--transition", "9", "--keyframes", "--join", "--steps", "2", "--seed", "3",
        "-o", str(joined), "-q")
    whole = latentfile.read(joined)
    # A (2 latent) + the bridge without its first frame (2) + B without its first (1): 5 latent, 17 pixel frames.
    assert whole.frames == 5 and torch.equal(whole.latents[:2], latentfile.read(a).latents)
    assert torch.equal(whole.latents[2:4], result.latents[1:])


def test_edit_towards_an_image_on_a_text_only_model_is_refused(tmp_path, clip_path, photo):
    result = CliRunner().invoke(main, ["edit", str(clip_path), "--image", photo, "--strength", "0.5", "--model",
                                       "wan22-t2v-a14b", "-o", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2, result.output
    assert "Wan 2.2 text-to-video takes no image" in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_extend_stops_once_on_an_error_every_clip_would_meet(tmp_path, clip_path):
    """--forward-chunking on Wan is refused when the model is asked for it: once, for the whole
    batch, with its own status, not once per clip."""
    copy = tmp_path / "copy.safetensors"
    shutil.copy(clip_path, copy)
    result = CliRunner().invoke(main, ["extend", str(clip_path), str(copy), "--forward-chunking", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "vidlatent: error: --forward-chunking: Wan's denoiser has no chunked feed-forward in diffusers; leave it out"]


def test_keyframes_on_a_model_without_last_frames_is_refused(tmp_path, clip_path):
    result = CliRunner().invoke(main, ["interpolate", str(clip_path), str(clip_path), "--transition", "9", "--keyframes",
                                       "-o", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2 and "cannot be conditioned on a last frame" in result.stderr
    # The hint names models that can, Wan's first, and a tiny one to try it offline.
    assert "--model wan21-flf2v or wan21-vace-1.3b or ltx-" in result.stderr and "offline: --model tiny-random-wan-flf2v" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_transition_counts_pixel_frames_with_or_without_keyframes(tmp_path, clip_path):
    """--transition 9 on Wan clips: a 9-frame bridge (3 latent frames), as --keyframes makes; a count
    Wan's VAE cannot make is refused with the nearest ones, before anything is written."""
    bridge = tmp_path / "bridge.safetensors"
    cli("interpolate", str(clip_path), str(clip_path), "--transition", "9", "-o", str(bridge), "-q")
    assert (latentfile.read(bridge).frames, latentfile.read(bridge).pixel_frames) == (3, 9)
    refused = CliRunner().invoke(main, ["interpolate", str(clip_path), str(clip_path), "--transition", "8", "-o",
                                        str(tmp_path / "x.safetensors")])
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.splitlines() == [f"vidlatent: error: --transition 8: {clip_path}'s latents make 4k+1 frames "
                                           "(its VAE's rule); use 5 or 9"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bridge.safetensors"]


def test_a_wan_clip_is_refused_by_the_svd_decoder(tmp_path, clip_path, tiny_model):
    result = CliRunner().invoke(main, ["decode", str(clip_path), "--model", "tiny-random", "-o", str(tmp_path / "x.mp4")])
    assert result.exit_code == 2 and "belong to another VAE" in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    # With an SVD clip beside it, the Wan clip fails alone: another latent space is about that input.
    svd = tmp_path / "svd.safetensors"
    encoded = CliRunner().invoke(main, ["encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "2",
                                        "--size", "64x64", "-o", str(svd), "-q"])
    assert encoded.exit_code == 0, encoded.output
    both = CliRunner().invoke(main, ["decode", str(clip_path), str(svd), "--model", "tiny-random", "-o", str(tmp_path / "out"), "-q"])
    assert both.exit_code == 1 and "1 of 2 inputs failed" in both.stderr, both.output
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["svd.mp4"]


def test_latent_ops_commands_work_on_wan_clips(tmp_path, clip_path, photo):
    """edit --strength, interpolate --refine, transfer-motion, analyze, inspect, convert."""
    edited = tmp_path / "edited.safetensors"
    cli("edit", str(clip_path), "--image", photo, "--strength", "0.5", "--steps", "2", "--seed", "1", "-o", str(edited), "-q")
    assert latentfile.read(edited).history[-1]["arguments"]["operations"][0]["prompt"] == PROMPT  # the clip's own
    refined = tmp_path / "refined.safetensors"
    cli("interpolate", str(clip_path), "--factor", "2", "--refine", "0.5", "--steps", "2", "--seed", "1", "-o", str(refined), "-q")
    assert torch.equal(latentfile.read(refined).latents[::2], latentfile.read(clip_path).latents)
    moved = tmp_path / "moved.safetensors"
    cli("transfer-motion", str(clip_path), photo, "-o", str(moved), "-q")
    assert latentfile.read(moved).frames == 3
    analysis = json.loads(cli("analyze", str(clip_path), "--json").stdout)
    assert (analysis["clips"][0]["frames"], analysis["clips"][0]["latent_frames"]) == (9, 3)  # pixel frames, as everywhere
    facts = json.loads(cli("inspect", str(clip_path), "--json").stdout)
    assert (facts["family"], facts["frames"], facts["latent_frames"], facts["frame_rule"]) == ("wan", 9, 3, "(T-1)*4+1")
    inversion = CliRunner().invoke(main, ["transfer-motion", str(clip_path), photo, "--method", "inversion", "-o", str(tmp_path / "i.mp4")])
    assert inversion.exit_code == 2 and "Stable Video Diffusion only" in inversion.stderr


def test_comfyui_latents_both_ways(tmp_path, clip_path):
    """ComfyUI keeps Wan latents raw, [1, C, T, h, w]; round trips are exact, metadata kept."""
    from safetensors.torch import load_file, save_file

    clip = latentfile.read(clip_path)
    comfy = tmp_path / "c.latent"
    cli("convert", str(clip_path), "-o", str(comfy), "-q")
    raw = load_file(comfy)["latent_tensor"]
    assert raw.shape == (1, 16, 3, 8, 8)
    assert torch.equal(raw, clip.layout.normalization.raw(clip.latents).permute(1, 0, 2, 3)[None])
    # A file as ComfyUI saves it: raw latents, the marker, its prompt and workflow.
    made = tmp_path / "made.latent"
    save_file({"latent_tensor": raw + 0.25, "latent_format_version_0": torch.tensor([])}, made,
              metadata={"prompt": '{"3": {"class_type": "KSampler"}}', "workflow": '{"nodes": []}'})
    back, again = tmp_path / "made.safetensors", tmp_path / "again.latent"
    result = cli("convert", str(made), "-o", str(back))
    assert "Wan 2.1 latents" in result.stderr
    imported = latentfile.read(back)
    assert (imported.family, imported.width, imported.frames) == ("wan", 64, 3)
    cli("convert", str(back), "-o", str(again), "-q")
    assert torch.equal(load_file(again)["latent_tensor"], raw + 0.25)
    from safetensors import safe_open

    with safe_open(again, "pt") as handle:
        metadata = handle.metadata()
    assert metadata["prompt"] == '{"3": {"class_type": "KSampler"}}' and metadata["workflow"] == '{"nodes": []}'
    assert json.loads(metadata["vidlatent"])["family"] == "wan"


def test_version_1_svd_files_still_decode(tmp_path, tiny_model):
    from safetensors.torch import save

    clip = tmp_path / "v1.safetensors"
    cli("encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "2", "-o", str(clip), "-q")
    current = latentfile.read(clip)
    metadata = {key: value for key, value in latentfile._metadata(current).items()
                if key not in latentfile.LAYOUT_KEYS} | {"format_version": "1"}
    clip.write_bytes(save({"latents": current.latents}, metadata=metadata))
    old = latentfile.read(clip)
    assert (old.family, old.layout, old.frames) == ("svd", current.layout, 2)
    cli("decode", str(clip), "-o", str(tmp_path / "v1.gif"), "-q")
    assert (tmp_path / "v1.gif").stat().st_size > 0
