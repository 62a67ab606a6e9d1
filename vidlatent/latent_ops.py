"""Pure latent math: tensors in, tensors out, no model imports.

Clips are (F, C, h, w) tensors throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean and standard deviation of a clip, over frames and pixels."""

    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)

    @classmethod
    def of(cls, clip: torch.Tensor) -> ChannelStats:
        values = clip.float().transpose(0, 1).flatten(1)  # (C, F*h*w)
        return cls(mean=values.mean(dim=1), std=values.std(dim=1))


def match_channel_stats(clip: torch.Tensor, target: ChannelStats, eps: float = 1e-6) -> torch.Tensor:
    """Shift and scale each channel of ``clip`` so its mean and std equal ``target``'s.

    Exact matching; it also erases the change real footage shows between its parts, so drift
    correction (``limit_drift``) matches only what lies beyond a band of natural change.
    """
    own = ChannelStats.of(clip)
    scale = target.std / own.std.clamp_min(eps)  # (C,)
    matched = (clip.float() - own.mean[None, :, None, None]) * scale[None, :, None, None] + target.mean[None, :, None, None]
    return matched.to(clip.dtype)


@dataclass(frozen=True)
class Drift:
    """How far a segment's per-channel statistics moved from the reference's."""

    mean: float  # largest |mean - reference mean| over channels (relative: over the reference channel's std)
    std_ratio: float  # largest |log(std / reference std)| over channels, as a ratio: exp(...) - 1

    def within(self, bound: float) -> bool:
        return self.mean <= bound and self.std_ratio <= bound


def drift(segment: torch.Tensor, reference: ChannelStats, *, relative: bool = False) -> Drift:
    """The drift of ``segment`` (F, C, h, w) against ``reference``.

    Args:
        relative: give the mean difference in units of the reference channel's std (as
            ``DriftBand`` measures it), not in latent units.
    """
    own = ChannelStats.of(segment)
    offset = (own.mean - reference.mean).abs()
    mean = float((offset / reference.std.clamp_min(1e-12) if relative else offset).max())
    log_ratio = float((own.std.clamp_min(1e-12) / reference.std.clamp_min(1e-12)).log().abs().max())
    return Drift(mean=mean, std_ratio=float(torch.tensor(log_ratio).exp() - 1))


@dataclass(frozen=True)
class DriftBand:
    """How far a segment's per-channel statistics may sit from the reference's before drift
    correction touches them (``limit_drift``).

    Args:
        mean: the largest |segment mean - reference mean| of a channel, in units of the
            reference channel's std.
        std: the largest change of a channel's std, as a ratio - 1, either way: the std stays
            within [reference / (1 + std), reference * (1 + std)].

    ``DriftBand(0, 0)`` is exact matching (``match_channel_stats``).
    """

    mean: float
    std: float

    def holds(self, measured: Drift, tolerance: float = 1e-3) -> bool:
        """True when ``measured`` (a ``drift(..., relative=True)``) lies within the band, up to ``tolerance``."""
        return measured.mean <= self.mean + tolerance and measured.std_ratio <= self.std + tolerance


# Real footage changes this much on its own: on real Wan 2.1 latents (16 latent frames of one
# clip, ../shared/data/wan21_latents.safetensors) the second half's per-channel means sit up to
# 0.146 of a channel's std from the first half's and its stds differ by up to 10.5 %; 4-frame
# stretches against the first 4 frames after the causal one, up to 0.135 and 11.6 %
# (docs/extend.md, BENCHMARKS.md). The band is those maxima rounded up: drift within it cannot be
# told from the footage's own change, so correcting it would erase real change.
NATURAL_DRIFT = DriftBand(mean=0.15, std=0.12)


