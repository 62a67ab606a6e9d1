"""--lora in the layouts people have (issue 19): diffusers', PEFT's, the original (lightx2v,
Lightning, CausVid, ComfyUI's saved LoRAs, the LTX-Video trainer's), ComfyUI's un-prefixed one
and Kohya's/musubi's, on Wan and on LTX-Video.

The files are written here from random LoRA weights for the tiny models' own layers. Each loads
into the same adapter weights and scalings as diffusers' ``load_lora_weights`` of that file (or,
for a layout diffusers loads nothing of, of the same weights in diffusers' naming), and a
generation with one equals ``load_lora_weights(file)`` + the same diffusers call, bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

from tests.conftest import resized_photo
from tests.test_files import LTX_TO_ORIGINAL, original_name
from vidlatent import latentfile
from vidlatent.acceleration import Acceleration
from vidlatent.cli import main
from vidlatent.lora_files import fingerprint, parse_lora
from vidlatent.models import LoadOptions, load_pipeline

RANK, ALPHA = 4, 2.0
ARGS = ["--prompt", "a fox", "--size", "64x64", "--frames", "9", "--steps", "2", "--seed", "4", "-q"]
WAN_BLOCK = {"attn1.to_q": (24, 24), "attn1.to_k": (24, 24), "attn1.to_v": (24, 24), "attn1.to_out.0": (24, 24),
             "attn2.to_q": (24, 24), "attn2.to_k": (24, 24), "attn2.to_v": (24, 24), "attn2.to_out.0": (24, 24),
             "ffn.net.0.proj": (24, 32), "ffn.net.2": (32, 24)}  # tiny-random-wan's layer -> (in, out)
LTX_BLOCK = {"attn1.to_q": (16, 16), "attn1.to_v": (16, 16), "attn2.to_k": (16, 16), "ff.net.2": (64, 16)}

Layers = dict[str, tuple[torch.Tensor, torch.Tensor]]  # diffusers' layer name -> (down (r, in), up (out, r))


def random_layers(block: dict[str, tuple[int, int]], prefix: str, blocks: int, seed: int) -> Layers:
    generator = torch.Generator().manual_seed(seed)
    return {f"{prefix}.{index}.{name}": (torch.randn(RANK, inputs, generator=generator) * 0.3,
                                         torch.randn(outputs, RANK, generator=generator) * 0.3)
            for index in range(blocks) for name, (inputs, outputs) in block.items()}


def wan_original(layer: str) -> str:
    return original_name(layer + ".weight").removesuffix(".weight")


def ltx_original(layer: str) -> str:
    for diffusers_name, original in LTX_TO_ORIGINAL:
        layer = layer.replace(diffusers_name, original)
    return layer


def diffusers_layout(layers: Layers, prefix: str = "transformer.") -> dict[str, torch.Tensor]:
    return {f"{prefix}{layer}.lora_{which}.weight": tensor for layer, pair in layers.items() for which, tensor in zip("AB", pair)}


def original_layout(layers: Layers, rename, prefix: str = "diffusion_model.", *, alpha: bool = True,
                    names=("lora_down", "lora_up")) -> dict[str, torch.Tensor]:
    """The original naming: ``prefix`` + the authors' layer names, down/up (and alpha)."""
    weights = {}
    for layer, (down, up) in layers.items():
        stem = prefix + rename(layer)
        weights |= {f"{stem}.{names[0]}.weight": down, f"{stem}.{names[1]}.weight": up}
        if alpha:
            weights[f"{stem}.alpha"] = torch.tensor(ALPHA)
    return weights


def kohya_layout(layers: Layers) -> dict[str, torch.Tensor]:
    """Kohya's and musubi-tuner's: lora_unet_ + the original names with underscores, and alphas."""
    weights = {}
    for layer, (down, up) in layers.items():
        stem = "lora_unet_" + wan_original(layer).replace(".", "_")
        weights |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": torch.tensor(ALPHA)}
    return weights


def write(folder: Path, name: str, weights: dict[str, torch.Tensor]) -> Path:
    path = folder / f"{name}.safetensors"
    save_file(weights, path)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    return resized_photo(tmp_path_factory.mktemp("photo"), (64, 64))


