"""vidlatent plan, generate --plan and --vram: the estimate from the architecture, the choice of
what fits, and the refusal before loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidlatent.cli import main
from vidlatent.errors import UsageError
from vidlatent.planning import GIB, parse_memory

# Wan 2.1 1.3B's transformer shapes (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, transformer/config.json),
# with the tiny Wan 2.2 model's channels and text width so that the rest of its folder fits.
WAN_1_3B = {"num_attention_heads": 12, "attention_head_dim": 128, "ffn_dim": 8960, "num_layers": 30, "freq_dim": 256,
            "rope_max_seq_len": 1024}


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def big_wan(tiny_wan22: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Wan 2.2 folder with a transformer config of Wan 2.1 1.3B's shapes and no weights at
    all: it can be planned (configs only), never loaded."""
    folder = tmp_path_factory.mktemp("big") / "wan-1.3b-shapes"
    shutil.copytree(tiny_wan22, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    config = folder / "transformer" / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | WAN_1_3B))
    return folder


def test_plan_json_has_every_stage_and_the_weights_as_loaded(tiny_wan: Path):
    from vidlatent.models import LoadOptions, load_pipeline

    result = run("plan", "--model", "tiny-random-wan", "--size", "64x64", "--frames", "9", "--steps", "2", "--json")

    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert [stage["stage"] for stage in plan["stages"]] == ["load", "prompt", "denoise", "decode"]
    assert plan["latent_shape"] == [3, 8, 8] and plan["device"] == "cpu" and plan["dtype"] == "fp32"
    # 3 latent frames x (8 / 2) x (8 / 2) patches; Wan calls the transformer twice a step under guidance.
    assert plan["denoiser"]["tokens"] == 48 and plan["denoiser"]["calls"] == 4
    assert plan["denoiser"]["calls_x_tokens_squared"] == 4 * 48**2
    assert plan["peak_host_bytes"] == max(stage["host_bytes"] for stage in plan["stages"])
    # Built on the meta device, counted as loaded: every distinct parameter and buffer of each component.
    pipeline = load_pipeline(LoadOptions(model="tiny-random-wan", device="cpu")).pipeline
    loaded = {name: sum(tensor.numel() * tensor.element_size()
                        for tensor in {id(t): t for t in [*getattr(pipeline, name).parameters(),
                                                         *getattr(pipeline, name).buffers()]}.values())
              for name in plan["weights_bytes"]}
    assert plan["weights_bytes"] == loaded


def test_fp8_bytes_are_those_of_layerwise_casting(tiny_wan: Path):
    import torch
    from diffusers import WanTransformer3DModel

    from vidlatent.acceleration import store_fp8
    from vidlatent.models import LoadOptions, describe
    from vidlatent.planning import build_empty, module_bytes

    empty = build_empty(describe(LoadOptions(model="tiny-random-wan")), ["transformer"]).components["transformer"]
    real = WanTransformer3DModel.from_pretrained(tiny_wan, subfolder="transformer", torch_dtype=torch.bfloat16)
    store_fp8(real, torch.bfloat16)
    stored = sum(tensor.numel() * tensor.element_size() for tensor in [*real.parameters(), *real.buffers()])

    assert module_bytes(empty, 2, fp8=True) == stored < module_bytes(empty, 2)


@pytest.mark.parametrize(("text", "expected"), [("12G", 12 * GIB), ("800M", 800 * 2**20), ("1.5GiB", int(1.5 * GIB)),
                                                ("24gb", 24 * GIB), ("4096", 4096), ("auto", None)])
