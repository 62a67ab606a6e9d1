"""The latent file: vidlatent's versioned, on-disk contract (see docs/latent-format.md).

A latent file is a safetensors file with one tensor ``latents`` of shape (F, C, H/8, W/8),
scaled as diffusers' ``output_type="latent"`` leaves it (already multiplied by the VAE's
scaling factor), and string metadata that says what the numbers mean. This module is the
only one that reads or writes it; everything it rejects raises LatentFileError.

ComfyUI's ``.latent`` files (a ``latent_tensor``, unscaled, and an empty
``latent_format_version_0`` marker) are read wherever a latent file is, assuming the SVD
latent space, and written for paths ending in ``.latent``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent import __version__
from vidlatent.atomic import STDIO, atomic_output
from vidlatent.errors import IncompatibleLatentsError, LatentFileError

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "vidlatent.latents"
FORMAT_VERSION = 1
TENSOR_NAME = "latents"
KINDS = ("clip", "direction")
COMFYUI_SUFFIX = ".latent"
COMFYUI_TENSOR = "latent_tensor"
COMFYUI_MARKER = "latent_format_version_0"
COMFYUI_METADATA_KEY = "vidlatent"
COMFYUI_DEFAULT_FPS = 7.0  # SVD's; a ComfyUI latent does not carry a frame rate
# ComfyUI files do not say which VAE made them: the SVD VAE is assumed, with no fingerprint.
ASSUMED_COMFYUI_SPACE = "AutoencoderKLTemporalDecoder/c4/s0.18215/fp:"


class LatentNote(UserWarning):
    """Something the user should know about their latents; the CLI prints it as a note."""
REQUIRED_KEYS = ("format", "format_version", "kind", "model", "latent_space", "fps", "height", "width", "history")


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
class LatentClip:
    """A latent video clip and what its numbers mean.

    Args:
        latents: (F, C, h, w) tensor, scaled by the VAE's scaling factor.
        model: the model id or folder that made it.
        latent_space: LatentSpace string of the VAE the numbers belong to.
        fps: frames per second to play it at.
        height, width: pixel size the latents decode to.
        seed: the seed that generated it, where known.
        history: every command that produced or changed it, oldest first.
        kind: "clip", or "direction" for an edit direction.
    """

    latents: torch.Tensor
    model: str
    latent_space: str
    fps: float
    height: int
    width: int
    seed: int | None = None
    history: tuple[dict[str, Any], ...] = ()
    kind: str = "clip"

    @property
    def frames(self) -> int:
        return int(self.latents.shape[0])

    def with_step(self, command: str, arguments: dict[str, Any], **changes: Any) -> LatentClip:
        """A copy with ``changes`` applied and ``command`` appended to the history."""
        step = {"command": command, "arguments": _jsonable(arguments), "vidlatent": __version__}
        return dataclasses.replace(self, history=(*self.history, step), **changes)

    def require_space(self, expected: str, *, what: str = "this model") -> None:
        """Raise IncompatibleLatentsError unless the clip belongs to ``expected``."""
        if not LatentSpace.parse(self.latent_space).matches(LatentSpace.parse(expected)):
            raise IncompatibleLatentsError(
                f"the clip's latents belong to another VAE than {what} "
                f"(clip: {self.latent_space} from {self.model}; expected {expected}); "
                f"use --model {self.model} or re-encode the video with this model"
            )


def _jsonable(value: Any) -> Any:
    # Paths, tuples and other simple objects become plain JSON values in the history.
    return json.loads(json.dumps(value, default=str))


def _metadata(clip: LatentClip) -> dict[str, str]:
    return {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "kind": clip.kind,
        "model": clip.model,
        "latent_space": clip.latent_space,
        "fps": repr(float(clip.fps)),
        "height": str(int(clip.height)),
        "width": str(int(clip.width)),
        "seed": "" if clip.seed is None else str(int(clip.seed)),
        "vidlatent_version": __version__,
        "history": json.dumps(list(clip.history), sort_keys=True),
    }


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes | bytearray:
    """Serialise tensors and string metadata as safetensors; the same input always gives the same bytes."""
    from safetensors.torch import save

    return _with_sorted_header(save({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}, metadata=metadata))


def parse_safetensors(data: bytes, *, source: str, expected: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of safetensors bytes; LatentFileError naming ``source`` and ``expected`` if unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) < 8:
        raise LatentFileError(f"{source}: not {expected} (only {len(data)} bytes)")
    try:
        tensors = load(data)
        metadata = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")]).get("__metadata__") or {}
    except (SafetensorError, ValueError) as error:
        raise LatentFileError(f"{source}: not a readable safetensors file ({error}); was it truncated, or is it not {expected}?") from error
    return tensors, metadata


def read_bytes(path: str | os.PathLike[str], *, expected: str = "a .safetensors latent file") -> bytes:
    """The whole content of ``path``, or of standard input for ``-``; LatentFileError when unreadable."""
    if str(path) == STDIO:
        if sys.stdin.isatty():
            raise LatentFileError("-: standard input is a terminal; pipe a latent file in (… -o - | vidlatent …)")
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError as error:
        raise LatentFileError(f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise LatentFileError(f"{path}: is a folder; expected {expected}") from error
    except OSError as error:
        raise LatentFileError(f"{path}: cannot be read ({error.strerror})") from error


def write_bytes(data: bytes | bytearray, path: str | os.PathLike[str]) -> None:
    """Write ``data`` atomically to ``path``, or to standard output for ``-``."""
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)


def to_bytes(clip: LatentClip) -> bytes | bytearray:
    """Serialise ``clip`` to latent-file bytes; the same clip always gives the same bytes."""
    _validate_tensor(clip.latents, "clip")
    return safetensors_bytes({TENSOR_NAME: clip.latents}, _metadata(clip))


def to_comfyui_bytes(clip: LatentClip) -> bytes | bytearray:
    """Serialise ``clip`` as a ComfyUI ``.latent``: unscaled ``latent_tensor`` and the version marker.

    ComfyUI multiplies by the scaling factor itself, so the latents are divided by it here.
    vidlatent's own metadata rides along under the ``vidlatent`` key, so reading the file back
    restores model, latent space, fps and history.
    """
    import torch

    _validate_tensor(clip.latents, "clip")
    scale = LatentSpace.parse(clip.latent_space).scaling_factor
    tensors = {
        COMFYUI_TENSOR: clip.latents.float() / scale,  # (F, C, h, w), unscaled
        COMFYUI_MARKER: torch.tensor([]),
    }
    return safetensors_bytes(tensors, {COMFYUI_METADATA_KEY: json.dumps(_metadata(clip), sort_keys=True)})


def _with_sorted_header(data: bytes) -> bytes | bytearray:
    # safetensors writes its metadata map in a random order on each run; the header (an 8-byte
    # little-endian length, then that many bytes of JSON) is re-written with sorted keys so
    # that the same clip gives byte-identical files. The length stays the same: same pairs.
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    ordered = json.dumps(dict(sorted(header.items())), separators=(",", ":"), ensure_ascii=False).encode()
    if len(ordered) > length:
        return data
    # One copy of the buffer, the header replaced in place (slicing and joining copies twice).
    rewritten = bytearray(data)
    rewritten[8 : 8 + length] = ordered.ljust(length, b" ")
    return rewritten


def from_bytes(data: bytes, *, source: str = "latent file") -> LatentClip:
    """Parse and validate latent-file bytes; raise LatentFileError naming ``source`` on any fault."""
    tensors, metadata = parse_safetensors(data, source=source, expected="a latent file")
    if metadata.get("format") != FORMAT_NAME and COMFYUI_TENSOR in tensors:
        return _clip_from_comfyui(tensors, metadata, source)
    return _clip_from(tensors, metadata, source)


def _clip_from_comfyui(tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> LatentClip:
    # With the version marker the tensor is unscaled; without it (ComfyUI's legacy files) it
    # already holds scaled SD-style values, which ComfyUI itself divides by 0.18215 on load.
    latent = tensors[COMFYUI_TENSOR]
    _validate_tensor(latent, source)
    embedded = metadata.get(COMFYUI_METADATA_KEY)
    if embedded:
        try:
            ours = json.loads(embedded)
        except ValueError as error:
            raise LatentFileError(f"{source}: its vidlatent metadata is not JSON ({error})") from error
    else:
        from vidlatent.models import DEFAULT_MODEL

        _, _, height, width = latent.shape
        ours = {
            "format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "kind": "clip", "model": DEFAULT_MODEL,
            "latent_space": ASSUMED_COMFYUI_SPACE, "fps": repr(COMFYUI_DEFAULT_FPS),
            "height": str(height * 8), "width": str(width * 8), "seed": "",
            "history": json.dumps([{"command": "import", "arguments": {"format": "comfyui", "source": source}}]),
        }
        warnings.warn(
            f"{source}: a ComfyUI latent, read as Stable Video Diffusion latents (SVD's VAE, scaling 0.18215, "
            f"{COMFYUI_DEFAULT_FPS:g} fps); pass --model if another model made it",
            LatentNote,
            stacklevel=2,
        )
    scale = LatentSpace.parse(ours.get("latent_space", ASSUMED_COMFYUI_SPACE)).scaling_factor
    scaled = latent.float() * scale if COMFYUI_MARKER in tensors else latent.float()
    return _clip_from({TENSOR_NAME: scaled}, ours, source)


def _clip_from(tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> LatentClip:
    if metadata.get("format") != FORMAT_NAME:
        raise LatentFileError(
            f"{source}: a safetensors file but not a vidlatent latent file (format is {metadata.get('format')!r}, expected {FORMAT_NAME!r})"
        )
    version = metadata.get("format_version", "")
    if version != str(FORMAT_VERSION):
        raise LatentFileError(
            f"{source}: latent format version {version!r} is not supported by vidlatent {__version__} "
            f"(it reads version {FORMAT_VERSION}); upgrade vidlatent"
        )
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise LatentFileError(f"{source}: metadata lacks {', '.join(missing)}; the file is damaged or was not written by vidlatent")
    if TENSOR_NAME not in tensors:
        raise LatentFileError(f"{source}: no tensor named {TENSOR_NAME!r} (found {', '.join(sorted(tensors)) or 'none'})")
    latents = tensors[TENSOR_NAME]
    _validate_tensor(latents, source)
    if metadata["kind"] not in KINDS:
        raise LatentFileError(f"{source}: kind {metadata['kind']!r} is not one of {', '.join(KINDS)}")
    LatentSpace.parse(metadata["latent_space"])
    try:
        fps = float(metadata["fps"])
        height, width = int(metadata["height"]), int(metadata["width"])
        seed = int(metadata["seed"]) if metadata.get("seed") else None
        history = json.loads(metadata["history"])
    except ValueError as error:
        raise LatentFileError(f"{source}: malformed metadata ({error})") from error
    if not (math.isfinite(fps) and fps > 0 and height > 0 and width > 0):
        raise LatentFileError(f"{source}: fps, height and width must be positive (fps={fps}, {width}x{height})")
    if not isinstance(history, list):
        raise LatentFileError(f"{source}: history must be a JSON list")
    return LatentClip(
        latents=latents,
        model=metadata["model"],
        latent_space=metadata["latent_space"],
        fps=fps,
        height=height,
        width=width,
        seed=seed,
        history=tuple(history),
        kind=metadata["kind"],
    )


def _validate_tensor(latents: torch.Tensor, source: str) -> None:
    import torch

    if latents.ndim != 4:
        raise LatentFileError(f"{source}: latents have shape {tuple(latents.shape)}; expected 4 dimensions (frames, channels, height/8, width/8)")
    if not latents.is_floating_point():
        raise LatentFileError(f"{source}: latents are {latents.dtype}; expected a floating-point tensor")
    if latents.shape[0] < 1:
        raise LatentFileError(f"{source}: the clip has no frames")
    # NaN and infinities show in the minimum or maximum: one pass, no tensor of booleans.
    low, high = torch.aminmax(latents)
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        raise LatentFileError(f"{source}: latents contain NaN or infinite values; regenerate the clip")


def read(path: str | os.PathLike[str]) -> LatentClip:
    """Read and validate a latent file; ``-`` reads the bytes from standard input."""
    return from_bytes(read_bytes(path), source="stdin" if str(path) == STDIO else str(path))


def write(clip: LatentClip, path: str | os.PathLike[str], *, comfyui: bool | None = None) -> None:
    """Write ``clip`` atomically to ``path``; ``-`` writes the bytes to standard output.

    Args:
        clip: the clip.
        path: the target, or ``-``.
        comfyui: write ComfyUI's ``.latent`` layout; default: when ``path`` ends in ``.latent``.
    """
    if comfyui is None:
        comfyui = str(path).lower().endswith(COMFYUI_SUFFIX)
    write_bytes(to_comfyui_bytes(clip) if comfyui else to_bytes(clip), path)


def is_latent_path(path: str | os.PathLike[str]) -> bool:
    """True for ``-`` and paths ending in .safetensors or .latent: where a command writes latents."""
    return str(path) == STDIO or str(path).lower().endswith((".safetensors", COMFYUI_SUFFIX))