@pytest.fixture(scope="module")
def wan_loras(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """layout -> (the file, the file diffusers' load_lora_weights is given as its reference)."""
    folder = tmp_path_factory.mktemp("wan-loras")
    layers = random_layers(WAN_BLOCK, "blocks", 2, seed=1)
    lightx2v = original_layout(layers, wan_original)
    # lightx2v's files also carry the layers' bias differences (lora_B.bias in peft) and their
    # norms' (zeros, which diffusers leaves out).
    generator = torch.Generator().manual_seed(2)
    for layer, (_, up) in layers.items():
        lightx2v[f"diffusion_model.{wan_original(layer)}.diff_b"] = torch.randn(up.shape[0], generator=generator) * 0.1
    lightx2v["diffusion_model.blocks.0.norm3.diff"] = torch.zeros(24)
    files = {"original": write(folder, "lightx2v", lightx2v), "kohya": write(folder, "musubi", kohya_layout(layers)),
             "diffusers": write(folder, "diffusers", diffusers_layout(layers))}
    files = {layout: (path, path) for layout, path in files.items()}
    files["peft"] = (write(folder, "peft", diffusers_layout(layers, "base_model.model.")), files["diffusers"][0])
    comfyui = original_layout(layers, wan_original, prefix="", alpha=False)
    files["comfyui"] = (write(folder, "comfyui", comfyui),
                        write(folder, "comfyui-prefixed", {"diffusion_model." + key: value for key, value in comfyui.items()}))
    return files


@pytest.fixture(scope="module")
def ltx_loras(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("ltx-loras")
    layers = random_layers(LTX_BLOCK, "transformer_blocks", 1, seed=3)
    # The LTX-Video trainer's (and ComfyUI's) files: diffusion_model. + the original names, lora_A/lora_B.
    trainer = write(folder, "ltx-trainer", original_layout(layers, ltx_original, alpha=False, names=("lora_A", "lora_B")))
    return {"original": (trainer, trainer),
            "peft": (write(folder, "ltx-peft", diffusers_layout(layers, "")), write(folder, "ltx-diffusers", diffusers_layout(layers)))}


def adapter(pipeline) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The transformer's LoRA weights of adapter lora0, and each layer's scaling."""
    from peft import get_peft_model_state_dict

    transformer = pipeline.transformer
    scaling = {name: layer.scaling["lora0"] for name, layer in transformer.named_modules()
               if isinstance(getattr(layer, "scaling", None), dict) and "lora0" in layer.scaling}
    return get_peft_model_state_dict(transformer, adapter_name="lora0"), scaling


def assert_part_loads_as_whole(part: Path, whole: Path, folder: Path) -> tuple[Any, dict[str, float]]:
    """Load ``part`` with --lora-partial on tiny-random-wan and assert it gives the adapter weights
    and scalings ``load_lora_weights(whole)`` gives (the loaded model and the scalings)."""
    from diffusers import WanImageToVideoPipeline

    loaded = load_pipeline(LoadOptions(model="tiny-random-wan", acceleration=Acceleration(
        loras=(parse_lora(str(part)),), lora_partial=True)))
    expected = WanImageToVideoPipeline.from_pretrained(folder)
    expected.load_lora_weights(str(whole), adapter_name="lora0")
    (state, scaling), (expected_state, expected_scaling) = adapter(loaded.pipeline), adapter(expected)
    assert set(state) == set(expected_state) and all(torch.equal(state[key], expected_state[key]) for key in state)
    assert scaling == expected_scaling
    return loaded, scaling


def assert_loads_as_diffusers(model: str, folder: Path, pipeline_class, file: Path, reference: Path, photo: str,
                              frames: int) -> None:
    """vidlatent's pipeline with ``file`` holds the adapter weights and scalings of diffusers'
    with ``load_lora_weights(reference)``, and the same call (one step) gives the same latents."""
    loaded = load_pipeline(LoadOptions(model=model, acceleration=Acceleration(loras=(parse_lora(str(file)),))))
    expected = pipeline_class.from_pretrained(folder)
    expected.load_lora_weights(str(reference), adapter_name="lora0")
    (state, scaling), (expected_state, expected_scaling) = adapter(loaded.pipeline), adapter(expected)
    assert state and set(state) == set(expected_state)
    assert all(torch.equal(state[key], expected_state[key]) for key in state)
    assert scaling == expected_scaling
    latents = []
    for pipeline in (loaded.pipeline, expected):
        pipeline.set_progress_bar_config(disable=True)
        with torch.no_grad():
            latents.append(pipeline(image=Image.open(photo), prompt="a fox", height=32, width=32, num_frames=frames,
                                    num_inference_steps=1, generator=torch.Generator("cpu").manual_seed(4),
                                    output_type="latent").frames)
    assert torch.equal(*latents)


@pytest.mark.parametrize("layout", ["original", "kohya", "diffusers", "peft", "comfyui"])
def test_every_wan_layout_loads_as_diffusers_loads_it(wan_loras, tiny_wan, photo, layout):
    from diffusers import WanImageToVideoPipeline

    assert_loads_as_diffusers("tiny-random-wan", tiny_wan, WanImageToVideoPipeline, *wan_loras[layout], photo, 5)


@pytest.mark.parametrize("layout", ["original", "peft"])
def test_every_ltx_layout_loads_as_diffusers_loads_it(ltx_loras, tiny_ltx, photo, layout):
    from diffusers import LTXConditionPipeline

    assert_loads_as_diffusers("tiny-random-ltx", tiny_ltx, LTXConditionPipeline, *ltx_loras[layout], photo, 9)


def cli(*args: object, code: int = 0):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == code, result.output
    return result


def test_a_lightx2v_lora_on_wan_equals_load_lora_weights_and_the_pipeline(tmp_path, photo, tiny_wan, wan_loras):
    from diffusers import WanImageToVideoPipeline

    lora, _ = wan_loras["original"]
    out = tmp_path / "z.safetensors"
    cli("generate", photo, "--model", "tiny-random-wan", "--lora", lora, *ARGS, "-o", out)
    clip = latentfile.read(out)
    pipeline = WanImageToVideoPipeline.from_pretrained(tiny_wan)
    pipeline.load_lora_weights(str(lora))
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        expected = pipeline(image=Image.open(photo), prompt="a fox", height=64, width=64, num_frames=9, num_inference_steps=2,
                            generator=torch.Generator("cpu").manual_seed(4), output_type="latent").frames[0]
    assert torch.equal(clip.latents, expected.permute(1, 0, 2, 3))
    (record,) = clip.history[-1]["arguments"]["acceleration"]["lora"]
    assert record == {"path": str(lora.resolve()), "size": lora.stat().st_size, "fingerprint": fingerprint(str(lora)),
                      "layout": "original", "scale": 1.0}


def test_an_ltx_lora_equals_load_lora_weights_and_the_pipeline(tmp_path, photo, tiny_ltx, ltx_loras):
    from diffusers import LTXConditionPipeline

    lora, _ = ltx_loras["original"]
    out = tmp_path / "z.safetensors"
    cli("generate", photo, "--model", "tiny-random-ltx", "--lora", lora, *ARGS, "-o", out)
    pipeline = LTXConditionPipeline.from_pretrained(tiny_ltx)
    pipeline.load_lora_weights(str(lora))
    pipeline.set_progress_bar_config(disable=True)
    expected = pipeline(image=Image.open(photo), prompt="a fox", height=64, width=64, num_frames=9, num_inference_steps=2,
                        generator=torch.Generator("cpu").manual_seed(4), output_type="latent").frames[0]
    assert torch.equal(latentfile.read(out).latents, expected.permute(1, 0, 2, 3))


def test_the_fingerprint_reads_the_header_and_the_ends_only(tmp_path):
    big = {"transformer.x.lora_A.weight": torch.zeros(3 * 2**20 // 4)}  # 3 MiB of data
    path = write(tmp_path, "big", big)
    before = fingerprint(str(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # the middle: not read
    path.write_bytes(bytes(data))
    assert fingerprint(str(path)) == before
    data[-1] ^= 1  # the end: read
    path.write_bytes(bytes(data))
    assert fingerprint(str(path)) != before


# --- refusals, and --lora-partial ---------------------------------------------------------------


def refused(tmp_path, photo, *flags: object, model: str = "tiny-random-wan") -> str:
    result = cli("generate", photo, "--model", model, *flags, *ARGS, "-o", tmp_path / "x.safetensors", code=2)
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "x.safetensors").exists()
    return result.stderr


def test_a_lora_none_of_which_fits_is_refused_naming_a_key_and_what_the_model_takes(tmp_path, photo):
    # A PEFT file of another model: diffusers would load nothing and only log a warning.
    other = write(tmp_path, "other", {"double_blocks.0.img_attn.qkv.lora_A.weight": torch.ones(4, 24),
                                      "double_blocks.0.img_attn.qkv.lora_B.weight": torch.ones(72, 4)})
    assert refused(tmp_path, photo, "--lora", other) == (
        f"vidlatent: error: --lora {other}: none of its 2 keys fit Wan 2.1 image-to-video (transformer): key "
        "transformer.double_blocks.0.img_attn.qkv.lora_A.weight: the transformer has no layer double_blocks.0.img_attn.qkv; "
        "the model takes diffusers' names (e.g. transformer.blocks.0.attn1.to_q.lora_A.weight) or a layout diffusers "
        "converts\n")


def test_kohyas_layout_on_ltx_is_refused_naming_the_layouts_it_takes(tmp_path, photo):
    kohya = write(tmp_path, "kohya", kohya_layout(random_layers({"attn1.to_q": (16, 16)}, "blocks", 1, seed=4)))
    assert refused(tmp_path, photo, "--lora", kohya, model="tiny-random-ltx") == (
        f"vidlatent: error: --lora {kohya}: key lora_unet_blocks_0_self_attn_q.alpha: LTX-Video takes LoRAs in "
        "diffusers', PEFT's or the original (diffusion_model.) layout, not Kohya's (lora_unet_) "
        "(e.g. transformer.transformer_blocks.0.attn1.to_q.lora_A.weight)\n")


def test_a_lora_diffusers_converter_cannot_read_is_refused_saying_why(tmp_path, photo):
    # musubi's converter in diffusers reads every attention and feed-forward layer of a block.
    attention_only = write(tmp_path, "musubi", kohya_layout(random_layers({"attn1.to_q": (24, 24)}, "blocks", 1, seed=4)))
    assert refused(tmp_path, photo, "--lora", attention_only) == (
        f"vidlatent: error: --lora {attention_only}: diffusers' Wan converter cannot read it in Kohya's (lora_unet_) "
        "layout: it looks for blocks_0_self_attn_k.lora_down.weight (past the prefix), which the file lacks\n")


def test_lora_down_and_up_without_wans_converter_are_refused_on_ltx(tmp_path, photo):
    # ComfyUI's LoraSave names (lora_down / lora_up): diffusers' LTX-Video loader fails on them.
    layers = random_layers({"attn1.to_q": (16, 16)}, "transformer_blocks", 1, seed=5)
    down_up = write(tmp_path, "down-up", original_layout(layers, ltx_original, alpha=False))
    assert refused(tmp_path, photo, "--lora", down_up, model="tiny-random-ltx") == (
        f"vidlatent: error: --lora {down_up}: none of its 2 keys fit LTX-Video (transformer): key "
        "transformer.transformer_blocks.0.attn1.to_q.lora_down.weight: not a LoRA weight diffusers loads here (it takes "
        "lora_A / lora_B); the model takes diffusers' names (e.g. transformer.transformer_blocks.0.attn1.to_q.lora_A.weight) "
        "or a layout diffusers converts\n")


def test_an_alpha_diffusers_cannot_apply_on_ltx_is_refused(tmp_path, photo):
    layers = random_layers({"attn1.to_q": (16, 16)}, "transformer_blocks", 1, seed=5)
    with_alpha = write(tmp_path, "alpha", original_layout(layers, ltx_original))
    stderr = refused(tmp_path, photo, "--lora", with_alpha, "--lora-partial", model="tiny-random-ltx")
    assert stderr == (f"vidlatent: error: --lora {with_alpha}: key transformer.transformer_blocks.0.attn1.to_q.alpha: "
                      "diffusers' LTX-Video loader cannot apply an alpha in this layout (without it the LoRA would load at "
                      "another strength)\n")


@pytest.mark.parametrize("extra, key, reason", [
    # a layer the model lacks (a LoRA for a 40-block model on a 2-block one)
    ({"diffusion_model.blocks.7.self_attn.q.lora_down.weight": torch.ones(4, 24),
      "diffusion_model.blocks.7.self_attn.q.lora_up.weight": torch.ones(24, 4)},
     "transformer.blocks.7.attn1.to_q.lora_A.weight", "the transformer has no layer blocks.7.attn1.to_q"),
    # a norm's difference that is not zero: diffusers' converter drops it
    ({"diffusion_model.blocks.1.norm3.diff": torch.ones(24)}, "diffusion_model.blocks.1.norm3.diff",
     "diffusers' converter does not load it"),
])
def test_a_lora_of_which_only_part_fits_is_refused_unless_lora_partial(tmp_path, photo, tiny_wan, extra, key, reason):
    layers = random_layers(WAN_BLOCK, "blocks", 2, seed=6)
    whole = write(tmp_path, "whole", original_layout(layers, wan_original))
    part = write(tmp_path, "part", original_layout(layers, wan_original) | extra)
    assert refused(tmp_path, photo, "--lora", part) == (
        f"vidlatent: error: --lora {part}: only part of it fits Wan 2.1 image-to-video (transformer): key {key}: {reason}; "
        "--lora-partial loads the 40 LoRA weights that fit\n")
    loaded, scaling = assert_part_loads_as_whole(part, whole, tiny_wan)
    (record,) = loaded.accelerated.record()["lora"]
    assert record["partial"] == {"dropped_tensors": len(extra)}


@pytest.mark.parametrize("flags, message", [
    (["--lora-partial"], "--lora-partial: it says how a --lora file loads; give one with --lora, or leave it out"),
])
def test_lora_flags_without_a_lora_are_refused(tmp_path, photo, flags, message):
    assert refused(tmp_path, photo, *flags) == f"vidlatent: error: {message}\n"


def test_a_lora_that_is_no_safetensors_inside_is_refused_before_torch(tmp_path, photo):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert refused(tmp_path, photo, "--lora", junk).startswith(f"vidlatent: error: --lora {junk}: not a safetensors file")


def test_a_recipe_takes_one_lora_or_a_list_and_lora_partial(tmp_path):
    from vidlatent.recipes import read_recipe

    recipe = tmp_path / "distilled.toml"
    recipe.write_text('lora = "lightx2v.safetensors:0.5"\nlora-partial = true\n')
    assert read_recipe(str(recipe)) == {"lora": [str(tmp_path.resolve() / "lightx2v.safetensors:0.5")], "lora_partial": True}


def test_diffusers_adapter_config_in_the_header_is_kept_with_lora_partial(tmp_path, tiny_wan):
    """save_lora_weights' adapter config (here lora_alpha 2 for rank 4) loads with the part that
    fits, as it does with the whole file."""
    import json

    layers = random_layers({"attn1.to_q": (24, 24), "ffn.net.2": (32, 24)}, "blocks", 2, seed=7)
    config = {"transformer.r": RANK, "transformer.lora_alpha": ALPHA, "transformer.target_modules": sorted(layers)}
    header = {"format": "pt", "lora_adapter_metadata": json.dumps(config)}
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    save_file(diffusers_layout(layers), whole, metadata=header)
    save_file(diffusers_layout(layers) | {"transformer.blocks.7.attn1.to_q.lora_A.weight": torch.ones(RANK, 24)}, part,
              metadata=header)
    _, scaling = assert_part_loads_as_whole(part, whole, tiny_wan)
    assert set(scaling.values()) == {ALPHA / RANK}
