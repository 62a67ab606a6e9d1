"""Say, before a model loads, what a run needs and what makes it fit.

``plan(request)`` builds the model's components on the meta device from their configs
(accelerate's ``init_empty_weights``: layer names and shapes, no weights read) and estimates,
for a size, a frame count, a step count and the memory flags:

- the bytes of each component's weights at its dtype, the denoisers' in fp8 with ``--quantize``
  (their ``_skip_layerwise_casting_patterns`` kept), single-file components from their headers
  (a GGUF file at its own size), LoRA adapters from theirs;
- the denoiser's peak activations: its family says what one call works on (``Workload``:
  tokens = latent frames x latent pixels / patch, heads, width), and the attention's score
  matrix is counted where the device's attention materialises it (a CPU's does, measured);
- the VAE decode's working memory per call (``DecodeWork``: frames per chunk, a tile's pixels);
- per stage (load, prompt, denoise, decode) the peak memory on the GPU and on the host, given
  the offload mode (none: every weight on the GPU; model: one component at a time; group: the
  denoiser's blocks in turn; sequential: layer by layer);
- the time-dominant quantity: denoiser calls x tokens^2.

``fit(request, budget)`` tries the combinations of offload, fp8, VAE tiling and decode chunk
that the user left open, cheapest first, and returns the first whose peak fits the budget, with
the reason; ``DoesNotFit`` (a usage error, exit 2) says what is short when none does.

The constants below are calibrated on the peak host memory (RSS) of the tiny models on a CPU,
predicted against measured (``python -m benchmarks --only 10``, BENCHMARKS.md section 10).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.acceleration import DENOISERS
from vidlatent.errors import ModelError, UsageError

if TYPE_CHECKING:
    import torch

    from vidlatent.families.base import Family, Workload
    from vidlatent.models import LoadOptions, ModelInfo

GIB = 2**30
# The host memory of the process before any model: Python with torch, diffusers and transformers
# imported, measured (benchmarks section 10: 0.40 GiB for the imports, 0.47 GiB for a tiny model's
# whole generate at 64x64), and on CUDA what its libraries and context add on the host.
RUNTIME_HOST_BYTES = int(0.45 * GIB)
CUDA_HOST_BYTES = int(1.0 * GIB)
# What the CUDA context and the caching allocator's slack take on the GPU beside the tensors.
CUDA_CONTEXT_BYTES = int(0.5 * GIB)
# Tensors of one transformer call alive at its peak, in units of (tokens x width) and
# (tokens x feed-forward width): the residual stream, its norm, q, k, v and the attention's
# output; the feed-forward's inner activation and its gate.
LIVE_WIDTH = 6
LIVE_FEEDFORWARD = 2
# Score matrices (batch x heads x queries x keys) alive at once where attention materialises them.
SCORE_MATRICES = 1
# Devices whose default attention (torch's scaled_dot_product_attention as diffusers calls it)
# materialises the score matrix: measured on the CPU (tiny Wan at 512x512: the peak grows by one
# fp32 matrix); CUDA's flash and memory-efficient kernels stream it.
MATERIALISING_DEVICES = ("cpu", "mps")
# A CPU's 3D convolutions unfold their input (im2col) into buffers several times its size: the
# VAE's working memory on a CPU, measured against the families' decode_work (which counts tensors).
CPU_CONVOLUTION_UNFOLD = 4
# Text and image encoders: tensors of (tokens x widest layer) alive at once, and their tokens.
ENCODER_LIVE = 4
ENCODER_TOKENS = 512
OFFLOADS = ("none", "model", "group", "sequential")
# What each choice costs, for --vram's "cheapest that fits": time, and whether it changes the
# result (fp8 does; the others do not, tiling by a little at tile seams).
COSTS = {"offload": {"none": 0.0, "model": 1.0, "group": 2.0, "sequential": 8.0}, "fp8": 3.0, "tiling": 0.5,
         "chunk": 0.25}
DECODE_CHUNKS = (8, 4, 2, 1)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    """What to plan: a model and its flags, and the run.

    Args:
        load: the model and its loading flags (device, dtype, offload, acceleration, component files).
        size: (width, height) sampled.
        frames: pixel frames made; None: the model's default.
        steps: denoising steps; None: the model's default.
        guidance: the guidance scale given (the family's guidance knob); None: the model's default.
        decode_chunk: latent frames per decoder call; None: the family's default.
        image: the run is conditioned on an image (an image encoder is loaded where the model has one).
    """

    load: LoadOptions
    size: tuple[int, int]
    frames: int | None = None
    steps: int | None = None
    guidance: float | None = None
    decode_chunk: int | None = None
    image: bool = True


@dataclass(frozen=True)
class Stage:
    """One stage of a run and its peaks, in bytes; ``what`` says what dominates it."""

    name: str
    gpu: int
    host: int
    what: str


@dataclass(frozen=True)
class Plan:
    """The estimate of one run: its settings, the weights, the denoiser's shapes and the stages."""

    model: str
    title: str
    device: str
    dtype: str
    offload: str
    quantize: str | None
    vae_tiling: bool
    decode_chunk: int | None  # None: the family's decoder steps on its own (Wan: one latent frame), whatever the chunk
    size: tuple[int, int]
    frames: int
    latent: tuple[int, int, int]  # (frames, height, width)
    steps: int
    weights: dict[str, int]
    tokens: int
    heads: int
    denoiser_calls: int
    attention_materialised: bool
    stages: tuple[Stage, ...]
    notes: tuple[str, ...] = ()

    @property
    def peak_gpu(self) -> int:
        return max((stage.gpu for stage in self.stages), default=0)

    @property
    def peak_host(self) -> int:
        return max((stage.host for stage in self.stages), default=0)

    @property
    def work(self) -> int:
        """The time-dominant quantity: denoiser calls x tokens^2."""
        return self.denoiser_calls * self.tokens**2

    @property
    def on_gpu(self) -> bool:
        return self.device != "cpu"

    def peak(self) -> int:
        """The peak on the device the run computes on: the GPU's, or the host's on a CPU."""
        return self.peak_gpu if self.on_gpu else self.peak_host

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "title": self.title, "device": self.device, "dtype": self.dtype,
            "offload": self.offload, "quantize": self.quantize, "vae_tiling": self.vae_tiling,
            "decode_chunk": self.decode_chunk, "width": self.size[0], "height": self.size[1], "frames": self.frames,
            "latent_shape": list(self.latent), "steps": self.steps,
            "weights_bytes": dict(self.weights),
            "denoiser": {"tokens": self.tokens, "heads": self.heads, "calls": self.denoiser_calls,
                         "calls_x_tokens_squared": self.work, "attention_materialised": self.attention_materialised},
            "stages": [{"stage": stage.name, "gpu_bytes": stage.gpu, "host_bytes": stage.host, "what": stage.what}
                       for stage in self.stages],
            "peak_gpu_bytes": self.peak_gpu, "peak_host_bytes": self.peak_host, "notes": list(self.notes),
        }