def limit_drift(clip: torch.Tensor, reference: ChannelStats, band: DriftBand = NATURAL_DRIFT, eps: float = 1e-6) -> torch.Tensor:
    """Correct the part of ``clip``'s per-channel drift from ``reference`` that exceeds ``band``.

    Each channel whose mean or std lies outside the band around the reference's is shifted and
    scaled to the nearest point of the band's edge (its mean to reference mean +- band.mean x
    reference std, its std to reference std x (1 + band.std)^+-1); every other channel is
    returned as it is, bit for bit. So drift is bounded by the band, and change within it, as
    real footage shows, is kept. ``band = DriftBand(0, 0)`` matches the reference exactly.

    Args:
        clip: (F, C, h, w) a new segment.
        reference: the statistics it must not drift away from (extend: the clip it continues).
        band: how far each channel may sit from them.
    """
    own = ChannelStats.of(clip)
    reference_std = reference.std.clamp_min(eps)  # (C,)
    allowed = band.mean * reference_std
    offset = own.mean - reference.mean
    target_mean = torch.where(offset.abs() > allowed, reference.mean + torch.minimum(torch.maximum(offset, -allowed), allowed), own.mean)
    log_ratio = (own.std.clamp_min(eps) / reference_std).log()
    bound = math.log1p(band.std)
    target_std = torch.where(log_ratio.abs() > bound, reference_std * log_ratio.clamp(-bound, bound).exp(), own.std)
    outside = (target_mean != own.mean) | (target_std != own.std)  # (C,)
    corrected = match_channel_stats(clip, ChannelStats(mean=target_mean, std=target_std), eps)
    return torch.where(outside[None, :, None, None], corrected, clip)


# --- blending two clips ------------------------------------------------------------------
#
# Every blend takes two clips a, b of the same shape (F, C, h, w) and a weight t: a float for
# all frames, or an (F,) tensor, one weight per frame. t = 0 returns a and t = 1 returns b,
# exactly (bit for bit), whatever the arithmetic in between. The work is done in float64 and
# the result has a's dtype.

Weight = float | torch.Tensor

# Below this sine of the angle between two frames, SLERP treats them as parallel (or opposite).
PARALLEL_SINE = 1e-6


def _frame_weights(t: Weight, frames: int) -> torch.Tensor:
    """``t`` as a float64 (F, 1) column, one weight per frame."""
    weights = torch.as_tensor(t, dtype=torch.float64).flatten()
    if weights.numel() == 1:
        return weights.expand(frames).reshape(frames, 1)
    if weights.numel() != frames:
        raise ValueError(f"t has {weights.numel()} weights for {frames} frames; give one, or one per frame")
    return weights.reshape(frames, 1)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"cannot blend clips of shapes {tuple(a.shape)} and {tuple(b.shape)}; they must be equal")
    if a.ndim != 4:
        raise ValueError(f"clips are (F, C, h, w) tensors; got shape {tuple(a.shape)}")


