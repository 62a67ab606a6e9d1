"""Big models on ordinary GPUs: --cache, --compile, --offload group, --quantize fp8, --vae-tiling
and --lora, on the tiny Wan and SVD models (real diffusers and peft parts, CPU).

What needs a GPU (CUDA streams for group offload, fp8 on a GPU, CUDA graphs) is checked here
only as far as a CPU can: the choices and refusals, not the speed.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from vidlatent import acceleration, latentfile, media, models
from vidlatent.cli import main
from vidlatent.errors import UsageError
from vidlatent.lora_files import Lora, parse_lora
from vidlatent.generation import Knobs, generate
from vidlatent.models import LoadOptions, load_pipeline
from vidlatent.step_caches import DEFAULT_CACHE_THRESHOLD, CacheChoice, parse_cache

FOX = ["--prompt", "a fox", "--size", "64x64", "--frames", "5", "--steps", "2", "--seed", "3"]


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == code, result.output
    return result


def wan22(tmp_path, *flags: str, name: str = "z") -> latentfile.LatentClip:
    """A tiny Wan 2.2 TI2V generation from the prompt, with ``flags``, read back."""
    out = tmp_path / f"{name}.safetensors"
    cli("generate", "--model", "tiny-random-wan22", *FOX, *flags, "-o", out, "-q")
    return latentfile.read(out)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, tiny_wan22) -> latentfile.LatentClip:
    return wan22(tmp_path_factory.mktemp("plain"))


def make_lora(folder, path, *, seed: int, rank: int = 4, layers=("attn1.to_q", "attn1.to_v", "ffn.net.2"),
              extra: dict | None = None):
    """A LoRA file in diffusers' naming for the tiny transformer in ``folder``, random under ``seed``."""
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    transformer = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer")
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, layer in transformer.named_modules():
        if name.endswith(layers) and isinstance(layer, torch.nn.Linear):
            weights[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, layer.in_features, generator=generator) * 0.2
            weights[f"transformer.{name}.lora_B.weight"] = torch.randn(layer.out_features, rank, generator=generator) * 0.2
    weights.update(extra or {})
    save_file(weights, str(path))
    return path


@pytest.fixture(scope="module")
def loras(tmp_path_factory, tiny_wan22):
    root = tmp_path_factory.mktemp("loras")
    return {name: make_lora(tiny_wan22, root / f"{name}.safetensors", seed=seed) for name, seed in (("a", 1), ("b", 2))}


# --- parsing and refusals (no model runs) ------------------------------------------------------


def test_parse_cache(tmp_path):
    assert parse_cache("first-block") == CacheChoice("first-block", DEFAULT_CACHE_THRESHOLD)
    assert parse_cache("first-block:0.9") == parse_cache("first-block:threshold=0.9") == CacheChoice("first-block", 0.9)
    assert parse_cache("taylorseer") == CacheChoice("taylorseer", None)
    assert parse_cache("taylorseer:cache_interval=2,use_lite_mode=true").given() == {"cache_interval": 2, "use_lite_mode": True}
    ratios = tmp_path / "r.json"
    ratios.write_text(json.dumps({"format": "vidlatent-mag-ratios", "ratios": [1.0, 0.98, 0.97]}))
    choice = parse_cache(f"mag:ratios={ratios},max_skip_steps=2")
    assert (choice.threshold, choice.ratios, choice.given()) == (0.06, (1.0, 0.98, 0.97), {"threshold": 0.06, "max_skip_steps": 2})
    (tmp_path / "bad.json").write_text(json.dumps({"format": "vidlatent-mag-ratios", "ratios": [1.0, -1]}))
    for bad, message in (("tea", "expected one of first-block, taylorseer, mag"), ("first-block:x", "threshold must be"),
                         ("first-block:-1", "threshold must be"), ("first-block:nan", "threshold must be"),
                         ("mag:0.1,max_skip_steps=2", "mag has no setting '0.1'"),
                         ("taylorseer:0.1", "taylorseer has no setting '0.1'"),
                         ("taylorseer:cache_interval=0", "cache_interval must be a whole number, 1 or more"),
                         ("taylorseer:use_lite_mode=maybe", "use_lite_mode must be true or false"),
                         (f"mag:ratios={tmp_path / 'bad.json'}", "not a ratios file")):
        with pytest.raises(UsageError, match=f"--cache .*{message}"):
            parse_cache(bad)


