"""The latent file: vidlatent's versioned, on-disk contract (see docs/latent-format.md).

A latent file is a safetensors file with a tensor ``latents`` of shape (T, C, h, w), frames
first for every model family (and, from version 3, an ``audio`` tensor (L, C, M), time first,
where the model makes sound: LTX-2), holding the values the family's diffusers pipeline returns with
``output_type="latent"`` (SVD: multiplied by the VAE's scaling factor; Wan: normalised by the
VAE's ``latents_mean``/``latents_std``; LTX: normalised by its ``latents_mean``/``latents_std``
and scaling factor, unpacked; LTX-2: the raw VAE latents, as its pipelines return them
denormalised), and string metadata that says what the numbers mean:
the family, the latent space, the spatial and temporal compression, the rule from latent to
pixel frames and the normalisation. This module is the only one that reads or writes it;
everything it rejects raises LatentFileError. Version-1 files (SVD only) and version-2 files
(no sound) still read.

ComfyUI's ``.latent`` files (a ``latent_tensor`` of raw VAE latents and an empty
``latent_format_version_0`` marker) are read wherever a latent file is, the family told apart
by the tensor's shape, and written for paths ending in ``.latent``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import mmap
import os
import stat
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent import __version__
from vidlatent.atomic import STDIO, atomic_output, write_stdout
from vidlatent.errors import IncompatibleLatentsError, LatentFileError, Note, UsageError
from vidlatent import families
# The vocabulary of the file's metadata (re-exported: readers of latent files use these names).
from vidlatent.layout import AudioLayout, FrameRule, LatentLayout, LatentSpace, Normalization

__all__ = ["AudioLayout", "FrameRule", "LatentLayout", "LatentSpace", "Normalization", "LatentClip", "read", "write"]

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "vidlatent.latents"
FORMAT_VERSION = 3
READABLE_VERSIONS = ("1", "2", "3")
TENSOR_NAME = "latents"
AUDIO_TENSOR = "audio"
# The sound may be this many latent steps longer or shorter than round(frames / fps * rate):
# rounding, where a segment's sound and picture were each rounded on their own.
AUDIO_SLACK = 1
KINDS = ("clip", "direction")
COMFYUI_SUFFIX = ".latent"
COMFYUI_TENSOR = "latent_tensor"
COMFYUI_MARKER = "latent_format_version_0"
COMFYUI_METADATA_KEY = "vidlatent"
COMFYUI_RAW_TENSOR = "comfyui_latent_tensor"


class LatentNote(UserWarning):
    """Something the user should know about their latents; the CLI prints it as a note."""
# The steps of a history that sample a clip's frames with knobs (generate, extend).
SAMPLING_COMMANDS = ("generate", "extend")
REQUIRED_KEYS = ("format", "format_version", "kind", "model", "latent_space", "fps", "height", "width", "history")
LAYOUT_KEYS = ("family", "spatial_compression", "temporal_compression", "frame_rule", "normalization")


@dataclass(frozen=True)
class LatentClip:
    """A latent video clip and what its numbers mean.

    Args:
        latents: (T, C, h, w) tensor, as the family's pipeline returns it with output_type="latent".
        model: the model id or folder that made it.
        latent_space: LatentSpace string of the VAE the numbers belong to.
        fps: frames per second to play it at.
        height, width: pixel size the latents decode to.
        seed: the seed that generated it, where known.
        history: every command that produced or changed it, oldest first.
        kind: "clip", or "direction" for an edit direction.
        layout: family, compression, frame rule and normalisation of the numbers.
        audio: (L, C, M) sound latents, time first, or None for a silent clip (every family but LTX-2).
        audio_layout: what ``audio`` is and how it lines up with the frames (with ``audio``).
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
    layout: LatentLayout = field(kw_only=True)
    audio: torch.Tensor | None = field(default=None, kw_only=True, repr=False)
    audio_layout: AudioLayout | None = field(default=None, kw_only=True)
    # The tensor of the ComfyUI file this clip was read from, kept so that converting an
    # unchanged clip back writes ComfyUI's numbers bit for bit (see to_comfyui_bytes).
    comfyui_raw: Any = field(default=None, repr=False, compare=False)

    @property
    def frames(self) -> int:
        """Latent frames (T)."""
        return int(self.latents.shape[0])

    @property
    def family(self) -> str:
        return self.layout.family

    @property
    def pixel_frames(self) -> int:
        """Pixel frames the latents decode to, by the layout's frame rule."""
        return self.layout.frame_rule.pixel_frames(self.frames)

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def audio_aligned(self) -> bool:
        """True when the sound lasts as long as the picture (to ``AUDIO_SLACK`` latent steps)."""
        if self.audio is None or self.audio_layout is None:
            return True
        expected = self.audio_layout.steps_for(self.pixel_frames, self.fps)
        return abs(int(self.audio.shape[0]) - expected) <= AUDIO_SLACK

    def without_audio(self) -> LatentClip:
        return dataclasses.replace(self, audio=None, audio_layout=None)

    def with_step(self, command: str, arguments: dict[str, Any], **changes: Any) -> LatentClip:
        """A copy with ``changes`` applied and ``command`` appended to the history.

        The step records the versions that made it (vidlatent, diffusers, torch) and the SHA-256 of
        the latents it produced (``latents_sha256``), so that ``replay`` can tell which step of a
        re-run first differs.
        """
        changed = dataclasses.replace(self, **changes)
        if not changed.audio_aligned():
            # A command that changed the picture's length without the sound's: the sound no longer
            # lines up, so it is dropped, and said (never kept misaligned, never dropped silently).
            assert changed.audio is not None and changed.audio_layout is not None
            warnings.warn(Note(f"{command}: the clip's sound ({changed.audio_layout.seconds(int(changed.audio.shape[0])):.2f} s) "
                               f"no longer lines up with its {changed.pixel_frames} frames at {changed.fps:g} fps (this step "
                               "changes the picture's length, not the sound's): the result is silent"), stacklevel=2)
            changed = changed.without_audio()
        step = {"command": command, "arguments": _jsonable(arguments), "vidlatent": __version__,
                "versions": software_versions(), "latents_sha256": latents_sha256(changed.latents)}
        return dataclasses.replace(changed, history=(*self.history, step))

    def recorded(self, *names: str, commands: tuple[str, ...] | None = SAMPLING_COMMANDS,
                 nested: bool = False) -> dict[str, Any]:
        """The knob values the clip's history recorded: those of ``names`` found in the latest step
        among ``commands`` (None: any step) that records any of them. The one reader of a clip's
        recorded knobs.

        Args:
            names: argument names (Knobs fields: prompt, fps, decode_timestep, ...).
            commands: the steps to read; default the sampling ones (generate, extend).
            nested: look inside nested records too (an edit's operations, an upscale's refine pass).
        """
        for step in reversed(self.history):
            if commands is not None and step.get("command") not in commands:
                continue
            found = {name: value for name in names
                     if (value := _find_value(step.get("arguments", {}), name, 3 if nested else 0)) is not None}
            if found:
                return found
        return {}

    def require_family(self, family: str, *, what: str = "this model") -> None:
        """Raise IncompatibleLatentsError unless the clip holds latents of ``family`` (its name): what
        can be known before a model loads (``require_space`` checks the VAE itself once it has)."""
        if self.family != family:
            raise IncompatibleLatentsError(
                f"the clip's latents ({self.family} family) belong to another VAE than {what} (of the {family} family); "
                f"use --model {self.model} or re-encode the video with this model"
            )

    def require_space(self, expected: str, *, what: str = "this model") -> None:
        """Raise IncompatibleLatentsError unless the clip belongs to ``expected``."""
        if not LatentSpace.parse(self.latent_space).matches(LatentSpace.parse(expected)):
            raise IncompatibleLatentsError(
                f"the clip's latents ({self.family} family) belong to another VAE than {what} "
                f"(clip: {self.latent_space} from {self.model}; expected {expected}); "
                f"use --model {self.model} or re-encode the video with this model"
            )


