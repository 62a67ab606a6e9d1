"""Big models on ordinary GPUs: step caching, attention kernels, compilation, fp8 weight storage,
VAE tiling and LoRA.

Each is one switch (``Acceleration``, carried in ``LoadOptions.acceleration``) over what
diffusers already does: ``CacheMixin.enable_cache`` (``vidlatent.step_caches``),
``set_attention_backend`` (``vidlatent.attention``), ``compile_repeated_blocks`` /
``torch.compile``, ``enable_layerwise_casting``, the VAE's tiled decode, and
``load_lora_weights`` + ``set_adapters`` (peft). Whether a model family can take one is a class
attribute of the family (``supports_cache``, ``attention_dispatch``, ``compile_target``,
``supports_lora``, ``vae_tiling``), checked here before anything loads, so a new family opts in
by setting them.

Torch-free at import: the command line parses and checks these flags in a blink.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError
from vidlatent.step_caches import CacheChoice, StepCache, check_cache, enable

if TYPE_CHECKING:
    import torch

    from vidlatent.families.base import Family, ModelSpec

Note = Callable[[str], None]


def _silent(_: str) -> None:
    pass


QUANTIZE_CHOICES = ("fp8",)
COMPILE_BACKEND_VARIABLE = "VIDLATENT_COMPILE_BACKEND"
DEFAULT_COMPILE_BACKEND = "inductor"
EXPERTS = ("both", "high", "low")  # Wan 2.2 two-expert models: transformer (high noise), transformer_2 (low)
# Components --quantize and --cache act on: the denoisers (the bulk of a video model's weights).
DENOISERS = ("unet", "transformer", "transformer_2")


@dataclass(frozen=True)
class Lora:
    """--lora PATH[:SCALE[:EXPERT]]: a LoRA file, its scale, and on two-expert models which experts."""

    path: str
    scale: float = 1.0
    expert: str | None = None  # None: both experts of a two-expert model (the only one otherwise)


@dataclass(frozen=True)
class Acceleration:
    """How a model is made to fit and run faster; every field is a command-line flag.

    Args:
        cache: --cache: a step cache (first-block, taylorseer, mag: ``vidlatent.step_caches``)
            on the transformer families.
        attention: --attention: diffusers' attention backend for the denoiser (None: its default).
        compile: --compile: torch.compile the denoiser (regional on transformers).
        quantize: --quantize fp8: keep the denoisers' weights in fp8, compute in the model dtype.
        vae_tiling: --vae-tiling / --no-vae-tiling; None: on where the decode would not fit.
        loras: --lora, in order.
    """

    cache: CacheChoice | None = None
    attention: str | None = None
    compile: bool = False
    quantize: str | None = None
    vae_tiling: bool | None = None
    loras: tuple[Lora, ...] = field(default=())

    def validate(self) -> None:
        if self.quantize is not None and self.quantize not in QUANTIZE_CHOICES:
            raise UsageError(f"--quantize {self.quantize!r}: expected one of {', '.join(QUANTIZE_CHOICES)}")


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
    return Lora(str(file.resolve()), scale, expert)


def check_fits(acceleration: Acceleration, family: Family, spec: ModelSpec, *, device: str = "auto", model_id: str = "",
               folder: Path | None = None) -> None:
    """Refuse, before the model loads, what the model cannot take (UsageError, one line)."""
    acceleration.validate()
    if acceleration.cache is not None:
        check_cache(acceleration.cache, family, spec, model_id, folder)
    if acceleration.attention is not None and not family.attention_dispatch:
        raise UsageError(f"--attention {acceleration.attention}: {family.title}'s denoiser does not run its attention "
                         "through diffusers' attention dispatch; leave it out")
    if acceleration.vae_tiling and not family.vae_tiling:
        raise UsageError(f"--vae-tiling: {family.title}'s VAE has no tiled decode in diffusers; --decode-chunk bounds its memory")
    if acceleration.quantize is not None and device == "mps":
        raise UsageError("--quantize fp8: MPS has no fp8 tensors; use --device cuda or cpu")
    if acceleration.loras and not family.supports_lora:
        raise UsageError(f"--lora: {family.title}'s pipeline has no LoRA loader in diffusers; leave it out")
    for lora in acceleration.loras:
        if lora.expert not in (None, "both") and spec.experts == 1:
            raise UsageError(f"--lora {lora.path}:{lora.scale:g}:{lora.expert}: {spec.title} has one transformer; "
                             "leave the expert out")


# --- LoRA --------------------------------------------------------------------------------------


@dataclass
class LoraWeights:
    """A LoRA file read into diffusers' naming (``transformer.<layer>.lora_A.weight``, ...)."""

    lora: Lora
    state_dict: dict[str, Any]
    sha256: str


