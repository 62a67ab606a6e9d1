"""The structure of latent clips: PCA of their frames, motion energy and seams, principal directions.

Pure latent math, the library behind ``vidlatent analyze`` (see docs/analyze.md): tensors in,
numbers out, no model imports. Clips are (F, C, h, w) tensors; a frame, flattened, is a
vector of D = C*h*w features (36864 for SVD at 1024x576).

PCA runs incrementally so that many clips fit in bounded memory: a full D x D covariance at
SVD's size would take 5 GB, while ``IncrementalPCA`` holds a (rank, D) basis and one chunk of
frames. It makes two passes over the clips: the first accumulates each feature's mean and
standard deviation (the standardisation), the second merges chunk after chunk into a
truncated SVD (Ross et al. 2008, as in scikit-learn's IncrementalPCA). Because the first pass
already knows the exact mean, the second needs no running-mean correction rows.

Principal directions are saved as a components file (format ``vidlatent.components``,
version 1) that ``pca_shift`` applies to a clip.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from vidlatent import __version__
from vidlatent.errors import IncompatibleLatentsError, LatentFileError, UsageError
from vidlatent.latentfile import LatentSpace, parse_safetensors, read_bytes, safetensors_bytes, write_bytes
from vidlatent.layout import FrameRule

if TYPE_CHECKING:
    import numpy as np

STATIC_THRESHOLD = 0.05
"""Default static threshold on a clip's relative motion (see ``measure_motion``)."""

DEFAULT_CHUNK = 64
"""Frames merged into the incremental SVD at a time."""

DEFAULT_COMPONENTS = 8
"""Components reported when none are asked for (fewer when the frames allow fewer)."""

DEFAULT_OVERSAMPLE = 10
"""Extra directions the incremental SVD keeps beyond the K asked for, against truncation error."""

COMPONENTS_FORMAT = "vidlatent.components"
COMPONENTS_VERSION = 1
COMPONENT_TENSORS = ("components", "mean", "std", "explained_variance", "explained_variance_ratio")


# --- motion --------------------------------------------------------------------------------

def motion_energy(latents: torch.Tensor) -> torch.Tensor:
    """Per-step motion energy: the RMS of each temporal difference, ||z[t+1]-z[t]|| / sqrt(C*h*w).

    Args:
        latents: (F, C, h, w) clip.

    Returns:
        (F-1,) float64 tensor; entry t is the motion from frame t to frame t+1 (empty for one frame).
    """
    frames = latents.double().flatten(1)  # (F, D)
    steps = frames[1:] - frames[:-1]  # (F-1, D)
    return steps.norm(dim=1) / math.sqrt(frames.shape[1])


def latent_scale(latents: torch.Tensor) -> float:
    """The clip's own latent scale: per-channel standard deviations (over frames and pixels), pooled.

    sqrt(mean over channels of var_c): channel means, which differ between channels of SVD's VAE,
    do not count, so it measures how much the values vary, not where they sit.
    """
    per_channel = latents.double().transpose(0, 1).flatten(1)  # (C, F*h*w)
    if per_channel.shape[1] < 2:
        return 0.0
    return float(per_channel.var(dim=1).mean().sqrt())


@dataclass(frozen=True)
class Motion:
    """How much a clip moves.

    Attributes:
        energy: per-step motion energy, (F-1,) (see ``motion_energy``).
        mean_energy: its mean (0.0 for a one-frame clip).
        scale: the clip's latent scale (see ``latent_scale``).
        relative: mean_energy / (sqrt(2) * scale): 0 for frozen frames, about 1 when each frame is
            unrelated to the one before (two independent draws differ by sqrt(2) times their std).
        static: relative < threshold (a one-frame clip is static).
        threshold: the threshold used.
    """

    energy: torch.Tensor
    mean_energy: float
    scale: float
    relative: float
    static: bool
    threshold: float


def measure_motion(latents: torch.Tensor, threshold: float = STATIC_THRESHOLD) -> Motion:
    """Motion energy of a (F, C, h, w) clip and its static flag.

    SVD's training data was curated by dropping clips with too little motion. Here a clip is
    static when its mean motion energy is below ``threshold`` times sqrt(2) times its own latent
    scale, so the flag does not depend on the VAE's scaling factor or the clip's contrast.
    """
    energy = motion_energy(latents)
    mean_energy = float(energy.mean()) if energy.numel() else 0.0
    scale = latent_scale(latents)
    relative = mean_energy / (math.sqrt(2) * scale) if scale > 0 else 0.0
    return Motion(energy=energy, mean_energy=mean_energy, scale=scale, relative=relative,
                  static=relative < threshold, threshold=threshold)


