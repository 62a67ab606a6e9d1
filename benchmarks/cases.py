"""The measurements: each function runs one of the issue's comparisons and returns its rows.

Row keys follow the goals: 1 startup, 2 generate overhead, 3 decode memory, 4 decode and
encode speed, 5 latent file IO, 6 the GPU, 7 big models (cache, fp8, VAE tiling, compile), 8 big
models on the GPU, 9 quality figures on real Wan 2.1 latents (``benchmarks/real_latents.py``), 10 the
plan's calibration, 11 the ways to a long video (``benchmarks/long_video.py``). The references are plain diffusers, torch and
safetensors calls (``benchmarks/reference.py`` for the ones that run as their own process).
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.big_models import big_models, gpu_big_models
from benchmarks.long_video import long_video
from benchmarks.plan_memory import plan_memory
from benchmarks.real_latents import real_latents
from benchmarks.harness import (
    ChildFailed,
    conditioning_image,
    Goal,
    Paired,
    Row,
    interleave,
    mebibytes,
    on_gpu,
    process_measure,
    progress,
    run_process,
    run_processes,
    seconds,
    timed,
)

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference.py"
PIPE_WORKER = HERE / "pipe_worker.py"
SEED = 1


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run. ``dry``: children that would import torch only parse
    their arguments (the smoke mode, which must finish in seconds)."""

    name: str
    warmup: int
    startup_reps: int
    generate_size: tuple[int, int]  # (width, height) in pixels
    generate_frames: int
    generate_steps: int
    generate_reps: int  # in-process
    generate_process_reps: int
    load_reps: int
    decode_size: tuple[int, int]
    short_frames: int
    long_frames: int
    decode_chunk: int
    memory_reps: int
    speed_size: tuple[int, int]
    speed_decode_frames: int
    speed_encode_frames: int
    speed_chunk: int
    speed_reps: int
    io_shape: tuple[int, int, int, int]  # (F, C, h, w)
    io_reps: int
    pipe_reps: int
    gpu_size: tuple[int, int]
    gpu_frames: int
    gpu_steps: int
    gpu_reps: int
    big_size: tuple[int, int]  # section 7: tiny-random-wan22 generations
    big_frames: int
    big_steps: int
    big_reps: int
    tiling_size: tuple[int, int]  # section 7: tiny-random-wan decodes with and without tiling
    tiling_latent_frames: int
    plan_sizes: int = 3  # section 10: sizes run per tiny model (of benchmarks.plan_memory.CASES)
    long_steps: int = 4  # section 11: denoising steps of every long-video way
    long_seeds: int = 3  # section 11: seeds per way (0, 1, ...)
    dry: bool = False


FULL = Config(
    name="full", warmup=1, startup_reps=15,
    generate_size=(256, 128), generate_frames=14, generate_steps=10, generate_reps=5, generate_process_reps=9, load_reps=25,
    # Chunk 2 keeps the decoder's working memory small next to the frames a whole-clip decode holds.
    decode_size=(192, 192), short_frames=50, long_frames=400, decode_chunk=2, memory_reps=1,
    speed_size=(128, 128), speed_decode_frames=24, speed_encode_frames=32, speed_chunk=8, speed_reps=9,
    # A 400-frame clip of SVD-XT's 1024x576 latents (56 MiB), e.g. a long extended clip.
    io_shape=(400, 4, 72, 128), io_reps=7, pipe_reps=3,
    gpu_size=(1024, 576), gpu_frames=25, gpu_steps=10, gpu_reps=3,
    big_size=(256, 256), big_frames=17, big_steps=20, big_reps=5, tiling_size=(512, 512), tiling_latent_frames=4,
)
QUICK = Config(
    name="quick", warmup=0, startup_reps=1,
    generate_size=(64, 64), generate_frames=2, generate_steps=1, generate_reps=1, generate_process_reps=1, load_reps=1,
    decode_size=(64, 64), short_frames=2, long_frames=4, decode_chunk=2, memory_reps=1,
    speed_size=(64, 64), speed_decode_frames=4, speed_encode_frames=4, speed_chunk=2, speed_reps=1,
    io_shape=(4, 4, 8, 8), io_reps=1, pipe_reps=1,
    gpu_size=(512, 320), gpu_frames=4, gpu_steps=2, gpu_reps=1,
    big_size=(64, 64), big_frames=5, big_steps=2, big_reps=1, tiling_size=(320, 320), tiling_latent_frames=2,
    plan_sizes=1, long_steps=1, long_seeds=1,
)
SMOKE = dataclasses.replace(QUICK, name="smoke", dry=True)