def test_parse_lora(tmp_path):
    file = tmp_path / "style.safetensors"
    save_file({"transformer.x.lora_A.weight": torch.zeros(1, 1)}, file)
    assert parse_lora(str(file)) == Lora(str(file), 1.0, None)
    assert parse_lora(f"{file}:0.5") == Lora(str(file), 0.5, None)
    assert parse_lora(f"{file}:-1:low") == Lora(str(file), -1.0, "low")
    with pytest.raises(UsageError, match="no such file"):
        parse_lora(str(tmp_path / "missing.safetensors:1"))
    with pytest.raises(UsageError, match="scale before the expert"):
        parse_lora(f"{file}:high")
    (tmp_path / "style.pt").write_bytes(b"")
    with pytest.raises(UsageError, match="safetensors files only"):
        parse_lora(str(tmp_path / "style.pt"))


@pytest.mark.parametrize("command, flags, message", [
    ("generate", ["--cache", "first-block:0.9"], "--cache: Stable Video Diffusion's denoiser has no step cache"),
    ("generate", ["--lora", "{lora}"], "--lora: Stable Video Diffusion's pipeline has no LoRA loader"),
    ("generate", ["--vae-tiling"], "--vae-tiling: Stable Video Diffusion's VAE has no tiled decode"),
    ("generate", ["--quantize", "fp8", "--offload", "group"], "--offload group moves weights between a GPU and the CPU"),
])
def test_what_svd_cannot_take_is_refused_in_one_line_before_it_loads(tmp_path, tiny_model, loras, command, flags, message):
    from tests.conftest import data_file

    flags = [flag.format(lora=loras["a"]) for flag in flags]
    result = CliRunner().invoke(main, [command, str(data_file("test_image.png")), "--model", "tiny-random", "--seed", "1",
                                       "--device", "cpu", *flags, "-o", str(tmp_path / "x.mp4")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"vidlatent: error: {message}") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_an_expert_on_a_one_expert_model_is_refused(tmp_path, loras):
    result = cli("generate", "--model", "tiny-random-wan22", *FOX, "--lora", f"{loras['a']}:1:high", "-o",
                 tmp_path / "x.safetensors", code=2)
    assert "has one transformer; leave the expert out" in result.stderr


def test_auto_offload_picks_by_size_and_free_memory():
    gib = 2**30
    weights = {"transformer": 10 * gib, "text_encoder": 6 * gib, "vae": gib}
    assert models.auto_offload(weights, 40 * gib)[0] == "none"
    assert models.auto_offload(weights, 16 * gib)[0] == "model"  # 10 GiB + reserve fits; 17 GiB + reserve does not
    choice, reason = models.auto_offload(weights, 8 * gib)
    assert choice == "group" and "largest component (transformer) 10.0 GiB" in reason and "8.0 GiB free" in reason
    # No model named (vidlatent env): the rule, not a choice; no GPU is queried for a VAE alone.
    assert models.resolve_offload("auto", torch.device("cuda"), ("transformer",)) == "by model size"
    assert models.resolve_offload("auto", torch.device("cuda"), ("vae",)) == "none"
    assert models.resolve_offload("group", torch.device("cuda"), ("transformer",)) == "group"


def test_weight_bytes_come_from_the_headers(tiny_wan22):
    pipeline = load_pipeline(LoadOptions(model="tiny-random-wan22"), image=False).pipeline
    sizes = models.weight_bytes(tiny_wan22, ("transformer", "vae", "tokenizer"), torch.float32)
    assert set(sizes) == {"transformer", "vae"}
    # safetensors holds every parameter (and persistent buffer) once: at least the parameters' bytes.
    params = sum(p.numel() * 4 for p in pipeline.transformer.parameters())
    assert params <= sizes["transformer"] <= params * 1.01
    fp8 = models.weight_bytes(tiny_wan22, ("transformer",), torch.bfloat16, fp8=("transformer",))
    assert fp8["transformer"] * 4 == sizes["transformer"]


# --- --cache -----------------------------------------------------------------------------------


def test_cache_runs_skips_and_records_what_it_skipped(tmp_path, plain):
    clip = wan22(tmp_path, "--cache", "first-block:0.9", "--steps", "4")
    record = clip.history[-1]["arguments"]["acceleration"]["cache"]
    # Guidance 5: a conditional and an unconditional call per step, each with its own cache.
    assert record["method"] == "first-block" and record["threshold"] == 0.9
    assert record["steps"] == 4 and record["denoiser_calls"] == 8
    assert 0 < record["skipped_calls"] <= 6 and record["skipped_steps"] <= 3  # the first step always computes
    assert torch.isfinite(clip.latents).all()


def test_the_cache_counter_counts_what_the_blocks_did(tiny_wan22):
    """Threshold 0: nothing is skipped and the latents equal the uncached ones bit for bit; a
    threshold no change reaches: every call after the first step is skipped."""
    knobs = Knobs(prompt="a fox", frames=5, steps=3)
    plain = load_pipeline(LoadOptions(model="tiny-random-wan22"), image=False)
    expected = generate(plain, None, knobs=knobs, seed=3, size=(64, 64)).latents
    for threshold, skipped in ((0.0, 0), (1e9, 4)):
        cached = load_pipeline(LoadOptions(model="tiny-random-wan22",
                                           acceleration=acceleration.Acceleration(cache=CacheChoice(threshold=threshold))),
                               image=False)
        clip = generate(cached, None, knobs=knobs, seed=3, size=(64, 64))
        record = clip.history[-1]["arguments"]["acceleration"]["cache"]
        assert (record["denoiser_calls"], record["skipped_calls"], record["skipped_steps"]) == (6, skipped, skipped // 2)
        if threshold == 0:
            assert torch.equal(clip.latents, expected)


@pytest.fixture(scope="module")
def wan22_four_steps(tiny_wan22):
    """Tiny Wan 2.2 text to video at 4 steps without acceleration: its knobs and latents."""
    knobs = Knobs(prompt="a fox", frames=5, steps=4)
    model = load_pipeline(LoadOptions(model="tiny-random-wan22"), image=False)
    return knobs, generate(model, None, knobs=knobs, seed=3, size=(64, 64)).latents


def accelerated(knobs, **fields):
    """A tiny Wan 2.2 generation with ``Acceleration(**fields)``: the clip."""
    model = load_pipeline(LoadOptions(model="tiny-random-wan22", acceleration=acceleration.Acceleration(**fields)),
                          image=False)
    return generate(model, None, knobs=knobs, seed=3, size=(64, 64))


def test_caches_that_skip_nothing_change_nothing(wan22_four_steps):
    """Their hooks are around every block, yet a step they compute is the step without them: mag at
    threshold 0 and taylorseer before its first cached step equal the plain run bit for bit."""
    knobs, expected = wan22_four_steps
    for choice in (CacheChoice("mag", 0.0, ratios=(1.0, 0.9, 0.9, 0.9)),
                   CacheChoice("taylorseer", None, (("disable_cache_before_step", 10),))):
        clip = accelerated(knobs, cache=choice)
        record = clip.history[-1]["arguments"]["acceleration"]["cache"]
        assert (record["method"], record["denoiser_calls"], record["skipped_calls"]) == (choice.method, 8, 0)
        assert torch.equal(clip.latents, expected)


def test_taylorseer_predicts_between_full_steps(wan22_four_steps):
    """Interval 2 after one full step: steps 1 and 3 are predicted (both calls of each), 0 and 2 run."""
    knobs, expected = wan22_four_steps
    clip = accelerated(knobs, cache=parse_cache("taylorseer:cache_interval=2,disable_cache_before_step=1"))
    record = clip.history[-1]["arguments"]["acceleration"]["cache"]
    assert record == {"method": "taylorseer", "cache_interval": 2, "disable_cache_before_step": 1, "denoiser_calls": 8,
                      "skipped_calls": 4, "steps": 4, "skipped_steps": 2}
    assert torch.isfinite(clip.latents).all() and not torch.equal(clip.latents, expected)


def test_calibrated_mag_cache_skips_and_records_its_ratios(tmp_path, tiny_wan22):
    ratios = tmp_path / "ratios.json"
    cli("calibrate-cache", "--model", "tiny-random-wan22", *FOX, "--steps", "4", "-o", ratios, "-q")
    document = json.loads(ratios.read_text())
    assert document["format"] == "vidlatent-mag-ratios" and document["model"] == "tiny-random-wan22"
    assert len(document["ratios"]) == 4 and document["ratios"][0] == 1.0 and set(document["calls"]) == {"cond", "uncond"}
    assert all(0.5 < value < 2 for value in document["ratios"])
    clip = wan22(tmp_path, "--cache", f"mag:ratios={ratios},threshold=0.5", "--steps", "4")
    record = clip.history[-1]["arguments"]["acceleration"]["cache"]
    assert record["method"] == "mag" and record["threshold"] == 0.5
    assert record["ratios"] == {"source": str(ratios.resolve()), "values": document["ratios"]}
    # The conditional and the unconditional call skip together (one ratio sequence); never the first step.
    assert record["denoiser_calls"] == 8 and 0 < record["skipped_calls"] == 2 * record["skipped_steps"] <= 6


def test_ltx_takes_taylorseer(tmp_path, tiny_ltx):
    out = tmp_path / "l.safetensors"
    cli("generate", "--model", "tiny-random-ltx", "--prompt", "a fox", "--size", "64x64", "--frames", "9", "--steps", "4",
        "--seed", "3", "--cache", "taylorseer:cache_interval=2,disable_cache_before_step=1", "-o", out, "-q")
    record = latentfile.read(out).history[-1]["arguments"]["acceleration"]["cache"]
    # LTX batches the conditional and unconditional calls: one denoiser call per step.
    assert (record["denoiser_calls"], record["skipped_calls"], record["skipped_steps"]) == (4, 2, 2)


def test_published_mag_ratios_are_the_conditional_ones_of_a_40_step_run():
    from vidlatent.families.wan import FAMILY, MAG_RATIOS

    assert set(MAG_RATIOS) <= {checkpoint for checkpoint in models.ALIASES.values()}
    for hub, ratios in MAG_RATIOS.items():
        assert FAMILY.mag_ratios(hub) == ratios and len(ratios) == 40 and ratios[0] == 1.0
        assert all(0.8 < value < 1.05 for value in ratios)


# --- --attention -------------------------------------------------------------------------------


def test_attention_native_equals_the_default_bit_for_bit(wan22_four_steps):
    knobs, expected = wan22_four_steps
    clip = accelerated(knobs, attention="native")
    assert clip.history[-1]["arguments"]["acceleration"] == {"attention": "native"}
    assert torch.equal(clip.latents, expected)


def test_attention_backends_are_checked_against_this_machine():
    from vidlatent import attention

    assert attention.check("native") == "native" and {"native", "flex"} <= set(attention.usable())
    with pytest.raises(UsageError, match=r"^--attention flash_hub: .* needs a CUDA GPU \(--device cpu\); usable here: native"):
        attention.check("flash_hub", device="cpu")
    with pytest.raises(UsageError, match="needs fp16 or bf16 weights"):
        attention.check("flash_hub", device="cuda", dtype="fp32")
    # A package too old: click is installed, at a version below 999.
    too_old = attention.Backend("x", "click", "click", "999", what="x")
    assert attention.missing(too_old).startswith("click>=999; ") and "is installed" in attention.missing(too_old)
    absent = attention.Backend("x", "no-such-package-here", "no_such_package_here", what="x")
    assert "not installed (pip install \"no-such-package-here\")" in attention.missing(absent)


def test_attention_that_cannot_split_is_refused_with_context_parallel():
    from vidlatent.commands.generate import check_context_parallel

    described = models.describe("tiny-random-wan22")
    with pytest.raises(UsageError, match="--attention flex: diffusers cannot split it over processes .* use one of native"):
        check_context_parallel(2, None, described, {}, (64, 64), Knobs(), "flex")


# --- --quantize fp8 ----------------------------------------------------------------------------


def test_fp8_stores_the_denoiser_in_fp8_and_writes_a_clip(tmp_path, plain):
    out = tmp_path / "fox.mp4"
    cli("generate", "--model", "tiny-random-wan22", *FOX, "--quantize", "fp8", "-o", out, "--latent-out",
        tmp_path / "fox.safetensors", "-q")
    assert media.probe(out).frame_count == 5
    clip = latentfile.read(tmp_path / "fox.safetensors")
    assert clip.history[-1]["arguments"]["acceleration"] == {"quantize": "fp8"}
    assert torch.isfinite(clip.latents).all() and not torch.equal(clip.latents, plain.latents)
    model = load_pipeline(LoadOptions(model="tiny-random-wan22", acceleration=acceleration.Acceleration(quantize="fp8")),
                          image=False)
    transformer = model.pipeline.transformer
    dtypes = {name: p.dtype for name, p in transformer.named_parameters()}
    assert dtypes["blocks.0.attn1.to_q.weight"] == torch.float8_e4m3fn
    # The model's own _skip_layerwise_casting_patterns stay in the compute dtype.
    assert dtypes["patch_embedding.weight"] == torch.float32 and dtypes["blocks.0.norm2.weight"] == torch.float32


# --- --vae-tiling ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny-random-wan", "tiny-random-wan22"])
def test_tiled_streamed_decode_equals_diffusers_tiled_decode(name):
    from vidlatent.families.wan import FAMILY

    model = models.load_vae(LoadOptions(model=name))
    vae = model.vae
    latents = torch.randn((3, vae.config.z_dim, 8, 8) if name == "tiny-random-wan" else (3, 48, 4, 4),
                          generator=torch.Generator().manual_seed(0))  # (T, C, h, w): 64x64 pixels
    untiled = torch.cat(list(FAMILY.decode(latents, vae, device=torch.device("cpu"))), 2)
    # 48-pixel tiles every 32 pixels: 2x2 tiles a frame, blended over 16 pixels.
    vae.enable_tiling(tile_sample_min_height=48, tile_sample_min_width=48, tile_sample_stride_height=32,
                      tile_sample_stride_width=32)
    chunks = list(FAMILY.decode(latents, vae, device=torch.device("cpu")))
    assert [chunk.shape[2] for chunk in chunks] == [1, 4, 4]  # still streamed, one latent frame at a time
    z = FAMILY._denormalize(latents.permute(1, 0, 2, 3)[None], vae)  # the pipeline's decode input
    with torch.no_grad():
        expected = vae.tiled_decode(z).sample
    assert torch.equal(torch.cat(chunks, 2), expected)
    # The untiled decode differs: each tile sees only its own pixels (by how much depends on the
    # weights; on these random ones 0.007 (Wan 2.1) and 0.06 (Wan 2.2) on average).
    assert not torch.equal(torch.cat(chunks, 2), untiled)


def test_vae_tiling_writes_a_clip(tmp_path, tiny_wan22):
    out = tmp_path / "big.mp4"
    # 320x320: larger than the VAE's 256-pixel tiles, so the tiled path runs (4 tiles a frame).
    cli("generate", "--model", "tiny-random-wan22", "--prompt", "a fox", "--size", "320x320", "--frames", "5", "--steps",
        "1", "--seed", "1", "--vae-tiling", "-o", out, "-q")
    info = media.probe(out)
    assert (info.width, info.height, info.frame_count) == (320, 320, 5)


def test_tiling_turns_itself_on_where_the_decode_would_not_fit(monkeypatch):
    notes: list[str] = []
    model = models.load_vae(LoadOptions(model="tiny-random-wan"), note=notes.append)
    monkeypatch.setattr(models, "free_memory", lambda device: 1000)
    assert models.plan_vae_tiling(model, (64, 64)) and model.vae.use_tiling
    assert "VAE tiling is on (--no-vae-tiling turns it off)" in notes[-1]
    off = models.load_vae(LoadOptions(model="tiny-random-wan", acceleration=acceleration.Acceleration(vae_tiling=False)))
    assert not models.plan_vae_tiling(off, (64, 64))


# --- --compile ---------------------------------------------------------------------------------


def test_compile_runs_and_writes_a_clip(tmp_path, plain, monkeypatch):
    # aot_eager: dynamo traces the blocks (fullgraph) as inductor would, without C++ code generation,
    # which costs half a minute on two cores (benchmarks/ runs inductor; see BENCHMARKS.md).
    monkeypatch.setenv(acceleration.COMPILE_BACKEND_VARIABLE, "aot_eager")
    out = tmp_path / "fox.mp4"
    result = cli("generate", "--model", "tiny-random-wan22", *FOX, "--compile", "-o", out, "--latent-out",
                 tmp_path / "fox.safetensors")
    assert "the first call compiles" in " ".join(result.stderr.split())  # rich wraps notes at the terminal's width
    assert media.probe(out).frame_count == 5
    clip = latentfile.read(tmp_path / "fox.safetensors")
    assert clip.history[-1]["arguments"]["acceleration"] == {"compile": "aot_eager"}
    assert torch.allclose(clip.latents, plain.latents, atol=1e-4)


# --- --lora ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_a(tmp_path_factory, loras) -> latentfile.LatentClip:
    return wan22(tmp_path_factory.mktemp("lora"), "--lora", f"{loras['a']}:1")


def test_lora_scale_zero_is_no_lora_and_one_changes_the_output(tmp_path, plain, loras, with_a):
    zero = wan22(tmp_path, "--lora", f"{loras['a']}:0", name="zero")
    assert torch.equal(zero.latents, plain.latents)
    assert not torch.allclose(with_a.latents, plain.latents, atol=1e-3)
    (record,) = with_a.history[-1]["arguments"]["acceleration"]["lora"]
    assert record["path"] == str(loras["a"].resolve()) and record["scale"] == 1.0 and len(record["fingerprint"]) == 64
    assert (record["size"], record["layout"]) == (loras["a"].stat().st_size, "diffusers")


def test_two_loras_combine(tmp_path, loras, with_a):
    a = with_a
    a_and_nothing = wan22(tmp_path, "--lora", f"{loras['a']}:1", "--lora", f"{loras['b']}:0", name="a0")
    both = wan22(tmp_path, "--lora", f"{loras['a']}:1", "--lora", f"{loras['b']}:1", name="ab")
    assert torch.equal(a_and_nothing.latents, a.latents)
    assert not torch.allclose(both.latents, a.latents, atol=1e-3)
    assert [each["scale"] for each in both.history[-1]["arguments"]["acceleration"]["lora"]] == [1.0, 1.0]


@pytest.mark.parametrize("extra, key, reason", [
    ({"transformer.blocks.7.attn1.to_q.lora_A.weight": torch.zeros(4, 24)}, "transformer.blocks.7.attn1.to_q.lora_A.weight",
     "the transformer has no layer blocks.7.attn1.to_q"),
    ({"transformer.blocks.0.attn2.to_k.lora_A.weight": torch.zeros(4, 999)}, "transformer.blocks.0.attn2.to_k.lora_A.weight",
     "shape (4, 999) does not fit the layer's 24 input features"),
])
def test_a_lora_that_does_not_fit_is_refused_naming_the_first_key(tmp_path, tiny_wan22, extra, key, reason):
    bad = make_lora(tiny_wan22, tmp_path / "bad.safetensors", seed=3, layers=(), extra=extra)
    result = cli("generate", "--model", "tiny-random-wan22", *FOX, "--lora", bad, "-o", tmp_path / "x.safetensors", code=2)
    assert result.stderr == f"vidlatent: error: --lora {bad}: none of its 1 keys fit Wan 2.2 text/image-to-video " \
                            f"(transformer): key {key}: {reason}; the model takes diffusers' names (e.g. " \
                            "transformer.blocks.0.attn1.to_q.lora_A.weight) or a layout diffusers converts\n"


def test_two_expert_models_take_a_lora_into_both_experts_or_one(tmp_path, tiny_wan22, loras):
    folder = shutil.copytree(tiny_wan22, tmp_path / "two-experts")
    shutil.copytree(folder / "transformer", folder / "transformer_2")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps(index | {"boundary_ratio": 0.5,
                                                                 "transformer_2": ["diffusers", "WanTransformer3DModel"]}))
    loaded = load_pipeline(LoadOptions(model=str(folder), acceleration=acceleration.Acceleration(
        loras=(Lora(str(loras["a"]), 1.0), Lora(str(loras["b"]), 0.5, "low")))), image=False)
    assert loaded.pipeline.get_list_adapters() == {"transformer": ["lora0"], "transformer_2": ["lora0", "lora1"]}
    records = loaded.accelerated.record()["lora"]
    assert [(each["experts"], each["scale"]) for each in records] == [("both", 1.0), ("low", 0.5)]


# --- vidlatent env -----------------------------------------------------------------------------


def test_env_reports_what_the_machine_can_use():
    result = cli("env", "--json")
    facts = json.loads(result.stdout)["acceleration"]
    assert facts["cuda_streams"] is False  # no GPU here
    assert facts["fp8_storage"] is True  # torch has float8_e4m3fn, and the CPU casts it
    assert facts["compile_backend"] == "inductor" and isinstance(facts["compile_ready"], bool)
    assert facts["lora"] is True  # peft is a dependency