def read_loras(loras: Sequence[Lora], pipeline_class: Any) -> list[LoraWeights]:
    """Read each file with the pipeline's own ``lora_state_dict`` (which also converts the
    original Wan and musubi formats to diffusers' naming)."""
    read = []
    for lora in loras:
        try:
            state_dict = pipeline_class.lora_state_dict(lora.path, use_safetensors=True)
        except Exception as error:  # noqa: BLE001  (safetensors' own error is no OSError; any failure is the file's)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UsageError(f"--lora {lora.path}: cannot be read as LoRA weights ({reason})") from error
        read.append(LoraWeights(lora, state_dict, _sha256(lora.path)))
    return read


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def empty_denoiser(folder: Path, name: str) -> Any:
    """The denoiser ``name`` of a model folder built on the meta device from its config: its
    layer names and shapes, no weights (for checks before the weights load)."""
    import diffusers
    from accelerate import init_empty_weights

    from vidlatent.families.base import read_config

    config = read_config(folder, name)
    model_class = getattr(diffusers, str(config.get("_class_name")), None)
    if model_class is None:
        return None
    with init_empty_weights():
        return model_class.from_config(config)


def first_mismatch(state_dict: dict[str, Any], denoiser: Any, prefix: str = "transformer.") -> tuple[str, str] | None:
    """The first LoRA key (in file order) that does not fit ``denoiser``, and why; None if all fit."""
    layers = dict(denoiser.named_modules())
    for key, tensor in state_dict.items():
        if not key.startswith(prefix):
            return key, f"vidlatent loads LoRAs for the {prefix.rstrip('.')} only"
        name, marker, rest = key[len(prefix):].partition(".lora_")
        layer = layers.get(name)
        if not marker:
            return key, "not a LoRA weight (no lora_A / lora_B in its name)"
        if layer is None:
            return key, f"the {prefix.rstrip('.')} has no layer {name}"
        shape = tuple(tensor.shape)
        inputs, outputs = getattr(layer, "in_features", None), getattr(layer, "out_features", None)
        if inputs is None or outputs is None or rest.startswith("magnitude"):
            continue  # a convolution or DoRA term: peft checks those itself
        if rest == "A.weight" and (len(shape) != 2 or shape[1] != inputs):
            return key, f"shape {shape} does not fit the layer's {inputs} input features"
        if rest == "B.weight" and (len(shape) != 2 or shape[0] != outputs):
            return key, f"shape {shape} does not fit the layer's {outputs} output features"
        if rest == "B.bias" and shape != (outputs,):
            return key, f"shape {shape} does not fit the layer's {outputs} output features"
    return None


def lora_experts(lora: Lora, spec: ModelSpec) -> tuple[str, ...]:
    """The denoisers a LoRA goes into: both experts of a two-expert model unless one is named."""
    if spec.experts == 1:
        return ("transformer",)
    return {"high": ("transformer",), "low": ("transformer_2",)}.get(lora.expert or "both", ("transformer", "transformer_2"))


def check_loras(weights: Sequence[LoraWeights], folder: Path, spec: ModelSpec, components: Sequence[str]) -> None:
    """Refuse a LoRA whose keys do not fit the model's denoisers (built empty from their configs),
    naming the first key that does not match."""
    wanted = {name for each in weights for name in lora_experts(each.lora, spec) if name in components}
    denoisers = {name: empty_denoiser(folder, name) for name in sorted(wanted)}
    for each in weights:
        for name in lora_experts(each.lora, spec):
            denoiser = denoisers.get(name)
            if denoiser is None:
                continue
            found = first_mismatch(each.state_dict, denoiser)
            if found is not None:
                key, reason = found
                raise UsageError(f"--lora {each.lora.path}: does not fit {spec.title} ({name}): key {key}: {reason}")


def load_loras(pipeline: Any, weights: Sequence[LoraWeights], spec: ModelSpec) -> list[dict[str, Any]]:
    """Load each LoRA as its own adapter (``lora0``, ``lora1``, ...) into the experts it goes
    into and set their scales; returns the history records."""
    import warnings

    names, scales, records = [], [], []
    for index, each in enumerate(weights):
        name = f"lora{index}"
        experts = lora_experts(each.lora, spec)
        for expert in experts:
            with warnings.catch_warnings():
                # Several adapters in one model are what --lora asks for; peft warns of them.
                warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
                # load_lora_weights pops from the dict it is given: each call gets its own copy.
                pipeline.load_lora_weights(dict(each.state_dict), adapter_name=name,
                                           **({"load_into_transformer_2": True} if expert == "transformer_2" else {}))
        names.append(name)
        scales.append(each.lora.scale)
        record = {"path": each.lora.path, "sha256": each.sha256, "scale": each.lora.scale}
        if spec.experts == 2:
            record["experts"] = "both" if len(experts) == 2 else {"transformer": "high", "transformer_2": "low"}[experts[0]]
        records.append(record)
    if names:
        pipeline.set_adapters(names, adapter_weights=scales)
    return records


