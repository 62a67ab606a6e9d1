"""--lora FILE: LoRA files in the layouts people have, read into diffusers' naming, checked
against the model's denoiser before its weights load, and loaded as diffusers loads them.

The layouts, told apart by their keys:

- ``diffusers``: ``transformer.<layer>.lora_A.weight`` / ``lora_B.weight`` (``lora_B.bias``), as
  ``save_lora_weights`` writes them (with the adapter's config in the header, where it says so);
- ``peft``: the same names without the ``transformer.`` prefix, or behind PEFT's own
  ``base_model.model.`` (``get_peft_model_state_dict``, ``save_pretrained``);
- ``original``: the model authors' names behind ``diffusion_model.``, ``lora_down`` / ``lora_up``
  (or ``lora_A`` / ``lora_B``) with ``.alpha``, ``.diff`` and ``.diff_b``: lightx2v, Lightning,
  CausVid, ComfyUI's saved LoRAs, the LTX-Video trainer's;
- ``comfyui``: the original names without the prefix, which ComfyUI also loads;
- ``kohya``: ``lora_unet_<layer_with_underscores>`` with ``.alpha`` (Kohya's sd-scripts, musubi-tuner).

Every file goes through the pipeline's own ``lora_state_dict``, which holds diffusers' converters
(for Wan the original and musubi layouts, for LTX-Video the original one); vidlatent only puts
back a prefix that PEFT's and ComfyUI's un-prefixed files leave out (the one under which the keys
fit the model). Which layouts a family reads is its declaration (``Family.lora_layouts``).

A LoRA is refused (one line, naming a key) when none of it reaches the model, and when only part
of it does, unless ``--lora-partial``: part of a file "reaches the model" when its values end up
in a LoRA weight of a layer that exists with that shape. diffusers itself only logs a warning for
a file of which it loads nothing, and drops some keys silently (norms' ``.diff``, DoRA's
``dora_scale``); an all-zero tensor carries nothing and is not counted as lost.

Torch-free at import.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.component_files import read_safetensors_header
from vidlatent.errors import UsageError

if TYPE_CHECKING:
    import torch

    from vidlatent.families.base import Family, ModelSpec

PREFIX = "transformer."  # diffusers' naming of a pipeline's transformer LoRA
ORIGINAL_PREFIX = "diffusion_model."
KOHYA_PREFIX = "lora_unet_"
PEFT_PREFIX = "base_model.model."
# diffusers' adapter config in a file's header (save_lora_weights): loaded with the file.
ADAPTER_METADATA_KEY = "lora_adapter_metadata"
EXPERTS = ("both", "high", "low")  # Wan 2.2 two-expert models: transformer (high noise), transformer_2 (low)
# The fingerprint reads the header and this much of the data at each end, never the whole file.
FINGERPRINT_BYTES = 2**20
# The end of a LoRA key that names what it holds; the rest names the layer.
_LAYER_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_B.bias", ".lora_down.weight", ".lora_up.weight",
                   ".alpha", ".diff", ".diff_b", ".dora_scale")
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight")
# Why a key that every layer fits is lost: diffusers' converter left it out (a norm's .diff, DoRA's
# dora_scale, a layer it does not know).
DROPPED = "diffusers' converter does not load it"
LAYOUT_NAMES = {"diffusers": "diffusers'", "peft": "PEFT's", "original": "the original (diffusion_model.)",
                "comfyui": "ComfyUI's", "kohya": "Kohya's (lora_unet_)"}


@dataclass(frozen=True)
class Lora:
    """--lora PATH[:SCALE[:EXPERT]]: a LoRA file, its scale, and on two-expert models which experts."""

    path: str
    scale: float = 1.0
    expert: str | None = None  # None: both experts of a two-expert model (the only one otherwise)


def parse_lora(text: str) -> Lora:
    """``PATH``, ``PATH:SCALE`` or ``PATH:SCALE:EXPERT`` (high, low or both) as a Lora; the file
    must exist and be safetensors."""
    path, scale, expert = text, 1.0, None
    head, separator, tail = text.rpartition(":")
    if separator and tail in EXPERTS:
        expert, path = tail, head
        head, separator, tail = head.rpartition(":")
        if not separator:
            raise UsageError(f"--lora {text!r}: give the scale before the expert, PATH:SCALE:{expert}")
    if separator:
        try:
            scale = float(tail)
            path = head
        except ValueError:
            # A file before the colon (and none of the whole name): the scale is what is wrong.
            if expert is not None or (Path(head).expanduser().is_file() and not Path(text).expanduser().is_file()):
                raise UsageError(f"--lora {text!r}: {tail!r} is not a scale; expected PATH[:SCALE[:high|low|both]]") from None
    if not math.isfinite(scale):
        raise UsageError(f"--lora {text!r}: the scale must be a finite number")
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"--lora {path}: no such file")
    if file.suffix != ".safetensors":
        raise UsageError(f"--lora {path}: vidlatent loads LoRA weights from .safetensors files only (no pickles)")
    lora = Lora(str(file.resolve()), scale, expert)
    check_lora_file(lora)
    return lora


@dataclass
class LoraFile:
    """A --lora file read into diffusers' naming and checked against the model.

    Args:
        lora: the --lora value.
        layout: diffusers, peft, original, comfyui or kohya.
        state_dict: what loads, in diffusers' naming (``transformer.<layer>.lora_A.weight``, ...):
            with --lora-partial only the layers that fit; empty where the file loads as it is.
        as_is: the file loads unchanged (``load_lora_weights(path)``, header and all).
        metadata: diffusers' adapter config from the header, if any.
        dropped: how many of the file's tensors do not reach the model (--lora-partial).
        size, fingerprint: the file's, for the history.
    """

    lora: Lora
    layout: str
    state_dict: dict[str, Any]
    as_is: bool
    metadata: str | None
    dropped: int
    size: int
    fingerprint: str

    def record(self, experts: str | None) -> dict[str, Any]:
        """The history entry: path, size, fingerprint, layout, scale (and experts, and what
        --lora-partial left out)."""
        record: dict[str, Any] = {"path": self.lora.path, "size": self.size, "fingerprint": self.fingerprint,
                                  "layout": self.layout, "scale": self.lora.scale}
        if experts is not None:
            record["experts"] = experts
        if self.dropped:
            record["partial"] = {"dropped_tensors": self.dropped}
        return record


def check_lora_file(lora: Lora) -> None:
    """Refuse, before torch loads, a --lora file that is no safetensors file (from its header)."""
    try:
        header, _ = read_safetensors_header(lora.path)
    except (OSError, ValueError, struct.error) as error:
        raise UsageError(f"--lora {lora.path}: not a safetensors file ({error})") from error
    if not any(key != "__metadata__" for key in header):
        raise UsageError(f"--lora {lora.path}: holds no tensors")


def fingerprint(path: str) -> str:
    """SHA-256 of a safetensors file's header (every tensor's name, dtype, shape and place, and
    the metadata) and of the first and last MiB of its data: a LoRA of hundreds of MB is told
    apart from another without reading it whole."""
    _, start = read_safetensors_header(path)
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(start + FINGERPRINT_BYTES))
        if size > start + 2 * FINGERPRINT_BYTES:
            handle.seek(size - FINGERPRINT_BYTES)
        digest.update(handle.read())
    return digest.hexdigest()


# --- reading and checking ------------------------------------------------------------------------


def read_loras(loras: Sequence[Lora], pipeline_class: Any, family: Family, spec: ModelSpec, folder: Path,
               components: Sequence[str], *, partial: bool = False) -> list[LoraFile]:
    """Each --lora file read through ``pipeline_class.lora_state_dict`` and checked against the
    denoisers it goes into (built empty from ``folder``'s configs: no weights load).

    Raises UsageError (one line, naming a key) for a file none of which reaches the model, or
    only part of it without ``partial``.
    """
    from vidlatent.acceleration import empty_denoiser

    wanted = sorted({name for lora in loras for name in lora_experts(lora, spec) if name in components})
    denoisers = {name: empty_denoiser(folder, name) for name in wanted}
    read = []
    for lora in loras:
        targets = {name: denoisers[name] for name in lora_experts(lora, spec) if denoisers.get(name) is not None}
        read.append(_read_lora(lora, pipeline_class, family, spec, targets, partial))
    return read


def lora_experts(lora: Lora, spec: ModelSpec) -> tuple[str, ...]:
    """The denoisers a LoRA goes into: both experts of a two-expert model unless one is named."""
    if spec.experts == 1:
        return ("transformer",)
    return {"high": ("transformer",), "low": ("transformer_2",)}.get(lora.expert or "both", ("transformer", "transformer_2"))


@dataclass
class _Reading:
    """One way of reading a file: a layout, the file's tensors under the names diffusers is
    handed, what its converter made of them, and how much of that fits."""

    layout: str
    handed: dict[str, Any]
    converted: dict[str, Any]
    fitting: dict[str, Any]
    misfit: tuple[str, str] | None  # the first converted key that does not fit, and why
    lost: list[str]  # the file's keys whose values reach no fitting layer


def _read_lora(lora: Lora, pipeline_class: Any, family: Family, spec: ModelSpec, denoisers: dict[str, Any],
               partial: bool) -> LoraFile:
    from safetensors import safe_open

    try:
        with safe_open(lora.path, "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            metadata = (handle.metadata() or {}).get(ADAPTER_METADATA_KEY)
    except Exception as error:  # noqa: BLE001  (safetensors' own error is no OSError; any failure is the file's)
        raise UsageError(f"--lora {lora.path}: cannot be read as LoRA weights ({_first_line(error)})") from error
    readable = [(layout, handed) for layout, handed in _layouts(tensors) if _family_layout(layout) in family.lora_layouts]
    if not readable:
        key = next(iter(tensors))
        raise UsageError(f"--lora {lora.path}: key {key}: {family.title} takes LoRAs in {_listing(family.lora_layouts)} "
                         f"layout, not {LAYOUT_NAMES[_layouts(tensors)[0][0]]} ({_example(denoisers)})")
    readings: list[_Reading] = []
    failure = ""  # why diffusers' converter could not read the first layout it failed on
    for layout, handed in readable:
        try:
            converted = pipeline_class.lora_state_dict(dict(handed))
            has_alphas = any(key.endswith(".alpha") for key in handed)
            tracked = pipeline_class.lora_state_dict(_alphas_as_ranks(handed)) if has_alphas else converted
        except Exception as error:  # noqa: BLE001  (diffusers' converters raise ValueError, KeyError, ...)
            reason = f"it looks for {error.args[0]} (past the prefix), which the file lacks" \
                if isinstance(error, KeyError) and error.args else _first_line(error)
            failure = failure or f"{LAYOUT_NAMES[layout]} layout: {reason}"
            continue
        readings.append(_fit(layout, tensors, handed, converted, tracked, denoisers))
    if not readings:
        raise UsageError(f"--lora {lora.path}: diffusers' {family.title} converter cannot read it in {failure}")
    best = max(readings, key=lambda reading: len(reading.fitting))  # the first of the best
    where = f"{spec.title} ({', '.join(denoisers) or 'transformer'})"
    leftover_alpha = next((key for key in best.converted if key.endswith(".alpha")), None)
    if leftover_alpha is not None:
        raise UsageError(f"--lora {lora.path}: key {leftover_alpha}: diffusers' {family.title} loader cannot apply "
                         "an alpha in this layout (without it the LoRA would load at another strength)")
    if not best.fitting:
        key, reason = best.misfit or (best.lost[0], DROPPED)
        raise UsageError(f"--lora {lora.path}: none of its {len(tensors)} keys fit {where}: key {key}: {reason}; "
                         f"the model takes diffusers' names ({_example(denoisers)}) or a layout diffusers converts")
    partial_fit = bool(best.lost) or best.misfit is not None
    if partial_fit and not partial:
        key, reason = best.misfit or (best.lost[0], DROPPED)
        raise UsageError(f"--lora {lora.path}: only part of it fits {where}: key {key}: {reason}; "
                         f"--lora-partial loads the {len(best.fitting)} LoRA weights that fit")
    as_is = not partial_fit and best.handed is tensors
    return LoraFile(lora=lora, layout=best.layout, state_dict={} if as_is else best.fitting, as_is=as_is,
                    metadata=metadata, dropped=len(best.lost), size=os.path.getsize(lora.path),
                    fingerprint=fingerprint(lora.path))


def _family_layout(layout: str) -> str:
    """The layout a family declares for ``layout``: ComfyUI's un-prefixed files are the original's."""
    return "original" if layout == "comfyui" else layout


def _layouts(tensors: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The ways to hand the file to diffusers: its layout and its tensors under the names
    diffusers' lora_state_dict recognises (an un-prefixed file two ways: PEFT's diffusers names,
    or ComfyUI's original ones)."""
    keys = list(tensors)
    if any(key.startswith(ORIGINAL_PREFIX) for key in keys):
        return [("original", tensors)]
    if any(key.startswith(KOHYA_PREFIX) for key in keys):
        return [("kohya", tensors)]
    if any(key.startswith(PREFIX) for key in keys):
        return [("diffusers", tensors)]
    bare = {key.removeprefix(PEFT_PREFIX): tensor for key, tensor in tensors.items()}
    return [("peft", {PREFIX + key: tensor for key, tensor in bare.items()}),
            ("comfyui", {ORIGINAL_PREFIX + key: tensor for key, tensor in bare.items()})]


def _alphas_as_ranks(handed: dict[str, Any]) -> dict[str, Any]:
    """``handed`` with each ``.alpha`` set to its layer's rank, so that diffusers' converter
    scales nothing (alpha / rank = 1) and every value it passes on is one of the file's: the
    values are then followed from the file to the converted names."""
    import torch

    tracked = dict(handed)
    for key in handed:
        if key.endswith(".alpha"):
            stem = key.removesuffix(".alpha")
            down = next((handed[stem + suffix] for suffix in _DOWN_SUFFIXES if stem + suffix in handed), None)
            if down is not None:
                tracked[key] = torch.tensor(float(down.shape[0]))
    return tracked


def _fit(layout: str, tensors: dict[str, Any], handed: dict[str, Any], converted: dict[str, Any],
         tracked: dict[str, Any], denoisers: dict[str, Any]) -> _Reading:
    """How much of one reading reaches the model: the converted layers that fit every denoiser,
    the first converted key that does not, and the file's tensors whose values reach no fitting
    layer (followed through the converter by value; all-zero tensors and alphas aside)."""
    by_layer: dict[str, list[str]] = {}
    for key in converted:
        by_layer.setdefault(_layer(key), []).append(key)
    fitting: dict[str, Any] = {}
    misfit: tuple[str, str] | None = None
    for keys in by_layer.values():
        found = _layer_misfit({key: converted[key] for key in keys}, denoisers)
        if found is None:
            fitting |= {key: converted[key] for key in keys}
        elif misfit is None:
            misfit = found
    reached = Counter(_value_id(value) for key, value in tracked.items() if key in fitting)
    lost = []
    for (key, tensor), handed_key in zip(tensors.items(), handed):
        if handed_key.endswith(".alpha") or not tensor.any():
            continue
        value = _value_id(tensor)
        if reached[value]:
            reached[value] -= 1
        else:
            lost.append(key)
    return _Reading(layout, handed, converted, fitting, misfit, lost)


def _layer_misfit(layer: dict[str, Any], denoisers: dict[str, Any]) -> tuple[str, str] | None:
    """The first of one layer's keys that does not fit one of ``denoisers``, and why."""
    for name, denoiser in denoisers.items():
        found = _misfit(layer, denoiser, name)
        if found is not None:
            return found
    return None


def _value_id(tensor: torch.Tensor) -> tuple[Any, ...]:
    """What tells a tensor's values apart (equal values, equal id): shape, dtype, its first
    elements and its sum."""
    flat = tensor.reshape(-1)
    return tuple(tensor.shape), str(tensor.dtype), tuple(flat[:8].tolist()), float(flat.float().sum())


def _layer(key: str) -> str:
    for suffix in _LAYER_SUFFIXES:
        if key.endswith(suffix):
            return key.removesuffix(suffix)
    return key


def _misfit(state_dict: dict[str, Any], denoiser: Any, name: str) -> tuple[str, str] | None:
    """The first key (diffusers' naming) that does not fit ``denoiser`` (the component ``name``),
    and why; None if all fit."""
    layers = _layers(denoiser)
    for key, tensor in state_dict.items():
        if not key.startswith(PREFIX):
            return key, f"not diffusers' naming of the {name}'s layers, nor a layout diffusers converts"
        layer_name, marker, rest = key[len(PREFIX):].partition(".lora_")
        if not marker:
            return key, "not a LoRA weight (no lora_A / lora_B in its name)"
        layer = layers.get(layer_name)
        if layer is None:
            return key, f"the {name} has no layer {layer_name}"
        shape = tuple(tensor.shape)
        inputs, outputs = getattr(layer, "in_features", None), getattr(layer, "out_features", None)
        if rest not in ("A.weight", "B.weight", "B.bias"):
            # diffusers' peft loader renames lora.down / lora.up, not lora_down / lora_up: those
            # load only through a family's converter (Wan's), which renames them.
            return key, "not a LoRA weight diffusers loads here (it takes lora_A / lora_B)"
        if inputs is None or outputs is None:
            continue  # a convolution: peft checks it itself
        if rest == "A.weight" and (len(shape) != 2 or shape[1] != inputs):
            return key, f"shape {shape} does not fit the layer's {inputs} input features"
        if rest == "B.weight" and (len(shape) != 2 or shape[0] != outputs):
            return key, f"shape {shape} does not fit the layer's {outputs} output features"
        if rest == "B.bias" and shape != (outputs,):
            return key, f"shape {shape} does not fit the layer's {outputs} output features"
    return None


def _layers(denoiser: Any) -> dict[str, Any]:
    cached = getattr(denoiser, "_vidlatent_layers", None)
    if cached is None:
        cached = dict(denoiser.named_modules())
        denoiser._vidlatent_layers = cached
    return cached


def _example(denoisers: dict[str, Any]) -> str:
    """A key the model takes, in diffusers' naming: its first attention query's LoRA down matrix."""
    import torch

    for denoiser in denoisers.values():
        linear = [name for name, layer in _layers(denoiser).items() if isinstance(layer, torch.nn.Linear)]
        name = next((name for name in linear if name.endswith("attn1.to_q")), linear[0] if linear else None)
        if name is not None:
            return f"e.g. {PREFIX}{name}.lora_A.weight"
    return f"{PREFIX}<layer>.lora_A.weight"


def _listing(layouts: Sequence[str]) -> str:
    names = [LAYOUT_NAMES[layout] for layout in layouts]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- loading -------------------------------------------------------------------------------------


def load_loras(pipeline: Any, files: Sequence[LoraFile], spec: ModelSpec) -> list[dict[str, Any]]:
    """Load each LoRA as its own adapter (``lora0``, ``lora1``, ...) into the experts it goes
    into, as ``load_lora_weights`` loads it (the file itself where vidlatent changed nothing), and
    set their scales; returns the history records."""
    import tempfile
    import warnings

    if not files:
        return []
    names, scales, records = [], [], []
    with tempfile.TemporaryDirectory(prefix="vidlatent-lora-") as scratch:
        for index, each in enumerate(files):
            name = f"lora{index}"
            experts = lora_experts(each.lora, spec)
            source = _source(each, Path(scratch) / f"{name}.safetensors")
            for expert in experts:
                with warnings.catch_warnings():
                    # Several adapters in one model are what --lora asks for; peft warns of them.
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
                    # load_lora_weights pops from a dict it is given: each call gets its own copy.
                    pipeline.load_lora_weights(source if isinstance(source, str) else dict(source), adapter_name=name,
                                               use_safetensors=True,
                                               **({"load_into_transformer_2": True} if expert == "transformer_2" else {}))
            names.append(name)
            scales.append(each.lora.scale)
            which = None
            if spec.experts == 2:
                which = "both" if len(experts) == 2 else {"transformer": "high", "transformer_2": "low"}[experts[0]]
            records.append(each.record(which))
    if names:
        pipeline.set_adapters(names, adapter_weights=scales)
    return records


def _source(each: LoraFile, scratch: Path) -> str | dict[str, Any]:
    """What load_lora_weights is given: the file where it loads unchanged; else the weights that
    fit, in diffusers' naming, and where the file carries diffusers' adapter config (which only a
    file can hand to load_lora_weights), those weights written with it to ``scratch``."""
    if each.as_is:
        return each.lora.path
    if each.metadata is None:
        return each.state_dict
    from safetensors.torch import save_file

    save_file({key: tensor.contiguous() for key, tensor in each.state_dict.items()}, scratch,
              metadata={"format": "pt", ADAPTER_METADATA_KEY: each.metadata})
    return str(scratch)
