"""The files users have (issue 19): a model's transformer from one file (--transformer,
--transformer-2) in the original Wan layout, ComfyUI's or diffusers', proved bit for bit against
the same model loaded from its folder; and every refusal, in one line, before anything loads.

The files are written here from tiny-random-wan's own transformer: diffusers' naming, the
original Wan naming (the inverse of diffusers' ``convert_wan_transformer_to_diffusers``, checked
against it) and ComfyUI's (the original with ``model.diffusion_model.`` in front).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from tests.conftest import resized_photo
from vidlatent import latentfile
from vidlatent.cli import main

ARGS = ["--prompt", "a fox", "--size", "64x64", "--frames", "9", "--steps", "2", "--seed", "4", "-q"]
COMFYUI_PREFIX = "model.diffusion_model."

# diffusers' names -> the original Wan checkpoint's, the inverse of the renames in diffusers'
# convert_wan_transformer_to_diffusers, applied in this order (the image embedder's norms before
# the blocks' norm2/norm3 swap).
TO_ORIGINAL = [
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn2", "cross_attn"),
    ("attn1", "self_attn"),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    (".add_k_proj.", ".k_img."),
    (".add_v_proj.", ".v_img."),
    (".norm_added_k.", ".norm_k_img."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
    (".norm2.", ".norm__placeholder."),
    (".norm3.", ".norm2."),
    (".norm__placeholder.", ".norm3."),
]


def original_name(key: str) -> str:
    """A diffusers WanTransformer3DModel key in the original Wan checkpoint's naming."""
    if key == "scale_shift_table":
        return "head.modulation"
    key = key.replace(".scale_shift_table", ".modulation")
    for diffusers_name, original in TO_ORIGINAL:
        key = key.replace(diffusers_name, original)
    return key


def cli(*args: object, code: int = 0):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == code, result.output
    return result


def folder_weights(folder: Path, component: str = "transformer") -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = {}
    for file in sorted((folder / component).glob("*.safetensors")):
        weights |= load_file(file)
    return weights


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    return resized_photo(tmp_path_factory.mktemp("photo"), (64, 64))


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_wan) -> dict[str, Path]:
    """tiny-random-wan's transformer as one file in each layout, written once."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    folder = tmp_path_factory.mktemp("files")
    weights = folder_weights(tiny_wan)
    original = {original_name(key): tensor for key, tensor in weights.items()}
    # The inverse is right: diffusers' own converter gives the folder's names back.
    assert set(convert_wan_transformer_to_diffusers(dict(original))) == set(weights)
    layouts = {"original": original, "comfyui": {COMFYUI_PREFIX + key: tensor for key, tensor in original.items()}}
    paths = {}
    for layout, state_dict in layouts.items():
        paths[layout] = folder / f"wan-{layout}.safetensors"
        save_file(state_dict, paths[layout])
    # diffusers' naming: the folder's own (one) weights file, byte for byte.
    (weights_file,) = (tiny_wan / "transformer").glob("*.safetensors")
    paths["diffusers"] = Path(shutil.copy(weights_file, folder / "wan-diffusers.safetensors"))
    return paths


@pytest.fixture(scope="module")
def plain(tmp_path_factory, photo, tiny_wan) -> latentfile.LatentClip:
    out = tmp_path_factory.mktemp("plain") / "z.safetensors"
    cli("generate", photo, "--model", "tiny-random-wan", *ARGS, "-o", out)
    return latentfile.read(out)


def diffusers_generation(folder: Path, photo: str, transformer: Path | dict[str, torch.Tensor], **loading) -> torch.Tensor:
    """diffusers' own: the transformer from the file (or state dict) through its single-file
    loader with the folder's config and ``loading``'s arguments, the rest from the folder; the
    pipeline's latents (T, C, h, w)."""
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel
    from PIL import Image

    source = transformer if isinstance(transformer, dict) else str(transformer)
    model = WanTransformer3DModel.from_single_file(source, config=str(folder), subfolder="transformer",
                                                   torch_dtype=torch.float32, **loading)
    pipeline = WanImageToVideoPipeline.from_pretrained(folder, transformer=model)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        output = pipeline(image=Image.open(photo), prompt="a fox", height=64, width=64, num_frames=9, num_inference_steps=2,
                          generator=torch.Generator("cpu").manual_seed(4), output_type="latent")
    return output.frames[0].permute(1, 0, 2, 3)