def test_memory_sizes(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["12X", "-1G", "0", "nan", "G"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(UsageError, match="--vram"):
        parse_memory(text)
    result = CliRunner().invoke(main, ["generate", "--model", "tiny-random-wan", "--vram", text])
    assert result.exit_code == 2 and "--vram" in result.output


def test_vram_picks_the_cheapest_that_fits(big_wan: Path):
    from vidlatent import planning
    from vidlatent.models import LoadOptions

    request = planning.Request(load=LoadOptions(model=str(big_wan), device="cuda"), size=(832, 480), frames=33, steps=2,
                               image=False)
    full = planning.plan(request)
    weights = full.weights["transformer"]
    assert 2.6 * GIB < weights < 3.0 * GIB  # 1.4 billion weights in bf16

    assert planning.fit(request, full.peak_gpu).offload == "none"  # everything fits: nothing changes
    chosen = planning.fit(request, full.peak_gpu - 1)
    assert (chosen.offload, chosen.quantize) == ("model", None) and chosen.plan.peak_gpu < full.peak_gpu
    tight = planning.fit(request, chosen.plan.peak_gpu - 1)
    assert tight.offload == "group" and tight.plan.peak_gpu < chosen.plan.peak_gpu
    assert "cheapest that fits" in tight.reason
    # A flag given is kept: with --offload none only fp8 can help.
    fixed = planning.Request(load=LoadOptions(model=str(big_wan), device="cuda", offload="none"), size=(832, 480),
                             frames=33, steps=2, image=False)
    assert planning.fit(fixed, full.peak_gpu - 1).quantize == "fp8"
    with pytest.raises(planning.DoesNotFit, match="short"):
        planning.fit(request, GIB // 2)


def test_a_run_that_cannot_fit_is_refused_before_loading(big_wan: Path, tmp_path: Path):
    out = tmp_path / "out.safetensors"
    # The folder has no weights: loading would fail otherwise (exit 1); the plan needs none.
    result = run("generate", "--model", str(big_wan), "--prompt", "a fox", "--size", "832x480", "--frames", "33",
                 "--device", "cuda", "--vram", "600M", "-o", str(out))

    assert result.exit_code == 2
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("vidlatent: error: --vram 600M:") and "short" in line and "lower --size or --frames" in line
    assert not out.exists()

    planned = run("generate", "--model", str(big_wan), "--prompt", "a fox", "--size", "832x480", "--frames", "33",
                  "--device", "cuda", "--plan", "--json", "-o", str(out))
    assert planned.exit_code == 0 and json.loads(planned.output)["denoiser"]["tokens"] == 9 * (30 // 2) * (52 // 2)
    assert not out.exists()


def test_generate_with_room_to_spare_runs_as_without(tiny_wan22: Path, tmp_path: Path):
    from vidlatent import latentfile

    common = ["generate", "--model", "tiny-random-wan22", "--prompt", "a fox", "--size", "64x64", "--frames", "5",
              "--steps", "1", "--seed", "3", "--device", "cpu"]
    plain, fitted = tmp_path / "plain.safetensors", tmp_path / "fitted.safetensors"
    assert run(*common, "-o", str(plain)).exit_code == 0
    result = run(*common, "--vram", "64G", "-o", str(fitted))

    assert result.exit_code == 0, result.output
    assert "--vram: offload none, no fp8, no tiling" in result.output
    import torch

    assert torch.equal(latentfile.read(plain).latents, latentfile.read(fitted).latents)
    # extend plans its segments at the clip's size, and loads nothing.
    longer = tmp_path / "longer.safetensors"
    planned = run("extend", str(plain), "--times", "2", "--plan", "--json", "-o", str(longer))
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.output)["latent_shape"] == [2, 4, 4] and not longer.exists()


@pytest.mark.parametrize("model", ["tiny-random", "tiny-random-wan22", "tiny-random-ltx"])
def test_every_family_declares_its_workload(model: str):
    from vidlatent import planning
    from vidlatent.models import LoadOptions

    estimate = planning.plan(planning.Request(load=LoadOptions(model=model, device="cpu"), size=(128, 128), frames=9,
                                              steps=2, decode_chunk=2))
    stages = {stage.name: stage.host for stage in estimate.stages}

    assert estimate.tokens > 0 and not estimate.notes
    assert stages["denoise"] > stages["load"] and stages["decode"] > stages["load"]
    chunked = planning.plan(planning.Request(load=LoadOptions(model=model, device="cpu"), size=(128, 128), frames=9,
                                             steps=2, decode_chunk=1))
    # A chunked decoder (SVD, LTX) works in less memory with a smaller chunk; Wan's steps on its own.
    assert (chunked.peak_host < estimate.peak_host) == (estimate.decode_chunk is not None)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--model", "tiny-random-wan", "--no-image"], 2, "--no-image: Wan 2.1 image-to-video animates an image"),
    (["--model", "tiny-random-wan", "--size", "60x60"], 2, "--size"),
    # A known checkpoint offline: described by its hub id, but its configs are not here to plan from.
    (["--model", "wan21-i2v-480p"], 1, "its configs are not on disk"),
])
def test_plan_refuses_in_one_line(tiny_wan: Path, args: list[str], code: int, message: str):
    result = CliRunner().invoke(main, ["plan", *args])

    assert result.exit_code == code
    assert len(result.output.strip().splitlines()) == 1 and message in result.output


def test_upscale_is_planned_at_the_final_size(tiny_ltx: Path, tmp_path: Path):
    # --upscale samples at half the size, then refines at the final one: the larger bounds the memory.
    out = tmp_path / "waves.mp4"
    result = run("generate", "--model", "tiny-random-ltx", "--prompt", "waves", "--size", "128x128", "--frames", "9",
                 "--upscale", "--plan", "--json", "-o", str(out))

    assert result.exit_code == 0, result.output
    assert (json.loads(result.output)["width"], json.loads(result.output)["height"]) == (128, 128) and not out.exists()
