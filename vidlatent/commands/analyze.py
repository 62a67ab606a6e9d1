"""vidlatent analyze: PCA and motion energy of latent clips (model-free; docs/analyze.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from vidlatent.commands.options import FiniteFloatRange, common_options
from vidlatent.commands.reporting import Reporter, State, pass_state, text_console
from vidlatent.errors import IncompatibleLatentsError, UsageError, VidlatentError

# vidlatent.analysis.STATIC_THRESHOLD, repeated here because that module imports torch and
# --help must not (a test keeps the two equal).
STATIC_THRESHOLD = 0.05
PLOT_SUFFIX = ".png"


@click.command(
    epilog="""\b
Examples:
  vidlatent analyze a.safetensors b.safetensors --pca 4
  vidlatent analyze clips/*.safetensors --plot structure.png --save-components pcs.safetensors
  vidlatent encode a.mp4 --model tiny-random -o - | vidlatent analyze - --json
  vidlatent analyze long.safetensors --seams --plot seams.png
  vidlatent extend clip.safetensors --times 3 -o - | vidlatent analyze - --seams --json
"""
)
@click.argument("clips", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--pca", "n_components", type=click.IntRange(min=1), metavar="K",
              help="Principal components to compute and report [8, or frames - 1 if fewer].")
@click.option("--plot", metavar="OUT.png",
              help="Draw each clip's trajectory in PC1-PC2 and its motion-energy curve to a PNG (needs matplotlib: pip install 'vidlatent[plot]').")
@click.option("--umap", "use_umap", is_flag=True,
              help="With --plot, add the trajectories in a 2-D UMAP embedding of the components (needs umap-learn: pip install 'vidlatent[umap]').")
@click.option("--save-components", metavar="P.safetensors",
              help="Write the components, standardisation and explained variance (docs/analyze.md) for edit --pca-shift.")
@click.option("--static-threshold", type=FiniteFloatRange(min=0, min_open=True), default=STATIC_THRESHOLD, show_default=True,
              metavar="R", help="A clip is static when its mean motion energy is below R x sqrt(2) x its own latent std.")
@click.option("--seams", is_flag=True,
              help="Instead of PCA: each join the clip's history records (extend's segments, a long SkyReels DF video's "
                   "windows), worst first: the latent step into it against the clip's median step, and each segment's "
                   "per-channel mean/std drift from the first; --plot draws them over time.")
@click.option("--pixels", is_flag=True,
              help="With --seams: also measure each join in decoded pixels, with the clip's own model (its VAE alone; "
                   "--device picks where: auto).")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|mps|cuda:N",
              help="With --pixels: where the VAE decodes.")
@common_options
@pass_state
def command(state: State, clips: tuple[str, ...], n_components: int | None, plot: str | None, use_umap: bool,
            save_components: str | None, static_threshold: float, seams: bool, pixels: bool, device: str) -> None:
    """Analyze the structure of latent CLIPS (latent files, or - for stdin): PCA and motion.

    Every frame's latents, flattened and standardised per feature, are one vector; the
    principal components of all the clips' frames are found by incremental PCA in bounded
    memory (one clip at a time). Per clip: its frames, the motion energy between consecutive
    frames (RMS of the latent difference), and a static flag. Prints a table, or with --json
    one JSON object, on stdout. All clips must come from one VAE and have one frame size.
    No model is loaded.
    """
    report = Reporter(state, "analyze")
    sources = [ClipSource(path) for path in clips]
    _name_sources(sources)
    _check_options(clips, plot, use_umap, save_components)
    if pixels and not seams:
        raise UsageError("--pixels measures seams in pixels: give --seams too")
    if seams:
        given = [flag for flag, value in (("--pca", n_components), ("--umap", use_umap), ("--save-components", save_components))
                 if value]
        if given:
            raise UsageError(f"{given[0]} and --seams: --seams measures joins, not principal components; leave {given[0]} out")
        _analyze_seams(report, state, sources, plot, device if pixels else None)
        return

    from vidlatent import analysis

    with report.timed("analyze"):
        result = analysis.analyze([source.latents for source in sources], n_components, static_threshold=static_threshold)
    first = sources[0]
    outputs: list[dict[str, Any]] = []
    if save_components:
        components = analysis.Components.from_pca(result.pca, result.frame_shape, first.latent_space,
                                                  [source.name for source in sources])
        analysis.save_components(components, save_components)
        outputs.append({"path": str(Path(save_components).resolve()), "kind": "components"})
        report.note(f"wrote {save_components} ({components.count} components)")
    if plot:
        with report.timed("plot"):
            embedding = _umap_embedding(result) if use_umap else None
            _draw(result, [source.name for source in sources], plot, embedding)
        outputs.append({"path": str(Path(plot).resolve()), "kind": "plot"})
        report.note(f"wrote {plot}")

    if state.json:
        report.summary(outputs, stdout_busy=False, **_fields(result, sources, static_threshold))
    else:
        _print_tables(result, sources)


@dataclass
class ClipSource:
    """One CLIP argument: read again on each pass over the clips (stdin once, then kept)."""

    path: str
    name: str = ""
    latent_space: str = ""
    model: str = ""
    fps: float = 0.0
    frame_rule: Any = None  # the clip's vidlatent.layout.FrameRule: its latent frames' pixel frames
    _frame_shape: tuple[int, ...] | None = None
    _kept: Any = None  # the LatentClip read from stdin
    _reference: ClipSource | None = None  # the first clip, that every other must match

    def latents(self) -> Any:
        """The clip's (F, C, h, w) latents, checked against the first clip on the first read."""
        from vidlatent import latentfile
        from vidlatent.atomic import STDIO

        if self._kept is not None:
            return self._kept.latents
        clip = latentfile.read(self.path)
        if self.path == STDIO:
            self._kept = clip
        if self._frame_shape is None:
            self._accept(clip)
        return clip.latents

    def _accept(self, clip: Any) -> None:
        from vidlatent.latentfile import LatentSpace

        if clip.kind != "clip":
            raise UsageError(f"{self.path} is a {clip.kind}, not a clip; analyze reads latent clips")
        self.latent_space, self.model, self.fps = clip.latent_space, clip.model, clip.fps
        self.frame_rule = clip.layout.frame_rule
        self._frame_shape = tuple(clip.latents.shape[1:])
        first = self._reference
        if first is None:
            return
        if not LatentSpace.parse(self.latent_space).matches(LatentSpace.parse(first.latent_space)):
            raise IncompatibleLatentsError(
                f"{first.path} and {self.path} belong to different latent spaces ({first.latent_space} from {first.model}; "
                f"{self.latent_space} from {self.model}); analyze clips of one VAE together"
            )
        if self._frame_shape != first._frame_shape:
            raise IncompatibleLatentsError(
                f"{first.path} has frames of shape {_shape(first._frame_shape)} but {self.path} {_shape(self._frame_shape)} "
                "(channels x height/8 x width/8); encode both at one --size"
            )


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(str(size) for size in shape or ())


def _name_sources(sources: list[ClipSource]) -> None:
    """Legend and table names: the file's stem where that is unique, else the path as given."""
    from vidlatent.atomic import STDIO

    if sum(source.path == STDIO for source in sources) > 1:
        raise UsageError("- (standard input) is given more than once; it can be read only once")
    stems = [Path(source.path).stem if source.path != STDIO else "stdin" for source in sources]
    for source, stem in zip(sources, stems):
        source.name = stem if stems.count(stem) == 1 else source.path
        source._reference = sources[0] if source is not sources[0] else None


def _check_options(clips: tuple[str, ...], plot: str | None, use_umap: bool, save_components: str | None) -> None:
    """Refuse bad inputs and outputs before reading anything."""
    import importlib.util

    from vidlatent import media
    from vidlatent.atomic import STDIO, check_output

    for path in clips:
        if path != STDIO and (Path(path).suffix.lower() in media.SUPPORTED_VIDEO_READ or Path(path).is_dir()):
            raise UsageError(f"{path} is a video; analyze is model-free and reads latent files: "
                             f"encode it first (vidlatent encode {path} -o - | vidlatent analyze -)")
    if use_umap and not plot:
        raise UsageError("--umap draws into the --plot image; give --plot OUT.png too")
    outputs = [(option, path) for option, path in (("--plot", plot), ("--save-components", save_components)) if path]
    for option, path in outputs:
        suffix = PLOT_SUFFIX if option == "--plot" else ".safetensors"
        if path == STDIO or not path.lower().endswith(suffix):
            raise UsageError(f"{option} {path}: expected a file name ending in {suffix} (stdout carries the table or --json)")
        check_output(path, clips)
    missing = [(flag, module, extra) for flag, module, extra, wanted in
               (("--plot", "matplotlib", "plot", plot), ("--umap", "umap", "umap", use_umap))
               if wanted and importlib.util.find_spec(module) is None]
    for flag, module, extra in missing:
        # An optional extra that is not installed: the environment, not the command line, is
        # at fault, so it is a runtime failure (exit status 1).
        raise VidlatentError(f"{flag} needs {'umap-learn' if module == 'umap' else module}, which is not installed; "
                             f"pip install 'vidlatent[{extra}]'")


def _significant(value: float) -> float:
    return float(f"{value:.6g}")


def _fields(result: Any, sources: list[ClipSource], static_threshold: float) -> dict[str, Any]:
    """The --json object's own fields (docs/analyze.md)."""
    from vidlatent.atomic import STDIO

    pca = result.pca
    return {
        "latent_space": sources[0].latent_space,
        "frame_shape": list(result.frame_shape),
        "static_threshold": static_threshold,
        "components": {
            "count": int(pca.components.shape[0]),
            "latent_frames": pca.frames,
            "features": int(pca.components.shape[1]),
            "explained_variance_ratio": [_significant(v) for v in pca.explained_variance_ratio.tolist()],
            "explained_variance": [_significant(v) for v in pca.explained_variance.tolist()],
        },
        "clips": [
            {
                "path": source.path if source.path == STDIO else str(Path(source.path).resolve()),
                "name": source.name,
                "model": source.model,
                "fps": source.fps,
                "frames": source.frame_rule.pixel_frames(clip.frames),
                "latent_frames": clip.frames,
                "latent_scale": _significant(clip.motion.scale),
                "mean_motion_energy": _significant(clip.motion.mean_energy),
                "relative_motion": _significant(clip.motion.relative),
                "static": clip.motion.static,
                "motion_energy": [_significant(v) for v in clip.motion.energy.tolist()],
                "coordinates": [[_significant(v) for v in row] for row in clip.coordinates.tolist()],
            }
            for source, clip in zip(sources, result.clips)
        ],
    }


def _print_tables(result: Any, sources: list[ClipSource]) -> None:
    from rich.table import Table

    console = text_console()
    pca = result.pca
    threshold = result.clips[0].motion.threshold
    facts = Table(show_header=False, box=None)
    facts.add_column("key", no_wrap=True)
    facts.add_column("value", overflow="fold")
    facts.add_row("latent_space", sources[0].latent_space)
    facts.add_row("frame_shape", f"{_shape(result.frame_shape)} (channels x height/8 x width/8)")
    facts.add_row("clips", f"{len(sources)} ({pca.frames} latent frames)")
    console.print(facts)
    clips = Table("clip", "frames", "latent frames", "mean motion energy", "relative motion", f"static (< {threshold:g})",
                  title="motion (between latent frames)")
    for source, clip in zip(sources, result.clips):
        clips.add_row(source.name, str(source.frame_rule.pixel_frames(clip.frames)), str(clip.frames),
                      f"{clip.motion.mean_energy:.4g}", f"{clip.motion.relative:.3f}",
                      "yes" if clip.motion.static else "no")
    console.print(clips)
    components = Table("component", "explained variance ratio", "cumulative", "std of coordinate",
                       title=f"principal components of {pca.frames} standardised latent frames")
    cumulative = 0.0
    for index, (ratio, variance) in enumerate(zip(pca.explained_variance_ratio.tolist(), pca.explained_variance.tolist())):
        cumulative += ratio
        components.add_row(f"PC{index + 1}", f"{ratio:.4f}", f"{cumulative:.4f}", f"{variance ** 0.5:.4g}")
    console.print(components)


def _umap_embedding(result: Any) -> Any:
    """A 2-D UMAP embedding (N, 2) of all frames' PCA coordinates, clip after clip."""
    import numpy as np
    import umap

    points = np.concatenate([clip.coordinates.numpy() for clip in result.clips])  # (N, K)
    if len(points) < 4:
        raise UsageError(f"--umap needs at least 4 frames in all; the clips have {len(points)}")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(points) - 1), random_state=0,
                        init="spectral" if len(points) > 16 else "random")
    return reducer.fit_transform(points)


def _colours(count: int) -> list[Any]:
    """One distinct colour per clip: tab10, tab20, then evenly spaced along turbo."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](index) for index in range(count)]
    if count <= 20:
        return [colormaps["tab20"](index) for index in range(count)]
    return [colormaps["turbo"](index / (count - 1)) for index in range(count)]


def _draw(result: Any, names: list[str], path: str, embedding: Any = None) -> None:
    """Trajectories in PC1-PC2 (and UMAP), and the motion-energy curves, as a PNG written atomically."""
    import math

    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from vidlatent.atomic import atomic_output

    pca = result.pca
    ratios = [100 * value for value in pca.explained_variance_ratio.tolist()]
    panels = 3 if embedding is not None else 2
    figure = Figure(figsize=(6.2 * panels + 2.2, 5.4), layout="constrained", dpi=110)
    axes = figure.subplots(1, panels)
    trajectory, motion = axes[0], axes[-1]
    colours = _colours(len(names))
    offset = 0
    for clip, name, colour in zip(result.clips, names, colours):
        coords = clip.coordinates.numpy()  # (F, K)
        x, y = (coords[:, 0], coords[:, 1]) if coords.shape[1] > 1 else (range(clip.frames), coords[:, 0])
        x, y = list(x), list(y)
        trajectory.plot(x, y, "-", color=colour, linewidth=1.4, marker=".", markersize=4, label=name)
        trajectory.plot(x[:1], y[:1], "o", color=colour, markersize=8, markerfacecolor="white", markeredgewidth=2)
        trajectory.plot(x[-1:], y[-1:], "s", color=colour, markersize=7)
        if embedding is not None:
            points = embedding[offset : offset + clip.frames]
            axes[1].plot(points[:, 0], points[:, 1], "-", color=colour, linewidth=1.2, marker=".", markersize=4)
            axes[1].plot(points[:1, 0], points[:1, 1], "o", color=colour, markersize=8, markerfacecolor="white", markeredgewidth=2)
            axes[1].plot(points[-1:, 0], points[-1:, 1], "s", color=colour, markersize=7)
        offset += clip.frames
        scale = math.sqrt(2) * clip.motion.scale
        relative = [value / scale if scale > 0 else 0.0 for value in clip.motion.energy.tolist()]
        motion.plot(range(1, clip.frames), relative, "-", color=colour, linewidth=1.4, marker=".", markersize=4)

    if pca.components.shape[0] > 1:
        trajectory.set_xlabel(f"PC1 ({ratios[0]:.1f}% of variance)")
        trajectory.set_ylabel(f"PC2 ({ratios[1]:.1f}% of variance)")
        trajectory.set_title("Trajectories in the first two principal components")
    else:
        trajectory.set_xlabel("frame")
        trajectory.xaxis.set_major_locator(MaxNLocator(integer=True))
        trajectory.set_ylabel(f"PC1 ({ratios[0]:.1f}% of variance)")
        trajectory.set_title("Coordinate on the first principal component")
    markers = [Line2D([], [], color="0.3", marker="o", markerfacecolor="white", markeredgewidth=2, linestyle="", label="first frame"),
               Line2D([], [], color="0.3", marker="s", linestyle="", label="last frame")]
    trajectory.legend(handles=markers, loc="best", fontsize="small")
    if embedding is not None:
        axes[1].set_xlabel("UMAP 1")
        axes[1].set_ylabel("UMAP 2")
        axes[1].set_title(f"Trajectories in a UMAP embedding of {pca.components.shape[0]} components")
    threshold = result.clips[0].motion.threshold
    motion.axhline(threshold, color="0.4", linestyle="--", linewidth=1)
    motion.text(0.01, threshold, f" static threshold {threshold:g}", va="bottom", ha="left", fontsize="small", color="0.3",
                transform=motion.get_yaxis_transform())
    motion.set_xlabel("frame t (motion from frame t-1 to t)")
    motion.set_ylabel("motion energy / (\u221a2 \u00d7 clip's latent std)")
    motion.xaxis.set_major_locator(MaxNLocator(integer=True))
    motion.set_title("Motion energy")
    motion.set_ylim(bottom=0)
    for axis in axes:
        axis.grid(True, alpha=0.3)
    handles = [Line2D([], [], color=colour, linewidth=2, label=name) for name, colour in zip(names, colours)]
    figure.legend(handles=handles, title="clip", loc="outside right upper", fontsize="small",
                  ncols=1 if len(names) <= 24 else 2)
    frames = sum(clip.frames for clip in result.clips)
    shown = sum(ratios[:2])
    figure.suptitle(f"vidlatent analyze: {len(names)} clip(s), {frames} frames; "
                    f"{'PC1-PC2 explain' if len(ratios) > 1 else 'PC1 explains'} {shown:.1f}% of the variance")
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")


# --- --seams -------------------------------------------------------------------------------------


def _analyze_seams(report: Reporter, state: State, sources: list[ClipSource], plot: str | None, device: str | None) -> None:
    """Each clip's joins, measured (``vidlatent.analysis.measure_seams``): a table per clip, or --json.
    ``device``: decode each clip with its own model's VAE there, to measure the joins in pixels too."""
    from vidlatent import analysis, latentfile
    from vidlatent.atomic import STDIO

    measured = []
    vaes: dict[str, Any] = {}  # model -> its VAE, loaded once
    with report.timed("analyze"):
        for source in sources:
            source.latents()  # reads and checks it (stdin is kept)
            clip = source._kept if source._kept is not None else latentfile.read(source.path)
            joins = analysis.history_joins(clip.history, clip.frames, clip.layout.frame_rule)
            if not joins:
                report.note(f"{source.name}: its history records no joins (one segment): no seams to measure")
            steps = _pixel_steps(clip, vaes, device, report) if device is not None else None
            measured.append((source, clip, analysis.measure_seams(clip.latents, joins, steps)))
    outputs: list[dict[str, Any]] = []
    if plot:
        with report.timed("plot"):
            _draw_seams(measured, plot)
        outputs.append({"path": str(Path(plot).resolve()), "kind": "plot"})
        report.note(f"wrote {plot}")
    if state.json:
        clips = [{"path": source.path if source.path == STDIO else str(Path(source.path).resolve()), "name": source.name,
                  "frames": clip.frames, "pixel_frames": clip.pixel_frames, **_seam_fields(result)}
                 for source, clip, result in measured]
        report.summary(outputs, stdout_busy=False, clips=clips)
        return
    from rich.table import Table

    console = text_console()
    for source, clip, result in measured:
        in_pixels = any(seam.pixel_step is not None for seam in result.seams)
        table = Table("frame", "latent frame", "made by", "step at the seam", "median step", "ratio",
                      *(["pixel ratio"] if in_pixels else []), "prompt",
                      title=f"{source.name}: seams, worst first ({clip.pixel_frames} frames)")
        for seam in result.seams:
            join = seam.join
            table.add_row(str(join.pixel_frame), str(join.latent_frame), join.command, f"{seam.step:.4g}",
                          f"{seam.typical_step:.4g}", f"{seam.ratio:.2f}",
                          *([f"{seam.pixel_ratio:.2f}"] if in_pixels else []), join.prompt or "")
        console.print(table)
        drift = Table("segment (latent frames)", "mean drift (channel stds)", "std ratio - 1",
                      title=f"{source.name}: per-channel drift from the first segment")
        for segment in result.segments:
            drift.add_row(f"{segment.first}-{segment.end - 1}", f"{segment.mean:.3f}", f"{segment.std_ratio:.3f}")
        console.print(drift)


def _pixel_steps(clip: Any, vaes: dict[str, Any], device: str, report: Reporter) -> Any:
    """The decoded clip's pixel steps (``analysis.pixel_steps``), decoded as ``decode`` does with the clip's model."""
    from vidlatent import analysis
    from vidlatent.codec import decode_frames
    from vidlatent.families.base import decode_settings
    from vidlatent.models import LoadOptions, load_vae, plan_vae_tiling

    if clip.model not in vaes:
        with report.timed("load"):
            vaes[clip.model] = load_vae(LoadOptions(model=clip.model, device=device), note=report.note)
    model = vaes[clip.model]
    clip.require_space(model.latent_space, what=f"its model {model.model_id}")
    plan_vae_tiling(model, (clip.width, clip.height))
    settings = decode_settings(model.family, model.vae, clip)
    return analysis.pixel_steps(decode_frames(model.family, clip.latents, model.vae, device=model.execution_device,
                                              settings=settings))


def _seam_fields(result: Any) -> dict[str, Any]:
    """--seams' JSON fields of one clip (docs/analyze.md)."""
    return {
        "seams": [{"pixel_frame": seam.join.pixel_frame, "latent_frame": seam.join.latent_frame, "command": seam.join.command,
                   "prompt": seam.join.prompt, "step": _significant(seam.step), "median_step": _significant(seam.typical_step),
                   "ratio": _significant(seam.ratio),
                   **({"pixel_step": _significant(seam.pixel_step), "pixel_median_step": _significant(seam.pixel_typical_step),
                       "pixel_ratio": _significant(seam.pixel_ratio)} if seam.pixel_step is not None else {})}
                  for seam in result.seams],
        "segments": [{"latent_frames": [segment.first, segment.end - 1], "mean_drift": _significant(segment.mean),
                      "std_ratio_drift": _significant(segment.std_ratio)} for segment in result.segments],
        "motion_energy": [_significant(value) for value in result.energy.tolist()],
    }


def _draw_seams(measured: list[tuple[Any, Any, Any]], path: str) -> None:
    """Per clip: the motion energy over time with the joins marked, and each segment's drift."""
    from matplotlib.figure import Figure

    from vidlatent.atomic import atomic_output

    figure = Figure(figsize=(12.4, 4.2 * len(measured)), layout="constrained", dpi=110)
    rows = figure.subplots(len(measured), 2, squeeze=False)
    for (source, clip, result), (steps, drifts) in zip(measured, rows):
        energy = result.energy.tolist()
        steps.plot(range(1, len(energy) + 1), energy, "-", color="tab:blue", marker=".", label="step into frame t")
        for seam in result.seams:
            steps.axvline(seam.join.latent_frame, color="tab:red", alpha=0.5, linestyle="--")
            steps.annotate(f"{seam.ratio:.2f}x", (seam.join.latent_frame, seam.step), fontsize="small", color="tab:red")
        if result.seams:
            steps.axhline(result.seams[0].typical_step, color="0.4", linestyle=":", label="median step (not a seam)")
        steps.set_xlabel("latent frame t")
        steps.set_ylabel("motion energy (latent RMS step)")
        steps.set_title(f"{source.name}: steps, seams dashed")
        steps.legend(fontsize="small")
        middles = [(segment.first + segment.end - 1) / 2 for segment in result.segments]
        drifts.plot(middles, [segment.mean for segment in result.segments], "o-", label="mean drift (channel stds)")
        drifts.plot(middles, [segment.std_ratio for segment in result.segments], "s-", label="std ratio - 1")
        drifts.set_xlabel("segment (middle latent frame)")
        drifts.set_title(f"{source.name}: drift from the first segment (largest channel)")
        drifts.legend(fontsize="small")
        for axis in (steps, drifts):
            axis.grid(True, alpha=0.3)
            axis.set_ylim(bottom=0)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")
