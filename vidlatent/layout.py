"""The latent vocabulary: what a clip's numbers are, as data (no torch at import).

``LatentSpace`` names the VAE and scaling the numbers belong to; ``FrameRule`` maps latent to
pixel frames; ``Normalization`` relates the stored values to the raw VAE latents; ``LatentLayout``
puts them together for one family. This is the bottom of the house: the families declare their
layouts with it, and the latent file (``vidlatent.latentfile``) writes and checks them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent.errors import LatentFileError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LatentSpace:
    """What VAE and scaling a clip's numbers belong to.

    ``fingerprint`` is a few numbers computed from the VAE's weights (see
    vidlatent.models.latent_space_of), compared with a tolerance so that the fp16, bf16 and
    fp32 copies of one VAE agree while two different VAEs of the same shape do not. An empty
    fingerprint means "not known" (a ComfyUI latent): then only class, channels and scaling
    factor are compared.
    """

    vae: str
    channels: int
    scaling_factor: float
    fingerprint: tuple[float, ...]

    FINGERPRINT_TOLERANCE = 0.05
    _PATTERN = re.compile(r"^(?P<vae>\w+)/c(?P<channels>\d+)/s(?P<scale>[0-9.eE+-]+)/fp:(?P<fp>[0-9.eE+,-]*)$")

    def __str__(self) -> str:
        numbers = ",".join(f"{value:+.4f}" for value in self.fingerprint)
        return f"{self.vae}/c{self.channels}/s{self.scaling_factor:g}/fp:{numbers}"

    @classmethod
    def parse(cls, text: str) -> LatentSpace:
        match = cls._PATTERN.match(text)
        if not match:
            raise LatentFileError(f"latent_space {text!r} is not of the form VAE/cN/sSCALE/fp:A,B,C,D")
        return cls(
            vae=match["vae"],
            channels=int(match["channels"]),
            scaling_factor=float(match["scale"]),
            fingerprint=tuple(float(value) for value in match["fp"].split(",") if value),
        )

    def matches(self, other: LatentSpace) -> bool:
        return (
            self.vae == other.vae
            and self.channels == other.channels
            and math.isclose(self.scaling_factor, other.scaling_factor, rel_tol=1e-6)
            and (not self.fingerprint or not other.fingerprint or len(self.fingerprint) == len(other.fingerprint))
            and all(abs(a - b) <= self.FINGERPRINT_TOLERANCE for a, b in zip(self.fingerprint, other.fingerprint))
        )


@dataclass(frozen=True)
class FrameRule:
    """How many pixel frames T latent frames stand for.

    ``temporal`` pixel frames per latent frame; ``causal`` when the first latent frame stands
    for one pixel frame alone (Wan's and LTX's causal VAEs: (T - 1) * temporal + 1 frames).
    SVD's VAE is per frame: temporal 1, so T latent frames are T pixel frames.
    """

    temporal: int = 1
    causal: bool = False

    _PATTERN = re.compile(r"^(?:T|T\*(?P<times>\d+)|\(T-1\)\*(?P<causal>\d+)\+1)$")

    def __str__(self) -> str:
        if self.causal:
            return f"(T-1)*{self.temporal}+1"
        return "T" if self.temporal == 1 else f"T*{self.temporal}"

    @classmethod
    def parse(cls, text: str) -> FrameRule:
        match = cls._PATTERN.match(text)
        if not match:
            raise LatentFileError(f"frame_rule {text!r} is not one of T, T*N or (T-1)*N+1")
        if match["causal"]:
            return cls(temporal=int(match["causal"]), causal=True)
        return cls(temporal=int(match["times"] or 1))

    def pixel_frames(self, latent_frames: int) -> int:
        """Pixel frames that ``latent_frames`` latent frames decode to."""
        if self.causal:
            return (latent_frames - 1) * self.temporal + 1
        return latent_frames * self.temporal

    def accepts(self, pixel_frames: int) -> bool:
        """True when ``pixel_frames`` is a count this VAE encodes to whole latent frames."""
        if pixel_frames < 1:
            return False
        return (pixel_frames - 1) % self.temporal == 0 if self.causal else pixel_frames % self.temporal == 0

    def latent_frames(self, pixel_frames: int) -> int:
        """Latent frames of ``pixel_frames`` pixel frames (the largest count that fits)."""
        if self.causal:
            return (pixel_frames - 1) // self.temporal + 1
        return pixel_frames // self.temporal

    def latent_index(self, pixel: int) -> int:
        """The latent frame that pixel frame ``pixel`` (0-based) belongs to."""
        if self.causal:
            return 0 if pixel <= 0 else (pixel - 1) // self.temporal + 1
        return pixel // self.temporal

    def pixel_span(self, latent: int) -> tuple[int, int]:
        """The first and last pixel frame (0-based) of latent frame ``latent``."""
        if self.causal:
            return (0, 0) if latent == 0 else ((latent - 1) * self.temporal + 1, latent * self.temporal)
        return latent * self.temporal, (latent + 1) * self.temporal - 1

    def neighbours(self, pixel_frames: int) -> tuple[int, int]:
        """The accepted counts nearest ``pixel_frames``: the largest not above it (at least the
        smallest accepted) and the smallest not below it."""
        below = self.pixel_frames(max(1, self.latent_frames(pixel_frames)))
        above = below if below >= pixel_frames else self.pixel_frames(self.latent_frames(pixel_frames) + 1)
        return below, above

    def describe(self) -> str:
        """For messages: "4k+1", "a multiple of 8", "any number of"."""
        if self.causal:
            return f"{self.temporal}k+1"
        return "any number of" if self.temporal == 1 else f"a multiple of {self.temporal}"


@dataclass(frozen=True)
class Normalization:
    """How the file's values relate to the raw VAE latents, per channel.

    file value = (raw - mean) * factor / std, with mean 0 and std 1 where not given: SVD's is
    the scaling factor alone (0.18215); Wan's the VAE's ``latents_mean``/``latents_std`` with
    factor 1. These numbers let tools that keep raw latents (ComfyUI) convert without loading
    the model; vidlatent's own encode and decode use each family's exact arithmetic.
    """

    factor: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"factor": self.factor, "mean": list(self.mean), "std": list(self.std)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Normalization:
        try:
            value = json.loads(text)
            return cls(factor=float(value["factor"]), mean=tuple(float(v) for v in value.get("mean") or ()),
                       std=tuple(float(v) for v in value.get("std") or ()))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise LatentFileError(f"normalization {text[:80]!r} is not a JSON object with factor, mean and std ({error})") from error

    def raw(self, latents: torch.Tensor) -> torch.Tensor:
        """File values (T, C, h, w) to raw VAE latents: latents * std / factor + mean, float32
        (ComfyUI's ``process_out``, so a ComfyUI reader recovers exactly these values)."""
        latents = latents.float()
        if not self.mean and not self.std:
            return latents / self.factor
        mean, std = self._tensors(latents)
        return latents * std / self.factor + mean

    def normalized(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents (T, C, h, w) to file values: (raw - mean) * factor / std, float32
        (ComfyUI's ``process_in``: the values ComfyUI samples with)."""
        raw = raw.float()
        if not self.mean and not self.std:
            return raw * self.factor
        mean, std = self._tensors(raw)
        return (raw - mean) * self.factor / std

    def _tensors(self, like: torch.Tensor) -> tuple[Any, Any]:
        import torch

        channels = like.shape[1]
        mean = torch.tensor(self.mean or [0.0] * channels, dtype=torch.float32).view(1, channels, 1, 1)
        std = torch.tensor(self.std or [1.0] * channels, dtype=torch.float32).view(1, channels, 1, 1)
        return mean, std


@dataclass(frozen=True)
class LatentLayout:
    """Where a clip's numbers come from and how they map to pixels: the family, the VAE's
    spatial compression, its frame rule and its normalisation."""

    family: str
    spatial: int
    frame_rule: FrameRule
    normalization: Normalization

    def metadata(self) -> dict[str, str]:
        return {
            "family": self.family,
            "spatial_compression": str(self.spatial),
            "temporal_compression": str(self.frame_rule.temporal),
            "frame_rule": str(self.frame_rule),
            "normalization": self.normalization.to_json(),
        }


@dataclass(frozen=True)
class AudioLayout:
    """What a clip's sound latents are and how they line up with its frames (latent file v3).

    The sound is a tensor ``audio`` of shape (L, C, M), time first like the video's (T, C, h, w):
    L latent steps of C channels over M (latent) mel bins. Latent step i covers the time
    [offset + i / latents_per_second, offset + (i + 1) / latents_per_second) seconds of the
    clip, whose pixel frame n shows at n / fps; so the sound of P pixel frames at ``fps`` is
    round(P / fps * latents_per_second) latent steps, the count LTX-2's pipelines make.

    Args:
        family: the family whose audio VAE the numbers belong to.
        sample_rate: samples per second of the sound its decoder writes (LTX-2: the vocoder's
            ``output_sampling_rate``, not the mel front end's rate).
        latents_per_second: latent steps per second (LTX-2: mel rate / hop length / the audio
            VAE's temporal compression, 25).
        offset: seconds from the first pixel frame to the first latent step (0: they start together).
        values: "raw" where the numbers are the audio VAE's own latents (LTX-2's pipelines return
            them denormalised), "normalised" where the model's statistics were applied.
    """

    family: str
    sample_rate: int
    latents_per_second: float
    offset: float = 0.0
    values: str = "raw"

    def steps_for(self, pixel_frames: int, fps: float) -> int:
        """Latent steps of the sound of ``pixel_frames`` frames played at ``fps``."""
        return round(pixel_frames / fps * self.latents_per_second)

    def seconds(self, steps: int) -> float:
        return steps / self.latents_per_second

    def metadata(self) -> dict[str, str]:
        return {
            "audio_family": self.family,
            "audio_sample_rate": str(int(self.sample_rate)),
            "audio_latents_per_second": repr(float(self.latents_per_second)),
            "audio_offset": repr(float(self.offset)),
            "audio_values": self.values,
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> AudioLayout:
        """The audio layout a latent file's metadata states; LatentFileError when it is incomplete or wrong."""
        keys = ("audio_family", "audio_sample_rate", "audio_latents_per_second", "audio_offset", "audio_values")
        missing = [key for key in keys if key not in metadata]
        if missing:
            raise LatentFileError(f"the file has an audio tensor but its metadata lacks {', '.join(missing)}")
        try:
            layout = cls(family=metadata["audio_family"], sample_rate=int(metadata["audio_sample_rate"]),
                         latents_per_second=float(metadata["audio_latents_per_second"]),
                         offset=float(metadata["audio_offset"]), values=metadata["audio_values"])
        except ValueError as error:
            raise LatentFileError(f"malformed audio metadata ({error})") from error
        if not (layout.sample_rate > 0 and math.isfinite(layout.latents_per_second) and layout.latents_per_second > 0
                and math.isfinite(layout.offset)):
            raise LatentFileError(f"audio sample rate and latents per second must be positive "
                                  f"({layout.sample_rate}, {layout.latents_per_second})")
        if layout.values not in ("raw", "normalised"):
            raise LatentFileError(f"audio_values {layout.values!r} is not raw or normalised")
        return layout