@dataclass(frozen=True)
class Seam:
    """The step across a join against the clip's own steps elsewhere (motion energy).

    Attributes:
        step: the largest motion energy among the join's steps.
        mean_step: the mean motion energy of the clip's other steps.
        largest_step: the largest of the other steps.
    """

    step: float
    mean_step: float
    largest_step: float

    @property
    def ratio(self) -> float:
        """step / mean_step: about 1 for a join that moves as the clip does."""
        return self.step / self.mean_step if self.mean_step > 0 else math.inf

    @property
    def exceeds_motion(self) -> bool:
        """The join moves more than any step of the clip's own motion: it shows as a jump."""
        return self.step > self.largest_step


def measure_seam(latents: torch.Tensor, join: Sequence[int], *, loop: bool = False) -> Seam:
    """How a join inside a (F, C, h, w) clip compares with the clip's own motion.

    Args:
        latents: the joined clip.
        join: the steps that make the join; step t goes from frame t to frame t + 1 (a cut
            before frame j is step j - 1). With ``loop``, step F - 1 goes from the last frame back
            to the first.
        loop: the clip plays in a loop, so the step from its last frame to its first counts
            (as a step of the join, when ``join`` names it, else as one of the others).
    """
    energy = motion_energy(torch.cat([latents, latents[:1]]) if loop else latents)  # (steps,)
    inside = torch.zeros(energy.shape[0], dtype=torch.bool)
    inside[list(join)] = True
    if not inside.any() or inside.all():
        raise ValueError(f"a seam needs some of the clip's {energy.shape[0]} steps in the join and some outside it")
    others = energy[~inside]
    return Seam(step=float(energy[inside].max()), mean_step=float(others.mean()), largest_step=float(others.max()))


# --- the seams of a clip made in segments ----------------------------------------------------


@dataclass(frozen=True)
class Join:
    """Where a clip's history says a new segment starts.

    Attributes:
        latent_frame: the segment's first latent frame (the seam is the step into it).
        pixel_frame: its first pixel frame.
        command: the step that made it (generate: a window of a long video; extend).
        prompt: the segment's own prompt, where it had one.
    """

    latent_frame: int
    pixel_frame: int
    command: str
    prompt: str | None = None


def history_joins(history: Sequence[dict], frames: int, frame_rule: FrameRule) -> list[Join]:
    """The joins a clip's history records, in order, for a clip of ``frames`` latent frames.

    A long generate records its windows' pixel frames (``segments[].frames_made``); extend records
    the latent frames each segment added (``segments[].frames``), the last ending at the clip's
    end, so the joins are counted back from there (clips written before ``frames_made`` too).
    Steps after the last extend that change the length (none today) would make them wrong.
    """
    joins: list[Join] = []
    end = frames
    for step in reversed(history):
        arguments = step.get("arguments", {})
        segments = arguments.get("segments") or []
        if step.get("command") == "extend":
            for segment in reversed(segments):
                end -= int(segment["frames"])
                joins.append(Join(end, frame_rule.pixel_frames(end), "extend", segment.get("prompt")))
        elif step.get("command") == "generate":
            for segment in segments[1:]:
                first = int(segment["frames_made"][0])
                joins.append(Join(frame_rule.latent_index(first), first, "generate", segment.get("prompt")))
            break  # the generation the clip starts from
    return sorted(joins, key=lambda join: join.latent_frame)


@dataclass(frozen=True)
class SeamMeasure:
    """One join measured: the step into the segment against the clip's typical step.

    Attributes:
        join: where it is.
        step: motion energy of the step from the frame before into the segment's first frame.
        typical_step: the median motion energy of the clip's steps that are not joins.
        ratio: step / typical_step: about 1 for a seam that moves as the clip does.
    """

    join: Join
    step: float
    typical_step: float
    pixel_step: float | None = None  # the same in decoded pixels (RMS of the uint8 difference), where measured
    pixel_typical_step: float | None = None

    @property
    def ratio(self) -> float:
        return self.step / self.typical_step if self.typical_step > 0 else math.inf

    @property
    def pixel_ratio(self) -> float | None:
        if self.pixel_step is None or self.pixel_typical_step is None:
            return None
        return self.pixel_step / self.pixel_typical_step if self.pixel_typical_step > 0 else math.inf


