"""Pure latent math: tensors in, tensors out, no model imports.

Clips are (F, C, h, w) tensors throughout.
"""

from __future__ import annotations

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

    The fix for colour and contrast creeping along chained segments: each new segment is
    brought back to the statistics of the first.
    """
    own = ChannelStats.of(clip)
    scale = target.std / own.std.clamp_min(eps)  # (C,)
    matched = (clip.float() - own.mean[None, :, None, None]) * scale[None, :, None, None] + target.mean[None, :, None, None]
    return matched.to(clip.dtype)


@dataclass(frozen=True)
class Drift:
    """How far a segment's per-channel statistics moved from the reference's."""

    mean: float  # largest |mean - reference mean| over channels
    std_ratio: float  # largest |log(std / reference std)| over channels, as a ratio: exp(...) - 1

    def within(self, bound: float) -> bool:
        return self.mean <= bound and self.std_ratio <= bound


def drift(segment: torch.Tensor, reference: ChannelStats) -> Drift:
    """The drift of ``segment`` (F, C, h, w) against ``reference``."""
    own = ChannelStats.of(segment)
    mean = float((own.mean - reference.mean).abs().max())
    log_ratio = float((own.std.clamp_min(1e-12) / reference.std.clamp_min(1e-12)).log().abs().max())
    return Drift(mean=mean, std_ratio=float(torch.tensor(log_ratio).exp() - 1))