# --- applying them -----------------------------------------------------------------------------


@dataclass
class Applied:
    """What was applied to a loaded pipeline, for the history and for the step callback."""

    acceleration: Acceleration = Acceleration()
    cache: StepCache | None = None
    loras: list[dict[str, Any]] = field(default_factory=list)
    compile_backend: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # component -> the single file it was loaded from
    note: Note = _silent  # the loader's note, for decisions taken later (VAE tiling)

    def end_step(self) -> None:
        if self.cache is not None:
            self.cache.counter.end_step()

    def record(self) -> dict[str, Any]:
        """The history entry of what changes the sampled latents (empty on the default path);
        the cache's counts are those since the last record."""
        record: dict[str, Any] = {}
        acceleration = self.acceleration
        if self.cache is not None:
            record["cache"] = self.cache.record()
        if acceleration.attention is not None:
            record["attention"] = acceleration.attention
        if acceleration.quantize is not None:
            record["quantize"] = acceleration.quantize
        if acceleration.compile:
            record["compile"] = self.compile_backend or True
        if self.loras:
            record["lora"] = self.loras
        if self.files:
            record["files"] = self.files
        return record


def denoisers(pipeline: Any) -> dict[str, Any]:
    """The pipeline's loaded denoisers by component name."""
    return {name: getattr(pipeline, name) for name in DENOISERS if getattr(pipeline, name, None) is not None}


def apply_before_placement(pipeline: Any, acceleration: Acceleration, spec: ModelSpec, dtype: torch.dtype,
                           loras: Sequence[LoraWeights] = (), note: Note = _silent, *, family: Family,
                           model_id: str) -> Applied:
    """LoRA, fp8 storage, the attention backend and the step cache, in that order, on the
    pipeline still on the CPU.

    LoRA first: peft wraps the layers, and layerwise casting (which diffusers makes aware of
    peft's layers) then stores the base weights and the LoRA weights alike. The cache's hooks
    come last, around the blocks as they will run.
    """
    applied = Applied(acceleration=acceleration, note=note)
    applied.loras = load_loras(pipeline, loras, spec)
    models = denoisers(pipeline)
    if acceleration.quantize == "fp8":
        for model in models.values():
            store_fp8(model, dtype)
    if acceleration.attention is not None:
        for model in models.values():
            model.set_attention_backend(acceleration.attention)
    if acceleration.cache is not None:
        applied.cache = enable(pipeline, models, acceleration.cache, family, model_id)
    return applied


def store_fp8(model: Any, dtype: torch.dtype) -> None:
    """--quantize fp8 on one diffusers model: weights stored in float8_e4m3fn, each layer cast to
    ``dtype`` for its forward; the model's own _skip_layerwise_casting_patterns (norms,
    embeddings) stay in ``dtype``."""
    import torch

    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)


def compile_backend() -> str:
    """The torch.compile backend --compile uses: VIDLATENT_COMPILE_BACKEND, else inductor."""
    return os.environ.get(COMPILE_BACKEND_VARIABLE) or DEFAULT_COMPILE_BACKEND


def apply_compile(pipeline: Any, applied: Applied, family: Family, device: torch.device, offload: str, note: Note) -> None:
    """--compile, once the pipeline is placed: regional (``compile_repeated_blocks``) on
    transformer families, the whole denoiser (``torch.compile``) where the family says so.

    fullgraph (and, for a whole UNet on CUDA, CUDA graphs: the diffusers recipe's
    ``mode="reduce-overhead"``) only when no hooks wrap the layers: the cache's decision,
    offloading and layerwise casting run Python between the layers, which breaks the graph.
    """
    if not applied.acceleration.compile:
        return
    acceleration = applied.acceleration
    hooked = acceleration.cache is not None or acceleration.quantize is not None or offload != "none"
    backend = compile_backend()
    options: dict[str, Any] = {"backend": backend, "fullgraph": not hooked}
    for model in denoisers(pipeline).values():
        if family.compile_target == "repeated-blocks":
            model.compile_repeated_blocks(**options)
        else:
            if device.type == "cuda" and not hooked and backend == DEFAULT_COMPILE_BACKEND:
                options["mode"] = "reduce-overhead"
            model.compile(**options)
    applied.compile_backend = backend
    what = "the repeated blocks" if family.compile_target == "repeated-blocks" else "the whole denoiser"
    note(f"--compile: torch.compile ({backend}) of {what}; the first call compiles (minutes on a big model)")