@dataclass(frozen=True)
class SegmentDrift:
    """A segment's per-channel drift against the first segment (``latent_ops.drift``, relative:
    the largest |mean difference| in the first segment's channel stds, and the largest std ratio - 1)."""

    first: int  # latent frames [first, end)
    end: int
    mean: float
    std_ratio: float


@dataclass(frozen=True)
class Seams:
    """The joins of a clip and how each shows, worst first, and each segment's drift."""

    seams: list[SeamMeasure]  # worst (largest ratio) first
    segments: list[SegmentDrift]  # in order; the first is the reference (0, 0)
    energy: torch.Tensor  # (F-1,) the clip's motion energy, step t from frame t to t + 1


def pixel_steps(frames: Iterable[np.ndarray]) -> torch.Tensor:
    """The RMS difference between each decoded (H, W, 3) uint8 frame and the next, streamed (one
    frame held): (N-1,) float64, step t from pixel frame t to t + 1."""
    steps, previous = [], None
    for frame in frames:
        current = torch.from_numpy(frame).double()
        if previous is not None:
            steps.append(float((current - previous).pow(2).mean().sqrt()))
        previous = current
    return torch.tensor(steps, dtype=torch.float64)


def _step_and_median(steps: torch.Tensor, joins: Sequence[int]) -> tuple[list[float], float]:
    # The steps into the joins (index j - 1 for a segment starting at frame j), and the median of the rest.
    inside = torch.zeros(steps.shape[0], dtype=torch.bool)
    inside[[join - 1 for join in joins]] = True
    others = steps[~inside]
    return [float(steps[join - 1]) for join in joins], float(others.median()) if others.numel() else math.nan


def measure_seams(latents: torch.Tensor, joins: Sequence[Join], pixels: torch.Tensor | None = None) -> Seams:
    """Measure every join of a (F, C, h, w) clip: the step into it against the median of the other
    steps (motion energy, ``motion_energy``), and each segment's per-channel mean/std drift from the
    first segment's (``latent_ops.drift``). ``pixels``: the decoded clip's ``pixel_steps``, to
    measure the joins in pixels too."""
    from vidlatent import latent_ops

    energy = motion_energy(latents)  # (F-1,)
    joins = [join for join in joins if 0 < join.latent_frame < latents.shape[0]]
    latent_steps, typical = _step_and_median(energy, [join.latent_frame for join in joins])
    if pixels is not None:
        pixel_values, pixel_typical = _step_and_median(pixels, [join.pixel_frame for join in joins])
    measured = [SeamMeasure(join, step, typical, *((pixel_values[index], pixel_typical) if pixels is not None else ()))
                for index, (join, step) in enumerate(zip(joins, latent_steps))]
    bounds = [0, *sorted({join.latent_frame for join in joins}), latents.shape[0]]
    reference = latent_ops.ChannelStats.of(latents[bounds[0] : bounds[1]])
    drifts = []
    for first, end in zip(bounds, bounds[1:]):
        drift = latent_ops.drift(latents[first:end], reference, relative=True)
        drifts.append(SegmentDrift(first, end, drift.mean, drift.std_ratio))
    return Seams(sorted(measured, key=lambda seam: -seam.ratio), drifts, energy)


# --- feature statistics (pass 1) -----------------------------------------------------------