class Context:
    """What every measurement shares: the config, a scratch folder, the tiny model, the commands."""

    def __init__(self, config: Config, workdir: Path, env: dict[str, str]) -> None:
        from vidlatent.tiny import tiny_random_path

        self.config = config
        self.workdir = workdir
        self.env = env
        self.python = sys.executable
        self.folder = tiny_random_path()
        self.vidlatent = vidlatent_command()
        self._pipeline: Any = None
        self._vae: Any = None

    def pipeline(self) -> Any:
        """The tiny pipeline, loaded once through vidlatent's loader (a LoadedModel)."""
        if self._pipeline is None:
            from vidlatent.models import LoadOptions, load_pipeline

            self._pipeline = load_pipeline(LoadOptions(model=str(self.folder), device="cpu"))
        return self._pipeline

    def vae(self) -> Any:
        """The tiny VAE alone, loaded once as ``vidlatent decode`` loads it (a LoadedModel)."""
        if self._vae is None:
            from vidlatent.models import LoadOptions, load_vae

            self._vae = load_vae(LoadOptions(model=str(self.folder), device="cpu"))
        return self._vae

    def cli(self, *args: str) -> list[str]:
        """A vidlatent command line; in dry mode it stops at parsing (``--help`` last)."""
        return [*self.vidlatent, *args, *(["--help"] if self.config.dry else [])]

    def script(self, script: Path, *args: str) -> list[str]:
        """A helper script's command line; in dry mode it stops at parsing."""
        return [self.python, str(script), *(["--dry-run"] if self.config.dry else []), *args]


def vidlatent_command() -> list[str]:
    """The installed ``vidlatent`` console script next to this Python, else ``python -m vidlatent``."""
    script = Path(sys.executable).parent / "vidlatent"
    if script.is_file():
        return [str(script)]
    found = shutil.which("vidlatent")
    return [found] if found else [sys.executable, "-m", "vidlatent"]


def time_row(key: str, what: str, pair: Paired, goal: Goal | None, note: str = "") -> Row:
    """A row comparing times: vidlatent's median over the reference's (lower is better)."""
    return Row(key=key, what=what, value=seconds(pair.subject_median), baseline=seconds(pair.baseline_median),
               ratio=pair.time_ratio(), goal=goal, pairs=pair.pair_ratios(), note=note)


# --- 1. startup ------------------------------------------------------------------------------


def startup(ctx: Context) -> list[Row]:
    cfg = ctx.config
    baseline = process_measure([ctx.python, "-c", "pass"], env=ctx.env)
    runs: list[Any] = []
    help_pair = interleave(process_measure([*ctx.vidlatent, "--help"], env=ctx.env), baseline,
                           reps=cfg.startup_reps, warmup=cfg.warmup, label="vidlatent --help")
    completion_env = dict(ctx.env, _VIDLATENT_COMPLETE="bash_complete", COMP_WORDS="vidlatent enc", COMP_CWORD="1")
    completion_pair = interleave(process_measure(ctx.vidlatent, env=completion_env, runs=runs), baseline,
                                 reps=cfg.startup_reps, warmup=cfg.warmup, label="completion")
    answer = runs[-1].stdout.decode(errors="replace").split()
    completion_note = f"The completion request answered {' '.join(answer)!r}."
    if "encode" not in " ".join(answer):
        completion_note += " It should have offered `encode`."
    goal = Goal(3)
    rows = [
        time_row("1a", "`vidlatent --help` vs `python -c pass` (wall time of a fresh process)", help_pair, goal),
        time_row("1b", "completion request `vidlatent enc<TAB>` vs `python -c pass`", completion_pair, goal,
                 completion_note),
    ]
    if any(not goal.met(row.ratio or 0) for row in rows):
        why, short = import_breakdown(ctx, baseline=help_pair.baseline_median)
        for row in rows:
            row.note = " ".join(part for part in (row.note, why) if part)
            row.why = short
    return rows


def import_breakdown(ctx: Context, *, baseline: float) -> tuple[str, str]:
    """Where ``vidlatent --help``'s start-up goes, from ``python -X importtime`` (one run each):
    a note, and one sentence for the goal's line."""
    if ctx.vidlatent[0] == ctx.python:
        argv = [ctx.python, "-X", "importtime", *ctx.vidlatent[1:], "--help"]
    else:
        argv = [ctx.python, "-X", "importtime", ctx.vidlatent[0], "--help"]
    try:
        ours = _imports(argv, ctx.env)
        shared = {name for name, _ in _imports([ctx.python, "-X", "importtime", "-c", "pass"], ctx.env)}
    except ChildFailed as error:
        return f"(python -X importtime failed: {error})", ""
    by_package: dict[str, int] = {}  # own time (µs) of the modules `python -c pass` does not import
    for name, own in ours:
        if name not in shared:
            package = name.split(".")[0]
            by_package[package] = by_package.get(package, 0) + own
    ranked = sorted(((us, name) for name, us in by_package.items()), reverse=True)
    own_modules = sorted(((us, name) for name, us in ours if name not in shared and name.startswith("vidlatent")), reverse=True)
    total = sum(us for us, _ in ranked)
    heavy = [name for _, name in ranked if name in ("torch", "diffusers", "transformers", "numpy", "PIL")]
    note = (
        f"Why: `python -X importtime vidlatent --help` spends {total / 1000:.0f} ms importing {sum(1 for n, _ in ours if n not in shared)} "
        f"modules that `python -c pass` does not import; by package (own time): "
        + ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in ranked[:8])
        + "; vidlatent's own modules: " + ", ".join(f"{name} {us / 1000:.1f} ms" for us, name in own_modules[:6]) + "."
    )
    if heavy:
        note += f" It imports heavy modules it should not: {', '.join(heavy)}."
    short = (f"`vidlatent --help` imports {total / 1000:.0f} ms of modules that `python -c pass` does not "
             f"({', '.join(f'{name} {us / 1000:.0f} ms' for us, name in ranked[:2])}), more than twice the "
             f"{seconds(baseline)} of a whole `python -c pass`; see the notes on 1a")
    return note, short