@pytest.mark.parametrize("layout", ["original", "comfyui", "diffusers"])
def test_a_transformer_file_equals_diffusers_single_file_loading(tmp_path, photo, files, plain, tiny_wan, layout):
    out = tmp_path / "z.safetensors"
    cli("generate", photo, "--model", "tiny-random-wan", "--transformer", files[layout], *ARGS, "-o", out)
    clip = latentfile.read(out)
    assert torch.equal(clip.latents, diffusers_generation(tiny_wan, photo, files[layout]))
    assert clip.history[-1]["arguments"]["acceleration"] == {"files": {"transformer": str(files[layout].resolve())}}
    if layout == "diffusers":  # the folder's own file, renamed: the folder's latents, bit for bit
        assert torch.equal(clip.latents, plain.latents)
    # The other layouts equal the folder bit for bit under MKL's strict mode (the next test).


# The only difference between a file's latents and the folder's is where each weight sits in
# memory: the weights are memory-mapped in place, at the offsets of their file, and MKL's
# matrix-vector product (a Linear on one row, as the time embedding's) rounds its sums in an order
# that depends on the weight's address modulo 64 bytes, unless MKL_CBWR asks for strict
# reproducibility. Weights, dtypes, strides and configs are equal (test_every_layout_loads_the_folders_weights).
STRICT = """
import sys, torch
from click.testing import CliRunner
from vidlatent import latentfile
from vidlatent.cli import main
photo, out, *cases = sys.argv[1:]
args = ["--prompt", "a fox", "--size", "64x64", "--frames", "9", "--steps", "2", "--seed", "4", "-q"]
def latents(model, *flags):
    result = CliRunner().invoke(main, ["generate", photo, "--model", model, *args, *flags, "-o", out])
    assert result.exit_code == 0, result.output
    return latentfile.read(out).latents
folders = {}
for case in cases:  # MODEL=FILE
    model, file = case.split("=", 1)
    folders.setdefault(model, latents(model))
    print(case, torch.equal(latents(model, "--transformer", file), folders[model]))
"""


def test_a_transformer_file_equals_the_folder_bit_for_bit(tmp_path, photo, files, ltx_file):
    """The original and ComfyUI layouts on Wan, ComfyUI's on LTX-Video, under MKL_CBWR=AUTO,STRICT
    (see STRICT), in one process."""
    import os
    import subprocess
    import sys

    cases = [f"tiny-random-wan={files['original']}", f"tiny-random-wan={files['comfyui']}", f"tiny-random-ltx={ltx_file}"]
    result = subprocess.run([sys.executable, "-c", STRICT, photo, str(tmp_path / "z.safetensors"), *cases],
                            env=os.environ | {"MKL_CBWR": "AUTO,STRICT"}, capture_output=True, text=True, check=True)
    assert result.stdout.split() == [word for case in cases for word in (case, "True")], result.stderr[-2000:]


@pytest.mark.parametrize("layout", ["original", "comfyui"])
def test_every_layout_loads_the_folders_weights(files, tiny_wan, layout):
    from vidlatent.component_files import ComponentFile, load_component_file

    loaded = load_component_file(ComponentFile("transformer", str(files[layout])), tiny_wan, torch.float32).state_dict()
    weights = folder_weights(tiny_wan)
    assert set(loaded) == set(weights)
    assert all(torch.equal(loaded[key], weights[key]) for key in weights)
    assert all((loaded[key].dtype, loaded[key].stride()) == (weights[key].dtype, weights[key].stride()) for key in weights)