class RunningMoments:
    """Per-feature mean and variance over batches of rows, merged exactly (Chan et al.), in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None  # (D,)
        self._m2: torch.Tensor | None = None  # (D,) sum of squared deviations

    def update(self, rows: torch.Tensor) -> None:
        """Add ``rows`` (N, D)."""
        rows = rows.double()
        n = rows.shape[0]
        if n == 0:
            return
        batch_mean = rows.mean(dim=0)
        batch_m2 = ((rows - batch_mean) ** 2).sum(dim=0)
        if self.mean is None or self._m2 is None:
            self.count, self.mean, self._m2 = n, batch_mean, batch_m2
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self._m2 = self._m2 + batch_m2 + delta**2 * (self.count * n / total)
        self.count = total

    def std(self) -> torch.Tensor:
        """(D,) sample standard deviation (ddof 1); 0 where a feature never changes."""
        if self._m2 is None or self.count < 2:
            raise UsageError(f"PCA needs at least 2 frames in all; the clips have {self.count}")
        return (self._m2 / (self.count - 1)).sqrt()


def safe_std(std: torch.Tensor) -> torch.Tensor:
    """``std`` with constant features' zeros replaced by 1, so standardising never divides by 0.

    A constant feature standardises to 0 either way (its value equals its mean), and carries
    no weight in any component.
    """
    floor = 1e-6 * float(std.max()) if std.numel() and float(std.max()) > 0 else 0.0
    return torch.where(std > floor, std, torch.ones_like(std))


# --- incremental PCA (pass 2) --------------------------------------------------------------

@dataclass(frozen=True)
class PCA:
    """Principal components of standardised frame vectors.

    Attributes:
        components: (K, D) orthonormal rows, in standardised units; each row's largest entry
            (by magnitude) is positive, so the signs are reproducible.
        singular_values: (K,).
        explained_variance: (K,) variance of the frames' coordinates along each component.
        explained_variance_ratio: (K,) that variance over the standardised frames' total.
        mean, std: (D,) the standardisation: ``(x - mean) / std``.
        frames: how many frames were fit.
    """

    components: torch.Tensor
    singular_values: torch.Tensor
    explained_variance: torch.Tensor
    explained_variance_ratio: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    frames: int

    def transform(self, rows: torch.Tensor) -> torch.Tensor:
        """Coordinates (N, K) of frame vectors ``rows`` (N, D)."""
        standardised = (rows.double() - self.mean) / self.std  # (N, D)
        return standardised @ self.components.T


class IncrementalPCA:
    """Streaming PCA of standardised rows, with memory bounded by the kept rank and one chunk.

    Keeps a truncated SVD ``S, Vt`` of all rows seen so far (centred and standardised with the
    exact ``mean`` and ``std`` from a first pass). A new chunk B is merged by an SVD of the
    stacked ``[diag(S) Vt; B]``, whose Gram matrix is the old one plus B^T B; the result is cut
    back to ``rank`` rows. Only directions outside the kept rank are lost, which is why it keeps
    ``oversample`` more than it reports.

    Args:
        n_components: K, the components reported.
        mean, std: (D,) the standardisation (see ``RunningMoments``, ``safe_std``).
        oversample: extra directions kept while merging.
    """

    def __init__(self, n_components: int, mean: torch.Tensor, std: torch.Tensor, *, oversample: int = DEFAULT_OVERSAMPLE) -> None:
        if n_components < 1:
            raise UsageError(f"the number of components must be at least 1, not {n_components}")
        self.n_components = n_components
        self.mean = mean.double()
        self.std = std.double()
        self.rank = min(n_components + max(oversample, 0), mean.numel())
        self.frames = 0
        self.total_sum_squares = 0.0
        self._singular: torch.Tensor | None = None  # (r,)
        self._basis: torch.Tensor | None = None  # (r, D)

    def partial_fit(self, rows: torch.Tensor) -> None:
        """Merge frame vectors ``rows`` (N, D)."""
        if rows.shape[0] == 0:
            return
        standardised = (rows.double() - self.mean) / self.std  # (N, D)
        self.frames += rows.shape[0]
        self.total_sum_squares += float((standardised**2).sum())
        if self._basis is None or self._singular is None:
            stacked = standardised
        else:
            stacked = torch.cat([self._singular[:, None] * self._basis, standardised])  # (r + N, D)
        _, singular, basis = torch.linalg.svd(stacked, full_matrices=False)
        self._singular, self._basis = singular[: self.rank], basis[: self.rank]

    def result(self) -> PCA:
        """The K leading components of everything merged so far."""
        if self._basis is None or self._singular is None or self.frames < 2:
            raise UsageError(f"PCA needs at least 2 frames in all; {self.frames} were given")
        k = min(self.n_components, self._basis.shape[0])
        basis, singular = self._basis[:k].clone(), self._singular[:k].clone()
        # SVD leaves each sign free: fix it so that the largest entry of each component is positive.
        largest = basis.gather(1, basis.abs().argmax(dim=1, keepdim=True)).squeeze(1)  # (k,)
        basis *= torch.where(largest < 0, -1.0, 1.0).to(basis)[:, None]
        variance = singular**2 / (self.frames - 1)
        total = self.total_sum_squares / (self.frames - 1)
        ratio = variance / total if total > 0 else torch.zeros_like(variance)
        return PCA(components=basis, singular_values=singular, explained_variance=variance,
                   explained_variance_ratio=ratio, mean=self.mean, std=self.std, frames=self.frames)


def _chunks(batches: Iterable[torch.Tensor], chunk: int) -> Iterator[torch.Tensor]:
    """Regroup row batches (N_i, D) into chunks of ``chunk`` rows (the last may be shorter)."""
    pending: list[torch.Tensor] = []
    size = 0
    for batch in batches:
        pending.append(batch)
        size += batch.shape[0]
        while size >= chunk:
            rows = torch.cat(pending)
            yield rows[:chunk]
            pending, size = [rows[chunk:]], rows.shape[0] - chunk
    if size:
        yield torch.cat(pending)


def max_components(moments: RunningMoments) -> int:
    """The most components that ``moments``' frames can give: min(frames - 1, D)."""
    features = 0 if moments.mean is None else moments.mean.numel()
    return max(0, min(moments.count - 1, features))