def _imports(argv: list[str], env: dict[str, str]) -> list[tuple[str, int]]:
    """(module, own microseconds) for every import ``python -X importtime`` reports."""
    found = []
    for line in run_process(argv, env=env).stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            own, _, name = line.removeprefix("import time:").split("|", 2)
            found.append((name.strip(), int(own)))
    return found


# --- 2. generate overhead --------------------------------------------------------------------


def generate(ctx: Context) -> list[Row]:
    import torch
    from PIL import Image

    from vidlatent import latentfile
    from vidlatent.generation import Knobs
    from vidlatent.generation import generate as vidlatent_generate

    cfg = ctx.config
    width, height = cfg.generate_size
    frames, steps = cfg.generate_frames, cfg.generate_steps
    image_path = conditioning_image(cfg.generate_size, ctx.workdir / "condition.png")
    work = f"{width}x{height} px, {frames} frames, {steps} steps, tiny-random, seed {SEED}"

    # Whole processes: the CLI against a diffusers script, each loading the folder afresh.
    ours = ctx.workdir / "generate-vidlatent.safetensors"
    theirs = ctx.workdir / "generate-reference.safetensors"
    vid_argv = ctx.cli("generate", str(image_path), "--model", str(ctx.folder), "--device", "cpu", "--frames", str(frames),
                       "--steps", str(steps), "--seed", str(SEED), "--size", f"{width}x{height}", "-o", str(ours), "-q")
    ref_argv = ctx.script(REFERENCE, "generate", str(ctx.folder), str(image_path), str(theirs), "--width", str(width),
                          "--height", str(height), "--frames", str(frames), "--steps", str(steps), "--seed", str(SEED))
    # CPU time (one torch thread): the work each process does. Wall times of whole processes on a
    # shared 2-core machine spread ±10 % from pair to pair, more than the overhead measured here.
    vid_runs: list[Any] = []
    ref_runs: list[Any] = []
    process_pair = interleave(process_measure(vid_argv, env=ctx.env, runs=vid_runs, cpu=True),
                              process_measure(ref_argv, env=ctx.env, runs=ref_runs, cpu=True),
                              reps=cfg.generate_process_reps, warmup=cfg.warmup, label="generate (process)")
    walls = (f"wall-time medians {statistics.median(run.seconds for run in vid_runs[cfg.warmup:]):.2f} s and "
             f"{statistics.median(run.seconds for run in ref_runs[cfg.warmup:]):.2f} s")
    if cfg.dry:
        same = "not compared (smoke run)"
    else:
        from safetensors.torch import load_file

        equal = torch.equal(latentfile.read(ours).latents, load_file(str(theirs))["latents"].float())
        same = "bit-identical" if equal else "DIFFERENT (vidlatent must equal the diffusers call)"

    # In-process: the library call against the pipeline call, on one loaded pipeline.
    model = ctx.pipeline()
    image = Image.open(image_path).convert("RGB")
    knobs = Knobs(frames=frames, steps=steps)
    outputs: dict[str, Any] = {}

    def with_vidlatent() -> None:
        outputs["vidlatent"] = vidlatent_generate(model, image, knobs=knobs, seed=SEED, size=(width, height)).latents

    def with_diffusers() -> None:
        outputs["reference"] = model.pipeline(
            image, height=height, width=width, num_frames=frames, num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent",
        ).frames[0]

    library_pair = interleave(timed(with_vidlatent), timed(with_diffusers), reps=cfg.generate_reps,
                              warmup=cfg.warmup, label="generate (in-process)")
    library_same = torch.equal(outputs["vidlatent"], outputs["reference"].float().cpu())

    def overhead(pair: Paired) -> str:
        return f"{(pair.subject_median - pair.baseline_median) * 1000:+.0f} ms per run"

    goal = Goal(1.03)
    rows = [
        time_row("2a", "`vidlatent generate -o x.safetensors` vs a diffusers script (whole processes, CPU time)", process_pair,
                 goal, f"Work: {work}; the script loads the folder with StableVideoDiffusionPipeline.from_pretrained, "
                       f"calls it with output_type=\"latent\" and saves with safetensors. Difference of CPU-time medians: "
                       f"{overhead(process_pair)} ({walls}). Latents: {same}."),
        time_row("2b", "`vidlatent.generation.generate` vs `pipe(...)`, same loaded pipeline (in-process)", library_pair,
                 goal, f"Work: {work}. Difference of medians: {overhead(library_pair)}. Latents: "
                 f"{'bit-identical' if library_same else 'DIFFERENT'}."),
    ]
    rows.append(load_row(ctx))
    for row, pair in zip(rows, (process_pair, library_pair)):
        row.why = (f"{row.key}: vidlatent's median is {overhead(pair)} against a spread of the pairs' ratios of "
                   f"{row.spread}: vidlatent calls the same pipeline, so the difference is its own bookkeeping "
                   f"or the machine's noise")
    return rows


