"""Sections 7 and 8, big models on ordinary GPUs: what --cache, --quantize fp8, --vae-tiling,
--compile (and on a GPU --offload group) buy, each against the same run without it.

On the CPU with the tiny Wan models (``tiny-random-wan22`` for sampling, ``tiny-random-wan``
for decoding): random weights, two transformer blocks, so the figures show that each switch
works and how it is counted, not what it buys on a 14B model. Section 8, on a GPU (when one is
lent): the same at Wan 2.1 1.3B's real transformer and VAE shapes (random weights: the same
FLOPs and memory), with peak VRAM.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Goal, Row, interleave, mebibytes, on_gpu, progress, run_processes, seconds, timed

if TYPE_CHECKING:
    from benchmarks.cases import Context

SEED = 1
THRESHOLD = 0.1  # --cache first-block:0.1, within the 0.05-0.2 diffusers' examples use
PROMPT = "a fox runs through snow"


def _load(acceleration: Any = None, *, model: str = "tiny-random-wan22", device: str = "cpu", dtype: str = "auto") -> Any:
    from vidlatent.acceleration import Acceleration
    from vidlatent.models import LoadOptions, load_pipeline

    options = LoadOptions(model=model, device=device, dtype=dtype, acceleration=acceleration or Acceleration())
    return load_pipeline(options, image=False)


def _generate(model: Any, size: tuple[int, int], frames: int, steps: int) -> Any:
    from vidlatent.generation import Knobs, generate

    return generate(model, None, knobs=Knobs(prompt=PROMPT, frames=frames, steps=steps), seed=SEED, size=size)


def _forward_calls(model: Any) -> list[int]:
    """A counter of the transformer's forward calls (index 0), kept up by a forward hook."""
    count = [0]
    model.pipeline.transformer.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def _parameter_bytes(module: Any) -> int:
    return sum(parameter.numel() * parameter.element_size() for parameter in module.parameters())


def big_models(ctx: Context) -> list[Row]:
    cfg = ctx.config
    width, height = cfg.big_size
    frames, steps = cfg.big_frames, cfg.big_steps
    work = f"tiny-random-wan22 (2 transformer blocks), {width}x{height} px, {frames} frames, {steps} steps, guidance 5, CPU"
    rows = cache_rows(ctx, work) + fp8_rows() + tiling_rows(ctx)
    rows.append(compile_row(ctx, work) if not cfg.dry else Row("7f", COMPILE_WHAT, status="not run (smoke)"))
    return rows


def cache_rows(ctx: Context, work: str) -> list[Row]:
    from vidlatent.acceleration import Acceleration, CacheChoice

    cfg = ctx.config
    plain = _load()
    cached = _load(Acceleration(cache=CacheChoice(threshold=THRESHOLD)))
    calls = _forward_calls(plain)
    records: list[dict[str, int]] = []

    def with_cache() -> None:
        clip = _generate(cached, cfg.big_size, cfg.big_frames, cfg.big_steps)
        records.append(clip.history[-1]["arguments"]["acceleration"]["cache"])

    def without() -> None:
        calls[0] = 0
        _generate(plain, cfg.big_size, cfg.big_frames, cfg.big_steps)

    pair = interleave(timed(with_cache), timed(without), reps=cfg.big_reps, warmup=cfg.warmup, label="--cache")
    record = records[-1]
    full = record["denoiser_calls"] - record["skipped_calls"]
    note = (f"Work: {work}; --cache first-block:{THRESHOLD:g}. The cached run's own record (the clip's history): "
            f"{record['denoiser_calls']} transformer calls, of which {record['skipped_calls']} skipped every block after "
            f"the first ({record['skipped_steps']} of {record['steps']} steps entirely); counted by hooks on the last "
            f"block's layers, which a skipped call never runs. Without the cache a forward hook counted {calls[0]} calls.")
    return [
        Row("7a", f"`--cache first-block:{THRESHOLD:g}`: transformer calls that ran all blocks / without the cache",
            value=str(full), baseline=str(calls[0]), ratio=full / calls[0], goal=Goal(0.75), note=note),
        Row("7b", f"`--cache first-block:{THRESHOLD:g}`: generate wall time / without (in-process)",
            value=seconds(pair.subject_median), baseline=seconds(pair.baseline_median), ratio=pair.time_ratio(),
            goal=Goal(1.0), pairs=pair.pair_ratios(),
            note=f"Work: {work}. A skipped call still runs the first of the two blocks and the rest of the pipeline "
                 "(text encoder, scheduler, embeddings), so on this model the time saved is small; on a 40-block "
                 "transformer it is nearly the fraction of calls skipped.",
            why="7b: on two tiny blocks a skipped call saves one block of a call dominated by fixed costs; the "
                "difference is within the shared machine's noise"),
    ]


