"""Section 11, long video: the ways to a clip longer than one model call, side by side, measured
as ``vidlatent analyze --seams`` measures them (``analysis.measure_seams``).

Every way makes the same clip shape per family from a first clip and two joins, each segment
adding the same new frames, on the tiny random models at 64x64 (seeds 0, 1, ...; the segments of
extend seed + 100 + j):

- SkyReels DF: native long ``generate`` in three windows (17-frame windows with a history of 5:
  41 frames; 29-frame windows with a history of 17: 53 frames), and ``extend`` of a 17-frame clip
  twice by 12 frames through the video-to-video pipeline with a history of 17 (the default), 5,
  or 1 frame (the clip's last frame alone: DF's last-frame extend), drift correction on and off;
- Wan 2.1 and LTX-Video: ``extend`` of a 17-frame clip twice (Wan by 12 frames, LTX by 24: three
  latent frames each), at the default overlap and one other, drift correction on and off;
- SVD: ``extend`` of an 8-frame clip twice by 6 frames, likewise.

Each way's row: the seam (the latent step into each join over the clip's median step; 1 is a
join that moves as the clip does) and the drift of the last segment from the first (the largest
per-channel mean offset, in the first segment's channel stds, and std ratio - 1). The reference
column is a hard cut of the same family: the first clip followed by two more generations from
other seeds, joined where the way's joins are, with no continuation at all.

The weights are random, so these are plumbing numbers: they show each way runs, joins where its
history says and keeps (or not) to the drift band; they cannot say which way looks best (on these
models a hard cut measures like a continuation; docs/extend.md, "Long video").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Row, conditioning_image, progress

if TYPE_CHECKING:
    import torch

    from benchmarks.cases import Context

SIZE = (64, 64)  # a multiple of every tiny model's size multiple (SVD's 64)
PROMPT = "a bear walks through the forest"
SEGMENTS = 2  # joins per clip
CUT_SEED = 50  # the hard cut's other generations: seed + 50 + j


@dataclass(frozen=True)
class Shape:
    """One family's clip: its tiny model, the first clip's pixel frames and the pixel frames each
    segment adds. ``leading``: the latent frames a fresh generation starts with that the hard cut
    leaves out, as a continuation does (a causal VAE's first latent frame stands for one pixel
    frame alone; SVD's VAE has none)."""

    model: str
    first: int
    added: int
    leading: int
    image: bool = True  # conditioned on the section's image rather than on text alone
    prompt: bool = True


DF = Shape("tiny-random-skyreels-df", first=17, added=12, leading=1, image=False)
WAN = Shape("tiny-random-wan", first=17, added=12, leading=1)
LTX = Shape("tiny-random-ltx", first=17, added=24, leading=1)
SVD = Shape("tiny-random", first=8, added=6, leading=0, prompt=False)


@dataclass(frozen=True)
class Way:
    """A way to a long clip: how its row is named and how it is made."""

    key: str
    what: str
    shape: Shape
    native: dict[str, int] | None = None  # DF native generate: window and history (pixel frames)
    overlap: int | None = None  # extend: latent frames shared with the clip (None: the family's default)
    correction: bool = True


WAYS = (
    Way("11a", "SkyReels DF: native long generate, 17-frame windows, history 5", DF, native={"window": 17, "history": 5}),
    Way("11b", "SkyReels DF: native long generate, 29-frame windows, history 17", DF, native={"window": 29, "history": 17}),
    Way("11c", "SkyReels DF: extend (video-to-video), history 17 (the default), drift correction on (the default)", DF),
    Way("11d", "SkyReels DF: extend (video-to-video), history 17, drift correction off", DF, correction=False),
    Way("11e", "SkyReels DF: extend (video-to-video), history 5, drift correction on", DF, overlap=2),
    Way("11f", "SkyReels DF: last-frame extend (video-to-video, history 1), drift correction on", DF, overlap=1),
    Way("11g", "Wan 2.1: extend, pinned overlap 1 (the default), drift correction on (the default)", WAN),
    Way("11h", "Wan 2.1: extend, pinned overlap 1, drift correction off", WAN, correction=False),
    Way("11i", "Wan 2.1: extend, pinned overlap 2, drift correction on", WAN, overlap=2),
    Way("11j", "LTX-Video: extend, conditioned on the last 9 frames (overlap 2, the default), drift correction on "
               "(the default)", LTX),
    Way("11k", "LTX-Video: extend, overlap 2, drift correction off", LTX, correction=False),
    Way("11l", "LTX-Video: extend, conditioned on the last frame (overlap 1), drift correction on", LTX, overlap=1),
    Way("11m", "SVD: extend, pinned overlap 2 (the default), drift correction on (the default)", SVD),
    Way("11n", "SVD: extend, pinned overlap 2, drift correction off", SVD, correction=False),
    Way("11o", "SVD: extend, last frame only (overlap 1), drift correction on", SVD, overlap=1),
)
WHAT = "{what}: seam (step into a join / median step) and the last segment's drift"


def rows_declared() -> list[tuple[str, str]]:
    """The rows' keys and descriptions, in order."""
    return [(way.key, WHAT.format(what=way.what)) for way in WAYS]


@dataclass
class Measured:
    """A way's seams (every join of every seed) and its last segment's drift (per seed)."""

    seams: list[float]
    means: list[float]
    stds: list[float]

    def cell(self) -> str:
        return (f"seam {statistics.mean(self.seams):.2f}; drift {statistics.mean(self.means):.2f} σ, "
                f"std {statistics.mean(self.stds):+.0%}")


def long_video(ctx: Context) -> list[Row]:
    from vidlatent import media

    cfg = ctx.config
    # The smoke run measures SVD's rows alone (tiny-random, which the smoke run loads anyway): the
    # machinery in a second, not four models.
    shapes = (SVD,) if cfg.dry else (DF, WAN, LTX, SVD)
    image = media.load_image(str(conditioning_image(SIZE, ctx.workdir / "long-video.png")))
    maker = Maker(image, steps=cfg.long_steps)
    cuts = {shape: Measured([], [], []) for shape in shapes}
    for seed in range(cfg.long_seeds):
        for shape, measured in cuts.items():
            add(measured, maker.cut(shape, seed))
    rows = []
    for way in WAYS:
        if way.shape not in shapes:
            rows.append(Row(way.key, WHAT.format(what=way.what), status=f"not run ({cfg.name})"))
            continue
        measured = Measured([], [], [])
        for seed in range(cfg.long_seeds):
            add(measured, maker.way(way, seed))
        progress(f"  {way.key}: {measured.cell()}")
        rows.append(Row(way.key, WHAT.format(what=way.what), value=measured.cell(),
                        baseline=f"cut: {cuts[way.shape].cell()}", ratio=statistics.mean(measured.seams),
                        pairs=measured.seams))
    seeds = "0" if cfg.long_seeds == 1 else f"0–{cfg.long_seeds - 1}"
    rows[0].note = (
        f"Plumbing numbers: tiny random models, {SIZE[0]}x{SIZE[1]}, {cfg.long_steps} steps, seeds {seeds} (extend's "
        "segments: seed + 100 + j), two joins per clip; the pairs column is the range of the seams over every join and "
        "seed. Seam: `analysis.measure_seams`, as `analyze --seams` prints it; drift: the last segment against the "
        "first, the largest per-channel mean offset in the first segment's channel stds and std ratio − 1 (drift "
        "correction's band: 0.15 σ, 12 %). Reference: a hard cut of the same family (the first clip and two "
        "generations from other seeds, joined at the same frames): on random weights it measures like every "
        "continuation, so these rows cannot rank the ways by what they look like (docs/extend.md, \"Long video\")."
    )
    return rows


def add(measured: Measured, clip: tuple[torch.Tensor, list[Any]]) -> None:
    from vidlatent import analysis

    latents, joins = clip
    seams = analysis.measure_seams(latents, joins)
    measured.seams.extend(seam.ratio for seam in seams.seams)
    measured.means.append(seams.segments[-1].mean)
    measured.stds.append(seams.segments[-1].std_ratio)


class Maker:
    """Makes each way's clip, the tiny models loaded once."""

    def __init__(self, image: Any, *, steps: int) -> None:
        self.image = image
        self.steps = steps
        self._models: dict[str, Any] = {}

    def model(self, shape: Shape) -> Any:
        if shape.model not in self._models:
            from vidlatent.models import LoadOptions, load_pipeline

            self._models[shape.model] = load_pipeline(LoadOptions(model=shape.model, device="cpu"), image=shape.image)
        return self._models[shape.model]

    def generate(self, shape: Shape, frames: int, seed: int, **knobs: int) -> Any:
        from vidlatent.generation import Knobs, generate

        prompt = {"prompt": PROMPT} if shape.prompt else {}
        return generate(self.model(shape), self.image if shape.image else None, seed=seed, size=SIZE,
                        knobs=Knobs(frames=frames, steps=self.steps, **prompt, **knobs))

    def way(self, way: Way, seed: int) -> tuple[torch.Tensor, list[Any]]:
        """The way's clip (T, C, h, w) and its joins, from its history."""
        from vidlatent import analysis
        from vidlatent.generation import ExtendOptions, Knobs, extend

        shape = way.shape
        if way.native is not None:
            # A first window and SEGMENTS more, each continuing its history: window - history new frames.
            window, history = way.native["window"], way.native["history"]
            clip = self.generate(shape, window + SEGMENTS * (window - history), seed, **way.native)
        else:
            model = self.model(shape)
            first = self.generate(shape, shape.first, seed)
            family, rule = model.family, model.layout.frame_rule
            overlap = way.overlap if way.overlap is not None else family.default_overlap
            # A segment is the overlap and the latent frames the added pixel frames make.
            added = rule.latent_frames(shape.first + shape.added) - rule.latent_frames(shape.first)
            frames = rule.pixel_frames(overlap + added)
            knobs = Knobs(frames=frames, steps=self.steps, **({"prompt": PROMPT} if shape.prompt else {}))
            clip = extend(model, first, knobs=knobs, seed=seed + 100,
                          options=ExtendOptions(times=SEGMENTS, overlap=way.overlap, drift_correction=way.correction))
        return clip.latents, analysis.history_joins(clip.history, clip.frames, clip.layout.frame_rule)

    def cut(self, shape: Shape, seed: int) -> tuple[torch.Tensor, list[Any]]:
        """The first clip and SEGMENTS fresh generations, each less its leading frames, joined."""
        import torch

        from vidlatent.analysis import Join

        first = self.generate(shape, shape.first, seed)
        rule = first.layout.frame_rule
        new = rule.latent_frames(shape.first + shape.added) - rule.latent_frames(shape.first)  # latent frames per segment
        parts, joins = [first.latents], []
        for index in range(SEGMENTS):
            start = sum(int(part.shape[0]) for part in parts)
            joins.append(Join(start, rule.pixel_frames(start), "cut", None))
            fresh = self.generate(shape, rule.pixel_frames(shape.leading + new), seed + CUT_SEED + index)
            parts.append(fresh.latents[shape.leading : shape.leading + new])
        return torch.cat(parts), joins

