"""The model loader: devices, dtypes, offload, folders, variants, refusals and latent spaces.

Everything loads the real diffusers/transformers classes from the tiny-random folder (or
copies of it, changed on disk), offline and on the CPU.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidlatent import models
from vidlatent.errors import ModelError, UsageError
from vidlatent.latentfile import LatentSpace
from vidlatent.models import ALIASES, LoadOptions, LoadedModel, latent_space_of, load_pipeline, load_vae, model_folder

CPU = torch.device("cpu")
WEIGHTS = "diffusion_pytorch_model.safetensors"


def copy_model(tiny_model: Path, tmp_path: Path, name: str = "copy") -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny_model, folder)
    return folder


# --- devices, dtypes, offload, option names -------------------------------------------------


def test_auto_device_is_cpu_here():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("an accelerator is present")
    assert models.resolve_device("auto") == CPU
    assert models.resolve_device("cpu") == CPU


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_usage_error(name):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(UsageError, match="CUDA is not available") as info:
        models.resolve_device(name)
    assert f"--device {name}" in str(info.value)
    assert info.value.exit_code == 2


def test_mps_without_mps_is_a_usage_error():
    if torch.backends.mps.is_available():
        pytest.skip("MPS is present")
    with pytest.raises(UsageError, match="MPS is not available"):
        models.resolve_device("mps")


def test_fp16_on_cpu_falls_back_to_fp32_with_a_note():
    notes: list[str] = []
    assert models.resolve_dtype("fp16", CPU, notes.append) == torch.float32
    assert notes == ["fp16 is not supported on CPU; using fp32 instead"]


def test_dtypes_on_cpu():
    notes: list[str] = []
    assert models.resolve_dtype("auto", CPU, notes.append) == torch.float32
    assert models.resolve_dtype("fp32", CPU, notes.append) == torch.float32
    assert models.resolve_dtype("bf16", CPU, notes.append) == torch.bfloat16
    assert notes == []


def test_dtypes_on_a_gpu_device_need_no_gpu():
    cuda = torch.device("cuda")
    assert models.resolve_dtype("auto", cuda) == torch.float16
    assert models.resolve_dtype("fp16", cuda) == torch.float16
    assert models.resolve_dtype("bf16", cuda) == torch.bfloat16
    assert models.resolve_dtype("fp32", cuda) == torch.float32


@pytest.mark.parametrize("name", ["model", "sequential"])
def test_offload_on_cpu_is_a_usage_error(name):
    with pytest.raises(UsageError, match="needs --device cuda"):
        models.resolve_offload(name, CPU, models.PIPELINE_COMPONENTS)


@pytest.mark.parametrize("name", ["auto", "none"])
def test_offload_on_cpu_is_none(name):
    assert models.resolve_offload(name, CPU, models.PIPELINE_COMPONENTS) == "none"


def test_offload_without_unet_on_a_gpu_device_is_none():
    # auto only considers offload when the UNet is loaded; no GPU is queried for a VAE alone.
    assert models.resolve_offload("auto", torch.device("cuda"), ("vae",)) == "none"
    assert models.resolve_offload("sequential", torch.device("cuda"), ("vae",)) == "sequential"


@pytest.mark.parametrize(
    "options, flag",
    [
        (LoadOptions(device="gpu"), "--device 'gpu'"),
        (LoadOptions(device="cuda:x"), "--device 'cuda:x'"),
        (LoadOptions(device="cuda:"), "--device 'cuda:'"),
        (LoadOptions(device="CPU"), "--device 'CPU'"),
        (LoadOptions(dtype="fp8"), "--dtype 'fp8'"),
        (LoadOptions(dtype="float16"), "--dtype 'float16'"),
        (LoadOptions(offload="always"), "--offload 'always'"),
    ],
)
def test_validate_rejects_bad_names(options, flag):
    with pytest.raises(UsageError) as info:
        options.validate()
    assert str(info.value).startswith(flag)
    assert "expected one of" in str(info.value)


@pytest.mark.parametrize("device", [*models.DEVICES, "cuda:0", "cuda:12"])
def test_validate_accepts_good_names(device):
    for dtype in models.DTYPES:
        for offload in models.OFFLOADS:
            LoadOptions(device=device, dtype=dtype, offload=offload).validate()


def test_bad_names_are_refused_before_any_loading(tmp_path):
    # validate() runs first: even a model folder that does not exist is not looked at.
    with pytest.raises(UsageError, match="--dtype"):
        load_vae(LoadOptions(model=str(tmp_path / "missing"), dtype="half"))


# --- model folders ---------------------------------------------------------------------------


def test_tiny_random_is_a_diffusers_folder(tiny_model):
    folder = model_folder("tiny-random", ("vae",))
    assert folder == tiny_model
    assert (folder / "model_index.json").is_file()
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableVideoDiffusionPipeline"
    for name in ("vae", "unet"):
        assert (folder / name / WEIGHTS).is_file()


def test_aliases():
    assert {name: ALIASES[name] for name in ("svd", "svd-xt")} == {
        "svd": "stabilityai/stable-video-diffusion-img2vid",
        "svd-xt": "stabilityai/stable-video-diffusion-img2vid-xt",
    }
    assert ALIASES["wan22-ti2v-5b"] == "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    assert models.DEFAULT_MODEL == ALIASES["svd-xt"]


@pytest.mark.parametrize("alias", ["svd", "svd-xt"])
def test_alias_offline_and_not_cached_is_a_model_error(alias):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    with pytest.raises(ModelError) as info:
        model_folder(alias, ("vae",))
    message = str(info.value)
    assert ALIASES[alias] in message
    assert "not on disk" in message
    assert "--model PATH" in message
    assert "\n" not in message


def test_hub_id_offline_and_not_cached_is_a_model_error():
    with pytest.raises(ModelError, match="someone/some-model is not on disk"):
        model_folder("someone/some-model", ("vae", "unet"))


def test_folder_without_model_index_is_a_model_error(tmp_path):
    (tmp_path / "vae").mkdir()
    with pytest.raises(ModelError, match="no model_index.json"):
        model_folder(str(tmp_path), ("vae",))


@pytest.mark.parametrize("name", ["missing", "./missing", "a/b/c", "~/surely-not-a-vidlatent-model"])
def test_missing_folder_is_a_model_error(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="no such model folder"):
        model_folder(name, ("vae",))


def test_absolute_missing_folder_and_a_file_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        model_folder(str(tmp_path / "missing"), ("vae",))
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ModelError, match="no such model folder"):
        model_folder(str(file), ("vae",))


def test_a_local_folder_is_returned_as_is(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    assert model_folder(str(folder), ("vae",)) == folder


def test_native_area(tiny_model, tmp_path):
    from vidlatent.families import svd

    # sample_size 8 x 2**(4 VAE blocks - 1) = 64 pixels a side.
    assert svd.native_area(tiny_model) == 64 * 64
    assert svd.native_area(tmp_path) == svd.DEFAULT_NATIVE_AREA == 1024 * 576


# --- loading -----------------------------------------------------------------------------------


def test_load_vae_tiny_random(tiny_model):
    from diffusers import AutoencoderKLTemporalDecoder

    notes: list[str] = []
    loaded = load_vae(LoadOptions(model="tiny-random"), notes.append)
    assert isinstance(loaded, LoadedModel)
    assert type(loaded.vae) is AutoencoderKLTemporalDecoder
    assert loaded.pipeline is None
    assert loaded.components == ("vae",)
    assert loaded.model_id == "tiny-random"
    assert loaded.folder == tiny_model
    assert (loaded.device, loaded.execution_device, loaded.dtype, loaded.offload) == (CPU, CPU, torch.float32, "none")
    assert loaded.native_area == 64 * 64
    assert notes == []
    space = LatentSpace.parse(loaded.latent_space)
    assert space.vae == "AutoencoderKLTemporalDecoder"
    assert space.channels == 4
    assert space.scaling_factor == pytest.approx(0.18215)
    assert len(space.fingerprint) == 4
    assert loaded.latent_space == latent_space_of(loaded.vae)
    # Loaded for inference, on the CPU, with the saved weights.
    assert not loaded.vae.training
    assert all(p.device == CPU and p.dtype == torch.float32 for p in loaded.vae.parameters())
    saved = load_file(tiny_model / "vae" / WEIGHTS)
    state = loaded.vae.state_dict()
    assert set(saved) == set(state)
    assert all(torch.equal(saved[key], state[key]) for key in saved)


def test_load_vae_from_a_folder_records_its_absolute_path(tiny_model, tmp_path, monkeypatch):
    folder = copy_model(tiny_model, tmp_path)
    monkeypatch.chdir(tmp_path)
    loaded = load_vae(LoadOptions(model="copy"))
    assert loaded.model_id == str(folder.resolve())
    assert loaded.folder == Path("copy")


def test_load_vae_fp16_on_cpu_notes_and_loads_fp32(tiny_model):
    notes: list[str] = []
    loaded = load_vae(LoadOptions(model=str(tiny_model), dtype="fp16"), notes.append)
    assert notes == ["fp16 is not supported on CPU; using fp32 instead"]
    assert loaded.dtype == torch.float32
    assert next(loaded.vae.parameters()).dtype == torch.float32


def test_load_vae_bf16(tiny_model):
    loaded = load_vae(LoadOptions(model=str(tiny_model), dtype="bf16"))
    assert loaded.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in loaded.vae.parameters())
    fp32 = load_vae(LoadOptions(model=str(tiny_model)))
    assert LatentSpace.parse(loaded.latent_space).matches(LatentSpace.parse(fp32.latent_space))


def test_load_vae_loads_nothing_but_the_vae(tiny_model):
    # In a fresh interpreter: after load_vae, no UNet or image encoder exists anywhere.
    # (transformers itself does get imported: `from diffusers import AutoencoderKLTemporalDecoder`
    # imports it, so "transformers not in sys.modules" cannot be promised.)
    script = (
        "import gc, sys, torch\n"
        "from vidlatent.models import load_vae, LoadOptions\n"
        f"loaded = load_vae(LoadOptions(model={str(tiny_model)!r}))\n"
        "names = sorted(type(o).__name__ for o in gc.get_objects() if isinstance(o, torch.nn.Module)"
        " and type(o).__name__ in ('AutoencoderKLTemporalDecoder', 'UNetSpatioTemporalConditionModel',"
        " 'CLIPVisionModelWithProjection'))\n"
        "print(names, loaded.pipeline)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['AutoencoderKLTemporalDecoder'] None"


def test_load_vae_needs_no_other_weights(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    (folder / "unet" / WEIGHTS).unlink()
    (folder / "image_encoder" / "model.safetensors").unlink()
    loaded = load_vae(LoadOptions(model=str(folder)))
    assert loaded.latent_space == load_vae(LoadOptions(model=str(tiny_model))).latent_space
    only_vae = load_pipeline(LoadOptions(model=str(folder)), components=("vae",))
    assert only_vae.pipeline.unet is None
    with pytest.raises(ModelError) as info:
        load_pipeline(LoadOptions(model=str(folder)))
    assert "\n" not in str(info.value)


def test_load_pipeline_with_only_the_vae(tiny_model):
    from diffusers import AutoencoderKLTemporalDecoder, StableVideoDiffusionPipeline

    loaded = load_pipeline(LoadOptions(model="tiny-random"), components=("vae",))
    pipeline = loaded.pipeline
    assert isinstance(pipeline, StableVideoDiffusionPipeline)
    assert type(pipeline.vae) is AutoencoderKLTemporalDecoder
    assert loaded.vae is pipeline.vae
    assert pipeline.unet is None
    assert pipeline.image_encoder is None
    assert pipeline.scheduler is None
    assert pipeline.feature_extractor is None
    assert loaded.components == ("vae",)
    assert (loaded.device, loaded.dtype, loaded.offload) == (CPU, torch.float32, "none")
    assert loaded.latent_space == load_vae(LoadOptions(model="tiny-random")).latent_space
    assert loaded.native_area == 64 * 64


def test_load_pipeline_in_full(tiny_model):
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    loaded = load_pipeline(LoadOptions(model="tiny-random"))
    pipeline = loaded.pipeline
    assert loaded.components == models.PIPELINE_COMPONENTS
    assert all(getattr(pipeline, name) is not None for name in models.PIPELINE_COMPONENTS)
    assert type(pipeline.vae) is AutoencoderKLTemporalDecoder
    assert type(pipeline.unet) is UNetSpatioTemporalConditionModel
    assert type(pipeline.image_encoder) is CLIPVisionModelWithProjection
    assert type(pipeline.scheduler) is EulerDiscreteScheduler
    assert pipeline.scheduler.config.prediction_type == "v_prediction"
    assert pipeline.unet.config.sample_size == 8
    assert pipeline.unet.dtype == torch.float32 and pipeline.unet.device == CPU
    assert LatentSpace.parse(loaded.latent_space).vae == "AutoencoderKLTemporalDecoder"


def test_load_pipeline_offload_on_cpu_is_a_usage_error():
    with pytest.raises(UsageError, match="needs --device cuda"):
        load_pipeline(LoadOptions(model="tiny-random", offload="model"))


# --- weight variants ---------------------------------------------------------------------------


@pytest.fixture
def fp16_folder(tiny_model, tmp_path) -> Path:
    """A copy of tiny-random with fp16 files for the VAE only, saved by diffusers itself."""
    from diffusers import AutoencoderKLTemporalDecoder

    folder = copy_model(tiny_model, tmp_path, "fp16")
    vae = AutoencoderKLTemporalDecoder.from_pretrained(tiny_model, subfolder="vae").half()
    vae.save_pretrained(folder / "vae", variant="fp16")
    assert (folder / "vae" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert (folder / "vae" / WEIGHTS).is_file()
    return folder


def test_variant_fp16_when_every_weighted_component_has_fp16_files(fp16_folder):
    assert models._variant(fp16_folder, ("vae",), torch.float16) == "fp16"
    # The scheduler and feature extractor have no weights and do not count.
    assert models._variant(fp16_folder, ("vae", "scheduler", "feature_extractor"), torch.float16) == "fp16"


def test_variant_none_for_other_dtypes(fp16_folder):
    assert models._variant(fp16_folder, ("vae",), torch.float32) is None
    assert models._variant(fp16_folder, ("vae",), torch.bfloat16) is None


def test_variant_none_when_files_are_missing(fp16_folder, tiny_model):
    assert models._variant(tiny_model, ("vae",), torch.float16) is None
    # The UNet has no fp16 files in this copy: a full load would use the fp32 ones.
    assert models._variant(fp16_folder, ("vae", "unet"), torch.float16) is None
    assert models._variant(fp16_folder, models.PIPELINE_COMPONENTS, torch.float16) is None


def test_fp16_variant_files_load_as_the_same_latent_space(fp16_folder, tiny_model):
    from diffusers import AutoencoderKLTemporalDecoder

    variant = models._variant(fp16_folder, ("vae",), torch.float16)
    vae = AutoencoderKLTemporalDecoder.from_pretrained(
        fp16_folder, subfolder="vae", torch_dtype=torch.float16, variant=variant, use_safetensors=True
    )
    assert vae.dtype == torch.float16
    reference = load_vae(LoadOptions(model=str(tiny_model)))
    assert LatentSpace.parse(latent_space_of(vae)).matches(LatentSpace.parse(reference.latent_space))


# --- refusals ------------------------------------------------------------------------------------


def test_pickle_weights_are_refused(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    state = load_file(folder / "vae" / WEIGHTS)
    torch.save(state, folder / "vae" / "diffusion_pytorch_model.bin")
    (folder / "vae" / WEIGHTS).unlink()
    with pytest.raises(ModelError) as info:
        load_vae(LoadOptions(model=str(folder)))
    message = str(info.value)
    assert "\n" not in message
    assert "safetensors" in message
    assert message.startswith(f"--model {folder}")


def test_another_pipeline_class_is_refused(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError) as info:
        load_pipeline(LoadOptions(model=str(folder)), components=("vae",))
    message = str(info.value)
    assert "StableVideoDiffusionPipeline" in message
    assert "StableDiffusionPipeline," in message
    assert "\n" not in message


def test_load_vae_refuses_another_pipelines_vae(tiny_model, tmp_path):
    from diffusers import AutoencoderKL

    folder = copy_model(tiny_model, tmp_path)
    shutil.rmtree(folder / "vae")
    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    ).save_pretrained(folder / "vae")
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="StableDiffusionPipeline", vae=["diffusers", "AutoencoderKL"])
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="not a Stable Video Diffusion model"):
        load_vae(LoadOptions(model=str(folder)))


def test_unreadable_model_index_is_refused(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    (folder / "model_index.json").write_text("{not json")
    with pytest.raises(ModelError, match="model_index.json cannot be read"):
        load_pipeline(LoadOptions(model=str(folder)))


# --- latent spaces --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vae(tiny_model):
    return load_vae(LoadOptions(model=str(tiny_model))).vae


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_latent_space_survives_casting(tiny_vae, dtype):
    fp32 = LatentSpace.parse(latent_space_of(tiny_vae))
    cast = copy.deepcopy(tiny_vae).to(dtype)
    assert cast.dtype == dtype
    other = LatentSpace.parse(latent_space_of(cast))
    assert other.matches(fp32) and fp32.matches(other)
    # The fingerprints are of order one, and the cast moves them only in the last digits.
    assert max(abs(a) for a in fp32.fingerprint) > 0.1
    assert all(abs(a - b) < 0.01 for a, b in zip(fp32.fingerprint, other.fingerprint))


def test_latent_space_of_fp16_and_bf16_copies_match_each_other(tiny_vae):
    half = LatentSpace.parse(latent_space_of(copy.deepcopy(tiny_vae).to(torch.float16)))
    brain = LatentSpace.parse(latent_space_of(copy.deepcopy(tiny_vae).to(torch.bfloat16)))
    assert half.matches(brain) and brain.matches(half)


def test_latent_space_is_deterministic(tiny_vae, tiny_model):
    assert latent_space_of(tiny_vae) == latent_space_of(tiny_vae)
    assert latent_space_of(tiny_vae) == load_vae(LoadOptions(model=str(tiny_model))).latent_space


def test_another_vae_of_the_same_shape_does_not_match(tiny_vae, other_tiny_model):
    ours = LatentSpace.parse(latent_space_of(tiny_vae))
    other_loaded = load_vae(LoadOptions(model=str(other_tiny_model)))
    theirs = LatentSpace.parse(other_loaded.latent_space)
    assert (theirs.vae, theirs.channels, theirs.scaling_factor) == (ours.vae, ours.channels, ours.scaling_factor)
    assert not theirs.matches(ours)
    assert not ours.matches(theirs)
    for dtype in (torch.float16, torch.bfloat16):
        cast = LatentSpace.parse(latent_space_of(copy.deepcopy(other_loaded.vae).to(dtype)))
        assert cast.matches(theirs) and not cast.matches(ours)


# --- tiny models as the families declare them, and hints that name one that can ---------------------


def test_each_tiny_models_declared_spec_is_its_built_folders():
    """What offline hints choose by (``Family.tiny_spec``, nothing built) is what the folder says."""
    from vidlatent import families

    for name, family in families.tiny_models().items():
        assert models.describe(name).spec == family.tiny_spec(name), name


def test_offline_hints_name_a_tiny_model_that_can_do_what_the_model_does():
    from vidlatent import families
    from vidlatent.families.base import IMAGE_OPTIONAL

    hub = families.aliases()
    like = {alias: families.tiny_model_like(families.known_spec(hub[alias])[1]) for alias in
            ("wan21-flf2v", "wan21-i2v-480p", "wan22-t2v-a14b", "wan22-ti2v-5b", "ltx-0.9.5", "svd-xt")}
    assert like == {"wan21-flf2v": "tiny-random-wan-flf2v", "wan21-i2v-480p": "tiny-random-wan", "wan22-t2v-a14b": "tiny-random-wan22",
                    "wan22-ti2v-5b": "tiny-random-wan22", "ltx-0.9.5": "tiny-random-ltx", "svd-xt": "tiny-random"}
    for alias, hub_id in hub.items():  # every checkpoint's stand-in is of its family and conditioned as it is
        family, spec = families.known_spec(hub_id)
        tiny = family.tiny_spec(families.tiny_model_like(spec))
        assert tiny.family == spec.family and tiny.image in (spec.image, IMAGE_OPTIONAL), alias
        assert tiny.last_image or not spec.last_image, alias
    assert families.tiny_model_like(None) == "tiny-random"
    assert families.able_models(lambda spec: spec.last_image, prefer="ltx") == (
        ["ltx-0.9.7-dev", "wan21-flf2v", "wan21-vace-1.3b", "ltx2"],
        ["tiny-random-ltx", "tiny-random-wan-flf2v", "tiny-random-wan-vace", "tiny-random-ltx2"])