def test_the_folder_needs_no_weights_of_the_component_a_file_replaces(tmp_path, photo, files, tiny_wan):
    folder = shutil.copytree(tiny_wan, tmp_path / "configs-only-transformer")
    for weights in (folder / "transformer").glob("*.safetensors"):
        weights.unlink()
    out = tmp_path / "z.safetensors"
    cli("generate", photo, "--model", folder, "--transformer", files["comfyui"], *ARGS, "-o", out)
    assert torch.equal(latentfile.read(out).latents, diffusers_generation(tiny_wan, photo, files["comfyui"]))


def test_the_low_noise_expert_from_a_file_equals_the_folders(tmp_path, tiny_wan22):
    """A Wan 2.2 two-expert folder (tiny-random-wan22 with a second expert of other weights);
    --transformer-2 with that expert's file (the same bytes as the folder's, so that the weights
    sit at the same offsets: see above) gives the folder's latents."""
    folder = shutil.copytree(tiny_wan22, tmp_path / "two-experts")
    shutil.copytree(folder / "transformer", folder / "transformer_2")
    low = {key: tensor * 0.5 for key, tensor in folder_weights(folder, "transformer_2").items()}
    for file in (folder / "transformer_2").glob("*.safetensors"):
        file.unlink()
    expert = tmp_path / "low.safetensors"
    save_file(low, expert, metadata={"format": "pt"})
    shutil.copy(expert, folder / "transformer_2" / "diffusion_pytorch_model.safetensors")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps(index | {"boundary_ratio": 0.5,
                                                                 "transformer_2": ["diffusers", "WanTransformer3DModel"]}))
    text = ["--prompt", "a fox", "--size", "64x64", "--frames", "5", "--steps", "2", "--seed", "4", "-q"]
    cli("generate", "--model", folder, *text, "-o", tmp_path / "a.safetensors")
    cli("generate", "--model", folder, "--transformer-2", expert, *text, "-o", tmp_path / "b.safetensors")
    assert torch.equal(latentfile.read(tmp_path / "a.safetensors").latents, latentfile.read(tmp_path / "b.safetensors").latents)


# --- refusals: one line, exit 2, before anything loads ---------------------------------------


def refused(tmp_path, photo, *flags: object, model: str = "tiny-random-wan") -> str:
    result = cli("generate", photo, "--model", model, *flags, *ARGS, "-o", tmp_path / "x.safetensors", code=2)
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "x.safetensors").exists()
    return result.stderr


def test_a_missing_file_is_refused(tmp_path, photo):
    missing = tmp_path / "nothing.safetensors"
    assert refused(tmp_path, photo, "--transformer", missing) == f"vidlatent: error: --transformer {missing}: no such file\n"


def test_a_file_that_is_not_safetensors_is_refused(tmp_path, photo):
    pickle = tmp_path / "wan.ckpt"
    pickle.write_bytes(b"\x80\x04")
    assert refused(tmp_path, photo, "--transformer", pickle) == \
        f"vidlatent: error: --transformer {pickle}: expected a .safetensors or .gguf file (no pickles)\n"


def test_a_second_expert_on_a_one_expert_model_is_refused(tmp_path, photo, files):
    stderr = refused(tmp_path, photo, "--transformer-2", files["original"])
    assert stderr == (f"vidlatent: error: --transformer-2 {files['original']}: Wan 2.1 image-to-video has one transformer "
                      "(no low-noise expert); give the file as --transformer\n")


def test_a_family_without_single_files_is_refused(tmp_path, photo, files):
    stderr = refused(tmp_path, photo, "--transformer", files["original"], model="tiny-random")
    assert stderr.startswith("vidlatent: error: --transformer: Stable Video Diffusion loads its denoiser from its diffusers "
                             "folder only")


def test_a_file_of_another_architecture_is_refused_naming_the_first_key(tmp_path, photo, tiny_wan22):
    # Wan 2.2 TI2V's transformer (48 input channels, no image attention) for a Wan 2.1 I2V model.
    other = tmp_path / "ti2v.safetensors"
    save_file({COMFYUI_PREFIX + original_name(key): tensor for key, tensor in folder_weights(tiny_wan22).items()}, other)
    stderr = refused(tmp_path, photo, "--transformer", other)
    assert stderr == (f"vidlatent: error: --transformer {other}: does not fit Wan 2.1 image-to-video (transformer): "
                      f"key {COMFYUI_PREFIX}head.head.bias: shape (192,) does not fit the transformer's (64,)\n")