def load_row(ctx: Context) -> Row:
    """2c: loading the model, vidlatent's one loader against diffusers' from_pretrained, same folder."""
    from diffusers import StableVideoDiffusionPipeline

    from vidlatent.models import LoadOptions, load_pipeline

    def load_only(load: Callable[[], object]) -> Callable[[], float]:
        # A load of the tiny model takes tens of milliseconds: the previous pipeline's garbage
        # (reference cycles freed whenever the collector runs) is collected outside the timed call.
        def measure() -> float:
            gc.collect()
            started = time.perf_counter()
            pipeline = load()
            elapsed = time.perf_counter() - started
            del pipeline
            gc.collect()
            return elapsed

        return measure

    pair = interleave(load_only(lambda: load_pipeline(LoadOptions(model=str(ctx.folder), device="cpu"))),
                      load_only(lambda: StableVideoDiffusionPipeline.from_pretrained(ctx.folder)),
                      reps=ctx.config.load_reps, warmup=ctx.config.warmup, label="load (in-process)")
    # No goal: on a tiny model a load takes tens of milliseconds, of which the loader's own work
    # (describing the folder, fingerprinting the VAE) is a few; on a real one it is seconds.
    row = time_row("2c", "model load: `vidlatent.models.load_pipeline` vs `from_pretrained`, same folder (in-process)", pair,
                   None, f"tiny-random on the CPU; the loader also reads the configs, picks device, dtype and offload, and "
                         f"fingerprints the VAE. Difference of medians: {(pair.subject_median - pair.baseline_median) * 1000:+.0f} "
                         f"ms per load.")
    row.why = (f"2c: vidlatent's load takes {(pair.subject_median - pair.baseline_median) * 1000:+.0f} ms more against a "
               f"spread of the pairs' ratios of {row.spread}")
    return row


# --- 3. decode memory ------------------------------------------------------------------------