def fit_components(batches: Iterable[torch.Tensor], moments: RunningMoments, n_components: int, *,
                   chunk: int = DEFAULT_CHUNK, oversample: int = DEFAULT_OVERSAMPLE) -> PCA:
    """Pass 2: the incremental SVD of the standardised frames, given pass 1's ``moments``.

    Args:
        batches: (N_i, D) frame vectors, the same ones that ``moments`` saw.
        moments: their per-feature statistics.
        n_components: K, at most ``max_components(moments)``.
        chunk: frames merged at a time.
        oversample: extra directions kept while merging (see ``IncrementalPCA``).
    """
    limit = max_components(moments)
    if limit < 1:
        raise UsageError(f"PCA needs at least 2 frames in all; the clips have {moments.count}")
    if n_components > limit:
        raise UsageError(f"--pca {n_components} asks for more components than {moments.count} frames give "
                         f"(at most frames - 1 = {limit}); ask for fewer")
    assert moments.mean is not None
    pca = IncrementalPCA(n_components, moments.mean, safe_std(moments.std()), oversample=oversample)
    for rows in _chunks(batches, chunk):
        pca.partial_fit(rows)
    return pca.result()


def fit_pca(batches: Callable[[], Iterable[torch.Tensor]], n_components: int, *, chunk: int = DEFAULT_CHUNK,
            oversample: int = DEFAULT_OVERSAMPLE) -> PCA:
    """PCA of frame vectors in two passes, with memory bounded by the rank and ``chunk``.

    Args:
        batches: called once per pass, yields (N_i, D) frame vectors (e.g. one clip's frames,
            ``clip.flatten(1)``) in the same order each time.
        n_components: K, at most min(frames - 1, D).
        chunk: frames merged at a time.
        oversample: extra directions kept while merging (see ``IncrementalPCA``).
    """
    moments = RunningMoments()
    for rows in batches():
        moments.update(rows)
    return fit_components(batches(), moments, n_components, chunk=chunk, oversample=oversample)


# --- components in latent form, their file, and shifts ---------------------------------------

