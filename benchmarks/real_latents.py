"""Section 9, real latents: what vidlatent's quality figures say on latents a real model made.

``../shared/data/wan21_latents.safetensors`` holds 16 latent frames (61 pixel frames, 512x320)
made by the real Wan 2.1 model, read with ``vidlatent.raw_latents.read_raw`` as
``vidlatent convert --layout ncthw --model wan21-i2v-480p`` reads it. Every figure is computed
by vidlatent's own code (``latent_ops``, ``analysis``, ``editing``) on the CPU, in seconds, and
is deterministic: no timing, so no repetitions. The rows go into the main table (goal 9); the
full figures into BENCHMARKS.md's section "Real latents" (``section``).

    python -m benchmarks.real_latents    # prints the section alone
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Goal, Row

if TYPE_CHECKING:
    import torch

    from benchmarks.cases import Context

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wan21_latents.safetensors"
MODEL = "wan21-i2v-480p"
FACTORS = (2, 4)
REPETITION = "repetition"
# A made-up drift, to see what correction does to drift beyond real change: every channel's mean
# moved by half its std and its contrast cut to 0.7 (the tiny models' segments drift by more).
ADDED_SHIFT, ADDED_CONTRAST = 0.5, 0.7


def load() -> Any:
    """The real clip, a LatentClip in Wan 2.1's latent space (T, C, h, w) = (16, 16, 40, 64)."""
    from vidlatent import raw_latents

    return raw_latents.read_raw(DATA, layout="ncthw", model=MODEL)


@dataclass(frozen=True)
class Rebuild:
    """Dropped frames rebuilt from the kept ones: error = MSE over the true frames' variance."""

    factor: int
    method: str
    error: float  # dropping from frame 0 (the causal first frame kept)
    error_offsets: float  # mean over the factor's offsets (drop from frame 0, 1, ...)
    error_after_first: float  # the same, without the gaps next to the causal first frame
    norm: float  # mean of |rebuilt frame| / |true frame|