def latents_sha256(latents: torch.Tensor) -> str:
    """The SHA-256 of a latents tensor's dtype, shape and bytes: equal exactly when the tensors are
    bit-identical (what a history step records of the latents it produced)."""
    tensor = latents.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{_safetensors_dtype(tensor)}{list(tensor.shape)}".encode())
    digest.update(_memory(tensor))
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def software_versions() -> dict[str, str]:
    """The diffusers and torch versions installed (what a history step records besides vidlatent's):
    the imported module's own ``__version__`` (what a sampling command has imported already),
    else the installed package's metadata (which scans the installed distributions: tens of ms)."""
    import sys
    from importlib import metadata

    versions = {}
    for name in ("diffusers", "torch"):
        module = sys.modules.get(name)
        try:
            versions[name] = str(module.__version__) if module is not None else metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _find_value(record: Any, key: str, depth: int) -> Any:
    """``record[key]`` if set, else (``depth`` levels down) the first one inside its nested dicts and lists."""
    if isinstance(record, dict) and record.get(key) is not None:
        return record[key]
    if depth <= 0 or not isinstance(record, (dict, list)):
        return None
    items = record.values() if isinstance(record, dict) else record
    return next((found for item in items if (found := _find_value(item, key, depth - 1)) is not None), None)


def _jsonable(value: Any) -> Any:
    # Paths, tuples and other simple objects become plain JSON values in the history.
    return json.loads(json.dumps(value, default=str))


