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
import mmap
import os
import re
import stat
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent import __version__
from vidlatent.atomic import STDIO, atomic_output, write_stdout
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


# safetensors' dtype name -> torch's, in the order of safetensors' Rust ``Dtype`` enum: it lays
# tensors out in that order, descending (the widest first, so every tensor stays aligned), then by name.
_TORCH_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
    "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32",
    "F32": "float32", "F64": "float64", "I64": "int64", "U64": "uint64",
}
_DTYPE_ORDER = list(_TORCH_DTYPES)
_SAFETENSORS_DTYPES = {torch_name: name for name, torch_name in _TORCH_DTYPES.items()}
_MAX_HEADER = 100_000_000  # safetensors' own limit on the header's length
_HEAD = 8  # the header's length, a little-endian u64, comes first


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes | bytearray:
    """Serialise tensors and string metadata as safetensors; the same input always gives the same bytes.

    Args:
        tensors: name -> tensor, any device and layout.
        metadata: string -> string, stored under ``__metadata__``.

    The bytes are those of ``safetensors.torch.save`` with the header's keys sorted (safetensors
    orders its metadata map at random per process).
    """
    return b"".join(_safetensors_parts(tensors, metadata))


def _safetensors_parts(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> list[bytes | memoryview]:
    """A safetensors file in pieces: the 8-byte length and the sorted header, then each tensor's own memory.

    Writing the pieces one after the other gives the file without copying any tensor.
    """
    prepared = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    names = {name: _safetensors_dtype(tensor) for name, tensor in prepared.items()}
    order = sorted(prepared, key=lambda name: (-_DTYPE_ORDER.index(names[name]), name))
    entries: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    for name in order:
        size = prepared[name].numel() * prepared[name].element_size()
        entries[name] = {"dtype": names[name], "shape": list(prepared[name].shape), "data_offsets": [offset, offset + size]}
        offset += size
    header = json.dumps(dict(sorted(entries.items())), separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to a multiple of 8 bytes
    return [len(header).to_bytes(_HEAD, "little") + header, *(_memory(prepared[name]) for name in order)]


def _safetensors_dtype(tensor: torch.Tensor) -> str:
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in _SAFETENSORS_DTYPES:
        raise LatentFileError(f"tensors of dtype {name} cannot be stored in a safetensors file")
    return _SAFETENSORS_DTYPES[name]


def _memory(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, without a copy."""
    import torch

    if tensor.numel() == 0:
        return memoryview(b"")
    flat = tensor.reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")  # uint8: numpy has no bfloat16


def parse_safetensors(data: bytes | bytearray, *, source: str, expected: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of safetensors bytes; LatentFileError naming ``source`` and ``expected`` if unreadable.

    Args:
        data: the file's bytes. The tensors share the memory of a writable buffer (a bytearray, a
            private memory map) without a copy; read-only bytes are copied once, since tensors
            must be writable.
        source: how to name the file in errors.
        expected: what it should be, for errors ("a latent file").

    The header is checked as safetensors checks it: known dtypes, shapes that match their byte
    ranges, and ranges that tile the data exactly.
    """
    import torch

    if len(data) == 0:
        raise LatentFileError(f"{source}: is empty; expected {expected}")
    if len(data) < _HEAD:
        raise LatentFileError(f"{source}: not {expected} (only {len(data)} bytes)")
    try:
        entries, start = _header(data)
        metadata = entries.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("its __metadata__ is not a map of strings")
        layout = _layout(entries, len(data) - start)
    except ValueError as error:
        raise LatentFileError(f"{source}: not a readable safetensors file ({error}); was it truncated, or is it not {expected}?") from error
    buffer = bytearray(data) if memoryview(data).readonly else data  # tensors must be writable
    tensors = {}
    for name, (kind, shape, begin, end) in layout.items():
        if end == begin:
            tensors[name] = torch.empty(shape, dtype=kind)
        else:
            count = (end - begin) // kind.itemsize
            tensors[name] = torch.frombuffer(buffer, dtype=kind, offset=start + begin, count=count).reshape(shape)
    return tensors, metadata


def _header(data: bytes | bytearray) -> tuple[dict[str, Any], int]:
    """The parsed header JSON and where the tensor data starts; ValueError when malformed."""
    length = int.from_bytes(data[:_HEAD], "little")
    if length > min(_MAX_HEADER, len(data) - _HEAD):
        raise ValueError(f"its header claims {length} bytes but {len(data) - _HEAD} follow")
    try:
        entries = json.loads(bytes(data[_HEAD : _HEAD + length]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"its header is not JSON: {error}") from error
    if not isinstance(entries, dict):
        raise ValueError("its header is not a JSON object")
    return entries, _HEAD + length


def _layout(entries: dict[str, Any], available: int) -> dict[str, tuple[Any, list[int], int, int]]:
    """name -> (torch dtype, shape, begin, end) of each tensor; ValueError unless the ranges tile ``available`` bytes."""
    import torch

    layout = {}
    for name, info in entries.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(f"tensor {name!r} lacks dtype, shape or data_offsets") from error
        if dtype not in _TORCH_DTYPES:
            raise ValueError(f"tensor {name!r} has an unknown dtype {dtype!r}")
        numbers = [*shape, begin, end] if isinstance(shape, list) else [None]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise ValueError(f"tensor {name!r} has a malformed shape or data_offsets")
        kind = getattr(torch, _TORCH_DTYPES[dtype])
        size = math.prod(shape) * kind.itemsize
        if end - begin != size:
            raise ValueError(f"tensor {name!r}: shape {shape} of {dtype} needs {size} bytes, its data_offsets give {end - begin}")
        layout[name] = (kind, shape, begin, end)
    position = 0
    for _, _, begin, end in sorted(layout.values(), key=lambda entry: (entry[2], entry[3])):
        if begin != position:
            raise ValueError(f"the tensors' data_offsets leave a gap or overlap at byte {position}")
        position = end
    if position != available:
        raise ValueError(f"the header declares {position} bytes of tensor data, {available} are there")
    return layout


def read_bytes(path: str | os.PathLike[str], *, expected: str = "a .safetensors latent file") -> bytes | bytearray | mmap.mmap:
    """The content of ``path``, or of standard input for ``-``; LatentFileError when unreadable.

    Args:
        path: a file, or ``-``.
        expected: what the file should be, for errors.

    A file is memory-mapped (privately, as safetensors' own ``load_file`` does), so that the
    tensors parsed from it need no copy. From a pipe (stdin, or a named pipe) it reads exactly the length that the safetensors header
    declares, so a reader need not wait for its writer to exit. A video, an image or a folder
    is refused by name before anything is read.
    """
    if str(path) == STDIO:
        if sys.stdin.isatty():
            raise LatentFileError("-: standard input is a terminal; pipe a latent file in (… -o - | vidlatent …)")
        return _read_declared(sys.stdin.buffer)
    _refuse_media(Path(path))
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                return _read_declared(handle)
            if status.st_size == 0:
                return b""
            # A private map: tensors made on it are writable, and writes never reach the file.
            return mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except FileNotFoundError as error:
        raise LatentFileError(f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise LatentFileError(f"{path}: is a folder; expected {expected}") from error
    except OSError as error:
        raise LatentFileError(f"{path}: cannot be read ({error.strerror})") from error


def _refuse_media(path: Path) -> None:
    from vidlatent.media import IMAGE_SUFFIXES, SUPPORTED_VIDEO_READ

    suffix = path.suffix.lower()
    if suffix in SUPPORTED_VIDEO_READ:
        raise LatentFileError(f"{path}: is a video, not a latent file; encode it first: vidlatent encode {path} -o clip.safetensors")
    if suffix in IMAGE_SUFFIXES:
        raise LatentFileError(f"{path}: is an image, not a latent file; make a clip from it: vidlatent generate {path} -o clip.safetensors")


def _read_into(stream: Any, view: memoryview) -> int:
    """Fill ``view`` from ``stream`` until it is full or the stream ends; the bytes read."""
    done = 0
    while done < len(view):
        count = stream.readinto(view[done:])
        if not count:
            break
        done += count
    return done


def _read_declared(stream: Any) -> bytearray:
    """One safetensors file from a stream: the header's length, the header, then the data it declares.

    Anything that is not a well-formed header is read to the end of the stream, so that the
    parser names what is wrong with it.
    """
    data = bytearray(_HEAD)
    read = _read_into(stream, memoryview(data))
    if read < _HEAD:
        return data[:read]  # the stream ended
    length = int.from_bytes(data, "little")
    if length > _MAX_HEADER:
        return data + stream.read()
    data += stream.read(length)
    try:
        entries, start = _header(data)
        entries.pop("__metadata__", None)
        total = start + max((int(info["data_offsets"][1]) for info in entries.values()), default=0)
    except (ValueError, TypeError, KeyError, IndexError):
        return data + stream.read()
    held = len(data)
    if total > held:
        data.extend(bytes(total - held))  # room for the tensors, filled in place by the read
        read = _read_into(stream, memoryview(data)[held:])
        if held + read < total:
            del data[held + read :]  # the stream ended early: the parser says the file is truncated
    return data


def write_bytes(data: bytes | bytearray, path: str | os.PathLike[str]) -> None:
    """Write ``data`` atomically to ``path``, or all of it to standard output for ``-`` (else OutputError)."""
    _write_parts([data], path)


def _write_parts(parts: list[bytes | bytearray | memoryview], path: str | os.PathLike[str]) -> None:
    if str(path) == STDIO:
        for part in parts:
            write_stdout(part, what="the latents")
        return
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        for part in parts:
            handle.write(part)


def to_bytes(clip: LatentClip) -> bytes | bytearray:
    """Serialise ``clip`` to latent-file bytes; the same clip always gives the same bytes."""
    return safetensors_bytes(*_latent_file(clip))


def _latent_file(clip: LatentClip) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The checked tensors and the metadata of ``clip``'s latent file."""
    _validate_tensor(clip.latents, "clip")
    return {TENSOR_NAME: clip.latents}, _metadata(clip)


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
    # A vidlatent file goes out in pieces, the tensor's memory written as it is (no copy).
    _write_parts([to_comfyui_bytes(clip)] if comfyui else _safetensors_parts(*_latent_file(clip)), path)


def is_latent_path(path: str | os.PathLike[str]) -> bool:
    """True for ``-`` and paths ending in .safetensors or .latent: where a command writes latents."""
    return str(path) == STDIO or str(path).lower().endswith((".safetensors", COMFYUI_SUFFIX))