def rebuild(latents: torch.Tensor, factor: int, method: str, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep every ``factor``-th frame from ``offset``, rebuild the others: (rebuilt, true) dropped frames."""
    from vidlatent import latent_ops

    kept = latents[offset::factor]  # (K, C, h, w)
    count = (kept.shape[0] - 1) * factor + 1
    if method == REPETITION:
        rebuilt = kept.repeat_interleave(factor, dim=0)[:count]  # each kept frame held
    else:
        rebuilt = latent_ops.upsample(kept, factor, method)  # the originals kept exactly
    dropped = [index for index in range(count) if index % factor]
    return rebuilt[dropped], latents[offset : offset + count][dropped]


def _error(rebuilt: torch.Tensor, true: torch.Tensor) -> float:
    return float(((rebuilt.double() - true.double()) ** 2).mean() / true.double().var())


def rebuilds(latents: torch.Tensor) -> list[Rebuild]:
    from vidlatent import latent_ops

    results = []
    for factor in FACTORS:
        for method in (REPETITION, *latent_ops.METHODS):
            rebuilt, true = rebuild(latents, factor, method)
            later = [rebuild(latents, factor, method, offset) for offset in range(factor)]
            after_first = rebuild(latents[1:], factor, method)  # no gap touches the causal frame 0
            norm = float((rebuilt.flatten(1).norm(dim=1) / true.flatten(1).norm(dim=1)).mean())
            results.append(Rebuild(factor, method, _error(rebuilt, true), sum(_error(*pair) for pair in later) / factor,
                                   _error(*after_first), norm))
    return results


@dataclass(frozen=True)
class Figures:
    """Everything section 9 reports."""

    frames: int
    steps: list[float]  # motion energy of each step
    cosine: tuple[float, float]  # adjacent frames' cosine similarity: min, median
    norms: tuple[float, float]  # RMS value of the causal first frame, median of the others
    two_apart: float  # median RMS distance of frames two apart (after the first two)
    one_apart: float  # the same, one apart
    rebuilds: list[Rebuild]
    differing: dict[str, tuple[float, float]]  # blend -> (midpoint norm / endpoints' mean norm, cosine of the ends)
    natural: dict[str, Any]  # name -> Drift (relative), real change between parts of the clip
    corrected: dict[str, Any]  # name -> Drift after limit_drift / match_channel_stats
    untouched: bool  # limit_drift left the real second half bit for bit
    added: tuple[Any, Any]  # the made-up drift: before and after limit_drift
    band: Any
    seams: dict[str, Any] = field(default_factory=dict)  # join -> Seam
    loops: dict[str, Any] = field(default_factory=dict)  # loop -> Seam
    motion: dict[str, float] = field(default_factory=dict)  # what -> relative motion
    threshold: float = 0.0


@functools.lru_cache(maxsize=1)
def measure() -> Figures:
    import torch

    from vidlatent import analysis, editing, latent_ops

    clip = load()
    x = clip.latents  # (16, 16, 40, 64)
    frames = x.shape[0]
    flat = x.double().flatten(1)
    rms = flat.norm(dim=1) / math.sqrt(flat.shape[1])
    cosine = torch.nn.functional.cosine_similarity(flat[1:], flat[:-1])
    distance = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    steps = analysis.motion_energy(x)

    # Frames of different content: the clip's last frame and its first after the causal one, mirrored.
    end, other = x[-1:], x[1:2].flip(-1)
    ends = float(torch.nn.functional.cosine_similarity(end.flatten(1).double(), other.flatten(1).double())[0])
    differing = {}
    for method in latent_ops.METHODS:
        middle = latent_ops.blend(end, other, 0.5, method)
        differing[method] = (float(middle.double().norm() / ((end.double().norm() + other.double().norm()) / 2)), ends)

    half = frames // 2
    first_half = latent_ops.ChannelStats.of(x[:half])
    after_causal = latent_ops.ChannelStats.of(x[1:5])
    with_causal = latent_ops.ChannelStats.of(x[:4])
    band = latent_ops.NATURAL_DRIFT
    natural = {
        "second half against the first (8 latent frames each)": latent_ops.drift(x[half:], first_half, relative=True),
        "frames 5-8 against frames 1-4": latent_ops.drift(x[5:9], after_causal, relative=True),
        "frames 9-12 against frames 1-4": latent_ops.drift(x[9:13], after_causal, relative=True),
        "frames 4-7 against frames 0-3 (with the causal frame)": latent_ops.drift(x[4:8], with_causal, relative=True),
    }
    limited = latent_ops.limit_drift(x[half:], first_half)
    matched = latent_ops.match_channel_stats(x[half:], first_half)
    corrected = {
        "match_channel_stats (exact, the old rule)": latent_ops.drift(matched, first_half, relative=True),
        "limit_drift (the band)": latent_ops.drift(limited, first_half, relative=True),
    }
    own = latent_ops.ChannelStats.of(x[half:])
    centre = own.mean[None, :, None, None]
    drifted = (x[half:] - centre) * ADDED_CONTRAST + centre + ADDED_SHIFT * first_half.std[None, :, None, None]
    added = (latent_ops.drift(drifted, first_half, relative=True),
             latent_ops.drift(latent_ops.limit_drift(drifted, first_half), first_half, relative=True))

    cut = 8
    seams = {
        "as filmed (cut after frame 7, rejoined)": analysis.measure_seam(x, [cut - 1]),
        "1 latent frame skipped (0-7 + 9-15)": analysis.measure_seam(torch.cat([x[:cut], x[cut + 1 :]]), [cut - 1]),
        "4 latent frames skipped (0-7 + 12-15)": analysis.measure_seam(torch.cat([x[:cut], x[cut + 4 :]]), [cut - 1]),
        "4 latent frames repeated (0-7 + 4-15)": analysis.measure_seam(torch.cat([x[:cut], x[cut - 4 :]]), [cut - 1]),
        "cut to other content (0-7 + 8-15 mirrored)": analysis.measure_seam(torch.cat([x[:cut], x[cut:].flip(-1)]), [cut - 1]),
    }

    plan = editing.EditPlan(loop=True)
    crossfade = plan.crossfade_frames(frames)
    edited = editing.edit(clip, plan).latents  # (F - crossfade, ...): the tail blended into the head
    factor = 2
    interpolated = editing.interpolate(clip, factor, loop=True).latents  # (F * factor, ...)
    both = editing.interpolate(editing.edit(clip, plan), factor, loop=True).latents
    # In a loop of F frames, step F - 1 goes from the last frame back to the first; interpolated K
    # times, the gap from the last original frame to the first is the last K steps.
    kept = edited.shape[0]
    loops = {
        "none: last frame straight back to the first": analysis.measure_seam(x, [frames - 1], loop=True),
        "none, without the causal first frame (frames 1-15)": analysis.measure_seam(x[1:], [frames - 2], loop=True),
        f"`edit --loop` ({crossfade}-frame crossfade)": analysis.measure_seam(edited, [*range(crossfade), kept - 1], loop=True),
        f"`interpolate --factor {factor} --loop`": analysis.measure_seam(
            interpolated, list(range(factor * (frames - 1), factor * frames)), loop=True),
        f"`edit --loop`, then `interpolate --factor {factor} --loop`": analysis.measure_seam(
            both, [*range(factor * crossfade), *range(factor * (kept - 1), factor * kept)], loop=True),
    }

    motion = {"the clip (16 latent frames)": analysis.measure_motion(x).relative,
              "without the causal first frame": analysis.measure_motion(x[1:]).relative}
    for start in range(0, frames, 4):
        motion[f"frames {start}-{start + 3}"] = analysis.measure_motion(x[start : start + 4]).relative
    for slower in (2, 3, 4):
        motion[f"{slower}x slower (lerped {slower}x)"] = analysis.measure_motion(latent_ops.upsample(x, slower, "lerp")).relative
    motion["a still: frame 8 repeated 16 times"] = analysis.measure_motion(x[8:9].expand(frames, -1, -1, -1)).relative

    later = distance[2:, 2:]
    return Figures(
        frames=frames, steps=[float(value) for value in steps],
        cosine=(float(cosine.min()), float(cosine.median())), norms=(float(rms[0]), float(rms[1:].median())),
        two_apart=float(later.diagonal(2).median()), one_apart=float(later.diagonal(1).median()),
        rebuilds=rebuilds(x), differing=differing, natural=natural, corrected=corrected,
        untouched=bool(torch.equal(limited, x[half:])), added=added, band=band, seams=seams, loops=loops, motion=motion,
        threshold=analysis.STATIC_THRESHOLD,
    )


def _rebuild(figures: Figures, factor: int, method: str) -> Rebuild:
    return next(each for each in figures.rebuilds if each.factor == factor and each.method == method)


# --- the rows of the main table ------------------------------------------------------------------


def real_latents(ctx: Context) -> list[Row]:
    """Section 9's rows (the same in every mode: the figures take seconds and are exact)."""
    from vidlatent import editing

    if not DATA.exists():
        return [Row("9", "real latents", status=f"skipped: {DATA} is not present")]
    figures = measure()
    default = editing.DEFAULT_METHOD
    rows = []
    for key, factor in zip("ab", FACTORS):
        ours, held = _rebuild(figures, factor, default), _rebuild(figures, factor, REPETITION)
        rows.append(Row(f"9{key}", f"real Wan 2.1 latents, drop {factor - 1} of {factor} frames: `interpolate --factor {factor}` "
                                   f"({default}, the default) error / frame repetition's",
                        value=f"{ours.error:.4f}", baseline=f"{held.error:.4f}", ratio=ours.error / held.error, goal=Goal(1),
                        note=_rebuild_note(figures, factor)))
    natural = figures.natural["second half against the first (8 latent frames each)"]
    kept = figures.corrected["limit_drift (the band)"]
    rows.append(Row("9c", "drift correction on real change (second half vs first): mean offset kept / before correction",
                    value=f"{kept.mean:.3f} σ", baseline=f"{natural.mean:.3f} σ", ratio=kept.mean / natural.mean,
                    goal=Goal(1, higher_is_better=True),
                    note=f"The old exact matching left {figures.corrected['match_channel_stats (exact, the old rule)'].mean:.1e} σ "
                         f"of it; limit_drift returned the half {'bit for bit' if figures.untouched else 'changed'}."))
    before, after = figures.added
    band = figures.band
    excess = max(after.mean / band.mean, after.std_ratio / band.std)
    rows.append(Row("9d", f"added drift ({ADDED_SHIFT:g} σ mean shift, contrast x{ADDED_CONTRAST:g}) after `limit_drift` / the band",
                    value=f"{after.mean:.3f} σ, {after.std_ratio:.1%}", baseline=f"{band.mean:g} σ, {band.std:.0%}",
                    ratio=round(excess, 3), goal=Goal(1),
                    note=f"Before correction: {before.mean:.3f} σ, std ratio − 1 {before.std_ratio:.1%}."))
    loop = next(seam for name, seam in figures.loops.items() if name.startswith("`edit --loop` ("))
    largest = max(figures.steps[1:])
    rows.append(Row("9e", "`edit --loop`: seam step / the clip's largest step after its causal first frame",
                    value=f"{loop.step:.3f}", baseline=f"{largest:.3f}", ratio=loop.step / largest, goal=Goal(1)))
    relative = figures.motion["the clip (16 latent frames)"]
    rows.append(Row("9f", "`analyze`: the real clip's relative motion / the static threshold (above 1: not flagged static)",
                    value=f"{relative:.3f}", baseline=f"{figures.threshold:g}", ratio=relative / figures.threshold,
                    goal=Goal(1, higher_is_better=True)))
    return rows


def _rebuild_note(figures: Figures, factor: int) -> str:
    from vidlatent import latent_ops

    parts = [f"{method} {_rebuild(figures, factor, method).error:.4f}" for method in (REPETITION, *latent_ops.METHODS)]
    return f"Errors (MSE / the true frames' variance): {', '.join(parts)}; see 'Real latents' below."


# --- the section -----------------------------------------------------------------------------------


def section(figures: Figures | None = None) -> str:
    """The Markdown of BENCHMARKS.md's "Real latents" section."""
    figures = figures or measure()
    steps = figures.steps
    mean_step = sum(steps) / len(steps)
    lines = [
        "## Real latents",
        "",
        (f"Section 9 in full. `../shared/data/{DATA.name}`: {figures.frames} latent frames (61 pixel frames, "
         "512×320) made by the real Wan 2.1 model, read as `vidlatent convert --layout ncthw --model wan21-i2v-480p` reads "
         "it (`vidlatent.raw_latents.read_raw`); every figure comes from vidlatent's own functions, on the CPU, in "
         "seconds, and is exact (no timing). One clip: read the figures as what this footage shows, not as a survey."),
        "",
        (f"**The clip.** Adjacent latent frames have cosine similarity {figures.cosine[1]:.3f} (median; lowest "
         f"{figures.cosine[0]:.3f}, out of the causal first frame). The motion energy of a step (RMS of the difference) "
         f"runs {min(steps):.3f}–{max(steps):.3f}, mean {mean_step:.3f}: {', '.join(f'{s:.3f}' for s in steps)}. The first "
         f"latent frame stands for one pixel frame, the others for four; its RMS value is {figures.norms[0]:.3f} against "
         f"{figures.norms[1]:.3f} for the others (median), so the first step is the largest. After the first two frames "
         f"the clip alternates between two nearly fixed states: frames two apart lie {figures.two_apart:.3f} apart, "
         f"frames one apart {figures.one_apart:.3f} (medians): a motion that repeats every 2 latent frames (8 pixel "
         "frames, half a second at 16 fps) and dies down towards the end."),
        "",
        "### Interpolation: dropped frames rebuilt",
        "",
        ("Keep every K-th latent frame, rebuild the others with `interpolate --factor K` (each `--method`) or by holding "
         "each kept frame (repetition). Error: mean squared error of the rebuilt frames over the true frames' variance. "
         "*From frame 0*: dropping from the first frame; *all offsets*: the mean over dropping from frame 0, 1, …, K − 1; "
         "*after frame 1*: the clip from its second frame, so no gap touches the causal first frame. Norm: |rebuilt| / "
         "|true|, per frame, mean (from frame 0)."),
        "",
        "| K | method | error, from frame 0 | error, all offsets | error, after frame 1 | norm |",
        "|---|---|---|---|---|---|",
    ]
    for each in figures.rebuilds:
        lines.append(f"| {each.factor} | {each.method} | {each.error:.4f} | {each.error_offsets:.4f} | "
                     f"{each.error_after_first:.4f} | {each.norm:.3f} |")
    lines += [
        "",
        ("Between frames of different content (the clip's last frame and its second frame mirrored left to right, "
         f"cosine {next(iter(figures.differing.values()))[1]:.3f}), the midpoint's norm over the ends' mean norm: "
         + ", ".join(f"{method} {ratio:.3f}" for method, (ratio, _) in figures.differing.items()) + "."),
        "",
        "### Drift: real change between parts of the clip",
        "",
        ("Per-channel statistics of one part against another's: *mean* is the largest |Δ mean| over channels in units "
         "of the reference channel's std (σ), *std* the largest change of a channel's std (ratio − 1). `extend` corrects "
         f"each new segment with `latent_ops.limit_drift`: only what lies beyond the band (mean {figures.band.mean:g} σ, "
         f"std {figures.band.std:.0%}) around the clip it continues."),
        "",
        "| parts | mean | std |",
        "|---|---|---|",
        *(f"| {name} | {d.mean:.3f} σ | {d.std_ratio:.1%} |" for name, d in figures.natural.items()),
        *(f"| second half after {name} | {d.mean:.3f} σ | {d.std_ratio:.1%} |" for name, d in figures.corrected.items()),
        (f"| second half with added drift ({ADDED_SHIFT:g} σ shift, contrast ×{ADDED_CONTRAST:g}) | "
         f"{figures.added[0].mean:.3f} σ | {figures.added[0].std_ratio:.1%} |"),
        f"| the same after limit_drift | {figures.added[1].mean:.3f} σ | {figures.added[1].std_ratio:.1%} |",
        "",
        f"limit_drift returned the real second half {'bit for bit' if figures.untouched else 'changed'}.",
        "",
        "### Seams: joins cut from the clip",
        "",
        ("`analysis.measure_seam`: the step across the join against the joined clip's other steps (motion energy): "
         "× mean step, and whether it is larger than the largest of them (*shows*)."),
        "",
        "| join | seam step | × mean step | largest other step | shows |",
        "|---|---|---|---|---|",
        *(f"| {name} | {s.step:.3f} | {s.ratio:.2f} | {s.largest_step:.3f} | {'yes' if s.exceeds_motion else 'no'} |"
          for name, s in figures.seams.items()),
        "",
        "### Loops",
        "",
        ("The seam a loop leaves when it plays around: for the crossfade, its steps and the wrap (last frame to first); "
         "for `interpolate --loop`, the steps through the frames it fills in from the last frame to the first. Against "
         f"the looped clip's other steps. The original clip's largest step after the causal frame is {max(steps[1:]):.3f}."),
        "",
        "| loop | seam step | × mean step | largest other step | shows |",
        "|---|---|---|---|---|",
        *(f"| {name} | {s.step:.3f} | {s.ratio:.2f} | {s.largest_step:.3f} | {'yes' if s.exceeds_motion else 'no'} |"
          for name, s in figures.loops.items()),
        "",
        "### `analyze`: relative motion and the static flag",
        "",
        (f"Relative motion (mean motion energy over √2 × the clip's latent scale); a clip is static below "
         f"`--static-threshold` (default {figures.threshold:g})."),
        "",
        "| clip | relative motion | static |",
        "|---|---|---|",
        *(f"| {name} | {value:.3f} | {'yes' if value < figures.threshold else 'no'} |" for name, value in figures.motion.items()),
        "",
        "### The defaults these figures set",
        "",
        ("- `interpolate --method`: slerp stays the default. Every blend beats repetition; away from the causal first "
         "frame the three rebuild alike (*after frame 1*), so lerp's lead comes from the one gap out of that frame, "
         "and where frames differ in content slerp alone keeps the norm (docs/editing.md)."),
        ("- `extend`'s drift correction: the band (`latent_ops.NATURAL_DRIFT`) is the largest real change measured "
         "above, rounded up; the old exact matching erased that change (docs/extend.md)."),
        ("- `edit --loop` keeps its quarter-length crossfade; `interpolate --loop` spreads the jump without shrinking "
         "it, so crossfade first (docs/editing.md)."),
        ("- `analyze --static-threshold` stays 0.05: below the real clip and every stretch of it, above the same "
         "footage three times slower (docs/analyze.md)."),
        "",
    ]
    return "\n".join(lines)


def report_section() -> str:
    """``section``, or a line saying why it could not be measured (BENCHMARKS.md is written either way)."""
    if not DATA.exists():
        return f"## Real latents\n\nNot measured: {DATA} is not present.\n"
    try:
        return section()
    except Exception as error:  # noqa: BLE001  (the rest of the report still gets written)
        return f"## Real latents\n\nNot measured: {type(error).__name__}: {error}\n"


if __name__ == "__main__":
    print(section())