class DoesNotFit(UsageError):
    """No combination of the flags left open fits the memory given (exit 2, before loading)."""


def parse_memory(text: str, flag: str = "--vram") -> int | None:
    """``12G``, ``12GiB``, ``800M``, ``24000000000`` as bytes (K, M, G, T are powers of 1024, with
    or without ``iB``/``B``); ``auto`` (None): the device's free memory."""
    if text.strip().lower() in ("auto", "free"):
        return None
    match = _SIZE.match(text)
    value = float(match.group(1)) if match else math.nan
    if not match or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} {text!r}: expected a memory size such as 12G, 800M or 24GiB, or auto (the device's "
                         "free memory)")
    return int(value * 1024 ** "_kmgt".index(match.group(2).lower() or "_"))


def gib(count: int) -> str:
    """Bytes in words: GiB from one GiB up, else MiB (KiB below one MiB)."""
    if abs(count) >= GIB:
        return f"{count / GIB:.2f} GiB"
    if abs(count) >= 2**20:
        return f"{count / 2**20:.1f} MiB"
    return f"{count / 2**10:.1f} KiB"


# --- the model, built empty -------------------------------------------------------------------


@dataclass
class EmptyModel:
    """A model's components built on the meta device from their configs (no weights)."""

    info: ModelInfo
    folder: Path
    components: dict[str, Any] = field(default_factory=dict)  # name -> module on the meta device
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_empty(info: ModelInfo, names: Sequence[str]) -> EmptyModel:
    """The components ``names`` of ``info``'s folder on the meta device (configs only)."""
    if info.folder is None:
        raise ModelError(f"--model {info.model_id}: its configs are not on disk and cannot be downloaded; vidlatent plan "
                         "reads them (connect once, or point --model at a diffusers folder)")
    from vidlatent.families import read_model_index
    from vidlatent.families.base import read_config
    from vidlatent.tiny import quiet_libraries

    quiet_libraries()
    index = read_model_index(info.folder, info.model_id)
    empty = EmptyModel(info=info, folder=info.folder)
    for name in names:
        entry = index.get(name)
        if not isinstance(entry, list) or len(entry) != 2 or entry[0] is None or not (info.folder / name).is_dir():
            continue
        module = _empty_component(info.folder / name, str(entry[0]), str(entry[1]))
        if module is not None:
            empty.components[name] = module
            empty.configs[name] = read_config(info.folder, name)
    return empty