def _kept_share(module: Any) -> float:
    """The share of the weights (by count) that stay wider than one byte."""
    return sum(p.numel() for p in module.parameters() if p.element_size() > 1) / sum(p.numel() for p in module.parameters())


def wan_14b_on_meta() -> Any:
    """Wan 2.1 I2V 14B's transformer built on the meta device: its parameters' shapes, no memory."""
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    with init_empty_weights():
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16,
            text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
            eps=1e-6, rope_max_seq_len=1024, image_dim=1280, added_kv_proj_dim=5120,
        )


def fp8_rows() -> list[Row]:
    """fp8 storage as vidlatent applies it (``store_fp8``), on the tiny model loaded in bf16 and
    on the 14B architecture on the meta device (the same call, no weights)."""
    import torch

    from vidlatent.acceleration import Acceleration, store_fp8
    from vidlatent.tiny import quiet_libraries

    bf16 = _load(dtype="bf16").pipeline.transformer
    fp8_model = _load(Acceleration(quantize="fp8"), dtype="bf16").pipeline.transformer
    ours, theirs = _parameter_bytes(fp8_model), _parameter_bytes(bf16)
    quiet_libraries()
    big = wan_14b_on_meta().to(torch.bfloat16)
    big_bf16 = _parameter_bytes(big)
    store_fp8(big, torch.bfloat16)
    big_fp8 = _parameter_bytes(big)
    gib = 2**30
    return [
        Row("7c", "`--quantize fp8`: tiny-random-wan22's transformer weight bytes / bf16", value=f"{ours / 1024:.0f} KiB",
            baseline=f"{theirs / 1024:.0f} KiB", ratio=ours / theirs,
            note=f"Loaded with --dtype bf16. enable_layerwise_casting keeps the layers the model's "
                 f"_skip_layerwise_casting_patterns name (patch and condition embeddings, norms) in bf16: "
                 f"{_kept_share(fp8_model):.1%} of this tiny model's weights (its time embedding is large next to its "
                 f"24-wide blocks), so the ratio is far from 0.5 here; see 7d for a real architecture."),
        Row("7d", "`--quantize fp8`: Wan 2.1 I2V 14B's transformer weight bytes / bf16 (architecture on the meta device)",
            value=f"{big_fp8 / gib:.1f} GiB", baseline=f"{big_bf16 / gib:.1f} GiB", ratio=big_fp8 / big_bf16, goal=Goal(0.55),
            note=f"The same casting call as --quantize fp8, on WanTransformer3DModel with the 14B checkpoint's config "
                 f"built under accelerate's init_empty_weights (no memory, no weights): {_kept_share(big):.2%} of the "
                 "weights stay bf16."),
    ]