@dataclass(frozen=True)
class Components:
    """Principal directions in the clips' own latent shape: what ``--save-components`` writes.

    Attributes:
        components: (K, C, h, w) orthonormal directions in standardised units.
        mean, std: (C, h, w) the per-feature standardisation: coordinates are
            ``((z - mean) / std) . components[k]`` over a frame z.
        explained_variance: (K,) the variance of the fitted frames' coordinates.
        explained_variance_ratio: (K,) that variance over the total.
        latent_space: the LatentSpace string of the clips they were fit on.
        frames: how many frames were fit.
        clips: names of the clips they were fit on.
    """

    components: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    explained_variance: torch.Tensor
    explained_variance_ratio: torch.Tensor
    latent_space: str
    frames: int = 0
    clips: tuple[str, ...] = ()

    @classmethod
    def from_pca(cls, pca: PCA, frame_shape: Sequence[int], latent_space: str, clips: Sequence[str] = ()) -> Components:
        shape = tuple(int(size) for size in frame_shape)
        return cls(
            components=pca.components.reshape(-1, *shape).float(),
            mean=pca.mean.reshape(shape).float(),
            std=pca.std.reshape(shape).float(),
            explained_variance=pca.explained_variance.float(),
            explained_variance_ratio=pca.explained_variance_ratio.float(),
            latent_space=latent_space,
            frames=pca.frames,
            clips=tuple(clips),
        )

    @property
    def count(self) -> int:
        return int(self.components.shape[0])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.components.shape[1:])

    def check_clip(self, latents: torch.Tensor, latent_space: str | None = None, *, name: str = "the clip") -> None:
        """Raise IncompatibleLatentsError unless a (F, C, h, w) clip has these components' frame
        shape and (when given) latent space."""
        if tuple(latents.shape[1:]) != self.frame_shape:
            raise IncompatibleLatentsError(
                f"{name} has frames of shape {_shape(latents.shape[1:])} but the components were fit on "
                f"{_shape(self.frame_shape)}; fit them on clips of this size (vidlatent analyze --save-components)"
            )
        if latent_space is not None and not LatentSpace.parse(latent_space).matches(LatentSpace.parse(self.latent_space)):
            raise IncompatibleLatentsError(
                f"{name} belongs to latent space {latent_space} but the components to {self.latent_space}; "
                "fit components on clips of the same VAE"
            )

    def project(self, latents: torch.Tensor) -> torch.Tensor:
        """Coordinates (F, K) of a (F, C, h, w) clip's frames on the components."""
        self.check_clip(latents)
        standardised = ((latents.double() - self.mean.double()) / self.std.double()).flatten(1)  # (F, D)
        return standardised @ self.components.double().flatten(1).T


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(size)) for size in shape)


def pca_shift(latents: torch.Tensor, components: Components, index: int, amount: float) -> torch.Tensor:
    """Move every frame of a clip along one principal direction.

    Adds ``amount * components[index] * std`` (the direction taken back from standardised to
    latent units) to each frame, so each frame's coordinate on component ``index`` grows by
    exactly ``amount`` and its other coordinates stay as they were. sqrt(explained_variance[index])
    is one standard deviation of the fitted frames along it: a natural unit for ``amount``.

    Args:
        latents: (F, C, h, w) clip, in the latent space the components were fit in.
        components: see ``load_components``.
        index: which component, from 0 (PC1 is 0).
        amount: how far, in standardised coordinate units.

    Returns:
        The shifted clip, in the input's dtype.
    """
    if not 0 <= index < components.count:
        raise UsageError(f"component index {index} is out of range: the file has {components.count} (0 to {components.count - 1})")
    if not math.isfinite(amount):
        raise UsageError(f"the shift amount must be a finite number, not {amount}")
    components.check_clip(latents)
    direction = (components.components[index].double() * components.std.double())  # (C, h, w)
    return (latents.double() + amount * direction[None]).to(latents.dtype)


def components_to_bytes(components: Components) -> bytes:
    """Serialise ``components`` as a components file (see docs/analyze.md)."""
    tensors = {name: getattr(components, name).float() for name in COMPONENT_TENSORS}
    metadata = {
        "format": COMPONENTS_FORMAT,
        "format_version": str(COMPONENTS_VERSION),
        "latent_space": components.latent_space,
        "frames": str(int(components.frames)),
        "clips": json.dumps(list(components.clips)),
        "vidlatent_version": __version__,
    }
    return safetensors_bytes(tensors, metadata)


def save_components(components: Components, path: str | os.PathLike[str]) -> None:
    """Write a components file atomically."""
    write_bytes(components_to_bytes(components), path)


