"""The files users have: a model's denoiser from one file (``--transformer FILE``,
``--transformer-2 FILE``) in place of the folder's.

The base model (``--model``) supplies the configs and every other component; the file replaces
one component and is loaded through diffusers' own single-file loader
(``from_single_file(FILE, config=<base folder>, subfolder=<component>)``), which reads the
original layout of the model's authors and ComfyUI's (``model.diffusion_model.`` prefix) as well
as diffusers' own naming. Whether a family takes such files is data (``Family.single_file_components``).

Everything that can be checked before the weights load is checked here: the file exists and is
safetensors, the family takes it, a second expert exists, and every key and shape of the file fit
the base model's component (from the file's header and the component's config only).

Torch-free at import: the command line parses these flags in a blink.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError

if TYPE_CHECKING:
    import torch

    from vidlatent.families.base import Family, ModelSpec

# The components a file can replace, and the flag that names each.
COMPONENT_FLAGS = {"transformer": "--transformer", "transformer_2": "--transformer-2"}
SUFFIXES = (".safetensors", ".gguf")
GGUF_INSTALL = 'pip install "vidlatent[gguf]"'
# ComfyUI's fp8-scaled checkpoints: float8 weights, each with its scale (``X.scale_weight``; newer
# ComfyUI ``X.weight_scale`` beside ``X.comfy_quant``, the format as JSON bytes), and a
# ``scaled_fp8`` marker. diffusers ignores the scales (and loads the weights wrong); vidlatent
# multiplies them in on load.
SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_QUANT_SUFFIXES = (*SCALE_SUFFIXES, ".scale_input", ".input_scale", ".comfy_quant")
_FP8_MARKER = "scaled_fp8"
# The safetensors header is at most this long (the format's own limit is 100 MB).
_MAX_HEADER_BYTES = 100 * 2**20


@dataclass(frozen=True)
class ComponentFile:
    """One component of a model loaded from a single file instead of the model's folder.

    Args:
        component: the pipeline component it replaces (``transformer``, ``transformer_2``).
        path: the file, .safetensors or .gguf (a GGUF quantisation; needs the gguf package).
    """

    component: str
    path: str

    @property
    def flag(self) -> str:
        return COMPONENT_FLAGS.get(self.component, f"--{self.component.replace('_', '-')}")

    def check(self) -> None:
        """Raise UsageError for an unknown component, a missing file or one that is not safetensors."""
        if self.component not in COMPONENT_FLAGS:
            raise UsageError(f"{self.flag}: vidlatent loads {' and '.join(COMPONENT_FLAGS)} from single files only")
        file = Path(self.path)
        if not file.is_file():
            raise UsageError(f"{self.flag} {self.path}: no such file")
        if file.suffix not in SUFFIXES:
            raise UsageError(f"{self.flag} {self.path}: expected a {' or '.join(SUFFIXES)} file (no pickles)")
        if self.gguf:
            import importlib.util

            if importlib.util.find_spec("gguf") is None:
                raise UsageError(f"{self.flag} {self.path}: GGUF files need the gguf package: {GGUF_INSTALL}")

    @property
    def gguf(self) -> bool:
        """A GGUF quantisation (loaded with diffusers' GGUFQuantizationConfig), else safetensors."""
        return Path(self.path).suffix == ".gguf"


def component_file(component: str, text: str) -> ComponentFile:
    """The ``--transformer`` / ``--transformer-2`` value ``text`` as a checked ComponentFile
    (an absolute path)."""
    file = ComponentFile(component, str(Path(text).expanduser()))
    file.check()
    return ComponentFile(component, str(Path(file.path).resolve()))


def check_component_files(files: tuple[ComponentFile, ...], family: Family, spec: ModelSpec, folder: Path | None) -> None:
    """Refuse, before loading, a file the model cannot take (UsageError, one line): a family
    without single-file loading, a second expert on a one-expert model, the same component twice,
    and (where the base folder is on disk) a file whose keys or shapes do not fit the component."""
    seen: set[str] = set()
    for file in files:
        file.check()
        if file.component in seen:
            raise UsageError(f"{file.flag}: given twice; give one file for each component")
        seen.add(file.component)
        if file.component not in family.single_file_components:
            raise UsageError(f"{file.flag}: {family.title} loads its denoiser from its diffusers folder only "
                             f"(no single-file loader in diffusers); leave it out")
        if file.component == "transformer_2" and spec.experts == 1:
            raise UsageError(f"{file.flag} {file.path}: {spec.title} has one transformer (no low-noise expert); "
                             "give the file as --transformer")
        if is_scaled_fp8(file):
            check_scaled_fp8(file)
        if folder is not None:
            check_fits(file, folder, spec)


def check_fits(file: ComponentFile, folder: Path, spec: ModelSpec) -> None:
    """Refuse a file whose keys or shapes do not fit ``folder``'s component, naming the first key."""
    shapes = {key: shape for key, shape in read_header(file).items() if not _quantisation_key(key)}
    misfit = first_misfit(shapes, folder, file.component)
    if misfit is not None:
        key, reason = misfit
        raise UsageError(f"{file.flag} {file.path}: does not fit {spec.title} ({file.component}): key {key}: {reason}")


@functools.lru_cache(maxsize=8)
def read_header(file: ComponentFile) -> dict[str, tuple[int, ...]]:
    """Each tensor's name and shape, in file order (of the data), from the file's header alone
    (a GGUF tensor's shape: its logical shape, not that of its quantised bytes). Read once per
    file: the checks, the memory estimate and the loader all ask (do not change the result)."""
    if file.gguf:
        return _read_gguf_header(file)
    try:
        header, _ = read_safetensors_header(file.path)
        header.pop("__metadata__", None)
        ordered = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
        return {key: tuple(entry["shape"]) for key, entry in ordered}
    except (OSError, ValueError, struct.error, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"{file.flag} {file.path}: not a safetensors file ({error})") from error


def read_safetensors_header(path: str) -> tuple[dict[str, Any], int]:
    """A safetensors file's JSON header (each tensor's dtype, shape and data_offsets, and its
    ``__metadata__``) and the offset where its data begins, reading the header alone. Raises
    OSError, ValueError or struct.error where the file is none."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _MAX_HEADER_BYTES:
            raise ValueError("header too long")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError("the header is no JSON object")
    return header, 8 + length


def _quantisation_key(key: str) -> bool:
    """A scale, an fp8 marker or a format of ComfyUI's fp8-scaled layout: no weight of the model."""
    return key.endswith(_QUANT_SUFFIXES) or key == _FP8_MARKER or key.endswith("." + _FP8_MARKER)


def is_scaled_fp8(file: ComponentFile) -> bool:
    """Whether ``file`` is in ComfyUI's fp8-scaled layout (from its header)."""
    return not file.gguf and any(_quantisation_key(key) for key in read_header(file))


def dequantise_scaled_fp8(state_dict: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """ComfyUI's fp8-scaled weights as plain weights in ``dtype``: each ``X.weight`` times its
    scale (``X.scale_weight`` or ``X.weight_scale``: one number, or one per output row), in
    float32; the scales, input scales, formats and the marker dropped."""
    import torch

    weights: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if _quantisation_key(key):
            continue
        stem = key.removesuffix(".weight")
        scale = next((state_dict[stem + suffix] for suffix in SCALE_SUFFIXES if stem + suffix in state_dict), None)
        if scale is None or key == stem:
            weights[key] = tensor  # diffusers casts it (keeping its float32 modules in float32)
            continue
        scale = scale.to(torch.float32)
        if scale.numel() > 1:  # one per output row: (N,) -> (N, 1, ...)
            scale = scale.reshape(-1, *([1] * (tensor.ndim - 1)))
        weights[key] = (tensor.to(torch.float32) * scale).to(dtype)
    return weights


def check_scaled_fp8(file: ComponentFile) -> None:
    """Refuse a ComfyUI quantisation other than fp8-scaled (``X.comfy_quant`` names the format),
    reading those small tensors only."""
    from safetensors import safe_open

    with safe_open(file.path, "pt") as weights:
        for key in weights.keys():
            if key.endswith(".comfy_quant"):
                quant = json.loads(bytes(weights.get_tensor(key).tolist()).decode())
                if not str(quant.get("format", "")).startswith("float8"):
                    raise UsageError(f"{file.flag} {file.path}: key {key}: ComfyUI's {quant.get('format')!r} quantisation "
                                     "is not supported (its fp8-scaled one is)")


def _read_gguf_header(file: ComponentFile) -> dict[str, tuple[int, ...]]:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(file.path)  # memory-mapped: only the header is read here
    except (OSError, ValueError, IndexError, KeyError) as error:
        raise UsageError(f"{file.flag} {file.path}: not a GGUF file ({error})") from error
    # GGUF lists dimensions innermost first; torch outermost first.
    return {tensor.name: tuple(int(size) for size in reversed(tensor.shape.tolist())) for tensor in reader.tensors}


def first_misfit(shapes: dict[str, tuple[int, ...]], folder: Path, component: str) -> tuple[str, str] | None:
    """The first key of a checkpoint (name -> shape, in file order) that does not fit the component
    ``component`` of the diffusers folder ``folder``, and why; then the first of the component's
    weights the file lacks; None if it fits.

    Keys are read as diffusers reads them: as they are where they are the component's own names,
    else through the component class's single-file converter (original and ComfyUI layouts)."""
    import torch

    from vidlatent.acceleration import empty_denoiser

    model = empty_denoiser(folder, component)
    if model is None:
        return None
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    convert = _converter(type(model))
    renamed: dict[str, str] = {}  # the component's name -> the file's
    as_diffusers = set(shapes) == set(expected)  # diffusers converts only where the keys differ
    for key, shape in shapes.items():
        names = {key: shape}
        if not as_diffusers and convert is not None:
            converted = convert(checkpoint={key: torch.empty(shape, device="meta")}, config=None)
            names = {name: tuple(tensor.shape) for name, tensor in converted.items()}
        for name, converted_shape in names.items():
            if name not in expected:
                return key, f"the {component} has no weight {name}"
            if converted_shape != expected[name]:
                return key, f"shape {converted_shape} does not fit the {component}'s {expected[name]}"
            renamed[name] = key
    for name in expected:
        if name not in renamed:
            return name, f"the file has no weight for it ({len(shapes)} keys in the file, {len(expected)} in the {component})"
    return None


def _converter(model_class: type) -> Any:
    """diffusers' converter from the original layout to the class's own, or None."""
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    entry = SINGLE_FILE_LOADABLE_CLASSES.get(model_class.__name__)
    return entry["checkpoint_mapping_fn"] if entry else None


def loaded_bytes(file: ComponentFile, element_size: int) -> int:
    """Bytes the component takes once loaded (for --offload auto): a GGUF file's own size (it stays
    quantised), else its weights at ``element_size`` bytes each, from the header."""
    import math

    if file.gguf:
        return Path(file.path).stat().st_size
    return sum(math.prod(shape) for key, shape in read_header(file).items() if not _quantisation_key(key)) * element_size


def load_component_file(file: ComponentFile, folder: Path, dtype: torch.dtype) -> Any:
    """The component ``file`` replaces, loaded with diffusers' single-file loader and the base
    folder's config (without it diffusers guesses a hub repository to read the config from). A
    GGUF file stays quantised in memory and computes in ``dtype`` (GGUFQuantizationConfig); a
    ComfyUI fp8-scaled file is read whole and dequantised to ``dtype`` (weight = fp8 x scale)."""
    import diffusers

    from vidlatent.families.base import read_config

    model_class = getattr(diffusers, str(read_config(folder, file.component).get("_class_name")))
    quantization = {"quantization_config": diffusers.GGUFQuantizationConfig(compute_dtype=dtype)} if file.gguf else {}
    source: Any = file.path
    if is_scaled_fp8(file):
        from safetensors.torch import load_file

        source = dequantise_scaled_fp8(load_file(file.path), dtype)
    return model_class.from_single_file(source, config=str(folder), subfolder=file.component, torch_dtype=dtype,
                                        **quantization)