def _empty_component(folder: Path, library: str, class_name: str) -> Any:
    """One diffusers or transformers model built on the meta device from ``folder``'s config;
    None for what has no weights (schedulers, tokenizers, processors)."""
    import importlib

    import torch
    from accelerate import init_empty_weights

    try:
        model_class = getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError):
        return None
    if not (isinstance(model_class, type) and issubclass(model_class, torch.nn.Module)):
        return None
    with init_empty_weights():
        if library == "diffusers":
            return model_class.from_config(model_class.load_config(folder))
        from transformers import AutoConfig

        model = model_class(AutoConfig.from_pretrained(folder))
    # Tied weights (T5's shared embedding) are one tensor once loaded; built empty, tie them too.
    tie = getattr(model, "tie_weights", None)
    if callable(tie):
        tie()
    return model


# --- the estimate -----------------------------------------------------------------------------


def module_bytes(module: Any, element: int, fp8: bool = False) -> int:
    """The bytes of a module's parameters and buffers once loaded at ``element`` bytes per float
    (integers keep theirs; ``_keep_in_fp32_modules`` four), and with ``fp8`` the layers diffusers'
    ``enable_layerwise_casting`` stores in fp8 at one byte (the patterns it skips keep theirs)."""
    keep_in_fp32 = tuple(getattr(module, "_keep_in_fp32_modules", None) or ())
    keep = keep_in_fp32 if element < 4 else ()
    skip: tuple[str, ...] = ()
    cast_layers: tuple[type, ...] = ()
    if fp8:  # the patterns enable_layerwise_casting skips: its defaults, the fp32 modules and the model's own
        from diffusers.hooks._common import _GO_LC_SUPPORTED_PYTORCH_LAYERS as cast_layers
        from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

        skip = (*DEFAULT_SKIP_MODULES_PATTERN, *keep_in_fp32, *(getattr(module, "_skip_layerwise_casting_patterns", None) or ()))
    total = 0
    seen: set[int] = set()  # a tied weight (a text encoder's shared embedding) is stored once
    for name, child in module.named_modules():
        stored = 1 if fp8 and isinstance(child, cast_layers) and not any(re.search(pattern, name) for pattern in skip) else element
        for tensor_name, tensor in [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            full = f"{name}.{tensor_name}" if name else tensor_name
            size = tensor.element_size() if not tensor.is_floating_point() else (
                4 if any(part in full for part in keep) else stored)
            total += tensor.numel() * size
    return total


def largest_block_bytes(module: Any, element: int, fp8: bool = False) -> tuple[int, int]:
    """(the largest block of the module's ModuleLists, the bytes outside every block): what
    diffusers' block-level group offload keeps on the GPU at once (plus the next block, prefetched).
    As diffusers groups them: the blocks of the module's own ModuleList and Sequential children."""
    import torch

    largest, in_blocks = 0, 0
    for child in module.children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
            sizes = [module_bytes(block, element, fp8) for block in child]
            largest, in_blocks = max([largest, *sizes]), in_blocks + sum(sizes)
    return largest, max(0, module_bytes(module, element, fp8) - in_blocks)


def largest_layer_bytes(module: Any, element: int) -> int:
    """The largest leaf module's parameters: what sequential offload holds on the GPU at once."""
    return max((module_bytes(child, element) for child in module.modules() if not list(child.children())), default=0)


def plan(request: Request, info: ModelInfo | None = None) -> Plan:
    """Estimate ``request``'s memory per stage from the model's architecture (no weights read).

    Args:
        request: the model, its flags and the run.
        info: the model's ``describe_checked`` where the caller has it.
    """
    from vidlatent.models import describe_checked

    info = info or describe_checked(request.load)
    family, spec = info.family, info.spec
    names = family.sampling_components(spec, image=request.image)
    empty = build_empty(info, names)
    return _estimate(request, empty, _device_kind(request.load.device))


def _device_kind(name: str) -> str:
    """Where --device NAME computes: cuda, mps or cpu (auto: as the loader picks)."""
    if name != "auto":
        return name.partition(":")[0]
    from vidlatent.models import resolve_device

    return resolve_device("auto").type


def _dtype_bytes(request: Request, family: Family, device: str) -> tuple[str, int]:
    """The dtype the loader picks (its name and bytes per element): fp32 on a CPU, else as asked or
    the family's (bf16 for Wan and LTX, fp16 for SVD)."""
    name = request.load.dtype
    if device == "cpu" or name == "fp32":
        return "fp32", 4
    name = family.preferred_gpu_dtype if name == "auto" else name
    return name, 2


def _knob(request: Request, family: Family, name: str | None, given: Any) -> Any:
    if name is None:
        return None
    if given is not None:
        return given
    defaults = family.knob_defaults_for({})
    return defaults.get(name, family.pipeline_defaults.get(name))


def _estimate(request: Request, empty: EmptyModel, device: str) -> Plan:
    family, spec = empty.info.family, empty.info.spec
    load = request.load
    dtype, element = _dtype_bytes(request, family, device)
    fp8 = load.acceleration.quantize == "fp8"
    denoisers = [name for name in DENOISERS if name in empty.components]
    files = {file.component: file for file in load.components}
    weights: dict[str, int] = {}
    for name, module in empty.components.items():
        weights[name] = module_bytes(module, element, fp8 and name in denoisers)
    for name, file in files.items():
        from vidlatent.component_files import loaded_bytes

        weights[name] = loaded_bytes(file, 1 if fp8 else element)
    lora = sum(_lora_bytes(each.path, element) for each in load.acceleration.loras)
    if lora:
        weights["loras"] = lora

    frames = request.frames or spec.frames
    steps = request.steps or int(_steps(family))
    vae = empty.components.get("vae")
    spatial = family.layout(vae).spatial if vae is not None else spec.size_multiple
    width, height = request.size
    latent = (spec.frame_rule.latent_frames(frames), height // spatial, width // spatial)
    denoiser = family.denoiser
    workload = family.denoiser_workload(empty.configs.get(denoiser, {}), latent)
    guidance = _knob(request, family, family.guidance_knob, request.guidance)
    guided = guidance is not None and float(guidance) > 1
    batch = 2 if guided and family.guidance_batched else 1
    calls = steps * (2 if guided and not family.guidance_batched else 1) * batch  # batched passes count as calls
    materialised = device in MATERIALISING_DEVICES
    activations = _denoiser_activations(workload, batch, element, materialised)
    chunk = request.decode_chunk or family.default_decode_chunk(_Standin(empty.components))
    tiling = _tiling(load, family, vae, request.size)
    decode = _decode_bytes(family, vae, request.size, latent[0], chunk, tiling, device, element)
    if _decode_bytes(family, vae, request.size, latent[0], 1, tiling, device, element) == _decode_bytes(
            family, vae, request.size, latent[0], 2, tiling, device, element):
        chunk = None  # the chunk changes nothing here: the decoder has its own step (or the clip is that short)
    encoders = {name: _encoder_activations(empty.configs.get(name, {}), element)
                for name in ("text_encoder", "image_encoder") if name in weights}
    stages = _stages(device, load.offload, weights, denoisers, activations, decode, encoders, empty, element, fp8)
    notes = []
    if workload is None:
        notes.append(f"{family.title}: no estimate of the denoiser's activations")
    if decode is None:
        notes.append(f"{family.title}: no estimate of the decode's memory")
    return Plan(
        model=empty.info.model_id, title=spec.title, device=device, dtype=dtype, offload=_offload_name(load.offload, device),
        quantize=load.acceleration.quantize, vae_tiling=tiling, decode_chunk=chunk, size=request.size, frames=frames,
        latent=latent, steps=steps, weights=weights, tokens=workload.tokens if workload else 0,
        heads=workload.heads if workload else 0, denoiser_calls=calls, attention_materialised=materialised,
        stages=stages, notes=tuple(notes),
    )


def _steps(family: Family) -> int:
    defaults = family.knob_defaults_for({})
    if defaults.get("timesteps"):
        return len(defaults["timesteps"])
    return int(family.pipeline_defaults.get("steps") or 25)


class _Standin:
    """What ``Family.default_decode_chunk`` reads of a loaded model, from the empty components."""

    def __init__(self, components: dict[str, Any]) -> None:
        self.pipeline = type("Components", (), dict.fromkeys(("unet", "transformer"), None) | components)()


def _offload_name(offload: str, device: str) -> str:
    if device == "cpu":
        return "none"
    return offload


def _tiling(load: LoadOptions, family: Family, vae: Any, size: tuple[int, int]) -> bool:
    """Whether the decode tiles: --vae-tiling as given, else where the family tiles such frames anyway."""
    if not family.vae_tiling or vae is None:
        return False
    choice = load.acceleration.vae_tiling
    return bool(choice) if choice is not None else family.tiles_by_default(vae, size)


def _denoiser_activations(workload: Workload | None, batch: int, element: int, materialised: bool) -> int:
    """One denoiser call's peak activations (bytes) beside its weights."""
    if workload is None:
        return 0
    rows = batch * workload.sequences * workload.tokens
    stream = rows * (LIVE_WIDTH * workload.width + LIVE_FEEDFORWARD * workload.feedforward) * element
    scores = 0
    if materialised:
        keys = max(workload.tokens, workload.context)
        scores = SCORE_MATRICES * rows * workload.heads * keys * element
    return stream + scores


def _decode_bytes(family: Family, vae: Any, size: tuple[int, int], latent_frames: int, chunk: int, tiled: bool,
                  device: str, element: int) -> int | None:
    """One VAE call's working memory at ``element`` bytes per value (the decode's; the encode of a
    conditioning video works in chunks of the same size)."""
    if vae is None:
        return None
    work = family.decode_work(vae, size, latent_frames, chunk, tiled)
    if work is None:
        return None
    unfold = CPU_CONVOLUTION_UNFOLD if device == "cpu" else 1
    return int(work.live * unfold * work.frames * work.pixels * work.channels * element)


def _encoder_activations(config: dict[str, Any], element: int) -> int:
    width = max(int(config.get(key) or 0) for key in ("d_ff", "intermediate_size", "d_model", "hidden_size", "dim"))
    return ENCODER_LIVE * ENCODER_TOKENS * width * element


def _lora_bytes(path: str, element: int) -> int:
    from safetensors import safe_open

    with safe_open(path, "pt") as weights:
        return sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys()) * element


def _stages(device: str, offload: str, weights: dict[str, int], denoisers: list[str], activations: int,
            decode: int | None, encoders: dict[str, int], empty: EmptyModel, element: int, fp8: bool) -> tuple[Stage, ...]:
    """Each stage's GPU and host peaks under the offload mode."""
    total = sum(weights.values())
    vae = weights.get("vae", 0)
    denoiser = max((weights.get(name, 0) for name in denoisers), default=0)
    decode = decode or 0
    encoder_name = max(encoders, key=lambda name: weights.get(name, 0)) if encoders else None
    encoder = weights.get(encoder_name, 0) if encoder_name else 0
    encoder_label = encoder_name or "no encoder"
    encoder_work = max(encoders.values(), default=0)
    if device == "cpu":
        base = RUNTIME_HOST_BYTES + total
        return (
            Stage("load", 0, base, f"weights {gib(total)} in host memory"),
            Stage("prompt", 0, base + encoder_work, f"{encoder_label}: {gib(encoder_work)} of activations"),
            Stage("denoise", 0, base + activations, f"{gib(activations)} of activations per call"),
            Stage("decode", 0, base + decode, f"VAE decode {gib(decode)} per call"),
        )
    host = RUNTIME_HOST_BYTES + CUDA_HOST_BYTES + total  # every mode loads the weights into host memory first
    context = CUDA_CONTEXT_BYTES
    if offload in ("none", "auto"):
        return (
            Stage("load", total + context, host, f"all weights on the GPU: {gib(total)}"),
            Stage("prompt", total + context + encoder_work, host, f"{encoder_label} activations"),
            Stage("denoise", total + context + activations, host, f"{gib(activations)} of activations per call"),
            Stage("decode", total + context + decode, host, f"VAE decode {gib(decode)} per call"),
        )
    if offload == "model":
        return (
            Stage("load", context, host, "weights in host memory, one component on the GPU at a time"),
            Stage("prompt", context + encoder + encoder_work, host, f"{encoder_label} on the GPU"),
            Stage("denoise", context + denoiser + activations, host, f"the denoiser {gib(denoiser)} and its activations"),
            Stage("decode", context + vae + decode, host, f"the VAE and its decode {gib(decode)} per call"),
        )
    if offload == "group":
        resident = 0
        for name in denoisers:
            block, rest = largest_block_bytes(empty.components[name], element, fp8)
            resident = max(resident, rest + 2 * block)  # the block at work and the next, prefetched
        return (
            Stage("load", context + vae, host, "the VAE on the GPU; the rest streamed block by block"),
            Stage("prompt", context + vae + encoder_work + _largest_block(empty, encoder_name, element), host,
                  f"{encoder_label} streamed"),
            Stage("denoise", context + vae + resident + activations, host,
                  f"two denoiser blocks and the rest {gib(resident)}, activations {gib(activations)}"),
            Stage("decode", context + vae + decode, host, f"the VAE and its decode {gib(decode)} per call"),
        )
    layer = max((largest_layer_bytes(module, element) for module in empty.components.values()), default=0)
    return (
        Stage("load", context, host, "weights in host memory, brought in layer by layer"),
        Stage("prompt", context + layer + encoder_work, host, "one layer at a time"),
        Stage("denoise", context + layer + activations, host, f"one layer at a time, activations {gib(activations)}"),
        Stage("decode", context + layer + decode, host, f"the VAE's decode {gib(decode)} per call"),
    )


def _largest_block(empty: EmptyModel, name: str | None, element: int) -> int:
    if name is None or name not in empty.components:
        return 0
    block, rest = largest_block_bytes(empty.components[name], element)
    return rest + 2 * block


# --- fitting a budget -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """The cheapest settings that fit, their plan and why, in words."""

    plan: Plan
    offload: str
    quantize: str | None
    vae_tiling: bool | None
    decode_chunk: int | None
    reason: str


def _candidates(request: Request, family: Family, device: str, chunked: bool) -> list[tuple[float, dict[str, Any]]]:
    """Every combination of the settings the user left open, with its cost, cheapest first
    (``chunked``: the decode chunk changes the decode's memory)."""
    load = request.load
    offloads = [load.offload] if load.offload != "auto" else (list(OFFLOADS) if device == "cuda" else ["none"])
    quantizes = [load.acceleration.quantize] if load.acceleration.quantize or device == "mps" else [None, "fp8"]
    tilings: list[bool | None] = [load.acceleration.vae_tiling] if load.acceleration.vae_tiling is not None or not family.vae_tiling \
        else [None, True]
    chunks: list[int | None] = [request.decode_chunk] if request.decode_chunk or not chunked else [None, *DECODE_CHUNKS]
    options = []
    for offload in offloads:
        for quantize in quantizes:
            for tiling in tilings:
                for chunk in chunks:
                    cost = (COSTS["offload"].get(offload, 0.0) + (COSTS["fp8"] if quantize and not load.acceleration.quantize else 0)
                            + (COSTS["tiling"] if tiling and load.acceleration.vae_tiling is None else 0)
                            + (COSTS["chunk"] * (DECODE_CHUNKS.index(chunk) + 1) if chunk and not request.decode_chunk else 0))
                    options.append((cost, {"offload": offload, "quantize": quantize, "vae_tiling": tiling, "decode_chunk": chunk}))
    return sorted(options, key=lambda option: option[0])


def fit(request: Request, budget: int | None, info: ModelInfo | None = None, *, given: str | None = None) -> Fit:
    """The cheapest combination of offload, fp8, VAE tiling and decode chunk (among those the
    request leaves open: --offload auto, no --quantize, no --vae-tiling/--no-vae-tiling, no
    --decode-chunk) whose peak fits ``budget`` bytes (None: the device's free memory).

    Raises DoesNotFit, naming what is short, when none does; ``given`` is the --vram value as typed.
    """
    from vidlatent.models import describe_checked

    info = info or describe_checked(request.load)
    family, spec = info.family, info.spec
    device = _device_kind(request.load.device)
    if budget is None:
        budget = _free(request.load.device)
    empty = build_empty(info, family.sampling_components(spec, image=request.image))
    best: Plan | None = None
    tried = 0
    chunked = _estimate(request, empty, device).decode_chunk is not None
    for _, choice in _candidates(request, family, device, chunked):
        acceleration = dataclasses.replace(request.load.acceleration, quantize=choice["quantize"], vae_tiling=choice["vae_tiling"])
        load = dataclasses.replace(request.load, offload=choice["offload"], acceleration=acceleration)
        candidate = dataclasses.replace(request, load=load, decode_chunk=choice["decode_chunk"])
        estimate = _estimate(candidate, empty, device)
        tried += 1
        if best is None or estimate.peak() < best.peak():
            best = estimate
        if estimate.peak() <= budget:
            return Fit(plan=estimate, reason=_why(estimate, budget), **choice)
    assert best is not None
    where = "GPU" if best.on_gpu else "host"
    top = max(best.stages, key=lambda stage: stage.gpu if best.on_gpu else stage.host)
    raise DoesNotFit(
        f"--vram {given or gib(budget)}: no combination of offload, fp8, VAE tiling and decode chunk fits; the smallest "
        f"({_settings(best)}) needs {gib(best.peak())} on the {where}, {gib(best.peak() - budget)} short, at its "
        f"{top.name} stage ({top.what}); lower --size or --frames, or give more memory")


def _settings(estimate: Plan) -> str:
    parts = [f"offload {estimate.offload}", "fp8" if estimate.quantize else "no fp8",
             "VAE tiling" if estimate.vae_tiling else "no tiling"]
    if estimate.decode_chunk is not None:
        parts.append(f"decode chunk {estimate.decode_chunk}")
    return ", ".join(parts)


def _why(estimate: Plan, budget: int) -> str:
    where = "GPU" if estimate.on_gpu else "host"
    top = max(estimate.stages, key=lambda stage: stage.gpu if estimate.on_gpu else stage.host)
    return (f"{_settings(estimate)}: the cheapest that fits, peak {gib(estimate.peak())} on the {where} at its "
            f"{top.name} stage ({top.what}) within {gib(budget)}")


def _free(device: str) -> int:
    """The free memory of --device DEVICE's device (CUDA: the driver's count; CPU: available RAM)."""
    from vidlatent.models import free_memory, resolve_device

    free = free_memory(resolve_device(device))
    if free is None:
        raise UsageError(f"--vram auto: the free memory of --device {device} is unknown; give --vram SIZE (e.g. 12G)")
    return free