def test_a_file_lacking_weights_is_refused_naming_the_first_missing(tmp_path, photo, files):
    partial = tmp_path / "partial.safetensors"
    weights = load_file(files["original"])
    save_file({key: tensor for key, tensor in weights.items() if not key.startswith("img_emb.")}, partial)
    stderr = refused(tmp_path, photo, "--transformer", partial)
    assert "key condition_embedder.image_embedder." in stderr and "the file has no weight for it" in stderr


def test_a_file_that_is_no_safetensors_inside_is_refused(tmp_path, photo):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    assert refused(tmp_path, photo, "--transformer", junk).startswith(
        f"vidlatent: error: --transformer {junk}: not a safetensors file")


# --- GGUF ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory, tiny_wan) -> Path:
    """tiny-random-wan's transformer as a GGUF file in diffusers' naming, as city96's GGUFs are
    made: the matrices whose rows are a multiple of 32 long in Q8_0, the rest in F32."""
    return write_gguf(tmp_path_factory.mktemp("gguf") / "wan-Q8_0.gguf", folder_weights(tiny_wan), quantize=True)


def write_gguf(path: Path, weights: dict[str, torch.Tensor], *, quantize: bool) -> Path:
    """``weights`` as a GGUF file; with ``quantize``, the matrices whose rows are a multiple of 32
    long (Q8_0's blocks) in Q8_0."""
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), arch="wan")
    for key, tensor in weights.items():
        array = tensor.numpy()
        if quantize and array.ndim == 2 and array.shape[-1] % 32 == 0:
            writer.add_tensor(key, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(key, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_transformer_equals_diffusers_gguf_loading(tmp_path, photo, gguf_file, plain, tiny_wan):
    from diffusers import GGUFQuantizationConfig

    out = tmp_path / "z.safetensors"
    cli("generate", photo, "--model", "tiny-random-wan", "--transformer", gguf_file, *ARGS, "-o", out)
    latents = latentfile.read(out).latents
    assert torch.equal(latents, diffusers_generation(tiny_wan, photo, gguf_file,
                                                     quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32)))
    assert not torch.equal(latents, plain.latents)  # quantised: near the folder's, not equal
    assert torch.allclose(latents, plain.latents, rtol=0, atol=0.1)


def test_a_gguf_file_without_the_gguf_package_is_refused(tmp_path, photo, gguf_file, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "gguf" else find_spec(name, *args))
    assert refused(tmp_path, photo, "--transformer", gguf_file) == \
        f'vidlatent: error: --transformer {gguf_file}: GGUF files need the gguf package: pip install "vidlatent[gguf]"\n'


def test_a_gguf_file_is_not_quantised_again(tmp_path, photo, gguf_file):
    assert refused(tmp_path, photo, "--transformer", gguf_file, "--quantize", "fp8") == \
        f"vidlatent: error: --quantize fp8: --transformer {gguf_file} is quantised already (GGUF); leave --quantize out\n"


def test_a_gguf_file_of_another_architecture_is_refused(tmp_path, photo, tiny_wan22):
    path = write_gguf(tmp_path / "ti2v.gguf", folder_weights(tiny_wan22), quantize=False)
    assert refused(tmp_path, photo, "--transformer", path).startswith(
        f"vidlatent: error: --transformer {path}: does not fit Wan 2.1 image-to-video (transformer): key ")


# --- ComfyUI fp8-scaled ------------------------------------------------------------------------


def comfy_quant(format: str) -> torch.Tensor:
    """A ``.comfy_quant`` entry: the format as JSON bytes."""
    return torch.tensor(list(json.dumps({"format": format}).encode()), dtype=torch.uint8)


def scaled_fp8(weights: dict[str, torch.Tensor], convention: str, format: str = "float8_e4m3fn") -> dict[str, torch.Tensor]:
    """``weights`` (the original Wan naming) in ComfyUI's fp8-scaled layout: every matrix in
    float8 e4m3 with a per-tensor scale (``scale_weight`` and the ``scaled_fp8`` marker, or newer
    ComfyUI's ``weight_scale`` and ``comfy_quant``), the rest as they are, prefixed."""
    layout: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        name = COMFYUI_PREFIX + key
        if tensor.ndim != 2:
            layout[name] = tensor
            continue
        scale = tensor.abs().max() / 448  # float8 e4m3's largest number
        layout[name] = (tensor / scale).to(torch.float8_e4m3fn)
        stem = name.removesuffix(".weight")
        if convention == "scale_weight":
            layout[stem + ".scale_weight"] = scale.reshape(1)
        else:
            layout[stem + ".weight_scale"] = scale
            layout[stem + ".comfy_quant"] = comfy_quant(format)
    if convention == "scale_weight":
        layout[COMFYUI_PREFIX + "scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return layout


def dequantised(layout: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference: each float8 weight times its scale, in float32; scales and markers gone."""
    plain = {}
    for key, tensor in layout.items():
        if key.endswith((".scale_weight", ".weight_scale", ".comfy_quant", "scaled_fp8")):
            continue
        stem = key.removesuffix(".weight")
        scale = layout.get(stem + ".scale_weight", layout.get(stem + ".weight_scale"))
        plain[key] = tensor.to(torch.float32) * scale if tensor.dtype == torch.float8_e4m3fn else tensor
    return plain


@pytest.mark.parametrize("convention", ["scale_weight", "weight_scale"])
def test_a_scaled_fp8_file_equals_its_dequantised_weights(tmp_path, photo, tiny_wan, plain, convention):
    layout = scaled_fp8({original_name(key): tensor for key, tensor in folder_weights(tiny_wan).items()}, convention)
    path = tmp_path / "wan-fp8-scaled.safetensors"
    save_file(layout, path)
    out = tmp_path / "z.safetensors"
    cli("generate", photo, "--model", "tiny-random-wan", "--transformer", path, *ARGS, "-o", out)
    latents = latentfile.read(out).latents
    assert torch.equal(latents, diffusers_generation(tiny_wan, photo, dequantised(layout)))
    assert torch.allclose(latents, plain.latents, rtol=0, atol=0.2)  # fp8: near the folder's


def test_another_comfyui_quantisation_is_refused(tmp_path, photo, tiny_wan):
    layout = scaled_fp8({original_name(key): tensor for key, tensor in folder_weights(tiny_wan).items()}, "weight_scale",
                        format="nvfp4")
    path = tmp_path / "wan-nvfp4.safetensors"
    save_file(layout, path)
    stderr = refused(tmp_path, photo, "--transformer", path)
    assert stderr.startswith(f"vidlatent: error: --transformer {path}: key {COMFYUI_PREFIX}")
    assert stderr.endswith(".comfy_quant: ComfyUI's 'nvfp4' quantisation is not supported (its fp8-scaled one is)\n")


def test_auto_offload_counts_the_files_weights(files, gguf_file, tiny_wan):
    from vidlatent.component_files import ComponentFile, loaded_bytes
    from vidlatent.models import weight_bytes

    folder = weight_bytes(tiny_wan, ["transformer"], torch.float32)["transformer"]
    assert loaded_bytes(ComponentFile("transformer", str(files["comfyui"])), 4) == folder
    assert loaded_bytes(ComponentFile("transformer", str(gguf_file)), 4) == gguf_file.stat().st_size < folder


# --- LTX-Video ---------------------------------------------------------------------------------

# diffusers' names -> the original LTX-Video checkpoint's (the inverse of diffusers'
# convert_ltx_transformer_checkpoint_to_diffusers).
LTX_TO_ORIGINAL = [("proj_in", "patchify_proj"), ("time_embed", "adaln_single"), ("norm_q", "q_norm"), ("norm_k", "k_norm")]


@pytest.fixture(scope="module")
def ltx_file(tmp_path_factory, tiny_ltx) -> Path:
    """tiny-random-ltx's transformer in ComfyUI's layout."""
    comfyui = {}
    for key, tensor in folder_weights(tiny_ltx).items():
        for diffusers_name, original in LTX_TO_ORIGINAL:
            key = key.replace(diffusers_name, original)
        comfyui[COMFYUI_PREFIX + key] = tensor
    path = tmp_path_factory.mktemp("ltx-file") / "ltx.safetensors"
    save_file(comfyui, path)
    return path


def test_an_ltx_transformer_file_in_comfyuis_layout_loads_the_folders_weights(tiny_ltx, ltx_file):
    from vidlatent.component_files import ComponentFile
    from vidlatent.models import LoadOptions, load_pipeline

    weights = folder_weights(tiny_ltx)
    loaded = load_pipeline(LoadOptions(model="tiny-random-ltx", components=(ComponentFile("transformer", str(ltx_file)),)))
    state = loaded.pipeline.transformer.state_dict()
    assert set(state) == set(weights) and all(torch.equal(state[key], weights[key]) for key in weights)
    assert all((state[key].dtype, state[key].stride()) == (weights[key].dtype, weights[key].stride()) for key in weights)


# --- --sampler and --shift ---------------------------------------------------------------------

TEXT = ["--prompt", "a fox", "--size", "64x64", "--frames", "5", "--steps", "3", "--seed", "4", "-q"]


@pytest.mark.parametrize(("sampler", "shift", "scheduler", "config"), [
    (None, None, None, {}),
    ("unipc", None, None, {}),
    (None, 7.0, "UniPCMultistepScheduler", {"flow_shift": 7.0}),
    ("dpm++", None, "DPMSolverMultistepScheduler", {}),
    ("dpm++", 2.0, "DPMSolverMultistepScheduler", {"flow_shift": 2.0}),
    ("euler", None, "FlowMatchEulerDiscreteScheduler", {"shift": 5.0}),
    ("euler", 7.0, "FlowMatchEulerDiscreteScheduler", {"shift": 7.0}),
])
def test_sampler_and_shift_equal_diffusers_with_that_scheduler(tmp_path, tiny_wan22, sampler, shift, scheduler, config):
    """The pipeline's own scheduler (UniPC, flow_shift 5 on the tiny Wan 2.2) by default; a
    sampler or shift equals diffusers with ``Class.from_config(the pipeline's config, ...)``."""
    import diffusers

    flags = [*(["--sampler", sampler] if sampler else []), *(["--shift", shift] if shift else [])]
    out = tmp_path / "z.safetensors"
    cli("generate", "--model", "tiny-random-wan22", *TEXT, *flags, "-o", out)
    clip = latentfile.read(out)
    pipeline = diffusers.WanPipeline.from_pretrained(tiny_wan22)
    pipeline.set_progress_bar_config(disable=True)
    if scheduler is not None:
        pipeline.scheduler = getattr(diffusers, scheduler).from_config(pipeline.scheduler.config, **config)
    with torch.no_grad():
        output = pipeline(prompt="a fox", height=64, width=64, num_frames=5, num_inference_steps=3,
                          generator=torch.Generator("cpu").manual_seed(4), output_type="latent")
    assert torch.equal(clip.latents, output.frames[0].permute(1, 0, 2, 3))
    arguments = clip.history[-1]["arguments"]
    assert (arguments["sampler"], arguments["shift"]) == (sampler or "unipc", shift or 5.0)


def test_regenerating_takes_the_sampler_for_its_tail(tiny_wan22):
    """edit --strength and its kin run the last steps of the sampler's own schedule: at strength
    1 they are generate with that sampler; part-way, the sampler changes the result."""
    from vidlatent.generation import Knobs, generate, regenerate
    from vidlatent.models import LoadOptions, load_pipeline

    model = load_pipeline(LoadOptions(model="tiny-random-wan22"), image=False)
    euler = Knobs(prompt="a fox", frames=5, steps=3, sampler="euler", shift=7.0)
    clip = generate(model, None, knobs=euler, seed=4, size=(64, 64))
    again = regenerate(model, None, clip.latents, strength=1, knobs=euler, seed=4, size=(64, 64))
    assert torch.equal(again, clip.latents)
    half = {sampler: regenerate(model, None, clip.latents, strength=0.7, knobs=dataclasses.replace(euler, sampler=sampler),
                                seed=5, size=(64, 64)) for sampler in ("euler", "unipc")}
    assert not torch.equal(half["euler"], half["unipc"])
    assert type(model.pipeline.scheduler).__name__ == "UniPCMultistepScheduler"  # the pipeline's own, given back


@pytest.mark.parametrize(("flags", "model", "message"), [
    (["--sampler", "ddim"], "tiny-random-wan22", "--sampler ddim: expected one of unipc, dpm++, euler"),
    (["--shift", "0"], "tiny-random-wan22", "--shift 0.0: must be at least 0.1"),
    (["--shift", "3"], "tiny-random", "--shift: Stable Video Diffusion"),
    (["--sampler", "euler"], "tiny-random-ltx", "--sampler: LTX-Video"),
])
def test_a_sampler_or_shift_a_model_cannot_take_is_refused(tmp_path, photo, flags, model, message):
    result = cli("generate", photo, "--model", model, *flags, "--seed", "1", "-o", tmp_path / "x.safetensors", code=2)
    assert result.stderr.startswith(f"vidlatent: error: {message}") and result.stderr.count("\n") == 1, result.stderr


# --- --recipe ----------------------------------------------------------------------------------


def test_a_recipe_is_the_flags_it_holds_and_flags_given_win(tmp_path, files, photo, plain):
    shutil.copy(files["diffusers"], tmp_path / "wan.safetensors")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('model = "tiny-random-wan"\ntransformer = "wan.safetensors"\nprompt = "a fox"\nsteps = 3\n'
                      'frames = 9\nsampler = "unipc"\n')
    rest = ["--size", "64x64", "--seed", "4", "-q"]
    cli("generate", photo, "--recipe", recipe, "--steps", "2", *rest, "-o", tmp_path / "a.safetensors")
    clip = latentfile.read(tmp_path / "a.safetensors")
    assert torch.equal(clip.latents, plain.latents)  # the folder's own file, 2 steps (the flag), 9 frames (the recipe)
    assert clip.history[-1]["arguments"]["acceleration"] == {"files": {"transformer": str(tmp_path / "wan.safetensors")}}


@pytest.mark.parametrize(("text", "message"), [
    ('model = "tiny-random-wan"\nseeed = 3\n', "'seeed' is no recipe key; a recipe takes model, dtype"),
    ('steps = 0\n', None),
    ('[steps]\nvalue = 2\n', "'steps' is a table; give it a value (recipes are flat)"),
    ('model = \n', "not a TOML recipe"),
])
def test_a_bad_recipe_is_refused_in_one_line(tmp_path, photo, text, message):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(text)
    result = cli("generate", photo, "--recipe", recipe, "-o", tmp_path / "x.safetensors", code=2)
    assert result.stderr.count("\n") == 1, result.stderr
    expected = f"--recipe {recipe}: {message}" if message else "--steps 0: must be at least 1"
    assert expected in result.stderr


def test_the_example_recipes_hold_recipe_keys_only():
    from vidlatent.recipes import read_recipe

    examples = sorted((Path(__file__).resolve().parents[1] / "examples" / "recipes").glob("*.toml"))
    assert examples
    for example in examples:
        assert read_recipe(str(example))["model"]


def test_a_recipes_steps_are_denoising_steps_in_interpolate_too(tmp_path):
    # --steps has one meaning in every command (denoising steps): a recipe's steps reach interpolate
    # as such, and a bridge without --keyframes or --refine is told the morph count is --morphs.
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('model = "tiny-random-wan"\nsteps = 2\n')
    result = cli("interpolate", "a.safetensors", "b.safetensors", "--recipe", recipe, "-o", tmp_path / "x.safetensors", code=2)
    assert "--steps is denoising steps" in result.stderr and result.stderr.count("\n") == 1