def write_random_clip(ctx: Context, frames: int, size: tuple[int, int], path: Path) -> Path:
    """A latent file of ``frames`` random frames in the tiny model's latent space."""
    import torch

    from vidlatent import latentfile

    width, height = size
    generator = torch.Generator().manual_seed(frames)
    latents = torch.randn((frames, 4, height // 8, width // 8), generator=generator) * 0.5  # (F, C, h, w)
    model = ctx.vae()
    clip = latentfile.LatentClip(latents=latents, model=str(ctx.folder), latent_space=model.latent_space, fps=7.0,
                                 height=height, width=width, layout=model.layout)
    latentfile.write(clip, path)
    return path


def decode_memory(ctx: Context) -> list[Row]:
    cfg = ctx.config
    width, height = cfg.decode_size
    chunk = cfg.decode_chunk
    peaks: dict[tuple[str, int], list[int]] = {}
    for frames in (cfg.short_frames, cfg.long_frames):
        clip = write_random_clip(ctx, frames, cfg.decode_size, ctx.workdir / f"decode-{frames}.safetensors")
        commands = {
            "vidlatent": ctx.cli("decode", str(clip), "-o", str(ctx.workdir / f"decode-{frames}.mp4"),
                                 "--chunk", str(chunk), "--model", str(ctx.folder), "--device", "cpu", "-q"),
            "reference": ctx.script(REFERENCE, "decode-latents", str(ctx.folder), str(clip), "--chunk", str(chunk)),
        }
        for _ in range(cfg.memory_reps):
            # Both sides at once: each process's peak is its own, and the run takes half the time.
            runs = run_processes(list(commands.values()), env=ctx.env)
            for side, run in zip(commands, runs):
                peaks.setdefault((side, frames), []).append(run.peak_rss)
                progress(f"  decode {frames} frames, {side}: peak RSS {mebibytes(run.peak_rss)}, {seconds(run.seconds)}")

    def peak(side: str, frames: int) -> float:
        return statistics.median(peaks[(side, frames)])

    short, long = cfg.short_frames, cfg.long_frames
    frame_bytes = 3 * width * height * 4  # one decoded frame, float32
    setup = (f"{width}x{height} px ({width // 8}x{height // 8} latents), chunk {chunk}, peak RSS of a fresh process "
             f"(os.wait4), median of {cfg.memory_reps}; vidlatent and the reference ran side by side")
    ours = peak("vidlatent", long) / peak("vidlatent", short)
    theirs = peak("reference", long) / peak("reference", short)
    return [
        Row("3a", f"`vidlatent decode` to mp4: peak RSS at {long} frames / at {short} frames",
            value=f"{mebibytes(peak('vidlatent', long))} ({long} f)", baseline=f"{mebibytes(peak('vidlatent', short))} ({short} f)",
            ratio=ours, goal=Goal(1.25),
            note=f"{setup}. Frames stream from the decoder to ffmpeg one chunk at a time; measured growth: "
                 f"{mebibytes(peak('vidlatent', long) - peak('vidlatent', short))} (one run each, so this includes "
                 f"run-to-run variation).",
            why=f"3a: peak RSS grew {mebibytes(peak('vidlatent', long) - peak('vidlatent', short))} from {short} to "
                f"{long} frames"),
        Row("3b", f"diffusers `decode_latents`: peak RSS at {long} frames / at {short} frames (must grow)",
            value=f"{mebibytes(peak('reference', long))} ({long} f)", baseline=f"{mebibytes(peak('reference', short))} ({short} f)",
            ratio=theirs, goal=Goal(1.25, higher_is_better=True),
            note=f"{setup}. decode_latents keeps every frame: {long - short} more float32 frames are "
                 f"{mebibytes((long - short) * frame_bytes)}, and its torch.cat holds them twice for a moment; "
                 f"measured growth: {mebibytes(peak('reference', long) - peak('reference', short))}.",
            why=f"3b: decode_latents grew only {mebibytes(peak('reference', long) - peak('reference', short))}: at "
                f"this size the frames are small next to the decoder's working memory; raise decode_size in benchmarks/cases.py"),
        Row("3c", f"peak RSS at {long} frames: `vidlatent decode` / `decode_latents`",
            value=mebibytes(peak("vidlatent", long)), baseline=mebibytes(peak("reference", long)),
            ratio=peak("vidlatent", long) / peak("reference", long),
            note="For scale; both processes import torch and diffusers and load the same VAE."),
    ]


# --- 4. decode and encode speed --------------------------------------------------------------


def codec_speed(ctx: Context) -> list[Row]:
    import numpy as np
    import torch

    from vidlatent import codec
    from vidlatent.families import svd

    cfg = ctx.config
    width, height = cfg.speed_size
    chunk = cfg.speed_chunk
    model = ctx.vae()
    vae, device = model.vae, model.execution_device
    scale = vae.config.scaling_factor
    latents = torch.randn((cfg.speed_decode_frames, 4, height // 8, width // 8), generator=torch.Generator().manual_seed(SEED)) * 0.5
    rng = np.random.default_rng(SEED)
    frames = list(rng.integers(0, 256, (cfg.speed_encode_frames, height, width, 3), dtype=np.uint8))  # (H, W, 3) each
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (F, 3, H, W) in [-1, 1]

    def decode_vidlatent() -> None:
        for _ in codec.decode_frames(svd.FAMILY, latents, vae, device=device, chunk=chunk):
            pass

    def decode_diffusers() -> None:
        with torch.no_grad():
            for start in range(0, latents.shape[0], chunk):
                part = latents[start : start + chunk]
                _ = vae.decode(part / scale, num_frames=part.shape[0]).sample

    def encode_vidlatent() -> None:
        svd.encode_frames(iter(frames), vae, device=device, chunk=chunk)

    def encode_diffusers() -> None:
        with torch.no_grad():
            torch.cat([vae.encode(pixels[start : start + chunk]).latent_dist.mode() * scale
                       for start in range(0, pixels.shape[0], chunk)])

    decode_pair = interleave(timed(decode_vidlatent), timed(decode_diffusers), reps=cfg.speed_reps, warmup=cfg.warmup,
                             label="decode speed")
    encode_pair = interleave(timed(encode_vidlatent), timed(encode_diffusers), reps=cfg.speed_reps, warmup=cfg.warmup,
                             label="encode speed")
    # What vidlatent does on top of the VAE calls: pixels from and to uint8, timed alone.
    with torch.inference_mode():
        decoded = vae.decode(latents[:chunk] / scale, num_frames=min(chunk, latents.shape[0])).sample
    chunks = -(-latents.shape[0] // chunk)
    to_uint8 = statistics.median(timed(lambda: codec.tensor_to_pixels(decoded))() for _ in range(5)) * chunks
    from_uint8 = statistics.median(timed(lambda: codec.pixels_to_tensor(frames[:chunk]))() for _ in range(5)) * chunks
    goal = Goal(1.0, higher_is_better=True)

    def fps_row(key: str, what: str, pair: Paired, count: int, note: str, extra: float) -> Row:
        row = Row(key, what, value=f"{count / pair.subject_median:.1f} fps", baseline=f"{count / pair.baseline_median:.1f} fps",
                  ratio=pair.baseline_median / pair.subject_median, goal=goal,
                  pairs=[b / s for s, b in zip(pair.subject, pair.baseline)], note=note)
        row.why = (f"{key}: the only work vidlatent adds to the VAE calls takes {extra * 1000:.1f} ms "
                   f"({extra / pair.subject_median:.1%} of a run), while the pairs' ratios spread over {row.spread}: "
                   f"the gap is the shared machine's noise, not vidlatent")
        return row

    setup = f"{width}x{height} px, chunk {chunk}, tiny-random VAE, in-process; ratio = vidlatent fps / reference fps (higher: vidlatent faster)"
    return [
        fps_row("4a", "decode: `codec.decode_frames` (SVD) vs a `vae.decode(z / scale, num_frames=chunk)` loop",
                decode_pair, cfg.speed_decode_frames,
                f"{cfg.speed_decode_frames} frames, {setup}. vidlatent also converts each frame to uint8 RGB "
                f"(`codec.tensor_to_pixels`, {to_uint8 * 1000:.1f} ms per run, {to_uint8 / decode_pair.subject_median:.1%} "
                f"of it); the loop stops at the float tensor.", to_uint8),
        fps_row("4b", "encode: SVD's `encode_frames` vs a `vae.encode(x).latent_dist.mode() * scale` loop",
                encode_pair, cfg.speed_encode_frames,
                f"{cfg.speed_encode_frames} frames, {setup}. vidlatent starts from uint8 frames (`codec.pixels_to_tensor`, "
                f"{from_uint8 * 1000:.1f} ms per run, {from_uint8 / encode_pair.subject_median:.1%} of it); the loop gets "
                f"the float tensor ready-made.", from_uint8),
    ]


# --- 5. latent file IO -----------------------------------------------------------------------


def latent_io(ctx: Context) -> list[Row]:
    import torch
    from safetensors.torch import load_file, save_file

    from vidlatent import latentfile

    cfg = ctx.config
    latents = torch.randn(cfg.io_shape, generator=torch.Generator().manual_seed(SEED)) * 0.5  # (F, C, h, w)
    clip = latentfile.LatentClip(latents=latents, model=str(ctx.folder), latent_space=ctx.vae().latent_space, fps=7.0,
                                 height=cfg.io_shape[2] * 8, width=cfg.io_shape[3] * 8, seed=SEED,
                                 layout=ctx.vae().layout)
    ours, theirs, plain = (ctx.workdir / name for name in ("io.safetensors", "io.pt", "io-plain.safetensors"))

    def vidlatent_round_trip() -> None:
        latentfile.write(clip, ours)
        assert latentfile.read(ours).latents.shape == latents.shape

    def torch_round_trip() -> None:
        torch.save({"latents": latents}, theirs)
        assert torch.load(theirs)["latents"].shape == latents.shape

    def safetensors_round_trip() -> None:
        save_file({"latents": latents}, str(plain))
        assert load_file(str(plain))["latents"].shape == latents.shape

    pair = interleave(timed(vidlatent_round_trip), timed(safetensors_round_trip), reps=cfg.io_reps, warmup=cfg.warmup,
                      label="save + load")
    floor = interleave(timed(safetensors_round_trip), timed(torch_round_trip), reps=cfg.io_reps, warmup=cfg.warmup,
                       label="safetensors save_file + load_file")
    size = f"{'x'.join(map(str, cfg.io_shape))} float32 ({mebibytes(latents.numel() * 4)})"
    goal = Goal(1.2)
    rows = [
        time_row("5a", "latent file save + load: `latentfile.write` + `read` vs `safetensors.torch.save_file` + `load_file`",
                 pair, goal, f"A {size} clip, files in {ctx.workdir.parent}; both sides read the file back and check its "
                             "shape; vidlatent also checks every value is finite, on write and on read, and writes atomically."),
        time_row("5b", "plain `safetensors.torch.save_file` + `load_file` vs `torch.save` + `torch.load`", floor, None,
                 "What the format itself costs against torch's pickle."),
    ]
    if not cfg.dry and not goal.met(pair.time_ratio()):
        note, took = io_breakdown(clip, ctx.workdir, reps=max(3, cfg.io_reps))
        rows[0].note += " " + note
        rows[0].why = (
            f"5a: of vidlatent's {seconds(pair.subject_median)}, the finite-values check takes 2 × {took['check']:.0f} ms "
            f"and the file write {took['write']:.0f} ms, while safetensors' save_file alone takes {took['save_file']:.0f} ms "
            f"and its load_file maps the file without reading it ({took['load_file']:.1f} ms)"
        )

    # Through a pipe, between two warm processes: vidlatent's `-o -` and `-` against torch's.
    forms = ("vidlatent", "torch", "raw")
    pipe: dict[str, list[float]] = {form: [] for form in forms}
    exits: dict[str, list[float]] = {form: [] for form in forms}
    files = {"vidlatent": ours, "torch": theirs, "raw": ours}
    for rep in range(cfg.warmup + cfg.pipe_reps):
        for form in (forms if rep % 2 == 0 else forms[::-1]):
            took, exit_seconds = pipe_transfer(ctx, form, files[form])
            if rep >= cfg.warmup:
                pipe[form].append(took)
                exits[form].append(exit_seconds)
        progress(f"  pipe {rep + 1}/{cfg.warmup + cfg.pipe_reps}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in pipe.items() if v))
    pipe_pair = Paired(pipe["vidlatent"], pipe["torch"])
    raw = statistics.median(pipe["raw"])
    mib = ours.stat().st_size / 2**20
    rows.append(time_row(
        "5c", "pipe: `latentfile.write(clip, \"-\")` → `read(\"-\")` vs `torch.save(stdout)` → `torch.load(stdin)`",
        pipe_pair, None,
        f"Two warm processes, timed from the writer's start to the reader's parsed clip; the writer closes its stdout "
        f"once written. The bare bytes ({mib:.0f} MiB, like `cat`) take {seconds(raw)} ({mib / raw:.0f} MiB/s): the "
        f"pipe's ceiling. `latentfile.read(\"-\")` reads the length its header declares, so it does not wait for the "
        f"writer to exit (after writing, the vidlatent writer took {seconds(statistics.median(exits['vidlatent']))} to "
        f"exit, the torch one {seconds(statistics.median(exits['torch']))}, which `torch.load` of stdin waits for).",
    ))
    return sorted(rows, key=lambda row: row.key)


def pipe_transfer(ctx: Context, form: str, path: Path) -> tuple[float, float]:
    """Move one clip from a warm writer process to a warm reader through a pipe.

    Returns the seconds from the writer's go to the reader's parsed clip, and the seconds the
    writer took to exit once it had written (a reader that reads to EOF would wait for that too).
    """
    import threading

    from benchmarks.pipe_worker import DONE, READY, WRITTEN

    dry = ["--dry-run"] if ctx.config.dry else []
    writer = subprocess.Popen([ctx.python, str(PIPE_WORKER), "write", form, str(path), *dry], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.env)
    reader = subprocess.Popen([ctx.python, str(PIPE_WORKER), "read", form, *dry], stdin=writer.stdout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ctx.env)
    assert writer.stdout and writer.stdin and writer.stderr and reader.stderr
    writer.stdout.close()  # the reader holds the only read end now, so it sees the writer's EOF
    exited: list[float] = []
    try:
        _await(writer.stderr, READY, "pipe writer")
        _await(reader.stderr, READY, "pipe reader")
        watcher = threading.Thread(target=lambda: (writer.wait(), exited.append(time.monotonic())))
        started = time.perf_counter()
        writer.stdin.write(b"go\n")
        writer.stdin.close()
        watcher.start()
        _await(reader.stderr, DONE, "pipe reader")
        took = time.perf_counter() - started
        written = float(_await(writer.stderr, WRITTEN, "pipe writer"))
        watcher.join(timeout=120)
    finally:
        for child in (writer, reader):
            if child.wait(timeout=120) != 0:
                raise ChildFailed(f"pipe worker ({form}) exited {child.returncode}: {child.stderr.read().decode(errors='replace')[-500:]}")  # type: ignore[union-attr]
    return took, (exited[0] - written) if exited else float("nan")


def _await(stream: Any, token: str, who: str) -> str:
    """Read ``stream`` up to the line that starts with ``token``; return the rest of that line."""
    seen = []
    for line in iter(stream.readline, b""):
        text = line.decode(errors="replace").strip()
        if text.split(" ")[0] == token:
            return text[len(token):].strip()
        seen.append(text)
    raise ChildFailed(f"{who} ended before saying {token}: {' | '.join(seen[-5:])}")


def io_breakdown(clip: Any, workdir: Path, *, reps: int) -> tuple[str, dict[str, float]]:
    """Why save + load takes the time it takes: latentfile's steps and safetensors' calls, each
    timed alone. Returns the note and the milliseconds by step key."""
    from safetensors.torch import load_file, save_file

    from vidlatent import latentfile

    target, plain = workdir / "breakdown.safetensors", workdir / "breakdown-plain.safetensors"
    latentfile.write(clip, target)
    steps: list[tuple[str, str, Callable[[], object]]] = [
        ("check", "the finite-values check `_validate_tensor` (once on write, once on read)",
         lambda: latentfile._validate_tensor(clip.latents, "breakdown")),
        ("write", "`latentfile.write` (header, tensor memory, atomic rename)", lambda: latentfile.write(clip, target)),
        ("read", "`latentfile.read_bytes` (a private map)", lambda: latentfile.read_bytes(target)),
        ("from_bytes", "`latentfile.from_bytes` of the map", lambda: latentfile.from_bytes(latentfile.read_bytes(target))),
        ("save_file", "`safetensors.torch.save_file`", lambda: save_file({"latents": clip.latents}, str(plain))),
        ("load_file", "`safetensors.torch.load_file`", lambda: load_file(str(plain))),
    ]
    took: dict[str, float] = {}
    for key, _, step in steps:
        measure = timed(step)
        measure()
        took[key] = statistics.median(measure() for _ in range(reps)) * 1000
    parts = "; ".join(f"{name} {took[key]:.1f} ms" for key, name, _ in steps)
    return f"Why (each step alone, median of {reps}): {parts}.", took


# --- 6. the GPU ------------------------------------------------------------------------------


GPU_ROWS = (
    ("6a", "GPU: fp16 generate, SVD-XT shapes (random weights), `generate` vs `pipe(...)` in-process"),
    ("6b", "GPU: peak VRAM with --low-vram (offload + forward chunking + decode chunk 2) / without"),
    ("6c", "GPU: generate with the UNet under `torch.compile` / without"),
)


def gpu(ctx: Context) -> list[Row]:
    return on_gpu(GPU_ROWS, lambda: gpu_rows(ctx))


def svd_xt_random(folder: Path) -> Path:
    """A diffusers folder with SVD-XT's architecture and random fp16 weights (built on the GPU)."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from vidlatent.families.svd import SCHEDULER_CONFIG as SVD_SCHEDULER_CONFIG

    if (folder / "model_index.json").is_file():
        return folder
    torch.manual_seed(0)
    with torch.device("cuda"):
        unet = UNetSpatioTemporalConditionModel(sample_size=96, num_frames=25)  # the class defaults are SVD's
        vae = AutoencoderKLTemporalDecoder(  # SVD's VAE (the class defaults are a small one)
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=2, latent_channels=4, sample_size=768,
        )
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(  # ViT-H/14
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
            patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu",
        ))
    pipeline = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG),
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    ).to(torch.float16)
    pipeline.save_pretrained(folder, safe_serialization=True)
    del pipeline
    torch.cuda.empty_cache()
    return folder


class _GpuWork:
    """The GPU rows' shared setup: the SVD-XT-shaped folder, the image, the knobs and one run."""

    def __init__(self, ctx: Context) -> None:
        import torch
        from PIL import Image

        from vidlatent.generation import Knobs

        cfg = ctx.config
        self.config = cfg
        self.width, self.height = cfg.gpu_size
        self.folder = svd_xt_random(ctx.workdir / "svd-xt-random")
        self.image = Image.open(conditioning_image(cfg.gpu_size, ctx.workdir / "condition-gpu.png")).convert("RGB")
        self.knobs = Knobs(frames=cfg.gpu_frames, steps=cfg.gpu_steps)
        self.text = (f"{self.width}x{self.height} px, {cfg.gpu_frames} frames, {cfg.gpu_steps} steps, fp16, "
                     f"{torch.cuda.get_device_name(0)}")

    def load(self, offload: str = "none") -> Any:
        from vidlatent.models import LoadOptions, load_pipeline

        return load_pipeline(LoadOptions(model=str(self.folder), device="cuda", dtype="fp16", offload=offload))

    def run(self, model: Any, *, decode_chunk: int | None = None) -> None:
        """vidlatent's generate, then (with ``decode_chunk``) decoding every frame."""
        import torch

        from vidlatent import codec
        from vidlatent.generation import generate as vidlatent_generate

        clip = vidlatent_generate(model, self.image, knobs=self.knobs, seed=SEED, size=(self.width, self.height))
        if decode_chunk:
            for _ in codec.decode_frames(model.family, clip.latents, model.vae, device=model.execution_device, chunk=decode_chunk):
                pass
        torch.cuda.synchronize()

    def run_diffusers(self, model: Any) -> None:
        import torch

        model.pipeline(self.image, height=self.height, width=self.width, num_frames=self.config.gpu_frames,
                       num_inference_steps=self.config.gpu_steps, generator=torch.Generator("cpu").manual_seed(SEED),
                       output_type="latent")
        torch.cuda.synchronize()

    def peak(self, *, low_vram: bool) -> int:
        """Peak VRAM of generate + decode, as --low-vram runs it or with the default settings."""
        import torch

        model = self.load("model" if low_vram else "none")
        if low_vram:
            model.pipeline.unet.enable_forward_chunking()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.run(model, decode_chunk=2 if low_vram else self.config.gpu_frames)
        return torch.cuda.max_memory_allocated()


def _release_gpu() -> None:
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


def gpu_rows(ctx: Context) -> list[Row]:
    import torch

    cfg = ctx.config
    work = _GpuWork(ctx)

    model = work.load()
    pair = interleave(timed(lambda: work.run(model)), timed(lambda: work.run_diffusers(model)), reps=cfg.gpu_reps,
                      warmup=cfg.warmup or 1, label="GPU generate")
    rows = [time_row("6a", GPU_ROWS[0][1], pair, Goal(1.03), f"Work: {work.text}.")]

    eager = statistics.median(timed(lambda: work.run(model))() for _ in range(cfg.gpu_reps))
    model.pipeline.unet = torch.compile(model.pipeline.unet)
    started = time.perf_counter()
    work.run(model)  # the first call compiles
    compile_seconds = time.perf_counter() - started
    compiled = statistics.median(timed(lambda: work.run(model))() for _ in range(cfg.gpu_reps))
    model = None
    _release_gpu()

    full = work.peak(low_vram=False)
    _release_gpu()
    lean = work.peak(low_vram=True)
    _release_gpu()
    rows.append(Row("6b", GPU_ROWS[1][1], value=mebibytes(lean), baseline=mebibytes(full), ratio=lean / full,
                    note=f"Work: {work.text}, then decoding every frame; torch.cuda.max_memory_allocated. README: under "
                         f"8 GB with --low-vram: {'yes' if lean < 8e9 else 'NO'}."))
    rows.append(Row("6c", GPU_ROWS[2][1], value=seconds(compiled), baseline=seconds(eager), ratio=compiled / eager,
                    note=f"Work: {work.text}. Compiling took {seconds(compile_seconds)} (the first call)."))
    return rows


SECTIONS: list[tuple[str, str, Callable[[Context], list[Row]]]] = [
    ("1", "startup", startup),
    ("2", "generate overhead", generate),
    ("3", "decode memory", decode_memory),
    ("4", "decode and encode speed", codec_speed),
    ("5", "latent file IO", latent_io),
    ("6", "GPU", gpu),
    ("7", "big models", big_models),
    ("8", "big models on a GPU", gpu_big_models),
    ("9", "real latents", real_latents),
    ("10", "plan calibration", plan_memory),
    ("11", "long video", long_video),
]

