"""Big models on ordinary GPUs: step caching, attention kernels, compilation, fp8 weight storage,
VAE tiling and LoRA.

Each is one switch (``Acceleration``, carried in ``LoadOptions.acceleration``) over what
diffusers already does: ``CacheMixin.enable_cache`` (``vidlatent.step_caches``),
``set_attention_backend`` (``vidlatent.attention``), ``compile_repeated_blocks`` /
``torch.compile``, ``enable_layerwise_casting``, the VAE's tiled decode, and
``load_lora_weights`` + ``set_adapters`` (peft; the files are read and loaded by
``vidlatent.lora_files``). Whether a model family can take one is a class attribute of the
family (``supports_cache``, ``attention_dispatch``, ``compile_target``, ``lora_layouts``,
``vae_tiling``), checked here before anything loads, so a new family opts in by setting them.

Torch-free at import: the command line parses and checks these flags in a blink.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError
from vidlatent.step_caches import CacheChoice, StepCache, check_cache, enable

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from vidlatent.families.base import Family, ModelSpec
    from vidlatent.lora_files import Lora

Note = Callable[[str], None]


def _silent(_: str) -> None:
    pass


QUANTIZE_CHOICES = ("fp8",)
COMPILE_BACKEND_VARIABLE = "VIDLATENT_COMPILE_BACKEND"
DEFAULT_COMPILE_BACKEND = "inductor"
# Components --quantize and --cache act on: the denoisers (the bulk of a video model's weights).
DENOISERS = ("unet", "transformer", "transformer_2")


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
        lora_partial: --lora-partial: load the part of a LoRA that fits the model (else a LoRA
            of which only part fits is refused).
    """

    cache: CacheChoice | None = None
    attention: str | None = None
    compile: bool = False
    quantize: str | None = None
    vae_tiling: bool | None = None
    loras: tuple[Lora, ...] = field(default=())
    lora_partial: bool = False

    def validate(self) -> None:
        if self.quantize is not None and self.quantize not in QUANTIZE_CHOICES:
            raise UsageError(f"--quantize {self.quantize!r}: expected one of {', '.join(QUANTIZE_CHOICES)}")
        if self.lora_partial and not self.loras:
            raise UsageError("--lora-partial: it says how a --lora file loads; give one with --lora, or leave it out")


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
    if acceleration.loras and not family.lora_layouts:
        raise UsageError(f"--lora: {family.title}'s pipeline has no LoRA loader in diffusers; leave it out")
    for lora in acceleration.loras:
        if lora.expert not in (None, "both") and spec.experts == 1:
            raise UsageError(f"--lora {lora.path}:{lora.scale:g}:{lora.expert}: {spec.title} has one transformer; "
                             "leave the expert out")


# --- checks before loading ---------------------------------------------------------------------


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


def apply_before_placement(pipeline: Any, acceleration: Acceleration, dtype: torch.dtype,
                           loras: Sequence[dict[str, Any]] = (), note: Note = _silent, *, family: Family,
                           model_id: str) -> Applied:
    """fp8 storage, the attention backend and the step cache, in that order, on the pipeline
    still on the CPU, after its LoRAs (``loras``: their history records) are loaded
    (``lora_files.load_loras``).

    LoRA first: peft wraps the layers, and layerwise casting (which diffusers makes aware of
    peft's layers) then stores the base weights and the LoRA weights alike. The cache's hooks
    come last, around the blocks as they will run.
    """
    applied = Applied(acceleration=acceleration, note=note, loras=list(loras))
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