def _metadata(clip: LatentClip) -> dict[str, str]:
    audio = clip.audio_layout.metadata() if clip.audio is not None and clip.audio_layout is not None else {}
    return {
        **clip.layout.metadata(),
        **audio,
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
    """Serialise ``clip`` to latent-file bytes; the same clip always gives the same bytes.

    A clip read from a ComfyUI file and unchanged since also carries that file's tensor, as
    ``comfyui_latent_tensor``, so that converting it back is exact.
    """
    return safetensors_bytes(*_latent_file(clip))


def _latent_file(clip: LatentClip) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The checked tensors and the metadata of ``clip``'s latent file."""
    _validate_tensor(clip.latents, "clip")
    tensors = {TENSOR_NAME: clip.latents}
    if clip.audio is not None:
        if clip.audio_layout is None:
            raise ValueError("a clip with audio needs its audio_layout")
        _validate_audio(clip.audio, "clip")
        tensors[AUDIO_TENSOR] = clip.audio
    if _comfyui_raw_current(clip):
        tensors[COMFYUI_RAW_TENSOR] = clip.comfyui_raw
    return tensors, _metadata(clip)


def to_comfyui_bytes(clip: LatentClip) -> bytes | bytearray:
    """Serialise ``clip`` as a ComfyUI ``.latent``: raw ``latent_tensor`` and the version marker.

    ComfyUI keeps raw VAE latents and normalises them itself (its latent formats'
    ``process_in``), so the clip's normalisation is undone here: SVD's latents are divided by
    the scaling factor, (F, 4, h, w); Wan's get latents * std + mean and ComfyUI's video layout
    (1, C, T, h, w); LTX's stay as they are, (1, 128, T, h, w): ComfyUI's LTX VAE applies the
    per-channel statistics itself. vidlatent's own metadata rides along under the ``vidlatent`` key, so
    reading the file back restores model, latent space, fps and history, and the metadata of
    the ComfyUI file the clip came from (its ``prompt`` and ``workflow``, kept in the history)
    is written back. A clip read from a ComfyUI file and not changed since gets that file's
    tensor back bit for bit.
    """
    import torch

    _validate_tensor(clip.latents, "clip")
    refusal = families.family(clip.layout.family).comfyui_unwritable
    if refusal is not None:
        raise UsageError(f"a ComfyUI .latent of a {families.family(clip.layout.family).title} clip: {refusal}")
    if clip.audio is not None:
        warnings.warn(Note("a ComfyUI .latent holds the picture's latents only: the clip's sound is not written "
                           "(keep a .safetensors copy for it)"), stacklevel=2)
        clip = clip.without_audio()
    raw = clip.comfyui_raw if _comfyui_raw_current(clip) else _to_comfyui_layout(_comfyui_normalization(clip.layout).raw(clip.latents), clip.layout)
    tensors = {COMFYUI_TENSOR: raw, COMFYUI_MARKER: torch.tensor([])}
    metadata = {**_comfyui_metadata_in(clip.history), COMFYUI_METADATA_KEY: json.dumps(_metadata(clip), sort_keys=True)}
    return safetensors_bytes(tensors, metadata)


def _to_comfyui_layout(frames_first: torch.Tensor, layout: LatentLayout) -> torch.Tensor:
    # ComfyUI batches SVD's frames like images, (F, C, h, w); video VAEs' latents are (1, C, T, h, w).
    return frames_first.permute(1, 0, 2, 3)[None].contiguous() if layout.frame_rule.causal else frames_first


def _from_comfyui_layout(tensor: torch.Tensor, source: str) -> torch.Tensor:
    if tensor.ndim == 5:
        if tensor.shape[0] != 1:
            raise LatentFileError(f"{source}: a ComfyUI video latent with a batch of {tensor.shape[0]}; vidlatent reads one video (batch 1)")
        return tensor[0].permute(1, 0, 2, 3)  # (C, T, h, w) -> (T, C, h, w)
    return tensor


def _comfyui_normalization(layout: LatentLayout) -> Normalization:
    """What ComfyUI's latent format for the layout's family does to raw VAE latents: the layout's
    own normalisation (SVD, Wan), or none for LTX, whose ComfyUI VAE normalises internally."""
    return Normalization() if families.family(layout.family).comfyui_normalized else layout.normalization


def _comfyui_raw_current(clip: LatentClip) -> bool:
    """True when the clip still holds exactly what its ComfyUI file's tensor normalises to."""
    import torch

    raw = clip.comfyui_raw
    if raw is None:
        return False
    frames_first = _from_comfyui_layout(raw, "clip")
    if frames_first.shape != clip.latents.shape:
        return False
    return torch.equal(_comfyui_normalization(clip.layout).normalized(frames_first), clip.latents.float())


def _comfyui_metadata_in(history: Any) -> dict[str, str]:
    """The ComfyUI metadata (prompt, workflow, ...) recorded in a history's latest import."""
    for step in reversed(list(history)):
        kept = step.get("arguments", {}).get("comfyui")
        if isinstance(kept, dict):
            return {str(key): str(value) for key, value in kept.items()}
    return {}


def from_bytes(data: bytes, *, source: str = "latent file") -> LatentClip:
    """Parse and validate latent-file bytes; raise LatentFileError naming ``source`` on any fault."""
    tensors, metadata = parse_safetensors(data, source=source, expected="a latent file")
    if metadata.get("format") != FORMAT_NAME and COMFYUI_TENSOR in tensors:
        return _clip_from_comfyui(tensors, metadata, source)
    return _clip_from(tensors, metadata, source)


def _clip_from_comfyui(tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> LatentClip:
    # With the version marker the tensor holds raw VAE latents; without it (ComfyUI's legacy
    # files) it already holds scaled SD-style values, which ComfyUI itself divides by 0.18215.
    original = tensors[COMFYUI_TENSOR]
    latent = _from_comfyui_layout(original, source)
    _validate_tensor(latent, source)
    comfyui = {key: value for key, value in metadata.items() if key != COMFYUI_METADATA_KEY}
    embedded = metadata.get(COMFYUI_METADATA_KEY)
    if embedded:
        try:
            ours = json.loads(embedded)
            history = json.loads(ours["history"])
        except (ValueError, KeyError, TypeError) as error:
            raise LatentFileError(f"{source}: its vidlatent metadata is not valid JSON ({error})") from error
        # ComfyUI's own metadata (prompt, workflow) joins the history, unless it is what the
        # clip already carried when vidlatent wrote the file.
        if comfyui and comfyui != _comfyui_metadata_in(history):
            ours["history"] = json.dumps([*history, _import_step(source, comfyui)])
    else:
        assumed = families.comfyui_assumption(original.ndim, int(latent.shape[1]), source)
        _, _, height, width = latent.shape
        ours = {
            **assumed.layout.metadata(),
            "format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "kind": "clip", "model": assumed.model,
            "latent_space": assumed.latent_space, "fps": repr(assumed.fps),
            "height": str(height * assumed.layout.spatial), "width": str(width * assumed.layout.spatial), "seed": "",
            "history": json.dumps([_import_step(source, comfyui)]),
        }
        warnings.warn(
            f"{source}: a ComfyUI latent, read as {assumed.description}, {assumed.fps:g} fps; "
            "ComfyUI files do not name the model that made them",
            LatentNote,
            stacklevel=2,
        )
    marker = COMFYUI_MARKER in tensors
    clip = _clip_from({TENSOR_NAME: latent.float()}, ours, source)
    values = _comfyui_normalization(clip.layout).normalized(latent) if marker else latent.float()
    return dataclasses.replace(clip, latents=values, comfyui_raw=original if marker else None)


def _import_step(source: str, comfyui: dict[str, str]) -> dict[str, Any]:
    return {"command": "import", "arguments": {"format": "comfyui", "source": source, "comfyui": comfyui}, "vidlatent": __version__}


def _clip_from(tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> LatentClip:
    if metadata.get("format") != FORMAT_NAME:
        raise LatentFileError(
            f"{source}: a safetensors file but not a vidlatent latent file (format is {metadata.get('format')!r}, expected {FORMAT_NAME!r})"
        )
    version = metadata.get("format_version", "")
    if version not in READABLE_VERSIONS:
        raise LatentFileError(
            f"{source}: latent format version {version!r} is not supported by vidlatent {__version__} "
            f"(it reads versions {', '.join(READABLE_VERSIONS)}); upgrade vidlatent"
        )
    required = REQUIRED_KEYS + (LAYOUT_KEYS if version != "1" else ())
    missing = [key for key in required if key not in metadata]
    if missing:
        raise LatentFileError(f"{source}: metadata lacks {', '.join(missing)}; the file is damaged or was not written by vidlatent")
    if TENSOR_NAME not in tensors:
        raise LatentFileError(f"{source}: no tensor named {TENSOR_NAME!r} (found {', '.join(sorted(tensors)) or 'none'})")
    latents = tensors[TENSOR_NAME]
    _validate_tensor(latents, source)
    if metadata["kind"] not in KINDS:
        raise LatentFileError(f"{source}: kind {metadata['kind']!r} is not one of {', '.join(KINDS)}")
    space = LatentSpace.parse(metadata["latent_space"])
    try:
        fps = float(metadata["fps"])
        height, width = int(metadata["height"]), int(metadata["width"])
        seed = int(metadata["seed"]) if metadata.get("seed") else None
        history = json.loads(metadata["history"])
        layout = _layout_from(metadata, space) if version != "1" else _version_1_layout(space)
    except LatentFileError as error:
        raise LatentFileError(f"{source}: {error}") from error
    except ValueError as error:
        raise LatentFileError(f"{source}: malformed metadata ({error})") from error
    if not (math.isfinite(fps) and fps > 0 and height > 0 and width > 0):
        raise LatentFileError(f"{source}: fps, height and width must be positive (fps={fps}, {width}x{height})")
    if not isinstance(history, list):
        raise LatentFileError(f"{source}: history must be a JSON list")
    _check_against_metadata(latents, space, layout, (width, height), source)
    audio, audio_layout = _audio_from(tensors, metadata, version, source)
    raw = tensors.get(COMFYUI_RAW_TENSOR)
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
        layout=layout,
        audio=audio,
        audio_layout=audio_layout,
        comfyui_raw=raw if raw is not None and raw.is_floating_point() else None,
    )


def _audio_from(tensors: dict[str, torch.Tensor], metadata: dict[str, str], version: str,
                source: str) -> tuple[torch.Tensor | None, AudioLayout | None]:
    """The clip's sound and its layout (version 3), or (None, None) for a silent clip."""
    audio = tensors.get(AUDIO_TENSOR)
    if audio is None:
        return None, None
    if version in ("1", "2"):
        raise LatentFileError(f"{source}: a version-{version} file with an {AUDIO_TENSOR!r} tensor; sound came with version 3")
    _validate_audio(audio, source)
    try:
        layout = AudioLayout.from_metadata(metadata)
    except LatentFileError as error:
        raise LatentFileError(f"{source}: {error}") from error
    return audio, layout


def _validate_audio(audio: torch.Tensor, source: str) -> None:
    import torch

    if audio.ndim != 3:
        raise LatentFileError(f"{source}: audio latents have shape {tuple(audio.shape)}; expected 3 dimensions (time, channels, mel bins)")
    if not audio.is_floating_point():
        raise LatentFileError(f"{source}: audio latents are {audio.dtype}; expected a floating-point tensor")
    if audio.shape[0] < 1:
        raise LatentFileError(f"{source}: the clip's sound has no latent steps")
    low, high = torch.aminmax(audio)
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        raise LatentFileError(f"{source}: audio latents contain NaN or infinite values; regenerate the clip")


def _version_1_layout(space: LatentSpace) -> LatentLayout:
    """Version-1 files predate families: they hold Stable Video Diffusion latents (a per-frame VAE
    at 1/8, scaled by the factor the latent space names), and say so only by that."""
    return LatentLayout(family="svd", spatial=8, frame_rule=FrameRule(), normalization=Normalization(factor=space.scaling_factor))


def _layout_from(metadata: dict[str, str], space: LatentSpace) -> LatentLayout:
    family = metadata["family"]
    if family not in families.FAMILY_NAMES:
        raise LatentFileError(f"family {family!r} is not one vidlatent {__version__} knows ({', '.join(families.FAMILY_NAMES)}); upgrade vidlatent")
    rule = FrameRule.parse(metadata["frame_rule"])
    if int(metadata["temporal_compression"]) != rule.temporal:
        raise LatentFileError(f"temporal_compression {metadata['temporal_compression']} disagrees with frame_rule {rule}")
    spatial = int(metadata["spatial_compression"])
    if spatial < 1:
        raise LatentFileError(f"spatial_compression {spatial} must be at least 1")
    normalization = Normalization.from_json(metadata["normalization"])
    for name, values in (("mean", normalization.mean), ("std", normalization.std)):
        if values and len(values) != space.channels:
            raise LatentFileError(f"normalization has {len(values)} {name} values for {space.channels} channels")
    if any(value == 0 for value in normalization.std) or normalization.factor == 0:
        raise LatentFileError("normalization has a zero std or factor")
    return LatentLayout(family=family, spatial=spatial, frame_rule=rule, normalization=normalization)


def _check_against_metadata(latents: torch.Tensor, space: LatentSpace, layout: LatentLayout, size: tuple[int, int], source: str) -> None:
    """The tensor must be what the metadata says: the latent space's channels and the pixel size
    divided by the spatial compression."""
    _, channels, height, width = latents.shape
    if channels != space.channels:
        raise LatentFileError(
            f"{source}: the latents have {channels} channels but the metadata's latent space has {space.channels} "
            f"({space.vae}); the file is damaged or was edited by hand"
        )
    expected = (size[1] // layout.spatial, size[0] // layout.spatial)
    if (height, width) != expected or size[0] % layout.spatial or size[1] % layout.spatial:
        raise LatentFileError(
            f"{source}: the latents are {width}x{height} but the metadata says {size[0]}x{size[1]} pixels, "
            f"{expected[1]}x{expected[0]} at 1/{layout.spatial}; the file is damaged or was edited by hand"
        )


def _validate_tensor(latents: torch.Tensor, source: str) -> None:
    import torch

    if latents.ndim != 4:
        raise LatentFileError(f"{source}: latents have shape {tuple(latents.shape)}; expected 4 dimensions (frames, channels, height, width)")
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
    if comfyui and families.family(clip.layout.family).comfyui_unwritable is not None:
        raise UsageError(f"-o {path}: {families.family(clip.layout.family).comfyui_unwritable}")
    # A vidlatent file goes out in pieces, the tensor's memory written as it is (no copy).
    _write_parts([to_comfyui_bytes(clip)] if comfyui else _safetensors_parts(*_latent_file(clip)), path)


def folder_latents(folder: str | os.PathLike[str]) -> list[str]:
    """The latent files (.safetensors, .latent) in ``folder``, in natural order (clip2 before clip10);
    a folder without any is refused."""
    from vidlatent.media import natural_key

    files = [path for path in Path(folder).iterdir() if path.is_file() and is_latent_path(path)]
    if not files:
        raise UsageError(f"{folder}: the folder holds no latent files (.safetensors, {COMFYUI_SUFFIX}); give latent files or a folder of them")
    return [str(path) for path in sorted(files, key=natural_key)]


def is_latent_path(path: str | os.PathLike[str]) -> bool:
    """True for ``-`` and paths ending in .safetensors or .latent: where a command writes latents."""
    return str(path) == STDIO or str(path).lower().endswith((".safetensors", COMFYUI_SUFFIX))