def _exact_endpoints(blended: torch.Tensor, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``blended`` (F, D) as a's dtype, with frames of weight 0 set to a and of weight 1 to b."""
    shape = a.shape
    out = blended.to(a.dtype).reshape(shape)
    w = weights.reshape(-1, 1, 1, 1)  # (F, 1, 1, 1)
    return torch.where(w == 0, a, torch.where(w == 1, b.to(a.dtype), out))


def lerp(a: torch.Tensor, b: torch.Tensor, t: Weight) -> torch.Tensor:
    """Linear interpolation ``(1 - t) a + t b``, frame by frame.

    Args:
        a, b: (F, C, h, w) clips of the same shape.
        t: a weight for all frames, or an (F,) tensor of per-frame weights.
    """
    _check_pair(a, b)
    weights = _frame_weights(t, a.shape[0])  # (F, 1)
    a64, b64 = a.double().flatten(1), b.double().flatten(1)  # (F, D)
    return _exact_endpoints(a64 + weights * (b64 - a64), a, b, weights)


def _orthogonal_unit(unit: torch.Tensor) -> torch.Tensor:
    """A unit vector orthogonal to each row of ``unit`` (F, D), the same for the same input.

    The basis vector along the row's smallest component, with its projection removed: its norm
    is at least sqrt(1 - 1/D), so the construction never degenerates for D >= 2.
    """
    index = unit.abs().argmin(dim=1, keepdim=True)  # (F, 1)
    basis = torch.zeros_like(unit).scatter_(1, index, 1.0)
    orthogonal = basis - unit.gather(1, index) * unit
    return orthogonal / orthogonal.norm(dim=1, keepdim=True)


def slerp(a: torch.Tensor, b: torch.Tensor, t: Weight) -> torch.Tensor:
    """Spherical interpolation, frame by frame: each frame (C*h*w values) is one vector.

    The direction turns along the great circle from a's direction to b's at a constant rate
    and the norm moves linearly from |a| to |b|; so two frames of equal norm keep that norm
    all the way (plain LERP would shrink it towards the middle, which diffusion latents feel
    as a loss of contrast). For inputs of equal norm this is the textbook SLERP.

    Degenerate frames fall back cleanly, without NaNs: nearly parallel frames (sine of the
    angle below PARALLEL_SINE) and zero frames are LERPed, where SLERP and LERP agree to
    within that tolerance; exactly opposite frames, where every great circle is as short,
    turn through a fixed orthogonal direction (the same on every run), keeping the norm.

    Args:
        a, b: (F, C, h, w) clips of the same shape.
        t: a weight for all frames, or an (F,) tensor of per-frame weights.
    """
    _check_pair(a, b)
    frames = a.shape[0]
    weights = _frame_weights(t, frames)  # (F, 1)
    a64, b64 = a.double().flatten(1), b.double().flatten(1)  # (F, D)
    norm_a, norm_b = a64.norm(dim=1, keepdim=True), b64.norm(dim=1, keepdim=True)  # (F, 1)
    tiny = torch.finfo(torch.float64).tiny
    unit_a, unit_b = a64 / norm_a.clamp_min(tiny), b64 / norm_b.clamp_min(tiny)
    cosine = (unit_a * unit_b).sum(dim=1, keepdim=True)  # (F, 1)
    across = unit_b - cosine * unit_a  # b's direction less its part along a: (F, D)
    sine = across.norm(dim=1, keepdim=True)
    aligned = sine < PARALLEL_SINE
    opposite = aligned & (cosine < 0) & (a64.shape[1] > 1)
    angle = torch.where(opposite, torch.full_like(sine, math.pi), torch.atan2(sine, cosine))
    across_unit = torch.where(opposite, _orthogonal_unit(unit_a), across / sine.clamp_min(tiny))
    direction = torch.cos(angle * weights) * unit_a + torch.sin(angle * weights) * across_unit
    spherical = ((1 - weights) * norm_a + weights * norm_b) * direction
    degenerate = (aligned & ~opposite) | (norm_a == 0) | (norm_b == 0)
    linear = a64 + weights * (b64 - a64)
    return _exact_endpoints(torch.where(degenerate, linear, spherical), a, b, weights)


def hybrid(a: torch.Tensor, b: torch.Tensor, t: Weight) -> torch.Tensor:
    """SLERP of the coarse part plus LERP of the detail, frame by frame.

    The coarse part of a frame is its per-channel spatial mean (C values: the overall colour
    and brightness of the frame); it is SLERPed, so it keeps its magnitude through the blend.
    The detail (the frame minus its coarse part) is LERPed, a plain crossfade of texture.

    Args:
        a, b: (F, C, h, w) clips of the same shape.
        t: a weight for all frames, or an (F,) tensor of per-frame weights.
    """
    _check_pair(a, b)
    weights = _frame_weights(t, a.shape[0])
    a64, b64 = a.double(), b.double()
    coarse_a, coarse_b = a64.mean(dim=(2, 3), keepdim=True), b64.mean(dim=(2, 3), keepdim=True)  # (F, C, 1, 1)
    coarse = slerp(coarse_a, coarse_b, weights.flatten())  # (F, C, 1, 1)
    detail = lerp(a64 - coarse_a, b64 - coarse_b, weights.flatten())  # (F, C, h, w)
    return _exact_endpoints((coarse + detail).flatten(1), a, b, weights)


METHODS = {"lerp": lerp, "slerp": slerp, "hybrid": hybrid}


def blend(a: torch.Tensor, b: torch.Tensor, t: Weight, method: str = "slerp") -> torch.Tensor:
    """``a`` blended towards ``b`` by ``t`` with ``method`` (lerp, slerp or hybrid), frame by frame."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return METHODS[method](a, b, t)


def frames_between(first: torch.Tensor, last: torch.Tensor, count: int, method: str = "slerp") -> torch.Tensor:
    """``count`` frames evenly spaced strictly between two frames.

    Args:
        first, last: (C, h, w) frames.
        count: how many frames to make; frame i has weight (i + 1) / (count + 1).

    Returns:
        (count, C, h, w) frames, neither endpoint included.
    """
    weights = torch.arange(1, count + 1, dtype=torch.float64) / (count + 1)
    return blend(first.expand(count, *first.shape), last.expand(count, *last.shape), weights, method)


# --- time: resampling, smoothing, order ------------------------------------------------------


def upsampled_length(frames: int, factor: int, *, loop: bool = False) -> int:
    """Frames after ``upsample``: factor - 1 new frames in each gap between neighbours."""
    return frames * factor if loop else (frames - 1) * factor + 1


def upsample(clip: torch.Tensor, factor: int, method: str = "slerp", *, loop: bool = False) -> torch.Tensor:
    """Insert ``factor - 1`` frames between neighbouring frames.

    Original frame i lands at position i * factor, unchanged (bit for bit); the new frames
    between i and i + 1 have weights 1/factor, ..., (factor-1)/factor.

    Args:
        clip: (F, C, h, w).
        factor: 1 or more; 1 returns a copy.
        method: lerp, slerp or hybrid.
        loop: also fill the gap from the last frame back to the first, so the clip loops.

    Returns:
        (upsampled_length(F, factor, loop=loop), C, h, w).
    """
    if factor < 1:
        raise ValueError(f"factor {factor}: must be at least 1")
    frames = clip.shape[0]
    gaps = frames if loop else frames - 1
    result = clip.new_empty((upsampled_length(frames, factor, loop=loop), *clip.shape[1:]))
    result[::factor] = clip
    if factor == 1 or gaps == 0:
        return result
    inserted = factor - 1
    starts = torch.arange(gaps).repeat_interleave(inserted)  # (gaps * inserted,)
    ends = (starts + 1) % frames
    weights = (torch.arange(1, factor, dtype=torch.float64) / factor).repeat(gaps)
    new = blend(clip[starts], clip[ends], weights, method)  # (gaps * inserted, C, h, w)
    positions = (starts * factor + torch.arange(1, factor).repeat(gaps))
    result[positions] = new
    return result


def retime(clip: torch.Tensor, frames: int, method: str = "slerp") -> torch.Tensor:
    """Resample ``clip`` to ``frames`` frames spread evenly over the same span.

    Output frame j sits at position j (F - 1) / (frames - 1) of the input and blends its two
    neighbours; positions that fall on an input frame return it exactly, so the first and
    last frames are kept.
    """
    if frames < 1:
        raise ValueError(f"frames {frames}: must be at least 1")
    count = clip.shape[0]
    if frames == 1 or count == 1:
        return clip[:1].expand(frames, *clip.shape[1:]).clone()
    positions = torch.arange(frames, dtype=torch.float64) * (count - 1) / (frames - 1)
    lower = positions.floor().long().clamp_max(count - 1)
    upper = (lower + 1).clamp_max(count - 1)
    return blend(clip[lower], clip[upper], positions - lower, method)


def resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize every frame to ``size`` = (h, w) latent pixels (bilinear, antialiased)."""
    if tuple(clip.shape[2:]) == tuple(size):
        return clip.clone()
    resized = torch.nn.functional.interpolate(clip.double(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.to(clip.dtype)


def smooth(clip: torch.Tensor, sigma: float) -> torch.Tensor:
    """Temporal Gaussian smoothing: each frame becomes a weighted mean of its neighbours.

    The kernel has standard deviation ``sigma`` frames and reaches 3 sigma each way; at the
    clip's ends it is cut and renormalised (edges average over the frames that exist), so a
    clip that is constant over time comes back unchanged, bit for bit (the sums are float64).

    Args:
        clip: (F, C, h, w).
        sigma: in frames; 0 returns a copy.
    """
    if sigma < 0:
        raise ValueError(f"sigma {sigma}: must be 0 or more")
    frames = clip.shape[0]
    radius = min(math.ceil(3 * sigma), frames - 1)
    if sigma == 0 or radius == 0:
        return clip.clone()
    values = clip.double()
    total = torch.zeros_like(values)  # (F, C, h, w)
    weight_sum = torch.zeros(frames, dtype=torch.float64)  # (F,)
    for offset in range(-radius, radius + 1):
        weight = math.exp(-(offset**2) / (2 * sigma**2))
        first, last = max(0, -offset), min(frames, frames - offset)  # frames i with i + offset inside
        total[first:last] += weight * values[first + offset : last + offset]
        weight_sum[first:last] += weight
    return (total / weight_sum[:, None, None, None]).to(clip.dtype)


def reverse(clip: torch.Tensor) -> torch.Tensor:
    """The clip played backwards."""
    return clip.flip(0)


def trim(clip: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Frames ``start`` (included) to ``end`` (excluded); 0 <= start < end <= F."""
    frames = clip.shape[0]
    if not 0 <= start < end <= frames:
        raise ValueError(f"trim {start}:{end}: needs 0 <= start < end <= {frames}")
    return clip[start:end].clone()


def crossfade_loop(clip: torch.Tensor, frames: int, method: str = "lerp") -> torch.Tensor:
    """Make the clip loop by crossfading its last ``frames`` frames into its first ones.

    The tail is removed and blended into the head: head frame i becomes
    blend(tail[i], head[i], (i + 1) / (frames + 1)), so playback runs from the last kept frame
    into (nearly) the first tail frame, its natural successor, and fades back into the head.

    Args:
        clip: (F, C, h, w).
        frames: tail length, 1 <= frames <= F // 2.

    Returns:
        (F - frames, C, h, w); frames from ``frames`` to F - frames - 1 are unchanged.
    """
    count = clip.shape[0]
    if not 1 <= frames <= count // 2:
        raise ValueError(f"crossfade of {frames} frames: needs 1 <= frames <= {count // 2} for a clip of {count}")
    head, tail = clip[:frames], clip[count - frames :]
    weights = torch.arange(1, frames + 1, dtype=torch.float64) / (frames + 1)
    result = clip[: count - frames].clone()
    result[:frames] = blend(tail, head, weights, method)
    return result


# --- arithmetic --------------------------------------------------------------------------------


def mean_frame(clips: list[torch.Tensor]) -> torch.Tensor:
    """The mean of each clip over its frames, averaged over the clips (each counts once).

    Args:
        clips: (F_i, C, h, w) clips of the same C, h, w; frame counts may differ.

    Returns:
        (1, C, h, w) float64.
    """
    if not clips:
        raise ValueError("mean_frame needs at least one clip")
    return torch.stack([clip.double().mean(dim=0) for clip in clips]).mean(dim=0, keepdim=True)


def direction(positives: list[torch.Tensor], negatives: list[torch.Tensor]) -> torch.Tensor:
    """An edit direction: the mean latent frame of ``positives`` minus that of ``negatives``.

    Returns:
        (1, C, h, w) float32, to be added (scaled) to every frame of a clip.
    """
    return (mean_frame(positives) - mean_frame(negatives)).float()


def add_direction(clip: torch.Tensor, offset: torch.Tensor, scale: float) -> torch.Tensor:
    """``clip + scale * offset``; ``offset`` is (1, C, h, w) for all frames or (F, C, h, w) per frame."""
    if offset.shape[1:] != clip.shape[1:] or offset.shape[0] not in (1, clip.shape[0]):
        raise ValueError(f"direction of shape {tuple(offset.shape)} does not fit a clip of shape {tuple(clip.shape)}")
    return (clip.double() + scale * offset.double()).to(clip.dtype)


def motion_residual(clip: torch.Tensor) -> torch.Tensor:
    """The clip's motion, apart from its appearance: each frame minus the first, (F, C, h, w)."""
    return clip - clip[:1]


def apply_motion(appearance: torch.Tensor, motion: torch.Tensor, *, match_stats: bool = False) -> torch.Tensor:
    """Rebuild a clip on a new appearance: out[t] = appearance + (motion[t] - motion[0]).

    Args:
        appearance: (C, h, w) the new first frame.
        motion: (F, C, h, w) the clip whose motion to carry over.
        match_stats: scale the motion per channel by appearance std / motion's first-frame std,
            so a displacement means as much on the new appearance as it did on the old one.

    The first frame of the result is ``appearance`` exactly; a static motion clip gives a
    static result; ``appearance == motion[0]`` (without ``match_stats``) gives ``motion`` back.
    The sum is taken in float64, where the difference of two float32 numbers is exact, so
    these identities hold bit for bit.
    """
    residual = motion_residual(motion.double())  # (F, C, h, w)
    if match_stats:
        source = ChannelStats.of(motion[:1])
        target = ChannelStats.of(appearance[None])
        residual = residual * (target.std / source.std.clamp_min(1e-6)).double()[None, :, None, None]
    return (appearance.double()[None] + residual).to(motion.dtype)