def write_wan_clip(ctx: Context, size: tuple[int, int], latent_frames: int, path: Path) -> Path:
    """A latent file of random frames in tiny-random-wan's latent space."""
    import torch

    from vidlatent import latentfile
    from vidlatent.models import LoadOptions, load_vae

    width, height = size
    model = load_vae(LoadOptions(model="tiny-random-wan", device="cpu"))
    latents = torch.randn((latent_frames, 16, height // 8, width // 8), generator=torch.Generator().manual_seed(SEED))
    clip = latentfile.LatentClip(latents=latents, model="tiny-random-wan", latent_space=model.latent_space, fps=16.0,
                                 height=height, width=width, layout=model.layout)
    latentfile.write(clip, path)
    return path


def tiling_rows(ctx: Context) -> list[Row]:
    cfg = ctx.config
    width, height = cfg.tiling_size
    clip = write_wan_clip(ctx, cfg.tiling_size, cfg.tiling_latent_frames, ctx.workdir / "wan-long.safetensors")
    commands = [ctx.cli("decode", str(clip), "-o", str(ctx.workdir / f"wan-{flag}.mp4"), "--device", "cpu", f"--{flag}", "-q")
                for flag in ("vae-tiling", "no-vae-tiling")]
    tiled, untiled = run_processes(commands, env=ctx.env)  # side by side: each peak is its own process's
    progress(f"  decode {width}x{height}: tiled {mebibytes(tiled.peak_rss)} {seconds(tiled.seconds)}, "
             f"untiled {mebibytes(untiled.peak_rss)} {seconds(untiled.seconds)}")
    pixel_frames = (cfg.tiling_latent_frames - 1) * 4 + 1
    return [Row(
        "7e", f"`vidlatent decode --vae-tiling`: peak RSS / `--no-vae-tiling` (tiny-random-wan, {width}x{height}, "
              f"{pixel_frames} frames)",
        value=mebibytes(tiled.peak_rss), baseline=mebibytes(untiled.peak_rss), ratio=tiled.peak_rss / untiled.peak_rss,
        goal=Goal(1.0),
        note=f"Fresh processes (peak RSS from os.wait4), run side by side; the VAE's own 256-px tiles every 192 px. Both "
             f"stream frame by frame, so neither grows with the length. Tiled, each tile keeps its own causal feature "
             f"cache (together larger than one untiled frame's, by the overlap) and the activations are one tile's: on "
             f"a CPU the two nearly cancel. On a GPU the caches of the tiles not being decoded wait in CPU memory, so "
             f"VRAM holds one tile's. Wall time: tiled {seconds(tiled.seconds)}, untiled {seconds(untiled.seconds)}.",
        why="7e: the tiles' own feature caches outweigh the smaller activations on a CPU, where both live in RAM",
    )]


COMPILE_WHAT = "`--compile` (inductor, regional): generate wall time after compiling / eager (in-process)"


def compile_row(ctx: Context, work: str) -> Row:
    from vidlatent.acceleration import Acceleration

    cfg = ctx.config
    eager = _load()
    compiled = _load(Acceleration(compile=True))
    started = time.perf_counter()
    _generate(compiled, cfg.big_size, cfg.big_frames, cfg.big_steps)  # the first call compiles
    first = time.perf_counter() - started
    pair = interleave(timed(lambda: _generate(compiled, cfg.big_size, cfg.big_frames, cfg.big_steps)),
                      timed(lambda: _generate(eager, cfg.big_size, cfg.big_frames, cfg.big_steps)),
                      reps=cfg.big_reps, warmup=cfg.warmup, label="--compile")
    return Row("7f", COMPILE_WHAT, value=seconds(pair.subject_median), baseline=seconds(pair.baseline_median),
               ratio=pair.time_ratio(), pairs=pair.pair_ratios(),
               note=f"Work: {work}. The first call, which compiles WanTransformerBlock with inductor (C++ on the CPU; "
                    f"the inductor cache in /tmp was {'warm' if first < 15 else 'cold'}), took {seconds(first)}. "
                    "On two tiny blocks a compiled block saves little of a call dominated by fixed costs.")


# --- on a GPU: Wan 2.1 1.3B shapes ---------------------------------------------------------------

GPU_BIG_ROWS = (
    ("8a", "GPU: `--cache first-block:0.1`, Wan 2.1 1.3B shapes, 832x480, 33 frames: time / without"),
    ("8b", "GPU: `--quantize fp8`: peak VRAM / bf16 (same run)"),
    ("8c", "GPU: `--offload group` (CUDA streams): peak VRAM / no offload; and time"),
    ("8d", "GPU: `--compile` (regional): time after compiling / eager"),
)


def gpu_big_models(ctx: Context) -> list[Row]:
    return on_gpu(GPU_BIG_ROWS, lambda: gpu_big_rows(ctx), dry=ctx.config.dry)


def wan_1_3b_random(folder: Path) -> Path:
    """A WanPipeline folder with Wan 2.1 T2V 1.3B's transformer and VAE shapes, random bf16 weights;
    a one-layer UMT5 of the real width (the text encoder is not what is measured)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from vidlatent.families.common import tiny_tokenizer

    if (folder / "model_index.json").is_file():
        return folder
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    with torch.device("cuda"):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
            text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
            eps=1e-6, rope_max_seq_len=1024,
        )
        vae = AutoencoderKLWan()  # the class defaults are Wan 2.1's VAE
        text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240,
                                                   num_layers=1, num_heads=64))
    pipeline = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                           scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                             flow_shift=3.0)).to(torch.bfloat16)
    pipeline.save_pretrained(folder, safe_serialization=True)
    del pipeline
    torch.cuda.empty_cache()
    return folder


def gpu_big_rows(ctx: Context) -> list[Row]:
    import gc

    import torch

    from vidlatent.acceleration import Acceleration, CacheChoice

    cfg = ctx.config
    folder = str(wan_1_3b_random(ctx.workdir / "wan-1.3b-random"))
    size, frames, steps = ((832, 480), 33, 10) if cfg.name == "full" else ((480, 272), 9, 2)
    work = f"{size[0]}x{size[1]} px, {frames} frames, {steps} steps, bf16, {torch.cuda.get_device_name(0)}"

    def run(acceleration: Any = None, offload: str = "none") -> tuple[float, int, float, Any]:
        """(seconds of the last of two generations, peak VRAM, seconds of the first, the clip)."""
        from vidlatent.models import LoadOptions, load_pipeline

        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = load_pipeline(LoadOptions(model=folder, device="cuda", dtype="bf16", offload=offload,
                                          acceleration=acceleration or Acceleration()), image=False)
        times, clip = [], None
        for _ in range(2):
            started = time.perf_counter()
            clip = _generate(model, size, frames, steps)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        peak = torch.cuda.max_memory_allocated()
        del model
        return times[1], peak, times[0], clip

    plain_time, plain_peak, _, _ = run()
    cache_time, _, _, clip = run(Acceleration(cache=CacheChoice(threshold=THRESHOLD)))
    record = clip.history[-1]["arguments"]["acceleration"]["cache"]
    _, fp8_peak, _, _ = run(Acceleration(quantize="fp8"))
    group_time, group_peak, _, _ = run(offload="group")
    compiled_time, _, first, _ = run(Acceleration(compile=True))
    return [
        Row("8a", GPU_BIG_ROWS[0][1], value=seconds(cache_time), baseline=seconds(plain_time), ratio=cache_time / plain_time,
            note=f"Work: {work}; skipped {record['skipped_calls']} of {record['denoiser_calls']} transformer calls "
                 f"({record['skipped_steps']} of {record['steps']} steps). Random weights: a trained model's residuals "
                 "change differently, so its skip count differs."),
        Row("8b", GPU_BIG_ROWS[1][1], value=mebibytes(fp8_peak), baseline=mebibytes(plain_peak), ratio=fp8_peak / plain_peak,
            note=f"Work: {work}; torch.cuda.max_memory_allocated over load, two generations and nothing decoded."),
        Row("8c", GPU_BIG_ROWS[2][1], value=mebibytes(group_peak), baseline=mebibytes(plain_peak), ratio=group_peak / plain_peak,
            note=f"Work: {work}. Time with group offload {seconds(group_time)}, without {seconds(plain_time)}."),
        Row("8d", GPU_BIG_ROWS[3][1], value=seconds(compiled_time), baseline=seconds(plain_time),
            ratio=compiled_time / plain_time, note=f"Work: {work}. The first call (compiling) took {seconds(first)}."),
    ]