def load_components(path: str | os.PathLike[str]) -> Components:
    """Read and validate a components file; every fault raises LatentFileError naming ``path``."""
    source = str(path)
    expected = "a components file written by vidlatent analyze --save-components"
    tensors, metadata = parse_safetensors(read_bytes(path, expected=expected), source=source, expected=expected)
    if metadata.get("format") != COMPONENTS_FORMAT:
        raise LatentFileError(f"{source}: not a components file (format is {metadata.get('format')!r}, expected "
                              f"{COMPONENTS_FORMAT!r}); write one with vidlatent analyze --save-components")
    if metadata.get("format_version") != str(COMPONENTS_VERSION):
        raise LatentFileError(f"{source}: components format version {metadata.get('format_version')!r} is not supported "
                              f"by vidlatent {__version__} (it reads version {COMPONENTS_VERSION}); upgrade vidlatent")
    missing = [name for name in COMPONENT_TENSORS if name not in tensors]
    if missing or "latent_space" not in metadata:
        raise LatentFileError(f"{source}: lacks {', '.join(missing or ['the latent_space metadata'])}; the file is damaged")
    latent_space = metadata["latent_space"]
    LatentSpace.parse(latent_space)
    directions, mean, std = tensors["components"], tensors["mean"], tensors["std"]
    variance, ratio = tensors["explained_variance"], tensors["explained_variance_ratio"]
    if directions.ndim != 4 or directions.shape[0] < 1:
        raise LatentFileError(f"{source}: components have shape {tuple(directions.shape)}; expected (K, C, h, w) with K >= 1")
    k, frame_shape = directions.shape[0], tuple(directions.shape[1:])
    for name, tensor, expected in (("mean", mean, frame_shape), ("std", std, frame_shape),
                                   ("explained_variance", variance, (k,)), ("explained_variance_ratio", ratio, (k,))):
        if tuple(tensor.shape) != expected:
            raise LatentFileError(f"{source}: {name} has shape {tuple(tensor.shape)}; expected {expected} to match components")
    for name in COMPONENT_TENSORS:
        tensor = tensors[name]
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise LatentFileError(f"{source}: {name} must hold finite floating-point numbers")
    if not bool((std > 0).all()):
        raise LatentFileError(f"{source}: std must be positive everywhere")
    try:
        frames = int(metadata.get("frames") or 0)
        clips = json.loads(metadata.get("clips") or "[]")
    except ValueError as error:
        raise LatentFileError(f"{source}: malformed metadata ({error})") from error
    return Components(components=directions, mean=mean, std=std, explained_variance=variance,
                      explained_variance_ratio=ratio, latent_space=latent_space, frames=frames,
                      clips=tuple(str(name) for name in clips) if isinstance(clips, list) else ())


# --- the whole analysis ----------------------------------------------------------------------

@dataclass(frozen=True)
class ClipAnalysis:
    """One clip's results: its motion and its frames' coordinates (F, K) on the components."""

    frames: int
    motion: Motion
    coordinates: torch.Tensor


@dataclass(frozen=True)
class Analysis:
    """The results of ``analyze``, clip by clip, and the components they share."""

    clips: tuple[ClipAnalysis, ...]
    pca: PCA
    frame_shape: tuple[int, ...]


def analyze(clips: Sequence[Callable[[], torch.Tensor]], n_components: int | None = None, *,
            static_threshold: float = STATIC_THRESHOLD, chunk: int = DEFAULT_CHUNK,
            default_components: int = DEFAULT_COMPONENTS) -> Analysis:
    """Motion and PCA of several clips, with one clip in memory at a time.

    Pass 1 measures each clip's motion and accumulates per-feature statistics, pass 2 fits the
    components, pass 3 projects each clip's frames on them.

    Args:
        clips: one loader per clip, returning its (F, C, h, w) latents; called once per pass.
            All clips must share (C, h, w).
        n_components: K; None means ``default_components``, lowered to what the frames allow.
        static_threshold: see ``measure_motion``.
        chunk: frames per incremental SVD merge.
    """
    if not clips:
        raise UsageError("no clips to analyze")
    frame_shape: tuple[int, ...] | None = None

    def frames() -> Iterator[torch.Tensor]:
        nonlocal frame_shape
        for load in clips:
            latents = load()  # (F, C, h, w)
            if frame_shape is None:
                frame_shape = tuple(latents.shape[1:])
            elif tuple(latents.shape[1:]) != frame_shape:
                raise IncompatibleLatentsError(f"clips have frames of shapes {_shape(frame_shape)} and "
                                               f"{_shape(latents.shape[1:])}; analyze clips of one size together")
            yield latents

    moments = RunningMoments()
    motions: list[Motion] = []
    for latents in frames():
        motions.append(measure_motion(latents, static_threshold))
        moments.update(latents.flatten(1))
    if n_components is None:
        n_components = max(1, min(default_components, max_components(moments)))
    pca = fit_components((latents.flatten(1) for latents in frames()), moments, n_components, chunk=chunk)
    results = tuple(ClipAnalysis(frames=int(latents.shape[0]), motion=motion, coordinates=pca.transform(latents.flatten(1)))
                    for latents, motion in zip(frames(), motions))
    assert frame_shape is not None
    return Analysis(clips=results, pca=pca, frame_shape=frame_shape)
