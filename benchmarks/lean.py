"""A lean latent-file writer and reader: a prototype of the fix proposed for goal 5.

It writes the same bytes as ``vidlatent.latentfile.write`` (checked by the benchmark) and reads
them back with the same finite-values rule, with as few passes over the data as the format allows:

- the safetensors header is built here, with sorted keys and safetensors' padding, so nothing has
  to be re-written afterwards;
- the tensor's own memory goes to the file (no serialisation into an intermediate bytes object);
- the file is read once into a buffer that becomes the tensor (``torch.frombuffer``), with no
  second copy by ``safetensors.torch.load``;
- "every value is finite" is checked with ``torch.aminmax`` (NaN and ±inf show in the min or
  max): one pass, no tensor of booleans.

It is not used by vidlatent; only the benchmark calls it, to measure what the fix would give.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# safetensors' dtype names for the floating types a latent file may hold.
DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}


def check_finite(latents: Any) -> None:
    import torch

    low, high = torch.aminmax(latents)
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        raise ValueError("latents contain NaN or infinite values")


def header(latents: Any, metadata: dict[str, str], name: str = "latents") -> bytes:
    """The 8-byte length and the JSON header, as safetensors writes them but with sorted keys."""
    info = {"dtype": DTYPES[str(latents.dtype).removeprefix("torch.")], "shape": list(latents.shape),
            "data_offsets": [0, latents.numel() * latents.element_size()]}
    entries = {"__metadata__": dict(sorted(metadata.items())), name: info}
    text = json.dumps(dict(sorted(entries.items())), separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to a multiple of 8 bytes
    return len(text).to_bytes(8, "little") + text


def write(latents: Any, metadata: dict[str, str], path: str | os.PathLike[str]) -> None:
    """Write a latent file atomically, streaming the tensor's memory straight to the file."""
    import torch

    from vidlatent.atomic import atomic_output

    check_finite(latents)
    latents = latents.detach().cpu().contiguous()
    raw = latents.view(torch.int16) if latents.dtype == torch.bfloat16 else latents  # numpy has no bfloat16
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        handle.write(header(latents, metadata))
        handle.write(memoryview(raw.numpy()).cast("B"))


def read(path: str | os.PathLike[str]) -> tuple[Any, dict[str, str]]:
    """Read a latent file's tensor and metadata: one read into a buffer that becomes the tensor."""
    import torch

    with open(path, "rb") as handle:
        buffer = bytearray(os.fstat(handle.fileno()).st_size)
        handle.readinto(buffer)
    length = int.from_bytes(buffer[:8], "little")
    entries = json.loads(bytes(buffer[8 : 8 + length]))
    info = entries["latents"]
    dtype = {value: key for key, value in DTYPES.items()}[info["dtype"]]
    start, end = info["data_offsets"]
    latents = torch.frombuffer(buffer, dtype=getattr(torch, dtype), offset=8 + length + start,
                               count=(end - start) // getattr(torch, dtype).itemsize).reshape(info["shape"])
    check_finite(latents)
    return latents, entries.get("__metadata__", {})


def same_bytes_as_latentfile(clip: Any, folder: Path) -> bool | None:
    """Whether ``write`` gives latentfile.write's bytes for ``clip`` (None: latentfile has no ``_metadata``)."""
    from vidlatent import latentfile

    metadata = getattr(latentfile, "_metadata", None)
    if metadata is None:
        return None
    write(clip.latents, metadata(clip), folder / "lean-check.safetensors")
    return (folder / "lean-check.safetensors").read_bytes() == latentfile.to_bytes(clip)
